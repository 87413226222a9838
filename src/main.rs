//! The `wasmgate` command: argument parsing and start-up over the library.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use wasmgate::logging::EscapedStderr;
use wasmgate::{
    Config, Overrides, Precompiler, RunBody, RunRequest, RunResponse, RunningGateway, StoreAdmin,
    compile_worker, run_once,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serve WebAssembly functions over HTTP, CGI-style.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every NAME.wasm in the modules directory at /NAME.
    Serve {
        #[command(flatten)]
        common: CommonArgs,
        /// Public listener address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listener address (/metrics, /healthz, /readyz, /modules).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Compile every module into the cache and exit (for image builds and CI); fails if
    /// any module is invalid.
    Compile {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run one module once: the request body is read from stdin, the response body is
    /// written to stdout.
    Run {
        /// The module file.
        file: PathBuf,
        /// An environment variable for the guest (repeatable).
        #[arg(long = "env", value_name = "K=V", value_parser = parse_key_value)]
        env: Vec<(String, String)>,
        /// The path after /NAME (the guest's PATH_INFO).
        #[arg(long, default_value = "")]
        path: String,
        /// The query string, without '?'.
        #[arg(long, default_value = "")]
        query: String,
        /// The request method [default: POST when stdin is a file or a pipe, GET otherwise].
        #[arg(long)]
        method: Option<String>,
        /// Print the status line and headers before the body, like `curl -i`.
        #[arg(short, long)]
        include: bool,
        /// Config file whose [limits] and [modules.NAME] settings apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory for compiled artifacts, shared with `serve` [default: the config's
        /// cache_dir, else .wasmgate-cache].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Read, seed or clean a key-value store (the config's [kv], or the default embedded
    /// store; an embedded store is refused while a gateway holds it).
    Kv {
        /// Config file whose [kv] table names the backend.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Compile the module on stdin into the cache (what `serve` starts to compile each
    /// module in a process of its own, under the `[compile]` bounds).
    #[command(hide = true)]
    CompileWorker {
        /// The cache's directory, as a descriptor inherited from the gateway.
        #[arg(long)]
        cache_fd: i32,
        #[arg(long)]
        cache_max_bytes: u64,
        #[arg(long, action = clap::ArgAction::Set)]
        fuel_metered: bool,
    },
    /// Start a function: write NAME/, a small project in LANG with its build script and a
    /// README that says how to install the toolchain, build it and try it.
    New {
        /// The language, and for components the ABI.
        #[arg(value_enum)]
        lang: wasmgate::Language,
        /// The function's name: its module name, and the project's directory.
        name: String,
    },
    /// Publish a module to an OCI registry (the CNCF Wasm layout) and print its manifest
    /// digest. Credentials: WASMGATE_OCI_USERNAME/PASSWORD or Docker's config.json.
    Push {
        /// The module file.
        file: PathBuf,
        /// oci://HOST[:PORT]/REPOSITORY:TAG
        target: String,
        /// Config file whose max_module_bytes and oci_insecure apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Speak plain HTTP to this registry (a loopback one always may).
        #[arg(long)]
        insecure: bool,
    },
}

#[derive(Subcommand)]
enum KvOp {
    /// Print the value at KEY (exit status 1 when there is none).
    Get { store: String, key: String },
    /// Set KEY to VALUE, or to stdin when VALUE is absent.
    Set {
        store: String,
        key: String,
        value: Option<String>,
    },
    /// Delete KEY, whether or not it exists.
    Delete { store: String, key: String },
    /// Print every key, one per line.
    List { store: String },
}

impl KvOp {
    fn store(&self) -> &str {
        match self {
            KvOp::Get { store, .. }
            | KvOp::Set { store, .. }
            | KvOp::Delete { store, .. }
            | KvOp::List { store } => store,
        }
    }
}

#[derive(clap::Args)]
struct CommonArgs {
    /// Config file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of NAME.wasm modules.
    #[arg(long = "modules")]
    modules: Option<PathBuf>,
    /// Directory for compiled artifacts.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            modules_dir: self.modules.clone(),
            cache_dir: self.cache_dir.clone(),
            ..Overrides::default()
        }
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not K=V"))
}

/// Errors end the process with their chain on one line, `Error: what: why`, and never a
/// backtrace (`RUST_BACKTRACE` is for panics).
fn main() -> ExitCode {
    match start(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> Result<ExitCode> {
    // A compile worker needs no log (its stderr goes nowhere) and no async runtime.
    // `run` is a tool whose stderr is the guest's: only warnings and errors of its own.
    match cli.command {
        Command::CompileWorker { .. } => {}
        Command::Run { .. } => init_logging(cli.log_format, QUIET_LOG_FILTER),
        _ => init_logging(cli.log_format, DEFAULT_LOG_FILTER),
    }
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
    };
    match cli.command {
        Command::Serve {
            common,
            listen,
            admin_listen,
        } => {
            let overrides = Overrides {
                listen,
                admin_listen,
                ..common.overrides()
            };
            let mut config = Config::load(common.config.as_deref(), overrides)?;
            config.compile.worker_program = Some(worker_program()?);
            runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { common } => {
            let mut config = Config::load(common.config.as_deref(), common.overrides())?;
            config.compile.worker_program = Some(worker_program()?);
            compile(&config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            env,
            path,
            query,
            method,
            include,
            config,
            cache_dir,
        } => {
            let overrides = Overrides {
                cache_dir,
                ..Overrides::default()
            };
            let config = Config::load(config.as_deref(), overrides)?;
            let body = RunBody::from_stdin().context("cannot read stdin")?;
            let method = method.unwrap_or_else(|| match body {
                RunBody::Empty => "GET".into(),
                RunBody::Reader { .. } => "POST".into(),
            });
            let request = RunRequest {
                method,
                path,
                query,
                env,
                body,
            };
            let result = runtime()?.block_on(async {
                let response = run_once(&file, config, request).await?;
                let mut out = std::io::stdout().lock();
                if include {
                    write_head(&response, &mut out).map_err(wasmgate::RunError::Write)?;
                }
                response.write_body(&mut out).await
            });
            match result {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(e.exit_code()))
                }
            }
        }
        Command::Push {
            file,
            target,
            config,
            insecure,
        } => {
            let config = Config::load(config.as_deref(), Overrides::default())?;
            let digest = runtime()?
                .block_on(wasmgate::push(&config, &file, &target, insecure))
                .with_context(|| format!("cannot push to {target}"))?;
            println!("{digest}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Kv { config, op } => {
            let config = Config::load(config.as_deref(), Overrides::default())?;
            runtime()?.block_on(kv(&config, op))
        }
        Command::New { lang, name } => {
            let root = wasmgate::new_project(lang, &name, std::path::Path::new("."))?;
            println!("wrote {}/ (a {} function)", root.display(), lang.name());
            println!("next: cd {name} && ./build.sh   (the toolchain: see {name}/README.md)");
            println!("then: wasmgate run {name}.wasm --query name=Ada");
            Ok(ExitCode::SUCCESS)
        }
        Command::CompileWorker {
            cache_fd,
            cache_max_bytes,
            fuel_metered,
        } => Ok(compile_worker(cache_fd, cache_max_bytes, fuel_metered)),
    }
}

/// The program `serve` and `compile` start as compile workers: this very binary, through
/// `/proc/self/exe`, which a child resolves to the file its parent runs even after an
/// upgrade replaced it on disk (a newer binary's engine would write artifacts this gateway
/// cannot load); elsewhere, the binary's path.
fn worker_program() -> Result<PathBuf> {
    let own = PathBuf::from(OWN_EXE);
    if own.exists() {
        return Ok(own);
    }
    std::env::current_exe().context("cannot find the wasmgate binary")
}

/// What the running process's own binary is, on Linux.
const OWN_EXE: &str = "/proc/self/exe";

async fn serve(config: Config) -> Result<()> {
    let gateway = RunningGateway::start(config).await?;
    tracing::info!(public = %gateway.public_addr, admin = %gateway.admin_addr, "listening");
    wasmgate::signal()
        .await
        .context("cannot wait for signals")?;
    gateway.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// One `wasmgate kv` command: values and keys go to stdout as they are stored.
async fn kv(config: &Config, op: KvOp) -> Result<ExitCode> {
    let name = op.store().to_string();
    let store = StoreAdmin::open(config, &name)?;
    let mut out = std::io::stdout().lock();
    match op {
        KvOp::Get { key, .. } => match store.get(key.as_bytes()).await? {
            Some(value) => out.write_all(&value)?,
            None => {
                eprintln!("no key {key:?} in store '{name}'");
                return Ok(ExitCode::FAILURE);
            }
        },
        KvOp::Set { key, value, .. } => {
            let value = match value {
                Some(v) => v.into_bytes(),
                None => {
                    let mut v = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut v)
                        .context("cannot read stdin")?;
                    v
                }
            };
            store.set(key.as_bytes(), &value).await?;
        }
        KvOp::Delete { key, .. } => store.delete(key.as_bytes()).await?,
        KvOp::List { .. } => {
            for key in store.keys().await? {
                out.write_all(&key)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Compiles every module into the cache: a progress bar on a terminal, one line per module
/// otherwise. Fails if any module is invalid.
fn compile(config: &Config) -> Result<()> {
    let precompiler = Precompiler::new(config)?;
    let names = precompiler.names().to_vec();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(names.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut failed = 0;
    for name in &names {
        bar.set_message(name.clone());
        let line = match &precompiler.compile(name) {
            Ok(c) => format!("{:<8} {name} {} {:.1} ms", c.provenance, c.digest, c.millis),
            Err(e) => {
                failed += 1;
                format!("failed   {name}: {e}")
            }
        };
        bar.println(&line);
        if bar.is_hidden() {
            println!("{line}");
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{} modules, {} failed", names.len(), failed);
    if failed > 0 {
        anyhow::bail!("{failed} of {} modules failed to compile", names.len());
    }
    Ok(())
}

/// The default log filter. wasmtime-wasi wraps every WASI call in an INFO-level span
/// (`#[instrument]`'s default); under a plain `info` filter each guest `fd_write` would
/// build and tear down a span, which profiling showed as several percent of a request.
const DEFAULT_LOG_FILTER: &str = "info,wasmtime_wasi=warn,wiggle=warn";
/// `run`'s: what went wrong, and the guest's own log lines (target `wasmgate::guest`).
const QUIET_LOG_FILTER: &str = "warn,wasmgate::guest=info";

/// Logs go to stderr; `RUST_LOG` filters them (default `filter`).
fn init_logging(format: LogFormat, filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into());
    // Colors are escape sequences, which the writer escapes like any other.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(EscapedStderr)
        .with_ansi(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The status line and headers, as `curl -i` shows them.
fn write_head(response: &RunResponse, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "HTTP/1.1 {}", response.status)?;
    for (name, value) in &response.headers {
        writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
    }
    writeln!(out)?;
    out.flush()
}
