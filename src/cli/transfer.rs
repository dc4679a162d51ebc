//! `modelsync push` and `modelsync pull`: files or standard streams moved
//! through the daemon, with a progress bar on a terminal and a one-line
//! summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{connect, megabytes_per_second, CliError};
use crate::proto::v1 as api;

/// Data messages the CLI sends: the daemon's default limit.
const MESSAGE_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The model's namespace
    #[arg(long, short)]
    pub namespace: String,
    /// The model's key within the namespace
    #[arg(long, short)]
    pub key: String,
    /// The file to push, or `-` for standard input
    pub file: PathBuf,
    /// Metadata stored with the version, as NAME=VALUE; repeatable
    #[arg(long = "meta", value_parser = parse_meta)]
    pub metadata: Vec<(String, String)>,
    /// Seconds until this version expires (the daemon's TTL when unset)
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Codec for this version: auto[:LEVEL], none, zstd[:LEVEL], zlib[:LEVEL] or shuffle-zstd[:LEVEL] (the daemon's when unset)
    #[arg(long)]
    pub codec: Option<String>,
    /// Fail with ABORTED unless the model is at this version now (0: absent)
    #[arg(long)]
    pub expect_version: Option<u64>,
    /// Bytes per element, for shuffle-zstd and auto [default: the dtype in --meta, else auto guesses and shuffle-zstd takes 4]
    #[arg(long)]
    pub element_width: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The model's namespace
    #[arg(long, short)]
    pub namespace: String,
    /// The model's key within the namespace
    #[arg(long, short)]
    pub key: String,
    /// Where to write the model, or `-` for standard output; a file appears
    /// only once the pull has succeeded whole
    #[arg(long, short)]
    pub output: PathBuf,
    #[command(flatten)]
    pub wait: super::inspect::WaitArgs,
}

pub async fn push(socket: &Path, args: PushArgs) -> Result<ExitCode, CliError> {
    let (input, size): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) =
        if args.file.as_os_str() == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let file = tokio::fs::File::open(&args.file).await.map_err(|e| {
                CliError::Local(format!("cannot open {}: {e}", args.file.display()))
            })?;
            let size = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), size)
        };

    let header = api::PushHeader {
        namespace: args.namespace,
        key: args.key.clone(),
        metadata: args
            .metadata
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(v)))
            .collect::<HashMap<_, _>>(),
        ttl_seconds: args.ttl,
        raw_size: size,
        codec: args.codec.unwrap_or_default(),
        expected_version: args.expect_version,
        element_width: args.element_width,
    };
    let progress = progress_bar(size);
    let started = Instant::now();

    let mut client = connect(socket).await?;
    let (tx, rx) = mpsc::channel(4);
    let reader = tokio::spawn(send_file(input, header, tx, progress.clone()));
    let response = client.push(ReceiverStream::new(rx)).await;
    let read = reader.await.map_err(|e| CliError::Local(e.to_string()))?;
    progress.finish_and_clear();
    // A read error explains a failed call better than the call's status.
    read?;
    let r = response?.into_inner();

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "pushed {} version {}: {} bytes, stored {} ({:.3} of raw{}) in {} chunks, {:.2}s, {:.1} MB/s",
        args.key,
        r.version,
        r.raw_size,
        r.stored_size,
        r.stored_size as f64 / (r.raw_size.max(1)) as f64,
        // A daemon older than the field leaves it empty.
        if r.codec.is_empty() { String::new() } else { format!(", {}", r.codec) },
        r.chunk_count,
        seconds,
        megabytes_per_second(r.raw_size, seconds)
    );
    Ok(ExitCode::SUCCESS)
}

/// Sends the header, then the input in message-sized pieces.
async fn send_file(
    mut input: Box<dyn AsyncRead + Unpin + Send>,
    header: api::PushHeader,
    tx: mpsc::Sender<api::PushRequest>,
    progress: ProgressBar,
) -> Result<(), CliError> {
    let first = api::PushRequest {
        message: Some(api::push_request::Message::Header(header)),
    };
    if tx.send(first).await.is_err() {
        return Ok(());
    }
    loop {
        let mut buffer = BytesMut::with_capacity(MESSAGE_BYTES);
        let read = fill(&mut input, &mut buffer).await;
        if let Err(e) = read {
            // Ending the stream would commit what was sent so far: send
            // the abort message instead, so that nothing is stored.
            let _ = tx.send(api::PushRequest { message: None }).await;
            return Err(CliError::Local(format!("cannot read the input: {e}")));
        }
        if buffer.is_empty() {
            return Ok(());
        }
        progress.inc(buffer.len() as u64);
        let message = api::PushRequest {
            message: Some(api::push_request::Message::Data(buffer.freeze())),
        };
        // The call has ended early; its status says why.
        if tx.send(message).await.is_err() {
            return Ok(());
        }
    }
}

/// Reads until the buffer holds a message's worth or the input ends.
async fn fill(
    input: &mut (dyn AsyncRead + Unpin + Send),
    buffer: &mut BytesMut,
) -> std::io::Result<()> {
    while buffer.len() < MESSAGE_BYTES {
        if input.read_buf(buffer).await? == 0 {
            break;
        }
    }
    Ok(())
}

pub async fn pull(socket: &Path, args: PullArgs) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let mut client = connect(socket).await?;
    let request = api::PullRequest {
        namespace: args.namespace,
        key: args.key.clone(),
        newer_than: args.wait.newer_than,
        wait_ms: args.wait.wait_ms()?,
    };
    let mut stream = client.pull(request).await?.into_inner();
    let header = match stream.message().await?.and_then(|m| m.message) {
        Some(api::pull_response::Message::Header(header)) => header,
        _ => {
            return Err(CliError::Local(
                "the daemon did not start the pull with a header".into(),
            ))
        }
    };

    let progress = progress_bar(Some(header.raw_size));
    let mut output = Output::create(&args.output).await?;
    let mut received = 0u64;
    while let Some(message) = stream.message().await? {
        if let Some(api::pull_response::Message::Data(data)) = message.message {
            output.write(&data).await?;
            received += data.len() as u64;
            progress.inc(data.len() as u64);
        }
    }
    progress.finish_and_clear();
    if received != header.raw_size {
        return Err(CliError::Local(format!(
            "the pull ended after {received} of {} bytes",
            header.raw_size
        )));
    }
    output.commit().await?;

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "pulled {} version {} by {}: {} bytes, stored {} ({}), {:.2}s, {:.1} MB/s",
        header.key,
        header.version,
        header.updater,
        header.raw_size,
        header.stored_size,
        header.codec,
        seconds,
        megabytes_per_second(header.raw_size, seconds)
    );
    Ok(ExitCode::SUCCESS)
}

/// Standard output, or a temporary file renamed over the target only once
/// every byte has arrived.
struct Output {
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    rename: Option<(PathBuf, PathBuf)>,
}

impl Output {
    async fn create(target: &Path) -> Result<Self, CliError> {
        if target.as_os_str() == "-" {
            return Ok(Output {
                writer: Box::new(tokio::io::stdout()),
                rename: None,
            });
        }
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let partial = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| CliError::Local(format!("cannot create {}: {e}", target.display())))?;
        Ok(Output {
            writer: Box::new(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            rename: Some((partial, target.to_owned())),
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), CliError> {
        self.writer
            .write_all(data)
            .await
            .map_err(|e| CliError::Local(format!("cannot write the output: {e}")))
    }

    async fn commit(mut self) -> Result<(), CliError> {
        self.writer
            .flush()
            .await
            .map_err(|e| CliError::Local(format!("cannot write the output: {e}")))?;
        if let Some((partial, target)) = self.rename.take() {
            tokio::fs::rename(&partial, &target).await.map_err(|e| {
                CliError::Local(format!(
                    "cannot move the output to {}: {e}",
                    target.display()
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((partial, _)) = &self.rename {
            let _ = std::fs::remove_file(partial);
        }
    }
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}
