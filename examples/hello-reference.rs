//! The load tests' reference: a bare hyper "hello, world" server with exactly wasmgate's
//! HTTP setup (the same accept loop, hyper options for HTTP/1.1 and cleartext HTTP/2, serving threads with a runtime each, and
//! allocator) and no WebAssembly. Whatever wasmgate costs beyond this is the cost of running
//! a function.
//!
//! `hello-reference [ADDR] [THREADS]` (default 127.0.0.1:8090, 0); THREADS means what
//! wasmgate's `serve_threads` means (0: one multi-threaded runtime; N: N threads with a
//! runtime each, pinned to the cores when there is one per core, as wasmgate's are by
//! default). Stops on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use wasmgate::signal;
use wasmgate::testing::{ConnInfo, ListenOptions, Shutdown, serve, serve_on_threads};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_ADDR: &str = "127.0.0.1:8090";
const BODY: &[u8] = b"hello, world\n";
/// wasmgate's default `http2_max_streams`: the reference speaks HTTP/2 as wasmgate does.
const HTTP2_MAX_STREAMS: u32 = 100;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .context("the first argument is not an address like 127.0.0.1:8090")?;
    let threads: usize = args
        .next()
        .as_deref()
        .unwrap_or("0")
        .parse()
        .context("the second argument is not a number of threads")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("hello-reference listening on {}", listener.local_addr()?);
        let shutdown = Shutdown::new();
        let options = ListenOptions::new(10_000, Duration::from_secs(5), Some(HTTP2_MAX_STREAMS));
        let down = shutdown.clone();
        let server = tokio::spawn(async move {
            match threads {
                0 => serve(listener, hello, down, options).await,
                n => serve_on_threads(listener, n, true, hello, down, options).await,
            }
        });
        signal().await?;
        shutdown.trigger();
        server.await?;
        Ok(())
    })
}

async fn hello(_req: Request<Incoming>, _conn: ConnInfo) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
