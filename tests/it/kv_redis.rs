//! Key-value stores on a real `redis-server`: gateways that share counters atomically, a
//! server that stops, comes back or never answers, and credentials that never show.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::kv::{Redis, big_batch, counter, kv_config, lines, serve, two_stores};
use common::served::Served;
use common::{TestGateway, hello_saying};

/// The `[kv]` table of a gateway on `url`, with the counter module.
fn on_redis(url: &str) -> String {
    kv_config(&format!("backend = {url:?}"), &[("counter", &["counts"])])
}

/// A gateway serving the counter and a hello module, on Redis at `url`.
async fn counter_gateway(url: &str) -> TestGateway {
    let modules = [("counter", counter()), ("hello", hello_saying("hi"))];
    serve(&modules, |_| on_redis(url)).await
}

/// The counter's value, as the module printed it.
async fn count(addr: SocketAddr) -> String {
    let reply = common::get(addr, "/counter").await.expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_one_redis_share_a_counter_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let (a, b) = (
        counter_gateway(&redis.url()).await,
        counter_gateway(&redis.url()).await,
    );
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.public } else { b.public };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..25 {
                    seen.push(count(addr).await.parse::<i64>().expect("a count"));
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=200).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_redis_fails_calls_with_unavailable_and_is_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path(), None);
    let gw = counter_gateway(&redis.url()).await;
    assert_eq!(count(gw.public).await, "1");

    redis.stop();
    let started = Instant::now();
    assert_eq!(count(gw.public).await, "-4");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gw.get("/hello").await.text(), "hi\n");
    assert!(gw.metrics().await.contains(
        r#"wasmgate_kv_operations_total{module="counter",store="counts",op="increment",result="unavailable"}"#
    ));

    // Nothing persisted: the restarted server counts from scratch.
    redis.restart();
    common::eventually_within(Duration::from_secs(5), "the store is back", async || {
        count(gw.public).await == "1"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_fails_calls_in_time_without_blocking_others() {
    // Accepts connections and reads, but never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let gw = counter_gateway(&url).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let addr = gw.public;
            tokio::spawn(async move {
                let started = Instant::now();
                (count(addr).await, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hello = Instant::now();
    assert_eq!(gw.get("/hello").await.text(), "hi\n");
    assert!(
        hello.elapsed() < Duration::from_millis(500),
        "{:?}",
        hello.elapsed()
    );
    for call in calls {
        let (answer, took) = call.await.unwrap();
        assert_eq!(answer, "-4");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[test]
fn a_password_in_the_url_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let password = "s3cret-redis-pw";
    let redis = Redis::start(dir.path(), Some(password));
    let gw = Served::start_bytes(
        &[("counter".to_string(), counter())],
        &[("RUST_LOG", "debug")],
        &on_redis(&redis.url()),
        &[],
    );
    assert_eq!(gw.get("/counter"), (200, "1\n".to_string()));
    let (_, modules) = gw.admin_get("/modules");
    let (_, metrics) = gw.admin_get("/metrics");
    let (_, status) = gw.admin_get("/status");
    let log = gw.log.lock().unwrap().clone();
    assert!(log.contains("redis://***@127.0.0.1"), "{log}");
    for (what, text) in [
        ("/modules", modules),
        ("/metrics", metrics),
        ("/status", status),
        ("log", log),
    ] {
        assert!(
            !text.contains(password),
            "{what} shows the password:\n{text}"
        );
    }

    let wrong = Redis::start(dir.path(), Some("not-the-password"));
    let gw = Served::start_bytes(
        &[("counter".to_string(), counter())],
        &[],
        &on_redis(&wrong.url().replace("not-the-password", password)),
        &[],
    );
    assert_eq!(gw.get("/counter"), (200, "-4\n".to_string()));
    let log = gw.log.lock().unwrap().clone();
    assert!(!log.contains(password), "{log}");

    // A URL without credentials takes them from the environment, so a config file (a
    // ConfigMap) need not hold the password.
    let bare = redis.url().replace(&format!(":{password}@"), "");
    let gw = Served::start_bytes(
        &[("counter".to_string(), counter())],
        &[("WASMGATE_KV_PASSWORD", password)],
        &on_redis(&bare),
        &[],
    );
    assert_eq!(gw.get("/counter"), (200, "2\n".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_read_is_bounded_on_redis_too() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let url = redis.url();
    let gw = serve(&[("big", big_batch(17))], |_| {
        kv_config(&format!("backend = {url:?}"), &[("big", &["s"])])
    })
    .await;
    let big = lines(&gw, "/big").await;
    assert!(big[1..18].iter().all(|l| l == "0"), "{big:?}");
    assert_eq!(big.last().unwrap(), "-3");
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_are_separate_key_spaces_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let url = redis.url();
    let gw = serve(&[("two", two_stores())], |_| {
        kv_config(&format!("backend = {url:?}"), &[("two", &["a", "b"])])
    })
    .await;
    assert_eq!(lines(&gw, "/two").await, crate::kv::SEPARATE_STORES);
}
