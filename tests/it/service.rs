//! wasi:http 0.3 components (the `wasi:http/service` world), served beside 0.2 components
//! and CGI modules, told apart per file: the same routing, every limit (a deadline that
//! stops a guest mid-stream, fuel, memory, the output cap, the body cap), the same
//! outcomes and metrics, reload, `/modules` and `wasmgate run`. The component is
//! `tests/components/service_http`, built from source with the `wasip3` crate.

use crate::common;

use bytes::Bytes;
use common::served::BIN;
use common::{TestGateway, build, component, eventually, fixture, h2, request};
use http::StatusCode;
use http_body_util::BodyExt;

const LIMITS: &str = "[limits]\ntimeout_ms = 1000\nmax_output_bytes = 1048576\n\
                      max_body_bytes = 65536\nmax_memory_bytes = 33554432\n\
                      [modules.fueled]\nfuel = 50000000\n\
                      [modules.svc]\nfuel = 0\n";

/// A gateway serving the 0.3 component as `svc` (no fuel metering: its deadline stops it)
/// and `fueled`, beside a 0.2 component and a CGI module.
async fn gateway() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(modules.join("hello.wasm"), fixture("hello")).unwrap();
    std::fs::write(modules.join("hello_http.wasm"), component("hello_http")).unwrap();
    for name in ["svc", "fueled"] {
        std::fs::write(
            modules.join(format!("{name}.wasm")),
            component("service_http"),
        )
        .unwrap();
    }
    TestGateway::start_in(dir, LIMITS).await
}

/// The `/modules` entry of `name`.
fn entry(modules: &serde_json::Value, name: &str) -> serde_json::Value {
    let all = modules.as_array().unwrap();
    all.iter().find(|m| m["name"] == name).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_component_is_served_beside_0_2_components_and_cgi_modules() {
    let gw = gateway().await;
    let modules = gw.modules().await;
    for (name, abi) in [
        ("svc", "wasi-http@0.3"),
        ("hello_http", "wasi-http"),
        ("hello", "cgi"),
    ] {
        assert_eq!(entry(&modules, name)["abi"], abi, "{name}");
    }
    let reply = gw.get("/svc/hello").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "hello, world\n")
    );
    // Every guest response, whatever its ABI, carries nosniff.
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    let info = gw.get("/svc/info?x=1").await.text();
    assert_eq!(info, "scheme=http authority=localhost path=/svc/info?x=1\n");
    let body = Bytes::from(vec![b'a'; 50_000]);
    let echoed = request(gw.public, build("POST", "/svc/echo", &[], body.clone()))
        .await
        .unwrap();
    assert_eq!((echoed.status, echoed.body), (StatusCode::OK, body));
    assert_eq!(gw.get("/hello_http").await.status, StatusCode::OK);
    assert_eq!(gw.requests("svc", "ok").await, 3);

    // Over HTTP/2 as well.
    let mut sender = h2::h2c(gw.public).await;
    let reply = h2::get(&mut sender, gw.public, "/svc/hello").await;
    assert_eq!(reply.text(), "hello, world\n");
}

/// Every limit holds for a 0.3 component, ends as it does for a 0.2 one, and the gateway
/// serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_holds_for_a_0_3_component() {
    let gw = gateway().await;
    let cases = [
        ("/svc/spin", StatusCode::GATEWAY_TIMEOUT, "svc", "timeout"),
        (
            "/fueled/spin",
            StatusCode::INTERNAL_SERVER_ERROR,
            "fueled",
            "fuel_exhausted",
        ),
        (
            "/svc/alloc",
            StatusCode::INTERNAL_SERVER_ERROR,
            "svc",
            "memory_exceeded",
        ),
        ("/svc/refuse", StatusCode::BAD_GATEWAY, "svc", "bad_output"),
    ];
    for (path, status, module, outcome) in cases {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert_eq!(gw.requests(module, outcome).await, 1, "{path}: {outcome}");
    }
    let too_big = Bytes::from(vec![b'a'; 100_000]);
    let refused = request(gw.public, build("POST", "/svc/echo", &[], too_big))
        .await
        .unwrap();
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.text()
    );
    assert_eq!(gw.get("/svc/hello").await.text(), "hello, world\n");
}

/// After its head: the output cap and the deadline cut the response off mid-stream, and
/// count it as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_stream_is_cut_off_by_the_output_cap_and_the_deadline() {
    let gw = gateway().await;
    for (path, outcome) in [("/svc/big", "output_too_large"), ("/svc/stream", "timeout")] {
        let stream = tokio::net::TcpStream::connect(gw.public).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let response = sender
            .send_request(build("GET", path, &[], Bytes::new()))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{path}: the head went out"
        );
        let mut body = response.into_body();
        let mut received = 0;
        let mut cut_off = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len()),
                Err(_) => {
                    cut_off = true;
                    break;
                }
            }
        }
        assert!(
            cut_off,
            "{path}: the body ended cleanly after {received} bytes"
        );
        match outcome {
            "output_too_large" => assert!(received <= 1_048_576, "{received} bytes"),
            _ => assert!(received < 20 * "line NN\n".len(), "{received} bytes"),
        }
        gw.wait_for_metric(&format!(
            "wasmgate_requests_total{{module=\"svc\",outcome=\"{outcome}\"}} 1"
        ))
        .await;
    }
    assert_eq!(gw.get("/svc/hello").await.text(), "hello, world\n");
}

/// A 0.3 component replaces a CGI module under the same name, and back, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_component_reloads_like_any_module() {
    let gw = gateway().await;
    let file = gw.modules_dir().join("hello.wasm");
    std::fs::write(&file, component("service_http")).unwrap();
    eventually("hello is the 0.3 component", async || {
        gw.get("/hello/info")
            .await
            .text()
            .starts_with("scheme=http")
    })
    .await;
    assert_eq!(entry(&gw.modules().await, "hello")["abi"], "wasi-http@0.3");
    std::fs::write(&file, fixture("hello")).unwrap();
    eventually("hello is the CGI module again", async || {
        gw.get("/hello/info").await.text() == "hello, world\n"
    })
    .await;
}

/// `wasmgate run` invokes a 0.3 component once, as it does a 0.2 one.
#[test]
fn run_invokes_a_0_3_component() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.wasm");
    std::fs::write(&file, component("service_http")).unwrap();
    let out = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .args(["--path", "/info"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("scheme=http"), "{text}");
    let refused = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .args(["--path", "/refuse"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "an error code is a failed run");
}
