//! Streaming CGI (../shared/DESIGN.md "Streaming"), over real sockets: output reaches the client while
//! the guest runs, the body reaches the guest as it arrives, failures after the head cut
//! the response off, and a slow or vanished client holds back or ends its guest. Every
//! timing claim is checked as an order of events (the first line arrived before the last
//! was written, a reply came before the next piece was sent), never by sleeping.

use crate::common;

use std::time::Duration;

use common::{RawResponse, TestGateway, eventually, raw_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = "[limits]\nmax_concurrency = 8\n\
    [modules.whole]\nstream_after_bytes = 1048576\nstream_after_ms = 60000\n\
    [modules.from_first_byte]\nstream_after_bytes = 0\nstream_after_ms = 60000\n\
    [modules.spin_after_head]\ntimeout_ms = 500\n\
    [modules.held_back]\ntimeout_ms = 1000\nmax_output_bytes = 1073741824\n\
    [modules.abandoned]\ntimeout_ms = 30000\nmax_concurrency = 1\n\
    [modules.abandoned_spin]\ntimeout_ms = 30000\nmax_concurrency = 1\n\
    [modules.abandoned_early]\ntimeout_ms = 30000\nmax_concurrency = 1\n";

async fn gateway() -> TestGateway {
    let modules = [
        ("hello", "hello"),
        ("exit3", "exit3"),
        ("ticks", "ticks"),
        ("spinticks", "spinticks"),
        ("whole", "spinticks"),
        ("from_first_byte", "spinticks"),
        ("bigthentrap", "bigthentrap"),
        ("spin_after_head", "onethenspin"),
        ("held_back", "endless"),
        ("abandoned", "endless"),
        ("abandoned_spin", "onethenspin"),
        ("abandoned_early", "spin"),
        ("headerflood", "headerflood"),
        ("unended", "unended"),
        ("stdin_chunks", "stdin_chunks"),
        ("status204", "status204"),
    ];
    TestGateway::start(&modules, CONFIG).await
}

/// Sends a GET for `path` on a fresh connection.
async fn send_get(gw: &TestGateway, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(gw.public).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// One request on a fresh connection, read to its end as the server sends it.
async fn exchange(gw: &TestGateway, method: &str, path: &str) -> RawResponse {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    RawResponse::parse(&raw_bytes(gw.public, request.as_bytes()).await)
}

/// Reads into `buf` until it contains `needle`; false if the connection ended first.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) -> bool {
    let wait = async {
        let mut chunk = [0u8; 16 * 1024];
        while !contains(buf, needle) {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or(false)
}

/// Reads the rest of the response.
async fn read_rest(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(buf)).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn ticks() -> Vec<u8> {
    (0..10)
        .flat_map(|i| format!("tick {i}\n").into_bytes())
        .collect()
}

/// Both preview1 implementations stream: `ticks` sleeps in wasmtime-wasi's `poll_oneoff`,
/// `spinticks` spins on the gateway's own clock. The first line arrives before the guest
/// has written its last one, chunked, and the time to it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_reaches_the_client_while_the_guest_runs() {
    let mut gw = gateway().await;
    for module in ["ticks", "spinticks"] {
        let mut stream = send_get(&gw, &format!("/{module}")).await;
        let mut buf = Vec::new();
        assert!(
            read_until(&mut stream, &mut buf, b"tick 0\n").await,
            "{module}"
        );
        assert!(
            !contains(&buf, b"tick 9"),
            "{module}: the first line came only with the last"
        );
        read_rest(&mut stream, &mut buf).await;
        let response = RawResponse::parse(&buf);
        let head = response.head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(response.complete, "{module}: the last chunk is missing");
        assert_eq!(response.body, ticks(), "{module}");
        gw.wait_for_metric(&format!(
            r#"wasmgate_time_to_first_byte_seconds_count{{module="{module}"}} 1"#
        ))
        .await;
        gw.wait_for_metric(&format!(
            r#"wasmgate_requests_total{{module="{module}",outcome="ok"}} 1"#
        ))
        .await;
    }
    gw.stop().await;
}

/// A guest that finishes inside the buffer is answered as before streaming: a
/// `Content-Length`, and the status its outcome gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_finishes_inside_the_buffer_is_whole() {
    let mut gw = gateway().await;
    let hello = exchange(&gw, "GET", "/hello").await;
    let head = hello.head.to_ascii_lowercase();
    assert!(
        head.contains("content-length: 13") && !head.contains("chunked"),
        "{head}"
    );
    assert_eq!(hello.body, b"hello, world\n");
    let exit3 = exchange(&gw, "GET", "/exit3").await;
    assert_eq!(exit3.status(), Some(500), "{}", exit3.head);
    // Past neither threshold, a 300 ms guest is whole too.
    let whole = exchange(&gw, "GET", "/whole").await;
    let head = whole.head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", ticks().len())),
        "{head}"
    );
    assert_eq!(whole.body, ticks());
    gw.stop().await;
}

/// `stream_after_bytes = 0` streams from the first byte, whatever `stream_after_ms` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_after_bytes_zero_streams_from_the_first_byte() {
    let mut gw = gateway().await;
    let mut stream = send_get(&gw, "/from_first_byte").await;
    let mut buf = Vec::new();
    assert!(read_until(&mut stream, &mut buf, b"tick 0\n").await);
    assert!(
        !contains(&buf, b"tick 9"),
        "the first line came only with the last"
    );
    read_rest(&mut stream, &mut buf).await;
    assert_eq!(RawResponse::parse(&buf).body, ticks());
    gw.stop().await;
}

/// Once the head is out, a trap or the deadline can only cut the response off (no last
/// chunk), and the request is still counted with its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_head_cuts_the_response_off() {
    let mut gw = gateway().await;
    let trapped = exchange(&gw, "GET", "/bigthentrap").await;
    assert_eq!(trapped.status(), Some(200), "{}", trapped.head);
    assert!(
        !trapped.complete,
        "a trap after the head must cut the response off"
    );
    assert!(trapped.body.len() <= 200 * 1024);
    gw.wait_for_metric(r#"wasmgate_requests_total{module="bigthentrap",outcome="trap"} 1"#)
        .await;
    let timed_out = exchange(&gw, "GET", "/spin_after_head").await;
    assert_eq!(timed_out.status(), Some(200), "{}", timed_out.head);
    assert_eq!(timed_out.body, b"started\n");
    assert!(!timed_out.complete);
    gw.wait_for_metric(r#"wasmgate_requests_total{module="spin_after_head",outcome="timeout"} 1"#)
        .await;
    gw.stop().await;
}

/// A client that goes away mid-stream ends its guest, whether it was writing or spinning,
/// long before its 30 s deadline: the module's only slot is free again, and the request
/// is counted as `client_gone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_stream_frees_its_slot() {
    let mut gw = gateway().await;
    for (module, first) in [
        ("abandoned", &b"xxxx"[..]),
        ("abandoned_spin", b"started\n"),
    ] {
        for round in 1..=2 {
            let mut stream = send_get(&gw, &format!("/{module}")).await;
            let mut buf = Vec::new();
            assert!(
                read_until(&mut stream, &mut buf, first).await,
                "{module} #{round}"
            );
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{module} #{round}: a free slot"
            );
            drop(stream);
            gw.wait_for_metric(&format!(
                r#"wasmgate_requests_total{{module="{module}",outcome="client_gone"}} {round}"#
            ))
            .await;
            eventually("the guest has stopped", async || {
                gw.metrics()
                    .await
                    .lines()
                    .any(|l| l == format!(r#"wasmgate_inflight_requests{{module="{module}"}} 0"#))
            })
            .await;
        }
    }
    gw.stop().await;
}

/// A client that goes away before its guest has said anything ends the guest too, and is
/// counted as `client_gone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_before_the_head_ends_its_guest() {
    let mut gw = gateway().await;
    let inflight =
        |n: u32| format!(r#"wasmgate_inflight_requests{{module="abandoned_early"}} {n}"#);
    let stream = send_get(&gw, "/abandoned_early").await;
    eventually("the guest runs", async || {
        gw.metrics().await.lines().any(|l| l == inflight(1))
    })
    .await;
    drop(stream);
    gw.wait_for_metric(
        r#"wasmgate_requests_total{module="abandoned_early",outcome="client_gone"} 1"#,
    )
    .await;
    eventually("the guest has stopped", async || {
        gw.metrics().await.lines().any(|l| l == inflight(0))
    })
    .await;
    gw.stop().await;
}

/// A client that does not read slows its guest down, rather than filling the gateway's
/// memory: the guest, which would write a gigabyte a second, waits in its writes until its
/// 1 s deadline, which stops it and frees its slot; the client then finds no more than the
/// pipe and the socket buffers, cut off, and the request is counted as it ends. Guests
/// waiting on their clients hold no worker thread: with more of them than the gateway has
/// workers, other requests are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_its_guest_back() {
    let mut gw = gateway().await;
    let mut stream = send_get(&gw, "/held_back").await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(send_get(&gw, "/held_back").await);
    }
    let waiting = r#"wasmgate_inflight_requests{module="held_back"} 4"#;
    eventually(waiting, async || {
        gw.metrics().await.lines().any(|l| l == waiting)
    })
    .await;
    let hello = gw.get("/hello").await;
    assert_eq!(
        hello.text(),
        "hello, world\n",
        "answered while four guests wait"
    );
    drop(others);
    for running in [1, 0] {
        let gauge = format!(r#"wasmgate_inflight_requests{{module="held_back"}} {running}"#);
        eventually(&gauge, async || {
            gw.metrics().await.lines().any(|l| l == gauge)
        })
        .await;
    }
    let mut buf = Vec::new();
    read_rest(&mut stream, &mut buf).await;
    gw.wait_for_metric(r#"wasmgate_requests_total{module="held_back",outcome="timeout"} 1"#)
        .await;
    let response = RawResponse::parse(&buf);
    assert_eq!(response.status(), Some(200), "{}", response.head);
    assert!(!response.complete);
    assert!(
        response.body.len() < 32 << 20,
        "{} bytes went out to a client that read none",
        response.body.len()
    );
    gw.stop().await;
}

/// The body reaches the guest's stdin as it arrives: the guest's answer to the first
/// piece comes back before the second piece is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_fed_as_the_body_arrives() {
    let mut gw = gateway().await;
    let mut stream = TcpStream::connect(gw.public).await.unwrap();
    let head = "POST /stdin_chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let piece = |byte: u8| {
        let mut chunk = b"3e8\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(byte, 1000));
        chunk.extend_from_slice(b"\r\n");
        chunk
    };
    let mut buf = Vec::new();
    stream.write_all(&piece(b'a')).await.unwrap();
    assert!(
        read_until(&mut stream, &mut buf, b"got 1000\n").await,
        "no answer to the first piece"
    );
    stream.write_all(&piece(b'b')).await.unwrap();
    assert!(read_until(&mut stream, &mut buf, b"got 2000\n").await);
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    read_rest(&mut stream, &mut buf).await;
    let response = RawResponse::parse(&buf);
    assert!(response.complete);
    assert_eq!(response.body, b"got 1000\ngot 2000\neof\n");
    gw.stop().await;
}

/// A header block that never ends is a 502 once it passes the header limit, never a
/// partial head, even while the guest is still writing; so is a first line that never
/// ends, since it may still turn out to be a header (../shared/DESIGN.md "Streaming").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_that_never_ends_is_a_502() {
    let mut gw = gateway().await;
    for module in ["headerflood", "unended"] {
        let reply = exchange(&gw, "GET", &format!("/{module}")).await;
        assert_eq!(reply.status(), Some(502), "{module}: {}", reply.head);
        assert!(
            !reply.head.to_ascii_lowercase().contains("x-header"),
            "{}",
            reply.head
        );
        let body = String::from_utf8_lossy(&reply.body);
        assert!(
            body.contains(&format!("'{module}'")) && body.contains("header block"),
            "{body}"
        );
        gw.wait_for_metric(&format!(
            r#"wasmgate_requests_total{{module="{module}",outcome="bad_output"}} 1"#
        ))
        .await;
    }
    gw.stop().await;
}

/// HEAD, 204 and 304 stay bodiless when the response streams: the head goes out alone,
/// and the request is counted as answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_responses_stay_bodiless_while_streaming() {
    let mut gw = gateway().await;
    let head = exchange(&gw, "HEAD", "/ticks").await;
    assert_eq!(head.status(), Some(200), "{}", head.head);
    assert!(
        head.body.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&head.body)
    );
    gw.wait_for_metric(r#"wasmgate_requests_total{module="ticks",outcome="ok"} 1"#)
        .await;
    let no_content = exchange(&gw, "GET", "/status204").await;
    assert_eq!(no_content.status(), Some(204), "{}", no_content.head);
    assert!(
        no_content.body.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&no_content.body)
    );
    gw.wait_for_metric(r#"wasmgate_requests_total{module="status204",outcome="ok"} 1"#)
        .await;
    gw.stop().await;
}

/// Issue 30, item 6: once the head of a HEAD response is out, the guest is stopped as for
/// a client that hung up, so its slot is free at once (here the module's only one: it
/// runs for 30 s, `max_concurrency = 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_streaming_module_frees_its_slot() {
    let mut gw = gateway().await;
    let head = exchange(&gw, "HEAD", "/abandoned").await;
    assert_eq!(head.status(), Some(200), "{}", head.head);
    gw.wait_for_metric(r#"wasmgate_requests_total{module="abandoned",outcome="ok"} 1"#)
        .await;
    eventually("the HEAD's guest has stopped", async || {
        gw.metrics()
            .await
            .lines()
            .any(|l| l == r#"wasmgate_inflight_requests{module="abandoned"} 0"#)
    })
    .await;
    let mut stream = send_get(&gw, "/abandoned").await;
    let mut buf = Vec::new();
    assert!(read_until(&mut stream, &mut buf, b"xxxx").await);
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "the slot is free: {:?}",
        String::from_utf8_lossy(&buf[..buf.len().min(200)])
    );
    drop(stream);
    gw.stop().await;
}
