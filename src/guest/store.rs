//! The state of one request's store, and the resource limiter that caps a guest's memory
//! and tables.
//!
//! The state is generic over the guest's I/O: the gateway's own preview1 functions serve a
//! [`RequestIo`](crate::guest::cgi::preview1), wasmtime-wasi a `WasiP1Ctx`, and a wasi:http
//! component its WASI and HTTP contexts. Each kind of guest is linked against a linker for
//! its own store type, so a store can never lack the I/O its functions reach for.
//!
//! The memory cap is on the guest's total: a component can hold several linear memories
//! (its own, a WASI adapter's), and `max_memory_bytes` bounds them together.

use std::sync::Arc;

use wasmtime::ResourceLimiter;

use super::swap::SlotResetCheck;
use crate::kv::KvSession;

/// Tables per core module (WASI command modules use one); the pool reserves as many.
pub(crate) const MAX_TABLES: usize = 4;
/// Elements one table may grow to, generous for C++ and Go function tables; the pool
/// reserves as many.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// How many core instances, tables and memories one guest may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
}

impl Footprint {
    /// A WASI command module: one instance, one memory.
    pub(crate) const CORE_MODULE: Footprint = Footprint {
        instances: 1,
        tables: MAX_TABLES,
        memories: 1,
    };
    /// A component: its core modules (a language runtime, its libraries, a WASI adapter,
    /// the glue between them) are instantiated together. The Rust, Python and JavaScript
    /// examples each have one memory and two tables (`Component::resources_required`);
    /// the bounds leave room for an adapter's own memory and more glue, and no more,
    /// since the pool reserves address space for each.
    pub(crate) const COMPONENT: Footprint = Footprint {
        instances: 32,
        tables: 8,
        memories: 2,
    };
}

/// The state of one request's store.
pub(crate) struct StoreState<Io> {
    /// What the guest's WASI functions read and write.
    pub io: Io,
    pub limiter: GuestLimiter,
    /// The module's name, for the log lines its guest writes.
    pub module: Arc<str>,
    /// The key-value stores this request has opened, and may open.
    pub kv: KvSession,
    /// Dropped with the state, before wasmtime resets the store's pool slot.
    pub _reset_check: SlotResetCheck,
}

/// Caps a guest's memory (all its memories together) and tables, and remembers whether the
/// memory cap was hit so that the trap that usually follows (an allocator giving up) is
/// reported as `memory_exceeded`.
pub(crate) struct GuestLimiter {
    max_memory_bytes: usize,
    /// The bytes of every memory the guest has, as they were last allowed to grow.
    memory_bytes: usize,
    footprint: Footprint,
    pub memory_exceeded: bool,
}

impl GuestLimiter {
    pub fn new(max_memory_bytes: usize, footprint: Footprint) -> Self {
        GuestLimiter {
            max_memory_bytes,
            memory_bytes: 0,
            footprint,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    /// Called for every memory, from zero bytes when it is created.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_bytes - current.min(self.memory_bytes)).saturating_add(desired);
        if total > self.max_memory_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        self.memory_bytes = total;
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
        self.footprint.instances
    }

    fn tables(&self) -> usize {
        self.footprint.tables
    }

    fn memories(&self) -> usize {
        self.footprint.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_cap_is_on_all_memories_together() {
        let mut limiter = GuestLimiter::new(10 * MIB, Footprint::COMPONENT);
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(limiter.memory_growing(4 * MIB, 6 * MIB, None).unwrap());
        assert!(!limiter.memory_exceeded);
        assert!(!limiter.memory_growing(4 * MIB, 5 * MIB, None).unwrap());
        assert!(limiter.memory_exceeded);
    }

    #[test]
    fn one_memory_may_grow_to_the_cap() {
        let mut limiter = GuestLimiter::new(10 * MIB, Footprint::CORE_MODULE);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.memory_growing(MIB, 10 * MIB, None).unwrap());
        assert!(!limiter.memory_growing(10 * MIB, 11 * MIB, None).unwrap());
    }
}
