//! counter: a visit counter that outlives every request and every restart. Each request
//! to `/counter/PAGE` adds one to PAGE's count in the store `counts` (an atomic increment,
//! so concurrent requests, or a fleet sharing Redis, never lose a visit) and answers
//! `{"page": "/PAGE", "visits": N}`. The store must be listed in the module's section:
//!
//!     [modules.counter]
//!     kv_stores = ["counts"]

use serde_json::{Value, json};
use wasmgate_kv::{Error, Store};

/// The store the counts are kept in.
const STORE: &str = "counts";

fn main() {
    let page = std::env::var("PATH_INFO").unwrap_or_default();
    let page = if page.is_empty() {
        "/".to_string()
    } else {
        page
    };
    match count(&page) {
        Ok(visits) => respond(200, &json!({ "page": page, "visits": visits })),
        Err(Error::Denied) => respond(
            503,
            &json!({ "error": format!(
                "this function keeps its counts in the key-value store '{STORE}', which its \
                 [modules.counter] section must list: kv_stores = [\"{STORE}\"] \
                 (config/wasmgate.toml does)"
            ) }),
        ),
        Err(e) => respond(503, &json!({ "error": e.to_string() })),
    }
}

fn count(page: &str) -> wasmgate_kv::Result<i64> {
    Store::open(STORE)?.increment(format!("visits:{page}"), 1)
}

fn respond(status: u16, document: &Value) {
    println!("Status: {status}");
    println!("Content-Type: application/json");
    println!();
    println!("{document}");
}
