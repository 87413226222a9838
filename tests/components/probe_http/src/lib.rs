//! probe_http: one behaviour per path, good or bad, so the tests can drive every outcome of
//! a wasi:http component through a real one:
//!
//! | path | does |
//! | --- | --- |
//! | `/env` | 200, `arg:A` per argument, then `env:K=V` per variable (sorted) |
//! | `/log` | writes a line to stdout and one to stderr, then 200 `logged` |
//! | `/panic-mid-body` | sets a chunked 200, writes `partial\n`, then panics |
//! | `/drop-body` | sets a chunked 200, writes `partial\n`, drops the body unfinished |
//! | `/big?bytes=N` | a chunked 200 of N bytes of `x` |
//! | `/big-declared?bytes=N` | a 200 that declares `content-length: N` |
//! | `/alloc?mb=N` | touches N MiB of fresh memory, then 200 `allocated N MiB` |
//! | `/hoard?n=N&kib=K` | makes N header sets of one K KiB value each and keeps them all, then 200 `hoarded N` (a header set refused stops it early: `hoarded I, then CODE`) |
//! | `/sleep?ms=N` | blocks N ms on a monotonic-clock pollable before answering |
//! | `/exit?code=N` | exits with status N before answering |
//! | `/echo-stream` | 200, then `got N\n` for each chunk of the request body as it arrives |
//! | `/no-response` | returns without setting a response |
//! | `/error-response` | sets the response to an error code |
//! | `/fetch?url=http://HOST:PORT/PATH` | GETs the URL (`wasi:http/outgoing-handler`): 200 with `upstream-status=N\n` and the upstream's body, or 502 with `outbound error: ` and the error code |

use std::io::Write as _;

use wasi::clocks::monotonic_clock::subscribe_duration;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

const CHUNK: usize = 64 * 1024;

/// The value of `key` in the query, as a number (0 when absent).
fn param(query: &str, key: &str) -> u64 {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn headers(pairs: &[(&str, String)]) -> Fields {
    let list: Vec<(String, Vec<u8>)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().into_bytes()))
        .collect();
    Fields::from_list(&list).expect("valid headers")
}

/// Sets a 200 with `fields` and returns its body.
fn start(out: ResponseOutparam, fields: Fields) -> OutgoingBody {
    let resp = OutgoingResponse::new(fields);
    let body = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    body
}

/// Writes `bytes` in the pieces `blocking-write-and-flush` takes (4096 bytes at most).
fn try_write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let n = bytes.len().min(4096);
        stream.blocking_write_and_flush(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

fn write_all(stream: &OutputStream, bytes: &[u8]) {
    try_write_all(stream, bytes).expect("write body");
}

/// A complete 200 with `text`.
fn answer(out: ResponseOutparam, text: &str) {
    answer_with(out, 200, text.as_bytes());
}

/// A complete response with `status` and `bytes`.
fn answer_with(out: ResponseOutparam, status: u16, bytes: &[u8]) {
    let fields = headers(&[
        ("content-type", "text/plain".into()),
        ("content-length", bytes.len().to_string()),
    ]);
    let resp = OutgoingResponse::new(fields);
    resp.set_status_code(status).expect("valid status");
    let body = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    {
        let stream = body.write().expect("stream taken once");
        write_all(&stream, bytes);
    }
    OutgoingBody::finish(body, None).expect("finish body");
}

fn env_dump(out: ResponseOutparam) {
    let mut text = String::new();
    for arg in std::env::args() {
        text.push_str(&format!("arg:{arg}\n"));
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        text.push_str(&format!("env:{k}={v}\n"));
    }
    answer(out, &text);
}

/// Sets a chunked 200, writes `partial\n`, and hands the body back unfinished.
fn partial(out: ResponseOutparam) -> OutgoingBody {
    let body = start(out, headers(&[("content-type", "text/plain".into())]));
    {
        let stream = body.write().expect("stream taken once");
        write_all(&stream, b"partial\n");
    }
    body
}

fn big(out: ResponseOutparam, bytes: u64, declared: bool) {
    let mut fields = vec![("content-type", "text/plain".to_string())];
    if declared {
        fields.push(("content-length", bytes.to_string()));
    }
    let body = start(out, headers(&fields));
    {
        let stream = body.write().expect("stream taken once");
        let chunk = vec![b'x'; CHUNK];
        let mut left = bytes as usize;
        while left > 0 {
            let n = left.min(CHUNK);
            if try_write_all(&stream, &chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

fn alloc(out: ResponseOutparam, mb: u64) {
    let mut blocks = Vec::new();
    for _ in 0..mb {
        let block = vec![1u8; 1 << 20];
        blocks.push(std::hint::black_box(block));
    }
    answer(out, &format!("allocated {} MiB\n", blocks.len()));
}

fn echo_stream(req: IncomingRequest, out: ResponseOutparam) {
    let incoming = req.consume().expect("body consumed once");
    let body = start(out, headers(&[("content-type", "text/plain".into())]));
    {
        let input = incoming.stream().expect("stream taken once");
        let output = body.write().expect("stream taken once");
        loop {
            match input.blocking_read(CHUNK as u64) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => write_all(&output, format!("got {}\n", chunk.len()).as_bytes()),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    write_all(&output, format!("error {}\n", e.to_debug_string()).as_bytes());
                    break;
                }
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    OutgoingBody::finish(body, None).expect("finish body");
}

/// Reads a whole incoming body.
fn read_all(body: IncomingBody) -> Result<Vec<u8>, ErrorCode> {
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|()| ErrorCode::InternalError(None))?;
        loop {
            match stream.blocking_read(CHUNK as u64) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ErrorCode::InternalError(Some(e.to_debug_string())))
                }
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}

/// GETs `http://AUTHORITY/PATH` (or https) through the outgoing handler.
fn get(url: &str) -> Result<(u16, Vec<u8>), ErrorCode> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(ErrorCode::HttpRequestUriInvalid),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let req = OutgoingRequest::new(Fields::new());
    let invalid = |()| ErrorCode::HttpRequestUriInvalid;
    req.set_method(&Method::Get).map_err(invalid)?;
    req.set_scheme(Some(&scheme)).map_err(invalid)?;
    req.set_authority(Some(authority)).map_err(invalid)?;
    req.set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .map_err(invalid)?;
    let future = outgoing_handler::handle(req, None)?;
    let resp: IncomingResponse = loop {
        match future.get() {
            Some(Ok(result)) => break result?,
            Some(Err(())) => return Err(ErrorCode::InternalError(None)),
            None => future.subscribe().block(),
        }
    };
    let status = resp.status();
    let body = resp.consume().map_err(|()| ErrorCode::InternalError(None))?;
    Ok((status, read_all(body)?))
}

fn fetch(out: ResponseOutparam, query: &str) {
    let url = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("url="))
        .unwrap_or_default();
    match get(url) {
        Ok((status, body)) => {
            let mut bytes = format!("upstream-status={status}\n").into_bytes();
            bytes.extend_from_slice(&body);
            answer_with(out, 200, &bytes);
        }
        Err(e) => answer_with(out, 502, format!("outbound error: {e:?}\n").as_bytes()),
    }
}

/// Makes `n` header sets of one `kib` KiB value each and keeps them until it answers: the
/// host memory a guest can make the gateway hold outside its own linear memory.
fn hoard(out: ResponseOutparam, n: u64, kib: u64) {
    let value = vec![b'a'; (kib * 1024) as usize];
    let mut kept = Vec::new();
    for i in 0..n {
        let fields = Fields::new();
        if let Err(e) = fields.append("x-hoard", &value) {
            return answer(out, &format!("hoarded {i}, then {e:?}\n"));
        }
        kept.push(fields);
    }
    answer(out, &format!("hoarded {}\n", kept.len()));
}

struct Probe;

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = req.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let action = path.rsplit('/').next().unwrap_or("");
        match action {
            "env" => env_dump(out),
            "log" => {
                println!("probe_http: a line on stdout");
                eprintln!("probe_http: a line on stderr");
                answer(out, "logged\n");
            }
            "panic-mid-body" => {
                let _body = partial(out);
                panic!("probe_http: a panic in the middle of the body");
            }
            "drop-body" => drop(partial(out)),
            "big" => big(out, param(query, "bytes"), false),
            "big-declared" => big(out, param(query, "bytes"), true),
            "alloc" => alloc(out, param(query, "mb")),
            "hoard" => hoard(out, param(query, "n"), param(query, "kib")),
            "sleep" => {
                subscribe_duration(param(query, "ms") * 1_000_000).block();
                answer(out, "slept\n");
            }
            "exit" => std::process::exit(param(query, "code") as i32),
            "echo-stream" => echo_stream(req, out),
            "fetch" => fetch(out, query),
            "no-response" => drop(out),
            "error-response" => ResponseOutparam::set(
                out,
                Err(ErrorCode::InternalError(Some("probe_http refuses".into()))),
            ),
            _ => {
                let mut stderr = std::io::stderr();
                let _ = writeln!(stderr, "probe_http: unknown action {action:?}");
                answer(out, "unknown action\n");
            }
        }
    }
}

wasi::http::proxy::export!(Probe);
