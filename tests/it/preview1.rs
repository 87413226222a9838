//! The gateway's own WASI preview1 functions answer exactly as wasmtime-wasi does.
//!
//! `tests/fixtures/wasiprobe.wat` calls every function the gateway serves itself, with good
//! and bad arguments (descriptors used the wrong way round or not open, buffers outside
//! memory, stdin read in pieces and after it was closed), and writes each errno and
//! out-parameter to stdout. The same module is run twice through the invoke path: as is,
//! which links it against the gateway's functions, and with one more import, which links
//! it against wasmtime-wasi. Both runs must write the same bytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wasmgate::testing::{
    AllocatorChoice, Environment, GuestError, GuestModule, GuestRuntime, Outcome, Preview1, Stdin,
    run_cgi,
};
use wasmgate::{Config, Overrides};

const PROBE: &str = include_str!("../fixtures/wasiprobe.wat");
/// An import the gateway leaves to wasmtime-wasi: adding it switches the implementation.
const POLL_IMPORT: &str = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))"#;
const STDIN: &[u8] = b"hello, stdin: more than five bytes";

struct Gateway {
    runtime: GuestRuntime,
    config: Config,
}

impl Gateway {
    fn new(extra_config: &str) -> Gateway {
        let config = Config::from_toml(
            &format!("max_instances = 4\n{extra_config}"),
            Overrides::default(),
        )
        .unwrap();
        let runtime = GuestRuntime::new(&config, AllocatorChoice::OnDemand).unwrap();
        Gateway { runtime, config }
    }

    fn load(&self, name: &str, wat_text: &str) -> Arc<GuestModule> {
        let wasm = wat::parse_str(wat_text).unwrap();
        wasmgate::testing::load(&self.runtime, name, &wasm, &self.config)
            .map_err(|f| f.error)
            .unwrap()
    }
}

fn buffered(bytes: &'static [u8]) -> Stdin {
    Stdin::Buffered(Bytes::from_static(bytes))
}

fn env() -> Environment {
    let long = "v".repeat(300);
    [
        ("http_method", "POST"),
        ("EMPTY", ""),
        ("HTTP_X_LONG", &long),
    ]
    .into_iter()
    .collect()
}

/// Runs `module` once with no environment and no input.
async fn run(module: &GuestModule) -> Result<Bytes, GuestError> {
    run_cgi(module, Environment::default(), buffered(b"")).await
}

fn with_poll_import(wat_text: &str) -> String {
    wat_text.replacen("(memory", &format!("{POLL_IMPORT}\n  (memory"), 1)
}

#[tokio::test]
async fn the_gateways_functions_answer_as_wasmtime_wasi_does() {
    let gateway = Gateway::new("");
    let own = gateway.load("probe", PROBE);
    let wasi = gateway.load("probe", &with_poll_import(PROBE));
    assert_eq!(own.preview1(), Some(Preview1::Gateway));
    assert_eq!(wasi.preview1(), Some(Preview1::WasmtimeWasi));

    let own_out = run_cgi(&own, env(), buffered(STDIN)).await.unwrap();
    let wasi_out = run_cgi(&wasi, env(), buffered(STDIN)).await.unwrap();
    assert!(
        own_out.len() > 400,
        "the probe wrote {} bytes",
        own_out.len()
    );
    let words = |b: &[u8]| b.chunks(4).map(|c| c.to_vec()).collect::<Vec<_>>();
    assert_eq!(words(&own_out), words(&wasi_out));
    // And a few values checked by hand: argc 1 ("probe\0" is 6 bytes), 3 variables.
    assert_eq!(&own_out[..12], &[0, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    let text = String::from_utf8_lossy(&own_out);
    assert!(text.contains("http_method=POST\0EMPTY=\0HTTP_X_LONG=vvv"));
    assert!(text.contains("more than five bytes"));
}

#[tokio::test]
async fn modules_that_need_more_than_stdio_get_wasmtime_wasi() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::new(&format!(
        "[modules.withvolume]\nvolumes = {{ \"/data\" = {:?} }}\n",
        dir.path()
    ));
    let hello = include_str!("../fixtures/hello.wat");
    assert_eq!(
        gateway.load("hello", hello).preview1(),
        Some(Preview1::Gateway)
    );
    assert_eq!(
        gateway.load("withvolume", hello).preview1(),
        Some(Preview1::WasmtimeWasi)
    );
    assert_eq!(
        gateway.load("polls", &with_poll_import(hello)).preview1(),
        Some(Preview1::WasmtimeWasi)
    );
}

/// A buffer outside the guest's memory is a trap with either implementation.
#[tokio::test]
async fn a_buffer_outside_memory_is_a_trap() {
    let gateway = Gateway::new("");
    let wat_text = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 0xfff0))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
    for module in [
        gateway.load("oob", wat_text),
        gateway.load("oob", &with_poll_import(wat_text)),
    ] {
        let error = run(&module).await.unwrap_err();
        assert_eq!(
            error.outcome(),
            Outcome::Trap,
            "{:?}: {error}",
            module.preview1()
        );
        assert!(error.to_string().contains("out of bounds"), "{error}");
    }
}

/// WASI functions reach the guest through its export named `memory`: a module that keeps
/// its memory to itself (or exports it under another name, or a function by that name)
/// traps at its first such call, on either implementation, and the gateway goes on.
#[tokio::test]
async fn a_module_without_a_memory_export_traps_at_its_first_write() {
    let gateway = Gateway::new("");
    let writer = |memory: &str| {
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  MEMORY
  (func (export "_start") (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
            .replace("MEMORY", memory)
    };
    for memory in [
        "(memory 1)",
        r#"(memory (export "heap") 1)"#,
        r#"(memory 1) (func (export "memory"))"#,
    ] {
        let wat_text = writer(memory);
        for module in [
            gateway.load("private", &wat_text),
            gateway.load("private", &with_poll_import(&wat_text)),
        ] {
            let error = run(&module).await.unwrap_err();
            assert_eq!(error.outcome(), Outcome::Trap, "{memory}: {error}");
            assert!(error.to_string().contains("'private'"), "{error}");
        }
    }
    let hello = gateway.load("hello", &writer(r#"(memory (export "memory") 1)"#));
    assert!(run(&hello).await.is_ok());
}

/// A module's own start function (the `start` section) runs during instantiation, before
/// `_start`: its WASI calls reach the memory as `_start`'s do.
#[tokio::test]
async fn a_start_function_can_write_before_start_runs() {
    let gateway = Gateway::new("");
    let module = gateway.load(
        "early",
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "early\n")
  (func $early
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (start $early)
  (func (export "_start")))"#,
    );
    assert_eq!(run(&module).await.unwrap(), Bytes::from_static(b"early\n"));
}

/// The one deliberate difference: a read into several buffers fills them all (wasmtime-wasi
/// fills the first and returns a short read). And a closed stdout refuses writes (`EBADF`,
/// 8), which the guest reports through its exit status.
#[tokio::test]
async fn reads_fill_every_buffer_and_closed_stdout_refuses_writes() {
    let gateway = Gateway::new("");
    // Reads 2 + 3 bytes through two iovecs and writes both buffers back out; then `tail`.
    let readv = |tail: &str| {
        format!(
            r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $c (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 2))
    (i32.store (i32.const 8) (i32.const 200))
    (i32.store (i32.const 12) (i32.const 3))
    (drop (call $r (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 16)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))
    {tail}))"#
        )
    };
    let echo = gateway.load("readv", &readv(""));
    let out = run_cgi(&echo, Environment::default(), buffered(b"abcdef"))
        .await
        .unwrap();
    assert_eq!(&out[..], b"abcde");

    let close_then_write = gateway.load(
        "closed",
        &readv(
            "(drop (call $c (i32.const 1)))
    (call $exit (call $w (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))",
        ),
    );
    let error = run_cgi(
        &close_then_write,
        Environment::default(),
        buffered(b"abcdef"),
    )
    .await
    .unwrap_err();
    let error = error.to_string();
    assert!(
        error.starts_with("module 'closed' exited with status 8;"),
        "{error}"
    );
}

/// More iovecs than Linux takes in one `writev` are refused (`EINVAL` = 28), so one host
/// call's work stays bounded.
#[tokio::test]
async fn too_many_iovecs_are_refused() {
    let gateway = Gateway::new("");
    let module = gateway.load(
        "iovecs",
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $exit (call $w (i32.const 1) (i32.const 0) (i32.const 1025) (i32.const 0x8000)))))"#,
    );
    let error = run(&module).await.unwrap_err();
    let error = error.to_string();
    assert!(
        error.starts_with("module 'iovecs' exited with status 28;"),
        "{error}"
    );
}

/// `random_get` fills the buffer it is given, and two requests get different bytes.
#[tokio::test]
async fn random_bytes_differ_between_requests() {
    let gateway = Gateway::new("");
    let module = gateway.load(
        "random",
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $r (i32.const 16) (i32.const 32)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 32))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let a = run(&module).await.unwrap();
    let b = run(&module).await.unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert!(a.iter().any(|&x| x != 0));
}

/// Runs `wat_text` linked against the gateway's functions and against wasmtime-wasi, with
/// `stdin`; returns both results.
async fn both(
    gateway: &Gateway,
    name: &str,
    wat_text: &str,
    stdin: &'static [u8],
) -> [Result<Bytes, GuestError>; 2] {
    let own = gateway.load(name, wat_text);
    let wasi = gateway.load(name, &with_poll_import(wat_text));
    assert_eq!(wasi.preview1(), Some(Preview1::WasmtimeWasi));
    [
        run_cgi(&own, Environment::default(), buffered(stdin)).await,
        run_cgi(&wasi, Environment::default(), buffered(stdin)).await,
    ]
}

/// With an empty stdin, a read answers as wasmtime-wasi does whether its buffer or its
/// iovec array is outside memory: both implementations must agree, trap or not.
#[tokio::test]
async fn an_empty_stdin_is_read_as_wasmtime_wasi_reads_it() {
    let gateway = Gateway::new("");
    let read = |iovs: u32, buf: u32| {
        format!(
            r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const {buf}))
    (i32.store (i32.const 4) (i32.const 64))
    (call $exit (call $r (i32.const 0) (i32.const {iovs}) (i32.const 1) (i32.const 8)))))"#
        )
    };
    for (case, text) in [
        ("buffer outside memory", read(0, 0xfff0)),
        ("iovec array outside memory", read(0xfffc, 16)),
    ] {
        let [own, wasi] = both(&gateway, "emptyread", &text, b"").await;
        let shown = |r: &Result<Bytes, GuestError>| match r {
            Ok(out) => format!("ok {out:?}"),
            Err(e) => format!("{:?}", e.outcome()),
        };
        assert_eq!(shown(&own), shown(&wasi), "{case}");
    }
}

/// A read whose first buffer overwrites the iovec array still fills the second buffer the
/// iovecs named when the call was made, as wasmtime-wasi does.
#[tokio::test]
async fn iovecs_are_read_before_any_buffer_is_filled() {
    let gateway = Gateway::new("");
    // iovec 0: 16 bytes at 0 (over the array itself); iovec 1: 4 bytes at 100. Then the
    // bytes at 100 are written out.
    let wat_text = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (i32.const 16))
    (i32.store (i32.const 8) (i32.const 100))
    (i32.store (i32.const 12) (i32.const 4))
    (drop (call $r (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 200)))
    (i32.store (i32.const 300) (i32.const 100))
    (i32.store (i32.const 304) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 200)))))"#;
    let [own, wasi] = both(&gateway, "overlap", wat_text, b"AAAAAAAAAAAAAAAAtail").await;
    assert_eq!(own.unwrap(), Bytes::from_static(b"tail"));
    assert!(wasi.is_ok(), "{wasi:?}");
}

/// The monotonic clock starts near zero in every instance, as in wasmtime-wasi: a guest
/// cannot time what ran before it in the process.
#[tokio::test]
async fn the_monotonic_clock_starts_with_the_instance() {
    let gateway = Gateway::new("");
    let module = gateway.load(
        "clock",
        r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $t (i32.const 1) (i64.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let nanos = |out: Bytes| u64::from_le_bytes(out[..8].try_into().unwrap());
    let first = nanos(run(&module).await.unwrap());
    // Time passes in the process between the two requests...
    let gap = Duration::from_millis(200);
    let before = std::time::Instant::now();
    while before.elapsed() < gap {
        std::hint::spin_loop();
    }
    // ...but not for the second guest, whose clock starts with its own instance.
    let second = nanos(run(&module).await.unwrap());
    let bound = Duration::from_millis(50).as_nanos() as u64;
    assert!(
        first < bound && second < bound,
        "{first} ns, then {second} ns"
    );
}
