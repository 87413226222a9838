//! What a newcomer touches first: the example config parses, and every example module in
//! `modules/` serves its expected response through the gateway.

use crate::common;

use std::path::Path;

use common::TestGateway;
use wasmgate::{Config, Overrides};

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
    assert_eq!(config.queue_timeout, defaults.queue_timeout);
    assert_eq!(config.shutdown_grace, defaults.shutdown_grace);
    assert_eq!(config.max_module_bytes, defaults.max_module_bytes);
    assert_eq!(
        config.module_settings("jsproxy").allowed_outbound_hosts,
        [wasmgate::testing::AllowedHost::parse("http://127.0.0.1:8080").unwrap()]
    );
    let watenv = config.module_settings("watenv");
    assert_eq!(
        watenv.env,
        [("GREETING".to_string(), "hello from the config".to_string())]
    );
}

/// One request to an example and what its response must contain.
struct Case {
    module: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    status: u16,
    content_type: &'static str,
    contains: &'static [&'static str],
    /// What the response must not contain.
    excludes: &'static [&'static str],
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A function that keeps state, served without its store listed (as `cargo run --release
/// -- serve` serves it): a 503 naming the `kv_stores` line it needs.
const fn without_its_store(module: &'static str, content_type: &'static str) -> Case {
    Case {
        module,
        method: "GET",
        path: "",
        headers: &[],
        body: "",
        status: 503,
        content_type,
        contains: &["kv_stores"],
        excludes: &[],
    }
}

const CASES: &[Case] = &[
    Case {
        module: "clock",
        method: "GET",
        path: "?n=2",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/event-stream",
        contains: &["id: 1\nevent: tick\ndata: 20", "id: 2\nevent: tick\n"],
        excludes: &["id: 3"],
    },
    Case {
        module: "export",
        method: "GET",
        path: "?rows=1000",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/csv",
        contains: &["id,region,quantity,amount\n1,", "\n1000,"],
        excludes: &["\n1001,"],
    },
    Case {
        module: "hello",
        method: "GET",
        path: "",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &["hello, world\n"],
        excludes: &[],
    },
    Case {
        module: "watenv",
        method: "GET",
        path: "/x?y=1",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &[
            "watenv environment:\n",
            "\nGREETING=hi\n",
            "\nPATH_INFO=/x\n",
            "\nQUERY_STRING=y=1\n",
            "\nhttp_path=/watenv/x\n",
        ],
        excludes: &[],
    },
    Case {
        module: "redirect",
        method: "GET",
        path: "",
        headers: &[],
        body: "",
        status: 302,
        content_type: "",
        contains: &[],
        excludes: &[],
    },
    Case {
        module: "rustenv",
        method: "GET",
        path: "/x?y=1",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &[
            "rustenv environment:\n",
            "\nPATH_INFO: /x\n",
            "\nQUERY_STRING: y=1\n",
            "\nGREETING: hi\n",
        ],
        excludes: &[],
    },
    Case {
        module: "goenv",
        method: "GET",
        path: "/x?y=1",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &[
            "goenv environment:\n",
            "\nPATH_INFO=/x\n",
            "\nQUERY_STRING=y=1\n",
        ],
        excludes: &[],
    },
    Case {
        module: "cenv",
        method: "POST",
        path: "/x",
        headers: &[],
        body: "posted",
        status: 200,
        content_type: "text/plain",
        contains: &[
            "cenv environment:\n",
            "\nPATH_INFO=/x\n",
            "\nCONTENT_LENGTH=6\n",
            "body:\nposted",
        ],
        excludes: &[],
    },
    Case {
        module: "asenv",
        method: "GET",
        path: "/x?y=1",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &[
            "asenv environment:\n",
            "\nPATH_INFO=/x\n",
            "\nQUERY_STRING=y=1\n",
        ],
        excludes: &[],
    },
    Case {
        module: "jsonapi",
        method: "GET",
        path: "/items?id=7&tag=a%20b",
        headers: &[],
        body: "",
        status: 200,
        content_type: "application/json",
        contains: &[
            r#""method":"GET""#,
            r#""path":"/items""#,
            r#""id":"7""#,
            r#""tag":"a b""#,
            r#""body":null"#,
        ],
        excludes: &[],
    },
    Case {
        module: "jsonapi",
        method: "POST",
        path: "/items",
        headers: &[("content-type", "application/json")],
        body: r#"{"name":"ada","n":[1,2]}"#,
        status: 200,
        content_type: "application/json",
        contains: &[r#""body":{"n":[1,2],"name":"ada"}"#, r#""method":"POST""#],
        excludes: &[],
    },
    Case {
        module: "jsonapi",
        method: "POST",
        path: "/items",
        headers: &[],
        body: "{not json",
        status: 400,
        content_type: "application/json",
        contains: &["invalid JSON body"],
        excludes: &[],
    },
    Case {
        module: "markdown",
        method: "POST",
        path: "",
        headers: &[],
        body: "# Title\n\nSome *emphasis* and ~~this~~.\n",
        status: 200,
        content_type: "text/html",
        contains: &["<h1>Title</h1>", "<em>emphasis</em>", "<del>this</del>"],
        excludes: &[],
    },
    // Every function shares the gateway's origin: posted HTML must not come back as HTML.
    Case {
        module: "markdown",
        method: "POST",
        path: "",
        headers: &[],
        body: "<script>alert(1)</script>\n\n[a](javascript:alert(2)) [b](https://example.com/x) \
               <img src=x onerror=alert(3)>\n",
        status: 200,
        content_type: "text/html",
        contains: &[
            "&lt;script&gt;",
            "href=\"#\"",
            "href=\"https://example.com/x\"",
            "&lt;img",
        ],
        excludes: &["<script", "javascript:", "<img"],
    },
    Case {
        module: "form",
        method: "GET",
        path: "",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/html",
        contains: &["<form method=\"post\">"],
        excludes: &[],
    },
    Case {
        module: "form",
        method: "POST",
        path: "",
        headers: &[FORM],
        body: "name=Ada+%3Cb%3E&x=1",
        status: 200,
        content_type: "text/html",
        contains: &["Hello, Ada &lt;b&gt;!"],
        excludes: &[],
    },
    Case {
        module: "form",
        method: "POST",
        path: "",
        headers: &[FORM],
        body: "name=",
        status: 422,
        content_type: "text/html",
        contains: &["Please give a name"],
        excludes: &[],
    },
    Case {
        module: "form",
        method: "POST",
        path: "",
        headers: &[("content-type", "text/plain")],
        body: "name=x",
        status: 415,
        content_type: "text/html",
        contains: &[],
        excludes: &[],
    },
    Case {
        module: "rsapi",
        method: "GET",
        path: "/stats?values=1,2,3.5",
        headers: &[],
        body: "",
        status: 200,
        content_type: "application/json",
        contains: &["\"count\": 3", "\"sum\": 6.5", "\"max\": 3.5"],
        excludes: &[],
    },
    Case {
        module: "rsapi",
        method: "POST",
        path: "/stats",
        headers: &[],
        body: "[4, \"x\"]",
        status: 400,
        content_type: "application/json",
        contains: &["is not a number"],
        excludes: &[],
    },
    Case {
        module: "ticker",
        method: "GET",
        path: "?n=3&ms=10",
        headers: &[],
        body: "",
        status: 200,
        content_type: "text/plain",
        contains: &["tick 1\ntick 2\ntick 3\n"],
        excludes: &["tick 4"],
    },
    Case {
        module: "ticker",
        method: "POST",
        path: "",
        headers: &[],
        body: "shout",
        status: 200,
        content_type: "text/plain",
        contains: &["SHOUT"],
        excludes: &[],
    },
    Case {
        module: "pypage",
        method: "GET",
        path: "?name=%3Cb%3EAda",
        headers: &[("user-agent", "examples-test")],
        body: "",
        status: 200,
        content_type: "text/html",
        contains: &[
            "<h1>Hello, &lt;b&gt;Ada!</h1>",
            "<code>examples-test</code>",
        ],
        excludes: &["<b>Ada"],
    },
    Case {
        module: "jsproxy",
        method: "GET",
        path: "",
        headers: &[],
        body: "",
        status: 400,
        content_type: "application/json",
        contains: &["give ?url="],
        excludes: &[],
    },
    without_its_store("counter", "application/json"),
    without_its_store("cvisits", "text/plain"),
    without_its_store("asvisits", "text/plain"),
    without_its_store("shorten", "application/json"),
    without_its_store("sessions", "application/json"),
];

/// An HTTP server on a thread of its own that answers every request with `body`.
fn canned_upstream(body: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    addr
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
    let upstream = canned_upstream("from the upstream\n");
    let config = format!(
        "[modules.watenv]\nenv = {{ GREETING = \"hi\" }}\n[modules.rustenv]\nenv = {{ GREETING = \"hi\" }}\n\
         [modules.jsproxy]\nallowed_outbound_hosts = [\"http://{upstream}\"]\n"
    );
    let mut gw = TestGateway::start_in(dir, &config).await;
    let list = gw.modules().await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "ready"),
        "{list}"
    );
    for case in CASES {
        let path = format!("/{}{}", case.module, case.path);
        let req = common::build(
            case.method,
            &path,
            case.headers,
            bytes::Bytes::from_static(case.body.as_bytes()),
        );
        let r = common::request(gw.public, req).await.unwrap();
        let what = format!("{} {path}", case.method);
        assert_eq!(r.status.as_u16(), case.status, "{what}: {}", r.text());
        if !case.content_type.is_empty() {
            let ct = r
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default())
                .unwrap_or_default();
            assert!(
                ct.starts_with(case.content_type),
                "{what}: content type {ct}"
            );
        }
        for want in case.contains {
            assert!(r.text().contains(want), "{what}: {want:?} in {}", r.text());
        }
        for unwanted in case.excludes {
            assert!(
                !r.text().contains(unwanted),
                "{what}: {unwanted:?} in {}",
                r.text()
            );
        }
    }
    // The proxy reaches the upstream its config allows, and nothing else.
    let allowed = common::get(gw.public, &format!("/jsproxy?url=http://{upstream}/x"))
        .await
        .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert!(
        allowed
            .text()
            .contains("\"body\": \"from the upstream\\n\""),
        "{}",
        allowed.text()
    );
    let denied = common::get(
        gw.public,
        &format!("/jsproxy?url=http://{}/hello", gw.public),
    )
    .await
    .unwrap();
    assert_eq!(denied.status, 502, "{}", denied.text());
    assert_eq!(
        common::get(gw.public, "/redirect").await.unwrap().headers["location"],
        "/hello"
    );
    // Every committed example has at least one case above.
    for name in &served {
        assert!(
            CASES.iter().any(|c| c.module == name),
            "example module '{name}' has no expected response in this test"
        );
    }
    assert!(served.len() >= 10, "{served:?}");
    gw.stop().await;
}

/// The `[modules.NAME] kv_stores` sections of the example config, with `kv` as its `[kv]`.
fn example_stores(kv: &str) -> String {
    let config = std::fs::read_to_string(repo("config/wasmgate.toml")).unwrap();
    let sections: Vec<&str> = config
        .split("\n[")
        .filter(|s| s.starts_with("modules.") && s.contains("kv_stores"))
        .collect();
    assert!(sections.len() >= 5, "{sections:?}");
    format!("[kv]\n{kv}\n[{}\n", sections.join("\n["))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_that_keep_state_keep_it_in_the_configured_stores() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    for name in ["counter", "cvisits", "asvisits", "shorten", "sessions"] {
        let file = format!("{name}.wasm");
        std::fs::copy(repo(&format!("modules/{file}")), modules.join(file)).unwrap();
    }
    let kv = format!("path = {:?}", dir.path().join("kv"));
    let gw = TestGateway::start_in(dir, &example_stores(&kv)).await;
    let text = async |path: &str| {
        let r = common::get(gw.public, path).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text()
    };

    assert!(text("/counter/home").await.contains(r#""visits":1"#));
    assert!(text("/counter/home").await.contains(r#""visits":2"#));
    assert!(text("/counter/about").await.contains(r#""visits":1"#));
    assert_eq!(
        text("/counter").await,
        "{\"pages\":{\"/about\":1,\"/home\":2}}\n"
    );
    assert_eq!(text("/cvisits?ada").await, "visit 1; before you: nobody\n");
    assert_eq!(text("/cvisits?grace").await, "visit 2; before you: ada\n");
    let first = "visit 1; before you: nobody; 1 names seen\n";
    assert_eq!(text("/asvisits?ada").await, first);
    let second = "visit 2; before you: ada; 2 names seen\n";
    assert_eq!(text("/asvisits?linus").await, second);

    let made = common::request(
        gw.public,
        common::build(
            "POST",
            "/shorten",
            &[],
            r#"{"url": "https://example.com/a/b"}"#.into(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.headers["location"], "/shorten/1");
    let bad = common::request(
        gw.public,
        common::build(
            "POST",
            "/shorten",
            &[],
            r#"{"url": "javascript:alert(1)"}"#.into(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    let followed = common::get(gw.public, "/shorten/1").await.unwrap();
    assert_eq!(followed.status, 302);
    assert_eq!(followed.headers["location"], "https://example.com/a/b");
    assert!(
        text("/shorten")
            .await
            .contains(r#"{"code":"1","url":"https://example.com/a/b"}"#)
    );
    assert_eq!(
        common::get(gw.public, "/shorten/zz").await.unwrap().status,
        404
    );
    let cleared = common::request(
        gw.public,
        common::build("DELETE", "/shorten", &[], "".into()),
    )
    .await
    .unwrap();
    assert_eq!(cleared.text(), "{\"deleted\":1}\n");
    assert_eq!(text("/shorten").await, "{\"links\":[]}\n");

    let first = common::get(gw.public, "/sessions").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let cookie = first.headers["set-cookie"].to_str().unwrap().to_string();
    let sid = cookie.split(';').next().unwrap().to_string();
    assert!(sid.starts_with("sid=") && sid.len() == 36, "{cookie}");
    let with_cookie = [("cookie", sid.as_str())];
    let named = common::request(
        gw.public,
        common::build(
            "POST",
            "/sessions",
            &with_cookie,
            r#"{"name": "Ada"}"#.into(),
        ),
    )
    .await
    .unwrap();
    assert!(named.text().contains(r#""name":"Ada""#), "{}", named.text());
    assert!(named.text().contains(r#""visits":2"#), "{}", named.text());
    assert!(!named.headers.contains_key("set-cookie"));
    let other = common::get(gw.public, "/sessions").await.unwrap();
    assert!(other.text().contains(r#""visits":1"#) && other.text().contains(r#""name":null"#));
    let ended = common::request(
        gw.public,
        common::build("DELETE", "/sessions", &with_cookie, "".into()),
    )
    .await
    .unwrap();
    assert!(ended.text().contains(r#""ended":true"#), "{}", ended.text());
    let metrics = gw.metrics().await;
    for module in ["counter", "cvisits", "asvisits", "shorten", "sessions"] {
        assert!(
            metrics.contains(&format!(
                "wasmgate_kv_operations_total{{module=\"{module}\""
            )),
            "{module} in {metrics}"
        );
    }
}
