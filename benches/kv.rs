//! The per-call cost of the key-value stores on the embedded backend: `kv_get` and
//! `kv_set` of a 100-byte value, each through a request's session as a guest's call goes
//! (limits, deadline, backend), one call at a time. A set is acknowledged only once its
//! commit is on disk, so alone it costs an fsync; under load one commit carries many
//! requests' writes (`loadtest/kv.py` measures that). Two references run beside them, as
//! yardsticks measured in the same run: a no-op round trip through tokio's blocking pool
//! (where every embedded read goes), and a 100-byte write and `fdatasync` of a file in the
//! same directory (what a lone commit cannot do without).
//!
//! `cargo bench --bench kv`; results in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use wasmgate::{Config, Overrides, StoreAdmin};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The value size the issue asks about.
const VALUE_BYTES: usize = 100;

fn bench_kv(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let toml = format!("[kv]\npath = {:?}\n", dir.path().join("kv"));
    let config = Config::from_toml(&toml, Overrides::default()).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(async { StoreAdmin::open(&config, "bench") })
        .expect("the store opens");
    let value = vec![b'v'; VALUE_BYTES];
    rt.block_on(store.set(b"present", &value)).expect("seeded");

    let mut group = c.benchmark_group("kv_embedded");
    group.bench_function("kv_get 100 B", |b| {
        b.to_async(&rt).iter(|| async {
            let got = store.get(b"present").await.expect("get");
            assert_eq!(got.map(|v| v.len()), Some(VALUE_BYTES));
        })
    });
    group.bench_function("kv_get missing", |b| {
        b.to_async(&rt)
            .iter(|| async { store.get(b"absent").await.expect("get") })
    });
    group.bench_function("kv_set 100 B (fsync)", |b| {
        b.to_async(&rt)
            .iter(|| async { store.set(b"written", &value).await.expect("set") })
    });
    group.bench_function("reference: spawn_blocking round trip", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::task::spawn_blocking(|| ()).await.expect("joined") })
    });
    let mut file = std::fs::File::create(dir.path().join("reference")).expect("a file");
    group.bench_function("reference: write 100 B + fdatasync", |b| {
        b.iter(|| {
            use std::io::{Seek, Write};
            file.rewind().expect("rewind");
            file.write_all(&value).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

criterion_group!(benches, bench_kv);
criterion_main!(benches);
