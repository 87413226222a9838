//! A `wasmgate serve` child process, for the tests that need the real binary: its log, its
//! environment, its signals, its exit status.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{fixture, raw_status};

pub const BIN: &str = env!("CARGO_BIN_EXE_wasmgate");

/// A `wasmgate serve` child process whose log is collected as it runs.
pub struct Served {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    pub public: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub fn start(modules: &[(&str, &str)], env: &[(&str, &str)]) -> Served {
        Self::start_with(modules, env, "", &[])
    }

    /// Serves modules given as WAT text, as (name, text).
    pub fn start_wat(modules: &[(&str, &str)]) -> Served {
        let compiled: Vec<(String, Vec<u8>)> = modules
            .iter()
            .map(|(name, text)| (name.to_string(), wat::parse_str(text).unwrap()))
            .collect();
        Self::start_bytes(&compiled, &[], "", &[])
    }

    /// With `config` as the config file's text and `args` added to the command line.
    pub fn start_with(
        modules: &[(&str, &str)],
        env: &[(&str, &str)],
        config: &str,
        args: &[&str],
    ) -> Served {
        let compiled: Vec<(String, Vec<u8>)> = modules
            .iter()
            .map(|(name, fx)| (name.to_string(), fixture(fx)))
            .collect();
        Self::start_bytes(&compiled, env, config, args)
    }

    /// Serves `modules` as (name, wasm bytes).
    pub fn start_bytes(
        modules: &[(String, Vec<u8>)],
        env: &[(&str, &str)],
        config: &str,
        args: &[&str],
    ) -> Served {
        Self::start_program(Path::new(BIN), modules, env, config, args)
    }

    /// Runs `program` (a copy of the wasmgate binary, say) as `start_bytes` runs wasmgate;
    /// the cache is `cache/` beside `modules/` unless `args` name a `--cache-dir`.
    pub fn start_program(
        program: &Path,
        modules: &[(String, Vec<u8>)],
        env: &[(&str, &str)],
        config: &str,
        args: &[&str],
    ) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("wasmgate.toml");
        std::fs::write(&config_file, config).unwrap();
        let modules_dir = dir.path().join("modules");
        std::fs::create_dir(&modules_dir).unwrap();
        for (name, wasm) in modules {
            std::fs::write(modules_dir.join(format!("{name}.wasm")), wasm).unwrap();
        }
        let mut command = Command::new(program);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--modules",
            ])
            .arg(&modules_dir);
        if !args.contains(&"--cache-dir") {
            command.arg("--cache-dir").arg(dir.path().join("cache"));
        }
        let mut child = command
            .arg("--config")
            .arg(&config_file)
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut served = Served {
            child,
            log,
            public: String::new(),
            admin: String::new(),
            dir,
        };
        let serving = served.wait_for_log("public_addr").expect("serving line");
        served.public = field(&serving, "public_addr")
            .or_else(|| json_field(&serving, "public_addr"))
            .expect("the public address in the serving line");
        let listening = served.wait_for_log("listening").expect("listening line");
        served.admin = field(&listening, "admin")
            .or_else(|| json_field(&listening, "admin"))
            .expect("the admin address in the listening line");
        served
    }

    pub fn wait_for_log(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(needle))
            {
                return Some(line.to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, "")
    }

    /// One request to the public listener (see [`request_to`]).
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        request_to(&self.public, method, path, body)
    }

    /// GET on the admin listener.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        request_to(&self.admin, "GET", path, "")
    }

    /// The admin listener's `/modules` entry of module `name`.
    pub fn module(&self, name: &str) -> serde_json::Value {
        let (_, body) = self.admin_get("/modules");
        let modules: serde_json::Value = serde_json::from_str(&body).expect("/modules is JSON");
        modules
            .as_array()
            .and_then(|all| all.iter().find(|m| m["name"] == name).cloned())
            .unwrap_or_default()
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// The gateway process's resident memory, from `/proc` (which these tests need).
    pub fn resident_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}"))
    }
}

/// A test that fails part-way still stops its gateway.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A field of a JSON log line's `fields`.
pub fn json_field(line: &str, name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value["fields"][name].as_str()?.to_string())
}

/// `public_addr=127.0.0.1:1234` → `127.0.0.1:1234`, from a log line.
pub fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    Some(line[start..].split_whitespace().next()?.to_string())
}

/// One request to `addr` on a connection of its own; the status is 0 when there was no
/// response (the connection was refused or closed first).
fn request_to(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let length = match body.len() {
        0 => String::new(),
        n => format!("Content-Length: {n}\r\n"),
    };
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{length}\r\n{body}"
    );
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut out);
    let status = raw_status(&out).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
