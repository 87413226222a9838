//! Turns a guest's stdout into an HTTP response, CGI-style (RFC 3875 section 6).
//!
//! If stdout opens with a header block — `Name: value` lines ended by an empty line, with
//! `\n` or `\r\n` line ends — the headers are applied and the rest is the body. `Status:`
//! sets the status; a `Location:` without a `Status:` is a 302. Anything else is body as a
//! whole, served as `text/plain; charset=utf-8`. A block that is recognisably headers but
//! says something impossible (a bad status, two statuses, a header value HTTP cannot
//! carry) or that runs past [`MAX_HEADER_BLOCK`] without ending is the guest's error,
//! answered 502 `bad_output`: it never fails open into a 200 body. [`scan_head`] reads
//! the same head from the start of an output that is still being written, where a first
//! line that could still be a header and runs past the limit counts as such a block. Framing headers
//! (`Content-Length`, `Transfer-Encoding`, `Connection`, ...) belong to the gateway and are
//! dropped. Every response has a `Content-Type` (the default when the guest set none); the
//! pipeline adds `X-Content-Type-Options: nosniff` to it as to every guest response.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};

use crate::guest::headers::is_hop_by_hop;

/// The content type of a response whose stdout had no CGI headers.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// The longest header block: one that has not ended by then is refused.
pub(crate) const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// How much of a refused header line an error message quotes.
const QUOTED_LINE_BYTES: usize = 128;
/// A response made from a guest's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The head of a response: from a CGI header block, or the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Why a guest's header block cannot become a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("invalid CGI Status header '{0}'")]
    BadStatus(String),
    #[error("invalid CGI header '{0}'")]
    BadHeader(String),
    #[error("more than one CGI Status header")]
    TwoStatuses,
    #[error("the CGI header block runs past {MAX_HEADER_BLOCK} bytes without ending")]
    HeaderBlockTooLarge,
}

/// What the start of a guest's stdout says about its head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadScan {
    /// The head, and how many bytes of stdout it took (0 when there was no block).
    Ready { head: CgiHead, len: usize },
    /// A header block may still be coming: more output is needed to tell.
    Incomplete,
}

/// Where a leading header block is, if there is one.
enum Block<'a> {
    /// The block (without its final line end), and where the body starts.
    Headers(&'a [u8], usize),
    /// The output does not open with a header block.
    Absent,
    /// Only more output can tell.
    Undecided,
}

/// Parses a guest's whole stdout.
pub fn parse_output(stdout: Bytes) -> Result<CgiResponse, OutputError> {
    let (head, body_start) = match find_header_block(&stdout, true)? {
        Block::Headers(block, start) => (apply_block(block)?, start),
        Block::Absent | Block::Undecided => (plain_head(), 0),
    };
    Ok(CgiResponse {
        status: head.status,
        headers: head.headers,
        body: stdout.slice(body_start..),
    })
}

/// Reads the head from the start of a guest's stdout while the guest is still writing: as
/// [`parse_output`] will once the output is complete, or [`HeadScan::Incomplete`] while
/// only more output can tell. One difference: a first line that may still become a header
/// and has not ended within [`MAX_HEADER_BLOCK`] is refused, as a header block that has
/// not ended is; only a complete output can show that such a line was body after all.
pub(crate) fn scan_head(buffered: &[u8]) -> Result<HeadScan, OutputError> {
    match find_header_block(buffered, false)? {
        Block::Headers(block, len) => Ok(HeadScan::Ready {
            head: apply_block(block)?,
            len,
        }),
        Block::Absent => Ok(HeadScan::Ready {
            head: plain_head(),
            len: 0,
        }),
        Block::Undecided => Ok(HeadScan::Incomplete),
    }
}

/// Response headers a guest writes first when it means to write a header block; an
/// output that opens with one of them but has no block most likely forgot the empty line
/// that ends it.
const TELLTALE_HEADERS: [&str; 5] = [
    "status",
    "content-type",
    "location",
    "set-cookie",
    "cache-control",
];

/// The first line of an output served as body whole, when it is a header line such as
/// `Content-Type: application/json`: a header block whose ending empty line is missing
/// (quoted, cut at [`QUOTED_LINE_BYTES`]).
pub(crate) fn unended_header_line(out: &[u8]) -> Option<String> {
    // A header line is short: a body's first line is looked at no further than a block's.
    let window = &out[..out.len().min(MAX_HEADER_BLOCK)];
    let line = window.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (name, _) = split_header(line)?;
    let name = std::str::from_utf8(name).ok()?;
    TELLTALE_HEADERS
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t))
        .then(|| String::from_utf8_lossy(&line[..line.len().min(QUOTED_LINE_BYTES)]).into_owned())
}

/// Applies a header block's lines: the status, and the headers that are not the gateway's.
fn apply_block(block: &[u8]) -> Result<CgiHead, OutputError> {
    let mut status = None;
    let mut headers = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = split_header(line).ok_or_else(|| lossy_err(line))?;
        if name.eq_ignore_ascii_case(b"status") {
            if status.replace(parse_status(value)?).is_some() {
                return Err(OutputError::TwoStatuses);
            }
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|_| lossy_err(line))?;
        // The connection and the framing are the gateway's.
        if is_hop_by_hop(&name) || name == CONTENT_LENGTH {
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
    Ok(CgiHead {
        status,
        headers: with_defaults(headers),
    })
}

fn plain_head() -> CgiHead {
    CgiHead {
        status: StatusCode::OK,
        headers: with_defaults(HeaderMap::new()),
    }
}

/// The default `Content-Type`, where the guest set none.
fn with_defaults(mut headers: HeaderMap) -> HeaderMap {
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    headers
}

/// Finds a leading block of header-shaped lines ended by an empty line. `complete` says
/// whether `out` is all the output there will be; if not, a block may still be coming.
/// Header-shaped lines that run past [`MAX_HEADER_BLOCK`] are an error.
fn find_header_block(out: &[u8], complete: bool) -> Result<Block<'_>, OutputError> {
    let mut pos = 0;
    let window = &out[..out.len().min(MAX_HEADER_BLOCK)];
    let cut_short = out.len() > window.len();
    loop {
        let rest = &window[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if !complete && !cut_short {
                return Ok(match could_be_header(rest) {
                    true => Block::Undecided,
                    false => Block::Absent,
                });
            }
            // Cut off by the limit after header lines, inside one, or (while the guest is
            // still writing) inside a line that may yet become one: the block never ended
            // where it may (../shared/DESIGN.md: an incomplete header block past the limit is a 502).
            let open =
                pos > 0 || split_header(rest).is_some() || (!complete && could_be_header(rest));
            return match cut_short && open {
                true => Err(OutputError::HeaderBlockTooLarge),
                false => Ok(Block::Absent),
            };
        };
        let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        if line.is_empty() {
            return Ok(match pos > 0 {
                true => Block::Headers(&out[..pos - 1], pos + nl + 1),
                false => Block::Absent,
            });
        }
        if split_header(line).is_none() {
            return Ok(Block::Absent);
        }
        pos += nl + 1;
    }
}

/// Whether an unfinished line may still turn out to be a header line (or the empty line
/// that ends a block).
fn could_be_header(partial: &[u8]) -> bool {
    let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
    match partial.contains(&b':') {
        true => split_header(partial).is_some(),
        false => partial.iter().all(|&b| is_token_byte(b)),
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
    let quoted = &line[..line.len().min(QUOTED_LINE_BYTES)];
    OutputError::BadHeader(String::from_utf8_lossy(quoted).into_owned())
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
        for framing in ["content-length", "transfer-encoding", "connection"] {
            assert!(!r.headers.contains_key(framing), "{:?}", r.headers);
        }
        // What is left is the gateway's own defaults.
        assert_eq!(r.headers.len(), 1, "{:?}", r.headers);
    }

    #[test]
    fn a_header_line_without_its_ending_empty_line_is_told_apart() {
        let out = b"Content-Type: application/json\n{\"a\": 1}\n";
        assert_eq!(
            parse(out).unwrap().body.len(),
            out.len(),
            "served whole as body"
        );
        assert_eq!(
            unended_header_line(out).as_deref(),
            Some("Content-Type: application/json")
        );
        assert_eq!(
            unended_header_line(b"status: 201\r\nbody").as_deref(),
            Some("status: 201")
        );
        assert_eq!(unended_header_line(b"Note: a plain body\n"), None);
        assert_eq!(unended_header_line(b"hello, world\n"), None);
    }

    #[test]
    fn every_response_gets_a_content_type() {
        let r = parse(b"Location: /x\n\n").unwrap();
        assert_eq!(r.headers[CONTENT_TYPE], DEFAULT_CONTENT_TYPE);
        let r = parse(b"Content-Type: text/html\n\n<p>").unwrap();
        assert_eq!(r.headers[CONTENT_TYPE], "text/html");
        assert_eq!(r.headers.get_all(CONTENT_TYPE).iter().count(), 1);
    }

    /// A header block past the limit used to be served whole as a 200 `text/plain` body,
    /// `Status: 403` and all.
    #[test]
    fn a_header_block_past_the_limit_is_bad_output() {
        let mut many = Vec::new();
        for i in 0..10_000 {
            many.extend_from_slice(format!("X-H{i}: v\n").as_bytes());
        }
        many.extend_from_slice(b"Status: 403\n\nsecret");
        assert_eq!(
            parse_output(Bytes::from(many)),
            Err(OutputError::HeaderBlockTooLarge)
        );
        let mut long = b"X-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 1 << 20));
        long.extend_from_slice(b"\nStatus: 403\n\nsecret");
        assert_eq!(
            parse_output(Bytes::from(long)),
            Err(OutputError::HeaderBlockTooLarge)
        );
        // A long body that does not open with a header is still just a body.
        let body = vec![b'x'; 1 << 20];
        assert_eq!(parse_output(Bytes::from(body)).unwrap().body.len(), 1 << 20);
    }

    #[test]
    fn two_statuses_are_bad_output() {
        assert_eq!(
            parse(b"Status: 200\nStatus: 403\n\n"),
            Err(OutputError::TwoStatuses)
        );
    }

    #[test]
    fn a_refused_line_is_quoted_short() {
        let mut line = b"X-A: \x01".to_vec();
        line.extend(std::iter::repeat_n(b'a', 10_000));
        line.extend_from_slice(b"\n\n");
        let err = parse_output(Bytes::from(line)).unwrap_err().to_string();
        assert!(err.len() < 200, "{} bytes: {err}", err.len());
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

    #[test]
    fn a_head_is_read_as_soon_as_it_can_be_told() {
        let ready = |s: &[u8]| match scan_head(s).unwrap() {
            HeadScan::Ready { head, len } => Some((head.status, len)),
            HeadScan::Incomplete => None,
        };
        for undecided in [&b""[..], b"Content-Ty", b"Status: 201\n", b"A: b\r\n\r"] {
            assert_eq!(
                ready(undecided),
                None,
                "{:?}",
                String::from_utf8_lossy(undecided)
            );
        }
        assert_eq!(ready(b"Status: 201\n\nbo"), Some((StatusCode::CREATED, 13)));
        assert_eq!(ready(b"line 1\n"), Some((StatusCode::OK, 0)));
        assert_eq!(ready(b"hello wor"), Some((StatusCode::OK, 0)));
        assert_eq!(ready(b"\nx"), Some((StatusCode::OK, 0)));
        assert!(matches!(
            scan_head(b"Status: x\n\n"),
            Err(OutputError::BadStatus(_))
        ));
    }

    #[test]
    fn past_the_header_limit_an_unended_block_or_line_is_bad_output() {
        let plain = |s: &[u8]| matches!(scan_head(s), Ok(HeadScan::Ready { len: 0, .. }));
        assert!(
            matches!(
                scan_head(&vec![b'x'; MAX_HEADER_BLOCK]),
                Ok(HeadScan::Incomplete)
            ),
            "a block could still end"
        );
        // A first line that may still become `xxx...: value` has not ended in the limit.
        assert_eq!(
            scan_head(&vec![b'x'; MAX_HEADER_BLOCK + 1]),
            Err(OutputError::HeaderBlockTooLarge)
        );
        let mut open_block = b"X-A: b\n".to_vec();
        open_block.resize(MAX_HEADER_BLOCK + 1, b'y');
        assert_eq!(
            scan_head(&open_block),
            Err(OutputError::HeaderBlockTooLarge)
        );
        // A line that cannot be a header is a body, however long.
        let mut prose = b"no header here".to_vec();
        prose.resize(MAX_HEADER_BLOCK + 1, b'y');
        assert!(plain(&prose));
        let mut line = vec![b'x'; MAX_HEADER_BLOCK - 1];
        line.push(b'\n');
        line.resize(MAX_HEADER_BLOCK + 1, b'y');
        assert!(plain(&line));
    }
}
