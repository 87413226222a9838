//! Runs one random preview1 call (`preview1_cases.rs`) both ways — linked against the
//! gateway's own functions and against wasmtime-wasi — and says how the two differ, for the
//! property test and the fuzz target alike.

use bytes::Bytes;
use wasmgate::testing::{AllocatorChoice, Environment, GuestError, GuestRuntime, Stdin, run_cgi};
use wasmgate::{Config, Overrides};

use crate::preview1_cases::{Case, masked_stdout};

/// An import the gateway leaves to wasmtime-wasi: adding it switches the implementation.
const POLL_IMPORT: &str = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))"#;

/// How a run ended, as the comparison sees it.
#[derive(PartialEq, Eq)]
enum Ending {
    Stdout(Vec<u8>),
    Exit(i32),
    Failed(String),
}

impl Ending {
    fn of(result: &Result<Bytes, GuestError>, case: &Case) -> Ending {
        match result {
            Ok(stdout) => Ending::Stdout(masked_stdout(stdout, &case.masked)),
            Err(GuestError::Exit { code, .. }) => Ending::Exit(*code),
            Err(e) => Ending::Failed(format!("{:?}", e.outcome())),
        }
    }

    /// The two endings side by side: for two stdouts, where they first differ.
    fn against(&self, other: &Ending) -> (String, String) {
        match (self, other) {
            (Ending::Stdout(a), Ending::Stdout(b)) => {
                let at = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let near = |v: &[u8]| {
                    format!(
                        "{} bytes, from byte {at}: {:?}",
                        v.len(),
                        &v[at.min(v.len())..(at + 12).min(v.len())]
                    )
                };
                (near(a), near(b))
            }
            _ => (self.shown(), other.shown()),
        }
    }

    fn shown(&self) -> String {
        match self {
            Ending::Stdout(out) => format!("ok, {} bytes", out.len()),
            Ending::Exit(code) => format!("exit {code}"),
            Ending::Failed(outcome) => outcome.clone(),
        }
    }
}

pub struct Both {
    runtime: GuestRuntime,
    config: Config,
}

impl Both {
    pub fn new() -> Both {
        let config = Config::from_toml(
            "max_instances = 4\n[limits]\nmax_memory_bytes = 1048576\ntimeout_ms = 5000\n",
            Overrides::default(),
        )
        .unwrap();
        let runtime = GuestRuntime::new(&config, AllocatorChoice::OnDemand).unwrap();
        Both { runtime, config }
    }

    /// Runs `case` both ways; `Some` describes how they differ.
    pub async fn differ(&self, case: &Case) -> Option<String> {
        let wasm =
            |text: &str| wat::parse_str(text).unwrap_or_else(|e| panic!("{}: {e}", case.call));
        let own_wasm = wasm(&case.wat);
        let wasi_wasm = wasm(&case.wat.replacen(
            "(memory",
            &format!("{POLL_IMPORT}\n  (memory"),
            1,
        ));
        let mut endings = Vec::new();
        for bytes in [own_wasm, wasi_wasm] {
            let module =
                wasmgate::testing::load(&self.runtime, case.function, &bytes, &self.config)
                    .map_err(|f| f.error)
                    .unwrap();
            let stdin = Stdin::Buffered(Bytes::from(case.stdin.clone()));
            endings.push(Ending::of(
                &run_cgi(&module, Environment::default(), stdin).await,
                case,
            ));
        }
        (endings[0] != endings[1]).then(|| {
            let (own, wasi) = endings[0].against(&endings[1]);
            format!(
                "{} (stdin {} bytes):\n  gateway:       {own}\n  wasmtime-wasi: {wasi}",
                case.call,
                case.stdin.len(),
            )
        })
    }
}
