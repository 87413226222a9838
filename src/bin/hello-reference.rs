//! The load tests' reference: a bare hyper "hello, world" server with exactly wasmgate's
//! HTTP setup (the same accept loop, hyper options, tokio runtime and allocator) and no
//! WebAssembly. Whatever wasmgate costs beyond this is the cost of running a function.
//!
//! `hello-reference [ADDR]` (default 127.0.0.1:8090); stops on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use hyper::Response;
use tokio::net::TcpListener;
use wasmgate::listener::{ListenOptions, serve};
use wasmgate::shutdown::{Shutdown, signal};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_ADDR: &str = "127.0.0.1:8090";
const BODY: &[u8] = b"hello, world\n";

fn main() -> Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .context("the argument is not an address like 127.0.0.1:8090")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("hello-reference listening on {}", listener.local_addr()?);
        let shutdown = Shutdown::new();
        let options = ListenOptions {
            max_connections: 10_000,
            grace: Duration::from_secs(5),
        };
        let server = tokio::spawn(serve(
            listener,
            |_req, _conn| async {
                let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            },
            shutdown.clone(),
            options,
        ));
        signal().await?;
        shutdown.trigger();
        server.await?;
        Ok(())
    })
}
