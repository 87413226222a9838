//! Errors that say what usually causes them: the body a client gets and the line the log
//! keeps for fuel exhaustion, a deadline, a trap, an exit status (Go's panic status 2
//! among them) and a malformed CGI head each name the likely cause and the config key or
//! guide section that helps; an output that opens with a header line but never ends its
//! header block is served as before, with a warning in the log.

use crate::common;

use common::served::Served;
use common::{fixture, printing};

/// A module that exits with `code` after printing a line.
fn exiting_with(code: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const {code}))))"#
    ))
    .unwrap()
}

const CONFIG: &str = "[modules.loop]\nfuel = 100000\ntimeout_ms = 30000\n\
                      [modules.stuck]\nfuel = 0\ntimeout_ms = 200\n";

#[test]
fn each_failure_names_its_likely_cause_in_the_body_and_the_log() {
    let modules = vec![
        ("loop".to_string(), fixture("spin")),
        ("stuck".to_string(), fixture("spin")),
        ("crash".to_string(), fixture("trap")),
        ("three".to_string(), fixture("exit3")),
        ("gopanic".to_string(), exiting_with(2)),
        ("badhead".to_string(), fixture("badstatus")),
        (
            "unended".to_string(),
            printing("Content-Type: application/json\n{\"a\": 1}\n"),
        ),
    ];
    let gw = Served::start_bytes(&modules, &[], CONFIG, &[]);
    let cases = [
        (
            "/loop",
            500,
            &["endless loop", "raise `fuel` in [modules.loop]"][..],
        ),
        (
            "/stuck",
            504,
            &["never comes", "raise `timeout_ms` in [modules.stuck]"],
        ),
        (
            "/crash",
            500,
            &["the guest crashed", "a Rust panic", "stderr"],
        ),
        (
            "/three",
            500,
            &["exited with status 3", "failure status", "os.Exit"],
        ),
        (
            "/gopanic",
            500,
            &[
                "exited with status 2",
                "Go program exits with 2 when it panics",
            ],
        ),
        (
            "/badhead",
            502,
            &["then an empty line", "What your function returns"],
        ),
    ];
    for (path, status, says) in cases {
        let (got, body) = gw.get(path);
        assert_eq!(got, status, "{path}: {body}");
        for phrase in says {
            assert!(body.contains(phrase), "{path}: {phrase:?} not in {body:?}");
        }
        assert!(
            body.contains("docs/writing-functions.md"),
            "{path}: no guide section in {body:?}"
        );
        let module = &path[1..];
        let line = gw
            .wait_for_log(&format!("module '{module}'"))
            .unwrap_or_else(|| panic!("{path}: no log line"));
        assert!(line.contains(says[0]), "{path}: {line}");
    }
    // Served as a body as before, and warned about.
    let (status, body) = gw.get("/unended");
    assert_eq!(
        (status, body.as_str()),
        (200, "Content-Type: application/json\n{\"a\": 1}\n")
    );
    let warning = gw
        .wait_for_log("no empty line after its headers")
        .expect("a warning for the unended header block");
    assert!(
        warning.contains("WARN") && warning.contains("'Content-Type: application/json'"),
        "{warning}"
    );
    gw.terminate();
}
