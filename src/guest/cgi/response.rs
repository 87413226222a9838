//! Turns a guest's stdout into an HTTP response, CGI-style (RFC 3875 section 6).
//!
//! If stdout opens with a header block — `Name: value` lines ended by an empty line, with
//! `\n` or `\r\n` line ends — the headers are applied and the rest is the body. `Status:`
//! sets the status; a `Location:` without a `Status:` is a 302. Anything else is body as a
//! whole, served as `text/plain; charset=utf-8`. A block that is recognisably headers but
//! says something impossible (a bad status, a header value HTTP cannot carry) is the
//! guest's error, answered 502 `bad_output`. Framing headers (`Content-Length`,
//! `Transfer-Encoding`, `Connection`, ...) belong to the gateway and are dropped.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};

/// The content type of a response whose stdout had no CGI headers.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// A header block longer than this is not looked for: it is body.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Headers that describe the connection or the framing, which the gateway owns.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A response made from a guest's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a guest's header block cannot become a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("invalid CGI Status header '{0}'")]
    BadStatus(String),
    #[error("invalid CGI header '{0}'")]
    BadHeader(String),
}

/// Parses a guest's whole stdout.
pub fn parse_output(stdout: Bytes) -> Result<CgiResponse, OutputError> {
    let Some((block, body_start)) = find_header_block(&stdout) else {
        return Ok(plain(stdout));
    };
    let mut status = None;
    let mut headers = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = split_header(line).ok_or_else(|| lossy_err(line))?;
        if name.eq_ignore_ascii_case(b"status") {
            status = Some(parse_status(value)?);
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|_| lossy_err(line))?;
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| lossy_err(line))?;
        headers.append(name, value);
    }
    let status = status.unwrap_or(if headers.contains_key(LOCATION) {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    Ok(CgiResponse {
        status,
        headers,
        body: stdout.slice(body_start..),
    })
}

fn plain(body: Bytes) -> CgiResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    CgiResponse {
        status: StatusCode::OK,
        headers,
        body,
    }
}

/// Finds a leading block of header-shaped lines ended by an empty line; returns the block
/// (without its final line end) and where the body starts.
fn find_header_block(out: &[u8]) -> Option<(&[u8], usize)> {
    let mut pos = 0;
    let window = &out[..out.len().min(MAX_HEADER_BLOCK)];
    loop {
        let rest = &window[pos..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        if line.is_empty() {
            return (pos > 0).then(|| (&out[..pos.saturating_sub(1)], pos + nl + 1));
        }
        split_header(line)?;
        pos += nl + 1;
    }
}

/// `Name: value` with a token name; the value is trimmed of surrounding white space.
fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    Some((name, line[colon + 1..].trim_ascii()))
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `201`, `201 Created`: a final status between 200 and 599.
fn parse_status(value: &[u8]) -> Result<StatusCode, OutputError> {
    let text = String::from_utf8_lossy(value);
    let code = text.split_whitespace().next().unwrap_or_default();
    code.parse::<u16>()
        .ok()
        .filter(|c| (200..600).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| OutputError::BadStatus(text.into_owned()))
}

fn lossy_err(line: &[u8]) -> OutputError {
    OutputError::BadHeader(String::from_utf8_lossy(line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &'static [u8]) -> Result<CgiResponse, OutputError> {
        parse_output(Bytes::from_static(s))
    }

    #[test]
    fn plain_output_is_the_body() {
        for s in [
            &b"hello, world\n"[..],
            b"",
            b"no newline",
            b"a: b",
            b"\n\nx",
        ] {
            let r = parse_output(Bytes::copy_from_slice(s)).unwrap();
            assert_eq!((r.status, &r.body[..]), (StatusCode::OK, s));
            assert_eq!(r.headers[CONTENT_TYPE], DEFAULT_CONTENT_TYPE);
        }
    }

    #[test]
    fn headers_and_status_are_applied() {
        let r =
            parse(b"Status: 201 Created\nContent-Type: application/json\nX-A: yes\n\n{}").unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        assert_eq!(r.headers["x-a"], "yes");
        assert_eq!(&r.body[..], b"{}");
    }

    #[test]
    fn crlf_and_repeated_headers() {
        let r = parse(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody").unwrap();
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(&r.body[..], b"body");
    }

    #[test]
    fn location_alone_redirects() {
        let r = parse(b"Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(r.headers[LOCATION], "/elsewhere");
        let r = parse(b"Status: 301\nLocation: /x\n\n").unwrap();
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn framing_headers_are_dropped() {
        let r = parse(b"Content-Length: 99\nTransfer-Encoding: chunked\nConnection: close\n\nx")
            .unwrap();
        assert!(r.headers.is_empty(), "{:?}", r.headers);
    }

    #[test]
    fn impossible_headers_are_bad_output() {
        assert!(matches!(
            parse(b"Status: abc\n\n"),
            Err(OutputError::BadStatus(_))
        ));
        assert!(matches!(
            parse(b"Status: 99\n\n"),
            Err(OutputError::BadStatus(_))
        ));
        assert!(matches!(
            parse(b"Status: 1000\n\n"),
            Err(OutputError::BadStatus(_))
        ));
        assert!(matches!(
            parse(b"X-A: a\x01b\n\n"),
            Err(OutputError::BadHeader(_))
        ));
    }
}
