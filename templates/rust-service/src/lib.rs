//! {{name}}: a wasmgate function as a wasi:http 0.3 component (Rust, `wasm32-wasip2`, the
//! `wasi:http/service` world through the `wasip3` crate).
//!
//!     GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
//!     POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
//!     POST /{{name}}  not JSON           400 {"error": "..."}
//!
//! With 0.3, `handle` is an async function from a `Request` to a `Response`: the body is a
//! stream read with `.collect().await` (or piece by piece), and the response carries its
//! status, its headers and a body stream that a task of the guest's own writes. stderr
//! goes to the gateway's log.

use serde::Deserialize;
use serde_json::{Value, json};
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;

/// What a POST body may say.
#[derive(Deserialize)]
struct Greet {
    name: String,
}

struct Function;

wasip3::http::service::export!(Function);

impl wasip3::exports::http::handler::Guest for Function {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let (status, body) = match request.get_method() {
            Method::Get | Method::Head => (200, greet(&query_name(&request))),
            Method::Post => match read_name(request).await {
                Ok(name) => (201, greet(&name)),
                Err(error) => (400, json!({ "error": error })),
            },
            _ => (405, json!({ "error": "method not allowed" })),
        };
        Ok(respond(status, &body))
    }
}

/// The `name` query parameter, or "world".
fn query_name(request: &Request) -> String {
    let target = request.get_path_with_query().unwrap_or_default();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| "world".into())
}

/// The `name` of a JSON body such as `{"name": "Ada"}`.
async fn read_name(request: Request) -> Result<String, String> {
    let (_, read_result) = wit_future::new(|| Ok(()));
    let (body, _trailers) = Request::consume_body(request, read_result);
    let body = body.collect().await;
    if body.len() > MAX_BODY {
        return Err(format!("the body is larger than {MAX_BODY} bytes"));
    }
    let greet: Greet = serde_json::from_slice(&body)
        .map_err(|e| format!("the body is not {{\"name\": \"...\"}}: {e}"))?;
    Ok(greet.name)
}

fn greet(name: &str) -> Value {
    eprintln!("greeted {name}");
    json!({ "greeting": format!("hello, {name}") })
}

/// A JSON response with `status`, its body written by a task of its own once returned.
fn respond(status: u16, value: &Value) -> Response {
    let body = format!("{value}\n").into_bytes();
    let (mut writer, body_reader) = wit_stream::new();
    let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[
        ("content-type".into(), b"application/json".to_vec()),
        ("cache-control".into(), b"no-store".to_vec()),
    ])
    .unwrap_or_else(|_| Fields::new());
    let (response, _sent) = Response::new(headers, Some(body_reader), trailers_reader);
    let _ = response.set_status_code(status);
    drop(trailers);
    wit_bindgen::spawn_local(async move {
        writer.write_all(body).await;
    });
    response
}
