//! Shared by the integration tests: a real gateway on ephemeral ports serving modules
//! compiled from the WAT fixtures, and a real HTTP/1.1 client.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmgate::{Config, Overrides, RunningGateway};

pub mod h2;
pub mod kv;
pub mod served;
pub mod tls;

/// Pool slots for test gateways: enough for the concurrency tests, small enough that
/// many gateways in one test process do not reserve terabytes of address space.
pub const TEST_SLOTS: u32 = 64;

/// The WebAssembly binary of fixture `tests/fixtures/NAME.wat`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The wasi:http component `tests/fixtures/components/NAME.wasm` (sources in
/// `tests/components/`).
pub fn component(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/components/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("component {name}: {e}"))
}

/// A distinct hello module answering `text`.
pub fn hello_saying(text: &str) -> Vec<u8> {
    printing(&format!("{text}\n"))
}

/// A module that writes `text` to stdout and returns.
pub fn printing(text: &str) -> Vec<u8> {
    let data: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{data}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const {}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        text.len()
    ))
    .unwrap()
}

/// A gateway under test, with its own temporary directories.
pub struct TestGateway {
    pub gateway: Option<RunningGateway>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// Serves `modules` (module name, fixture name) with `extra` appended to the config.
    pub async fn start(modules: &[(&str, &str)], extra: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let modules_dir = dir.path().join("modules");
        std::fs::create_dir(&modules_dir).unwrap();
        for (name, fixture_name) in modules {
            std::fs::write(
                modules_dir.join(format!("{name}.wasm")),
                fixture(fixture_name),
            )
            .unwrap();
        }
        Self::start_in(dir, extra).await
    }

    /// Serves whatever `dir/modules` holds.
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestGateway {
        Self::start_with_slots(dir, TEST_SLOTS, extra).await
    }

    /// Serves whatever `dir/modules` holds, with `slots` pool slots.
    pub async fn start_with_slots(dir: tempfile::TempDir, slots: u32, extra: &str) -> TestGateway {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nmodules_dir = {:?}\n\
             cache_dir = {:?}\nmax_instances = {slots}\n{extra}",
            dir.path().join("modules"),
            dir.path().join("cache"),
        );
        let config = Config::from_toml(&toml, Overrides::default()).expect("test config");
        let gateway = RunningGateway::start(config).await.expect("gateway starts");
        let (public, admin) = (gateway.public_addr, gateway.admin_addr);
        let gw = TestGateway {
            gateway: Some(gateway),
            public,
            admin,
            dir,
        };
        gw.wait_ready().await;
        gw
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.dir.path().join("modules")
    }

    /// Waits for `/readyz`; generous, since a debug build or a busy machine compiles the
    /// large examples (a Python and a JavaScript component) slowly.
    async fn wait_ready(&self) {
        for _ in 0..3000 {
            if let Ok(r) = get(self.admin, "/readyz").await
                && r.status == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("gateway not ready in 60 s");
    }

    /// GET on the public port; panics on a transport error.
    pub async fn get(&self, path: &str) -> Reply {
        get(self.public, path).await.expect("request")
    }

    /// The admin listener's `/modules`, as JSON.
    pub async fn modules(&self) -> serde_json::Value {
        let reply = get(self.admin, "/modules").await.expect("admin request");
        serde_json::from_slice(&reply.body).expect("/modules is JSON")
    }

    /// Module `name`'s entry in `/modules`, if it is listed.
    pub async fn module(&self, name: &str) -> Option<serde_json::Value> {
        let modules = self.modules().await;
        let found = modules.as_array()?.iter().find(|m| m["name"] == name);
        found.cloned()
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        get(self.admin, "/metrics")
            .await
            .expect("admin request")
            .text()
    }

    /// The count of `wasmgate_requests_total` for `module` and `outcome` (0 before any).
    pub async fn requests(&self, module: &str, outcome: &str) -> u64 {
        let series =
            format!("wasmgate_requests_total{{module=\"{module}\",outcome=\"{outcome}\"}} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `/metrics` has a line that starts with `line` (a series and its value).
    pub async fn wait_for_metric(&self, line: &str) {
        eventually(&format!("/metrics shows {line}"), async || {
            self.metrics().await.lines().any(|l| l.starts_with(line))
        })
        .await;
    }

    /// Drains and stops the gateway.
    pub async fn stop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
    }
}

/// A client that GETs `path` again and again until `stop` is set; returns what it saw.
pub fn keep_getting(
    addr: SocketAddr,
    path: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(StatusCode, String)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let r = get(addr, path).await.expect("request");
            seen.push((r.status, r.text()));
        }
        seen
    })
}

/// Polls `check` until it holds, for up to 5 s.
pub async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    eventually_within(Duration::from_secs(5), what, check).await
}

/// Polls `check` every 10 ms until it holds; panics once `limit` has passed.
pub async fn eventually_within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within {limit:?}: {what}");
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// `response`, its body read whole.
    pub async fn read(response: hyper::Response<hyper::body::Incoming>) -> hyper::Result<Reply> {
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection.
pub async fn request(addr: SocketAddr, req: Request<Full<Bytes>>) -> hyper::Result<Reply> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Reply::read(sender.send_request(req).await?).await
}

pub async fn get(addr: SocketAddr, path: &str) -> hyper::Result<Reply> {
    request(addr, build("GET", path, &[], Bytes::new())).await
}

/// A request with a Host header, the given headers and body.
pub fn build(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", "localhost");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(body)).expect("request")
}

/// How long `stream` stays open once `sent` is written (it is read and discarded until the
/// server closes it); `None` if it is still open after `limit`.
pub async fn open_for(mut stream: TcpStream, sent: &[u8], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.write_all(sent).await.unwrap();
    let mut buf = vec![0; 4096];
    let reading = async { while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {} };
    tokio::time::timeout(limit, reading).await.ok()?;
    Some(start.elapsed())
}

/// Sends raw bytes and returns whatever comes back until the server closes or 5 s pass.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    );
    let _ = read.await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Sends raw bytes and returns the bytes that come back until the server closes or 5 s pass.
pub async fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

/// A raw HTTP/1.1 response: its head, its body (de-chunked when chunked), and whether the
/// body ended as its framing says it must (the last chunk, or all of its Content-Length).
pub struct RawResponse {
    pub head: String,
    pub body: Vec<u8>,
    pub complete: bool,
}

impl RawResponse {
    pub fn parse(raw: &[u8]) -> RawResponse {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let Some(at) = split else {
            return RawResponse {
                head: String::from_utf8_lossy(raw).into_owned(),
                body: Vec::new(),
                complete: false,
            };
        };
        let head = String::from_utf8_lossy(&raw[..at]).into_owned();
        let rest = &raw[at + 4..];
        let lower = head.to_ascii_lowercase();
        let (body, complete) = if lower.contains("transfer-encoding: chunked") {
            dechunk(rest)
        } else {
            let declared = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            (rest.to_vec(), declared.is_none_or(|len| len == rest.len()))
        };
        RawResponse {
            head,
            body,
            complete,
        }
    }

    pub fn status(&self) -> Option<u16> {
        raw_status(&self.head)
    }
}

/// A chunked body's data, and whether its last chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else {
            return (body, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (body, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
