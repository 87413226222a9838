//! {{name}}: a wasmgate function as a wasi:http 0.2 component (Rust, `wasm32-wasip2`, the
//! `wasi:http/proxy` world through the `wasi` crate).
//!
//!     GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
//!     POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
//!     POST /{{name}}  not JSON           400 {"error": "..."}
//!
//! The request is an `IncomingRequest`: its method, its path and query, its headers, and a
//! body read from a stream. The response is an `OutgoingResponse` with a status and
//! headers, handed to the `ResponseOutparam`, then its body written. stderr goes to the
//! gateway's log.

use serde::Deserialize;
use serde_json::{Value, json};
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use wasi::io::streams::StreamError;

/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// What one `blocking-write-and-flush` takes at most.
const WRITE_CHUNK: usize = 4096;

/// What a POST body may say.
#[derive(Deserialize)]
struct Greet {
    name: String,
}

struct Function;

impl wasi::exports::http::incoming_handler::Guest for Function {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match request.method() {
            Method::Get | Method::Head => (200, greet(&query_name(&request))),
            Method::Post => match read_name(&request) {
                Ok(name) => (201, greet(&name)),
                Err(error) => (400, json!({ "error": error })),
            },
            _ => (405, json!({ "error": "method not allowed" })),
        };
        respond(out, status, &body);
    }
}

wasi::http::proxy::export!(Function);

/// The `name` query parameter, or "world".
fn query_name(request: &IncomingRequest) -> String {
    let target = request.path_with_query().unwrap_or_default();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| "world".into())
}

/// The `name` of a JSON body such as `{"name": "Ada"}`.
fn read_name(request: &IncomingRequest) -> Result<String, String> {
    let body = read_body(request)?;
    let greet: Greet = serde_json::from_slice(&body)
        .map_err(|e| format!("the body is not {{\"name\": \"...\"}}: {e}"))?;
    Ok(greet.name)
}

/// The whole request body: read from its stream until it is closed.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "no body".to_string())?;
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|()| "no body stream".to_string())?;
        loop {
            match stream.blocking_read(WRITE_CHUNK as u64) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
            if data.len() > MAX_BODY {
                return Err(format!("the body is larger than {MAX_BODY} bytes"));
            }
        }
    }
    IncomingBody::finish(body);
    Ok(data)
}

fn greet(name: &str) -> Value {
    eprintln!("greeted {name}");
    json!({ "greeting": format!("hello, {name}") })
}

/// Sets the status and headers, hands the response over, then writes its body.
fn respond(out: ResponseOutparam, status: u16, value: &Value) {
    let body = format!("{value}\n").into_bytes();
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/json".to_vec()),
        ("cache-control".to_string(), b"no-store".to_vec()),
    ]);
    let Ok(headers) = headers else { return };
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
