//! counter: a visit counter that outlives every request and every restart. Each request
//! to `/counter/PAGE` adds one to PAGE's count in the store `counts` (an atomic increment,
//! so concurrent requests, or a fleet sharing Redis, never lose a visit) and answers
//! `{"page": "/PAGE", "visits": N}`; `/counter` itself lists every page's count (the keys,
//! then one batch read), `{"pages": {"/PAGE": N, ...}}`. The store must be listed in the
//! module's section:
//!
//!     [modules.counter]
//!     kv_stores = ["counts"]

use serde_json::{Map, Value, json};
use wasmgate_kv::{Error, Store};

/// The store the counts are kept in.
const STORE: &str = "counts";

/// The prefix of each page's key.
const PAGE_KEY: &str = "visits:";

fn main() {
    let page = std::env::var("PATH_INFO").unwrap_or_default();
    let answer = if page.is_empty() || page == "/" {
        pages().map(|pages| json!({ "pages": pages }))
    } else {
        count(&page).map(|visits| json!({ "page": page, "visits": visits }))
    };
    match answer {
        Ok(document) => respond(200, &document),
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
    Store::open(STORE)?.increment(format!("{PAGE_KEY}{page}"), 1)
}

/// Every page's count: the store's keys, then their values in one call.
fn pages() -> wasmgate_kv::Result<Map<String, Value>> {
    let store = Store::open(STORE)?;
    let keys: Vec<Vec<u8>> = store
        .keys()?
        .into_iter()
        .filter(|k| k.starts_with(PAGE_KEY.as_bytes()))
        .collect();
    let values = store.get_many(&keys)?;
    Ok(keys
        .iter()
        .zip(values)
        .filter_map(|(key, value)| {
            let page = String::from_utf8_lossy(&key[PAGE_KEY.len()..]).into_owned();
            let visits: i64 = String::from_utf8(value?).ok()?.parse().ok()?;
            Some((page, json!(visits)))
        })
        .collect())
}

fn respond(status: u16, document: &Value) {
    println!("Status: {status}");
    println!("Content-Type: application/json");
    println!();
    println!("{document}");
}
