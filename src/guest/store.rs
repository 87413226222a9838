//! The state of one request's store, and the resource limiter that caps a guest's memory
//! and tables.
//!
//! The state is generic over the guest's I/O: the gateway's own preview1 functions serve a
//! [`RequestIo`](crate::guest::cgi::preview1), wasmtime-wasi a `WasiP1Ctx`. Each kind of
//! module is linked against a linker for its own store type, so a store can never lack the
//! I/O its functions reach for.

use std::sync::Arc;

use wasmtime::ResourceLimiter;

/// Instances, tables and memories one request may create.
const MAX_INSTANCES: usize = 1;
/// Tables per instance (WASI command modules use one); the pool reserves as many.
pub(crate) const MAX_TABLES: usize = 4;
const MAX_MEMORIES: usize = 1;
/// Elements one table may grow to, generous for C++ and Go function tables; the pool
/// reserves as many.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The state of one request's store.
pub(crate) struct StoreState<Io> {
    /// What the guest's WASI functions read and write.
    pub io: Io,
    pub limiter: GuestLimiter,
    /// The module's name, for the log lines its guest writes.
    pub module: Arc<str>,
}

/// Caps a guest's memory and tables, and remembers whether the memory cap was hit so that
/// the trap that usually follows (an allocator giving up) is reported as `memory_exceeded`.
pub(crate) struct GuestLimiter {
    max_memory_bytes: usize,
    pub memory_exceeded: bool,
}

impl GuestLimiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        GuestLimiter {
            max_memory_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
