//! `wasmgate run`: one request through a module file, exactly as the gateway would serve it,
//! for module authors to try a function before deploying it.
//!
//! It is the gateway's twin: the module's own `[modules.NAME]` settings and limits from
//! `--config`, and the same request pipeline as `serve` (`guest/pipeline.rs`): the same
//! CGI or wasi:http exchange by the file's header, the same body and output limits, the
//! same streaming. Only the pool is missing: `run` runs one guest. The process's stdin is the request body, read only
//! as the guest reads it, so a guest that never reads stdin does not wait for its end; the
//! response body goes to stdout as the guest writes it ([`RunResponse::write_body`]). The
//! exit status says how the guest ended ([`RunError::exit_code`]): the guest's own code
//! for a `proc_exit`, and codes from 126 up for what the gateway would have answered with
//! an error.

use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::catalogue::ServedModule;
use crate::catalogue::failure::LoadError;
use crate::catalogue::file::{ReadLimits, read_module_file};
use crate::config::{Config, ConfigError};
use crate::guest::bounds::GuestError;
use crate::guest::conn::ConnInfo;
use crate::guest::exchange::Failure;
use crate::guest::module::GuestModule;
use crate::guest::pipeline::{Gate, respond};
use crate::guest::reply_body::ReplyBody;
use crate::guest::streamed::Count;
use crate::runtime::{AllocatorChoice, GuestRuntime, RuntimeError};

/// The addresses a one-shot run pretends the request came from and went to.
const RUN_REMOTE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const RUN_LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Exit statuses of `wasmgate run` beside the guest's own (DESIGN.md).
const EXIT_CANNOT_RUN: u8 = 126;
const EXIT_TRAP: u8 = 134;
const EXIT_LIMIT: u8 = 137;

/// How long `run` waits for a pipe on stdin to show whether it carries a body at all.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(100);
/// Bytes of stdin read ahead of the guest: a few chunks, so a pipe keeps flowing.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;
const STDIN_CHUNKS_AHEAD: usize = 4;

/// The request to simulate.
pub struct RunRequest {
    pub method: String,
    /// The path after `/NAME` (the guest's `PATH_INFO`).
    pub path: String,
    pub query: String,
    /// Extra environment variables, on top of the module's own `env`.
    pub env: Vec<(String, String)>,
    pub body: RunBody,
}

/// Where the request body comes from.
pub enum RunBody {
    /// No body.
    Empty,
    /// A body read as the guest reads it; `len` is its length when it is known ahead
    /// (a file), which the guest sees as `CONTENT_LENGTH`.
    Reader {
        reader: Box<dyn AsyncRead + Send + Sync + Unpin>,
        len: Option<u64>,
    },
}

impl RunBody {
    /// The process's stdin as the request body: none from a terminal, `/dev/null`, an empty
    /// file or a pipe that ends at once; otherwise a body read on a thread of its own, a
    /// few chunks ahead of the guest, so that a guest that never reads stdin does not wait
    /// for its end. A file's length is known; a pipe's is not.
    pub fn from_stdin() -> std::io::Result<RunBody> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Ok(RunBody::Empty);
        }
        let meta = std::fs::File::from(std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned()?)
            .metadata()?;
        if std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()) {
            return Ok(RunBody::Empty);
        }
        let len = meta.is_file().then_some(meta.len());
        let mut chunks = read_ahead(stdin);
        let first = chunks.blocking_recv_timeout(FIRST_BYTES_WAIT);
        let reader = match first {
            First::Ended => return Ok(RunBody::Empty),
            First::Chunk(chunk) => ChunkReader::new(chunk, chunks.0),
            First::NotYet => ChunkReader::new(Ok(Bytes::new()), chunks.0),
        };
        Ok(RunBody::Reader {
            reader: Box::new(reader),
            len,
        })
    }
}

/// Reads `stdin` on a thread of its own into a bounded channel, until it ends.
fn read_ahead(mut stdin: std::io::Stdin) -> Chunks {
    let (tx, rx) = mpsc::channel(STDIN_CHUNKS_AHEAD);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; STDIN_CHUNK_BYTES];
        loop {
            let chunk = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                break;
            }
        }
    });
    Chunks(rx)
}

/// The chunks of stdin, as the reading thread sends them.
struct Chunks(mpsc::Receiver<std::io::Result<Bytes>>);

/// What stdin showed within [`FIRST_BYTES_WAIT`].
enum First {
    Chunk(std::io::Result<Bytes>),
    Ended,
    NotYet,
}

impl Chunks {
    fn blocking_recv_timeout(&mut self, wait: Duration) -> First {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.0.try_recv() {
                Ok(chunk) => return First::Chunk(chunk),
                Err(mpsc::error::TryRecvError::Disconnected) => return First::Ended,
                Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() >= deadline => {
                    return First::NotYet;
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// An async reader over the chunks the reading thread sends.
struct ChunkReader {
    current: Bytes,
    rest: mpsc::Receiver<std::io::Result<Bytes>>,
    failed: Option<std::io::Error>,
}

impl ChunkReader {
    fn new(first: std::io::Result<Bytes>, rest: mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        let (current, failed) = match first {
            Ok(bytes) => (bytes, None),
            Err(e) => (Bytes::new(), Some(e)),
        };
        ChunkReader {
            current,
            rest,
            failed,
        }
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.current.is_empty() {
            if let Some(e) = self.failed.take() {
                return Poll::Ready(Err(e));
            }
            match self.rest.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.current = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.current.len().min(buf.remaining());
        buf.put_slice(&self.current[..n]);
        self.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Why a one-shot run produced no response.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("module '{module}': {error}")]
    Load { module: String, error: LoadError },
    #[error("module '{module}': {reason}")]
    Request { module: String, reason: String },
    #[error(transparent)]
    Failed(#[from] Failure),
    #[error("cannot write the response: {0}")]
    Write(std::io::Error),
}

/// What a run answered: the head, and the body still to come.
pub struct RunResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: ReplyBody,
}

impl RunResponse {
    /// Writes the body to `out` as the guest writes it, flushing each piece. A guest that
    /// fails once its head is out ends the body early, and that is the run's error.
    pub async fn write_body(self, out: &mut impl Write) -> Result<(), RunError> {
        let mut body = self.body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|cut| RunError::Failed(Failure::Guest(cut.0)))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .and_then(|()| out.flush())
                    .map_err(RunError::Write)?;
            }
        }
        Ok(())
    }
}

impl RunError {
    /// The process's exit status: the guest's own for a non-zero `proc_exit`, 137 for a
    /// limit, 134 for a trap or output that is no response, 126 for everything that kept
    /// the guest from running.
    pub fn exit_code(&self) -> u8 {
        let error = match self {
            RunError::Failed(Failure::Guest(error)) => error,
            RunError::Failed(Failure::Output { .. }) => return EXIT_TRAP,
            _ => return EXIT_CANNOT_RUN,
        };
        match error {
            GuestError::Exit { code, .. } => u8::try_from(*code).unwrap_or(EXIT_TRAP),
            GuestError::Trap { .. }
            | GuestError::NoResponse { .. }
            | GuestError::ErrorResponse { .. } => EXIT_TRAP,
            GuestError::FuelExhausted { .. }
            | GuestError::MemoryExceeded { .. }
            | GuestError::HostLimit { .. }
            | GuestError::OutputTooLarge { .. }
            | GuestError::Timeout { .. } => EXIT_LIMIT,
            GuestError::Instantiate { .. }
            | GuestError::BodyTooLarge { .. }
            | GuestError::BodyIncomplete { .. }
            | GuestError::ClientGone { .. } => EXIT_CANNOT_RUN,
        }
    }
}

/// Loads `file` and runs it once with `request`; returns the response it makes.
pub async fn run_once(
    file: &Path,
    mut config: Config,
    mut request: RunRequest,
) -> Result<RunResponse, RunError> {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    config.add_module_env(&name, std::mem::take(&mut request.env))?;
    let load_error = |error| RunError::Load {
        module: name.clone(),
        error,
    };
    let runtime = GuestRuntime::new(&config, AllocatorChoice::OnDemand)?;
    let limits = ReadLimits {
        within: None,
        max_bytes: config.max_module_bytes,
    };
    let bytes = read_module_file(file, limits).map_err(|e| load_error(e.into()))?;
    let module = ServedModule::load(&runtime, &name, &bytes, &config)
        .map_err(|f| load_error(f.error))?
        .guest;
    let request = http_request(&module, request)?;
    let conn = ConnInfo {
        remote: RUN_REMOTE,
        local: RUN_LOCAL,
    };
    let count = Count::new(module.shared.metrics.clone(), Instant::now());
    let response = respond(module, request, conn, &Gate::unbounded(), count)
        .await
        .map_err(|(failure, _)| failure)?;
    let (head, body) = response.into_parts();
    Ok(RunResponse {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// The request `run` hands the pipeline: `/NAME/PATH?QUERY` to the gateway's address,
/// with stdin as its body.
fn http_request(
    module: &GuestModule,
    request: RunRequest,
) -> Result<http::Request<ReaderBody>, RunError> {
    let query = match request.query.as_str() {
        "" => String::new(),
        q => format!("?{q}"),
    };
    let uri = format!("/{}{}{query}", module.name, request.path);
    let body = ReaderBody::new(request.body);
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(uri)
        .header(HOST, RUN_LOCAL.to_string());
    if let Some(len) = body.len.filter(|_| !body.is_end_stream()) {
        builder = builder.header(CONTENT_LENGTH, len);
    }
    builder.body(body).map_err(|e| RunError::Request {
        module: module.name.to_string(),
        reason: e.to_string(),
    })
}

/// `run`'s request body as an HTTP body: stdin read in chunks as the component reads it.
struct ReaderBody {
    reader: Option<Box<dyn AsyncRead + Send + Sync + Unpin>>,
    len: Option<u64>,
    buf: BytesMut,
}

impl ReaderBody {
    fn new(body: RunBody) -> ReaderBody {
        let (reader, len) = match body {
            RunBody::Empty => (None, Some(0)),
            RunBody::Reader { reader, len } => (Some(reader), len),
        };
        ReaderBody {
            reader,
            len,
            buf: BytesMut::new(),
        }
    }
}

impl Body for ReaderBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(reader) = this.reader.as_mut() else {
            return Poll::Ready(None);
        };
        this.buf.resize(STDIN_CHUNK_BYTES, 0);
        let mut read = ReadBuf::new(&mut this.buf);
        match Pin::new(reader).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                this.reader = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    this.reader = None;
                    return Poll::Ready(None);
                }
                let chunk = this.buf.split_to(n).freeze();
                this.len = this.len.map(|len| len.saturating_sub(n as u64));
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none()
    }

    /// Exact for a file (its length less what was read), unknown for a pipe.
    fn size_hint(&self) -> SizeHint {
        match (&self.reader, self.len) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(len)) => SizeHint::with_exact(len),
            (Some(_), None) => SizeHint::default(),
        }
    }
}
