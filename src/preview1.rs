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
//! no volumes, is linked against these functions ([`GuestAbi::Cgi`]). Any other module (one
//! that opens files, polls, or sets descriptor flags; Go's runtime does) is linked against
//! wasmtime-wasi's complete implementation ([`GuestAbi::Wasi`]) with the same stdin, stdout
//! and stderr behind it. The choice is made once, when the module is loaded, from its import
//! list. The functions here answer as wasmtime-wasi does for a process that has only the
//! three standard descriptors (no preopened directories): same errno values, same traps.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use rand::RngCore;
use wasmtime::{Caller, Extern, Linker, Module};
use wasmtime_wasi::I32Exit;

use crate::host::Host;
use crate::stdio::{BoundedOutput, GuestLog, GuestSink};

/// The import module of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

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

/// Which implementation of WASI a module is linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestAbi {
    /// The functions in this file: stdio, environment and arguments only.
    Cgi,
    /// wasmtime-wasi's preview1, for modules that need more (files, polling, ...).
    Wasi,
}

impl GuestAbi {
    /// The implementation `module` needs: [`GuestAbi::Cgi`] when every WASI function it
    /// imports is served here and it has no volumes to open.
    pub fn for_module(module: &Module, has_volumes: bool) -> GuestAbi {
        let all_served = module
            .imports()
            .filter(|import| import.module() == WASI_MODULE)
            .all(|import| CGI_IMPORTS.contains(&import.name()));
        if all_served && !has_volumes {
            GuestAbi::Cgi
        } else {
            GuestAbi::Wasi
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            GuestAbi::Cgi => "cgi",
            GuestAbi::Wasi => "wasi",
        }
    }
}

/// WASI errno values (the witx `errno` enum) that these functions return.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const INVAL: i32 = 28;
    pub const OVERFLOW: i32 = 61;
    pub const SPIPE: i32 = 70;
}

/// `writev`/`readv` take at most this many buffers, as on Linux (`IOV_MAX`); it also bounds
/// the work of one host call, which the epoch deadline cannot interrupt.
const MAX_IOVECS: u32 = 1024;
/// Exit statuses at or above this are refused with a trap, as wasmtime-wasi does.
const MAX_EXIT_STATUS: i32 = 126;
const STDIN: u32 = 0;
const STDOUT: u32 = 1;
const STDERR: u32 = 2;
/// The witx `fdstat` record: filetype (u8) at 0, flags (u16) at 2, rights at 8 and 16.
const FDSTAT_BYTES: usize = 24;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME: i32 = 2;
const CLOCK_THREAD_CPUTIME: i32 = 3;
/// Both clocks report nanoseconds.
const CLOCK_RESOLUTION_NS: u64 = 1;

/// NUL-terminated strings laid out as `args_get`/`environ_get` copy them into the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringBlock {
    text: String,
}

impl StringBlock {
    /// An empty block with room for `bytes` without reallocating.
    pub fn with_capacity(bytes: usize) -> StringBlock {
        StringBlock {
            text: String::with_capacity(bytes),
        }
    }

    /// `ARG\0` for each argument.
    pub fn args<'a>(args: impl IntoIterator<Item = &'a str>) -> StringBlock {
        let mut block = StringBlock::default();
        for arg in args {
            block.push_with(|text| text.push_str(arg));
        }
        block
    }

    /// Appends one string, written by `write` (which must not write a NUL).
    pub fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        self.text.push('\0');
    }

    /// The strings, without their NULs.
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        self.text.split_terminator('\0')
    }

    /// How many strings: one NUL ends each.
    pub fn len(&self) -> usize {
        self.text.bytes().filter(|&b| b == 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Writes the count and the size in bytes (the `*_sizes_get` functions).
    fn write_sizes(&self, memory: &mut [u8], count_ptr: i32, size_ptr: i32) -> Answer {
        let Ok(size) = u32::try_from(self.text.len()) else {
            return Ok(errno::OVERFLOW);
        };
        write_u32(memory, count_ptr, self.len() as u32)?;
        write_u32(memory, size_ptr, size)?;
        Ok(errno::SUCCESS)
    }

    /// Copies the strings to `buf` and a pointer to each into the array at `list`.
    fn write_strings(&self, memory: &mut [u8], list: i32, buf: i32) -> Answer {
        slice_mut(memory, buf, self.text.len())?.copy_from_slice(self.text.as_bytes());
        let mut offset = 0;
        for (i, string) in self
            .text
            .as_bytes()
            .split_inclusive(|&b| b == 0)
            .enumerate()
        {
            write_u32(
                memory,
                element(list, i, 4)?,
                (buf as u32).wrapping_add(offset),
            )?;
            offset += string.len() as u32;
        }
        Ok(errno::SUCCESS)
    }
}

/// What one request's guest reads and writes through the functions here.
pub struct RequestIo {
    /// The module's arguments, the same for every request.
    args: Arc<StringBlock>,
    env: StringBlock,
    stdin: Bytes,
    stdout: BoundedOutput,
    /// Made on the first write: most guests never write to stderr.
    stderr: Option<GuestLog>,
    module: Arc<str>,
    /// Standard descriptors the guest closed (bit `fd`); later use of them is `EBADF`.
    closed: u8,
}

impl RequestIo {
    pub fn new(
        args: Arc<StringBlock>,
        env: StringBlock,
        stdin: Bytes,
        stdout: BoundedOutput,
        module: Arc<str>,
    ) -> RequestIo {
        RequestIo {
            args,
            env,
            stdin,
            stdout,
            stderr: None,
            module,
            closed: 0,
        }
    }

    fn stderr(&mut self) -> &GuestLog {
        let RequestIo { stderr, module, .. } = self;
        stderr.get_or_insert_with(|| GuestLog::new(module.clone()))
    }

    fn is_open(&self, fd: u32) -> bool {
        fd <= STDERR && self.closed & (1 << fd) == 0
    }
}

/// Adds the functions in [`CGI_IMPORTS`] to `linker`.
pub fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let m = WASI_MODULE;
    linker.func_wrap(
        m,
        "args_sizes_get",
        |c: Caller<'_, Host>, n: i32, s: i32| with_io(c, |mem, io| io.args.write_sizes(mem, n, s))?,
    )?;
    linker.func_wrap(m, "args_get", |c: Caller<'_, Host>, list: i32, buf: i32| {
        with_io(c, |mem, io| io.args.write_strings(mem, list, buf))?
    })?;
    linker.func_wrap(
        m,
        "environ_sizes_get",
        |c: Caller<'_, Host>, n: i32, s: i32| with_io(c, |mem, io| io.env.write_sizes(mem, n, s))?,
    )?;
    linker.func_wrap(
        m,
        "environ_get",
        |c: Caller<'_, Host>, list: i32, buf: i32| {
            with_io(c, |mem, io| io.env.write_strings(mem, list, buf))?
        },
    )?;
    linker.func_wrap(m, "fd_write", fd_write)?;
    linker.func_wrap(m, "fd_read", fd_read)?;
    linker.func_wrap(m, "fd_close", |c: Caller<'_, Host>, fd: i32| {
        with_io(c, |_, io| {
            if !io.is_open(fd as u32) {
                return errno::BADF;
            }
            io.closed |= 1 << fd;
            errno::SUCCESS
        })
    })?;
    linker.func_wrap(m, "fd_fdstat_get", fd_fdstat_get)?;
    linker.func_wrap(
        m,
        "fd_seek",
        |c: Caller<'_, Host>, fd: i32, _offset: i64, _whence: i32, _new: i32| {
            // The standard descriptors are pipes.
            with_io(c, |_, io| match io.is_open(fd as u32) {
                true => errno::SPIPE,
                false => errno::BADF,
            })
        },
    )?;
    // No directory is preopened for these modules.
    linker.func_wrap(
        m,
        "fd_prestat_get",
        |_: Caller<'_, Host>, _: i32, _: i32| errno::BADF,
    )?;
    linker.func_wrap(
        m,
        "fd_prestat_dir_name",
        |_: Caller<'_, Host>, _: i32, _: i32, _: i32| errno::BADF,
    )?;
    linker.func_wrap(m, "clock_time_get", clock_time_get)?;
    linker.func_wrap(m, "clock_res_get", clock_res_get)?;
    linker.func_wrap(m, "random_get", random_get)?;
    linker.func_wrap(m, "sched_yield", |_: Caller<'_, Host>| errno::SUCCESS)?;
    linker.func_wrap(m, "proc_exit", proc_exit)?;
    Ok(())
}

/// Runs `f` over the guest's memory and the request's I/O; traps without a memory export,
/// as wasmtime-wasi does.
fn with_io<R>(
    mut caller: Caller<'_, Host>,
    f: impl FnOnce(&mut [u8], &mut RequestIo) -> R,
) -> wasmtime::Result<R> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("the module exports no memory for WASI to use");
    };
    let (bytes, host) = memory.data_and_store_mut(&mut caller);
    let Some(io) = host.io.as_mut() else {
        wasmtime::bail!("the store has no request I/O for these WASI functions");
    };
    Ok(f(bytes, io))
}

/// `fd_write(fd, iovs, iovs_len, nwritten)`: stdout into the bounded buffer (a write past
/// its cap traps), stderr into the log.
fn fd_write(
    caller: Caller<'_, Host>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> wasmtime::Result<i32> {
    with_io(caller, |memory, io| {
        let fd = fd as u32;
        if !io.is_open(fd) || fd == STDIN {
            return Ok(errno::BADF);
        }
        let Some(count) = iovec_count(iovs_len) else {
            return Ok(errno::INVAL);
        };
        let mut total = 0u32;
        for i in 0..count {
            let (ptr, len) = iovec(memory, iovs, i)?;
            let data = slice(memory, ptr, len)?;
            let accepted = match fd {
                STDOUT => io.stdout.accept(data),
                _ => io.stderr().accept(data),
            };
            accepted?;
            total += data.len() as u32;
        }
        write_u32(memory, nwritten, total)?;
        Ok(errno::SUCCESS)
    })?
}

/// `fd_read(fd, iovs, iovs_len, nread)`: the request body, from where the last read ended.
fn fd_read(
    caller: Caller<'_, Host>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> wasmtime::Result<i32> {
    with_io(caller, |memory, io| {
        if fd as u32 != STDIN || !io.is_open(STDIN) {
            return Ok(errno::BADF);
        }
        let Some(count) = iovec_count(iovs_len) else {
            return Ok(errno::INVAL);
        };
        let mut total = 0u32;
        for i in 0..count {
            if io.stdin.is_empty() {
                break;
            }
            let (ptr, len) = iovec(memory, iovs, i)?;
            let dst = slice_mut(memory, ptr, len)?;
            let n = dst.len().min(io.stdin.len());
            dst[..n].copy_from_slice(&io.stdin[..n]);
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
fn fd_fdstat_get(caller: Caller<'_, Host>, fd: i32, buf: i32) -> wasmtime::Result<i32> {
    with_io(caller, |memory, io| {
        let fd = fd as u32;
        if !io.is_open(fd) {
            return Ok(errno::BADF);
        }
        let rights = if fd == STDIN {
            RIGHT_FD_READ
        } else {
            RIGHT_FD_WRITE
        };
        let mut stat = [0u8; FDSTAT_BYTES];
        // filetype 0 (unknown) and flags 0 are the zeroes already there.
        stat[8..16].copy_from_slice(&rights.to_le_bytes());
        stat[16..24].copy_from_slice(&rights.to_le_bytes());
        slice_mut(memory, buf, FDSTAT_BYTES)?.copy_from_slice(&stat);
        Ok(errno::SUCCESS)
    })?
}

fn clock_time_get(
    caller: Caller<'_, Host>,
    id: i32,
    _precision: i64,
    out: i32,
) -> wasmtime::Result<i32> {
    let now = match id {
        CLOCK_REALTIME => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        CLOCK_MONOTONIC => monotonic_origin().elapsed().as_nanos() as u64,
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Ok(errno::BADF),
        _ => return Ok(errno::INVAL),
    };
    with_io(caller, |memory, _| write_u64(memory, out, now))??;
    Ok(errno::SUCCESS)
}

fn clock_res_get(caller: Caller<'_, Host>, id: i32, out: i32) -> wasmtime::Result<i32> {
    match id {
        CLOCK_REALTIME | CLOCK_MONOTONIC => {
            with_io(caller, |memory, _| {
                write_u64(memory, out, CLOCK_RESOLUTION_NS)
            })??;
            Ok(errno::SUCCESS)
        }
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => Ok(errno::BADF),
        _ => Ok(errno::INVAL),
    }
}

/// The monotonic clock counts from the first time a guest reads it in this process.
fn monotonic_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// `random_get(buf, len)`: bytes from a CSPRNG seeded by the operating system.
fn random_get(caller: Caller<'_, Host>, buf: i32, len: i32) -> wasmtime::Result<i32> {
    with_io(caller, |memory, _| {
        rand::rng().fill_bytes(slice_mut(memory, buf, len as u32 as usize)?);
        Ok(errno::SUCCESS)
    })?
}

/// `proc_exit(status)`: ends the guest; 0 is a clean finish.
fn proc_exit(_: Caller<'_, Host>, status: i32) -> wasmtime::Result<()> {
    if !(0..MAX_EXIT_STATUS).contains(&status) {
        wasmtime::bail!("exit with invalid exit status outside of [0..126)");
    }
    Err(I32Exit(status).into())
}

/// An errno for the guest, or a trap (a pointer outside the guest's memory).
type Answer = wasmtime::Result<i32>;

/// The `i`th `(buf, len)` pair of the iovec array at `iovs`.
fn iovec(memory: &[u8], iovs: i32, i: usize) -> wasmtime::Result<(i32, usize)> {
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

fn slice_mut(memory: &mut [u8], ptr: i32, len: usize) -> wasmtime::Result<&mut [u8]> {
    let start = ptr as u32 as usize;
    start
        .checked_add(len)
        .and_then(|end| memory.get_mut(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> wasmtime::Result<()> {
    slice_mut(memory, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn write_u64(memory: &mut [u8], ptr: i32, value: u64) -> wasmtime::Result<()> {
    slice_mut(memory, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}
