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
