//! A Redis Cluster of the test's own: three masters and three replicas,
//! each a real `redis-server` on free ports (its cluster bus on port +
//! 10000 free too), joined with `redis-cli --cluster create`, and all
//! killed when dropped.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use super::RedisServer;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_full(
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (see .ci/setup)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// The daemon's `--redis` for this cluster: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes.iter().filter(|n| role(n) == "master").collect()
    }

    /// The replica of the master that holds `key`.
    pub fn replica_of_key_holder(&self, key: &str) -> &RedisServer {
        let holder = self
            .masters()
            .into_iter()
            .find(|m| {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query::<i64>(&mut m.connection())
                    .is_ok_and(|n| n == 1)
            })
            .expect("a master holds the key");
        self.nodes
            .iter()
            .find(|n| replication_field(n, "master_port") == holder.port.to_string())
            .expect("the master has a replica")
    }

    /// Waits until every node agrees the cluster is up and has its masters.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.nodes.iter().all(|n| state(n) == "ok") && self.masters().len() == 3 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test cluster did not come up within 30 s");
    }
}

/// `cluster_state` as one node reports it.
fn state(node: &RedisServer) -> String {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut node.connection())
        .unwrap_or_default();
    field(&info, "cluster_state")
}

/// `master` or `slave`.
pub fn role(node: &RedisServer) -> String {
    replication_field(node, "role")
}

fn replication_field(node: &RedisServer, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut node.connection())
        .unwrap_or_default();
    field(&info, name)
}

fn field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = super::free_port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
