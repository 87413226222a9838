//! What a guest can make the gateway hold outside its linear memory, and the caps on it.
//!
//! `max_memory_bytes` bounds a guest's linear memories; the host objects its calls create
//! live in the gateway's own heap, where that limit does not reach. Left at wasmtime's
//! defaults (a million resources a request, 128 KiB per header set, 128 MiB copied per
//! host call), one component capped at 16 MiB grew the gateway by about 250 MB per request
//! with header sets, and a CGI module held about 200 MB until its deadline with one
//! `poll_oneoff` of a huge subscription list. These caps hold every request to about
//! 17 MiB of host memory beyond its linear memory (SECURITY.md):
//!
//! - [`MAX_RESOURCES`] WASI and wasi:http resources live at once (header sets, bodies,
//!   streams, pollables, open files): each is small but for a header set, and a header set
//!   is at most [`MAX_FIELDS_BYTES`] in memory, so they total at most 16 MiB;
//! - [`MAX_COMPONENT_HANDLES`] component-model handles, a few dozen bytes each;
//! - [`MAX_HOSTCALL_BYTES`] copied from the guest by one host call (lists, strings, iovec
//!   and subscription arrays), which bounds a `poll_oneoff` to about 13,000 subscriptions.
//!
//! Past the resource cap or a header set's, the host call traps and the request ends
//! `memory_exceeded`, as it does past `max_memory_bytes`. Past the others the call fails
//! the way its interface says (`ENOMEM` for a preview1 call), for the guest to see.

use wasmtime::Store;
use wasmtime::component::ResourceTableError;
use wasmtime_wasi_http::FieldMapError;

/// WASI and wasi:http resources one request may hold at once. The example components
/// hold a few dozen at most.
pub(crate) const MAX_RESOURCES: usize = 1024;
/// The in-memory size of one header set (a `fields` resource): about twice its size on
/// the wire, so twice the 8 KiB that proxies commonly allow for a whole header block.
pub(crate) const MAX_FIELDS_BYTES: usize = 16 << 10;
/// Component-model handles one request may hold at once.
pub(crate) const MAX_COMPONENT_HANDLES: usize = 4096;
/// Bytes one host call may copy from the guest.
pub(crate) const MAX_HOSTCALL_BYTES: usize = 1 << 20;

/// Caps what the guest of `store` can make the host hold, for calls made through the store
/// itself; resource tables are capped where they are made.
pub(crate) fn cap_store<T>(store: &mut Store<T>) {
    store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
    store.set_max_component_handles(MAX_COMPONENT_HANDLES);
}

/// Which cap `error` is a host call refused at, in words, if it is one.
pub(crate) fn cap_hit(error: &wasmtime::Error) -> Option<&'static str> {
    if error.is::<ResourceTableError>() {
        return Some("its WASI resources (1024 at once)");
    }
    match error.downcast_ref::<FieldMapError>() {
        Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields) => {
            Some("a header set's size (16 KiB)")
        }
        _ => None,
    }
}
