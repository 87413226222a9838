//! Hostile guests and hostile requests: every limit is enforced, answered with its status
//! and reason, and the gateway keeps serving afterwards.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::{RawResponse, TestGateway, build, raw, raw_bytes, raw_status, request};
use http::StatusCode;

// Every slot may go to one module here (`max_concurrency`): these tests are about the pool.
const LIMITS: &str = "[limits]\ntimeout_ms = 1000\nmax_memory_bytes = 33554432\nmax_concurrency = 64\n\
                      max_output_bytes = 1048576\nmax_body_bytes = 1048576\n\
                      [modules.spin_fuel]\nfuel = 20000000\n\
                      [modules.flood_buffered]\nstream_after_bytes = 2097152\nstream_after_ms = 60000\n";

async fn hostile() -> TestGateway {
    let modules = [
        ("hello", "hello"),
        ("spin", "spin"),
        ("spin_fuel", "spin"),
        ("membomb", "membomb"),
        ("bigmem", "bigmem"),
        ("flood", "flood"),
        ("flood_buffered", "flood"),
        ("echo", "echo"),
        ("wc", "wc"),
        ("sleepy", "sleepy"),
    ];
    TestGateway::start(&modules, LIMITS).await
}

async fn still_serves(gw: &TestGateway) {
    let r = gw.get("/hello").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello, world\n")
    );
}

/// Requests `path` and checks the status, and that the body says each of `reasons`.
async fn refused(
    gw: &TestGateway,
    path: &str,
    status: StatusCode,
    reasons: &[&str],
) -> common::Reply {
    let r = gw.get(path).await;
    assert_eq!(r.status, status, "{path}: {}", r.text());
    for reason in reasons {
        assert!(
            r.text().contains(reason),
            "{path}: {reason:?} in {}",
            r.text()
        );
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_its_deadline() {
    let mut gw = hostile().await;
    refused(
        &gw,
        "/spin",
        StatusCode::GATEWAY_TIMEOUT,
        &["'spin'", "1000 ms"],
    )
    .await;
    still_serves(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_exhaustion_is_a_500_that_says_so() {
    let mut gw = hostile().await;
    refused(
        &gw,
        "/spin_fuel",
        StatusCode::INTERNAL_SERVER_ERROR,
        &["'spin_fuel'", "fuel"],
    )
    .await;
    still_serves(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_past_the_cap_is_a_500() {
    let mut gw = hostile().await;
    let memory = StatusCode::INTERNAL_SERVER_ERROR;
    refused(
        &gw,
        "/membomb",
        memory,
        &["'membomb'", "memory limit of 33554432"],
    )
    .await;
    // A module that starts with more memory than any slot has is refused when it loads.
    refused(&gw, "/bigmem", memory, &["'bigmem'", "memory"]).await;
    // What the bombs leave resident is measured on a gateway process of its own, in
    // tests/cli.rs.
    still_serves(&gw).await;
    gw.stop().await;
}

/// A flood passes `stream_after_bytes` long before its cap, so it streams, and is cut off
/// at the cap; buffered up to more than its cap, it is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_output_is_cut_at_the_cap_without_buffering_it() {
    let mut gw = hostile().await;
    for _ in 0..3 {
        let raw = raw_bytes(gw.public, b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let r = RawResponse::parse(&raw);
        assert_eq!(r.status(), Some(200), "{}", r.head);
        assert!(
            !r.complete,
            "the flood's response must end without its last chunk"
        );
        assert!(
            r.body.len() <= 1 << 20,
            "{} bytes past the cap",
            r.body.len()
        );
        let r = refused(
            &gw,
            "/flood_buffered",
            StatusCode::BAD_GATEWAY,
            &["'flood_buffered'", "output limit"],
        )
        .await;
        assert!(r.body.len() < 4096);
    }
    gw.wait_for_metric(r#"wasmgate_requests_total{module="flood",outcome="output_too_large"} 3"#)
        .await;
    still_serves(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_cap_are_413_declared_or_chunked() {
    let mut gw = hostile().await;
    // A client that sends its whole oversized body still reads the 413 (the rest of the
    // body is drained, not met with a reset), and on the same connection too.
    for _ in 0..5 {
        let big = Bytes::from(vec![b'x'; 2 << 20]);
        let r = request(gw.public, build("POST", "/echo", &[], big))
            .await
            .expect("a readable 413");
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.text().contains("'echo'"), "{}", r.text());
    }
    // With Expect: 100-continue the body is never asked for: the 413 comes at once.
    let reply = raw(
        gw.public,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&reply), Some(413), "{reply}");
    assert!(!reply.contains("100 Continue"), "{reply}");
    // A declared Content-Length over the cap whose body never comes: 413 once the drain
    // gives up, and no guest ran.
    let reply = raw(
        gw.public,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&reply), Some(413), "{reply}");
    assert!(reply.contains("'echo'"), "{reply}");
    // Chunked: no Content-Length to check up front, so it is counted as it streams. A
    // guest that reads it all before it answers gets the 413; one that echoes as it reads
    // has sent its head by then, and its response is cut off. (The body is lines: an
    // echoed first line with no end could still become a header, and would be a 502.)
    let mut line = vec![b'y'; 0x10000];
    line[0xffff] = b'\n';
    let chunked = |module: &str| {
        let mut chunked = format!("POST /{module} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
        for _ in 0..20 {
            chunked.extend_from_slice(b"10000\r\n");
            chunked.extend_from_slice(&line);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        chunked
    };
    let reply = raw(gw.public, &chunked("wc")).await;
    assert_eq!(
        raw_status(&reply),
        Some(413),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert!(reply.contains("'wc'"), "{reply}");
    let echoed = RawResponse::parse(&raw_bytes(gw.public, &chunked("echo")).await);
    assert_eq!(echoed.status(), Some(200), "{}", echoed.head);
    assert!(!echoed.complete, "an echo past the body limit is cut off");
    gw.wait_for_metric(r#"wasmgate_requests_total{module="echo",outcome="body_too_large"} 8"#)
        .await;
    // Exactly at the cap is fine.
    let mut ok = vec![b'z'; 1 << 20];
    ok[0xffff] = b'\n';
    let ok = Bytes::from(ok);
    let r = request(gw.public, build("POST", "/echo", &[], ok))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 1 << 20));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_are_431() {
    let mut gw = hostile().await;
    let mut many = b"GET /hello HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"Connection: close\r\n\r\n");
    assert_eq!(raw_status(&raw(gw.public, &many).await), Some(431));
    let huge = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_eq!(
        raw_status(&raw(gw.public, huge.as_bytes()).await),
        Some(431)
    );
    still_serves(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_does_not_stall_the_others() {
    let mut gw = TestGateway::start(
        &[("hello", "hello"), ("spin", "spin")],
        "[limits]\ntimeout_ms = 3000\n",
    )
    .await;
    let addr = gw.public;
    let spinner = tokio::spawn(async move { common::get(addr, "/spin").await.unwrap().status });
    gw.wait_for_metric("wasmgate_pool_slots_in_use 1").await;
    // Twenty hellos complete while the spinner still holds its slot and a worker thread.
    for _ in 0..20 {
        still_serves(&gw).await;
    }
    assert!(
        !spinner.is_finished(),
        "the hellos should have finished before the spinner"
    );
    assert_eq!(spinner.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_sleeping_guests_run_side_by_side() {
    let mut gw = hostile().await;
    let addr = gw.public;
    let started = std::time::Instant::now();
    let sleepers: Vec<_> = (0..40)
        .map(|_| tokio::spawn(async move { common::get(addr, "/sleepy").await.unwrap() }))
        .collect();
    for s in sleepers {
        let r = s.await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "awake\n"));
    }
    // Forty 300 ms sleeps one after the other would take 12 s; side by side, well under.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_slot_in_time_is_503_with_retry_after() {
    let dir = modules_dir_with(&["sleepy"]);
    let mut gw = TestGateway::start_with_slots(dir, 1, "queue_timeout_ms = 50\n").await;
    let addr = gw.public;
    let first = tokio::spawn(async move { common::get(addr, "/sleepy").await.unwrap() });
    gw.wait_for_metric("wasmgate_pool_slots_in_use 1").await;
    let second = common::get(addr, "/sleepy").await.unwrap();
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers["retry-after"], "1");
    assert!(second.text().contains("'sleepy'"), "{}", second.text());
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    // The slot is free again.
    assert_eq!(
        common::get(addr, "/sleepy").await.unwrap().status,
        StatusCode::OK
    );
    gw.stop().await;
}

/// A temporary directory whose `modules/` holds the fixtures `names`.
fn modules_dir_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    for name in names {
        std::fs::write(modules.join(format!("{name}.wasm")), common::fixture(name)).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let mut gw = hostile().await;
    let addr = gw.public;
    let in_flight = tokio::spawn(async move { common::get(addr, "/sleepy").await });
    gw.wait_for_metric("wasmgate_pool_slots_in_use 1").await;
    let gateway = gw.gateway.take().unwrap();
    let admin = gw.admin;
    let shutdown = gateway.shutdown.clone();
    let stopping = tokio::spawn(gateway.stop());
    while !shutdown.is_triggered() {
        tokio::task::yield_now().await;
    }
    let ready = common::get(admin, "/readyz").await.unwrap();
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness while draining"
    );
    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "awake\n"));
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_read_only_and_only_for_their_module() {
    let lib = tempfile::tempdir().unwrap();
    std::fs::write(lib.path().join("hello.txt"), "from the volume\n").unwrap();
    let extra = format!(
        "[modules.withlib]\nvolumes = {{ \"/lib\" = {:?} }}\n",
        lib.path()
    );
    let mut gw =
        TestGateway::start(&[("withlib", "readfile"), ("without", "readfile")], &extra).await;
    let r = gw.get("/withlib").await;
    assert_eq!(r.text(), "/lib\nfrom the volume\nwrite refused\n");
    assert!(!lib.path().join("new.txt").exists());
    // No volume configured: no directory at all.
    assert_eq!(gw.get("/without").await.text(), "write refused\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_follow_the_module_name_in_argv() {
    let extra = "[modules.argv]\nargs = [\"-q\", \"x y\"]\n";
    let mut gw = TestGateway::start(&[("argv", "argv")], extra).await;
    assert_eq!(gw.get("/argv").await.text(), "argv\0-q\0x y\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sleeping_in_a_host_call_is_cut_at_its_deadline() {
    let mut gw = TestGateway::start(
        &[("sleepy", "sleepy"), ("hello", "hello")],
        "[limits]\ntimeout_ms = 100\n",
    )
    .await;
    refused(
        &gw,
        "/sleepy",
        StatusCode::GATEWAY_TIMEOUT,
        &["'sleepy'", "100 ms"],
    )
    .await;
    still_serves(&gw).await;
    gw.stop().await;
}

/// A body that has not arrived whole within `body_timeout_ms` is a 400 while the head is
/// not sent (a guest that reads it all first), and cuts the response off once it is (a
/// guest that echoes as it reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off() {
    let mut gw = TestGateway::start(
        &[("echo", "echo"), ("wc", "wc"), ("hello", "hello")],
        "body_timeout_ms = 300\n",
    )
    .await;
    let started = std::time::Instant::now();
    let reply = raw(
        gw.public,
        b"POST /wc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..",
    )
    .await;
    assert_eq!(raw_status(&reply), Some(400), "{reply}");
    assert!(
        reply.contains("'wc'") && reply.contains("not received in time"),
        "{reply}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    let echoed = raw_bytes(
        gw.public,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..",
    )
    .await;
    let echoed = RawResponse::parse(&echoed);
    assert_eq!(echoed.status(), Some(200), "{}", echoed.head);
    assert_eq!(echoed.body, b"only ten..");
    assert!(
        !echoed.complete,
        "the echo of a broken-off body must be cut off"
    );
    gw.wait_for_metric(r#"wasmgate_requests_total{module="echo",outcome="bad_request"} 1"#)
        .await;
    still_serves(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let started = std::time::Instant::now();
    // `raw` reads until the server closes (or 5 s): keep reading past that.
    let mut stream = tokio::net::TcpStream::connect(gw.public).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection was still open after 20 s");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early: {:?}",
        started.elapsed()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_their_turn() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "max_connections = 2\n").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.public).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = tokio::net::TcpStream::connect(gw.public).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served past max_connections = 2"
    );
    held.pop();
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    gw.stop().await;
}

/// With serving threads, `max_connections` is still one cap for the port: of four
/// connections held open, exactly two are served at once (wherever they land), and the
/// others are served as soon as those close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_threads_share_the_connection_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra = "max_connections = 2\nserve_threads = 2\n";
    let mut gw = TestGateway::start(&[("hello", "hello")], extra).await;
    let request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(gw.public).await.unwrap();
        s.write_all(request).await.unwrap();
        clients.push(s);
    }
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for mut s in clients {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => served.push(s),
            _ => waiting.push(s),
        }
    }
    assert_eq!(
        served.len(),
        2,
        "{} of 4 connections served at once with max_connections = 2",
        served.len()
    );
    drop(served);
    for mut s in waiting {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a waiting connection is served once others close")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_more_requests_than_slots_is_backpressure_not_collapse() {
    let dir = modules_dir_with(&["sleepy", "hello"]);
    let extra = "queue_timeout_ms = 100\n[limits]\nmax_concurrency = 4\n";
    let mut gw = TestGateway::start_with_slots(dir, 4, extra).await;
    let addr = gw.public;
    let all: Vec<_> = (0..40)
        .map(|_| tokio::spawn(async move { common::get(addr, "/sleepy").await.unwrap().status }))
        .collect();
    let mut ok = 0;
    for r in all {
        match r.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (4..40).contains(&ok),
        "{ok} of 40 served with 4 slots and a 100 ms queue"
    );
    // Recovered at once.
    let r = common::get(addr, "/hello").await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let m = gw.metrics().await;
    assert!(m.contains("wasmgate_pool_slots_in_use 0"), "{m}");
    assert!(m.contains("wasmgate_requests_waiting_for_slot 0"), "{m}");
    gw.stop().await;
}
