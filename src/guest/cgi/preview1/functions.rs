//! The preview1 functions themselves, each answering as wasmtime-wasi does for a process
//! with only the three standard descriptors.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Buf;
use rand::RngCore;
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::I32Exit;

use super::abi::*;
use super::choice::WASI_MODULE;
use super::memory::*;
use super::state::{IoAccessor, RequestIo};
use crate::guest::cgi::string_block::StringBlock;
use crate::guest::deadline::DeadlinePassed;

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
