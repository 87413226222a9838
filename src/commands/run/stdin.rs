//! The process's stdin as `run`'s request body: none from a terminal or an empty source,
//! otherwise read on a thread of its own a few chunks ahead of the guest, so that a guest
//! that never reads stdin does not wait for its end.

use std::io::{IsTerminal, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// How long `run` waits for a pipe on stdin to show whether it carries a body at all.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(100);
/// Bytes of stdin read ahead of the guest: a few chunks, so a pipe keeps flowing.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;
const STDIN_CHUNKS_AHEAD: usize = 4;

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

/// `run`'s request body as an HTTP body: stdin read in chunks as the component reads it.
pub(super) struct ReaderBody {
    reader: Option<Box<dyn AsyncRead + Send + Sync + Unpin>>,
    pub(super) len: Option<u64>,
    buf: BytesMut,
}

impl ReaderBody {
    pub(super) fn new(body: RunBody) -> ReaderBody {
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
