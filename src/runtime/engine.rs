//! The one `wasmtime::Engine` of the process, configured for serving guests.
//!
//! The engine compiles with Cranelift, meters fuel, checks epochs (so a deadline can stop a
//! guest that never calls the host), and instantiates from the pooling allocator with
//! copy-on-write memory images: a request's instance reuses a pre-reserved slot instead of
//! paying for `mmap`/`munmap` each time. Pool slots keep their first 64 KiB of memory and
//! table resident between uses, which saves a page fault and a TLB-flushing `madvise` per
//! request (the largest single cost measured in PERFORMANCE-NOTES.md); on Linux 6.7 and
//! later, `PAGEMAP_SCAN` lets a slot keep up to 2 MiB resident and reset only the pages a
//! guest dirtied, which is what Rust and C guests (whose stack sits at 1 MiB) need; it is
//! used only where swap cannot reach the pool, since it misses swapped-out pages
//! ([`swap`](crate::guest::swap) says how that is kept). Where
//! the pool's address space cannot be reserved (a tight `ulimit -v`, a small container),
//! the engine falls back to on-demand allocation and says so in the log.

use std::fmt;

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::config::{Config, SlotResetChoice};
use crate::guest::store::{Footprint, MAX_TABLE_ELEMENTS};
use crate::guest::swap::{self, SwapReach};

/// Memory and table bytes a pool slot keeps resident between instances.
const KEEP_RESIDENT_BYTES: usize = 64 * 1024;
/// Linear memory a pool slot may keep resident when only dirtied pages are reset: enough
/// for the 1 MiB stack and the first heap pages of a Rust or C guest.
const SCANNED_KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Size of the native stack each running guest gets for its fiber.
const ASYNC_STACK_BYTES: usize = 2 << 20;

/// Which instance allocator the engine ended up with, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allocator {
    Pooling { slots: u32 },
    OnDemand,
}

impl fmt::Display for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allocator::Pooling { slots } => write!(f, "pooling ({slots} slots)"),
            Allocator::OnDemand => f.write_str("on-demand"),
        }
    }
}

/// Which allocator to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorChoice {
    /// The pool, falling back to on-demand when it cannot be reserved.
    PoolingWithFallback,
    /// On-demand only (for the one-shot `run` command and for comparisons).
    OnDemand,
}

/// How a pool slot's memory is reset between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotReset {
    /// Linux ≥ 6.7: `PAGEMAP_SCAN` finds the pages the guest dirtied, and only those are
    /// reset, so a large region ([`SCANNED_KEEP_RESIDENT_BYTES`]) can stay resident: no
    /// `madvise`, no cross-CPU TLB shootdown, no page faults on the next request.
    PagemapScan,
    /// Elsewhere: the first [`KEEP_RESIDENT_BYTES`] are zeroed with `memset`, the rest is
    /// given back with `madvise`.
    Memset,
}

/// Builds the engine for `config`: the pool with page-scanning reset when the kernel has
/// it, swap cannot reach the pool and `slot_reset` does not ask for `memset`; the pool with
/// `memset` reset
/// otherwise, on-demand allocation when the pool's address space cannot be reserved at
/// all. The error is wasmtime's, on one line.
pub(crate) fn build(config: &Config, choice: AllocatorChoice) -> Result<Engine, String> {
    if choice == AllocatorChoice::PoolingWithFallback {
        let (resets, reach) = slot_resets(config.slot_reset);
        for &reset in resets {
            match Engine::new(&base_config(
                Some(pooling(config, reset)),
                config.fuel_metered(),
            )) {
                Ok(engine) => {
                    if reset == SlotReset::PagemapScan {
                        swap::scanning_from_now(reach);
                    }
                    let allocator = Allocator::Pooling {
                        slots: config.max_instances,
                    };
                    tracing::info!(%allocator, slot_reset = ?reset, swap = ?reach, "instance allocator");
                    return Ok(engine);
                }
                Err(e) => {
                    tracing::debug!(error = %e, slot_reset = ?reset, "pooling allocator refused")
                }
            }
        }
        tracing::warn!(
            "the pooling allocator's address space could not be reserved; \
             falling back to on-demand allocation (slower per request)"
        );
    }
    let engine =
        Engine::new(&base_config(None, config.fuel_metered())).map_err(|e| format!("{e:#}"))?;
    tracing::info!(allocator = %Allocator::OnDemand, "instance allocator");
    Ok(engine)
}

/// The resets to try, best first, with where swap stands. Page scanning misses
/// swapped-out pages, so it is not tried while swap can reach the pool ([`swap`] stops the
/// process if a swap area appears later).
fn slot_resets(choice: SlotResetChoice) -> (&'static [SlotReset], SwapReach) {
    let reach = SwapReach::now();
    let resets: &'static [SlotReset] = match choice {
        SlotResetChoice::Auto if reach == SwapReach::Active => {
            tracing::info!(
                "a swap area is active: pool slots are reset with memset, since page \
                 scanning would miss swapped-out pages"
            );
            &[SlotReset::Memset]
        }
        SlotResetChoice::Auto => &[SlotReset::PagemapScan, SlotReset::Memset],
        SlotResetChoice::Memset => &[SlotReset::Memset],
    };
    (resets, reach)
}

/// The engine of a compile worker: the gateway's settings, on-demand allocation.
pub(crate) fn for_worker(fuel_metered: bool) -> Result<Engine, String> {
    Engine::new(&base_config(None, fuel_metered)).map_err(|e| format!("{e:#}"))
}

fn base_config(pool: Option<PoolingAllocationConfig>, fuel: bool) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.strategy(wasmtime::Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true)
        .consume_fuel(fuel)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .async_stack_size(ASYNC_STACK_BYTES)
        // For wasi:http components (0.3's async exports too); core modules compile as
        // they would without them.
        .wasm_component_model(true)
        .wasm_component_model_async(true);
    if let Some(pool) = pool {
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// The pool has one slot per guest that may run at once, whatever its kind: a core module
/// takes one core instance and one memory, a component up to [`Footprint::COMPONENT`] of
/// them, so the pool holds that many of each per slot. Unused core-instance and memory
/// slots cost address space, not memory.
fn pooling(config: &Config, reset: SlotReset) -> PoolingAllocationConfig {
    let slots = config.max_instances;
    let per_guest = Footprint::COMPONENT;
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(per_guest.instances as u32))
        .total_memories(slots.saturating_mul(per_guest.memories as u32))
        .total_tables(slots.saturating_mul(per_guest.tables as u32))
        .total_stacks(slots)
        .total_gc_heaps(slots)
        .max_core_instances_per_component(per_guest.instances as u32)
        .max_memories_per_component(per_guest.memories as u32)
        .max_tables_per_component(per_guest.tables as u32)
        .max_memories_per_module(1)
        .max_tables_per_module(Footprint::CORE_MODULE.tables as u32)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(config.largest_memory_bytes() as usize)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    match reset {
        SlotReset::PagemapScan => p
            .linear_memory_keep_resident(SCANNED_KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Yes),
        SlotReset::Memset => p
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::No),
    };
    p
}
