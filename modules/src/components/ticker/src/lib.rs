//! ticker: a wasi:http 0.3 component (the `wasi:http/service` world, through the `wasip3`
//! crate). `GET /ticker?n=5&ms=200` answers at once and then streams `tick 1` ... `tick 5`,
//! one every 200 ms; `POST /ticker` answers with the request body upper-cased. With 0.3,
//! `handle` is an async function: it returns the response, and a task of the guest's own
//! goes on writing the body, waiting on the clock without blocking anything.

use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Ticker);

struct Ticker;

const DEFAULT_TICKS: u32 = 5;
const MAX_TICKS: u32 = 100;
const DEFAULT_PAUSE_MS: u64 = 200;
const MAX_PAUSE_MS: u64 = 1000;
const NANOS_PER_MS: u64 = 1_000_000;

impl wasip3::exports::http::handler::Guest for Ticker {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        if matches!(request.get_method(), Method::Post) {
            let (_, read_result) = wit_future::new(|| Ok(()));
            let (body, _trailers) = Request::consume_body(request, read_result);
            let upper = body.collect().await.to_ascii_uppercase();
            return Ok(respond(move |mut out| async move {
                out.write_all(upper).await;
            }));
        }
        let query = request.get_path_with_query().unwrap_or_default();
        let ticks = param(&query, "n").unwrap_or(DEFAULT_TICKS).min(MAX_TICKS);
        let pause_ms = param(&query, "ms").unwrap_or(DEFAULT_PAUSE_MS).min(MAX_PAUSE_MS);
        Ok(respond(move |mut out| async move {
            for n in 1..=ticks {
                out.write_all(format!("tick {n}\n").into_bytes()).await;
                wasip3::clocks::monotonic_clock::wait_for(pause_ms * NANOS_PER_MS).await;
            }
        }))
    }
}

/// The number after `name=` in the query of `path`.
fn param<T: std::str::FromStr>(path: &str, name: &str) -> Option<T> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

/// A text response whose body `write` produces once the response is returned.
fn respond<F, Fut>(write: F) -> Response
where
    F: FnOnce(wit_bindgen::StreamWriter<u8>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (body, body_reader) = wit_stream::new();
    let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain; charset=utf-8".to_vec())])
        .expect("a valid content-type");
    let (response, _sent) = Response::new(headers, Some(body_reader), trailers_reader);
    drop(trailers);
    wit_bindgen::spawn_local(write(body));
    response
}
