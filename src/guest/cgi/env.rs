//! Maps one HTTP request to the guest's environment variables.
//!
//! The guest sees the seed's lowercase names (`http_path`, ...), the CGI/1.1 meta-variables
//! and one `HTTP_*` variable per request header, then its module's own `env` from the config,
//! and nothing of the host's environment. Some headers are withheld on purpose:
//! `Authorization`/`Proxy-Authorization` (RFC 3875 4.1.18, unless the module opts in),
//! `Proxy` (the "httpoxy" attack sets `HTTP_PROXY`), `Content-Type`/`Content-Length` (they
//! have their own variables) and any header whose name has an underscore, since `X-A` and
//! `X_A` would both become `HTTP_X_A` and one could then smuggle the other's value.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};

use super::string_block::StringBlock;
use crate::guest::headers::is_credential;
use crate::guest::settings::ModuleSettings;

/// What the gateway reports as `SERVER_SOFTWARE`.
pub(crate) const SERVER_SOFTWARE: &str = concat!("wasmgate/", env!("CARGO_PKG_VERSION"));

/// Headers that never become `HTTP_*` variables.
const WITHHELD_HEADERS: &[&str] = &["proxy", "content-type", "content-length"];
/// Room for the fixed names and short values of a request's environment, on top of what
/// is counted from the request itself, so the block is allocated once.
const ENV_BASE_CAPACITY: usize = 512;
/// Room for `HTTP_` and `=` and the NUL of one header's variable.
const HEADER_VAR_OVERHEAD: usize = 8;

/// The parts of a request that the environment is made of.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// The module's name, already validated.
    pub module: &'a str,
    pub method: &'a str,
    /// The whole path as received (percent-encoded).
    pub path: &'a str,
    /// The part of the path after `/NAME`, as received.
    pub path_info: &'a str,
    /// The query string as received, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The request came over TLS: the guest sees `HTTPS=on`.
    pub secure: bool,
    /// `HTTP/1.1` and the like.
    pub protocol: &'a str,
    /// The length of the body the guest will read on stdin, when it is known.
    pub body_len: Option<u64>,
}

/// A request whose path cannot be given to a guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("the path is not valid percent-encoded UTF-8")]
    BadPathEncoding,
    #[error("the path contains a NUL byte")]
    NulInPath,
    #[error("the query string contains a NUL byte")]
    NulInQuery,
}

/// The guest's environment for one request, built straight into the `KEY=VALUE\0` block
/// that `environ_get` copies into the guest: one buffer per request rather than two strings
/// per variable (the difference shows in the per-request profile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment(StringBlock);

impl Environment {
    pub fn set(&mut self, key: &str, value: &str) {
        self.set_with(key, |text| text.push_str(value));
    }

    /// Sets `key` to what `write` appends (which must not be a NUL).
    fn set_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        self.0.push_with(|text| {
            text.push_str(key);
            text.push('=');
            write(text);
        });
    }

    /// Sets `key` to a number, without the formatting machinery.
    fn set_number(&mut self, key: &str, value: impl itoa::Integer) {
        self.set_with(key, |text| text.push_str(itoa::Buffer::new().format(value)));
    }

    /// The variables in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .strings()
            .map(|s| s.split_once('=').unwrap_or((s, "")))
    }

    /// The value of the first variable named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The block as the guest receives it.
    pub(crate) fn into_block(self) -> StringBlock {
        self.0
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut env = Environment::default();
        for (k, v) in pairs {
            env.set(k.as_ref(), v.as_ref());
        }
        env
    }
}

/// Builds the guest's environment for one request.
pub fn build_env(
    req: &RequestMeta<'_>,
    settings: &ModuleSettings,
) -> Result<Environment, EnvError> {
    // A NUL would end a variable early in the `environ_get` block, and could so smuggle in
    // variables of its own. HTTP cannot carry one; `wasmgate run --query` could.
    if req.path.contains('\0') {
        return Err(EnvError::NulInPath);
    }
    if req.query.contains('\0') {
        return Err(EnvError::NulInQuery);
    }
    let path_info = decode_path_info(req.path_info)?;
    let host = header_str(req.headers, &HOST);
    let server_name = host.map(strip_port).filter(|h| !h.is_empty());

    let mut env = Environment(StringBlock::with_capacity(capacity_for(req, settings)));
    env.set("http_path", req.path);
    env.set("http_method", req.method);
    env.set("http_host", host.unwrap_or_default());
    env.set("http_query", req.query);
    env.set_with("remote_addr", |text| push_socket_addr(text, req.remote));
    env.set("GATEWAY_INTERFACE", "CGI/1.1");
    env.set("REQUEST_METHOD", req.method);
    env.set_with("SCRIPT_NAME", |text| {
        text.push('/');
        text.push_str(req.module);
    });
    env.set("PATH_INFO", &path_info);
    env.set("QUERY_STRING", req.query);
    if let Some(ct) = header_str(req.headers, &CONTENT_TYPE) {
        env.set("CONTENT_TYPE", ct);
    }
    if let Some(len) = req
        .body_len
        .filter(|&len| len > 0 || req.headers.contains_key(CONTENT_LENGTH))
    {
        env.set_number("CONTENT_LENGTH", len);
    }
    env.set_with("REMOTE_ADDR", |text| push_ip(text, req.remote.ip()));
    env.set_number("REMOTE_PORT", req.remote.port());
    match server_name {
        Some(name) => env.set("SERVER_NAME", name),
        None => env.set_with("SERVER_NAME", |text| push_ip(text, req.local.ip())),
    }
    env.set_number("SERVER_PORT", req.local.port());
    env.set("SERVER_PROTOCOL", req.protocol);
    if req.secure {
        env.set("HTTPS", "on");
    }
    env.set("SERVER_SOFTWARE", SERVER_SOFTWARE);
    push_header_vars(&mut env, req.headers, settings.pass_authorization);
    for (k, v) in &settings.env {
        env.set(k, v);
    }
    Ok(env)
}

/// One `HTTP_*` variable per header name; repeated headers are joined with ", ".
///
/// One pass over the map: a name's values come one after another in its iteration order.
fn push_header_vars(env: &mut Environment, headers: &HeaderMap, pass_auth: bool) {
    let mut entries = headers.iter().peekable();
    while let Some((name, value)) = entries.next() {
        let lower = name.as_str();
        if lower.contains('_')
            || WITHHELD_HEADERS.contains(&lower)
            || (!pass_auth && is_credential(lower))
        {
            continue;
        }
        env.0.push_with(|text| {
            text.push_str("HTTP_");
            text.extend(lower.bytes().map(|b| match b {
                b'-' => '_',
                b => b.to_ascii_uppercase() as char,
            }));
            text.push('=');
            text.push_str(&String::from_utf8_lossy(value.as_bytes()));
            while let Some((_, more)) = entries.next_if(|(next, _)| *next == name) {
                text.push_str(", ");
                text.push_str(&String::from_utf8_lossy(more.as_bytes()));
            }
        });
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &http::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The block's size for this request, estimated so that it is usually allocated once (it
/// grows if the estimate is short).
fn capacity_for(req: &RequestMeta<'_>, settings: &ModuleSettings) -> usize {
    let headers: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + HEADER_VAR_OVERHEAD)
        .sum();
    let module_env: usize = settings
        .env
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    // The path and query appear twice each (seed name and CGI name).
    ENV_BASE_CAPACITY + 2 * (req.path.len() + req.query.len()) + headers + module_env
}

/// Writes `ip:port` (`[ip]:port` for IPv6) the way `Display` does.
fn push_socket_addr(text: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(text, IpAddr::V4(*v4.ip()));
            text.push(':');
            text.push_str(itoa::Buffer::new().format(v4.port()));
        }
        SocketAddr::V6(v6) => {
            // Formatting into a String cannot fail.
            let _ = write!(text, "{v6}");
        }
    }
}

/// Writes an address the way `Display` does; an IPv4 address (the usual case) without the
/// formatting machinery, which shows in the per-request profile.
fn push_ip(text: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(digits.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            // Formatting into a String cannot fail.
            let _ = write!(text, "{v6}");
        }
    }
}

/// `example.test:8080` → `example.test`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// RFC 3875 4.1.5: `PATH_INFO` is not URL-encoded. A path that does not decode to UTF-8
/// without NUL bytes is refused rather than passed on mangled.
fn decode_path_info(raw: &str) -> Result<Cow<'_, str>, EnvError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| EnvError::BadPathEncoding)?;
    if decoded.contains('\0') {
        return Err(EnvError::NulInPath);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The settings of a module the config does not mention.
    fn defaults() -> ModuleSettings {
        ModuleSettings::with_limits(crate::config::defaults::LIMITS)
    }

    fn meta<'a>(headers: &'a HeaderMap, path_info: &'a str) -> RequestMeta<'a> {
        RequestMeta {
            module: "m",
            method: "POST",
            path: "/m/x",
            path_info,
            query: "a=1&b=%20",
            headers,
            remote: "10.1.2.3:4567".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            secure: false,
            protocol: "HTTP/1.1",
            body_len: Some(3),
        }
    }

    fn lookup<'e>(env: &'e Environment, key: &str) -> Option<&'e str> {
        env.get(key)
    }

    #[test]
    fn cgi_names_are_set() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.test:81"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let env = build_env(&meta(&h, "/x%20y"), &defaults()).unwrap();
        let want = [
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/m"),
            ("PATH_INFO", "/x y"),
            ("QUERY_STRING", "a=1&b=%20"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "3"),
            ("REMOTE_ADDR", "10.1.2.3"),
            ("REMOTE_PORT", "4567"),
            ("SERVER_NAME", "example.test"),
            ("SERVER_PORT", "8080"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("HTTP_HOST", "example.test:81"),
            ("http_host", "example.test:81"),
            ("http_path", "/m/x"),
            ("remote_addr", "10.1.2.3:4567"),
        ];
        for (k, v) in want {
            assert_eq!(lookup(&env, k), Some(v), "{k}");
        }
        assert_eq!(lookup(&env, "HTTP_CONTENT_TYPE"), None);
    }

    #[test]
    fn header_values_pass_as_utf8_with_invalid_bytes_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-name", HeaderValue::from_bytes("Zoë".as_bytes()).unwrap());
        h.append("x-raw", HeaderValue::from_bytes(b"a\xffb").unwrap());
        h.append("x-raw", HeaderValue::from_static("c"));
        let env = build_env(&meta(&h, ""), &defaults()).unwrap();
        assert_eq!(lookup(&env, "HTTP_X_NAME"), Some("Zoë"));
        assert_eq!(lookup(&env, "HTTP_X_RAW"), Some("a\u{FFFD}b, c"));
    }

    #[test]
    fn credentials_and_smuggling_headers_are_withheld() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic p"));
        h.insert("proxy", HeaderValue::from_static("http://evil"));
        h.insert("x_forwarded_for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let env = build_env(&meta(&h, ""), &defaults()).unwrap();
        for k in [
            "HTTP_AUTHORIZATION",
            "HTTP_PROXY_AUTHORIZATION",
            "HTTP_PROXY",
            "HTTP_X_FORWARDED_FOR",
        ] {
            assert_eq!(lookup(&env, k), None, "{k}");
        }
        assert_eq!(lookup(&env, "HTTP_X_MULTI"), Some("a, b"));

        let opted_in = ModuleSettings {
            pass_authorization: true,
            ..defaults()
        };
        let env = build_env(&meta(&h, ""), &opted_in).unwrap();
        assert_eq!(lookup(&env, "HTTP_AUTHORIZATION"), Some("Bearer t"));
    }

    #[test]
    fn module_env_is_appended() {
        let settings = ModuleSettings {
            env: vec![("GREETING".into(), "hi".into())],
            ..defaults()
        };
        let env = build_env(&meta(&HeaderMap::new(), ""), &settings).unwrap();
        assert_eq!(lookup(&env, "GREETING"), Some("hi"));
        assert_eq!(lookup(&env, "SERVER_NAME"), Some("127.0.0.1"));
    }

    #[test]
    fn undecodable_paths_are_refused() {
        let h = HeaderMap::new();
        let s = defaults();
        assert_eq!(build_env(&meta(&h, "/%00"), &s), Err(EnvError::NulInPath));
        let mut smuggling = meta(&h, "/x");
        smuggling.query = "a=1\0HTTP_AUTHORIZATION=Basic eA==";
        assert_eq!(build_env(&smuggling, &s), Err(EnvError::NulInQuery));
        smuggling.query = "";
        smuggling.path = "/m/x\0REMOTE_ADDR=1.2.3.4";
        assert_eq!(build_env(&smuggling, &s), Err(EnvError::NulInPath));
        assert_eq!(
            build_env(&meta(&h, "/%ff"), &s),
            Err(EnvError::BadPathEncoding)
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let h = HeaderMap::new();
        for (remote, local) in [
            ("10.1.2.3:4567", "0.0.0.0:80"),
            ("255.255.255.255:65535", "127.0.0.1:8080"),
            ("[2001:db8::1]:4567", "[::1]:8080"),
            ("[::ffff:10.0.0.1]:1", "[fe80::1]:443"),
        ] {
            let (remote, local): (SocketAddr, SocketAddr) =
                (remote.parse().unwrap(), local.parse().unwrap());
            let req = RequestMeta {
                remote,
                local,
                ..meta(&h, "")
            };
            let env = build_env(&req, &defaults()).unwrap();
            let remote_ip = remote.ip().to_string();
            let remote_port = remote.port().to_string();
            let local_ip = local.ip().to_string();
            let local_port = local.port().to_string();
            assert_eq!(
                lookup(&env, "remote_addr"),
                Some(remote.to_string().as_str())
            );
            assert_eq!(lookup(&env, "REMOTE_ADDR"), Some(remote_ip.as_str()));
            assert_eq!(lookup(&env, "REMOTE_PORT"), Some(remote_port.as_str()));
            assert_eq!(lookup(&env, "SERVER_NAME"), Some(local_ip.as_str()));
            assert_eq!(lookup(&env, "SERVER_PORT"), Some(local_port.as_str()));
        }
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.test:80"), "a.test");
        assert_eq!(strip_port("a.test"), "a.test");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
