//! Runs one request's guest: a fresh instance from the module's `InstancePre`, with its own
//! store, fuel, deadline, memory limit, stdin and bounded stdout, dropped afterwards.
//!
//! Guests run as async calls on the tokio runtime, not on a separate thread pool. The
//! store's epoch deadline makes a guest yield back to the scheduler every
//! [`EPOCH_TICK`](crate::engine::EPOCH_TICK), so a spinning guest shares its worker with
//! other requests instead of stalling them, and a guest sleeping in `poll_oneoff` is just
//! a parked future (forty of them cost forty futures, not forty threads). The wall-clock
//! deadline is checked at those same ticks, which stops guest code; for modules on
//! wasmtime-wasi, whose host calls can wait, a `tokio::time::timeout` around the whole call
//! covers the host calls too, and dropping the call's future tears the instance down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::cgi::Environment;
use crate::compile::LoadedModule;
use crate::host::{GuestLimiter, Host};
use crate::outcome::Outcome;
use crate::preview1::{GuestAbi, RequestIo};
use crate::stdio::{BoundedOutput, GuestLog, GuestStream};

/// What a guest that finished produced.
#[derive(Debug)]
pub struct GuestRun {
    pub stdout: Bytes,
    pub fuel_consumed: u64,
}

/// Why a guest did not finish well. Messages name the module and the reason.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("module '{module}' trapped: {reason}")]
    Trap { module: Arc<str>, reason: String },
    #[error("module '{module}' exited with status {code}")]
    Exit { module: Arc<str>, code: i32 },
    #[error("module '{module}' ran out of its fuel budget ({fuel} units)")]
    FuelExhausted { module: Arc<str>, fuel: u64 },
    #[error("module '{module}' went past its memory limit of {limit} bytes")]
    MemoryExceeded { module: Arc<str>, limit: u64 },
    #[error("module '{module}' wrote more than its output limit of {limit} bytes")]
    OutputTooLarge { module: Arc<str>, limit: u64 },
    #[error("module '{module}' did not finish within its deadline of {ms} ms")]
    Timeout { module: Arc<str>, ms: u64 },
    #[error("module '{module}' could not be instantiated: {reason}")]
    Instantiate { module: Arc<str>, reason: String },
}

impl InvokeError {
    pub fn outcome(&self) -> Outcome {
        match self {
            InvokeError::Trap { .. } => Outcome::Trap,
            InvokeError::Exit { .. } => Outcome::ExitError,
            InvokeError::FuelExhausted { .. } => Outcome::FuelExhausted,
            InvokeError::MemoryExceeded { .. } => Outcome::MemoryExceeded,
            InvokeError::OutputTooLarge { .. } => Outcome::OutputTooLarge,
            InvokeError::Timeout { .. } => Outcome::Timeout,
            InvokeError::Instantiate { .. } => Outcome::Unavailable,
        }
    }
}

/// Runs `module` once with environment `env` and `stdin` as its standard input.
pub async fn invoke(
    module: &LoadedModule,
    env: Environment,
    stdin: Bytes,
) -> Result<GuestRun, InvokeError> {
    let limits = module.settings.limits;
    let stdout = BoundedOutput::new(limits.max_output_bytes as usize);
    let (io, wasi) = match module.abi {
        GuestAbi::Cgi => (Some(cgi_io(module, env, stdin, &stdout)), None),
        GuestAbi::Wasi => (None, Some(wasi_ctx(module, &env, stdin, &stdout)?)),
    };
    let host = Host {
        io,
        wasi,
        limits: GuestLimiter::new(limits.max_memory_bytes as usize),
        module: module.name.clone(),
    };
    let mut store = Store::new(module.pre.module().engine(), host);
    store.limiter(|h| &mut h.limits);
    let fuel = if limits.fuel == 0 {
        u64::MAX
    } else {
        limits.fuel
    };
    // Fuel metering is on in the engine, so a store always has a budget; setting it only
    // fails when metering is off, which the engine never is.
    let _ = store.set_fuel(fuel);
    let deadline = Duration::from_millis(limits.timeout_ms);
    // The guest's epoch checks enforce the deadline on guest code. Every host function a
    // CGI module can call returns at once, so that is enough there; wasmtime-wasi's host
    // calls can wait (poll_oneoff, files), so a timer covers those too.
    deadline_by_epoch(&mut store, Instant::now() + deadline);
    let result = match module.abi {
        GuestAbi::Cgi => Ok(run_start(&mut store, module).await),
        GuestAbi::Wasi => tokio::time::timeout(deadline, run_start(&mut store, module)).await,
    };
    // `get_fuel` fails only when the engine does not meter fuel at all.
    let fuel_consumed = store.get_fuel().map_or(0, |left| fuel.saturating_sub(left));
    if limits.fuel != 0 {
        module.metrics.fuel_consumed(fuel_consumed);
    }
    let failed = |error| classify(module, &store, &stdout, error);
    match result {
        Err(_elapsed) => Err(timed_out(module)),
        Ok(Err(Failure::Instantiate(e))) => Err(instantiate_error(module, &store, e)),
        Ok(Err(Failure::Run(e))) => match failed(e) {
            Ok(()) => Ok(GuestRun {
                stdout: stdout.take(),
                fuel_consumed,
            }),
            Err(e) => Err(e),
        },
        Ok(Ok(())) => Ok(GuestRun {
            stdout: stdout.take(),
            fuel_consumed,
        }),
    }
}

/// The request as the gateway's own preview1 functions serve it.
fn cgi_io(
    module: &LoadedModule,
    env: Environment,
    stdin: Bytes,
    stdout: &BoundedOutput,
) -> RequestIo {
    RequestIo::new(
        module.args.clone(),
        env.into_block(),
        stdin,
        stdout.clone(),
        module.name.clone(),
    )
}

/// The request as a wasmtime-wasi context, with the module's volumes opened read-only.
fn wasi_ctx(
    module: &LoadedModule,
    env: &Environment,
    stdin: Bytes,
    stdout: &BoundedOutput,
) -> Result<WasiP1Ctx, InvokeError> {
    let mut wasi = WasiCtxBuilder::new();
    for (key, value) in env.iter() {
        wasi.env(key, value);
    }
    for arg in module.args.strings() {
        wasi.arg(arg);
    }
    wasi.stdin(MemoryInputPipe::new(stdin))
        .stdout(GuestStream(stdout.clone()))
        .stderr(GuestStream(GuestLog::new(module.name.clone())));
    for (guest, host) in &module.settings.volumes {
        if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadOnly) {
            tracing::warn!(module = %module.name, volume = %guest, error = %e, "cannot open a volume");
            return Err(InvokeError::Instantiate {
                module: module.name.clone(),
                reason: format!("volume {guest} cannot be opened"),
            });
        }
    }
    Ok(wasi.build_p1())
}

/// The error a guest is stopped with when its deadline passes at an epoch tick.
#[derive(Debug, thiserror::Error)]
#[error("the deadline passed")]
struct DeadlinePassed;

/// At every epoch tick, stops the guest if `deadline` has passed, and otherwise yields to
/// the runtime so the guest shares its worker with other requests.
fn deadline_by_epoch(store: &mut Store<Host>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            return Err(DeadlinePassed.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
}

fn timed_out(module: &LoadedModule) -> InvokeError {
    InvokeError::Timeout {
        module: module.name.clone(),
        ms: module.settings.limits.timeout_ms,
    }
}

enum Failure {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

async fn run_start(store: &mut Store<Host>, module: &LoadedModule) -> Result<(), Failure> {
    let started = Instant::now();
    let instance = module
        .pre
        .instantiate_async(&mut *store)
        .await
        .map_err(Failure::Instantiate)?;
    module.metrics.instantiated(started.elapsed());
    let start = instance
        .get_module_export(&mut *store, &module.start)
        .and_then(|e| e.into_func())
        .ok_or_else(|| Failure::Instantiate(wasmtime::format_err!("`_start` is not a function")))?;
    start
        .call_async(&mut *store, &[], &mut [])
        .await
        .map_err(Failure::Run)
}

fn instantiate_error(
    module: &LoadedModule,
    store: &Store<Host>,
    error: wasmtime::Error,
) -> InvokeError {
    if error.is::<DeadlinePassed>() {
        return timed_out(module);
    }
    if store.data().limits.memory_exceeded {
        return InvokeError::MemoryExceeded {
            module: module.name.clone(),
            limit: module.settings.limits.max_memory_bytes,
        };
    }
    tracing::warn!(module = %module.name, error = ?error, "instantiation failed");
    InvokeError::Instantiate {
        module: module.name.clone(),
        reason: error.root_cause().to_string(),
    }
}

/// Names what stopped a guest. `Ok(())` for a `proc_exit(0)`, which is a clean finish.
fn classify(
    module: &LoadedModule,
    store: &Store<Host>,
    stdout: &BoundedOutput,
    error: wasmtime::Error,
) -> Result<(), InvokeError> {
    let name = module.name.clone();
    let limits = module.settings.limits;
    if error.is::<DeadlinePassed>() {
        return Err(timed_out(module));
    }
    if stdout.overflowed() {
        return Err(InvokeError::OutputTooLarge {
            module: name,
            limit: limits.max_output_bytes,
        });
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => Ok(()),
            code => Err(InvokeError::Exit { module: name, code }),
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        return Err(InvokeError::FuelExhausted {
            module: name,
            fuel: limits.fuel,
        });
    }
    if store.data().limits.memory_exceeded {
        return Err(InvokeError::MemoryExceeded {
            module: name,
            limit: limits.max_memory_bytes,
        });
    }
    tracing::debug!(module = %name, error = ?error, "guest trapped");
    let reason = match trap {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    Err(InvokeError::Trap {
        module: name,
        reason,
    })
}
