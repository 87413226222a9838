//! Operations: draining for load balancers on shutdown, without losing a connection that
//! reached the gateway.

use crate::common;

use std::time::Duration;

use common::TestGateway;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_shutdown_delay_readiness_is_503_but_requests_are_still_served() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "shutdown_delay_ms = 600\n").await;
    let (public, admin) = (gw.public, gw.admin);
    let gateway = gw.gateway.take().unwrap();
    let shutdown = gateway.shutdown.clone();
    let stopping = tokio::spawn(gateway.stop());
    while !shutdown.is_triggered() {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        common::get(admin, "/readyz").await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // New connections are still accepted and served while load balancers catch up.
    let r = common::get(public, "/hello").await.unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello, world\n")
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(public).await.is_err(),
        "still accepting after the delay"
    );
}

/// Issue 30, item 8, for both serving modes (the default threads, and one runtime).
const MODES: [&str; 2] = ["", "serve_threads = 0\n"];
const GET_CLOSE: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends `request` on `stream` (if any) and reads the response to its end; what arrived,
/// even if the connection was reset.
async fn response_on(stream: &mut TcpStream, request: &[u8]) -> String {
    let mut got = Vec::new();
    if stream.write_all(request).await.is_ok() {
        let read = stream.read_to_end(&mut got);
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn served_hello(response: &str) -> bool {
    response.starts_with("HTTP/1.1 200") && response.ends_with("hello, world\n")
}

/// Starts stopping `gw`'s gateway; returns once the drain has begun.
async fn begin_stop(gw: &mut TestGateway) -> tokio::task::JoinHandle<()> {
    let gateway = gw.gateway.take().unwrap();
    let shutdown = gateway.shutdown.clone();
    let stopping = tokio::spawn(gateway.stop());
    while !shutdown.is_triggered() {
        tokio::task::yield_now().await;
    }
    stopping
}

/// Connections waiting in the kernel's accept queue when the drain starts are served,
/// not reset as the listener closes. `max_connections = 1` and one keep-alive connection
/// holding that slot keep five others in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_the_accept_queue_are_served_by_a_drain() {
    for mode in MODES {
        let config = format!("max_connections = 1\n{mode}");
        let mut gw = TestGateway::start(&[("hello", "hello")], &config).await;
        let mut holder = TcpStream::connect(gw.public).await.unwrap();
        let keep_alive = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
        holder.write_all(keep_alive).await.unwrap();
        let mut first = [0u8; 64];
        assert!(holder.read(&mut first).await.unwrap() > 0, "{mode}");
        let mut queued = Vec::new();
        for _ in 0..5 {
            let mut stream = TcpStream::connect(gw.public).await.unwrap();
            stream.write_all(GET_CLOSE).await.unwrap();
            queued.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = begin_stop(&mut gw).await;
        for (i, stream) in queued.iter_mut().enumerate() {
            let response = response_on(stream, b"").await;
            assert!(served_hello(&response), "{mode} queued #{i}: {response:?}");
        }
        stopping.await.unwrap();
    }
}

/// A connection that was accepted but had not sent its request when the drain began
/// (a load balancer's new connection, its request on the way) gets its response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_its_way_when_the_drain_begins_is_answered() {
    for mode in MODES {
        let mut gw = TestGateway::start(&[("hello", "hello")], mode).await;
        let mut fresh = TcpStream::connect(gw.public).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = begin_stop(&mut gw).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = response_on(&mut fresh, GET_CLOSE).await;
        assert!(served_hello(&response), "{mode}: {response:?}");
        assert!(
            response.to_ascii_lowercase().contains("connection: close"),
            "{response}"
        );
        stopping.await.unwrap();
    }
}

/// A gateway dropped without `stop` shuts down as a stopped one does (issue 31: it kept
/// serving, its tasks unowned, until the process ended): its readiness turns 503 at once,
/// and its listener stops accepting once drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gateway_shuts_down() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let (public, admin) = (gw.public, gw.admin);
    let gateway = gw.gateway.take().unwrap();
    let shutdown = gateway.shutdown.clone();
    drop(gateway);
    assert!(
        shutdown.is_triggered(),
        "dropping the gateway triggers its shutdown"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(public).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped gateway still accepts on {public}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admin listener follows the public one down.
    while TcpStream::connect(admin).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "admin still accepts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
