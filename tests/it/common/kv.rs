//! For the key-value tests: CGI modules that call the `wasmgate` host functions, written
//! as a [`Script`] of calls whose results the module prints one a line, and a real
//! `redis-server` on a port of its own, and gateways that serve them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestGateway;

/// Where a script's i64 results (`kv_increment`'s value, `kv_list`'s next cursor) go.
pub const RESULT: u32 = 56;
/// Where a script's buffer (`kv_get`'s value, `kv_list`'s keys) is.
pub const BUF: u32 = 32 * 1024;
/// The first byte of a script's data; below it, the printing scratch and [`RESULT`].
const DATA: u32 = 1024;

/// A CGI module's `_start` as a list of calls, each printed as it returns.
pub struct Script {
    data: Vec<(u32, Vec<u8>)>,
    next: u32,
    body: String,
    pages: u32,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            data: Vec::new(),
            next: DATA,
            body: String::new(),
            pages: 1,
        }
    }
}

impl Script {
    /// A script whose module has `pages` of 64 KiB of memory (one by default).
    pub fn with_pages(pages: u32) -> Script {
        Script {
            pages,
            ..Script::default()
        }
    }

    /// `bytes` placed in the module's memory, as the `(i32.const PTR) (i32.const LEN)` of
    /// a call's argument.
    pub fn span(&mut self, bytes: &[u8]) -> String {
        let ptr = self.next;
        self.data.push((ptr, bytes.to_vec()));
        self.next += bytes.len() as u32 + 8;
        format!("(i32.const {ptr}) (i32.const {})", bytes.len())
    }

    /// Opens store `name` as `$h`, and prints the handle.
    pub fn open(&mut self, name: &str) -> &mut Self {
        let name = self.span(name.as_bytes());
        self.line(&format!(
            "(local.set $h (call $open {name})) (call $p32 (local.get $h))"
        ))
    }

    /// Prints the i32 `expr` returns.
    pub fn p32(&mut self, expr: &str) -> &mut Self {
        self.line(&format!("(call $p32 {expr})"))
    }

    /// Prints the i64 `expr` returns.
    pub fn p64(&mut self, expr: &str) -> &mut Self {
        self.line(&format!("(call $print {expr})"))
    }

    /// Prints the i64 at [`RESULT`].
    pub fn result(&mut self) -> &mut Self {
        self.p64(&format!("(i64.load (i32.const {RESULT}))"))
    }

    /// Prints `len` bytes of [`BUF`] and a newline.
    pub fn buf(&mut self, len: u32) -> &mut Self {
        self.line(&format!("(call $out (i32.const {BUF}) (i32.const {len}))"))
    }

    /// Any WAT instruction of `_start`.
    pub fn line(&mut self, wat: &str) -> &mut Self {
        self.body.push_str(wat);
        self.body.push('\n');
        self
    }

    /// The module.
    pub fn wasm(&self) -> Vec<u8> {
        let data: String = self
            .data
            .iter()
            .map(|(ptr, bytes)| format!("(data (i32.const {ptr}) \"{}\")\n", escaped(bytes)))
            .collect();
        let text = format!(
            r#"(module
  (import "wasmgate" "kv_open" (func $open (param i32 i32) (result i32)))
  (import "wasmgate" "kv_get" (func $get (param i32 i32 i32 i32 i32) (result i64)))
  (import "wasmgate" "kv_set" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmgate" "kv_delete" (func $delete (param i32 i32 i32) (result i32)))
  (import "wasmgate" "kv_increment" (func $increment (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasmgate" "kv_list" (func $list (param i32 i64 i32 i32 i32) (result i32)))
  (import "wasmgate" "kv_get_many" (func $get_many (param i32 i32 i32 i32 i32) (result i64)))
  (import "wasmgate" "kv_set_many" (func $set_many (param i32 i32 i32) (result i32)))
  (import "wasmgate" "kv_delete_many" (func $delete_many (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store8 (i32.const 8) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 8))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12))))
  (func $print (param $v i64)
    (local $p i32) (local $neg i32) (local $u i64)
    (local.set $p (i32.const 48))
    (local.set $neg (i64.lt_s (local.get $v) (i64.const 0)))
    (local.set $u (select (i64.sub (i64.const 0) (local.get $v)) (local.get $v) (local.get $neg)))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $u) (i64.const 10)))))
      (local.set $u (i64.div_u (local.get $u) (i64.const 10)))
      (br_if $d (i64.ne (local.get $u) (i64.const 0))))
    (if (local.get $neg) (then
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.const 45))))
    (call $out (local.get $p) (i32.sub (i32.const 48) (local.get $p))))
  (func $p32 (param $v i32) (call $print (i64.extend_i32_s (local.get $v))))
  {data}
  (func (export "_start") (local $h i32)
    {body}))"#,
            body = self.body,
            pages = self.pages,
        );
        wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

/// `bytes` as a WAT string's contents.
fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Strings as the list and batch calls pass them: each a `u32` LE length and its bytes.
pub fn prefixed(strings: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// A module that sets `k` in store `a`, then reads `k` from store `b`, lists `b`'s keys
/// and reads `k` from `a` again, printing `0 1 -1 0 0 2 v1` (set, b's handle, the miss in
/// `b`, `b`'s key count, a's handle, the value's length and the value) when stores are
/// separate key spaces.
pub fn two_stores() -> Vec<u8> {
    let mut s = Script::default();
    let (a, b, k, v) = (s.span(b"a"), s.span(b"b"), s.span(b"k"), s.span(b"v1"));
    s.line(&format!("(local.set $h (call $open {a}))"))
        .p32(&format!("(call $set (local.get $h) {k} {v})"))
        .line(&format!("(call $p32 (call $open {b}))"))
        .p64(&format!("(call $get (i32.const 1) {k} (i32.const {BUF}) (i32.const 8))"))
        .p32(&format!("(call $list (i32.const 1) (i64.const 0) (i32.const {BUF}) (i32.const 64) (i32.const {RESULT}))"))
        .p32("(local.get $h)")
        .p64(&format!("(call $get (local.get $h) {k} (i32.const {BUF}) (i32.const 8))"))
        .buf(2);
    s.wasm()
}

/// A module that sets `count` values of 1 MiB (keys `0`, `1`, ...) in store `s`, then
/// asks for all of them in one `kv_get_many`, and prints each result.
pub fn big_batch(count: u32) -> Vec<u8> {
    const MIB: u32 = 1024 * 1024;
    let mut s = Script::with_pages(2 * MIB / 65536 + 1);
    let keys: Vec<Vec<u8>> = (0..count).map(|i| i.to_string().into_bytes()).collect();
    let spans: Vec<String> = keys.iter().map(|k| s.span(k)).collect();
    let all = s.span(&prefixed(
        &keys.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    ));
    s.open("s");
    for key in &spans {
        s.p32(&format!(
            "(call $set (local.get $h) {key} (i32.const {MIB}) (i32.const {MIB}))"
        ));
    }
    s.p64(&format!(
        "(call $get_many (local.get $h) {all} (i32.const {BUF}) (i32.const 16))"
    ));
    s.wasm()
}

/// The counter module: increments `hits` of store `counts` and prints the new value (or
/// the error code).
pub fn counter() -> Vec<u8> {
    let mut s = Script::default();
    let name = s.span(b"counts");
    let key = s.span(b"hits");
    s.line(&format!("(local.set $h (call $open {name}))"))
        .line(
            "(if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $p32 (local.get $h)) (return)))",
        )
        .line(&format!(
            "(if (i32.lt_s (local.tee $h (call $increment (local.get $h) {key} (i64.const 1) (i32.const {RESULT}))) (i32.const 0)) (then (call $p32 (local.get $h)) (return)))"
        ))
        .result();
    s.wasm()
}

/// The `[kv]` table and a `kv_stores` line for each module, for a config file.
pub fn kv_config(kv: &str, modules: &[(&str, &[&str])]) -> String {
    let mut config = format!("[kv]\n{kv}\n");
    for (module, stores) in modules {
        config.push_str(&format!("[modules.{module}]\nkv_stores = {stores:?}\n"));
    }
    config
}

/// Serves `modules` (name, wasm) with `config` appended to the test gateway's.
pub async fn serve(
    modules: &[(&str, Vec<u8>)],
    config: impl FnOnce(&str) -> String,
) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let modules_dir = dir.path().join("modules");
    std::fs::create_dir(&modules_dir).unwrap();
    for (name, wasm) in modules {
        std::fs::write(modules_dir.join(format!("{name}.wasm")), wasm).unwrap();
    }
    let store = dir.path().join("kv");
    let extra = config(&format!("path = {:?}", store.to_str().unwrap()));
    TestGateway::start_in(dir, &extra).await
}

/// The body's lines.
pub async fn lines(gw: &TestGateway, path: &str) -> Vec<String> {
    let reply = gw.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.text().lines().map(str::to_string).collect()
}

/// Debian's `redis-server` (`./test.sh` installs it).
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A `redis-server` on a loopback port of its own, persisting nothing; stopped on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
    dir: PathBuf,
}

impl Redis {
    pub fn start(dir: &Path, password: Option<&str>) -> Redis {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: apt-get install redis-server (./test.sh does)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut redis = Redis {
            child: None,
            port,
            password: password.map(str::to_string),
            dir: dir.to_path_buf(),
        };
        redis.restart();
        redis
    }

    /// The URL a gateway's `[kv] backend` names.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server again on the same port, and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            command.args(["--requirepass", p]);
        }
        self.child = Some(command.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
