//! What a guest can make the gateway hold outside its linear memory is capped
//! (`guest::host_limits`): past the caps a request fails, the gateway's memory stays
//! within about 17 MiB of host objects per request, and every other request is served.
//!
//! Each test runs a gateway process of its own and measures that process's peak resident
//! memory across the request, so no other test's allocations can blur the figure.

use crate::common;

use common::served::Served;
use common::{component, fixture};

/// Host memory one request may make the gateway hold beyond its linear memory
/// (SECURITY.md), with room for the allocator's own slack.
const HOST_BYTES_BOUND: u64 = 48 << 20;

/// A gateway process serving the probe component and the poll bomb.
fn gateway() -> Served {
    // The poll bomb imports poll_oneoff, so it runs on wasmtime-wasi's preview1.
    let modules = [
        ("probe".to_string(), component("probe_http")),
        ("pollbomb".to_string(), fixture("pollbomb")),
        ("hello".to_string(), fixture("hello")),
    ];
    let config = "[limits]\ntimeout_ms = 5000\nmax_memory_bytes = 100000000\n";
    Served::start_bytes(&modules, &[], config, &[])
}

/// `served`'s resident KiB, now (`VmRSS`) or at its peak since the last reset (`VmHWM`).
fn kib(served: &Served, field: &str) -> u64 {
    let path = format!("/proc/{}/status", served.child.id());
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Runs `request` and returns what it gave and how far the gateway's resident memory rose
/// above where it started, at its peak.
fn peak_growth<T>(served: &Served, request: impl FnOnce() -> T) -> (T, u64) {
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current resident size.
    let clear_refs = format!("/proc/{}/clear_refs", served.child.id());
    std::fs::write(clear_refs, "5").unwrap();
    let before = kib(served, "VmRSS:");
    let out = request();
    (out, kib(served, "VmHWM:").saturating_sub(before) * 1024)
}

/// How many requests of `module` ended as `outcome`, from `/metrics`.
fn requests(served: &Served, module: &str, outcome: &str) -> u64 {
    let series = format!("wasmgate_requests_total{{module=\"{module}\",outcome=\"{outcome}\"}} ");
    let (_, metrics) = served.admin_get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_component_hoarding_header_sets_ends_memory_exceeded_within_the_bound() {
    let gw = gateway();
    // 100,000 header sets of 1 KiB: about 150 MB of host memory with wasmtime's defaults.
    let (reply, grew) = peak_growth(&gw, || gw.get("/probe/hoard?n=100000&kib=1"));
    assert_eq!(reply.0, 500, "{}", reply.1);
    assert!(grew < HOST_BYTES_BOUND, "the gateway grew by {grew} bytes");
    assert_eq!(requests(&gw, "probe", "memory_exceeded"), 1);
    // The gateway and the module still serve.
    assert_eq!(gw.get("/hello").0, 200);
    let small = gw.get("/probe/hoard?n=10&kib=1");
    assert_eq!(small, (200, "hoarded 10\n".to_string()));
}

#[test]
fn a_header_set_past_its_cap_ends_memory_exceeded() {
    let gw = gateway();
    // One 8 KiB value fits in a header set; one of 64 KiB (half of wasmtime's default cap)
    // does not.
    let fits = gw.get("/probe/hoard?n=1&kib=8");
    assert_eq!(fits.1, "hoarded 1\n");
    let refused = gw.get("/probe/hoard?n=1&kib=64");
    assert_eq!(refused.0, 500, "{}", refused.1);
    assert_eq!(requests(&gw, "probe", "memory_exceeded"), 1);
}

#[test]
fn a_million_poll_subscriptions_are_refused_at_once_not_held_until_the_deadline() {
    let gw = gateway();
    let started = std::time::Instant::now();
    let (reply, grew) = peak_growth(&gw, || gw.get("/pollbomb"));
    // 48 is ENOMEM: the call would copy more than one host call may.
    assert_eq!(reply, (200, "errno 48\n".to_string()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the subscriptions were held: {:?}",
        started.elapsed()
    );
    // The guest's own 80 MB of linear memory is the guest's; the host's part stays small.
    assert!(
        grew < 80_000_000 + HOST_BYTES_BOUND,
        "the gateway grew by {grew} bytes"
    );
    assert_eq!(gw.get("/hello").0, 200);
}
