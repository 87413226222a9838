//! The admin listener's `/metrics`: every series of ../shared/DESIGN.md, counted right, with the
//! `module` label limited to module files that exist.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestGateway, fixture};

/// `name{labels} value` lines of the Prometheus text format, by series.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_string(), value.parse().ok()?)))
        .collect()
}

async fn scrape(gw: &TestGateway) -> (String, HashMap<String, f64>) {
    let r = common::get(gw.admin, "/metrics").await.unwrap();
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text();
    let map = samples(&text);
    (text, map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_module_and_outcome() {
    let mut gw = TestGateway::start(
        &[("hello", "hello"), ("trap", "trap"), ("spin", "spin")],
        "[limits]\ntimeout_ms = 200\n",
    )
    .await;
    for _ in 0..5 {
        gw.get("/hello").await;
    }
    gw.get("/trap").await;
    gw.get("/spin").await;
    for i in 0..20 {
        gw.get(&format!("/random{i}")).await;
    }
    gw.get("/bad.name").await;
    let (text, m) = scrape(&gw).await;
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing from\n{text}"))
    };
    assert_eq!(
        get(r#"wasmgate_requests_total{module="hello",outcome="ok"}"#),
        5.0
    );
    assert_eq!(
        get(r#"wasmgate_requests_total{module="trap",outcome="trap"}"#),
        1.0
    );
    assert_eq!(
        get(r#"wasmgate_requests_total{module="spin",outcome="timeout"}"#),
        1.0
    );
    assert_eq!(
        get(r#"wasmgate_requests_total{module="_unknown",outcome="not_found"}"#),
        20.0
    );
    assert_eq!(
        get(r#"wasmgate_requests_total{module="_unknown",outcome="bad_request"}"#),
        1.0
    );
    assert!(!text.contains("random"), "unknown names became labels");
    assert_eq!(
        get(r#"wasmgate_request_duration_seconds_count{module="hello"}"#),
        5.0
    );
    assert_eq!(
        get(r#"wasmgate_request_duration_seconds_bucket{module="hello",le="30"}"#),
        5.0
    );
    assert!(
        text.contains(r#"wasmgate_request_duration_seconds_bucket{module="hello",le="0.00001"}"#)
    );
    assert_eq!(
        get(r#"wasmgate_instantiate_duration_seconds_count{module="hello"}"#),
        5.0
    );
    assert_eq!(get(r#"wasmgate_fuel_consumed_count{module="hello"}"#), 5.0);
    assert!(get(r#"wasmgate_fuel_consumed_sum{module="hello"}"#) > 0.0);
    assert_eq!(get(r#"wasmgate_inflight_requests{module="hello"}"#), 0.0);
    assert_eq!(get("wasmgate_pool_slots_in_use"), 0.0);
    assert_eq!(get("wasmgate_pool_slots"), f64::from(common::TEST_SLOTS));
    assert_eq!(get("wasmgate_modules_loaded"), 3.0);
    assert_eq!(get("wasmgate_timeout_overshoot_seconds_count"), 1.0);
    assert!(
        get("wasmgate_timeout_overshoot_seconds_sum") < 0.1,
        "a timeout overshot its deadline by 100 ms or more"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_reloads_and_the_cache_are_counted() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let dir = gw.modules_dir();
    std::fs::write(dir.join("broken.wasm"), b"nope").unwrap();
    std::fs::write(dir.join("extra.wasm"), fixture("counter")).unwrap();
    let wait = async |want: &str| {
        for _ in 0..200 {
            if scrape(&gw).await.0.contains(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{want} never appeared");
    };
    wait(r#"wasmgate_module_loads_total{module="broken",result="failed"} 1"#).await;
    wait(r#"wasmgate_module_loads_total{module="extra",result="compiled"} 1"#).await;
    std::fs::remove_file(dir.join("extra.wasm")).unwrap();
    wait(r#"wasmgate_module_loads_total{module="extra",result="removed"} 1"#).await;
    let (_, m) = scrape(&gw).await;
    assert_eq!(
        m[r#"wasmgate_module_loads_total{module="hello",result="compiled"}"#],
        1.0
    );
    assert_eq!(
        m[r#"wasmgate_module_compile_duration_seconds_count{module="hello"}"#],
        1.0
    );
    assert_eq!(m["wasmgate_modules_loaded"], 1.0);
    // The broken module's requests carry its own name: its file exists.
    gw.get("/broken").await;
    let (_, m) = scrape(&gw).await;
    assert_eq!(
        m[r#"wasmgate_requests_total{module="broken",outcome="unavailable"}"#],
        1.0
    );
    gw.stop().await;

    let mut gw = TestGateway::start_in(gw.dir, "").await;
    let (text, m) = scrape(&gw).await;
    assert_eq!(
        m[r#"wasmgate_module_loads_total{module="hello",result="cache_hit"}"#], 1.0,
        "{text}"
    );
    assert_eq!(
        m[r#"wasmgate_cache_lookups_total{result="hit"}"#], 1.0,
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_and_pool_slots_show_while_guests_run() {
    let mut gw = TestGateway::start(&[("sleepy", "sleepy")], "").await;
    let addr = gw.public;
    let sleepers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { common::get(addr, "/sleepy").await }))
        .collect();
    // All three are running once the pool says so; the in-flight gauge agrees.
    gw.wait_for_metric("wasmgate_pool_slots_in_use 3").await;
    let (_, m) = scrape(&gw).await;
    assert_eq!(m[r#"wasmgate_inflight_requests{module="sleepy"}"#], 3.0);
    for s in sleepers {
        s.await.unwrap().unwrap();
    }
    let (_, m) = scrape(&gw).await;
    assert_eq!(m[r#"wasmgate_inflight_requests{module="sleepy"}"#], 0.0);
    gw.stop().await;
}
