//! The per-request cost of the invoke path: one hello request through a fresh store,
//! `instantiate_pre`, `_start` and teardown, with the pooling allocator and with on-demand
//! allocation, under each set of limits; plus the pieces around it (building the CGI
//! environment, parsing the output); and one whole exchange of the CGI hello next to the
//! wasi:http hello component's, with each way of resetting a pool slot.
//!
//! `cargo bench --bench invoke`; results and their meaning are in BENCHMARKS.md.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use http_body_util::Full;
use wasmgate::testing::{
    AllocatorChoice, ConnInfo, Environment, GuestModule, GuestRuntime, RequestMeta, Stdin,
    build_env, load, parse_output, respond, run_cgi,
};
use wasmgate::{Config, Overrides};

// The same allocator as the wasmgate binary, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELLO: &str = include_str!("../tests/fixtures/hello.wat");
/// A guest that computes: a million loop iterations, then hello's output.
const LOOP: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, world\n")
  (func (export "_start") (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
/// Pool slots for the bench: plenty for one thread.
const BENCH_CONFIG: &str = "max_instances = 16\n";

/// A request like the load tests send: a handful of typical headers.
fn sample_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "localhost:8080"),
        ("user-agent", "oha/1.4.0"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, br"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

/// Where the sample request comes from and goes to.
fn sample_conn() -> ConnInfo {
    ConnInfo {
        remote: "127.0.0.1:50000".parse().unwrap(),
        local: "127.0.0.1:8080".parse().unwrap(),
        secure: false,
    }
}

/// The sample request, `GET /hello/some/path?a=1&b=2`, as the CGI side sees it.
fn sample_meta(headers: &HeaderMap) -> RequestMeta<'_> {
    let conn = sample_conn();
    RequestMeta {
        module: "hello",
        method: "GET",
        path: "/hello/some/path",
        path_info: "/some/path",
        query: "a=1&b=2",
        headers,
        remote: conn.remote,
        local: conn.local,
        secure: conn.secure,
        protocol: "HTTP/1.1",
        body_len: None,
    }
}

fn sample_env(headers: &HeaderMap) -> Environment {
    let settings = Config::from_toml("", Overrides::default())
        .unwrap()
        .module_settings("hello");
    build_env(&sample_meta(headers), &settings).unwrap()
}

/// The limits of a configuration that bounds nothing a hello could hit: no fuel metering,
/// a day's deadline, the largest memory and output.
const NO_LIMITS: &str = "[limits]\nfuel = 0\ntimeout_ms = 86400000\nmax_memory_bytes = 4294967296\n\
                         max_output_bytes = 1073741824\nmax_body_bytes = 1073741824\n";

fn load_hello(choice: AllocatorChoice) -> (Arc<GuestModule>, GuestRuntime) {
    load_module(choice, "", HELLO)
}

/// The wasi:http twin of hello (`tests/components/hello_http`).
const HELLO_COMPONENT: &[u8] = include_bytes!("../tests/fixtures/components/hello_http.wasm");

/// Hello with a 16 MiB data segment: copy-on-write images should make instantiating it
/// cost about what hello costs.
fn data_segment_module() -> String {
    let data = "x".repeat(DATA_SEGMENT_BYTES);
    HELLO.replacen(
        "(memory (export \"memory\") 1)",
        &format!("(memory (export \"memory\") 257)\n  (data (i32.const 65536) \"{data}\")"),
        1,
    )
}

const DATA_SEGMENT_BYTES: usize = 16 << 20;

/// Loads `wat_text` as module `hello`; the runtime must outlive the module's requests.
fn load_module(
    choice: AllocatorChoice,
    extra: &str,
    wat_text: &str,
) -> (Arc<GuestModule>, GuestRuntime) {
    load_binary(choice, extra, &wat::parse_str(wat_text).unwrap())
}

/// Loads `wasm` (a module or a component) as module `hello`.
fn load_binary(
    choice: AllocatorChoice,
    extra: &str,
    wasm: &[u8],
) -> (Arc<GuestModule>, GuestRuntime) {
    let config =
        Config::from_toml(&format!("{BENCH_CONFIG}{extra}"), Overrides::default()).unwrap();
    let runtime = GuestRuntime::new(&config, choice).unwrap();
    let module = load(&runtime, "hello", wasm, &config)
        .map_err(|f| f.error)
        .unwrap();
    (module, runtime)
}

fn bench_invoke(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = sample_env(&sample_headers());
    let mut group = c.benchmark_group("hello_invoke");
    for (label, choice) in [
        ("pooling", AllocatorChoice::PoolingWithFallback),
        ("on_demand", AllocatorChoice::OnDemand),
    ] {
        let (module, _runtime) = load_hello(choice);
        bench_requests(&mut group, label, &runtime, &module, &env);
    }
    group.finish();
}

/// Benches one request of `module` (which prints hello's 13 bytes) as `label`.
fn bench_requests(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    runtime: &tokio::runtime::Runtime,
    module: &GuestModule,
    env: &Environment,
) {
    group.bench_function(label, |b| {
        b.to_async(runtime).iter(|| async {
            let stdin = Stdin::Buffered(Bytes::new());
            let stdout = run_cgi(module, env.clone(), stdin).await.unwrap();
            assert_eq!(stdout.len(), 13);
        })
    });
}

/// What the safety limits cost: the default limits, fuel metering off, and no limits.
fn bench_limits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = sample_env(&sample_headers());
    let mut group = c.benchmark_group("hello_limits");
    let variants = [
        ("default_limits", ""),
        ("fuel_off", "[limits]\nfuel = 0\n"),
        ("no_limits", NO_LIMITS),
    ];
    for ((label, extra), (guest, wat_text)) in variants
        .iter()
        .flat_map(|v| [(*v, ("hello", HELLO)), (*v, ("loop_1m", LOOP))])
    {
        let (module, _runtime) = load_module(AllocatorChoice::PoolingWithFallback, extra, wat_text);
        bench_requests(
            &mut group,
            &format!("{guest}/{label}"),
            &runtime,
            &module,
            &env,
        );
    }
    group.finish();
}

/// Instantiation with a 16 MiB data segment against hello's (copy-on-write at work).
fn bench_data_segment(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = sample_env(&sample_headers());
    let mut group = c.benchmark_group("instantiate");
    let big = data_segment_module();
    for (label, wat_text) in [("hello", HELLO), ("data_16mib", big.as_str())] {
        let limits = "[limits]\nmax_memory_bytes = 33554432\n";
        let (module, _runtime) =
            load_module(AllocatorChoice::PoolingWithFallback, limits, wat_text);
        bench_requests(&mut group, label, &runtime, &module, &env);
    }
    group.finish();
}

/// One whole hello exchange, request in and response out, for each ABI: the CGI module
/// (environment, `_start`, parsing stdout) and the component (the wasi:http request, a task
/// of its own, the response head and body); each with the default slot reset
/// (`PAGEMAP_SCAN` where the kernel has it) and with `slot_reset = "memset"`.
fn bench_exchange(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let headers = sample_headers();
    let conn = sample_conn();
    let mut group = c.benchmark_group("hello_exchange");
    for (suffix, extra) in [("", ""), ("_memset_reset", "slot_reset = \"memset\"\n")] {
        let (cgi, _cgi_runtime) = load_module(AllocatorChoice::PoolingWithFallback, extra, HELLO);
        let (component, _component_runtime) =
            load_binary(AllocatorChoice::PoolingWithFallback, extra, HELLO_COMPONENT);
        for (abi, module) in [("cgi", &cgi), ("component", &component)] {
            // The request is made outside the timed part, as the listener makes it.
            let request = || {
                let mut request = http::Request::builder()
                    .uri("/hello/some/path?a=1&b=2")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                *request.headers_mut() = headers.clone();
                request
            };
            group.bench_function(format!("{abi}{suffix}"), |b| {
                b.to_async(&runtime).iter_batched(
                    request,
                    |request| async {
                        let response = respond(module.clone(), request, conn).await.unwrap();
                        assert_eq!(response.body().len(), 13);
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn bench_cgi(c: &mut Criterion) {
    let headers = sample_headers();
    c.bench_function("cgi_build_env", |b| b.iter(|| sample_env(&headers)));
    let plain = Bytes::from_static(b"hello, world\n");
    c.bench_function("cgi_parse_plain", |b| {
        b.iter(|| parse_output(plain.clone()).unwrap())
    });
    let with_headers =
        Bytes::from_static(b"Status: 201 Created\nContent-Type: application/json\nX-A: b\n\n{}");
    c.bench_function("cgi_parse_headers", |b| {
        b.iter(|| parse_output(with_headers.clone()).unwrap())
    });
}

criterion_group!(
    benches,
    bench_invoke,
    bench_limits,
    bench_data_segment,
    bench_exchange,
    bench_cgi
);
criterion_main!(benches);
