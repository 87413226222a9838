//! Compiles a module in a worker process, so that no module's compile can take the
//! gateway's memory, crash it, or hold up another module's reload.
//!
//! What Cranelift needs grows with a function's shape, not with the file: a 61 KB module
//! of one function with tens of thousands of locals took 18 s and 2.4 GiB to compile, a
//! 101 KB one had the whole gateway OOM-killed at 3 GiB (issue 29; BENCHMARKS.md, "Compile
//! bombs"). So a module that the artifact cache does not hold is compiled by
//! `wasmgate compile-worker` (the gateway's own binary): it reads the module from stdin,
//! compiles it with an engine configured as the gateway's, and writes the artifact into
//! the cache, sealed like any other. The worker inherits the cache's directory handle
//! (never its path, which could name another directory by then). The gateway then loads it from the cache, checked as
//! every cached artifact is, so nothing the worker hands back is trusted more than the
//! cache already is.
//!
//! A worker runs under the `[compile]` bounds: `RLIMIT_DATA` for its memory, `RLIMIT_CPU`
//! for its CPU time, a wall-clock timeout after which it is killed; at the lowest
//! scheduling priority, first in line for the OOM killer, and killed with the gateway. A
//! module past a bound is `failed` with the bound named, and the version serving stays.
//! At most `compile.workers` run at once; reloads of other modules go on beside them.

use std::io::{Read, Seek, Write};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit, Signal};

use super::failure::LoadError;
use super::private_dir::PrivateDir;
use crate::config::{CompileSettings, Config};

/// The subcommand a worker is started with.
pub const WORKER_COMMAND: &str = "compile-worker";
/// A worker's exit status when the module does not compile; the reason is on its stdout.
pub const EXIT_COMPILE_ERROR: i32 = 2;
/// How often a running worker is looked at.
const POLL: Duration = Duration::from_millis(5);
/// The worker's niceness: the lowest priority, below the reload threads'.
const WORKER_NICENESS: i32 = 19;
/// First in line when the OOM killer must choose.
const OOM_SCORE_ADJ: &[u8] = b"1000";
/// Characters of a worker's error line that are kept.
const MAX_ERROR_CHARS: usize = 2000;

/// Starts compile workers for one gateway, at most `compile.workers` at a time.
pub(crate) struct CompileWorkers {
    program: PathBuf,
    settings: CompileSettings,
    cache_max_bytes: u64,
    fuel_metered: bool,
    running: Mutex<usize>,
    finished: Condvar,
}

impl CompileWorkers {
    /// Workers for `config`, when it names a worker program.
    pub(crate) fn for_config(config: &Config) -> Option<CompileWorkers> {
        Some(CompileWorkers {
            program: config.compile.worker_program.clone()?,
            settings: config.compile.clone(),
            cache_max_bytes: config.cache_max_bytes,
            fuel_metered: config.fuel_metered(),
            running: Mutex::new(0),
            finished: Condvar::new(),
        })
    }

    /// Compiles `bytes` in a worker, which leaves the artifact in `cache`. Blocking.
    pub(crate) fn compile(&self, bytes: &[u8], cache: &PrivateDir) -> Result<(), LoadError> {
        let _turn = self.take_turn();
        let started = Instant::now();
        let mut child = self
            .spawn(bytes, cache.raw_fd())
            .map_err(|e| LoadError::Compile(format!("cannot start a compile worker: {e}")))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < self.settings.timeout => std::thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.past(Bound::Time));
                }
            }
        };
        self.judge(status, &mut child)
    }

    /// Waits until fewer than `compile.workers` workers run; the guard ends the turn.
    fn take_turn(&self) -> Turn<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.settings.workers {
            running = self
                .finished
                .wait(running)
                .unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Turn(self)
    }

    fn spawn(&self, bytes: &[u8], cache_fd: RawFd) -> std::io::Result<Child> {
        let mut command = Command::new(&self.program);
        command
            .arg(WORKER_COMMAND)
            .arg("--cache-fd")
            .arg(cache_fd.to_string())
            .arg("--cache-max-bytes")
            .arg(self.cache_max_bytes.to_string())
            .arg("--fuel-metered")
            .arg(self.fuel_metered.to_string())
            .stdin(module_input(bytes)?)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let limits = Limits {
            memory: self.settings.max_memory_bytes,
            cpu_seconds: self.settings.cpu.as_secs().max(1),
            inherited: cache_fd,
        };
        // SAFETY: `limits.apply` makes only system calls, with no allocation or lock, as
        // code between fork and exec must.
        unsafe { command.pre_exec(move || limits.apply()) };
        command.spawn()
    }

    /// Names how a worker that ended with `status` did.
    fn judge(&self, status: ExitStatus, child: &mut Child) -> Result<(), LoadError> {
        if status.success() {
            return Ok(());
        }
        if status.code() == Some(EXIT_COMPILE_ERROR) {
            let mut reason = String::new();
            if let Some(out) = child.stdout.as_mut() {
                let _ = out.take(MAX_ERROR_CHARS as u64).read_to_string(&mut reason);
            }
            return Err(LoadError::Compile(reason.trim().to_string()));
        }
        match status.signal() {
            // Past the soft CPU limit.
            Some(s) if s == Signal::XCPU.as_raw() => Err(self.past(Bound::Cpu)),
            // Past the hard one (a second later), or chosen by the OOM killer.
            Some(s) if s == Signal::KILL.as_raw() => Err(self.past(Bound::CpuOrKernel)),
            // An allocation refused by RLIMIT_DATA aborts the worker.
            Some(s) if s == Signal::ABORT.as_raw() => Err(self.past(Bound::Memory)),
            _ => Err(LoadError::Compile(format!(
                "the compile worker ended unexpectedly ({status})"
            ))),
        }
    }

    fn past(&self, bound: Bound) -> LoadError {
        let s = &self.settings;
        LoadError::CompileBound(match bound {
            Bound::Time => format!(
                "compiling took longer than compile.timeout_ms ({} ms)",
                s.timeout.as_millis()
            ),
            Bound::Cpu => format!(
                "compiling used more CPU time than compile.cpu_ms ({} ms)",
                s.cpu.as_millis()
            ),
            Bound::CpuOrKernel => format!(
                "the compile worker was killed: past compile.cpu_ms ({} ms), or by the \
                 kernel's OOM killer",
                s.cpu.as_millis()
            ),
            Bound::Memory => format!(
                "compiling needed more memory than compile.max_memory_bytes ({} bytes)",
                s.max_memory_bytes
            ),
        })
    }
}

/// Which bound a worker went past.
enum Bound {
    Time,
    Cpu,
    /// Killed outright: past the hard CPU limit, or by the OOM killer.
    CpuOrKernel,
    Memory,
}

/// One worker's turn; ending it lets the next one start.
struct Turn<'a>(&'a CompileWorkers);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.finished.notify_one();
    }
}

/// The module's bytes as a worker's stdin: an anonymous in-memory file, read from its
/// start, so that a large module never blocks on a pipe.
fn module_input(bytes: &[u8]) -> std::io::Result<Stdio> {
    let fd = rustix::fs::memfd_create("wasmgate-module", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(Stdio::from(file))
}

/// The bounds a worker sets on itself between fork and exec, and the one descriptor it
/// keeps.
#[derive(Clone, Copy)]
struct Limits {
    memory: u64,
    cpu_seconds: u64,
    /// The cache directory's handle, which the gateway holds open while the worker runs.
    inherited: RawFd,
}

impl Limits {
    fn apply(self) -> std::io::Result<()> {
        // SAFETY: the cache that owns the descriptor outlives `spawn`, so it is open here;
        // clearing close-on-exec here changes only the child's copy of the descriptor table.
        let inherited = unsafe { BorrowedFd::borrow_raw(self.inherited) };
        rustix::io::fcntl_setfd(inherited, rustix::io::FdFlags::empty())?;
        let limit = |n: u64| Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        rustix::process::setrlimit(Resource::Data, limit(self.memory))?;
        rustix::process::setrlimit(
            Resource::Cpu,
            Rlimit {
                current: Some(self.cpu_seconds),
                maximum: Some(self.cpu_seconds + 1),
            },
        )?;
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
        // Best effort: a worker that keeps its priority or its OOM score still has its bounds.
        let _ = rustix::process::setpriority_process(None, WORKER_NICENESS);
        if let Ok(fd) = rustix::fs::open(
            c"/proc/self/oom_score_adj",
            rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::empty(),
        ) {
            let _ = rustix::io::write(&fd, OOM_SCORE_ADJ);
        }
        Ok(())
    }
}
