//! The bounds of every guest pointer the preview1 functions (and the `wasmgate` kv_*
//! functions) follow: a pointer or length outside the guest's memory, or misaligned, traps
//! the guest, never the host.

/// An errno for the guest, or a trap (a pointer outside the guest's memory).
pub(super) type Answer = wasmtime::Result<i32>;

/// The `i`th `(buf, len)` pair of the iovec array at `iovs`.
pub(super) fn iovec(memory: &[u8], iovs: i32, i: usize) -> wasmtime::Result<(i32, usize)> {
    aligned(iovs, 4)?;
    let pair = slice(memory, element(iovs, i, 8)?, 8)?;
    let word = |at: usize| u32::from_le_bytes([pair[at], pair[at + 1], pair[at + 2], pair[at + 3]]);
    Ok((word(0) as i32, word(4) as usize))
}

/// The guest address of element `i` (of `size` bytes) of the array at `base`.
pub(super) fn element(base: i32, i: usize, size: usize) -> wasmtime::Result<i32> {
    i.checked_mul(size)
        .and_then(|offset| u32::try_from(offset).ok())
        .and_then(|offset| (base as u32).checked_add(offset))
        .map(|at| at as i32)
        .ok_or_else(|| out_of_bounds(base, i.saturating_mul(size)))
}

/// The trap for a pointer outside the guest's memory (wasmtime-wasi traps the same way).
pub(in crate::guest::cgi) fn out_of_bounds(ptr: i32, len: usize) -> wasmtime::Error {
    wasmtime::format_err!("pointer out of bounds: {len} bytes at {}", ptr as u32)
}

pub(in crate::guest::cgi) fn slice(memory: &[u8], ptr: i32, len: usize) -> wasmtime::Result<&[u8]> {
    let start = ptr as u32 as usize;
    start
        .checked_add(len)
        .and_then(|end| memory.get(start..end))
        .ok_or_else(|| out_of_bounds(ptr, len))
}

/// The bytes an iovec names; an empty one is not looked for, as in wasmtime-wasi.
pub(super) fn buffer(memory: &[u8], (ptr, len): (i32, usize)) -> wasmtime::Result<&[u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    slice(memory, ptr, len)
}

pub(in crate::guest::cgi) fn slice_mut(
    memory: &mut [u8],
    ptr: i32,
    len: usize,
) -> wasmtime::Result<&mut [u8]> {
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
pub(super) fn aligned(ptr: i32, align: u32) -> wasmtime::Result<()> {
    if !(ptr as u32).is_multiple_of(align) {
        wasmtime::bail!("pointer not aligned to {align}: {:#x}", ptr as u32);
    }
    Ok(())
}

pub(super) fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> wasmtime::Result<()> {
    aligned(ptr, 4)?;
    slice_mut(memory, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

pub(super) fn write_u64(memory: &mut [u8], ptr: i32, value: u64) -> wasmtime::Result<()> {
    aligned(ptr, 8)?;
    slice_mut(memory, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}
