//! Fuzzes the request-to-environment mapping with arbitrary paths, queries and headers:
//! it must never panic, every variable must be a valid WASI environment entry (no `=` in
//! the name, no NUL anywhere, so no input can add a variable of its own), withheld headers
//! must stay withheld, and the module's own variables must come through.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wasmgate::testing::{RequestMeta, build_env};
use wasmgate::{Config, ModuleSettings, Overrides};

/// A module with one variable of its own, under the default limits.
static SETTINGS: LazyLock<ModuleSettings> = LazyLock::new(|| {
    let config = Config::from_toml("", Overrides::default()).expect("the defaults parse");
    ModuleSettings {
        env: vec![("MODULE_VAR".into(), "kept".into())],
        ..config.module_settings("fuzz")
    }
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let path_info = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for pair in parts {
        let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let meta = RequestMeta {
        module: "fuzz",
        method: "GET",
        path: path_info,
        path_info,
        query,
        headers: &headers,
        remote: "127.0.0.1:1".parse().unwrap(),
        local: "127.0.0.1:2".parse().unwrap(),
        secure: false,
        protocol: "HTTP/1.1",
        body_len: None,
    };
    if let Ok(env) = build_env(&meta, &SETTINGS) {
        for (k, v) in env.iter() {
            assert!(
                !k.is_empty() && !k.contains('=') && !k.contains('\0'),
                "{k:?}"
            );
            assert!(!v.contains('\0'), "{k}={v:?}");
            assert!(
                k != "HTTP_AUTHORIZATION" && k != "HTTP_PROXY" && k != "HTTP_PROXY_AUTHORIZATION"
            );
        }
        assert!(env.iter().any(|(k, v)| k == "MODULE_VAR" && v == "kept"));
        assert_eq!(env.iter().filter(|(k, _)| *k == "QUERY_STRING").count(), 1);
    }
});
