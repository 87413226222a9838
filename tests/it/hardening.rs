//! Hostile files, a shared cache and guests that abuse WASI: each hole an outside review
//! found, attacked the way the review did, against a real gateway over real HTTP. Every
//! test here failed on the commit before the fixes.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestGateway, eventually, fixture};
use http::StatusCode;
use wasmgate::{Config, Overrides, RunningGateway, StartError};

/// Writes the module of WAT `text` as `dir/NAME.wasm`.
fn write_wat(dir: &Path, name: &str, text: &str) {
    let wasm = wat::parse_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).unwrap();
}

/// A gateway over a fresh `modules/` holding `hello` and whatever `setup` adds.
async fn gateway_with(extra: &str, setup: impl FnOnce(&Path)) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(modules.join("hello.wasm"), fixture("hello")).unwrap();
    setup(&modules);
    TestGateway::start_in(dir, extra).await
}

/// The `/modules` entry of `name`.
async fn status_of(gw: &TestGateway, name: &str) -> serde_json::Value {
    let all = gw.modules().await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {all}"))
}

async fn still_serves(gw: &TestGateway) {
    let r = gw.get("/hello").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello, world\n")
    );
}

fn config_for(dir: &Path, extra: &str) -> Config {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nmodules_dir = {:?}\n\
         cache_dir = {:?}\nmax_instances = 4\n{extra}",
        dir.join("modules"),
        dir.join("cache"),
    );
    Config::from_toml(&toml, Overrides::default()).unwrap()
}

// ---------------------------------------------------------------- the cache and the files

/// 1. A cache directory that others can write is refused at start-up, naming `cache_dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_others_can_write_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = RunningGateway::start(config_for(dir.path(), "")).await;
    let Err(error @ StartError::Cache(_)) = refused else {
        panic!("a 0777 cache directory was accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("cache_dir") && message.contains("writable by group or others"),
        "{message}"
    );
    assert!(!message.contains(dir.path().to_str().unwrap()), "{message}");
    // Made private, it is used.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gateway = RunningGateway::start(config_for(dir.path(), ""))
        .await
        .unwrap();
    gateway.stop().await;
}

/// 2. A symlink planted where the old code put its temporary file is never written through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_at_a_temporary_name_is_never_followed() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    // Start once to learn the engine's cache directory, then plant the symlinks there.
    let gateway = RunningGateway::start(config_for(dir.path(), ""))
        .await
        .unwrap();
    gateway.stop().await;
    let engine_dir = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture("hello")));
    for planted in [
        format!("{digest}.tmp{}", std::process::id()),
        format!("{digest}.cwasm"),
    ] {
        std::os::unix::fs::symlink(&victim, engine_dir.join(planted)).unwrap();
    }
    std::fs::write(dir.path().join("modules/hello.wasm"), fixture("hello")).unwrap();
    let mut gw = TestGateway::start_in(dir, "").await;
    still_serves(&gw).await;
    gw.stop().await;
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

/// 3. A FIFO named like a module is reported failed, and reloads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_named_like_a_module_blocks_no_reload() {
    let mut gw = gateway_with("", |_| {}).await;
    let fifo = gw.modules_dir().join("x.wasm");
    let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, mode).unwrap();
    eventually("the FIFO is reported failed", async || {
        gw.modules().await.as_array().unwrap().iter().any(|m| {
            m["name"] == "x"
                && m["state"] == "failed"
                && m["error"].as_str().is_some_and(|e| e.contains("FIFO"))
        })
    })
    .await;
    // Removing the FIFO and copying in new modules still takes effect.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(gw.modules_dir().join("hello2.wasm"), fixture("hello2")).unwrap();
    eventually("a module copied in after the FIFO is served", async || {
        gw.get("/hello2").await.status == StatusCode::OK
    })
    .await;
    gw.stop().await;
}

/// 3. Symlinks keep working as Kubernetes ConfigMap volumes make them, inside the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_style_symlinks_are_served() {
    let mut gw = gateway_with("", |modules| {
        let data = modules.join("..2026_12_01");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("cm.wasm"), fixture("hello2")).unwrap();
        std::os::unix::fs::symlink("..2026_12_01", modules.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/cm.wasm", modules.join("cm.wasm")).unwrap();
    })
    .await;
    let r = gw.get("/cm").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello, v2\n")
    );
    gw.stop().await;
}

/// 4. and 5. A symlink out of the modules directory (to /etc/passwd, to /dev/zero) is
/// refused with a reason, and nothing of the file it points to reaches anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_directory_are_refused_and_echo_nothing() {
    let outside = tempfile::tempdir().unwrap();
    let passwd = outside.path().join("passwd");
    std::fs::write(&passwd, b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let mut gw = gateway_with("", |modules| {
        std::os::unix::fs::symlink(&passwd, modules.join("pw.wasm")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", modules.join("zero.wasm")).unwrap();
    })
    .await;
    for name in ["pw", "zero"] {
        let r = gw.get(&format!("/{name}")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
        assert!(!r.text().contains("root"), "{name}: {}", r.text());
        let status = status_of(&gw, name).await;
        assert_eq!(status["state"], "failed");
        assert!(
            status["error"]
                .as_str()
                .unwrap()
                .contains("outside the modules directory"),
            "{status}"
        );
    }
    still_serves(&gw).await;
    gw.stop().await;
}

/// 4. A file larger than `max_module_bytes` is refused before it is compiled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_past_max_module_bytes_is_refused() {
    let big = format!(
        "(module (memory (export \"memory\") 1) (data (i32.const 0) \"{}\") (func (export \"_start\")))",
        "x".repeat(4096)
    );
    let mut gw = gateway_with("max_module_bytes = 2048\n", |modules| {
        write_wat(modules, "big", &big)
    })
    .await;
    let status = status_of(&gw, "big").await;
    assert_eq!(status["state"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("max_module_bytes (2048 bytes)"),
        "{status}"
    );
    still_serves(&gw).await;
    gw.stop().await;
}

/// 5. A file that is not WebAssembly is refused without its bytes in any message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_never_echo_file_bytes() {
    let mut gw = gateway_with("", |modules| {
        std::fs::write(modules.join("text.wasm"), b"root:x:0:0:secret-line\n").unwrap();
    })
    .await;
    let r = gw.get("/text").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text().contains("not WebAssembly"), "{}", r.text());
    for leaked in ["root", "secret", "0x72", "114, 111"] {
        assert!(!r.text().contains(leaked), "{leaked} in {}", r.text());
        let error = status_of(&gw, "text").await["error"].to_string();
        assert!(!error.contains(leaked), "{leaked} in {error}");
    }
    gw.stop().await;
}

// ---------------------------------------------------------------- guests

/// 6. `random_get` for 1 GiB is refused at once (a trap), not served past the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_random_get_is_refused_within_the_deadline() {
    let mut gw = gateway_with(
        "[limits]\ntimeout_ms = 200\nmax_memory_bytes = 1207959552\n",
        |modules| {
            write_wat(
                modules,
                "random",
                r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (memory (export "memory") 16385)
  (func (export "_start") (drop (call $r (i32.const 0) (i32.const 1073741824)))))"#,
            )
        },
    )
    .await;
    let started = Instant::now();
    let r = gw.get("/random").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert!(r.text().contains("exceeds limit"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
}

/// 7. `fd_write` buffers adding up past 4 GiB are `EINVAL` (28), not a wrapped count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fd_write_total_past_4_gib_is_einval() {
    // 1024 iovecs of 4 MiB each, all over the same 4 MiB of memory, to stderr.
    let mut gw = gateway_with("[limits]\nmax_memory_bytes = 134217728\n", |modules| {
        write_wat(
            modules,
            "wrap",
            r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 80)
  (func (export "_start") (local $i i32)
    (loop $l
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 65536))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const 4194304))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1024))))
    (call $exit (call $w (i32.const 2) (i32.const 0) (i32.const 1024) (i32.const 8192)))))"#,
        )
    })
    .await;
    let r = gw.get("/wrap").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text().contains("exited with status 28"), "{}", r.text());
    gw.stop().await;
}

/// 9. A header block past the limit, ending in `Status: 403`, is a 502, never a 200 body;
/// so are two `Status:` lines. A guest response gets a `Content-Type` and `nosniff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgi_header_blocks_fail_closed() {
    let writer = |text: &str| printing_module("", "", "", text);
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\n")).collect();
    let many = format!("{many}Status: 403\n\nforbidden body");
    let mut gw = gateway_with("", |modules| {
        write_wat(modules, "many", &writer(&many));
        write_wat(modules, "twice", &writer("Status: 200\nStatus: 403\n\nx"));
        write_wat(
            modules,
            "notype",
            &writer("X-A: b\n\n<script>alert(1)</script>"),
        );
    })
    .await;
    for path in ["/many", "/twice"] {
        let r = gw.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {}", r.text());
        assert!(!r.text().contains("forbidden body"), "{}", r.text());
    }
    let r = gw.get("/notype").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(
        gw.get("/hello").await.headers["x-content-type-options"],
        "nosniff"
    );
    gw.stop().await;
}

/// 10. A NUL inside `args` is refused at start-up, naming the key.
#[tokio::test]
async fn an_argument_with_a_nul_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "modules_dir = {:?}\n[modules.py]\nargs = [\"-c\", \"a\\u0000b\"]\n",
        dir.path()
    );
    let error = Config::from_toml(&toml, Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("modules.py.args") && error.contains("NUL"),
        "{error}"
    );
}

/// 11. One module cannot take every slot: past its `max_concurrency` it alone answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_module_cannot_take_every_slot() {
    let mut gw = gateway_with("[modules.sleepy]\nmax_concurrency = 2\n", |modules| {
        std::fs::write(modules.join("sleepy.wasm"), fixture("sleepy")).unwrap();
    })
    .await;
    let addr = gw.public;
    let sleepers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { common::get(addr, "/sleepy").await.unwrap() }))
        .collect();
    gw.wait_for_metric("wasmgate_pool_slots_in_use 2").await;
    let refused = gw.get("/sleepy").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(
        refused.text().contains("max_concurrency of 2"),
        "{}",
        refused.text()
    );
    still_serves(&gw).await;
    for s in sleepers {
        assert_eq!(s.await.unwrap().status, StatusCode::OK);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("wasmgate_concurrency_limited_total{module=\"sleepy\"} 1"),
        "{metrics}"
    );
    assert_eq!(gw.get("/sleepy").await.status, StatusCode::OK);
    gw.stop().await;
}

// ---------------------------------------------------------------- every module wasmtime accepts

/// A module that writes exactly `output` to stdout after `body` ran, with `types` and
/// `funcs` beside it; its memory grows to hold `output`.
fn printing_module(types: &str, funcs: &str, body: &str, output: &str) -> String {
    let data: String = output.bytes().map(|b| format!("\\{b:02x}")).collect();
    let pages = (64 + output.len()) / 65536 + 1;
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  {types}
  (memory (export "memory") {pages})
  (data (i32.const 64) "{data}")
  {funcs}
  (func (export "_start")
    {body}
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = output.len()
    )
}

/// 13. Exceptions (`try_table`/`throw`, what C++ with `-fwasm-exceptions` and CPython's
/// WASI build use), GC types and function references, tail calls: served, as
/// `wasmtime run` of the same version accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_using_exceptions_gc_and_tail_calls_are_served() {
    let exceptions = printing_module(
        "(tag $oops (param i32))",
        "(func $thrower (throw $oops (i32.const 7)))",
        "(block $caught (result i32)
       (try_table (catch $oops $caught) (call $thrower))
       (unreachable))
     (if (i32.ne (i32.const 7)) (then (unreachable)))",
        "caught 7\n",
    );
    let gc = printing_module(
        "(type $point (struct (field i32) (field (mut i32))))
  (type $ints (array (mut i32)))",
        "",
        "(local $p (ref $point)) (local $a (ref $ints))
     (local.set $p (struct.new $point (i32.const 3) (i32.const 4)))
     (local.set $a (array.new $ints (i32.const 0) (i32.const 16)))
     (array.set $ints (local.get $a) (i32.const 5) (struct.get $point 1 (local.get $p)))
     (if (i32.ne (array.get $ints (local.get $a) (i32.const 5)) (i32.const 4))
       (then (unreachable)))",
        "gc ok\n",
    );
    let refs_and_tail_calls = printing_module(
        "(type $unary (func (param i32) (result i32)))",
        "(func $double (type $unary) (i32.add (local.get 0) (local.get 0)))
  (elem declare func $double)
  (func $apply (param i32) (result i32)
    (return_call_ref $unary (local.get 0) (ref.func $double)))",
        "(if (i32.ne (call $apply (i32.const 21)) (i32.const 42)) (then (unreachable)))",
        "tail 42\n",
    );
    let mut gw = gateway_with("", |modules| {
        write_wat(modules, "exceptions", &exceptions);
        write_wat(modules, "gc", &gc);
        write_wat(modules, "refs", &refs_and_tail_calls);
    })
    .await;
    for (path, text) in [
        ("/exceptions", "caught 7\n"),
        ("/gc", "gc ok\n"),
        ("/refs", "tail 42\n"),
    ] {
        let r = gw.get(path).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::OK, text),
            "{path}"
        );
    }
    still_serves(&gw).await;
    gw.stop().await;
}

/// The admin listener answers only addresses, `localhost` and its `admin_hosts`, so that a
/// web page cannot read `/modules` and `/metrics` through DNS rebinding.
#[tokio::test]
async fn the_admin_listener_answers_only_its_own_hosts() {
    let mut gw =
        TestGateway::start(&[("hello", "hello")], "admin_hosts = [\"GW.internal\"]\n").await;
    let status = |host: &'static str| {
        let admin = gw.admin;
        async move {
            let request =
                format!("GET /modules HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            common::raw_status(&common::raw(admin, request.as_bytes()).await)
        }
    };
    assert_eq!(status("rebind.attacker.example:9180").await, Some(421));
    assert_eq!(status("localhost.attacker.example").await, Some(421));
    for host in [
        "127.0.0.1:9180",
        "localhost:9180",
        "[::1]",
        "gw.internal:9180",
    ] {
        assert_eq!(status(host).await, Some(200), "{host}");
    }
    gw.stop().await;
}
