//! The admin listener's status page: its HTML, CSS and JS (in `assets/status/`), and the
//! charting library it draws with (uPlot, vendored under `assets/status/vendor/`), built
//! into the binary and served by the gateway itself, so the page works with no network at
//! all. Which outcomes count as server errors the page learns from the gateway's own
//! [`Outcome`] table (`/outcomes.js`), never from a copy.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::Full;

use crate::outcome::Outcome;

/// One file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset::new("/", HTML, include_bytes!("../../assets/status/index.html")),
    Asset::new(
        "/status.js",
        JS,
        include_bytes!("../../assets/status/status.js"),
    ),
    Asset::new(
        "/status.css",
        CSS,
        include_bytes!("../../assets/status/status.css"),
    ),
    Asset::new(
        "/vendor/uplot.js",
        JS,
        include_bytes!("../../assets/status/vendor/uplot.iife.min.js"),
    ),
    Asset::new("/outcomes.js", JS, b""),
    Asset::new(
        "/vendor/uplot.css",
        CSS,
        include_bytes!("../../assets/status/vendor/uplot.min.css"),
    ),
];

/// The one asset the gateway writes itself.
const OUTCOMES_JS: &str = "/outcomes.js";

/// The outcomes the gateway answers with a 5xx, as the page's script reads them.
static OUTCOMES: LazyLock<Bytes> = LazyLock::new(|| {
    let labels: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| o.status().is_server_error())
        .map(|o| format!("{:?}", o.label()))
        .collect();
    Bytes::from(format!(
        "// The outcomes answered with a 5xx, from the gateway's own table.\n\
         const SERVER_ERRORS = new Set([{}]);\n",
        labels.join(", ")
    ))
});

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        Asset {
            path,
            content_type,
            bytes,
        }
    }
}

/// The page's file at `path`, if it is one. Browsers revalidate every time (`no-cache`),
/// so a new binary's page is never mixed with an old one's script.
pub(crate) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    let body = match asset.path {
        OUTCOMES_JS => OUTCOMES.clone(),
        _ => Bytes::from_static(asset.bytes),
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_everything_it_loads_are_served() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for file in ASSETS {
            assert!(asset(file.path).is_some(), "{}", file.path);
            if file.path != "/" {
                assert!(
                    page.contains(&format!("\"{}\"", file.path)),
                    "{} unused",
                    file.path
                );
            }
        }
        assert!(asset("/../Cargo.toml").is_none());
    }

    #[test]
    fn the_page_learns_the_server_errors_from_the_outcome_table() {
        assert!(asset(OUTCOMES_JS).is_some());
        let text = std::str::from_utf8(&OUTCOMES).unwrap();
        for outcome in Outcome::ALL {
            let listed = text.contains(&format!("\"{}\"", outcome.label()));
            assert_eq!(
                listed,
                outcome.status().is_server_error(),
                "{outcome:?}: {text}"
            );
        }
        assert!(text.contains("\"timeout\"") && !text.contains("\"not_found\""));
    }
}
