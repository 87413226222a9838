//! Module sources beyond the modules directory, against a real OCI registry (Debian's
//! `docker-registry`, the CNCF Distribution registry, which `./test.sh` installs) and a
//! real misbehaving one (a socket that answers 401, serves a layer whose bytes do not
//! match its digest, or never answers): following a tag, pinning a digest, the last
//! good version across a restart with the registry down, every kind of bad source, a
//! polled directory and a Kubernetes-style `..data` symlink swap.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasmgate::{Config, Overrides};

use common::served::Served;
use common::{TestGateway, build, eventually, eventually_within, fixture, hello_saying};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const WASM_LAYER: &str = "application/wasm";

/// A CNCF Distribution registry on a free loopback port, storing in a temporary directory.
struct ModuleTable {
    child: Option<Child>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ModuleTable {
    async fn start() -> ModuleTable {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: ./test.sh installs Debian's docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let config = dir.path().join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = ModuleTable {
            child: Some(child),
            addr,
            _dir: dir,
        };
        eventually_within(
            Duration::from_secs(20),
            "the registry answers",
            async || {
                tokio::net::TcpStream::connect(addr).await.is_ok()
                    && common::get(addr, "/v2/")
                        .await
                        .is_ok_and(|r| r.status == StatusCode::OK)
            },
        )
        .await;
        registry
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.addr)
    }

    /// Pushes `wasm` with `wasmgate push`'s code path; returns the manifest digest.
    async fn push(&self, wasm: &[u8], repo_tag: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.wasm");
        std::fs::write(&file, wasm).unwrap();
        let config = Config::from_toml("", Overrides::default()).unwrap();
        wasmgate::push(&config, &file, &self.reference(repo_tag), false)
            .await
            .expect("push")
    }

    /// Uploads `data` as a blob of `repo` through the registry API; returns its digest.
    async fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let start = common::request(
            self.addr,
            build(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Bytes::new(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(start.status, StatusCode::ACCEPTED);
        let location = start.headers["location"].to_str().unwrap().to_string();
        let path = location
            .split_once(&self.addr.to_string())
            .map_or(location.as_str(), |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = build(
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &[("content-type", "application/octet-stream")],
            Bytes::copy_from_slice(data),
        );
        let done = common::request(self.addr, put).await.unwrap();
        assert_eq!(done.status, StatusCode::CREATED, "{}", done.text());
        digest
    }

    /// Publishes a manifest with the given config and layer media types.
    async fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        config_type: &str,
        layers: &[(&str, &[u8])],
    ) {
        let config = br#"{"architecture":"wasm","os":"wasip1"}"#;
        let config_digest = self.put_blob(repo, config).await;
        let mut descriptors = Vec::new();
        for (media_type, data) in layers {
            let digest = self.put_blob(repo, data).await;
            descriptors.push(
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": data.len()}),
            );
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        });
        let put = build(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", OCI_MANIFEST)],
            Bytes::from(manifest.to_string()),
        );
        let done = common::request(self.addr, put).await.unwrap();
        assert_eq!(done.status, StatusCode::CREATED, "{}", done.text());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ModuleTable {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn source(name: &str, reference: &str) -> String {
    format!("\n[modules.{name}]\nsource = \"{reference}\"\n")
}

async fn module_entry(gw: &TestGateway, name: &str) -> serde_json::Value {
    let modules = gw.modules().await;
    let all = modules.as_array().expect("/modules is an array");
    all.iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Asserts that `/modules` reports module `name` failed, for a reason that says `reason`.
async fn assert_failed_because(gw: &TestGateway, name: &str, reason: &str) {
    let entry = module_entry(gw, name).await;
    assert_eq!(entry["state"], "failed", "{name}: {entry}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(reason),
        "{name}: {error:?} should say {reason:?}"
    );
}

async fn says(gw: &TestGateway, path: &str, text: &str) -> bool {
    let r = gw.get(path).await;
    r.status == StatusCode::OK && r.text() == text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_is_followed_and_its_last_good_version_survives_the_registry() {
    let mut registry = ModuleTable::start().await;
    let first = registry.push(&fixture("hello"), "fns/hello:live").await;
    let pinned = registry.reference(&format!("fns/hello@{first}"));
    let extra = format!(
        "oci_poll_ms = 200\n{}{}",
        source("live", &registry.reference("fns/hello:live")),
        source("pinned", &pinned)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    let mut gw = TestGateway::start_in(dir, &extra).await;

    // Ready means served: the first pull happens before /readyz says so.
    assert_eq!(gw.get("/live").await.text(), "hello, world\n");
    assert_eq!(gw.get("/pinned").await.text(), "hello, world\n");
    let live = module_entry(&gw, "live").await;
    let origin = format!("{}/fns/hello:live@{first}", registry.addr);
    assert_eq!(live["origin"], origin.as_str());
    assert!(live["checked_at"].as_u64().is_some(), "{live}");

    // A new version under the tag, under load: served soon, and no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let load = common::keep_getting(gw.public, "/live", stop.clone());
    let second = registry
        .push(&hello_saying("hello, v2"), "fns/hello:live")
        .await;
    eventually("the new version under the tag is served", async || {
        says(&gw, "/live", "hello, v2\n").await
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for (status, text) in load.await.unwrap() {
        assert_eq!(status, StatusCode::OK);
        assert!(
            text == "hello, world\n" || text == "hello, v2\n",
            "{text:?}"
        );
    }
    assert_eq!(
        gw.get("/pinned").await.text(),
        "hello, world\n",
        "a pinned digest stays"
    );

    // A broken version never replaces the good one, and says why.
    registry
        .push(b"\0asm\x01\0\0\0\x7fgarbage", "fns/hello:live")
        .await;
    eventually("the broken version is reported", async || {
        module_entry(&gw, "live").await["error"].is_string()
    })
    .await;
    assert_eq!(gw.get("/live").await.text(), "hello, v2\n");
    let entry = module_entry(&gw, "live").await;
    assert_eq!(entry["state"], "ready");
    assert!(
        entry["error"].as_str().unwrap().contains("compile"),
        "{entry}"
    );
    let metrics = gw.metrics().await;
    let label = format!("source=\"{}/fns/hello:live\"", registry.addr);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wasmgate_source_polls_total")
                && l.contains(&label)
                && l.contains("result=\"changed\"")),
        "{metrics}"
    );

    // The registry goes away: the gateway keeps serving, and says the source is stale.
    registry.stop();
    eventually("the unreachable registry is reported", async || {
        let e = module_entry(&gw, "live").await;
        e["error"].as_str().is_some_and(|e| e.contains("registry"))
    })
    .await;
    assert_eq!(gw.get("/live").await.text(), "hello, v2\n");
    gw.wait_for_metric(&format!(
        "wasmgate_source_polls_total{{{label},result=\"error\"}}"
    ))
    .await;

    // A restart with the registry still down serves the last good versions from cache_dir.
    gw.stop().await;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let gw = TestGateway::start_in(dir, &extra).await;
    assert_eq!(gw.get("/live").await.text(), "hello, v2\n");
    assert_eq!(gw.get("/pinned").await.text(), "hello, world\n");
    let entry = module_entry(&gw, "live").await;
    assert_eq!(
        entry["origin"],
        format!("{}/fns/hello:live@{second}", registry.addr).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_are_reported_and_never_replace_anything() {
    let registry = ModuleTable::start().await;
    let wasm = fixture("hello");
    registry
        .put_manifest(
            "fns/oldtype",
            "v1",
            "application/vnd.oci.image.config.v1+json",
            &[(WASM_LAYER, &wasm)],
        )
        .await;
    registry
        .put_manifest(
            "fns/tarball",
            "v1",
            WASM_CONFIG,
            &[("application/vnd.oci.image.layer.v1.tar", &wasm)],
        )
        .await;
    registry
        .put_manifest(
            "fns/two",
            "v1",
            WASM_CONFIG,
            &[(WASM_LAYER, &wasm), (WASM_LAYER, &wasm)],
        )
        .await;
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize(4096, 0);
    registry.push(&big, "fns/big:v1").await;
    let cases = [
        ("missing", "fns/nothing:v1", "no such tag"),
        ("oldtype", "fns/oldtype:v1", "config media type"),
        ("tarball", "fns/tarball:v1", "layer media type"),
        ("two", "fns/two:v1", "2 layers"),
        ("big", "fns/big:v1", "larger than max_module_bytes"),
    ];
    let mut extra = "oci_poll_ms = 200\nmax_module_bytes = 2048\n".to_string();
    for (name, repo_tag, _) in cases {
        extra += &source(name, &registry.reference(repo_tag));
    }
    let mut gw = TestGateway::start(&[("local", "hello")], &extra).await;
    for (name, _, reason) in cases {
        assert_failed_because(&gw, name, reason).await;
        assert_eq!(
            gw.get(&format!("/{name}")).await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    // The local module still reloads meanwhile.
    std::fs::write(
        gw.modules_dir().join("local.wasm"),
        hello_saying("local v2"),
    )
    .unwrap();
    eventually(
        "a local module reloads beside failing sources",
        async || says(&gw, "/local", "local v2\n").await,
    )
    .await;
    gw.stop().await;
}

/// A registry that misbehaves on purpose, on a real socket: `/v2/denied/...` is always
/// 401, `/v2/hang/...` never answers, and `/v2/liar/...` serves a manifest whose layer
/// bytes do not match the layer's digest. It records whether it saw credentials.
struct Misbehaving {
    addr: SocketAddr,
    saw_basic_auth: Arc<AtomicBool>,
}

impl Misbehaving {
    async fn start() -> Misbehaving {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let saw_basic_auth = Arc::new(AtomicBool::new(false));
        let saw = saw_basic_auth.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let saw = saw.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]).to_string();
                        if head.to_ascii_lowercase().contains("authorization: basic") {
                            saw.store(true, Ordering::Relaxed);
                        }
                        let Some(reply) = misbehave(&head) else {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        };
                        if stream.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Misbehaving {
            addr,
            saw_basic_auth,
        }
    }
}

/// The answer to one request, or `None` to hang.
fn misbehave(head: &str) -> Option<Vec<u8>> {
    let line = head.lines().next().unwrap_or_default();
    let method = line.split(' ').next().unwrap_or_default();
    let path = line.split(' ').nth(1).unwrap_or_default();
    let layer = b"\0asm\x01\0\0\0".to_vec();
    let claimed = sha256(b"something else entirely");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": WASM_LAYER, "digest": claimed, "size": layer.len()}],
    })
    .to_string();
    let respond = |status: &str, headers: &str, body: &[u8]| {
        let body = if method == "HEAD" { &[][..] } else { body };
        let mut out = format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    let unauthorized = "www-authenticate: Basic realm=\"test\"\r\n";
    Some(if path.starts_with("/v2/hang/") {
        return None;
    } else if path == "/v2/" || path.starts_with("/v2/denied/") {
        respond(
            "401 Unauthorized",
            unauthorized,
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"no\"}]}",
        )
    } else if path.starts_with("/v2/liar/") && path.contains("/manifests/") {
        let digest = sha256(manifest.as_bytes());
        let headers =
            format!("content-type: {OCI_MANIFEST}\r\ndocker-content-digest: {digest}\r\n");
        respond("200 OK", &headers, manifest.as_bytes())
    } else if path.starts_with("/v2/liar/") && path.contains("/blobs/") {
        respond(
            "200 OK",
            "content-type: application/octet-stream\r\n",
            &layer,
        )
    } else {
        respond(
            "404 Not Found",
            "",
            b"{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"no\"}]}",
        )
    })
}

/// The credentials go to the gateway process alone (an environment variable set in this
/// test process would reach every gateway the other tests start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_lies_or_hangs_is_reported_and_credentials_stay_secret() {
    const PASSWORD: &str = "hunter2-very-secret";
    let bad = Misbehaving::start().await;
    let host = bad.addr;
    let config = format!(
        "oci_poll_ms = 200\n{}{}{}",
        source("denied", &format!("oci://{host}/denied/fn:v1")),
        source("liar", &format!("oci://{host}/liar/fn:v1")),
        source("hang", &format!("oci://{host}/hang/fn:v1")),
    );
    // The hanging source holds up neither readiness (past a few seconds) nor the others.
    tokio::task::block_in_place(|| {
        let env = [
            ("WASMGATE_OCI_USERNAME", "alice"),
            ("WASMGATE_OCI_PASSWORD", PASSWORD),
        ];
        let modules = [("local".to_string(), fixture("hello"))];
        let gw = Served::start_bytes(&modules, &env, &config, &[]);
        for (name, reason) in [
            ("denied", "credentials were refused"),
            ("liar", "igest"),
            ("hang", "no answer yet"),
        ] {
            let entry = gw.module(name);
            assert_eq!(entry["state"], "failed", "{name}: {entry}");
            let error = entry["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(reason),
                "{name}: {error:?} should say {reason:?}"
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !gw.module("hang")["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer in time"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the hanging source never timed out"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let local = gw.get("/local");
        assert_eq!(
            local,
            (200, "hello, world\n".to_string()),
            "{}",
            gw.log.lock().unwrap()
        );
        assert!(
            bad.saw_basic_auth.load(Ordering::Relaxed),
            "credentials were offered"
        );
        let (_, modules) = gw.admin_get("/modules");
        let (_, metrics) = gw.admin_get("/metrics");
        assert!(!modules.contains(PASSWORD) && !metrics.contains(PASSWORD));
        assert!(!modules.contains("alice") && !metrics.contains("alice"));
    });
}

/// Publishes `files` (module name → bytes) the way the kubelet updates a ConfigMap volume.
fn configmap_swap(root: &Path, files: &[(&str, Vec<u8>)], stamp: usize) {
    let new = format!("..2026_12_01_00_00_{stamp:02}.000000001");
    std::fs::create_dir(root.join(&new)).unwrap();
    for (name, bytes) in files {
        std::fs::write(root.join(&new).join(format!("{name}.wasm")), bytes).unwrap();
    }
    let data = root.join("..data");
    let old: Option<PathBuf> = std::fs::read_link(&data).ok();
    std::os::unix::fs::symlink(&new, root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), &data).unwrap();
    for (name, _) in files {
        let link = root.join(format!("{name}.wasm"));
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}.wasm"), link).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(root.join(old)).unwrap();
    }
}

async fn swaps_are_served(extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("modules");
    std::fs::create_dir(&root).unwrap();
    configmap_swap(&root, &[("fn", hello_saying("v0"))], 0);
    let mut gw = TestGateway::start_in(dir, extra).await;
    assert_eq!(gw.get("/fn").await.text(), "v0\n");
    for i in 1..=4 {
        let text = format!("v{i}");
        configmap_swap(&root, &[("fn", hello_saying(&text))], i);
        eventually_within(
            Duration::from_secs(2),
            "the swapped-in version is served",
            async || says(&gw, "/fn", &format!("{text}\n")).await,
        )
        .await;
    }
    let names: Vec<_> = gw
        .modules()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, ["fn"], "the ..data entries are not modules");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_reloads_like_a_copy() {
    swaps_are_served("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_directory_sees_swaps_copies_and_deletions() {
    swaps_are_served("watch = \"poll\"\npoll_interval_ms = 100\n").await;
    let mut gw = TestGateway::start(&[], "watch = \"poll\"\npoll_interval_ms = 100\n").await;
    let file = gw.modules_dir().join("new.wasm");
    std::fs::write(&file, fixture("hello")).unwrap();
    eventually("a new file is served", async || {
        says(&gw, "/new", "hello, world\n").await
    })
    .await;
    std::fs::write(&file, hello_saying("copied over")).unwrap();
    eventually("an overwritten file is served", async || {
        says(&gw, "/new", "copied over\n").await
    })
    .await;
    std::fs::remove_file(&file).unwrap();
    eventually("a deleted file is gone", async || {
        gw.get("/new").await.status == StatusCode::NOT_FOUND
    })
    .await;
    gw.wait_for_metric("wasmgate_source_polls_total{source=\"modules_dir\",result=\"changed\"}")
        .await;
    gw.stop().await;
}
