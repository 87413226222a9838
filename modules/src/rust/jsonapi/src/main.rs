//! jsonapi: a JSON API. Reads the query string (`QUERY_STRING`) and, for a POST, a JSON
//! body on stdin; answers with a JSON document describing both, with CGI headers for the
//! content type and, for an invalid body, a 400 status.

use std::io::Read;

use serde_json::{Map, Value, json};

fn main() {
    let query: Map<String, Value> = form_urlencoded::parse(env("QUERY_STRING").as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut body = String::new();
    if std::io::stdin().read_to_string(&mut body).is_err() {
        return respond(400, &json!({ "error": "the body is not UTF-8" }));
    }
    let parsed = if body.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str::<Value>(&body) {
            Ok(value) => value,
            Err(e) => return respond(400, &json!({ "error": format!("invalid JSON body: {e}") })),
        }
    };
    respond(
        200,
        &json!({
            "method": env("REQUEST_METHOD"),
            "path": env("PATH_INFO"),
            "query": query,
            "body": parsed,
        }),
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn respond(status: u16, document: &Value) {
    print!("Status: {status}\nContent-Type: application/json\n\n{document}\n");
}
