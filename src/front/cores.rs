//! Which core each serving thread runs on: when the gateway has one serving thread per core
//! it may use, thread `i` is pinned to the `i`-th of those cores.
//!
//! Unpinned, the kernel moves the serving threads about, and on a host whose cores are
//! shared (a load generator, a sidecar) a thread can be left waiting behind another on one
//! core while the other core runs something else; a connection's requests then wait for
//! their thread's turn, a scheduler tick of about 4 ms. Pinned, each thread keeps a core of
//! its own to come back to: on the 2-core test host, hello's p99 at fixed rates went from
//! 2.2–4.2× the bare hyper reference's to 1.2–1.9×, and its saturated req/s did not fall
//! (BENCHMARKS.md, issue 18).
//!
//! Threads are pinned only when they match the cores one for one. With a different
//! `serve_threads`, or under a CPU quota smaller than the set of cores the process may run
//! on (a Kubernetes limit, where every replica sees all of the node's cores), pinning would
//! crowd threads onto cores that others use too, so they are left to the kernel.

pub(crate) use core_affinity::CoreId;

/// The core for each of `threads` serving threads, in order, or `None` for all of them
/// when `pin` is off or the threads do not match the process's cores one for one.
pub(crate) fn placement(threads: usize, pin: bool) -> Vec<Option<CoreId>> {
    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    plan(threads, cores)
}

/// One core per thread when there are exactly as many cores as threads; none otherwise.
fn plan(threads: usize, cores: Vec<CoreId>) -> Vec<Option<CoreId>> {
    if threads > 0 && cores.len() == threads {
        cores.into_iter().map(Some).collect()
    } else {
        vec![None; threads]
    }
}

/// Pins the calling thread to `core`, if any; a refusal (a cgroup that changed its cores
/// since) leaves the thread where the kernel puts it, and says so in the log.
pub(crate) fn pin_current(core: Option<CoreId>, thread: usize) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        tracing::warn!(
            thread,
            core = core.id,
            "cannot pin a serving thread to its core; it runs unpinned"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[usize]) -> Vec<CoreId> {
        ids.iter().map(|&id| CoreId { id }).collect()
    }

    #[test]
    fn a_thread_per_core_is_pinned_one_to_one_in_order() {
        let placed = plan(2, ids(&[2, 5]));
        assert_eq!(placed, vec![Some(CoreId { id: 2 }), Some(CoreId { id: 5 })]);
    }

    #[test]
    fn fewer_or_more_threads_than_cores_are_left_unpinned() {
        assert_eq!(plan(2, ids(&[0, 1, 2, 3])), vec![None, None]);
        assert_eq!(plan(4, ids(&[0, 1])), vec![None; 4]);
        assert_eq!(plan(2, Vec::new()), vec![None, None]);
    }

    #[test]
    fn pinning_off_pins_nothing() {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        assert_eq!(placement(cores.len(), false), vec![None; cores.len()]);
    }

    #[test]
    fn the_default_thread_count_is_pinned_to_this_process_cores() {
        let cores = core_affinity::get_core_ids().expect("the process's cores can be read");
        let placed = placement(cores.len(), true);
        assert_eq!(placed, cores.into_iter().map(Some).collect::<Vec<_>>());
    }
}
