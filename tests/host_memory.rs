//! What a guest can make the gateway hold outside its linear memory is capped
//! (`guest::host_limits`): past the caps a request fails, the gateway's memory stays
//! within about 17 MiB of host objects per request, and every other request is served.
//!
//! Each test measures the peak resident memory of this process (the gateway runs in it)
//! across the request, so the tests of this file take turns.

mod common;

use common::{TestGateway, component, fixture};
use http::StatusCode;
use tokio::sync::Mutex;

/// Host memory one request may make the gateway hold beyond its linear memory
/// (SECURITY.md), with room for the allocator's own slack.
const HOST_BYTES_BOUND: u64 = 48 << 20;
/// The memory measurements of this file take turns.
static MEASURING: Mutex<()> = Mutex::const_new(());

/// A gateway serving the probe component and the poll bomb.
async fn gateway() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(modules.join("probe.wasm"), component("probe_http")).unwrap();
    std::fs::write(modules.join("pollbomb.wasm"), fixture("pollbomb")).unwrap();
    std::fs::write(modules.join("hello.wasm"), fixture("hello")).unwrap();
    // The poll bomb imports poll_oneoff, so it runs on wasmtime-wasi's preview1.
    TestGateway::start_in(
        dir,
        "[limits]\ntimeout_ms = 5000\nmax_memory_bytes = 100000000\n",
    )
    .await
}

/// This process's resident KiB, now (`VmRSS`) or at its peak since the last reset
/// (`VmHWM`).
fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Runs `request` and returns what it gave and how far this process's resident memory
/// rose above where it started, at its peak.
async fn peak_growth<T>(request: impl AsyncFnOnce() -> T) -> (T, u64) {
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = kib("VmRSS:");
    let out = request().await;
    (out, kib("VmHWM:").saturating_sub(before) * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_hoarding_header_sets_ends_memory_exceeded_within_the_bound() {
    let _turn = MEASURING.lock().await;
    let gw = gateway().await;
    // 100,000 header sets of 1 KiB: about 150 MB of host memory with wasmtime's defaults.
    let (reply, grew) = peak_growth(async || gw.get("/probe/hoard?n=100000&kib=1").await).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.text()
    );
    assert!(grew < HOST_BYTES_BOUND, "the gateway grew by {grew} bytes");
    assert_eq!(gw.requests("probe", "memory_exceeded").await, 1);
    // The gateway and the module still serve.
    assert_eq!(gw.get("/hello").await.status, StatusCode::OK);
    let small = gw.get("/probe/hoard?n=10&kib=1").await;
    assert_eq!(
        (small.status, small.text().as_str()),
        (StatusCode::OK, "hoarded 10\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_set_past_its_cap_ends_memory_exceeded() {
    let gw = gateway().await;
    // One 8 KiB value fits in a header set; one of 64 KiB (half of wasmtime's default cap)
    // does not.
    let fits = gw.get("/probe/hoard?n=1&kib=8").await;
    assert_eq!(fits.text(), "hoarded 1\n");
    let refused = gw.get("/probe/hoard?n=1&kib=64").await;
    assert_eq!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        refused.text()
    );
    assert_eq!(gw.requests("probe", "memory_exceeded").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_poll_subscriptions_are_refused_at_once_not_held_until_the_deadline() {
    let _turn = MEASURING.lock().await;
    let gw = gateway().await;
    let started = std::time::Instant::now();
    let (reply, grew) = peak_growth(async || gw.get("/pollbomb").await).await;
    // 48 is ENOMEM: the call would copy more than one host call may.
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "errno 48\n")
    );
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
    assert_eq!(gw.get("/hello").await.status, StatusCode::OK);
}
