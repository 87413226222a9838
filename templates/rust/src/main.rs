//! {{name}}: a wasmgate function (a WASI preview1 command, served CGI-style).
//!
//!     GET  /{{name}}?name=Ada                  200 {"greeting": "hello, Ada"}
//!     POST /{{name}}  {"name": "Ada"}          201 {"greeting": "hello, Ada"}
//!     POST /{{name}}  not JSON                 400 {"error": "..."}
//!
//! The request comes in as CGI environment variables (REQUEST_METHOD, QUERY_STRING, ...)
//! and the body on stdin; the response goes out on stdout: a header block (`Status:`,
//! `Content-Type:`, any header), an empty line, then the body. stderr goes to the
//! gateway's log.

use std::io::{Read, Write};

use serde::Deserialize;
use serde_json::json;

/// What a POST body may say.
#[derive(Deserialize)]
struct Greet {
    name: String,
}

fn main() {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let (status, body) = match method.as_str() {
        "GET" | "HEAD" => (200, greet(&query_name())),
        "POST" => match read_name() {
            Ok(name) => (201, greet(&name)),
            Err(error) => (400, json!({ "error": error })),
        },
        _ => (405, json!({ "error": format!("method {method} not allowed") })),
    };
    respond(status, &body);
}

/// The `name` query parameter, or "world".
fn query_name() -> String {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| "world".into())
}

/// The `name` of a JSON body such as `{"name": "Ada"}`.
fn read_name() -> Result<String, String> {
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let greet: Greet = serde_json::from_str(&body)
        .map_err(|e| format!("the body is not {{\"name\": \"...\"}}: {e}"))?;
    Ok(greet.name)
}

fn greet(name: &str) -> serde_json::Value {
    eprintln!("greeted {name}");
    json!({ "greeting": format!("hello, {name}") })
}

/// Writes the CGI header block, the empty line that ends it, and the JSON body.
fn respond(status: u16, body: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "Status: {status}\nContent-Type: application/json\nCache-Control: no-store\n\n{body}\n"
    );
}
