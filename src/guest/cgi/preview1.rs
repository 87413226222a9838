//! The WASI preview1 functions a CGI-style guest calls on every request — arguments,
//! environment, stdin, stdout, stderr, clocks, random bytes and exit — written straight
//! against the request's own buffers.
//!
//! Why not wasmtime-wasi for everything: its preview1 layer is an adapter over preview2
//! resources. Each request would build a `WasiCtx` (a resource table, boxed streams, a random
//! generator, a copy of every environment variable) and tear it down again, and each
//! `fd_write` would go through a stream resource. For a function that reads its environment
//! and prints a page, that costs more than running the guest itself (BENCHMARKS.md).
//!
//! A module whose `wasi_snapshot_preview1` imports are all in [`CGI_IMPORTS`], and which has
//! no volumes, is linked against these functions ([`Preview1::Gateway`]). Any other module
//! (one that opens files, polls, or sets descriptor flags; Go's runtime does) is linked
//! against wasmtime-wasi's complete implementation ([`Preview1::WasmtimeWasi`]) with the
//! same stdin, stdout and stderr behind it. The choice is made once, when the module is
//! loaded, from its import list. The functions here answer as wasmtime-wasi does for a
//! process that has only the three standard descriptors (no preopened directories): same
//! errno values, same traps.
//!
//! Like wasmtime-wasi's `add_to_linker`, [`add_to_linker`] never names the store's type: it
//! takes an accessor from the store's data to the request's [`RequestIo`].
//!
//! Every function returns at once except `fd_read` on a body that is still arriving and
//! `fd_write` to a stdout whose client is slow (or whose head the exchange is deciding
//! on): those wait asynchronously, within the request's deadline, so a guest blocked on
//! its client yields its worker as a spinning guest does at each epoch tick. `fd_write`
//! takes every byte it is given before it returns, waiting for room as it goes, so no
//! guest has to handle a short write.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use rand::RngCore;
use tokio::io::AsyncReadExt;
use wasmtime::{Caller, Extern, Linker, Memory, Module};
use wasmtime_wasi::I32Exit;

use super::stderr::GuestLog;
use super::stdin::{BodyStream, Stdin};
use super::stdout::Stdout;
use super::string_block::StringBlock;
use crate::guest::deadline::DeadlinePassed;

/// The import module of WASI preview1.
const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The preview1 functions served here; a module importing anything else gets wasmtime-wasi.
pub const CGI_IMPORTS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "fd_write",
    "fd_read",
    "fd_close",
    "fd_fdstat_get",
    "fd_seek",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "sched_yield",
    "proc_exit",
];

/// Which implementation of WASI preview1 a CGI module is linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview1 {
    /// The functions in this file: stdio, environment and arguments only.
    Gateway,
    /// wasmtime-wasi's preview1, for modules that need more (files, polling, ...).
    WasmtimeWasi,
}

impl Preview1 {
    /// The implementation `module` needs: [`Preview1::Gateway`] when every WASI function
    /// it imports is served here and it has no volumes to open.
    pub(crate) fn for_module(module: &Module, has_volumes: bool) -> Preview1 {
        let all_served = module
            .imports()
            .filter(|import| import.module() == WASI_MODULE)
            .all(|import| CGI_IMPORTS.contains(&import.name()));
        if all_served && !has_volumes {
            Preview1::Gateway
        } else {
            Preview1::WasmtimeWasi
        }
    }

    /// The `wasi` field of `/modules`: `cgi` for the gateway's own functions.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Preview1::Gateway => "cgi",
            Preview1::WasmtimeWasi => "wasi",
        }
    }
}

/// WASI errno values (the witx `errno` enum) that these functions return.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const NOTDIR: i32 = 54;
    pub const OVERFLOW: i32 = 61;
    pub const SPIPE: i32 = 70;
}

/// `writev`/`readv` take at most this many buffers, as on Linux (`IOV_MAX`); it also bounds
/// the work of one host call, which the epoch deadline cannot interrupt.
const MAX_IOVECS: u32 = 1024;
/// Exit statuses at or above this are refused with a trap, as wasmtime-wasi does.
const MAX_EXIT_STATUS: i32 = 126;
const STDIN: u32 = 0;
const STDERR: u32 = 2;
/// The witx `fdstat` record: filetype (u8) at 0, flags (u16) at 2, rights at 8 and 16.
const FDSTAT_BYTES: usize = 24;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME: i32 = 2;
const CLOCK_THREAD_CPUTIME: i32 = 3;
/// The largest `whence` (`SET`, `CUR`, `END`); others trap as an invalid enum value.
const MAX_WHENCE: i32 = 2;
/// Both clocks report nanoseconds.
const CLOCK_RESOLUTION_NS: u64 = 1;
/// The most `random_get` fills in one call, as wasmtime-wasi (a larger request traps): the
/// call cannot be interrupted by the deadline, so its work must stay bounded.
const MAX_RANDOM_BYTES: usize = 64 << 20;
/// The most one `fd_read` asks of a body that is still arriving.
const STREAM_READ_BYTES: usize = 64 * 1024;

/// Writes a block's count and size in bytes (the `*_sizes_get` functions).
fn write_sizes(block: &StringBlock, memory: &mut [u8], count_ptr: i32, size_ptr: i32) -> Answer {
    let Ok(size) = u32::try_from(block.as_bytes().len()) else {
        return Ok(errno::OVERFLOW);
    };
    // The size first, then the count, in the order wasmtime-wasi writes them.
    write_u32(memory, size_ptr, size)?;
    write_u32(memory, count_ptr, block.len() as u32)?;
    Ok(errno::SUCCESS)
}

/// Copies a block's strings to `buf` and a pointer to each into the array at `list`.
/// The pointers first, then the strings, in the order wasmtime-wasi writes them (it shows
/// when the two overlap).
fn write_strings(block: &StringBlock, memory: &mut [u8], list: i32, buf: i32) -> Answer {
    let bytes = block.as_bytes();
    let mut offset = 0;
    for (i, string) in bytes.split_inclusive(|&b| b == 0).enumerate() {
        write_u32(
            memory,
            element(list, i, 4)?,
            (buf as u32).wrapping_add(offset),
        )?;
        offset += string.len() as u32;
    }
    slice_mut(memory, buf, bytes.len())?.copy_from_slice(bytes);
    Ok(errno::SUCCESS)
}

/// What one request's guest reads and writes through the functions here.
pub(crate) struct RequestIo {
    /// The module's arguments, the same for every request.
    args: Arc<StringBlock>,
    env: StringBlock,
    /// Body bytes the guest has not read yet.
    stdin: Bytes,
    /// The rest of a body that is still arriving, until it ends.
    arriving: Option<BodyStream>,
    /// When the request's deadline passes: a wait for the body ends there.
    deadline: Instant,
    /// Where the guest's monotonic clock starts: its own instance, as in wasmtime-wasi,
    /// so that no guest can time what ran before it in the process.
    started: Instant,
    stdout: Stdout,
    /// Made on the first write: most guests never write to stderr.
    stderr: Option<GuestLog>,
    module: Arc<str>,
    /// Standard descriptors the guest closed (bit `fd`); later use of them is `EBADF`.
    closed: u8,
    /// The instance's exported memory, once it is instantiated ([`RequestIo::attach`]).
    memory: Option<Memory>,
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

    fn stderr(&mut self) -> &GuestLog {
        let RequestIo { stderr, module, .. } = self;
        stderr.get_or_insert_with(|| GuestLog::new(module.clone()))
    }

    fn is_open(&self, fd: u32) -> bool {
        fd <= STDERR && self.closed & (1 << fd) == 0
    }

    /// Waits, within the deadline, for more of a body that is still arriving, when every
    /// byte that arrived so far was read. A failed read ends the body (`EIO`).
    async fn refill(&mut self, wanted: usize) -> wasmtime::Result<Option<i32>> {
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

/// Adds the functions in [`CGI_IMPORTS`] to `linker`; `io` finds the request's I/O in the
/// store's data.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    io: impl IoAccessor<T>,
) -> wasmtime::Result<()> {
    let m = WASI_MODULE;
    linker.func_wrap(
        m,
        "args_sizes_get",
        move |mut c: Caller<'_, T>, n: i32, s: i32| {
            with_io(&mut c, io, |mem, io| write_sizes(&io.args, mem, n, s))?
        },
    )?;
    linker.func_wrap(
        m,
        "args_get",
        move |mut c: Caller<'_, T>, list: i32, buf: i32| {
            with_io(&mut c, io, |mem, io| {
                write_strings(&io.args, mem, list, buf)
            })?
        },
    )?;
    linker.func_wrap(
        m,
        "environ_sizes_get",
        move |mut c: Caller<'_, T>, n: i32, s: i32| {
            with_io(&mut c, io, |mem, io| write_sizes(&io.env, mem, n, s))?
        },
    )?;
    linker.func_wrap(
        m,
        "environ_get",
        move |mut c: Caller<'_, T>, list: i32, buf: i32| {
            with_io(&mut c, io, |mem, io| write_strings(&io.env, mem, list, buf))?
        },
    )?;
    linker.func_wrap_async(
        m,
        "fd_write",
        move |c: Caller<'_, T>, (fd, iovs, len, nwritten): (i32, i32, i32, i32)| {
            Box::new(fd_write(c, io, fd, iovs, len, nwritten))
        },
    )?;
    linker.func_wrap_async(
        m,
        "fd_read",
        move |c: Caller<'_, T>, (fd, iovs, len, nread): (i32, i32, i32, i32)| {
            Box::new(fd_read(c, io, fd, iovs, len, nread))
        },
    )?;
    linker.func_wrap(m, "fd_close", move |mut c: Caller<'_, T>, fd: i32| {
        with_io(&mut c, io, |_, io| {
            if !io.is_open(fd as u32) {
                return errno::BADF;
            }
            io.closed |= 1 << fd;
            errno::SUCCESS
        })
    })?;
    linker.func_wrap(
        m,
        "fd_fdstat_get",
        move |c: Caller<'_, T>, fd: i32, buf: i32| fd_fdstat_get(c, io, fd, buf),
    )?;
    linker.func_wrap(
        m,
        "fd_seek",
        move |mut c: Caller<'_, T>, fd: i32, _offset: i64, whence: i32, _new: i32| {
            // An invalid `whence` traps, as in wasmtime-wasi, before anything else is
            // looked at; the standard descriptors are pipes.
            if !(0..=MAX_WHENCE).contains(&whence) {
                wasmtime::bail!("invalid value for whence: {whence}");
            }
            with_io(&mut c, io, |_, io| match io.is_open(fd as u32) {
                true => errno::SPIPE,
                false => errno::BADF,
            })
        },
    )?;
    // No directory is preopened for these modules.
    linker.func_wrap(m, "fd_prestat_get", |_: Caller<'_, T>, _: i32, _: i32| {
        errno::BADF
    })?;
    // The standard descriptors exist but are not directories, as wasmtime-wasi answers.
    linker.func_wrap(
        m,
        "fd_prestat_dir_name",
        move |mut c: Caller<'_, T>, fd: i32, _: i32, _: i32| {
            with_io(&mut c, io, |_, io| match io.is_open(fd as u32) {
                true => errno::NOTDIR,
                false => errno::BADF,
            })
        },
    )?;
    linker.func_wrap(
        m,
        "clock_time_get",
        move |c: Caller<'_, T>, id: i32, _precision: i64, out: i32| clock_time_get(c, io, id, out),
    )?;
    linker.func_wrap(
        m,
        "clock_res_get",
        move |c: Caller<'_, T>, id: i32, out: i32| clock_res_get(c, io, id, out),
    )?;
    linker.func_wrap(
        m,
        "random_get",
        move |mut c: Caller<'_, T>, buf: i32, len: i32| {
            let len = len as u32 as usize;
            if len > MAX_RANDOM_BYTES {
                wasmtime::bail!("requested len {len} exceeds limit {MAX_RANDOM_BYTES}");
            }
            with_io(&mut c, io, |memory, _| {
                rand::rng().fill_bytes(slice_mut(memory, buf, len)?);
                Ok(errno::SUCCESS)
            })?
        },
    )?;
    linker.func_wrap(m, "sched_yield", |_: Caller<'_, T>| errno::SUCCESS)?;
    linker.func_wrap(m, "proc_exit", |_: Caller<'_, T>, status: i32| {
        proc_exit(status)
    })?;
    Ok(())
}

/// Runs `f` over the guest's memory and the request's I/O; traps without a memory export,
/// as wasmtime-wasi does. The memory is the one the instance was given once instantiated;
/// a module's own start function runs before that, and finds it by name.
fn with_io<T, R>(
    caller: &mut Caller<'_, T>,
    io: impl IoAccessor<T>,
    f: impl FnOnce(&mut [u8], &mut RequestIo) -> R,
) -> wasmtime::Result<R> {
    let memory = match io(caller.data_mut()).memory {
        Some(memory) => memory,
        None => match caller.get_export("memory") {
            Some(Extern::Memory(memory)) => memory,
            _ => wasmtime::bail!("the module exports no memory for WASI to use"),
        },
    };
    let (bytes, data) = memory.data_and_store_mut(caller);
    Ok(f(bytes, io(data)))
}

/// `fd_write(fd, iovs, iovs_len, nwritten)`: stdout into the bounded buffer (a write past
/// its cap traps), stderr into the log.
/// How far an `fd_write` to stdout got.
enum Written {
    /// It is over: the errno to return.
    Done(i32),
    /// The first `n` bytes of the call are taken; the rest waits for room.
    Waiting(usize),
}

async fn fd_write<T: Send>(
    mut caller: Caller<'_, T>,
    io: impl IoAccessor<T>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> wasmtime::Result<i32> {
    let written = with_io(&mut caller, io, |memory, io| {
        let Some(count) = iovec_count(iovs_len) else {
            return Ok(Written::Done(errno::INVAL));
        };
        for i in 0..count {
            iovec(memory, iovs, i)?;
        }
        let fd = fd as u32;
        if !io.is_open(fd) || fd == STDIN {
            return Ok(Written::Done(errno::BADF));
        }
        let mut total = 0u32;
        for i in 0..count {
            let data = buffer(memory, iovec(memory, iovs, i)?)?;
            let Some(sum) = u32::try_from(data.len())
                .ok()
                .and_then(|n| total.checked_add(n))
            else {
                return Ok(Written::Done(errno::INVAL));
            };
            total = sum;
        }
        if fd == STDERR {
            for i in 0..count {
                io.stderr().append(buffer(memory, iovec(memory, iovs, i)?)?);
            }
            write_u32(memory, nwritten, total)?;
            return Ok(Written::Done(errno::SUCCESS));
        }
        write_stdout(memory, io, (iovs, count), 0, nwritten)
    })??;
    let mut taken = match written {
        Written::Done(errno) => return Ok(errno),
        Written::Waiting(taken) => taken,
    };
    loop {
        let (stdout, deadline) = {
            let io = io(caller.data_mut());
            (io.stdout.clone(), io.deadline)
        };
        match tokio::time::timeout_at(deadline.into(), stdout.writable(0)).await {
            Err(_elapsed) => return Err(DeadlinePassed.into()),
            Ok(Err(refused)) => return Err(refused.into()),
            Ok(Ok(())) => {}
        }
        let count = iovs_len as u32 as usize;
        let written = with_io(&mut caller, io, |memory, io| {
            write_stdout(memory, io, (iovs, count), taken, nwritten)
        })??;
        match written {
            Written::Done(errno) => return Ok(errno),
            Written::Waiting(now) => taken = now,
        }
    }
}

/// Hands stdout the bytes of the iovecs `(iovs, count)` from byte `taken` of the call
/// on, as far as there is room. Once all are taken, the call's total (which the caller
/// has checked fits in a `u32`) is written to `nwritten`.
fn write_stdout(
    memory: &mut [u8],
    io: &mut RequestIo,
    (iovs, count): (i32, usize),
    taken: usize,
    nwritten: i32,
) -> wasmtime::Result<Written> {
    let mut offset = 0;
    for i in 0..count {
        let data = buffer(memory, iovec(memory, iovs, i)?)?;
        let end = offset + data.len();
        if end > taken {
            let rest = &data[taken.saturating_sub(offset)..];
            let n = io.stdout.write_now(rest)?;
            if n < rest.len() {
                return Ok(Written::Waiting(taken.max(offset) + n));
            }
        }
        offset = end;
    }
    write_u32(memory, nwritten, offset as u32)?;
    Ok(Written::Done(errno::SUCCESS))
}

async fn fd_read<T: Send>(
    mut caller: Caller<'_, T>,
    io: impl IoAccessor<T>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> wasmtime::Result<i32> {
    let Some(count) = iovec_count(iovs_len) else {
        return Ok(errno::INVAL);
    };
    // Every iovec is read before the descriptor is looked at and before a byte is copied,
    // as wasmtime-wasi does: a buffer that overlaps the iovec array cannot change what the
    // rest of the call reads.
    let buffers = with_io(&mut caller, io, |memory, _| {
        (0..count)
            .map(|i| iovec(memory, iovs, i))
            .collect::<wasmtime::Result<Vec<_>>>()
    })??;
    if fd as u32 != STDIN || !io(caller.data_mut()).is_open(STDIN) {
        return Ok(errno::BADF);
    }
    if buffers.iter().all(|&(_, len)| len == 0) {
        // Nowhere to read to: nothing is read, and `nread` is left alone, as in
        // wasmtime-wasi.
        return Ok(errno::SUCCESS);
    }
    if let Some(errno) = io(caller.data_mut()).refill(STREAM_READ_BYTES).await? {
        return Ok(errno);
    }
    with_io(&mut caller, io, |memory, io| {
        let mut total = 0u32;
        for (ptr, len) in buffers {
            if io.stdin.is_empty() {
                break;
            }
            // Only the bytes read into a buffer are checked, as in wasmtime-wasi.
            let n = len.min(io.stdin.len());
            if n == 0 {
                continue;
            }
            slice_mut(memory, ptr, n)?.copy_from_slice(&io.stdin[..n]);
            io.stdin.advance(n);
            total += n as u32;
        }
        write_u32(memory, nread, total)?;
        Ok(errno::SUCCESS)
    })?
}

/// The iovec count, or `None` past [`MAX_IOVECS`] (`EINVAL`).
fn iovec_count(iovs_len: i32) -> Option<usize> {
    let count = iovs_len as u32;
    (count <= MAX_IOVECS).then_some(count as usize)
}

/// `fd_fdstat_get(fd, buf)`: the standard descriptors are not terminals, as in wasmtime-wasi.
fn fd_fdstat_get<T>(
    mut caller: Caller<'_, T>,
    io: impl IoAccessor<T>,
    fd: i32,
    buf: i32,
) -> wasmtime::Result<i32> {
    with_io(&mut caller, io, |memory, io| {
        let fd = fd as u32;
        if !io.is_open(fd) {
            return Ok(errno::BADF);
        }
        let rights = if fd == STDIN {
            RIGHT_FD_READ
        } else {
            RIGHT_FD_WRITE
        };
        // Field by field, as wasmtime-wasi writes it: the padding bytes keep what the guest
        // had there. Filetype 0 (unknown) and flags 0.
        aligned(buf, 8)?;
        let stat = slice_mut(memory, buf, FDSTAT_BYTES)?;
        stat[0] = 0;
        stat[2..4].copy_from_slice(&0u16.to_le_bytes());
        stat[8..16].copy_from_slice(&rights.to_le_bytes());
        stat[16..24].copy_from_slice(&rights.to_le_bytes());
        Ok(errno::SUCCESS)
    })?
}

fn clock_time_get<T>(
    mut caller: Caller<'_, T>,
    io: impl IoAccessor<T>,
    id: i32,
    out: i32,
) -> wasmtime::Result<i32> {
    let id = valid_clock(id)?;
    with_io(&mut caller, io, |memory, io| {
        let now = match id {
            CLOCK_REALTIME => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            CLOCK_MONOTONIC => io.started.elapsed().as_nanos() as u64,
            _ => return Ok(errno::BADF),
        };
        write_u64(memory, out, now)?;
        Ok(errno::SUCCESS)
    })?
}

/// A clock id of the witx enum; any other value traps, as in wasmtime-wasi.
fn valid_clock(id: i32) -> wasmtime::Result<i32> {
    match id {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => Ok(id),
        _ => wasmtime::bail!("invalid value for clockid: {id}"),
    }
}

fn clock_res_get<T>(
    mut caller: Caller<'_, T>,
    io: impl IoAccessor<T>,
    id: i32,
    out: i32,
) -> wasmtime::Result<i32> {
    match valid_clock(id)? {
        CLOCK_REALTIME | CLOCK_MONOTONIC => {
            with_io(&mut caller, io, |memory, _| {
                write_u64(memory, out, CLOCK_RESOLUTION_NS)
            })??;
            Ok(errno::SUCCESS)
        }
        _ => Ok(errno::BADF),
    }
}

/// `proc_exit(status)`: ends the guest; 0 is a clean finish.
fn proc_exit(status: i32) -> wasmtime::Result<()> {
    if !(0..MAX_EXIT_STATUS).contains(&status) {
        wasmtime::bail!("exit with invalid exit status outside of [0..126)");
    }
    Err(I32Exit(status).into())
}

/// An errno for the guest, or a trap (a pointer outside the guest's memory).
type Answer = wasmtime::Result<i32>;

/// The `i`th `(buf, len)` pair of the iovec array at `iovs`.
fn iovec(memory: &[u8], iovs: i32, i: usize) -> wasmtime::Result<(i32, usize)> {
    aligned(iovs, 4)?;
    let pair = slice(memory, element(iovs, i, 8)?, 8)?;
    let word = |at: usize| u32::from_le_bytes([pair[at], pair[at + 1], pair[at + 2], pair[at + 3]]);
    Ok((word(0) as i32, word(4) as usize))
}

/// The guest address of element `i` (of `size` bytes) of the array at `base`.
fn element(base: i32, i: usize, size: usize) -> wasmtime::Result<i32> {
    i.checked_mul(size)
        .and_then(|offset| u32::try_from(offset).ok())
        .and_then(|offset| (base as u32).checked_add(offset))
        .map(|at| at as i32)
        .ok_or_else(|| out_of_bounds(base, i.saturating_mul(size)))
}

/// The trap for a pointer outside the guest's memory (wasmtime-wasi traps the same way).
fn out_of_bounds(ptr: i32, len: usize) -> wasmtime::Error {
    wasmtime::format_err!("pointer out of bounds: {len} bytes at {}", ptr as u32)
}

fn slice(memory: &[u8], ptr: i32, len: usize) -> wasmtime::Result<&[u8]> {
    let start = ptr as u32 as usize;
    start
        .checked_add(len)
        .and_then(|end| memory.get(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

/// The bytes an iovec names; an empty one is not looked for, as in wasmtime-wasi.
fn buffer(memory: &[u8], (ptr, len): (i32, usize)) -> wasmtime::Result<&[u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    slice(memory, ptr, len)
}

fn slice_mut(memory: &mut [u8], ptr: i32, len: usize) -> wasmtime::Result<&mut [u8]> {
    if len == 0 {
        // Zero bytes at any address: nothing is read or written there.
        return Ok(&mut []);
    }
    let start = ptr as u32 as usize;
    start
        .checked_add(len)
        .and_then(|end| memory.get_mut(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

/// Traps on a pointer that is not a multiple of `align`, as wasmtime-wasi does for every
/// value and record it reads or writes.
fn aligned(ptr: i32, align: u32) -> wasmtime::Result<()> {
    if !(ptr as u32).is_multiple_of(align) {
        wasmtime::bail!("pointer not aligned to {align}: {:#x}", ptr as u32);
    }
    Ok(())
}

fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> wasmtime::Result<()> {
    aligned(ptr, 4)?;
    slice_mut(memory, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn write_u64(memory: &mut [u8], ptr: i32, value: u64) -> wasmtime::Result<()> {
    aligned(ptr, 8)?;
    slice_mut(memory, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}
