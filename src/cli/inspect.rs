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

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The namespace to list
    #[arg(long, short)]
    pub namespace: String,
}

pub async fn exists(socket: &Path, args: NameArgs) -> Result<ExitCode, CliError> {
    let mut client = connect(socket).await?;
    let request = api::ExistsRequest {
        namespace: args.namespace,
        key: args.key.clone(),
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
