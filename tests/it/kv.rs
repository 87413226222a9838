//! Key-value stores through the `wasmgate` host functions of CGI modules, on the embedded
//! backend: every call and its documented result, every bad input and its code, the
//! deadline over a loop of calls, durability across `kill -9`, the lock against a second
//! gateway, and `wasmgate run --config` and `wasmgate kv` on the same store.

use crate::common;

use std::process::Command;

use common::TestGateway;
use common::kv::{
    BUF, RESULT, Script, big_batch, counter, kv_config, lines, prefixed, serve, two_stores,
};
use common::served::{BIN, Served};

#[tokio::test(flavor = "multi_thread")]
async fn every_call_answers_as_documented() {
    let mut s = Script::default();
    let (k, v, n) = (s.span(b"k"), s.span(b"hello"), s.span(b"n"));
    let pairs = s.span(&prefixed(&[b"a", b"1", b"b", b"22", b"a", b"333"]));
    let wanted = s.span(&prefixed(&[b"a", b"zz", b"b"]));
    let both = s.span(&prefixed(&[b"a", b"b"]));
    s.open("things")
        .open("things")
        .p32(&format!("(call $set (local.get $h) {k} {v})"))
        .p64(&format!("(call $get (local.get $h) {k} (i32.const {BUF}) (i32.const 3))"))
        .buf(3)
        .p32(&format!("(call $increment (local.get $h) {n} (i64.const 5) (i32.const {RESULT}))"))
        .result()
        .p32(&format!("(call $increment (local.get $h) {n} (i64.const -7) (i32.const {RESULT}))"))
        .result()
        .p64(&format!("(call $get (local.get $h) {n} (i32.const {BUF}) (i32.const 8))"))
        .buf(2)
        .p32(&format!("(call $delete (local.get $h) {k})"))
        .p32(&format!("(call $delete (local.get $h) {k})"))
        .p64(&format!("(call $get (local.get $h) {k} (i32.const {BUF}) (i32.const 8))"))
        .p32(&format!("(call $set_many (local.get $h) {pairs})"))
        .p64(&format!("(call $get_many (local.get $h) {wanted} (i32.const {BUF}) (i32.const 64))"))
        .buf(17)
        .p32(&format!("(call $list (local.get $h) (i64.const 0) (i32.const {BUF}) (i32.const 64) (i32.const {RESULT}))"))
        .buf(15)
        .result()
        .p32(&format!("(call $list (local.get $h) (i64.const 0) (i32.const {BUF}) (i32.const 6) (i32.const {RESULT}))"))
        .result()
        .p32(&format!("(call $list (local.get $h) (i64.const 2) (i32.const {BUF}) (i32.const 6) (i32.const {RESULT}))"))
        .result()
        .p32(&format!("(call $delete_many (local.get $h) {both})"))
        .p32(&format!("(call $list (local.get $h) (i64.const 0) (i32.const {BUF}) (i32.const 64) (i32.const {RESULT}))"))
        .result();
    let gw = serve(&[("calls", s.wasm())], |path| {
        kv_config(path, &[("calls", &["things"])])
    })
    .await;
    let got = lines(&gw, "/calls").await;
    let mut answer = prefixed(&[b"333"]);
    answer.extend_from_slice(&(-1i32).to_le_bytes());
    answer.extend_from_slice(&prefixed(&[b"22"]));
    let keys = prefixed(&[b"a", b"b", b"n"]);
    let want: Vec<String> = [
        "0",
        "0", // the same handle each time the store is opened
        "0",
        "5",
        "hel", // kv_get: the whole length, the first buf_len bytes
        "0",
        "5",
        "0",
        "-2", // increments, from an absent key
        "2",
        "-2", // the counter is its decimal text
        "0",
        "0",
        "-1", // delete whether or not the key exists
        "0",  // set_many: a key named twice keeps its last value
        &answer.len().to_string(),
        &String::from_utf8_lossy(&answer),
        "3",
        &String::from_utf8_lossy(&keys),
        "-1", // every key, in order, and no more
        "1",
        "1", // a buffer of 6 bytes holds one key; the cursor goes on from it
        "1",
        "-1", // the last page
        "0",
        "1",
        "-1", // delete_many
    ]
    .map(str::to_string)
    .to_vec();
    assert_eq!(got, want);
    assert_counted(
        &gw,
        &[
            ops("calls", "things", "set", "ok", 2),
            ops("calls", "things", "increment", "ok", 2),
            ops("calls", "things", "list", "ok", 4),
            ops("calls", "things", "get", "ok", 3),
            ops("calls", "things", "get", "not_found", 1),
        ],
    )
    .await;
    let metrics = gw.metrics().await;
    assert!(metrics.contains("wasmgate_kv_operation_duration_seconds_bucket{op=\"get\""));
}

/// Fails unless `gw`'s `/metrics` has each of `series` as a whole line.
async fn assert_counted(gw: &TestGateway, series: &[String]) {
    let metrics = gw.metrics().await;
    for line in series {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// The line of `wasmgate_kv_operations_total` for these labels and `count`.
fn ops(module: &str, store: &str, op: &str, result: &str, count: u64) -> String {
    format!(
        "wasmgate_kv_operations_total{{module=\"{module}\",store=\"{store}\",op=\"{op}\",result=\"{result}\"}} {count}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_its_code_to_the_guest_and_stores_nothing() {
    let mut s = Script::default();
    let (long_key, long_value) = (s.span(b"toolong"), s.span(b"123456789"));
    let (k, v, abc, m, q, r, full) = (
        s.span(b"k"),
        s.span(b"v"),
        s.span(b"abc"),
        s.span(b"m"),
        s.span(b"q"),
        s.span(b"r"),
        s.span(b"12345678"),
    );
    let mut cut = prefixed(&[b"a"]);
    cut.extend_from_slice(&100u32.to_le_bytes());
    let cut = s.span(&cut);
    let odd = s.span(&prefixed(&[b"a", b"1", b"b"]));
    let get = |k: &str| format!("(call $get (local.get $h) {k} (i32.const {BUF}) (i32.const 64))");
    let set = |k: &str, v: &str| format!("(call $set (local.get $h) {k} {v})");
    let inc = |k: &str, d: i64| {
        format!("(call $increment (local.get $h) {k} (i64.const {d}) (i32.const {RESULT}))")
    };
    s.open("no/pe")
        .open("elsewhere")
        .p32(&format!("(call $set (i32.const 7) {k} {v})"))
        .p32(&format!("(call $delete (i32.const -1) {k})"))
        .open("mine")
        .p32(&set(&long_key, &v))
        .p32(&set(&k, &long_value))
        .p64(&get(&k))
        .p32(&set(&v, &abc))
        .p32(&inc(&v, 1))
        .p32(&inc(&m, i64::MAX))
        .p32(&inc(&m, 1))
        .p64(&get(&m))
        .p32(&set(&q, &full))
        .p32(&set(&r, &full))
        .p64(&get(&r))
        .p32(&inc(&r, 1_000_000_000_000_000))
        .p32(&format!("(call $set_many (local.get $h) {cut})"))
        .p32(&format!("(call $set_many (local.get $h) {odd})"))
        .p64(&format!("(call $get_many (local.get $h) {cut} (i32.const {BUF}) (i32.const 64))"))
        .p32(&format!("(call $list (local.get $h) (i64.const -3) (i32.const {BUF}) (i32.const 64) (i32.const {RESULT}))"))
        .p32(&format!("(call $list (local.get $h) (i64.const 0) (i32.const {BUF}) (i32.const 3) (i32.const {RESULT}))"));
    let gw = serve(&[("bad", s.wasm())], |path| {
        let kv = format!("{path}\nmax_key_bytes = 4\nmax_value_bytes = 8\nmax_store_bytes = 40");
        kv_config(&kv, &[("bad", &["mine"])])
    })
    .await;
    let got = lines(&gw, "/bad").await;
    let want = [
        "-5", "-2", // a name that is no store's; a store the module does not list
        "-5", "-5", // handles never opened
        "0",  //
        "-3", "-3", "-1", // a key, then a value, over its limit: nothing stored
        "0", "-7", // not a decimal i64
        "0", "-7", "19", // an increment that would overflow leaves the counter
        "0", "-6", "-1", // 4 + 20 + 9 bytes held; 9 more would pass 40
        "-6", // nor can an increment grow the store past it
        "-5", "-5", "-5", // malformed batches
        "-5", "-3", // a negative cursor; a buffer too small for the first key
    ];
    assert_eq!(got, want);
    assert_counted(
        &gw,
        &[
            ops("bad", "_invalid", "open", "invalid", 1),
            ops("bad", "_unlisted", "open", "denied", 1),
            ops("bad", "_invalid", "set", "invalid", 1),
            ops("bad", "_invalid", "delete", "invalid", 1),
            ops("bad", "mine", "set", "too_large", 2),
            ops("bad", "mine", "increment", "not_a_number", 2),
            ops("bad", "mine", "set", "quota", 1),
            ops("bad", "mine", "increment", "quota", 1),
            ops("bad", "mine", "set", "invalid", 2),
            ops("bad", "mine", "get", "invalid", 1),
            ops("bad", "mine", "list", "invalid", 1),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_span_outside_memory_traps_the_guest_and_changes_nothing() {
    let past_memory = "(i32.const 65530) (i32.const 100)";
    let mut writer = Script::default();
    let key = writer.span(b"k");
    writer
        .open("s")
        .p32(&format!("(call $set (local.get $h) {key} {past_memory})"));
    let mut reader = Script::default();
    let key = reader.span(b"k");
    reader.open("s").p64(&format!(
        "(call $get (local.get $h) {key} (i32.const {BUF}) (i32.const 8))"
    ));
    let mut overflow = Script::default();
    let key = overflow.span(b"k");
    overflow.open("s").p32(&format!(
        "(call $increment (local.get $h) {key} (i64.const 1) (i32.const -4))"
    ));
    let gw = serve(
        &[
            ("writer", writer.wasm()),
            ("reader", reader.wasm()),
            ("overflow", overflow.wasm()),
        ],
        |path| {
            kv_config(
                path,
                &[("writer", &["s"]), ("reader", &["s"]), ("overflow", &["s"])],
            )
        },
    )
    .await;
    for module in ["/writer", "/overflow"] {
        let reply = gw.get(module).await;
        assert_eq!(reply.status, 500, "{module}: {}", reply.text());
    }
    assert_eq!(lines(&gw, "/reader").await, ["0", "-1"]);
    assert_eq!(gw.requests("writer", "trap").await, 1);
    assert_eq!(gw.requests("overflow", "trap").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loop_of_calls_ends_at_the_deadline_and_others_call_on() {
    let mut spinner = Script::default();
    let (name, key) = (spinner.span(b"s"), spinner.span(b"spins"));
    spinner.line(&format!("(local.set $h (call $open {name}))")).line(&format!(
        "(loop $again (drop (call $increment (local.get $h) {key} (i64.const 1) (i32.const {RESULT}))) (br $again))"
    ));
    let gw = serve(
        &[("spinner", spinner.wasm()), ("counter", counter())],
        |path| {
            let config = kv_config(path, &[("counter", &["counts"])]);
            format!("{config}[modules.spinner]\nkv_stores = [\"s\"]\ntimeout_ms = 1500\n")
        },
    )
    .await;
    let spinning = tokio::spawn({
        let addr = gw.public;
        async move { common::get(addr, "/spinner").await.expect("request").status }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for n in 1..=20 {
        assert_eq!(lines(&gw, "/counter").await, [n.to_string()]);
    }
    assert!(
        !spinning.is_finished(),
        "the spinner ended before its deadline"
    );
    assert_eq!(spinning.await.unwrap(), 504);
}

/// A `wasmgate` command's stdout (or, when it fails, its stderr), failing the test unless
/// it exits as `success` says.
fn wasmgate(args: &[&str], stdin: &[u8], success: bool) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.success(), success, "wasmgate {args:?}: {stderr}");
    match success {
        true => String::from_utf8_lossy(&out.stdout).into_owned(),
        false => stderr.into_owned(),
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_and_a_second_gateway_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let config = kv_config(
        &format!("path = {:?}", store.path().join("kv")),
        &[("counter", &["counts"])],
    );
    let modules = [("counter".to_string(), counter())];
    let first = Served::start_bytes(&modules, &[], &config, &[]);
    for n in 1..=50 {
        let (status, body) = first.get("/counter");
        assert_eq!((status, body.trim()), (200, n.to_string().as_str()));
    }

    let config_file = first.dir.path().join("wasmgate.toml");
    let second = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&config_file)
        .arg("--modules")
        .arg(first.dir.path().join("modules"))
        // Asked for, a backtrace would show here: the start-up error must still be one line.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "a second gateway started: {stderr}"
    );
    assert!(
        stderr.contains("in use by another gateway") && stderr.contains("lock"),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert_eq!(first.get("/counter").1.trim(), "51");

    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    drop(first);

    let again = Served::start_bytes(&modules, &[], &config, &[]);
    assert_eq!(again.get("/counter"), (200, "52\n".to_string()));
}

#[test]
fn run_and_the_kv_command_use_the_configured_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmgate.toml");
    let text = kv_config(
        &format!("path = {:?}", dir.path().join("kv")),
        &[("counter", &["counts"])],
    );
    std::fs::write(&config, text).unwrap();
    let module = dir.path().join("counter.wasm");
    std::fs::write(&module, counter()).unwrap();
    let config = config.to_str().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let run = |stdin| {
        wasmgate(
            &[
                "run",
                "--config",
                config,
                "--cache-dir",
                cache,
                module.to_str().unwrap(),
            ],
            stdin,
            true,
        )
    };
    assert_eq!(run(b""), "1\n");
    assert_eq!(run(b""), "2\n");

    let kv = |args: &[&str], stdin: &[u8], success| {
        let mut all = vec!["kv", "--config", config];
        all.extend_from_slice(args);
        wasmgate(&all, stdin, success)
    };
    assert_eq!(kv(&["get", "counts", "hits"], b"", true), "2");
    assert_eq!(kv(&["set", "counts", "note", "hello"], b"", true), "");
    assert_eq!(kv(&["set", "counts", "piped"], b"from\nstdin", true), "");
    assert_eq!(kv(&["list", "counts"], b"", true), "hits\nnote\npiped\n");
    assert_eq!(kv(&["get", "counts", "piped"], b"", true), "from\nstdin");
    assert_eq!(kv(&["delete", "counts", "note"], b"", true), "");
    let missing = kv(&["get", "counts", "note"], b"", false);
    assert!(
        missing.contains("no key \"note\" in store 'counts'"),
        "{missing}"
    );
    let bad = kv(&["get", "no/pe", "k"], b"", false);
    assert!(bad.contains("store 'no/pe': not a store name"), "{bad}");
    assert_eq!(run(b""), "3\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_uses_wasi_keyvalue_on_the_store_cgi_modules_use() {
    let mut reader = Script::default();
    let key = reader.span(b"visits");
    reader.open("sessions").p64(&format!(
        "(call $get (local.get $h) {key} (i32.const {BUF}) (i32.const 8))"
    ));
    reader.buf(1);
    let gw = serve(
        &[
            ("kv_http", common::component("kv_http")),
            ("reader", reader.wasm()),
        ],
        |path| {
            let kv = format!("{path}\nmax_value_bytes = 1024");
            kv_config(
                &kv,
                &[("kv_http", &["sessions"]), ("reader", &["sessions"])],
            )
        },
    )
    .await;
    let want = |visits: u32| {
        format!(
            "visits={visits}\nlast=hi-there\nmany=a:1,zz:-,b:2\nexists=false\n\
             keys=a,b,last,visits\nbig=other:too_large: the key or value is over its limit\n\
             denied=access-denied\nbad=no-such-store\n"
        )
    };
    for visits in 1..=2 {
        let reply = gw.get("/kv_http?hi-there").await;
        assert_eq!((reply.status.as_u16(), reply.text()), (200, want(visits)));
    }
    assert_eq!(lines(&gw, "/reader").await, ["0", "1", "2"]);
    assert_counted(
        &gw,
        &[
            ops("kv_http", "sessions", "increment", "ok", 2),
            ops("kv_http", "sessions", "set", "too_large", 2),
            ops("kv_http", "_unlisted", "open", "denied", 2),
            ops("kv_http", "_invalid", "open", "invalid", 2),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_read_is_bounded_by_the_bytes_one_call_may_hold() {
    let gw = serve(
        &[("small", big_batch(15)), ("big", big_batch(17))],
        |path| kv_config(path, &[("small", &["s"]), ("big", &["s"])]),
    )
    .await;
    // 15 values of 1 MiB (and their lengths) are answered; 17 are over 16 MiB.
    let small = lines(&gw, "/small").await;
    assert_eq!(small.last().unwrap(), &(15 * (4 + 1024 * 1024)).to_string());
    let big = lines(&gw, "/big").await;
    assert!(big[1..18].iter().all(|l| l == "0"), "{big:?}");
    assert_eq!(big.last().unwrap(), "-3");
}

/// What every binding probe (tests/kv_bindings/) prints when each call answers as the
/// README documents.
const PROBE_OUTPUT: &str = "set ok\nget 1\ninc 5\nset_many ok\nget_many 1,-,3\nkeys a,b,c,n\n\
                            delete ok\ndelete_many ok\nkeys n\nget_missing none\ndenied ok\n";

#[tokio::test(flavor = "multi_thread")]
async fn every_languages_bindings_call_every_function_as_documented() {
    for language in ["rust", "go", "c", "assemblyscript"] {
        let path = format!(
            "{}/tests/fixtures/kv_bindings/{language}.wasm",
            env!("CARGO_MANIFEST_DIR")
        );
        let probe = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut gw = serve(&[("probe", probe)], |path| {
            kv_config(path, &[("probe", &["s"])])
        })
        .await;
        let reply = gw.get("/probe").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, PROBE_OUTPUT),
            "{language}"
        );
        gw.stop().await;
    }
}

/// What [`two_stores`] prints when stores are separate key spaces.
pub(crate) const SEPARATE_STORES: [&str; 7] = ["0", "1", "-1", "0", "0", "2", "v1"];

#[tokio::test(flavor = "multi_thread")]
async fn stores_are_separate_key_spaces() {
    let gw = serve(&[("two", two_stores())], |path| {
        kv_config(path, &[("two", &["a", "b"])])
    })
    .await;
    assert_eq!(lines(&gw, "/two").await, SEPARATE_STORES);
}
