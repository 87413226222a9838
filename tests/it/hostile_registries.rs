//! Registries that attack the gateway (issue 30, items 2 and 3), on real sockets, against
//! the real binary: an endless manifest, a forged `Docker-Content-Digest`, layers behind
//! redirects, and registries and token realms fishing for another registry's password.
//! Each failed on the commit before the fix (the redirect test on its message only: the
//! layer's digest check and the dropped credentials held then, and it keeps them).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hello_saying;
use common::served::Served;
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const PASSWORD: &str = "hunter2-bound-to-one-registry";
/// How often a trickling registry sends a byte: under every read timeout.
const TRICKLE_EVERY: Duration = Duration::from_secs(5);

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A Wasm OCI manifest whose one layer is `layer`.
fn manifest_of(layer: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                   "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": sha256(layer),
                    "size": layer.len()}],
    })
    .to_string()
    .into_bytes()
}

/// One request as a hostile server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// What a hostile server does with a request.
enum Answer {
    /// Status line, extra headers, body (left out for HEAD).
    Reply(&'static str, String, Vec<u8>),
    /// A 200 whose body never ends.
    Endless,
    /// A response head sent a byte every few seconds, never finished.
    Trickle,
}

fn ok(headers: String, body: Vec<u8>) -> Answer {
    Answer::Reply("200 OK", headers, body)
}

/// A server on a loopback port that answers each request (one per connection) as
/// `answer` says, and records what it saw.
struct Hostile {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    fn start(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || serve_one(stream, &log, &*answer));
            }
        });
        Hostile { addr, seen }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn saw_password(&self) -> bool {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.authorization.as_deref() == Some(&format!("Basic {basic}")))
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(stream: TcpStream, log: &Mutex<Vec<Seen>>, answer: &dyn Fn(&Seen) -> Answer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let seen = Seen {
        method: method.to_string(),
        path: path.to_string(),
        authorization,
    };
    log.lock().unwrap().push(seen.clone());
    let mut stream = stream;
    match answer(&seen) {
        Answer::Reply(status, headers, body) => {
            let head = format!(
                "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if seen.method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
        Answer::Trickle => {
            for byte in b"HTTP/1.1 200 OK\r\nx-slow: ".iter().cycle() {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(TRICKLE_EVERY);
            }
        }
        Answer::Endless => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {OCI_MANIFEST}\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let chunk = vec![b' '; 64 * 1024];
            while stream.write_all(&chunk).is_ok() {}
        }
    }
    let _ = stream.flush();
    let _ = stream.read(&mut [0u8; 1]);
}

/// A registry serving `layer` as `fn:v1` of every repository.
fn artifact_answer(layer: Vec<u8>) -> impl Fn(&Seen) -> Answer {
    let manifest = manifest_of(&layer);
    move |seen: &Seen| {
        if seen.path.contains("/manifests/") {
            let headers = format!(
                "content-type: {OCI_MANIFEST}\r\ndocker-content-digest: {}\r\n",
                sha256(&manifest)
            );
            ok(headers, manifest.clone())
        } else if seen.path.contains("/blobs/") {
            ok(String::new(), layer.clone())
        } else {
            Answer::Reply("404 Not Found", String::new(), Vec::new())
        }
    }
}

fn source(name: &str, host: &str, repository: &str) -> String {
    format!("\n[modules.{name}]\nsource = \"oci://{host}/{repository}:v1\"\n")
}

/// The `/modules` entry of `name` once it is no longer pending.
fn settled(served: &Served, name: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let entry = served.module(name);
        let state = entry["state"].as_str().unwrap_or_default();
        if state == "ready" || state == "failed" || Instant::now() > deadline {
            return entry;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(config: &str, env: &[(&str, &str)]) -> Served {
    let modules = [("local".to_string(), hello_saying("local"))];
    Served::start_bytes(&modules, env, &format!("oci_poll_ms = 200\n{config}"), &[])
}

/// Item 2: a manifest that never ends is cut off at the cap, not read into memory.
#[test]
fn an_endless_manifest_is_cut_off_at_its_cap() {
    let manifest_digest = sha256(b"a manifest that never ends");
    let registry = Hostile::start(move |seen| match seen.method.as_str() {
        "HEAD" => ok(
            format!("docker-content-digest: {manifest_digest}\r\n"),
            Vec::new(),
        ),
        _ => Answer::Endless,
    });
    let served = start(&source("endless", &registry.host(), "endless/fn"), &[]);
    let before = served.resident_kib();
    let entry = settled(&served, "endless", Duration::from_secs(20));
    assert_eq!(entry["state"], "failed", "{entry}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(error.contains("a manifest larger than"), "{error}");
    let grown_mib = served.resident_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "the gateway grew by {grown_mib} MiB");
    assert_eq!(served.get("/local"), (200, "local\n".into()));
}

/// Item 2: a `Docker-Content-Digest` that is not a digest is neither used nor shown.
#[test]
fn a_forged_content_digest_is_refused_unshown() {
    let registry = Hostile::start(|_| {
        ok(
            "docker-content-digest: sha256:../../../v2/elsewhere/manifests/EVIL\r\n".into(),
            Vec::new(),
        )
    });
    let served = start(&source("forged", &registry.host(), "forged/fn"), &[]);
    let entry = settled(&served, "forged", Duration::from_secs(20));
    assert_eq!(entry["state"], "failed", "{entry}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(error.contains("not sha256"), "{error}");
    assert!(!entry.to_string().contains("EVIL"), "{entry}");
    assert!(
        registry
            .requests()
            .iter()
            .all(|s| !s.path.contains("elsewhere")),
        "{:?}",
        registry.requests()
    );
}

/// Item 2: a layer behind a redirect to another host is fetched (the distribution spec
/// allows it) without the registry's credentials, and checked against its digest there.
#[test]
fn a_redirected_layer_is_checked_and_gets_no_credentials() {
    let good = hello_saying("from the blob store");
    let store = Hostile::start({
        let good = good.clone();
        move |seen| match seen.path.as_str() {
            "/good" => ok(String::new(), good.clone()),
            _ => ok(String::new(), hello_saying("swapped on the way")),
        }
    });
    let store_host = store.host();
    let registry = Hostile::start(move |seen| {
        if seen.authorization.is_none() {
            return Answer::Reply(
                "401 Unauthorized",
                "www-authenticate: Basic realm=\"r\"\r\n".into(),
                Vec::new(),
            );
        }
        let manifest = manifest_of(&good);
        if seen.path.contains("/manifests/") {
            let headers = format!("docker-content-digest: {}\r\n", sha256(&manifest));
            ok(headers, manifest)
        } else {
            let to = if seen.path.starts_with("/v2/good/") {
                "good"
            } else {
                "bad"
            };
            let location = format!("location: http://{store_host}/{to}\r\n");
            Answer::Reply("307 Temporary Redirect", location, Vec::new())
        }
    });
    let host = registry.host();
    let config = format!(
        "{}{}",
        source("good", &host, "good/fn"),
        source("bad", &host, "bad/fn")
    );
    let env = [
        ("WASMGATE_OCI_USERNAME", "alice"),
        ("WASMGATE_OCI_PASSWORD", PASSWORD),
    ];
    let served = start(&config, &env);
    assert_eq!(
        settled(&served, "good", Duration::from_secs(20))["state"],
        "ready"
    );
    assert_eq!(served.get("/good"), (200, "from the blob store\n".into()));
    let bad = settled(&served, "bad", Duration::from_secs(20));
    assert_eq!(bad["state"], "failed", "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match its digest"),
        "{bad}"
    );
    assert!(
        registry.saw_password(),
        "the registry itself was offered its credentials"
    );
    assert!(
        store.requests().iter().all(|s| s.authorization.is_none()),
        "{:?}",
        store.requests()
    );
}

/// Item 4: a source that trickles holds readiness back a few seconds at most, then shows
/// as failed ("no answer yet") while the other modules serve.
#[test]
fn a_trickling_source_delays_readiness_a_few_seconds_at_most() {
    let registry = Hostile::start(|_| Answer::Trickle);
    let started = Instant::now();
    let served = start(&source("slow", &registry.host(), "slow/fn"), &[]);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "ready after {waited:?}");
    assert_eq!(served.admin_get("/readyz").0, 200);
    assert_eq!(served.get("/local"), (200, "local\n".into()));
    let entry = served.module("slow");
    assert_eq!(entry["state"], "failed", "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer yet"),
        "{entry}"
    );
    assert_eq!(served.get("/slow").0, 500);
}

/// Item 5: a layer media type cannot forge a log line, in either log format.
#[test]
fn a_registry_s_media_type_cannot_forge_a_log_line() {
    let forged = "2026-12-07T00:00:00.000000Z  INFO wasmgate: module loaded module=admin";
    let layer = hello_saying("unused");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                   "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": format!("application/x\n{forged}\r\u{1b}[2K"),
                    "digest": sha256(&layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let registry = Hostile::start(move |_| {
        let headers = format!("docker-content-digest: {}\r\n", sha256(&manifest));
        ok(headers, manifest.clone())
    });
    for format in ["text", "json"] {
        let modules = [("local".to_string(), hello_saying("local"))];
        let config = format!(
            "oci_poll_ms = 200\n{}",
            source("typed", &registry.host(), "typed/fn")
        );
        let served = Served::start_bytes(&modules, &[], &config, &["--log-format", format]);
        let entry = settled(&served, "typed", Duration::from_secs(20));
        assert!(
            entry["error"]
                .as_str()
                .unwrap_or_default()
                .contains("media type"),
            "{entry}"
        );
        served
            .wait_for_log("module=admin")
            .expect("the media type is logged");
        let log = served.log.lock().unwrap().clone();
        for line in log.lines() {
            assert!(!line.contains(['\x1b', '\r']), "{format}: {line:?}");
            assert!(
                !line.trim_start().starts_with("2026-12-07T00"),
                "{format}: {line}"
            );
        }
    }
}

/// Item 3: credentials go to the registry they are for, and to no other registry or
/// token realm that asks.
#[test]
fn credentials_reach_only_their_own_registry() {
    let challenge = |header: String| {
        move |_: &Seen| Answer::Reply("401 Unauthorized", header.clone(), Vec::new())
    };
    let own = Hostile::start(move |seen| match seen.authorization {
        None => Answer::Reply(
            "401 Unauthorized",
            "www-authenticate: Basic realm=\"own\"\r\n".into(),
            Vec::new(),
        ),
        Some(_) => artifact_answer(hello_saying("own registry"))(seen),
    });
    let second = Hostile::start(challenge(
        "www-authenticate: Basic realm=\"second\"\r\n".into(),
    ));
    let realm = Hostile::start(|_| ok(String::new(), br#"{"token":"anonymous"}"#.to_vec()));
    let third = Hostile::start(challenge(format!(
        "www-authenticate: Bearer realm=\"http://{}/token\",service=\"third\"\r\n",
        realm.host()
    )));
    let config = format!(
        "oci_insecure = [\"{}\"]\n{}{}{}",
        realm.host(),
        source("own", &own.host(), "fns/own"),
        source("second", &second.host(), "fns/second"),
        source("third", &third.host(), "fns/third"),
    );
    let env = [
        ("WASMGATE_OCI_USERNAME", "alice"),
        ("WASMGATE_OCI_PASSWORD", PASSWORD),
        ("WASMGATE_OCI_REGISTRY", &own.host()),
    ];
    let served = start(&config, &env);
    assert_eq!(
        settled(&served, "own", Duration::from_secs(20))["state"],
        "ready"
    );
    assert_eq!(served.get("/own"), (200, "own registry\n".into()));
    for name in ["second", "third"] {
        let entry = settled(&served, name, Duration::from_secs(20));
        assert!(
            entry["error"]
                .as_str()
                .unwrap_or_default()
                .contains("credentials were refused"),
            "{name}: {entry}"
        );
    }
    assert!(own.saw_password());
    assert!(!second.saw_password(), "{:?}", second.requests());
    assert!(!realm.saw_password(), "{:?}", realm.requests());
    assert!(!third.saw_password(), "{:?}", third.requests());
    assert!(
        !realm.requests().is_empty(),
        "the third registry's realm was asked"
    );
}

/// Item 3: credentials for several registries without saying which is refused at start.
#[test]
fn credentials_that_could_be_for_several_registries_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmgate.toml");
    let sources = format!(
        "{}{}",
        source("a", "127.0.0.1:1", "fns/a"),
        source("b", "127.0.0.1:2", "fns/b")
    );
    std::fs::write(&config, sources).unwrap();
    let mut child = std::process::Command::new(common::served::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--modules")
        .arg(dir.path())
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--config")
        .arg(&config)
        .env("WASMGATE_OCI_USERNAME", "alice")
        .env("WASMGATE_OCI_PASSWORD", PASSWORD)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.is_some_and(|s| !s.success()), "it started: {stderr}");
    assert!(stderr.contains("WASMGATE_OCI_REGISTRY"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
