//! What a newcomer touches first: the example config parses, and every example module in
//! `modules/` serves its expected response through the gateway.

mod common;

use std::path::Path;

use common::TestGateway;
use http::StatusCode;
use wasmgate::config::{Config, Overrides};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_example_config_parses_and_keeps_the_defaults() {
    let config = Config::load(Some(&repo("config/wasmgate.toml")), Overrides::default()).unwrap();
    let defaults = Config::from_toml("", Overrides::default()).unwrap();
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.admin_listen, defaults.admin_listen);
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.max_instances, defaults.max_instances);
    assert_eq!(config.queue_timeout_ms, defaults.queue_timeout_ms);
    assert_eq!(config.shutdown_grace_ms, defaults.shutdown_grace_ms);
    let envdump = config.module_settings("envdump");
    assert_eq!(
        envdump.env,
        [("GREETING".to_string(), "hello from the config".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_module_serves_its_response() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    let mut served = Vec::new();
    for entry in std::fs::read_dir(repo("modules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, modules.join(path.file_name().unwrap())).unwrap();
            served.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    served.sort();
    let mut gw =
        TestGateway::start_in(dir, "[modules.envdump]\nenv = { GREETING = \"hi\" }\n").await;
    for name in &served {
        let r = gw.get(&format!("/{name}/x?y=1")).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
        let text = r.text();
        match name.as_str() {
            "hello" => assert_eq!(text, "hello, world\n"),
            "envdump" => {
                assert!(text.starts_with("envdump environment:\n"), "{text}");
                for want in [
                    "GREETING=hi",
                    "PATH_INFO=/x",
                    "QUERY_STRING=y=1",
                    "http_path=/envdump/x",
                ] {
                    assert!(text.lines().any(|l| l == want), "{want} in {text}");
                }
            }
            other => panic!("example module '{other}' has no expected response in this test"),
        }
    }
    assert!(served.len() >= 2, "{served:?}");
    gw.stop().await;
}
