//! The admin listener's status page: its HTML, CSS and JS, and the charting library it
//! draws with (uPlot, vendored under `status/vendor/`), built into the binary and served
//! by the gateway itself, so the page works with no network at all.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::Full;

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
    Asset::new("/", HTML, include_bytes!("status/index.html")),
    Asset::new("/status.js", JS, include_bytes!("status/status.js")),
    Asset::new("/status.css", CSS, include_bytes!("status/status.css")),
    Asset::new(
        "/vendor/uplot.js",
        JS,
        include_bytes!("status/vendor/uplot.iife.min.js"),
    ),
    Asset::new(
        "/vendor/uplot.css",
        CSS,
        include_bytes!("status/vendor/uplot.min.css"),
    ),
];

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
    let mut response = Response::new(Full::new(Bytes::from_static(asset.bytes)));
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
}
