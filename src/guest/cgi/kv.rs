//! The `wasmgate` import module: a CGI guest's key-value calls (../shared/DESIGN.md
//! "Key-value stores", and the README for the list and batch calls designed here).
//!
//! Every function is async: it copies what it needs out of the guest's memory, waits for
//! the store (bounded by the request's deadline, in [`KvCall`]), then copies the answer
//! back. A pointer or length outside the exported `memory` traps the guest, checked
//! before the store is asked, so a call that traps changes nothing; every other failure is
//! a negative code the guest reads ([`KvError::code`]).
//!
//! The list and batch calls pass several byte strings in one buffer, each as a
//! little-endian `u32` length followed by its bytes ([`encode`]/[`decode`]).

use wasmtime::{Caller, Extern, Linker, Memory};

use super::preview1::memory::{slice, slice_mut};
use crate::guest::store::StoreState;
use crate::kv::KvError;
use crate::kv::session::{KvCall, MAX_LIST_KEYS, Op, on};

/// The import module of these functions.
const MODULE: &str = "wasmgate";
/// The memory these functions read and write.
const MEMORY_EXPORT: &str = "memory";
/// The length prefix of each string in a list or batch buffer.
const LEN_BYTES: usize = 4;
/// What `kv_get_many` writes for an absent key, in place of a length.
const ABSENT: i32 = -1;
/// The cursor `kv_list` writes when there are no more keys.
const NO_MORE: i64 = -1;

type Boxed<'a, R> = Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>;

/// Adds every `wasmgate.kv_*` function to `linker`.
pub(crate) fn add_to_linker<Io: Send + 'static>(
    linker: &mut Linker<StoreState<Io>>,
) -> wasmtime::Result<()> {
    linker.func_wrap("wasmgate", "kv_open", kv_open::<Io>)?;
    linker.func_wrap_async(MODULE, "kv_get", |c, (s, kp, kl, bp, bl)| {
        kv_get::<Io>(c, s, (kp, kl), (bp, bl))
    })?;
    linker.func_wrap_async(MODULE, "kv_set", |c, (s, kp, kl, vp, vl)| {
        kv_set::<Io>(c, s, (kp, kl), (vp, vl))
    })?;
    linker.func_wrap_async(MODULE, "kv_delete", |c, (s, kp, kl)| {
        kv_delete::<Io>(c, s, (kp, kl))
    })?;
    linker.func_wrap_async(MODULE, "kv_increment", |c, (s, kp, kl, d, rp)| {
        kv_increment::<Io>(c, s, (kp, kl), d, rp)
    })?;
    linker.func_wrap_async(MODULE, "kv_list", |c, (s, cursor, bp, bl, np)| {
        kv_list::<Io>(c, s, cursor, (bp, bl), np)
    })?;
    linker.func_wrap_async(MODULE, "kv_get_many", |c, (s, kp, kl, bp, bl)| {
        kv_get_many::<Io>(c, s, (kp, kl), (bp, bl))
    })?;
    linker.func_wrap_async(MODULE, "kv_set_many", |c, (s, ep, el)| {
        kv_set_many::<Io>(c, s, (ep, el))
    })?;
    linker.func_wrap_async(MODULE, "kv_delete_many", |c, (s, kp, kl)| {
        kv_delete_many::<Io>(c, s, (kp, kl))
    })?;
    Ok(())
}

/// A (pointer, length) pair of guest memory, as the guest passes it.
type Span = (i32, i32);

/// `kv_open(name_ptr, name_len) -> handle or error`.
fn kv_open<Io>(
    mut caller: Caller<'_, StoreState<Io>>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let name = read(&mut caller, (ptr, len))?;
    let Ok(name) = std::str::from_utf8(&name) else {
        return Ok(KvError::Invalid.code());
    };
    Ok(match caller.data_mut().kv.open(name) {
        Ok(handle) => handle as i32,
        Err(e) => e.code(),
    })
}

/// `kv_get(store, key, buf) -> the value's whole length, or an error (-1: no such key)`.
fn kv_get<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    key: Span,
    buf: Span,
) -> Boxed<'_, i64> {
    Box::new(async move {
        let key = read(&mut caller, key)?;
        check(&mut caller, buf)?;
        match on(call(&caller, store, Op::Get), |call| async move {
            call.get(key).await
        })
        .await
        {
            Ok(Some(value)) => {
                write_prefix(&mut caller, buf, &value)?;
                Ok(value.len() as i64)
            }
            Ok(None) => Ok(KvError::NotFound.code().into()),
            Err(e) => Ok(e.code().into()),
        }
    })
}

/// `kv_set(store, key, value) -> 0 or an error`.
fn kv_set<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    key: Span,
    value: Span,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let key = read(&mut caller, key)?;
        let value = read(&mut caller, value)?;
        Ok(status(
            on(call(&caller, store, Op::Set), |call| async move {
                call.set_many(vec![(key, value)]).await
            })
            .await,
        ))
    })
}

/// `kv_delete(store, key) -> 0 (whether or not it existed) or an error`.
fn kv_delete<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    key: Span,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let key = read(&mut caller, key)?;
        Ok(status(
            on(call(&caller, store, Op::Delete), |call| async move {
                call.delete_many(vec![key]).await
            })
            .await,
        ))
    })
}

/// `kv_increment(store, key, delta, result_ptr) -> 0 (the new value at result_ptr, an
/// i64 LE) or an error`.
fn kv_increment<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    key: Span,
    delta: i64,
    result_ptr: i32,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let key = read(&mut caller, key)?;
        let out = (result_ptr, size_of::<i64>() as i32);
        check(&mut caller, out)?;
        match on(call(&caller, store, Op::Increment), |call| async move {
            call.increment(key, delta).await
        })
        .await
        {
            Ok(value) => {
                write_prefix(&mut caller, out, &value.to_le_bytes())?;
                Ok(0)
            }
            Err(e) => Ok(e.code()),
        }
    })
}

/// `kv_list(store, cursor, buf, next_ptr) -> keys written, or an error`: from the
/// `cursor`-th key (0 to start), as many whole keys as `buf` holds, each length-prefixed;
/// the cursor to pass next is written at `next_ptr` (an i64 LE, -1 when there are no
/// more). A buffer too small for the first key is `-3`.
fn kv_list<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    cursor: i64,
    buf: Span,
    next_ptr: i32,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let next_span = (next_ptr, size_of::<i64>() as i32);
        check(&mut caller, buf)?;
        check(&mut caller, next_span)?;
        let Ok(cursor) = u64::try_from(cursor) else {
            return Ok(malformed(&caller, store, Op::List));
        };
        let room = buf.1 as u32 as usize;
        let limit = (room / LEN_BYTES).clamp(1, MAX_LIST_KEYS);
        let page = match on(call(&caller, store, Op::List), |call| async move {
            call.list(cursor, limit).await
        })
        .await
        {
            Ok(page) => page,
            Err(e) => return Ok(e.code()),
        };
        let (bytes, fitted) = encode(&page.keys, room);
        if fitted == 0 && !page.keys.is_empty() {
            return Ok(KvError::TooLarge.code());
        }
        let next = if fitted < page.keys.len() {
            (cursor + fitted as u64) as i64
        } else {
            page.next.map_or(NO_MORE, |n| n as i64)
        };
        write_prefix(&mut caller, buf, &bytes)?;
        write_prefix(&mut caller, next_span, &next.to_le_bytes())?;
        Ok(fitted as i32)
    })
}

/// `kv_get_many(store, keys, buf) -> the answer's whole length, or an error`: `keys` is
/// length-prefixed keys; the answer is, for each, an i32 LE length (-1: absent) and the
/// value's bytes; its first `buf_len` bytes are copied, as with `kv_get`.
fn kv_get_many<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    keys: Span,
    buf: Span,
) -> Boxed<'_, i64> {
    Box::new(async move {
        let raw = read(&mut caller, keys)?;
        check(&mut caller, buf)?;
        let Some(keys) = decode(&raw) else {
            return Ok(malformed(&caller, store, Op::Get).into());
        };
        match on(call(&caller, store, Op::Get), |call| async move {
            call.get_many(keys).await
        })
        .await
        {
            Ok(values) => {
                let answer = encode_values(&values);
                write_prefix(&mut caller, buf, &answer)?;
                Ok(answer.len() as i64)
            }
            Err(e) => Ok(e.code().into()),
        }
    })
}

/// `kv_set_many(store, entries) -> 0 or an error`: `entries` is length-prefixed key,
/// value, key, value...; all are set or none.
fn kv_set_many<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    entries: Span,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let raw = read(&mut caller, entries)?;
        let Some(strings) = decode(&raw).filter(|s| s.len() % 2 == 0) else {
            return Ok(malformed(&caller, store, Op::Set));
        };
        let mut strings = strings.into_iter();
        let mut pairs = Vec::new();
        while let (Some(key), Some(value)) = (strings.next(), strings.next()) {
            pairs.push((key, value));
        }
        Ok(status(
            on(call(&caller, store, Op::Set), |call| async move {
                call.set_many(pairs).await
            })
            .await,
        ))
    })
}

/// `kv_delete_many(store, keys) -> 0 or an error`: `keys` is length-prefixed keys.
fn kv_delete_many<Io: Send>(
    mut caller: Caller<'_, StoreState<Io>>,
    store: i32,
    keys: Span,
) -> Boxed<'_, i32> {
    Box::new(async move {
        let raw = read(&mut caller, keys)?;
        let Some(keys) = decode(&raw) else {
            return Ok(malformed(&caller, store, Op::Delete));
        };
        Ok(status(
            on(call(&caller, store, Op::Delete), |call| async move {
                call.delete_many(keys).await
            })
            .await,
        ))
    })
}

/// The call (`op`) on handle `store` of this request, owning what it needs.
fn call<Io>(caller: &Caller<'_, StoreState<Io>>, store: i32, op: Op) -> Result<KvCall, KvError> {
    // A negative handle is as bad as any other unopened one.
    let handle = u32::try_from(store).unwrap_or(u32::MAX);
    caller.data().kv.call(handle, op)
}

/// The code of an `op` on handle `store` whose other arguments are malformed, counted.
fn malformed<Io>(caller: &Caller<'_, StoreState<Io>>, store: i32, op: Op) -> i32 {
    match call(caller, store, op) {
        Ok(call) => call.refuse(op, KvError::Invalid),
        Err(e) => e,
    }
    .code()
}

fn status(result: Result<(), KvError>) -> i32 {
    result.map_or_else(KvError::code, |()| 0)
}

fn memory<Io>(caller: &mut Caller<'_, StoreState<Io>>) -> wasmtime::Result<Memory> {
    match caller.get_export(MEMORY_EXPORT) {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => wasmtime::bail!("{MODULE}.kv_* needs an exported memory"),
    }
}

/// The guest's bytes at `span`, or a trap when they are outside its memory.
fn read<Io>(caller: &mut Caller<'_, StoreState<Io>>, span: Span) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    Ok(bytes_at(memory.data(&*caller), span)?.to_vec())
}

/// Traps unless `span` is inside the guest's memory.
fn check<Io>(caller: &mut Caller<'_, StoreState<Io>>, span: Span) -> wasmtime::Result<()> {
    let memory = memory(caller)?;
    bytes_at(memory.data(&*caller), span).map(|_| ())
}

/// Copies as much of `bytes` as `span` holds to it.
fn write_prefix<Io>(
    caller: &mut Caller<'_, StoreState<Io>>,
    (ptr, len): Span,
    bytes: &[u8],
) -> wasmtime::Result<()> {
    let memory = memory(caller)?;
    let dest = slice_mut(memory.data_mut(&mut *caller), ptr, len as u32 as usize)?;
    let n = bytes.len().min(dest.len());
    dest[..n].copy_from_slice(&bytes[..n]);
    Ok(())
}

/// The bytes of `memory` at `span` (its length read as unsigned), or a trap.
fn bytes_at(memory: &[u8], (ptr, len): Span) -> wasmtime::Result<&[u8]> {
    slice(memory, ptr, len as u32 as usize)
}

/// Length-prefixed strings, as many whole ones as fit in `room` bytes; and how many did.
fn encode(strings: &[Vec<u8>], room: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut fitted = 0;
    for s in strings {
        if out.len() + LEN_BYTES + s.len() > room {
            break;
        }
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
        fitted += 1;
    }
    (out, fitted)
}

/// `kv_get_many`'s answer: each value's i32 LE length (or -1) and its bytes.
fn encode_values(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        }
    }
    out
}

/// Length-prefixed strings back, or `None` when the buffer is not exactly that.
fn decode(mut raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let (len, rest) = raw.split_first_chunk::<LEN_BYTES>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let (s, rest) = rest.split_at_checked(len)?;
        out.push(s.to_vec());
        raw = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_strings_round_trip() {
        let strings = vec![b"a".to_vec(), Vec::new(), b"xyz".to_vec()];
        let (bytes, fitted) = encode(&strings, usize::MAX);
        assert_eq!(fitted, 3);
        assert_eq!(decode(&bytes), Some(strings.clone()));
        let (bytes, fitted) = encode(&strings, 9);
        assert_eq!((bytes.len(), fitted), (9, 2));
        assert_eq!(decode(&[1, 0, 0, 0]), None);
        assert_eq!(decode(&[1, 0]), None);
    }

    #[test]
    fn spans_outside_memory_trap() {
        let memory = [0u8; 100];
        assert!(bytes_at(&memory, (90, 10)).is_ok());
        assert!(bytes_at(&memory, (90, 11)).is_err());
        assert!(bytes_at(&memory, (-1, 1)).is_err());
        assert!(bytes_at(&memory, (0, -1)).is_err());
    }
}
