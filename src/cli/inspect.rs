//! The commands that look at models without moving them.

use std::path::Path;
use std::process::ExitCode;

use super::{connect, CliError, EXIT_NOT_FOUND};
use crate::proto::v1 as api;

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The model's namespace
    #[arg(long, short)]
    pub namespace: String,
    /// The model's key within the namespace
    #[arg(long, short)]
    pub key: String,
}

/// Waiting for a version newer than one already seen.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitArgs {
    /// Answer only with a version newer than this one, waiting for it (see
    /// --wait); 0 waits for the model to exist
    #[arg(long, value_name = "VERSION")]
    pub newer_than: Option<u64>,
    /// Seconds to wait for a newer version before giving up with exit
    /// status 4 [default: 0, or 60 with --newer-than]
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<f64>,
}

impl WaitArgs {
    /// The wait in milliseconds, as the API takes it.
    pub fn wait_ms(&self) -> Result<u64, CliError> {
        let default = if self.newer_than.is_some() { 60.0 } else { 0.0 };
        let seconds = self.wait.unwrap_or(default);
        if !(0.0..=86_400.0).contains(&seconds) {
            return Err(CliError::Local(format!(
                "--wait {seconds} is not between 0 and 86400 seconds"
            )));
        }
        Ok((seconds * 1000.0).round() as u64)
    }
}

#[derive(Debug, clap::Args)]
pub struct ExistsArgs {
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The namespace to watch
    #[arg(long, short)]
    pub namespace: String,
    /// Only these keys (repeat the option); every key when none is given
    #[arg(long, short)]
    pub key: Vec<String>,
    /// First print the current version of every watched model
    #[arg(long)]
    pub current: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The namespace to list
    #[arg(long, short)]
    pub namespace: String,
}

pub async fn exists(socket: &Path, args: ExistsArgs) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let ExistsArgs { name: args, wait } = args;
    let request = api::ExistsRequest {
        namespace: args.namespace,
        key: args.key.clone(),
        newer_than: wait.newer_than,
        wait_ms: wait.wait_ms()?,
    };
    let response = client.exists(request).await?.into_inner();
    match response.header {
        Some(header) if response.exists => {
            println!("{}", describe(&header));
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            println!("{} does not exist", args.key);
            Ok(ExitCode::from(EXIT_NOT_FOUND))
        }
    }
}

pub async fn list(socket: &Path, args: ListArgs) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let mut stream = client
        .list(api::ListRequest {
            namespace: args.namespace,
        })
        .await?
        .into_inner();
    while let Some(item) = stream.message().await? {
        if let Some(header) = item.header {
            println!("{}", describe(&header));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(socket: &Path, args: NameArgs) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let request = api::DeleteRequest {
        namespace: args.namespace,
        key: args.key.clone(),
    };
    if client.delete(request).await?.into_inner().deleted {
        println!("deleted {}", args.key);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} does not exist", args.key);
        Ok(ExitCode::from(EXIT_NOT_FOUND))
    }
}

pub async fn status(socket: &Path) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let s = client.status(api::StatusRequest {}).await?.into_inner();
    println!("address:      {}", s.address);
    for (name, value) in &s.labels {
        println!("label:        {name}={value}");
    }
    let state = if s.redis_connected {
        format!("connected, round trip {:.2} ms", s.redis_rtt_ms)
    } else {
        "not answering".to_string()
    };
    println!("redis:        {} ({state})", s.redis_endpoint);
    println!("version:      {}", s.version);
    println!("uptime:       {}s", s.uptime_seconds);
    println!("calls served: {}", s.calls_served);
    for n in &s.namespaces {
        println!(
            "namespace:    {}: {} layout, codec {}, chunk size {}, ttl {}s{}",
            n.namespace,
            n.layout,
            n.codec,
            n.chunk_size,
            n.ttl_seconds,
            if n.trust_pickle {
                ", pickles trusted"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum NamespaceCommand {
    /// Show how a namespace is stored, as agreed through Redis
    Show {
        /// The namespace
        namespace: String,
    },
}

pub async fn namespace(socket: &Path, namespace: String) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let n = client
        .namespace(api::NamespaceRequest { namespace })
        .await?
        .into_inner();
    println!("namespace:  {}", n.namespace);
    println!("layout:     {}", n.layout);
    println!("codec:      {}", n.codec);
    println!("chunk size: {}", n.chunk_size);
    println!("ttl:        {}s", n.ttl_seconds);
    if n.layout == "legacy" {
        println!(
            "pickles:    {}",
            if n.trust_pickle {
                "trusted"
            } else {
                "not trusted"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn health(socket: &Path) -> Result<ExitCode, CliError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

    let mut client = HealthClient::new(super::channel(socket).await?);
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let status = client.check(request).await?.into_inner().status();
    println!("{}", status.as_str_name());
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line about a model version.
pub fn describe(h: &api::ModelHeader) -> String {
    format!(
        "{} version {}: {} bytes ({} stored, {}), by {}, ttl {}s",
        h.key,
        h.version,
        h.raw_size,
        h.stored_size,
        h.codec,
        h.updater,
        h.ttl_ms / 1000
    )
}

/// Prints one line per commit until interrupted.
pub async fn watch(socket: &Path, args: WatchArgs) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let request = api::WatchRequest {
        namespace: args.namespace,
        keys: args.key,
        current: args.current,
    };
    let mut commits = client.watch(request).await?.into_inner();
    while let Some(commit) = commits.message().await? {
        println!(
            "{}  version {}  by {}",
            commit.key, commit.version, commit.updater
        );
    }
    Ok(ExitCode::SUCCESS)
}
