//! The `modelsync` binary: flags, logging, configuration, then either the
//! daemon or one client command. The logic lives in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::info;

use modelsync::config::{Config, LogFormat, ServeArgs, DEFAULT_SOCKET};
use modelsync::{cli, shutdown, socket};

/// glibc's allocator maps and unmaps every multi-megabyte chunk buffer
/// afresh, so each chunk paid for page faults and zeroing; mimalloc keeps
/// such memory for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Start-up failed because of the configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "modelsync",
    version,
    about = "Moves models between training jobs and a shared Redis"
)]
struct Cli {
    /// The daemon's Unix socket [default: /tmp/modelsync.sock]
    #[arg(long, global = true, env = "MODELSYNC_SOCKET")]
    socket: Option<PathBuf>,

    /// Log lines as human-readable text or as JSON objects [default: text]
    #[arg(long, global = true, env = "MODELSYNC_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon
    Serve(ServeArgs),
    /// Check a configuration without starting the daemon
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(flatten)]
    Client(cli::Command),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (with the flags and environment that
    /// `serve` would see) and print the effective configuration; secrets
    /// show only as "set"
    Check {
        /// The YAML configuration file
        file: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    match cli.command {
        // The daemon starts logging once its configuration, which may name
        // the log format, is loaded.
        Command::Serve(args) => runtime.block_on(serve(cli.socket, cli.log_format, args)),
        Command::Config(ConfigCommand::Check { file, mut serve }) => {
            serve.config = Some(file);
            check_config(cli.socket, &serve)
        }
        Command::Client(command) => {
            init_tracing(cli.log_format.unwrap_or_default(), "warn");
            let socket = cli.socket.unwrap_or_else(|| DEFAULT_SOCKET.into());
            runtime.block_on(cli::run(&socket, command))
        }
    }
}

async fn serve(
    socket: Option<PathBuf>,
    log_format: Option<LogFormat>,
    args: ServeArgs,
) -> ExitCode {
    let config = match Config::load(&args, socket) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("modelsync: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(log_format.unwrap_or(config.log_format), "info");
    let (listener, socket_file) = match socket::bind(&config.socket, config.socket_mode) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("modelsync: {e}");
            return ExitCode::FAILURE;
        }
    };

    if let Some(addr) = config.metrics_addr {
        if let Err(e) = modelsync::metrics::install(addr) {
            eprintln!("modelsync: {e}");
            return ExitCode::FAILURE;
        }
        info!(%addr, "serving metrics at /metrics");
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %config.identity.address,
        socket = %socket_file.path().display(),
        redis = %config.redis.endpoint(),
        codec = %config.storage.codec,
        chunk_size = config.storage.chunk_size,
        namespaces = ?config.storage.namespaces.keys().collect::<Vec<_>>(),
        "listening"
    );
    let result = modelsync::run(listener, config, shutdown::signal_received()).await;
    drop(socket_file);
    match result {
        Ok(()) => {
            info!("stopped; socket removed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("modelsync: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(socket: Option<PathBuf>, args: &ServeArgs) -> ExitCode {
    match Config::load(args, socket) {
        Ok(config) => {
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("modelsync: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Logs go to standard error; RUST_LOG overrides the default level, which
/// keeps dependencies at warnings.
fn init_tracing(format: LogFormat, level: &str) {
    let default = format!("warn,modelsync={level}");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
