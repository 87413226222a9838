//! Operations: draining for load balancers on shutdown.

mod common;

use std::time::Duration;

use common::TestGateway;
use http::StatusCode;

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
