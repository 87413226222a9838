//! Hot reload and the compiled-module cache: deploying is a file copy, nothing half-written
//! or broken is ever served, restarts load from the cache, and a tampered cache is caught.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestGateway, eventually, eventually_within, fixture, hello_saying};
use http::StatusCode;

async fn body(gw: &TestGateway, path: &str) -> (StatusCode, String) {
    let r = gw.get(path).await;
    (r.status, r.text())
}

/// Replaces `path` by a plain overwrite, as `cp` does.
fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Replaces `path` atomically, as `cp tmp && mv tmp path` does.
fn rename_into(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("incoming");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_file_replaces_the_module() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let file = gw.modules_dir().join("hello.wasm");
    overwrite(&file, &fixture("hello2"));
    eventually("cp serves v2", async || {
        body(&gw, "/hello").await.1 == "hello, v2\n"
    })
    .await;
    rename_into(&file, &fixture("hello"));
    eventually("rename serves v1", async || {
        body(&gw, "/hello").await.1 == "hello, world\n"
    })
    .await;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture("hello")));
    let list = gw.modules().await;
    assert_eq!(list[0]["digest"], format!("sha256:{digest}"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replacement_never_replaces_the_good_version() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let file = gw.modules_dir().join("hello.wasm");
    overwrite(&file, b"\0asm garbage");
    eventually("the failure shows in /modules", async || {
        !gw.modules().await[0]["error"].is_null()
    })
    .await;
    let status = &gw.modules().await[0];
    assert_eq!(
        status["state"], "ready",
        "the old version still serves: {status}"
    );
    assert!(
        status["error"].as_str().unwrap().contains("cannot compile"),
        "{status}"
    );
    assert_eq!(
        body(&gw, "/hello").await,
        (StatusCode::OK, "hello, world\n".into())
    );
    // A module that links badly is refused the same way.
    overwrite(&file, &fixture("unknown_import"));
    eventually("link failure shows", async || {
        gw.modules().await[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nosuch"))
    })
    .await;
    assert_eq!(body(&gw, "/hello").await.1, "hello, world\n");
    // The next good write is served and clears the error.
    overwrite(&file, &fixture("hello2"));
    eventually("fixed", async || {
        body(&gw, "/hello").await.1 == "hello, v2\n"
    })
    .await;
    assert!(gw.modules().await[0]["error"].is_null());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_is_never_served() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let next = hello_saying("the complete new version");
    let (first, rest) = next.split_at(next.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(gw.modules_dir().join("hello.wasm"))
        .unwrap();
    file.write_all(first).unwrap();
    file.flush().unwrap();
    // Stalled mid-copy for longer than the watcher's patience (3 s without a write or
    // a close): the half-written file is tried, fails, and is recorded beside the
    // version that keeps serving.
    eventually_within(
        Duration::from_secs(10),
        "the truncated file is refused",
        async || {
            let modules = gw.modules().await;
            modules[0]["state"] == "ready" && modules[0]["error"].is_string()
        },
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            body(&gw, "/hello").await,
            (StatusCode::OK, "hello, world\n".into())
        );
    }
    file.write_all(rest).unwrap();
    drop(file);
    eventually("the completed file", async || {
        body(&gw, "/hello").await.1 == "the complete new version\n"
    })
    .await;
    gw.stop().await;
}

/// Writes `bytes` to `path` in `pieces` writes, `pause` apart, then closes it: a copy
/// onto a slow or busy disk.
fn write_slowly(path: &Path, bytes: &[u8], pieces: usize, pause: Duration) {
    let mut file = std::fs::File::create(path).unwrap();
    for piece in bytes.chunks(bytes.len().div_ceil(pieces)) {
        std::thread::sleep(pause);
        file.write_all(piece).unwrap();
        file.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_module_copied_slowly_is_waited_for_never_missing_or_broken() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let path = gw.modules_dir().join("fresh.wasm");
    let bytes = hello_saying("fresh, at last");
    // 12 pieces a second apart: each pause is longer than any quiet time a plain
    // debounce would allow, and the whole copy longer than a request is held.
    let writer =
        std::thread::spawn(move || write_slowly(&path, &bytes, 12, Duration::from_secs(1)));
    eventually("the new module shows as loading", async || {
        gw.module("fresh").await.is_some_and(|m| {
            m["state"] == "loading"
                && m["pending"]["digest"].is_null()
                && m["pending"]["since"].is_u64()
        })
    })
    .await;
    // A request while it is written waits for it, at most 10 s, then is told to retry.
    let started = std::time::Instant::now();
    let held = gw.get("/fresh").await;
    assert_eq!(
        held.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        held.text()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(held.headers["retry-after"], "1");
    assert!(
        held.text().contains("module 'fresh' is loading"),
        "{}",
        held.text()
    );
    // Requests meanwhile are held or told to retry: never a 404 or a 500.
    let stop = Arc::new(AtomicBool::new(false));
    let client = common::keep_getting(gw.public, "/fresh", stop.clone());
    writer.join().unwrap();
    eventually("the complete module serves", async || {
        body(&gw, "/fresh").await == (StatusCode::OK, "fresh, at last\n".into())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for (status, text) in client.await.unwrap() {
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {text}"
        );
    }
    assert_eq!(gw.requests("fresh", "unavailable").await, 0);
    let fresh = gw.module("fresh").await.expect("fresh in /modules");
    assert_eq!(fresh["state"], "ready");
    assert!(
        fresh["pending"].is_null() && fresh["error"].is_null(),
        "{fresh}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_shows_its_pending_version_beside_the_serving_one() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let path = gw.modules_dir().join("hello.wasm");
    let bytes = hello_saying("hello, next");
    let writer =
        std::thread::spawn(move || write_slowly(&path, &bytes, 6, Duration::from_millis(500)));
    eventually("the redeploy shows as pending", async || {
        let modules = gw.modules().await;
        modules[0]["state"] == "ready" && modules[0]["pending"]["since"].is_u64()
    })
    .await;
    assert_eq!(body(&gw, "/hello").await.1, "hello, world\n");
    writer.join().unwrap();
    eventually("the new version serves", async || {
        body(&gw, "/hello").await.1 == "hello, next\n"
    })
    .await;
    let modules = gw.modules().await;
    assert!(
        modules[0]["pending"].is_null() && modules[0]["error"].is_null(),
        "{}",
        modules[0]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_rename_move_the_route() {
    let mut gw = TestGateway::start(&[("hello", "hello"), ("other", "counter")], "").await;
    let dir = gw.modules_dir();
    std::fs::rename(dir.join("hello.wasm"), dir.join("greeting.wasm")).unwrap();
    eventually("renamed route", async || {
        body(&gw, "/greeting").await.1 == "hello, world\n"
    })
    .await;
    eventually("old route gone", async || {
        body(&gw, "/hello").await.0 == StatusCode::NOT_FOUND
    })
    .await;
    std::fs::remove_file(dir.join("other.wasm")).unwrap();
    eventually("deleted", async || {
        body(&gw, "/other").await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let names: Vec<String> = gw
        .modules()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(names, ["greeting"]);
    // A new file appears.
    std::fs::write(dir.join("fresh.wasm"), fixture("counter")).unwrap();
    eventually("new module", async || {
        body(&gw, "/fresh").await.1 == "g=1 m=1\n"
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_on_the_version_they_started_with() {
    let mut gw = TestGateway::start(&[("svc", "sleepy")], "").await;
    let addr = gw.public;
    let in_flight = tokio::spawn(async move { common::get(addr, "/svc").await.unwrap().text() });
    gw.wait_for_metric("wasmgate_pool_slots_in_use 1").await;
    rename_into(&gw.modules_dir().join("svc.wasm"), &fixture("hello2"));
    eventually("new version", async || {
        body(&gw, "/svc").await.1 == "hello, v2\n"
    })
    .await;
    assert_eq!(in_flight.await.unwrap(), "awake\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_fails_no_request() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let addr = gw.public;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| common::keep_getting(addr, "/hello", stop.clone()))
        .collect();
    let file = gw.modules_dir().join("hello.wasm");
    for i in 0..20 {
        let version = if i % 2 == 0 {
            fixture("hello2")
        } else {
            fixture("hello")
        };
        if i % 4 < 2 {
            rename_into(&file, &version)
        } else {
            overwrite(&file, &version)
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        for (status, text) in c.await.unwrap() {
            total += 1;
            assert_eq!(status, StatusCode::OK);
            assert!(
                text == "hello, world\n" || text == "hello, v2\n",
                "{text:?}"
            );
        }
    }
    assert!(total > 100, "only {total} requests");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_storm_loads_everything_while_others_keep_serving() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let dir = gw.modules_dir();
    for i in 0..100 {
        std::fs::write(
            dir.join(format!("m{i:03}.wasm")),
            hello_saying(&format!("module {i}")),
        )
        .unwrap();
    }
    // Reload compiles run at nice 19: on a machine busy with other work they crawl, and
    // this test is about all of them landing, not about how fast. Meanwhile a client asks
    // for /hello without pause, from before the storm until it is over.
    let storming = Arc::new(AtomicBool::new(true));
    let addr = gw.public;
    let client = tokio::spawn({
        let storming = storming.clone();
        async move {
            let mut served = 0u32;
            while storming.load(Ordering::Relaxed) {
                let r = common::get(addr, "/hello").await.unwrap();
                assert_eq!(r.status, StatusCode::OK, "during the storm: {}", r.text());
                served += 1;
            }
            served
        }
    });
    eventually_within(Duration::from_secs(120), "all 100 served", async || {
        let modules = gw.modules().await;
        let ready = modules
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "ready");
        ready.count() == 101
    })
    .await;
    storming.store(false, Ordering::Relaxed);
    let served = client.await.unwrap();
    let loads = gw.metrics().await;
    let compiled = loads
        .lines()
        .filter(|l| l.starts_with("wasmgate_module_loads_total{module=\"m"))
        .filter(|l| l.contains("result=\"compiled\""))
        .count();
    assert_eq!(compiled, 100, "{loads}");
    for i in (0..100).step_by(7) {
        assert_eq!(
            body(&gw, &format!("/m{i:03}")).await.1,
            format!("module {i}\n")
        );
    }
    assert!(served > 0, "no /hello was answered during the storm");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_from_the_cache_and_a_tampered_cache_is_recompiled() {
    let modules = [("hello", "hello"), ("cgi", "cgi"), ("echo", "echo")];
    let mut gw = TestGateway::start(&modules, "").await;
    assert_all_from(&gw, "compiled").await;
    gw.stop().await;

    let mut gw = TestGateway::start_in(gw.dir, "").await;
    assert_all_from(&gw, "cache").await;
    assert_eq!(body(&gw, "/hello").await.1, "hello, world\n");
    gw.stop().await;

    // Flip bytes in the middle of every artifact.
    let mut tampered = 0;
    for entry in walk(&gw.dir.path().join("cache")) {
        if entry.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&entry).unwrap();
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 32] {
                *b ^= 0xff;
            }
            std::fs::write(&entry, bytes).unwrap();
            tampered += 1;
        }
    }
    assert_eq!(tampered, 3);
    let mut gw = TestGateway::start_in(gw.dir, "").await;
    assert_all_from(&gw, "compiled").await;
    assert_eq!(body(&gw, "/hello").await.1, "hello, world\n");
    assert_eq!(gw.get("/cgi").await.status, StatusCode::CREATED);
    gw.stop().await;
}

/// Asserts that every module in `/modules` came from `source` ("cache" or "compiled").
async fn assert_all_from(gw: &TestGateway, source: &str) {
    let list = gw.modules().await;
    let all = list
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["source"] == source);
    assert!(all, "not all from {source}: {list}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
