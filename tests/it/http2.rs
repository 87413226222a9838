//! HTTP/2 on the public port, beside HTTP/1.1: every stream is a request with the same
//! routing, limits, outcomes and metrics; streams, header lists and silence are bounded;
//! a client that resets streams faster than it lets them run loses its connection, not
//! the gateway its memory; a drain sends GOAWAY and lets open streams finish.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::served::Served;
use common::{TestGateway, h2, open_for};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::net::TcpStream;

const HELLO: &str = "hello, world\n";
/// The client preface of HTTP/2 with prior knowledge.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Fifty requests at once on one connection: each is served and counted as a request, and
/// a CGI module sees HTTP/2 and the `:authority` as its host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_on_one_connection_are_requests_like_any_other() {
    let gw = TestGateway::start(&[("hello", "hello"), ("envdump", "envdump")], "").await;
    let sender = h2::h2c(gw.public).await;
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut sender = sender.clone();
        let addr = gw.public;
        streams.spawn(async move { h2::get(&mut sender, addr, "/hello").await });
    }
    while let Some(reply) = streams.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (StatusCode::OK, HELLO)
        );
    }
    assert_eq!(gw.requests("hello", "ok").await, 50);

    let env = h2::get(&mut sender.clone(), gw.public, "/envdump/x?q=1")
        .await
        .text();
    let authority = gw.public.to_string();
    for line in [
        "SERVER_PROTOCOL=HTTP/2.0".to_string(),
        format!("HTTP_HOST={authority}"),
        "SERVER_NAME=127.0.0.1".to_string(),
        "PATH_INFO=/x".to_string(),
        "QUERY_STRING=q=1".to_string(),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }
    assert!(!env.contains("HTTPS="), "cleartext is not HTTPS:\n{env}");
    // And HTTP/1.1 on the same port.
    assert_eq!(gw.get("/hello").await.text(), HELLO);
}

/// The limits hold per stream, and one stream's failure leaves its connection serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_holds_per_stream() {
    let limits = "[limits]\ntimeout_ms = 300\nmax_body_bytes = 1000\n";
    let modules = [("hello", "hello"), ("spin", "spin"), ("echo", "echo")];
    let gw = TestGateway::start(&modules, limits).await;
    let mut sender = h2::h2c(gw.public).await;
    let authority = gw.public.to_string();
    let spin = h2::get(&mut sender, gw.public, "/spin").await;
    assert_eq!(spin.status, StatusCode::GATEWAY_TIMEOUT, "{}", spin.text());
    let body = Bytes::from(vec![b'x'; 5000]);
    let big = h2::send(&mut sender, h2::request("POST", &authority, "/echo", body))
        .await
        .unwrap();
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    let small = h2::send(
        &mut sender,
        h2::request("POST", &authority, "/echo", Bytes::from_static(b"abc")),
    )
    .await
    .unwrap();
    assert_eq!(
        (small.status, small.text().as_str()),
        (StatusCode::OK, "abc")
    );
    assert_eq!(
        h2::get(&mut sender, gw.public, "/hello").await.text(),
        HELLO
    );
    assert_eq!(gw.requests("spin", "timeout").await, 1);
    assert_eq!(gw.requests("echo", "body_too_large").await, 1);
}

/// `http2_max_streams` is what the server's SETTINGS allow, and more requests than that
/// on one connection wait their turn rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_bounded_by_the_config() {
    let gw = TestGateway::start(&[("sleepy", "sleepy")], "http2_max_streams = 3\n").await;
    let (sender, _conn) = h2::raw_h2c(gw.public).await;
    let mut sender = sender.ready().await.unwrap();
    // The server's SETTINGS come with its first frames; a request makes sure they are in.
    let req = Request::get(format!("http://{}/sleepy", gw.public))
        .body(())
        .unwrap();
    let (response, _) = sender.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    assert_eq!(sender.current_max_send_streams(), 3);

    // Once a client has the server's SETTINGS, it holds the streams beyond them back.
    let mut hyper_sender = h2::h2c(gw.public).await;
    assert_eq!(
        h2::get(&mut hyper_sender, gw.public, "/sleepy")
            .await
            .status,
        StatusCode::OK
    );
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut sender = hyper_sender.clone();
        let addr = gw.public;
        streams.spawn(async move { h2::get(&mut sender, addr, "/sleepy").await.status });
    }
    while let Some(status) = streams.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
}

/// A header list larger than an HTTP/1.1 head may be is refused (a 431, or the stream or
/// connection reset for a list far beyond it), and the gateway serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_header_list_is_refused() {
    let gw = TestGateway::start(&[("hello", "hello")], "").await;
    for size in [100 * 1024, 1024 * 1024] {
        let (sender, _conn) = h2::raw_h2c(gw.public).await;
        let mut sender = sender.ready().await.unwrap();
        let req = Request::get(format!("http://{}/hello", gw.public))
            .header("x-big", "a".repeat(size))
            .body(())
            .unwrap();
        let outcome = match sender.send_request(req, true) {
            Ok((response, _)) => match response.await {
                Ok(response) => format!("status {}", response.status()),
                Err(e) => format!("error {e}"),
            },
            Err(e) => format!("error {e}"),
        };
        assert!(
            outcome == "status 431 Request Header Fields Too Large" || outcome.starts_with("error"),
            "{size} bytes of headers: {outcome}"
        );
    }
    let mut sender = h2::h2c(gw.public).await;
    assert_eq!(
        h2::get(&mut sender, gw.public, "/hello").await.text(),
        HELLO
    );
}

/// A connection that never asks anything is closed once a request head would have had to
/// arrive: one silent from the start, one that sends the preface alone, one that completes
/// the handshake and then sends no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_asks_is_closed() {
    let gw = TestGateway::start(&[("hello", "hello")], "").await;
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    let settings: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    let handshake = [PREFACE, settings].concat();
    let sends: [&[u8]; 4] = [b"", &PREFACE[..10], PREFACE, &handshake];
    let mut waits = tokio::task::JoinSet::new();
    for sent in sends {
        let stream = TcpStream::connect(gw.public).await.unwrap();
        let sent = sent.to_vec();
        waits.spawn(async move {
            (
                sent.len(),
                open_for(stream, &sent, Duration::from_secs(30)).await,
            )
        });
    }
    while let Some(waited) = waits.join_next().await {
        let (sent, open) = waited.unwrap();
        let open = open.unwrap_or_else(|| panic!("sent {sent} bytes: still open after 30 s"));
        assert!(
            open >= Duration::from_secs(9),
            "sent {sent} bytes: closed after {open:?}, before the header timeout"
        );
    }
    assert_eq!(gw.get("/hello").await.text(), HELLO);
}

/// A drain sends GOAWAY: a stream under way finishes whole, and no new one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_open_streams_finish() {
    let mut gw = TestGateway::start(&[("slowlines", "slowlines")], "").await;
    let mut sender = h2::h2c(gw.public).await;
    let req = h2::request("GET", &gw.public.to_string(), "/slowlines", Bytes::new());
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"line 1\n"), "{first:?}");
    let stopping = tokio::spawn(async move { gw.stop().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rest = body
        .collect()
        .await
        .expect("the stream finishes")
        .to_bytes();
    let whole = [first, rest].concat();
    assert!(
        whole.ends_with(b"line 20\n"),
        "{}",
        String::from_utf8_lossy(&whole)
    );
    let req = h2::request("GET", "127.0.0.1", "/slowlines", Bytes::new());
    let after = h2::send(&mut sender, req).await;
    assert!(after.is_err(), "a new stream after GOAWAY: {after:?}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the drain ends")
        .unwrap();
}

/// The HTTP/2 "rapid reset" attack, both ways: streams reset before the server takes them
/// (h2 closes the connection), and streams reset once they have started running (the
/// gateway closes the connection once cancels outrun answers). The connection is lost,
/// the gateway's memory stays put and other clients are served throughout.
#[test]
fn a_client_resetting_streams_loses_its_connection() {
    let gw = Served::start(&[("hello", "hello"), ("sleepy", "sleepy")], &[]);
    let addr = gw.public.parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = gw.resident_kib();
    let (burst, slow) = runtime.block_on(async {
        let burst = reset_streams(addr, 20_000, Duration::ZERO).await;
        let slow = reset_streams(addr, 1_000, Duration::from_millis(5)).await;
        (burst, slow)
    });
    assert!(burst < 20_000, "a burst of resets was never cut off");
    assert!(
        slow <= 200,
        "{slow} slow resets before the connection was closed"
    );
    assert!(
        gw.wait_for_log("faster than it let them run").is_some(),
        "the gateway names why it closed the connection"
    );
    let grown_mib = gw.resident_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "resident memory grew {grown_mib} MiB");
    assert_eq!(gw.get("/hello"), (200, HELLO.to_string()));
}

/// Opens up to `streams` requests for `/sleepy` on one connection, resetting each `pause`
/// after opening it, until the connection fails; returns how many it opened. Another
/// client's hello is served after every hundred.
async fn reset_streams(addr: std::net::SocketAddr, streams: usize, pause: Duration) -> usize {
    let (mut sender, connection) = h2::raw_h2c(addr).await;
    for opened in 0..streams {
        if connection.is_finished() {
            return opened;
        }
        let ready = tokio::time::timeout(Duration::from_secs(5), sender.ready()).await;
        let Ok(Ok(ready)) = ready else {
            return opened;
        };
        sender = ready;
        let req = Request::get(format!("http://{addr}/sleepy"))
            .body(())
            .unwrap();
        let Ok((_response, mut stream)) = sender.send_request(req, false) else {
            return opened;
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        stream.send_reset(::h2::Reason::CANCEL);
        if opened % 100 == 99 {
            let hello = common::get(addr, "/hello")
                .await
                .expect("hello beside the attack");
            assert_eq!(hello.status, StatusCode::OK);
        }
    }
    streams
}

/// The admin listener speaks HTTP/2 too (a load balancer that talks HTTP/2 to the replicas
/// checks `/readyz` in it), and checks an HTTP/2 request's `:authority` as it checks an
/// HTTP/1.1 `Host`: a rebinding page's name is refused there as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_checks_an_http2_authority_as_a_host() {
    let gw = TestGateway::start(&[("hello", "hello")], "").await;
    let mut sender = h2::h2c(gw.admin).await;
    let ready = h2::get(&mut sender, gw.admin, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    let req = h2::request(
        "GET",
        "rebind.attacker.example:9180",
        "/modules",
        Bytes::new(),
    );
    let refused = h2::send(&mut sender, req).await.unwrap();
    assert_eq!(
        refused.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        refused.text()
    );
}
