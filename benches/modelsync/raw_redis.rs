//! The floor under any Redis client: one redis-rs connection storing and
//! reading the model as a single value, neither cut nor compressed.

use std::time::Duration;

use redis::{Cmd, Connection, FromRedisValue};

use crate::measure::{best_of, rate};
use crate::report::{item, section};

const KEY: &str = "bench:raw";

#[derive(Debug, Clone, Copy)]
pub struct RawRedis {
    pub set: Duration,
    pub get: Duration,
}

pub fn measure(redis_url: &str, data: &[u8], rounds: usize) -> RawRedis {
    let mut conn = redis::Client::open(redis_url)
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| panic!("connecting to {redis_url}: {e}"));

    let (set, ()) = best_of(rounds, || {
        call(&mut conn, redis::cmd("SET").arg(KEY).arg(data))
    });
    let (get, back) = best_of(rounds, || {
        call::<Vec<u8>>(&mut conn, redis::cmd("GET").arg(KEY))
    });
    assert!(back == data, "GET did not return what SET stored");
    call::<()>(&mut conn, redis::cmd("DEL").arg(KEY));
    RawRedis { set, get }
}

fn call<T: FromRedisValue>(conn: &mut Connection, cmd: &Cmd) -> T {
    cmd.query(conn)
        .unwrap_or_else(|e| panic!("raw redis-rs call: {e}"))
}

impl RawRedis {
    pub fn print(&self, bytes: u64) {
        section("redis-rs, one connection, one unchunked uncompressed value");
        item("SET", rate(bytes, self.set));
        item("GET", rate(bytes, self.get));
    }
}
