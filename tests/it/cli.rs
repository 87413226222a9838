//! The `wasmgate` binary as users run it: `serve` in a child process (its log, its
//! environment, its signals, its start-up errors) and `run` for one invocation.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::served::{BIN, Served};
use common::{component, fixture};

#[test]
fn serve_logs_guest_output_keeps_the_host_env_private_and_exits_cleanly() {
    let gw = Served::start(
        &[("envdump", "envdump"), ("stderr", "stderr")],
        &[("WASMGATE_TEST_SECRET", "s3cr3t-host-value")],
    );
    let (status, body) = gw.get("/envdump");
    assert_eq!(status, 200);
    assert!(!body.contains("s3cr3t"), "host environment leaked: {body}");
    assert!(!body.contains("PATH=/"), "host PATH leaked: {body}");
    assert!(
        gw.wait_for_log("[envdump]: envdump says hello to the log")
            .is_some()
    );
    // log_i32 logs the number of variables, which the body lists one a line.
    let variables = body.lines().skip(1).count();
    assert!(variables > 10, "{body}");
    assert!(
        gw.wait_for_log(&format!("[envdump]: {variables}"))
            .is_some(),
        "log_i32 of {variables}"
    );
    let (status, body) = gw.get("/stderr");
    assert_eq!((status, body.as_str()), (200, "done\n"));
    let line = gw
        .wait_for_log("stderr line from the guest")
        .expect("guest stderr in the log");
    assert!(line.contains("[stderr]"), "{line}");
    let exit = gw.terminate();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_config_fails_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmgate.toml");
    for (text, needle) in [
        ("listne = \"127.0.0.1:0\"\n", "listne"),
        ("[limits]\ntimeout_ms = \"soon\"\n", "timeout_ms"),
        (
            "[limits]\nmax_memory_bytes = 12\n",
            "limits.max_memory_bytes",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
        assert!(
            !stderr.contains(dir.path().to_str().unwrap()),
            "host path in: {stderr}"
        );
    }
}

#[test]
fn a_port_in_use_fails_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &addr,
            "--admin-listen",
            "127.0.0.1:0",
            "--modules",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}

fn run(file_fixture: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    run_binary(file_fixture, &fixture(file_fixture), args, stdin)
}

/// `wasmgate run NAME.wasm ARGS` with `wasm` as the file and `stdin` piped in.
fn run_binary(name: &str, wasm: &[u8], args: &[&str], stdin: &[u8]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&file, wasm).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn run_invokes_a_module_once() {
    let out = run("hello", &[], b"");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello, world\n");

    let out = run("echo", &[], b"from stdin");
    assert_eq!(out.stdout, b"from stdin");

    let out = run(
        "envdump",
        &["--env", "GREETING=hi", "--path", "/a/b", "--query", "x=1"],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "GREETING=hi",
        "PATH_INFO=/a/b",
        "QUERY_STRING=x=1",
        "SCRIPT_NAME=/envdump",
        "REQUEST_METHOD=GET",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} in {text}");
    }

    let out = run("cgi", &["--include"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 201 Created\n"), "{text}");
    assert!(text.contains("content-type: application/json\n"), "{text}");
}

#[test]
fn a_components_stdout_and_stderr_go_to_the_log_tagged() {
    let modules = [("probe".to_string(), component("probe_http"))];
    let gw = Served::start_bytes(&modules, &[], "", &[]);
    let (status, body) = gw.get("/probe/log");
    assert_eq!((status, body.as_str()), (200, "logged\n"));
    for stream in ["stdout", "stderr"] {
        let line = gw
            .wait_for_log(&format!("probe_http: a line on {stream}"))
            .unwrap_or_else(|| panic!("the component's {stream} in the log"));
        assert!(line.contains("[probe]"), "{line}");
    }
}

#[test]
fn run_invokes_a_component_once() {
    let out = run_binary("hello_http", &component("hello_http"), &[], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hello, world\n");

    let args = ["--path", "/a/b", "--query", "x=1", "--method", "PUT"];
    let out = run_binary("echo_http", &component("echo_http"), &args, b"from stdin");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "method=PUT",
        "path_with_query=/echo_http/a/b?x=1",
        "body-bytes=10",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} in {text}");
    }
    assert!(text.ends_with("\n\nfrom stdin"), "{text}");

    let out = run_binary(
        "probe",
        &component("probe_http"),
        &["-i", "--path", "/env", "--env", "K=v"],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\n"), "{text}");
    assert!(text.contains("content-type: text/plain\n"), "{text}");
    assert!(text.ends_with("\narg:probe\nenv:K=v\n"), "{text}");
}

#[test]
fn run_reports_a_failing_component_with_the_gateways_exit_codes() {
    let probe = component("probe_http");
    for (path, query, code, says) in [
        ("/panic-mid-body", "", 134, "trapped"),
        ("/no-response", "", 134, "without setting a response"),
        // WASI 0.2's `exit` has one failure status, 1.
        ("/exit", "code=3", 1, "exited with status 1"),
        ("/big", "bytes=20000000", 137, "output limit"),
    ] {
        let args = ["--path", path, "--query", query];
        let out = run_binary("probe", &probe, &args, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{path}: {stderr}");
        assert!(stderr.contains(says), "{path}: {stderr}");
    }
}

/// A component whose head declares more than `max_output_bytes` is refused before any of
/// its body goes out, by `run` as by `serve` (issue 31: `run` streamed it until the cap
/// cut it off).
#[test]
fn run_refuses_a_declared_length_over_the_output_cap_as_serve_does() {
    let args = ["--path", "/big-declared", "--query", "bytes=20000000"];
    let out = run_binary("probe", &component("probe_http"), &args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(stderr.contains("output limit"), "{stderr}");
    assert!(out.stdout.is_empty(), "{} bytes went out", out.stdout.len());
}

/// `run` and `serve` go through one pipeline (issue 31): a body over `max_body_bytes` is
/// refused alike by both, for a CGI module and for a component, naming the module.
#[test]
fn run_and_serve_refuse_a_body_over_the_limit_alike_on_both_abis() {
    let config = "[limits]\nmax_body_bytes = 16\n";
    let modules = [
        ("echo".to_string(), fixture("echo")),
        ("echo_http".to_string(), component("echo_http")),
    ];
    let gw = Served::start_bytes(&modules, &[], config, &[]);
    let body = "x".repeat(100);
    for (name, wasm) in &modules {
        let says = format!("module '{name}': request body larger than 16 bytes");
        let (status, text) = gw.request("POST", &format!("/{name}"), &body);
        assert_eq!(status, 413, "serve {name}: {text}");
        assert!(text.contains(&says), "serve {name}: {text}");
        let dir = tempfile::tempdir().unwrap();
        let (file, config_file, stdin) = (
            dir.path().join(format!("{name}.wasm")),
            dir.path().join("wasmgate.toml"),
            dir.path().join("body"),
        );
        std::fs::write(&file, wasm).unwrap();
        std::fs::write(&config_file, config).unwrap();
        std::fs::write(&stdin, &body).unwrap();
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .arg("run")
            .arg(&file)
            .arg("--config")
            .arg(&config_file)
            .args(["--method", "POST"])
            .stdin(std::fs::File::open(&stdin).unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "run {name}: {stderr}");
        assert!(stderr.contains(&says), "run {name}: {stderr}");
    }
}

/// `wasmgate run FILE`, no stdin, its stdout and stderr piped.
fn spawn_run(file: &Path) -> std::process::Child {
    Command::new(BIN)
        .current_dir(file.parent().unwrap())
        .arg("run")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `run` writes the guest's output as the guest writes it: the first line is on stdout
/// while the process is still running; a trap after output has gone out is still a trap.
#[test]
fn run_streams_output_as_the_guest_writes_it() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ticks.wasm");
    std::fs::write(&file, fixture("ticks")).unwrap();
    let mut child = spawn_run(&file);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 7];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"tick 0\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only once the run was over"
    );
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.ends_with(b"tick 9\n"));

    // A reader that goes away (`| head`) stops an endless guest: exit 126.
    std::fs::write(&file, fixture("endless")).unwrap();
    let mut child = spawn_run(&file);
    let mut some = [0u8; 4096];
    child.stdout.take().unwrap().read_exact(&mut some).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(126));

    let out = run("bigthentrap", &[], b"");
    assert_eq!(out.status.code(), Some(134));
    assert!(out.stdout.len() >= 64 * 1024, "{} bytes", out.stdout.len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trapped"));
}

#[test]
fn run_reports_a_failing_module() {
    let out = run("trap", &[], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'trap'") && stderr.contains("trapped"),
        "{stderr}"
    );
}

#[test]
fn every_reload_is_one_log_line_with_both_digests() {
    let gw = Served::start(&[("hello", "hello")], &[]);
    let digest = |fx: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture(fx)));
    std::fs::write(gw.dir.path().join("modules/hello.wasm"), fixture("hello2")).unwrap();
    let line = gw.wait_for_log("module reloaded").expect("a reload line");
    for want in [
        "module=hello",
        &format!("old=sha256:{}", digest("hello")),
        &format!("new=sha256:{}", digest("hello2")),
        "compile_ms=",
        "source=",
    ] {
        assert!(line.contains(want), "{want} in {line}");
    }
    std::fs::write(gw.dir.path().join("modules/hello.wasm"), b"broken").unwrap();
    let line = gw
        .wait_for_log("module failed to load")
        .expect("a failure line");
    assert!(
        line.contains("module=hello") && line.contains("cannot compile"),
        "{line}"
    );
    assert_eq!(gw.get("/hello"), (200, "hello, v2\n".to_string()));
    assert_eq!(gw.log.lock().unwrap().matches("module reloaded").count(), 1);
    assert!(gw.terminate().success());
}

fn compile_cmd(dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["compile", "--modules"])
        .arg(dir.join("modules"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn compile_fills_the_cache_and_serve_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    for fx in ["hello", "echo", "cgi"] {
        std::fs::write(modules.join(format!("{fx}.wasm")), fixture(fx)).unwrap();
    }
    let out = compile_cmd(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for fx in ["hello", "echo", "cgi"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("compiled") && l.contains(&format!(" {fx} sha256:"))),
            "{stdout}"
        );
    }
    assert!(stdout.contains("3 modules, 0 failed"), "{stdout}");
    // A second run finds everything cached.
    let again = String::from_utf8_lossy(&compile_cmd(dir.path()).stdout).into_owned();
    assert_eq!(
        again.lines().filter(|l| l.starts_with("cache")).count(),
        3,
        "{again}"
    );

    // A gateway on that cache compiles nothing.
    let gw = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut gw = common::TestGateway::start_in(dir, "").await;
        let list = gw.modules().await;
        gw.stop().await;
        list
    });
    assert!(
        gw.as_array()
            .unwrap()
            .iter()
            .all(|m| m["source"] == "cache"),
        "{gw}"
    );
}

#[test]
fn compile_fails_on_an_invalid_module_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(modules.join("hello.wasm"), fixture("hello")).unwrap();
    std::fs::write(modules.join("broken.wasm"), b"nope").unwrap();
    let out = compile_cmd(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.lines().any(|l| l.starts_with("failed")
            && l.contains("broken")
            && l.contains("cannot compile")),
        "{stdout}"
    );
    assert!(stdout.contains("2 modules, 1 failed"), "{stdout}");
}

#[test]
fn json_logs_carry_the_access_log_and_guest_failures() {
    let gw = Served::start_with(
        &[("hello", "hello"), ("crash", "trap")],
        &[],
        "access_log = true\n",
        &["--log-format", "json"],
    );
    assert_eq!(gw.get("/hello/x").0, 200);
    assert_eq!(gw.get("/crash").0, 500);
    let access = gw
        .wait_for_log("\"path\":\"/hello/x\"")
        .expect("an access line for /hello/x");
    let access: serde_json::Value = serde_json::from_str(&access).unwrap();
    assert_eq!(access["target"], "wasmgate::access");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["outcome"], "ok");
    assert_eq!(access["fields"]["method"], "GET");
    assert!(access["fields"]["duration_us"].as_u64().is_some());
    let trap = gw
        .wait_for_log("\"outcome\":\"trap\",\"duration_ms\"")
        .expect("a trap line");
    let trap: serde_json::Value = serde_json::from_str(&trap).unwrap();
    assert_eq!(trap["level"], "WARN");
    assert_eq!(trap["fields"]["module"], "crash");
    assert!(
        trap["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("module 'crash' trapped"),
        "{trap}"
    );
    // Every line is JSON.
    for line in gw.log.lock().unwrap().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(gw.terminate().success());
}

/// Memory and output bombs leave the gateway's own resident memory in bounds: measured on
/// a gateway process of its own, so that nothing else in the test process counts. A flood
/// streams (it passes `stream_after_bytes` long before its cap), so it is a 200 cut off
/// at the cap; with a buffer larger than the cap it is a 502 before anything is sent, as
/// is output whose first line never ends (it could still be a header).
#[test]
fn bombs_leave_the_gateways_resident_memory_in_bounds() {
    let limits = "[limits]\nmax_memory_bytes = 33554432\nmax_output_bytes = 1048576\n\
                  [modules.buffered]\nstream_after_bytes = 2097152\nstream_after_ms = 60000\n";
    let gw = Served::start_with(
        &[
            ("hello", "hello"),
            ("membomb", "membomb"),
            ("flood", "flood"),
            ("buffered", "flood"),
            ("unended", "unended"),
        ],
        &[],
        limits,
        &[],
    );
    assert_eq!(gw.get("/hello").0, 200);
    let before = gw.resident_kib();
    for _ in 0..3 {
        assert_eq!(gw.get("/membomb").0, 500);
        let (status, body) = gw.get("/flood");
        assert_eq!(status, 200);
        assert!(
            !body.ends_with("0\r\n\r\n"),
            "a cut-off flood has no last chunk"
        );
        assert!(
            body.len() < 1_100_000,
            "{} bytes of a flood served",
            body.len()
        );
        let (status, body) = gw.get("/buffered");
        assert_eq!(status, 502, "{body}");
        assert!(body.len() < 4096, "{} bytes of a flood served", body.len());
        let (status, body) = gw.get("/unended");
        assert_eq!(status, 502, "{body}");
        assert!(
            body.len() < 4096,
            "{} bytes of an unended line served",
            body.len()
        );
    }
    let grown_mib = gw.resident_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "resident memory grew {grown_mib} MiB after 32 MiB memory bombs and 1 MiB-capped floods"
    );
    assert_eq!(gw.get("/hello").0, 200);
}

/// A guest cannot forge a log line of the gateway's: a CR or LF in what it logs, through
/// `env.log_string` or stderr, is escaped, so each of its messages stays one line tagged
/// with its module.
#[test]
fn a_guest_cannot_forge_a_gateway_log_line() {
    let forged = "INFO wasmgate: module loaded module=admin";
    let message = format!("innocent\\n{forged}\\r\\n");
    let wat = format!(
        r#"(module
  (import "env" "log_string" (func $log (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{message}")
  (func (export "_start")
    (call $log (i32.const 64) (i32.const {len}))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = "innocent\n".len() + forged.len() + 2,
    );
    let gw = Served::start_wat(&[("forger", &wat)]);
    assert_eq!(gw.get("/forger").0, 200);
    // env.log_string: one line, the LF escaped.
    let line = gw
        .wait_for_log("[forger]: innocent")
        .expect("the guest's log_string line");
    assert!(line.contains(&format!("innocent\\n{forged}")), "{line}");
    // stderr: a line per line, each tagged with the module, the CR escaped.
    let stderr_line = gw
        .wait_for_log(&format!("[forger] {forged}"))
        .expect("the guest's second stderr line, tagged");
    assert!(stderr_line.contains("\\r"), "{stderr_line}");
    let log = gw.log.lock().unwrap().clone();
    assert!(
        !log.lines().any(|l| l.trim_start().starts_with(forged)),
        "a forged line stands alone in the log:\n{log}"
    );
}

/// `module` with a `name` custom section naming function 0 `name`.
fn with_function_name(module: &[u8], name: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                return;
            }
        }
    }
    let mut names = vec![1u8]; // one (index, name) pair
    leb(0, &mut names);
    leb(name.len(), &mut names);
    names.extend_from_slice(name.as_bytes());
    let mut subsection = vec![1u8]; // function names
    leb(names.len(), &mut subsection);
    subsection.extend(names);
    let mut section = Vec::new();
    leb(4, &mut section);
    section.extend_from_slice(b"name");
    section.extend(subsection);
    let mut out = module.to_vec();
    out.push(0); // a custom section
    leb(section.len(), &mut out);
    out.extend(section);
    out
}

/// Issue 30, item 5: a module's name section, quoted in the backtrace of a trap during
/// instantiation, cannot forge a line (with terminal escapes) in either log format.
#[test]
fn a_module_s_function_names_cannot_forge_a_log_line() {
    let forged = "INFO wasmgate: module loaded module=admin";
    let name = format!("f\n2026-12-07T00:00:00.000000Z  {forged}\r\x1b[2K\u{9b}2K");
    let trapping = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func unreachable) (start 0)
             (func (export "_start")))"#,
    )
    .unwrap();
    let module = with_function_name(&trapping, &name);
    for format in ["text", "json"] {
        let gw = Served::start_bytes(
            &[("named".into(), module.clone())],
            &[],
            "",
            &["--log-format", format],
        );
        assert_eq!(gw.get("/named").0, 500);
        gw.wait_for_log("2026-12-07T00:00:00")
            .expect("the trap's backtrace is logged");
        let log = gw.log.lock().unwrap().clone();
        for line in log.lines() {
            assert!(
                !line.contains(['\x1b', '\u{9b}', '\r']),
                "{format}: a raw control character: {line:?}"
            );
            assert!(
                !line.trim_start().starts_with("2026-12-07T00:00:00"),
                "{format}: {line}"
            );
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
        }
    }
}

/// The CPUs in a `Cpus_allowed_list` such as `0-3,6`.
fn cpu_list(list: &str) -> Vec<usize> {
    list.trim()
        .split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((from, to)) => (from.parse().unwrap()..=to.parse().unwrap()).collect(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// The CPUs a thread (`/proc/PID/task/TID`, or the process itself) may run on.
fn allowed_cpus(task: &Path) -> Vec<usize> {
    let status = std::fs::read_to_string(task.join("status")).unwrap();
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("a Cpus_allowed_list line");
    cpu_list(list)
}

/// The CPUs each of `pid`'s serving threads may run on, by thread name.
fn serving_threads_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut threads: Vec<(String, Vec<usize>)> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let name = name.trim().to_string();
            name.starts_with("wasmgate-serve-")
                .then(|| (name, allowed_cpus(&task.path())))
        })
        .collect();
    threads.sort();
    threads
}

/// With one serving thread per core (the default), each thread runs on a core of its own,
/// in the kernel's own record of the threads; with `pin_serve_threads = false` each may
/// run on every core the process may.
#[test]
fn serving_threads_are_pinned_one_to_a_core_unless_turned_off() {
    let cores = allowed_cpus(Path::new("/proc/self"));
    let threads = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        cores.len(),
        threads,
        "this test needs a host without a CPU quota below its cores"
    );
    let served = Served::start(&[("hello", "hello")], &[]);
    assert_eq!(served.get("/hello").0, 200);
    let pid = served.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut placed = serving_threads_cpus(pid);
    while Instant::now() < deadline
        && (placed.len() < threads || placed.iter().any(|(_, cpus)| cpus.len() != 1))
    {
        std::thread::sleep(Duration::from_millis(20));
        placed = serving_threads_cpus(pid);
    }
    let pinned: Vec<Vec<usize>> = placed.into_iter().map(|(_, cpus)| cpus).collect();
    let expected: Vec<Vec<usize>> = cores.iter().map(|&cpu| vec![cpu]).collect();
    assert_eq!(pinned, expected, "serving thread i on the i-th core");
    assert!(served.wait_for_log("serving threads").is_some());

    let unpinned = Served::start_with(
        &[("hello", "hello")],
        &[],
        "pin_serve_threads = false\n",
        &[],
    );
    assert_eq!(unpinned.get("/hello").0, 200);
    let placed = serving_threads_cpus(unpinned.child.id());
    assert_eq!(placed.len(), threads);
    for (name, cpus) in placed {
        assert_eq!(cpus, cores, "{name} is pinned though pinning is off");
    }
}

/// `wasmgate run FILE` in `dir` with `args`, logging at `log` (`RUST_LOG`).
fn run_logged(dir: &Path, file: &Path, args: &[&str], log: Option<&str>) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.current_dir(dir).arg("run").arg(file).args(args);
    command.env_remove("RUST_LOG");
    if let Some(filter) = log {
        command.env("RUST_LOG", filter);
    }
    command.stdin(Stdio::null()).output().unwrap()
}

/// `run` keeps what it compiles in the cache `serve` uses (the default `.wasmgate-cache`,
/// `--cache-dir`, or the config's `cache_dir`), so a second try loads it instead of
/// compiling; and on success it writes nothing to stderr but the guest's own lines.
#[test]
fn run_loads_from_the_cache_the_second_time_and_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.wasm");
    std::fs::write(&file, fixture("hello")).unwrap();
    let debug = Some("wasmgate=debug");
    let first = run_logged(dir.path(), &file, &[], debug);
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(log.contains("source=compiled"), "{log}");
    let second = run_logged(dir.path(), &file, &[], debug);
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(log.contains("source=cache"), "{log}");
    assert!(dir.path().join(".wasmgate-cache").is_dir());

    let quiet = run_logged(dir.path(), &file, &[], None);
    assert!(quiet.status.success());
    assert_eq!(quiet.stdout, b"hello, world\n");
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");

    // The config's cache_dir, and --cache-dir over it.
    let config = dir.path().join("wasmgate.toml");
    std::fs::write(&config, "cache_dir = \"from-config\"\n").unwrap();
    let config = config.to_str().unwrap();
    let from_config = run_logged(dir.path(), &file, &["--config", config], debug);
    let log = String::from_utf8_lossy(&from_config.stderr);
    assert!(log.contains("source=compiled"), "{log}");
    assert!(dir.path().join("from-config").is_dir());
    let again = run_logged(dir.path(), &file, &["--config", config], debug);
    assert!(String::from_utf8_lossy(&again.stderr).contains("source=cache"));
    let flag = ["--config", config, "--cache-dir", "from-flag"];
    let from_flag = run_logged(dir.path(), &file, &flag, debug);
    assert!(String::from_utf8_lossy(&from_flag.stderr).contains("source=compiled"));
    assert!(dir.path().join("from-flag").is_dir());

    // A guest's stderr still shows.
    let stderr_file = dir.path().join("stderr.wasm");
    std::fs::write(&stderr_file, fixture("stderr")).unwrap();
    let guest = run_logged(dir.path(), &stderr_file, &[], None);
    let log = String::from_utf8_lossy(&guest.stderr);
    assert!(log.contains("stderr line from the guest"), "{log}");
}
