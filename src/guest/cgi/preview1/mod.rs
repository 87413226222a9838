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
//!
//! - [`choice`]: which implementation a module is linked against; [`abi`]: its numbers;
//! - [`state`]: what one request's guest reads and writes;
//! - [`functions`]: the functions themselves; [`memory`]: the bounds of every guest
//!   pointer they follow.

mod abi;
mod choice;
mod functions;
pub(super) mod memory;
mod state;

pub use choice::{CGI_IMPORTS, Preview1};
pub(crate) use functions::add_to_linker;
pub(crate) use state::{RequestIo, RequestIoParts};
