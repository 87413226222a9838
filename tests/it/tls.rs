//! TLS on the public port: HTTP/2 and HTTP/1.1 by ALPN, `HTTPS=on` for CGI, a renewed
//! certificate served to new connections while open ones carry on, a pair that does not
//! load leaving the old one in use (in the metric), and handshakes that never finish or
//! never start closed.

use crate::common;

use std::time::Duration;

use common::served::Served;
use common::tls::{self, Files, Pair};
use common::{TestGateway, eventually, eventually_within, h2, open_for};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const HELLO: &str = "hello, world\n";
const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// A gateway serving hello, envdump and a wasi:http 0.3 component (`svc`) over TLS with
/// `pair`, its files in its directory.
async fn tls_gateway(pair: &Pair) -> (TestGateway, Files) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    for name in ["hello", "envdump"] {
        let path = dir.path().join(format!("modules/{name}.wasm"));
        std::fs::write(path, common::fixture(name)).unwrap();
    }
    let service = dir.path().join("modules/svc.wasm");
    std::fs::write(service, common::component("service_http")).unwrap();
    let files = Files::in_dir(dir.path());
    files.install(pair);
    let gw = TestGateway::start_in(dir, &files.config()).await;
    (gw, files)
}

/// GET `path` over HTTP/1.1 on an open TLS connection.
async fn get_http1(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>,
    path: &str,
) -> (StatusCode, String) {
    // hyper's client takes a request only once the connection has finished the last one.
    sender.ready().await.expect("the connection is open");
    let req = common::build("GET", path, &[], bytes::Bytes::new());
    let response = sender.send_request(req).await.expect("request over TLS");
    let status = response.status();
    let body = response.into_body().collect().await;
    let body = body.unwrap_or_else(|e| panic!("{path}: the body of a {status}: {e:?}"));
    (
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    )
}

/// An HTTP/1.1 connection over TLS (ALPN `http/1.1`), and the certificate it got.
async fn http1_over_tls(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>,
    Vec<u8>,
) {
    let connected = tls::connect(addr, &[HTTP1]).await.expect("TLS handshake");
    let io = TokioIo::new(connected.stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    (sender, connected.cert)
}

/// The certificate a new connection gets.
async fn served_cert(addr: std::net::SocketAddr) -> Vec<u8> {
    tls::connect(addr, &[H2, HTTP1])
        .await
        .expect("TLS handshake")
        .cert
}

/// The value of a metric line that starts with `series` (0 before it exists).
async fn metric(gw: &TestGateway, series: &str) -> f64 {
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const RELOADS_OK: &str = "wasmgate_tls_reloads_total{result=\"ok\"} ";
const RELOADS_ERROR: &str = "wasmgate_tls_reloads_total{result=\"error\"} ";
const EXPIRY: &str = "wasmgate_tls_certificate_expiry_timestamp_seconds ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_speaks_http2_and_http1_by_alpn_and_guests_see_https() {
    let pair = Pair::new("wasmgate-a", 2031);
    let (gw, _files) = tls_gateway(&pair).await;

    let connected = tls::connect(gw.public, &[H2, HTTP1]).await.unwrap();
    assert_eq!(connected.cert, pair.der);
    assert_eq!(connected.alpn.as_deref(), Some(H2));
    let mut sender = h2::over(TokioIo::new(connected.stream)).await;
    let reply = h2::send(
        &mut sender,
        h2::request("GET", "localhost", "/envdump", bytes::Bytes::new()),
    )
    .await
    .unwrap();
    let env = reply.text();
    for line in [
        "HTTPS=on",
        "SERVER_PROTOCOL=HTTP/2.0",
        "HTTP_HOST=localhost",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }

    let (mut sender, _) = http1_over_tls(gw.public).await;
    let (status, env) = get_http1(&mut sender, "/envdump").await;
    assert_eq!(status, StatusCode::OK);
    for line in ["HTTPS=on", "SERVER_PROTOCOL=HTTP/1.1"] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }

    // A component sees the scheme https, and its authority.
    let (status, info) = get_http1(&mut sender, "/svc/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info, "scheme=https authority=localhost path=/svc/info\n");

    // A client that offers no ALPN speaks HTTP/1.1.
    let connected = tls::connect(gw.public, &[]).await.unwrap();
    assert_eq!(connected.alpn, None);
    let io = TokioIo::new(connected.stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(get_http1(&mut sender, "/hello").await.1, HELLO);

    // Cleartext gets no answer on the TLS port.
    assert!(common::get(gw.public, "/hello").await.is_err());

    assert_eq!(metric(&gw, EXPIRY).await, pair.expires as f64);
    let metrics = gw.metrics().await;
    assert!(metrics.contains(&format!("{RELOADS_OK}0")), "{metrics}");
    assert!(metrics.contains(&format!("{RELOADS_ERROR}0")), "{metrics}");
}

/// A renewal (the key replaced, then the certificate) reaches new connections within a
/// couple of seconds, as one reload: a connection opened before it keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_pair_reaches_new_connections_and_open_ones_carry_on() {
    let (old, new) = (Pair::new("wasmgate-a", 2031), Pair::new("wasmgate-b", 2032));
    let (gw, files) = tls_gateway(&old).await;
    let (mut open, cert) = http1_over_tls(gw.public).await;
    assert_eq!(cert, old.der);
    assert_eq!(get_http1(&mut open, "/hello").await.1, HELLO);

    tls::replace(&files.key, new.key.as_bytes());
    tokio::time::sleep(Duration::from_millis(100)).await;
    tls::replace(&files.cert, new.cert.as_bytes());
    eventually_within(
        Duration::from_secs(3),
        "the new certificate is served",
        async || served_cert(gw.public).await == new.der,
    )
    .await;
    assert_eq!(
        get_http1(&mut open, "/hello").await,
        (StatusCode::OK, HELLO.into())
    );
    assert_eq!(metric(&gw, RELOADS_OK).await, 1.0);
    assert_eq!(
        metric(&gw, RELOADS_ERROR).await,
        0.0,
        "the half-renewed pair was tried"
    );
    assert_eq!(metric(&gw, EXPIRY).await, new.expires as f64);
}

/// Garbage for a certificate, a key that is not the certificate's, a deleted certificate:
/// each is refused and counted, and the pair in use serves on; a good pair after them is
/// taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pair_that_does_not_load_keeps_the_old_one() {
    let (good, other) = (Pair::new("wasmgate-a", 2031), Pair::new("wasmgate-b", 2032));
    let (gw, files) = tls_gateway(&good).await;
    let garbage = b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n";
    let breakages: [(&str, &dyn Fn()); 3] = [
        ("garbage", &|| tls::replace(&files.cert, garbage)),
        ("another key", &|| {
            files.install(&Pair {
                key: other.key.clone(),
                ..Pair::new("x", 2031)
            })
        }),
        ("deleted", &|| std::fs::remove_file(&files.cert).unwrap()),
    ];
    for (refused, (what, breakage)) in breakages.iter().enumerate() {
        breakage();
        let series = format!("{RELOADS_ERROR}{}", refused + 1);
        gw.wait_for_metric(&series).await;
        assert_eq!(served_cert(gw.public).await, good.der, "after {what}");
        let (mut sender, _) = http1_over_tls(gw.public).await;
        assert_eq!(
            get_http1(&mut sender, "/hello").await.1,
            HELLO,
            "after {what}"
        );
    }
    assert_eq!(metric(&gw, EXPIRY).await, good.expires as f64);
    files.install(&other);
    eventually("the good pair is taken", async || {
        served_cert(gw.public).await == other.der
    })
    .await;
    assert_eq!(metric(&gw, RELOADS_OK).await, 1.0);
}

/// A handshake that never starts, or stops half-way, is closed once a request head would
/// have had to arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_finishes_is_closed() {
    let (gw, _files) = tls_gateway(&Pair::new("wasmgate-a", 2031)).await;
    // A TLS record header announcing a 512-byte handshake message that never comes.
    let partial: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    for sent in [&b""[..], partial] {
        let stream = TcpStream::connect(gw.public).await.unwrap();
        let open = open_for(stream, sent, Duration::from_secs(30)).await;
        let open = open.unwrap_or_else(|| panic!("sent {sent:?}: open after 30 s"));
        assert!(
            open >= Duration::from_secs(9),
            "sent {sent:?}: closed after {open:?}"
        );
    }
    assert!(
        !served_cert(gw.public).await.is_empty(),
        "the port still shakes hands"
    );
}

/// A client that speaks HTTP to the TLS port is closed at once, with one log line.
#[test]
fn a_client_that_does_not_speak_tls_is_closed_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    files.install(&Pair::new("wasmgate-a", 2031));
    let gw = Served::start_with(&[("hello", "hello")], &[], &files.config(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr: std::net::SocketAddr = gw.public.parse().unwrap();
    let open = runtime.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let request = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
        open_for(stream, request, Duration::from_secs(5)).await
    });
    assert!(open.is_some(), "a cleartext client was left open");
    let line = gw
        .wait_for_log("does not speak TLS")
        .expect("the log says why");
    assert!(line.contains("127.0.0.1"), "{line}");
    std::thread::sleep(Duration::from_millis(200));
    let log = gw.log.lock().unwrap().clone();
    assert_eq!(log.matches("does not speak TLS").count(), 1, "{log}");
}

/// A pair that does not load stops start-up, naming the key it came from; so does half a
/// pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_a_pair_that_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    let files = Files::in_dir(dir.path());
    files.install(&Pair::new("wasmgate-a", 2031));
    tls::replace(&files.key, Pair::new("x", 2031).key.as_bytes());
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nmodules_dir = {:?}\n{}",
        dir.path().join("modules"),
        files.config()
    );
    let config = wasmgate::Config::from_toml(&toml, wasmgate::Overrides::default()).unwrap();
    let error = match wasmgate::RunningGateway::start(config).await {
        Ok(_) => panic!("a mismatched pair was served"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("tls_key is not the key of the certificate"),
        "{error}"
    );
    let half = format!("tls_cert = {:?}\n", files.cert);
    let error = wasmgate::Config::from_toml(&half, wasmgate::Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("tls_key"), "{error}");
}
