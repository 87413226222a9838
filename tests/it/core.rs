//! The core gateway end to end: routing, the guest's environment, stdin and stdout, CGI
//! headers, every request outcome, and the admin listener.

use crate::common;

use std::collections::HashMap;

use bytes::Bytes;
use common::{TestGateway, build, fixture, raw, raw_status, request};
use http::StatusCode;
use wasmgate::{Config, Overrides, RunningGateway};

fn env_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_is_served_as_plain_text() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let r = gw.get("/hello").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello, world\n");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    // A trailing path and a query reach the same module.
    assert_eq!(
        gw.get("/hello/any/thing?x=1").await.text(),
        "hello, world\n"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_environment_is_exactly_the_contract() {
    let extra = "[modules.envdump]\nenv = { GREETING = \"hi there\" }\n";
    let mut gw = TestGateway::start(&[("envdump", "envdump")], extra).await;
    let req = build(
        "POST",
        "/envdump/a/b%20c?foo=bar&id=1234",
        &[
            ("host", "example.test:8443"),
            ("x-custom-thing", "v1"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", "Bearer tok-123"),
            ("proxy", "http://evil.test"),
        ],
        Bytes::from_static(b"a=1"),
    );
    let r = request(gw.public, req).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().starts_with("envdump environment:\n"));
    let env = env_lines(&r.text());
    let port = gw.public.port().to_string();
    let want = [
        ("http_path", "/envdump/a/b%20c"),
        ("http_method", "POST"),
        ("http_host", "example.test:8443"),
        ("http_query", "foo=bar&id=1234"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", "/envdump"),
        ("PATH_INFO", "/a/b c"),
        ("QUERY_STRING", "foo=bar&id=1234"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("CONTENT_LENGTH", "3"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "example.test"),
        ("SERVER_PORT", port.as_str()),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_CUSTOM_THING", "v1"),
        ("HTTP_HOST", "example.test:8443"),
        ("GREETING", "hi there"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    assert!(env["remote_addr"].starts_with("127.0.0.1:"));
    assert_eq!(
        env["REMOTE_PORT"],
        env["remote_addr"].rsplit(':').next().unwrap()
    );
    assert!(env["SERVER_SOFTWARE"].starts_with("wasmgate/"));
    for withheld in [
        "HTTP_AUTHORIZATION",
        "HTTP_PROXY",
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
    ] {
        assert!(
            !env.contains_key(withheld),
            "{withheld} must not reach the guest"
        );
    }
    assert!(!r.text().contains("tok-123"));
    // Nothing else: every variable is one the contract names.
    let allowed_extra = ["remote_addr", "REMOTE_PORT", "SERVER_SOFTWARE"];
    for k in env.keys() {
        assert!(
            want.iter().any(|(w, _)| w == k) || allowed_extra.contains(&k.as_str()),
            "unexpected variable {k}"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_reaches_a_module_that_opts_in() {
    let extra = "[modules.trusted]\npass_authorization = true\n";
    let mut gw = TestGateway::start(&[("trusted", "envdump"), ("other", "envdump")], extra).await;
    let auth = [("authorization", "Bearer tok-123")];
    let r = request(gw.public, build("GET", "/trusted", &auth, Bytes::new()))
        .await
        .unwrap();
    assert_eq!(env_lines(&r.text())["HTTP_AUTHORIZATION"], "Bearer tok-123");
    let r = request(gw.public, build("GET", "/other", &auth, Bytes::new()))
        .await
        .unwrap();
    assert!(!r.text().contains("tok-123"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_goes_to_stdin_byte_for_byte() {
    let mut gw = TestGateway::start(&[("echo", "echo")], "").await;
    let payload: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let req = build(
        "POST",
        "/echo",
        &[("content-type", "application/octet-stream")],
        payload.clone().into(),
    );
    let r = request(gw.public, req).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), payload.len());
    assert!(r.body == payload, "echo differs");
    // An empty body is an empty stdin.
    let r = request(gw.public, build("POST", "/echo", &[], Bytes::new()))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgi_headers_shape_the_response() {
    let modules = [
        ("cgi", "cgi"),
        ("redirect", "redirect"),
        ("badstatus", "badstatus"),
        ("exit0", "exit0"),
    ];
    let mut gw = TestGateway::start(&modules, "").await;
    let r = gw.get("/cgi").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-fixture"], "yes");
    assert_eq!(r.text(), "{\"ok\":true}");

    let r = gw.get("/redirect").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "/hello");

    let r = gw.get("/badstatus").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.text().contains("badstatus") && r.text().contains("Status"),
        "{}",
        r.text()
    );

    let r = gw.get("/exit0").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "bye\n"));
    gw.stop().await;
}

/// Whichever way its pool slot is reset (`slot_reset`), a request never sees the memory or
/// globals an earlier one left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_a_fresh_instance() {
    for config in ["", "slot_reset = \"auto\"\n", "slot_reset = \"memset\"\n"] {
        let mut gw = TestGateway::start(&[("counter", "counter")], config).await;
        for _ in 0..20 {
            assert_eq!(gw.get("/counter").await.text(), "g=1 m=1\n", "{config}");
        }
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_failures_are_500s_that_name_the_module() {
    let modules = [("crash", "trap"), ("exit3", "exit3"), ("hello", "hello")];
    let mut gw = TestGateway::start(&modules, "").await;
    let r = gw.get("/crash").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().contains("'crash'") && r.text().contains("trap"),
        "{}",
        r.text()
    );
    let r = gw.get("/exit3").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().contains("'exit3'") && r.text().contains("status 3"),
        "{}",
        r.text()
    );
    // Partial output of a failed guest is not leaked into the error.
    assert!(!r.text().contains("about to fail"));
    assert_eq!(gw.get("/hello").await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unservable_modules_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(modules.join("bad.wasm"), b"this is not wasm").unwrap();
    std::fs::write(modules.join("noexport.wasm"), fixture("noexport")).unwrap();
    std::fs::write(
        modules.join("unknown_import.wasm"),
        fixture("unknown_import"),
    )
    .unwrap();
    std::fs::write(modules.join("hello.wasm"), fixture("hello")).unwrap();
    std::fs::write(modules.join("notes.txt"), b"ignored").unwrap();
    let mut gw = TestGateway::start_in(dir, "").await;
    for (name, reason) in [
        ("bad", "cannot compile"),
        ("noexport", "_start"),
        ("unknown_import", "nosuch"),
    ] {
        let r = gw.get(&format!("/{name}")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        assert!(r.text().contains(&format!("'{name}'")), "{}", r.text());
        assert!(r.text().contains(reason), "{name}: {}", r.text());
        assert!(
            !r.text().contains(gw.dir.path().to_str().unwrap()),
            "host path leaked"
        );
    }
    assert_eq!(gw.get("/hello").await.status, StatusCode::OK);
    assert_eq!(gw.get("/notes").await.status, StatusCode::NOT_FOUND);

    let list = gw.modules().await;
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bad", "hello", "noexport", "unknown_import"]);
    let bad = &list[0];
    assert_eq!(bad["state"], "failed");
    assert!(bad["error"].as_str().unwrap().contains("cannot compile"));
    let hello = &list[1];
    assert_eq!(hello["state"], "ready");
    assert_eq!(hello["source"], "compiled");
    assert!(hello["error"].is_null());
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture("hello")));
    assert_eq!(hello["digest"], format!("sha256:{digest}"));
    assert_eq!(hello["size_bytes"], fixture("hello").len());
    assert!(hello["compile_ms"].as_f64().unwrap() > 0.0);
    assert!(hello["loaded_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(hello["wasi"], "cgi");
    assert!(bad["wasi"].is_null());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_without_touching_the_filesystem() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    // A valid module just outside the modules directory: no path may reach it.
    std::fs::write(gw.dir.path().join("outside.wasm"), fixture("hello")).unwrap();
    let long = format!("/{}", "x".repeat(300));
    for path in [
        "/..%2foutside",
        "/../outside",
        "/hello.wasm",
        "/%2e%2e",
        "/a%00b",
        "/%68ello",
        long.as_str(),
    ] {
        let r = gw.get(path).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
        assert!(!r.text().contains("hello, world"), "{path} ran a module");
    }
    assert_eq!(gw.get("/hello.wasm").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(gw.get("/nosuch").await.status, StatusCode::NOT_FOUND);
    assert_eq!(gw.get("/").await.status, StatusCode::NOT_FOUND);
    // A NUL byte sent raw, and a PATH_INFO that decodes to one.
    let reply = raw(
        gw.public,
        b"GET /hello/a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&reply), Some(400), "{reply}");
    let reply = raw(
        gw.public,
        b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&reply), Some(400), "two Host headers: {reply}");
    let reply = raw(
        gw.public,
        b"GET /a\0b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_ne!(raw_status(&reply), Some(200), "{reply}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_clients_all_succeed() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let addr = gw.public;
    let clients: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..10 {
                    let r = common::get(addr, "/hello").await.unwrap();
                    if r.status == StatusCode::OK && r.body == "hello, world\n" {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    assert_eq!(total, 320);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let mut req = Vec::new();
    for _ in 0..5 {
        req.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    req.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let reply = raw(gw.public, &req).await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 6, "{reply}");
    assert_eq!(reply.matches("hello, world").count(), 6);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_is_separate() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "").await;
    let admin = gw.admin;
    assert_eq!(
        common::get(admin, "/healthz").await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        common::get(admin, "/readyz").await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        common::get(admin, "/nosuch").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    for path in ["/modules", "/healthz", "/readyz"] {
        let r = gw.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path} on the public port");
    }
    let r = request(admin, build("POST", "/modules", &[], Bytes::new()))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argv0_is_the_module_name() {
    let mut gw = TestGateway::start(&[("argv", "argv")], "").await;
    assert_eq!(gw.get("/argv").await.text(), "argv\n");
    gw.stop().await;
}

/// With `serve_threads`, threads of their own serve the public port, each taking the
/// connections handed to it: every request on fresh connections is answered, and the
/// gateway still drains, stops and frees the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_threads_answer_every_request_and_stop_cleanly() {
    let mut gw = TestGateway::start(&[("hello", "hello")], "serve_threads = 3\n").await;
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let addr = gw.public;
            tokio::spawn(async move {
                for _ in 0..5 {
                    let reply = common::get(addr, "/hello").await.unwrap();
                    assert_eq!(reply.status, StatusCode::OK);
                    assert_eq!(reply.text(), "hello, world\n");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let public = gw.public;
    gw.stop().await;
    assert!(
        tokio::net::TcpStream::connect(public).await.is_err(),
        "something still listens on the public port after the stop"
    );
}

/// The public port is the gateway's alone, with serving threads (the default) as without:
/// a second gateway on it fails to start and says which address, rather than sharing the
/// traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_port_does_not_start() {
    for threads in ["", "serve_threads = 0\n", "serve_threads = 2\n"] {
        let mut gw = TestGateway::start(&[("hello", "hello")], threads).await;
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "listen = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nmodules_dir = {:?}\n\
             cache_dir = {:?}\n{threads}",
            gw.public,
            dir.path(),
            dir.path().join("cache"),
        );
        let config = Config::from_toml(&toml, Overrides::default()).unwrap();
        let err = match RunningGateway::start(config).await {
            Ok(_) => panic!("a second gateway started on {} ({threads:?})", gw.public),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&gw.public.to_string()), "{err}");
        assert_eq!(gw.get("/hello").await.status, StatusCode::OK);
        gw.stop().await;
    }
}
