//! service_http: a wasi:http 0.3 component (the `wasi:http/service` world, through the
//! `wasip3` crate), one behaviour per path, for the tests of 0.3 components:
//!
//!     .../hello     200 "hello, world\n"
//!     .../info      200 "scheme=http|https authority=A path=P\n"
//!     .../echo      200 with the request body, read whole
//!     .../stream    200, then "line N\n" every 100 ms for N = 1..20 (about 2 s)
//!     .../big       200, then 4 MiB of "x", 64 KiB at a time
//!     .../spin      never answers: loops until a deadline or its fuel stops it
//!     .../alloc     grows its memory by 64 MiB, then answers
//!     .../refuse    answers the error code internal-error instead of a response

use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Service);

struct Service;

const CHUNK: usize = 64 * 1024;
const BIG_BYTES: usize = 4 * 1024 * 1024;
const LINES: u32 = 20;
const LINE_PAUSE_NS: u64 = 100_000_000;
const ALLOC_BYTES: usize = 64 * 1024 * 1024;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let route = path.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
        match route {
            "hello" => Ok(whole(b"hello, world\n".to_vec())),
            "info" => {
                let scheme = match request.get_scheme() {
                    Some(Scheme::Https) => "https".to_string(),
                    Some(Scheme::Http) => "http".to_string(),
                    Some(Scheme::Other(s)) => s,
                    None => "none".to_string(),
                };
                let authority = request.get_authority().unwrap_or_default();
                Ok(whole(format!("scheme={scheme} authority={authority} path={path}\n").into_bytes()))
            }
            "echo" => {
                let (_, body_result) = wit_future::new(|| Ok(()));
                let (body, _trailers) = Request::consume_body(request, body_result);
                Ok(whole(body.collect().await))
            }
            "stream" => Ok(streamed(|mut tx| async move {
                for n in 1..=LINES {
                    tx.write_all(format!("line {n}\n").into_bytes()).await;
                    wasip3::clocks::monotonic_clock::wait_for(LINE_PAUSE_NS).await;
                }
            })),
            "big" => Ok(streamed(|mut tx| async move {
                for _ in 0..BIG_BYTES / CHUNK {
                    tx.write_all(vec![b'x'; CHUNK]).await;
                }
            })),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let held = vec![1u8; ALLOC_BYTES];
                Ok(whole(format!("held {}\n", std::hint::black_box(held).len()).into_bytes()))
            }
            "refuse" => Err(ErrorCode::InternalError(Some("refused on purpose".into()))),
            _ => Ok(whole(b"no such path\n".to_vec())),
        }
    }
}

/// A response whose body is `bytes`, written by a task of the guest's own.
fn whole(bytes: Vec<u8>) -> Response {
    streamed(|mut tx| async move {
        tx.write_all(bytes).await;
    })
}

/// A response whose body `write` produces, after the response has been returned.
fn streamed<F, Fut>(write: F) -> Response
where
    F: FnOnce(wit_bindgen::StreamWriter<u8>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .expect("valid headers");
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    drop(trailers_tx);
    wit_bindgen::spawn_local(write(body_tx));
    response
}
