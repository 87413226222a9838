//! sessions: a wasi:http component (Rust, `wasm32-wasip2`) that keeps each visitor's
//! session in the key-value store "sessions" through `wasi:keyvalue@0.2.0-draft`.
//!
//!     GET    /sessions                    the session, made on the first visit:
//!                                         200 {"session": ID, "visits": N, "name": ...}
//!                                         (with Set-Cookie: sid=ID when it is new)
//!     POST   /sessions  {"name": "Ada"}   remembers a name in the session
//!     DELETE /sessions                    ends the session (and clears the cookie)
//!
//! A session is the JSON document at `session:ID`; `sessions-started` counts them with an
//! atomic increment. The module's section must list the store:
//!
//!     [modules.sessions]
//!     kv_stores = ["sessions"]

use serde_json::{json, Value};
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use wasi::io::streams::StreamError;

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        generate_all,
    });
}

use bindings::wasi::keyvalue::{atomics, store};

/// The store sessions are kept in.
const STORE: &str = "sessions";
/// The cookie that carries the session's ID.
const COOKIE: &str = "sid";
/// The largest body read: a name has no business being bigger.
const MAX_BODY: usize = 64 * 1024;

struct Sessions;

::wasi::http::proxy::export!(Sessions);

/// A response: its status, its extra headers, its JSON document.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    document: Value,
}

fn reply(status: u16, document: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        document,
    }
}

fn error(e: store::Error) -> Reply {
    let message = match e {
        store::Error::AccessDenied => format!(
            "this function keeps its sessions in the key-value store '{STORE}', which its \
             [modules.sessions] section must list: kv_stores = [\"{STORE}\"] \
             (config/wasmgate.toml does)"
        ),
        store::Error::NoSuchStore => format!("no store '{STORE}'"),
        store::Error::Other(text) => text,
    };
    reply(503, json!({ "error": message }))
}

/// The session ID the request's cookie carries, if any.
fn session_id(request: &IncomingRequest) -> Option<String> {
    request.headers().get(&"cookie".to_string()).iter().find_map(|value| {
        String::from_utf8_lossy(value).split(';').find_map(|pair| {
            let (name, id) = pair.trim().split_once('=')?;
            let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
            (name == COOKIE && valid).then(|| id.to_string())
        })
    })
}

/// A new session ID: 16 random bytes, in hex.
fn new_id() -> String {
    wasi::random::random::get_random_bytes(16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "no body".to_string())?;
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|()| "no body stream".to_string())?;
        loop {
            match stream.blocking_read(65536) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
            if data.len() > MAX_BODY {
                return Err(format!("body larger than {MAX_BODY} bytes"));
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}

fn handle(request: &IncomingRequest) -> Result<Reply, store::Error> {
    let bucket = store::open(STORE)?;
    let known = session_id(request).and_then(|id| {
        let stored = bucket.get(&format!("session:{id}")).ok()??;
        Some((id, serde_json::from_slice::<Value>(&stored).ok()?))
    });
    if matches!(request.method(), Method::Delete) {
        if let Some((id, _)) = &known {
            bucket.delete(&format!("session:{id}"))?;
        }
        let mut ended = reply(200, json!({ "ended": known.is_some() }));
        let clear = format!("{COOKIE}=; Path=/sessions; Max-Age=0; HttpOnly; SameSite=Lax");
        ended.headers.push(("set-cookie".into(), clear));
        return Ok(ended);
    }
    let (id, mut session, new) = match known {
        Some((id, session)) => (id, session, false),
        None => {
            let number = atomics::increment(&bucket, "sessions-started", 1)?;
            (new_id(), json!({ "visits": 0, "name": null, "number": number }), true)
        }
    };
    match request.method() {
        Method::Get => {}
        Method::Post => {
            let body = match read_body(request) {
                Ok(body) => body,
                Err(e) => return Ok(reply(400, json!({ "error": e }))),
            };
            let name = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("name")?.as_str().map(str::to_string));
            let Some(name) = name else {
                return Ok(reply(400, json!({ "error": "send {\"name\": \"...\"}" })));
            };
            session["name"] = json!(name);
        }
        _ => return Ok(reply(405, json!({ "error": "use GET, POST or DELETE" }))),
    }
    let visits = session["visits"].as_i64().unwrap_or(0) + 1;
    session["visits"] = json!(visits);
    bucket.set(&format!("session:{id}"), session.to_string().as_bytes())?;
    let mut answer = reply(
        200,
        json!({ "session": id, "visits": visits, "name": session["name"], "number": session["number"] }),
    );
    if new {
        let cookie = format!("{COOKIE}={id}; Path=/sessions; HttpOnly; SameSite=Lax");
        answer.headers.push(("set-cookie".into(), cookie));
    }
    Ok(answer)
}

fn respond(out: ResponseOutparam, reply: Reply) {
    let bytes = serde_json::to_vec(&reply.document).unwrap_or_default();
    let mut headers = vec![
        ("content-type".to_string(), b"application/json".to_vec()),
        ("content-length".to_string(), bytes.len().to_string().into_bytes()),
    ];
    headers.extend(reply.headers.into_iter().map(|(k, v)| (k, v.into_bytes())));
    let Ok(headers) = Fields::from_list(&headers) else { return };
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        if stream.blocking_write_and_flush(&bytes).is_err() {
            return;
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

impl ::wasi::exports::http::incoming_handler::Guest for Sessions {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let answer = handle(&request).unwrap_or_else(error);
        respond(out, answer);
    }
}
