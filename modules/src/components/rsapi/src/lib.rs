//! rsapi: a small JSON API as a wasi:http component (Rust, `wasm32-wasip2`).
//!
//!     GET  /rsapi                      what it offers
//!     GET  /rsapi/stats?values=1,2,3   statistics of the numbers in the query
//!     POST /rsapi/stats   [1, 2, 3]    ... of a JSON array in the body
//!
//! Answers are JSON; a bad request is a 400 with `{"error": ...}`, an unknown path a 404,
//! another method a 405.

use serde_json::{json, Value};
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use wasi::io::streams::StreamError;

/// The largest body read: a JSON array of numbers has no business being bigger.
const MAX_BODY: usize = 1 << 20;

fn respond(out: ResponseOutparam, status: u16, value: &Value) {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/json".to_vec()),
        ("content-length".to_string(), bytes.len().to_string().into_bytes()),
    ]);
    let Ok(headers) = headers else { return };
    let resp = OutgoingResponse::new(headers);
    let _ = resp.set_status_code(status);
    let Ok(body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    if let Ok(stream) = body.write() {
        for chunk in bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

fn read_body(req: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = req.consume().map_err(|()| "no body".to_string())?;
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|()| "no body stream".to_string())?;
        loop {
            match stream.blocking_read(65536) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
            if data.len() > MAX_BODY {
                return Err(format!("body larger than {MAX_BODY} bytes"));
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}

/// The numbers of `?values=1,2.5,3`.
fn numbers_in_query(query: &str) -> Result<Vec<f64>, String> {
    let values = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("values="))
        .ok_or("give ?values=1,2,3 or POST a JSON array")?;
    values
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<f64>().map_err(|_| format!("{v:?} is not a number")))
        .collect()
}

fn numbers_in_body(body: &[u8]) -> Result<Vec<f64>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = value.as_array().ok_or("expected a JSON array of numbers")?;
    items
        .iter()
        .map(|v| v.as_f64().ok_or_else(|| format!("{v} is not a number")))
        .collect()
}

fn stats(values: &[f64]) -> Value {
    if values.is_empty() {
        return json!({ "count": 0 });
    }
    let sum: f64 = values.iter().sum();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({
        "count": values.len(),
        "sum": sum,
        "mean": sum / values.len() as f64,
        "min": min,
        "max": max,
    })
}

struct Api;

impl wasi::exports::http::incoming_handler::Guest for Api {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let target = req.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        // The path as received: /rsapi/..., whatever the file is called.
        let rest = path.splitn(3, '/').nth(2).unwrap_or("");
        let numbers = match (req.method(), rest) {
            (Method::Get, "") => {
                let about = json!({
                    "service": "rsapi",
                    "endpoints": ["GET /stats?values=1,2,3", "POST /stats [1, 2, 3]"],
                });
                return respond(out, 200, &about);
            }
            (Method::Get, "stats") => numbers_in_query(query),
            (Method::Post, "stats") => read_body(&req).and_then(|b| numbers_in_body(&b)),
            (_, "" | "stats") => return respond(out, 405, &json!({ "error": "method not allowed" })),
            _ => return respond(out, 404, &json!({ "error": format!("no endpoint /{rest}") })),
        };
        match numbers {
            Ok(values) => respond(out, 200, &stats(&values)),
            Err(e) => respond(out, 400, &json!({ "error": e })),
        }
    }
}

wasi::http::proxy::export!(Api);
