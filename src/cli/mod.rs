//! The client commands. They reach the daemon only through its gRPC API
//! on the Unix socket, like any other client.

mod client;
mod inspect;
mod transfer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tonic::Code;

pub use client::{channel, connect};

/// Exit status for a model that does not exist, as the legacy client used.
pub const EXIT_NOT_FOUND: u8 = 3;

/// Exit status for a wait that ended with no newer version.
pub const EXIT_NOT_NEWER: u8 = 4;

/// The client subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Push a file (or `-` for standard input) as a new version of a model
    Push(transfer::PushArgs),
    /// Pull the newest version of a model into a file (or `-` for standard output)
    Pull(transfer::PullArgs),
    /// Tell whether a model exists (exit status 3 when it does not)
    Exists(inspect::ExistsArgs),
    /// List the models of a namespace
    List(inspect::ListArgs),
    /// Delete a model and all its versions
    Delete(inspect::NameArgs),
    /// Show the daemon's identity, Redis and counters
    Status,
    /// Ask the gRPC health service: exit status 0 while SERVING (Redis
    /// answers), 1 otherwise
    Health,
    /// Print each commit in a namespace as it happens, until interrupted
    Watch(inspect::WatchArgs),
    /// Look at namespaces
    #[command(subcommand)]
    Namespace(inspect::NamespaceCommand),
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the daemon at {socket}: {reason} (is `modelsync serve` running there?)")]
    Unreachable { socket: PathBuf, reason: String },

    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Call(#[from] tonic::Status),

    #[error("{0}")]
    Local(String),
}

/// Runs one client command against the daemon at `socket`.
pub async fn run(socket: &Path, command: Command) -> ExitCode {
    let result = match command {
        Command::Push(args) => transfer::push(socket, args).await,
        Command::Pull(args) => transfer::pull(socket, args).await,
        Command::Exists(args) => inspect::exists(socket, args).await,
        Command::List(args) => inspect::list(socket, args).await,
        Command::Delete(args) => inspect::delete(socket, args).await,
        Command::Status => inspect::status(socket).await,
        Command::Health => inspect::health(socket).await,
        Command::Watch(args) => inspect::watch(socket, args).await,
        Command::Namespace(inspect::NamespaceCommand::Show { namespace }) => {
            inspect::namespace(socket, namespace).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("modelsync: {e}");
            match e {
                CliError::Call(status) if status.code() == Code::NotFound => {
                    ExitCode::from(EXIT_NOT_FOUND)
                }
                CliError::Call(status) if status.code() == Code::DeadlineExceeded => {
                    ExitCode::from(EXIT_NOT_NEWER)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn code_name(code: Code) -> &'static str {
    crate::metrics::code_name(code)
}

/// Megabytes (10^6 bytes) per second, as the legacy benchmark counts them.
fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}
