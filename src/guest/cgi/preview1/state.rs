//! What one request's guest reads and writes through the gateway's preview1 functions:
//! its arguments and environment, its stdin, its stdout, its log, its deadline.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use wasmtime::Memory;

use super::abi::{STDERR, STREAM_READ_BYTES, errno};
use crate::guest::cgi::stderr::GuestLog;
use crate::guest::cgi::stdin::{BodyStream, Stdin};
use crate::guest::cgi::stdout::Stdout;
use crate::guest::cgi::string_block::StringBlock;
use crate::guest::deadline::DeadlinePassed;

/// What one request's guest reads and writes through the functions here.
pub(crate) struct RequestIo {
    /// The module's arguments, the same for every request.
    pub(super) args: Arc<StringBlock>,
    pub(super) env: StringBlock,
    /// Body bytes the guest has not read yet.
    pub(super) stdin: Bytes,
    /// The rest of a body that is still arriving, until it ends.
    pub(super) arriving: Option<BodyStream>,
    /// When the request's deadline passes: a wait for the body ends there.
    pub(super) deadline: Instant,
    /// Where the guest's monotonic clock starts: its own instance, as in wasmtime-wasi,
    /// so that no guest can time what ran before it in the process.
    pub(super) started: Instant,
    pub(super) stdout: Stdout,
    /// Made on the first write: most guests never write to stderr.
    pub(super) stderr: Option<GuestLog>,
    pub(super) module: Arc<str>,
    /// Standard descriptors the guest closed (bit `fd`); later use of them is `EBADF`.
    pub(super) closed: u8,
    /// The instance's exported memory, once it is instantiated ([`RequestIo::attach`]).
    pub(super) memory: Option<Memory>,
}

/// What a [`RequestIo`] is made of.
pub(crate) struct RequestIoParts {
    pub args: Arc<StringBlock>,
    pub env: StringBlock,
    pub stdin: Stdin,
    pub deadline: Instant,
    /// When the guest's run started: its monotonic clock's zero.
    pub started: Instant,
    pub stdout: Stdout,
    pub module: Arc<str>,
}

impl RequestIo {
    pub(crate) fn new(parts: RequestIoParts) -> RequestIo {
        let RequestIoParts {
            args,
            env,
            stdin,
            deadline,
            started,
            stdout,
            module,
        } = parts;
        let (stdin, arriving) = match stdin {
            Stdin::Buffered(bytes) => (bytes, None),
            Stdin::Streamed(stream) => (Bytes::new(), Some(stream)),
        };
        RequestIo {
            args,
            env,
            stdin,
            arriving,
            deadline,
            started,
            stdout,
            stderr: None,
            module,
            closed: 0,
            memory: None,
        }
    }

    /// Hands the functions here the memory of the instance they serve (`None` when it
    /// exports none, and every call that needs one traps).
    pub(crate) fn attach(&mut self, memory: Option<Memory>) {
        self.memory = memory;
    }

    pub(super) fn stderr(&mut self) -> &GuestLog {
        let RequestIo { stderr, module, .. } = self;
        stderr.get_or_insert_with(|| GuestLog::new(module.clone()))
    }

    pub(super) fn is_open(&self, fd: u32) -> bool {
        fd <= STDERR && self.closed & (1 << fd) == 0
    }

    /// Waits, within the deadline, for more of a body that is still arriving, when every
    /// byte that arrived so far was read. A failed read ends the body (`EIO`).
    pub(super) async fn refill(&mut self, wanted: usize) -> wasmtime::Result<Option<i32>> {
        if !self.stdin.is_empty() {
            return Ok(None);
        }
        let Some(stream) = self.arriving.as_mut() else {
            return Ok(None);
        };
        let mut chunk = BytesMut::with_capacity(wanted.clamp(1, STREAM_READ_BYTES));
        let read = tokio::time::timeout_at(self.deadline.into(), stream.read_buf(&mut chunk));
        match read.await {
            Err(_elapsed) => Err(DeadlinePassed.into()),
            Ok(Ok(0)) => {
                self.arriving = None;
                Ok(None)
            }
            Ok(Ok(_)) => {
                self.stdin = chunk.freeze();
                Ok(None)
            }
            Ok(Err(_)) => {
                self.arriving = None;
                Ok(Some(errno::IO))
            }
        }
    }
}

/// How the functions here reach the request's I/O in a store's data: a closure, so that
/// each call site is monomorphised and the access inlined.
pub(crate) trait IoAccessor<T>:
    Fn(&mut T) -> &mut RequestIo + Copy + Send + Sync + 'static
{
}

impl<T, F: Fn(&mut T) -> &mut RequestIo + Copy + Send + Sync + 'static> IoAccessor<T> for F {}
