//! Who may call: the socket's mode, and the allowed user ids checked
//! against the peer's credentials.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{header, push, sample, Daemon, RedisServer};
use tonic::Code;

fn own_uid() -> u32 {
    unsafe { libc::getuid() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_uid_is_not_listed_is_permission_denied() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.allowed_uids = vec![own_uid().wrapping_add(4242)];
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;

    let err = push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains(&format!("user id {}", own_uid())),
        "{}",
        err.message()
    );

    let mut conn = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:*")
        .query(&mut conn)
        .unwrap();
    assert!(keys.is_empty(), "a refused caller stored {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_uid_may_call() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.allowed_uids = vec![own_uid()];
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_gets_the_configured_mode() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.socket_mode = 0o600;
    let daemon = Daemon::start_with(config).await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}
