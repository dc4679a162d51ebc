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

mod tcp {
    use super::*;
    use modelsync::config::TcpConfig;
    use modelsync::proto::v1 as api;
    use modelsync::proto::v1::model_sync_client::ModelSyncClient;
    use tonic::metadata::MetadataValue;
    use tonic::transport::Channel;

    async fn daemon_on_tcp(redis: &RedisServer, token: Option<&str>) -> (Daemon, u16) {
        let port = support::free_port();
        let mut config = support::config(&redis.url());
        config.tcp = Some(TcpConfig {
            addr: ([127, 0, 0, 1], port).into(),
            token: token.map(str::to_string),
        });
        (Daemon::start_with(config).await, port)
    }

    async fn exists_over_tcp(port: u16, token: Option<&str>) -> Result<bool, tonic::Status> {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let header = token.map(|t| MetadataValue::try_from(format!("Bearer {t}")).unwrap());
        let mut client =
            ModelSyncClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
                if let Some(value) = &header {
                    request
                        .metadata_mut()
                        .insert("authorization", value.clone());
                }
                Ok(request)
            });
        let request = api::ExistsRequest {
            namespace: "ns".into(),
            key: "k".into(),
            ..Default::default()
        };
        Ok(client.exists(request).await?.into_inner().exists)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loopback_listener_without_a_token_serves_the_api() {
        let redis = RedisServer::start();
        let (daemon, port) = daemon_on_tcp(&redis, None).await;
        push(&mut daemon.client().await, header("ns", "k"), sample(10, 1))
            .await
            .unwrap();
        assert!(exists_over_tcp(port, None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_without_the_right_token_is_unauthenticated() {
        let redis = RedisServer::start();
        let (daemon, port) = daemon_on_tcp(&redis, Some("correct-horse")).await;
        push(&mut daemon.client().await, header("ns", "k"), sample(10, 1))
            .await
            .unwrap();

        for token in [None, Some("wrong-horse"), Some("correct-hors")] {
            let err = exists_over_tcp(port, token).await.unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
            assert!(!err.message().contains("correct-horse"));
        }
        assert!(exists_over_tcp(port, Some("correct-horse")).await.unwrap());
    }

    #[test]
    fn a_listener_off_loopback_without_a_token_is_refused_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("identity.yaml");
        std::fs::write(&identity, "address: node-a\n").unwrap();
        let config = dir.path().join("config.yaml");
        let text = format!(
            "identity: {}\nlisten_tcp: 0.0.0.0:7443\n",
            identity.display()
        );
        std::fs::write(&config, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_modelsync"))
            .args(["config", "check"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(64));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not a loopback address") && stderr.contains("token_file"),
            "{stderr}"
        );
    }
}
