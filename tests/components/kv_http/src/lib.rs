//! kv_http: a wasi:http component that uses `wasi:keyvalue@0.2.0-draft` for real. Each
//! request to /kv_http?TEXT answers 200 (text/plain) with one line per call:
//!
//!     visits=N                 atomics.increment("visits", 1) in store "sessions"
//!     last=TEXT                set("last", TEXT), then get("last")
//!     many=a:1,zz:-,b:2        batch set-many, then get-many of a, zz, b
//!     exists=false             exists("zz")
//!     keys=a,b,last,visits     list-keys, every page
//!     big=ERROR                set of a 4 KiB value (over the tests' max_value_bytes)
//!     denied=ERROR             open("elsewhere"), a store the module does not list
//!     bad=ERROR                open("no/pe"), no store's name

use ::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        generate_all,
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

struct Component;

::wasi::http::proxy::export!(Component);

fn error(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(text) => format!("other:{text}"),
    }
}

fn report(query: &str) -> Result<String, String> {
    let bucket = store::open("sessions").map_err(error)?;
    let mut out = String::new();
    let visits = atomics::increment(&bucket, "visits", 1).map_err(error)?;
    out += &format!("visits={visits}\n");
    bucket.set("last", query.as_bytes()).map_err(error)?;
    let last = bucket.get("last").map_err(error)?.unwrap_or_default();
    out += &format!("last={}\n", String::from_utf8_lossy(&last));
    let pairs = [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())];
    batch::set_many(&bucket, &pairs).map_err(error)?;
    let wanted = ["a".to_string(), "zz".to_string(), "b".to_string()];
    let many = batch::get_many(&bucket, &wanted).map_err(error)?;
    let many: Vec<String> = wanted
        .iter()
        .zip(many)
        .map(|(key, found)| match found {
            Some((_, value)) => format!("{key}:{}", String::from_utf8_lossy(&value)),
            None => format!("{key}:-"),
        })
        .collect();
    out += &format!("many={}\n", many.join(","));
    out += &format!("exists={}\n", bucket.exists("zz").map_err(error)?);
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor).map_err(error)?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out += &format!("keys={}\n", keys.join(","));
    let big = bucket.set("big", &[b'x'; 4096]).err().map(error);
    out += &format!("big={}\n", big.unwrap_or_else(|| "stored".into()));
    let denied = store::open("elsewhere").err().map(error);
    out += &format!("denied={}\n", denied.unwrap_or_else(|| "opened".into()));
    let bad = store::open("no/pe").err().map(error);
    out += &format!("bad={}\n", bad.unwrap_or_else(|| "opened".into()));
    Ok(out)
}

impl ::wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let (status, text) = match report(query) {
            Ok(text) => (200, text),
            Err(e) => (500, format!("error={e}\n")),
        };
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("valid status");
        let body = response.body().expect("body");
        ResponseOutparam::set(outparam, Ok(response));
        let stream = body.write().expect("stream");
        stream.blocking_write_and_flush(text.as_bytes()).expect("write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish");
    }
}
