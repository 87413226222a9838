//! A module's compile cannot take the gateway's memory, crash it, or hold up another
//! module's reload (`catalogue::worker`, `catalogue::preflight`): the real binary, whose
//! compiles run in worker processes under the `[compile]` bounds, and compile bombs, small
//! modules that Cranelift needs seconds and hundreds of megabytes for.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::served::Served;
use common::{component, hello_saying};

/// One function with `locals` i64 locals, each set inside `loops` nested loops: every loop
/// header merges every local, so Cranelift's work grows with their product. 5,000 × 100
/// (45 KB) took 30 s and 230 MB to compile on 2 cores. The function is exported as
/// `export`, after the module's `imports`.
fn bomb_wat(locals: usize, loops: usize, imports: &str, export: &str) -> String {
    let mut wat = format!(
        "(module {imports} (memory (export \"memory\") 1) (func (export \"{export}\") (local"
    );
    wat.push_str(&" i64".repeat(locals));
    wat.push(')');
    wat.push_str(&" loop".repeat(loops));
    for i in 0..locals {
        let from = (i + 1) % locals;
        wat.push_str(&format!(
            " local.get {from} i64.const 1 i64.add local.set {i}"
        ));
    }
    wat.push_str(" local.get 0 i64.eqz br_if 0");
    wat.push_str(&" end".repeat(loops));
    wat.push_str("))");
    wat
}

/// A WASI command module that is a compile bomb.
fn compile_bomb() -> Vec<u8> {
    wat::parse_str(bomb_wat(5000, 100, "", "_start")).unwrap()
}

/// Waits until `check` holds, or panics after `limit` saying `what`.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Serves hello with `bounds` as its `[compile]` section.
fn gateway(bounds: &str) -> Served {
    Served::start_with(
        &[("hello", "hello")],
        &[],
        &format!("[compile]\n{bounds}"),
        &[],
    )
}

/// Drops a compile bomb in, then a small module while the bomb compiles: the small one
/// serves within the contract's second, the bomb ends `failed` with `reason` in `/modules`,
/// and the gateway's own memory stays small all along.
fn bomb_fails_while_others_load(gw: &Served, reason: &str, within: Duration) {
    let modules = gw.dir.path().join("modules");
    let baseline = gw.resident_kib() * 1024;
    std::fs::write(modules.join("bomb.wasm"), compile_bomb()).unwrap();
    // The watcher's debounce has passed and the bomb compiles.
    std::thread::sleep(Duration::from_millis(500));
    write_atomically(
        &modules.join("small.wasm"),
        &hello_saying("small and quick"),
    );
    let took = wait_until(Duration::from_secs(1), "the small module serves", || {
        gw.get("/small").1 == "small and quick\n"
    });
    eprintln!("the small module served {took:?} after it was written");
    let mut peak = 0;
    wait_until(within, "the bomb is reported failed", || {
        peak = peak.max(gw.resident_kib() * 1024);
        gw.module("bomb")["state"] == "failed"
    });
    let error = gw.module("bomb")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains(reason), "{error}");
    assert!(
        peak < baseline + (64 << 20),
        "the gateway grew from {baseline} to {peak} bytes while the bomb compiled"
    );
    assert_eq!(gw.get("/bomb").0, 500);
    assert_eq!(gw.get("/hello").1, "hello, world\n");
    let (_, metrics) = gw.admin_get("/metrics");
    assert!(
        metrics.contains(r#"wasmgate_module_loads_total{module="bomb",result="failed"} 1"#),
        "{metrics}"
    );
}

/// Writes `bytes` to `path` whole, as a deploy tool would (a rename).
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_compile_past_its_memory_bound_fails_and_the_gateway_stays_small() {
    let gw = gateway("max_memory_bytes = 100000000\n");
    bomb_fails_while_others_load(&gw, "compile.max_memory_bytes", Duration::from_secs(60));
}

#[test]
fn a_compile_past_its_wall_clock_bound_is_killed() {
    let gw = gateway("timeout_ms = 2000\n");
    bomb_fails_while_others_load(&gw, "compile.timeout_ms", Duration::from_secs(10));
}

#[test]
fn a_compile_past_its_cpu_bound_is_killed() {
    let gw = gateway("cpu_ms = 1000\n");
    bomb_fails_while_others_load(&gw, "compile.cpu_ms", Duration::from_secs(30));
}

#[test]
fn a_module_that_cannot_be_served_is_refused_before_it_is_compiled() {
    let gw = gateway("");
    let modules = gw.dir.path().join("modules");
    // Each carries the bomb's function, which would take 30 s to compile.
    for (name, imports, export, reason) in [
        ("reactor", "", "_initialize", "no `_start`"),
        (
            "foreign",
            r#"(import "host" "call" (func))"#,
            "_start",
            "host::call",
        ),
        (
            "huge_table",
            "(table 1000000 funcref)",
            "_start",
            "a table may hold",
        ),
    ] {
        let wasm = wat::parse_str(bomb_wat(5000, 100, imports, export)).unwrap();
        write_atomically(&modules.join(format!("{name}.wasm")), &wasm);
        let took = wait_until(Duration::from_secs(2), name, || {
            gw.module(name)["state"] == "failed"
        });
        let error = gw.module(name)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(reason), "{name}: {error}");
        eprintln!("{name} refused {took:?} after it was written");
    }
    // A component that exports no wasi:http handler.
    write_atomically(&modules.join("cli.wasm"), &component("cli_only"));
    wait_until(Duration::from_secs(2), "cli", || {
        gw.module("cli")["state"] == "failed"
    });
    let error = gw.module("cli")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("wasi:http handler"), "{error}");
}

#[test]
fn workers_run_the_gateways_own_binary_even_after_an_upgrade_replaced_it_on_disk() {
    // A copy of the binary, replaced on disk once the gateway runs, as a package upgrade
    // does before the restart: a worker started from the path would run the new file.
    let bin_dir = tempfile::tempdir().unwrap();
    let program = bin_dir.path().join("wasmgate");
    std::fs::copy(common::served::BIN, &program).unwrap();
    let hello = vec![("hello".to_string(), hello_saying("hello"))];
    let gw = Served::start_program(&program, &hello, &[], "", &[]);
    write_atomically(&program, b"#!/bin/sh\nexit 1\n");
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let modules = gw.dir.path().join("modules");
    write_atomically(
        &modules.join("after.wasm"),
        &hello_saying("compiled after the upgrade"),
    );
    wait_until(Duration::from_secs(5), "the new module serves", || {
        gw.get("/after").1 == "compiled after the upgrade\n"
    });
}
