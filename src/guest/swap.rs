//! Keeps the page-scanning slot reset from handing one request's memory to the next on a
//! host with swap.
//!
//! wasmtime 48's `PAGEMAP_SCAN` reset asks the kernel for the pages a guest dirtied that
//! are *present*. A dirty page that was swapped out during the run is `WRITTEN | SWAPPED`:
//! it is neither reset nor given back, and the next instance in the slot reads it (wasmtime
//! PR #14357, fixed in 48.0.11 and 50.0.0; the registry this project builds from has
//! neither for the whole wasmtime set, and 50.0.1's scan costs more than `memset`). The
//! `memset` reset zeroes the kept pages and gives the rest back with `madvise`, which drops
//! a swapped page too, so it is sound whatever the swap does.
//!
//! So the scan is chosen only where swap cannot reach the process: its cgroup (v2) forbids
//! swap (`memory.swap.max` is 0 there or above, as systemd's `MemorySwapMax=0` and the
//! kubelet without NodeSwap set), or no swap area is active on the host. In the second
//! case that is checked again as each store is dropped, before wasmtime resets its slot: a
//! swap area that appeared since the start stops the process at once
//! ([`std::process::abort`]), with a log line that says why. Nothing else can run in
//! between, so no later instance ever sees the slot; a supervisor (the systemd unit,
//! Kubernetes) starts the gateway again, which then resets with `memset`. Losing the
//! requests in flight once is the price of never leaking one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether an engine of this process resets its pool slots by page scanning while swap
/// could still be turned on: stores check the swap as they are dropped only then. Set
/// once, never cleared (an engine is rarely dropped, and a check too many costs one
/// system call).
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Where a swap area could reach this process's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwapReach {
    /// The process's cgroup forbids swap: pages are never swapped out, whatever the host.
    Forbidden,
    /// No swap area is active now, but one may be turned on.
    NoneActive,
    /// A swap area is active.
    Active,
}

impl SwapReach {
    /// Where swap stands for this process now.
    pub(crate) fn now() -> SwapReach {
        if cgroup_forbids_swap() {
            SwapReach::Forbidden
        } else if swap_active() {
            SwapReach::Active
        } else {
            SwapReach::NoneActive
        }
    }
}

/// Whether a swap area is active on the host now (`sysinfo`'s total swap is not zero).
fn swap_active() -> bool {
    rustix::system::sysinfo().totalswap != 0
}

/// Whether this process's cgroup v2, or one above it, has `memory.swap.max` at 0.
fn cgroup_forbids_swap() -> bool {
    let Ok(membership) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let Some(path) = membership.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let root = Path::new("/sys/fs/cgroup");
    let mut dir = root.join(path.trim_start_matches('/'));
    loop {
        if swap_max_is_zero(&dir) {
            return true;
        }
        if dir == root || !dir.pop() {
            return false;
        }
    }
}

fn swap_max_is_zero(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("memory.swap.max")).is_ok_and(|v| v.trim() == "0")
}

/// Records that an engine resets its slots by page scanning, where swap stands as `reach`
/// says: unless the cgroup forbids swap, every store checks it from now on.
pub(crate) fn scanning_from_now(reach: SwapReach) {
    if reach != SwapReach::Forbidden {
        WATCHING.store(true, Ordering::SeqCst);
    }
}

/// Held by every store, and dropped with its state, before wasmtime resets the store's
/// pool slot.
#[derive(Debug, Default)]
pub(crate) struct SlotResetCheck;

impl Drop for SlotResetCheck {
    fn drop(&mut self) {
        if WATCHING.load(Ordering::Relaxed) && swap_active() {
            tracing::error!(
                "a swap area was turned on after start, and pool slots are reset by page \
                 scanning, which misses swapped-out pages: stopping before a slot is reused \
                 (restarted, wasmgate resets slots with memset; see SECURITY.md)"
            );
            std::process::abort();
        }
    }
}
