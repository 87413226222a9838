//! Key-value stores for a wasmgate CGI function (`wasm32-wasip1`): thin, safe bindings to
//! the gateway's `wasmgate` host functions (README "Key-value stores, in brief").
//!
//! ```no_run
//! let store = wasmgate_kv::Store::open("counts")?;
//! let visits = store.increment("visits", 1)?;
//! store.set("last-visitor", b"ada")?;
//! # Ok::<(), wasmgate_kv::Error>(())
//! ```
//!
//! A store is open for the request that opened it; the module's `[modules.NAME]
//! kv_stores` lists the stores it may open. Every call waits for the store within the
//! request's deadline, and fails with [`Error::Unavailable`] rather than waiting past it.

use std::fmt;

#[link(wasm_import_module = "wasmgate")]
unsafe extern "C" {
    fn kv_open(name_ptr: *const u8, name_len: usize) -> i32;
    fn kv_get(
        store: i32,
        key_ptr: *const u8,
        key_len: usize,
        buf_ptr: *mut u8,
        buf_len: usize,
    ) -> i64;
    fn kv_set(
        store: i32,
        key_ptr: *const u8,
        key_len: usize,
        val_ptr: *const u8,
        val_len: usize,
    ) -> i32;
    fn kv_delete(store: i32, key_ptr: *const u8, key_len: usize) -> i32;
    fn kv_increment(
        store: i32,
        key_ptr: *const u8,
        key_len: usize,
        delta: i64,
        result: *mut i64,
    ) -> i32;
    fn kv_list(store: i32, cursor: i64, buf_ptr: *mut u8, buf_len: usize, next: *mut i64) -> i32;
    fn kv_get_many(
        store: i32,
        keys_ptr: *const u8,
        keys_len: usize,
        buf_ptr: *mut u8,
        buf_len: usize,
    ) -> i64;
    fn kv_set_many(store: i32, entries_ptr: *const u8, entries_len: usize) -> i32;
    fn kv_delete_many(store: i32, keys_ptr: *const u8, keys_len: usize) -> i32;
}

/// Why a call failed: the gateway's negative codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `-2`: the store is not in the module's `kv_stores`.
    Denied,
    /// `-3`: a key or value over its limit (`max_key_bytes`, `max_value_bytes`), or a
    /// batch of more than 1000 keys.
    TooLarge,
    /// `-4`: the backend is down or did not answer in time.
    Unavailable,
    /// `-5`: a bad store name or handle, or a malformed batch.
    Invalid,
    /// `-6`: the store would grow past `max_store_bytes`.
    Quota,
    /// `-7`: an increment of a value that is not a decimal i64, or one that overflows.
    NotANumber,
    /// A code this version does not know.
    Other(i64),
}

impl Error {
    fn from_code(code: i64) -> Error {
        match code {
            -2 => Error::Denied,
            -3 => Error::TooLarge,
            -4 => Error::Unavailable,
            -5 => Error::Invalid,
            -6 => Error::Quota,
            -7 => Error::NotANumber,
            other => Error::Other(other),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Denied => "the store is not in this module's kv_stores",
            Error::TooLarge => "the key or value is over its limit",
            Error::Unavailable => "the store did not answer in time",
            Error::Invalid => "not a store name or handle",
            Error::Quota => "the store is full (max_store_bytes)",
            Error::NotANumber => "the value is not a decimal i64, or the sum overflows",
            Error::Other(_) => "an unknown error",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The code `-1`: no such key.
const NOT_FOUND: i64 = -1;
/// What `kv_list` writes as the next cursor when there are no more keys.
const NO_MORE: i64 = -1;
/// The buffer a first read tries; a longer value is read again at its length.
const FIRST_READ: usize = 4096;

fn status(code: i64) -> Result<i64> {
    if code < 0 {
        Err(Error::from_code(code))
    } else {
        Ok(code)
    }
}

/// A store this request opened.
#[derive(Debug, Clone, Copy)]
pub struct Store(i32);

impl Store {
    /// Opens store `name` (`[A-Za-z0-9_-]{1,64}`), which the module's `kv_stores` lists.
    pub fn open(name: &str) -> Result<Store> {
        let handle = unsafe { kv_open(name.as_ptr(), name.len()) };
        status(handle.into()).map(|_| Store(handle))
    }

    /// The value at `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        let mut buf = vec![0u8; FIRST_READ];
        loop {
            let len =
                unsafe { kv_get(self.0, key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len()) };
            if len == NOT_FOUND {
                return Ok(None);
            }
            let len = status(len)? as usize;
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            buf.resize(len, 0);
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let code = unsafe { kv_set(self.0, key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
        status(code.into()).map(drop)
    }

    /// Deletes `key`, whether or not it exists.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        status(unsafe { kv_delete(self.0, key.as_ptr(), key.len()) }.into()).map(drop)
    }

    /// Adds `delta` to the counter at `key` (an absent key counts from 0), atomically;
    /// returns the new value. The counter is stored as decimal text.
    pub fn increment(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        let key = key.as_ref();
        let mut value = 0i64;
        let code = unsafe { kv_increment(self.0, key.as_ptr(), key.len(), delta, &mut value) };
        status(code.into()).map(|_| value)
    }

    /// Every key, in the store's order (pages of up to 1000 keys behind the scenes).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let mut cursor = 0i64;
        let mut buf = vec![0u8; 64 * 1024];
        while cursor != NO_MORE {
            let mut next = NO_MORE;
            let count = unsafe { kv_list(self.0, cursor, buf.as_mut_ptr(), buf.len(), &mut next) };
            if count == Error::TooLarge.code() {
                buf.resize(buf.len() * 2, 0);
                continue;
            }
            status(count.into())?;
            keys.extend(decode(&buf, count as usize).map(<[u8]>::to_vec));
            cursor = next;
        }
        Ok(keys)
    }

    /// The values at `keys`, in order, each `None` when absent.
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let request = encode(keys.iter().map(AsRef::as_ref));
        let mut buf = vec![0u8; FIRST_READ];
        loop {
            let len = unsafe {
                kv_get_many(
                    self.0,
                    request.as_ptr(),
                    request.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            let len = status(len)? as usize;
            if len <= buf.len() {
                return Ok(decode_values(&buf[..len]));
            }
            buf.resize(len, 0);
        }
    }

    /// Sets every pair in one atomic write: all or none.
    pub fn set_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, pairs: &[(K, V)]) -> Result<()> {
        let entries = encode(pairs.iter().flat_map(|(k, v)| [k.as_ref(), v.as_ref()]));
        status(unsafe { kv_set_many(self.0, entries.as_ptr(), entries.len()) }.into()).map(drop)
    }

    /// Deletes every key in `keys`.
    pub fn delete_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<()> {
        let keys = encode(keys.iter().map(AsRef::as_ref));
        status(unsafe { kv_delete_many(self.0, keys.as_ptr(), keys.len()) }.into()).map(drop)
    }
}

impl Error {
    fn code(self) -> i32 {
        match self {
            Error::Denied => -2,
            Error::TooLarge => -3,
            Error::Unavailable => -4,
            Error::Invalid => -5,
            Error::Quota => -6,
            Error::NotANumber => -7,
            Error::Other(code) => code as i32,
        }
    }
}

/// Strings as the batch calls take them: each a `u32` LE length and its bytes.
fn encode<'a>(strings: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// The first `count` length-prefixed strings of `buf`.
fn decode(buf: &[u8], count: usize) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    (0..count).map(move |_| {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len;
        &buf[at - len..at]
    })
}

/// `kv_get_many`'s answer: for each key an i32 LE length (-1: absent) and the bytes.
fn decode_values(mut buf: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut values = Vec::new();
    while buf.len() >= 4 {
        let len = i32::from_le_bytes(buf[..4].try_into().unwrap());
        buf = &buf[4..];
        if len < 0 {
            values.push(None);
        } else {
            values.push(Some(buf[..len as usize].to_vec()));
            buf = &buf[len as usize..];
        }
    }
    values
}
