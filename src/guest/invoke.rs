//! Runs one request's guest: a fresh instance from the module's `InstancePre`, with its own
//! store, fuel, deadline, memory limit, stdin and bounded stdout, dropped afterwards.
//!
//! Guests run as async calls on the tokio runtime, not on a separate thread pool. The
//! store's epoch deadline ([`deadline`](super::deadline)) makes a guest yield back to the
//! scheduler every tick, so a spinning guest shares its worker with other requests instead
//! of stalling them, and a guest sleeping in `poll_oneoff` is just a parked future (forty
//! of them cost forty futures, not forty threads). The wall-clock deadline is checked at
//! those same ticks, which stops guest code; for modules on wasmtime-wasi, whose host calls
//! can wait, a timer around the whole call covers the host calls too, and dropping the
//! call's future tears the instance down. The deadline is known here, so the timeout's
//! overshoot is recorded here too.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::{Engine, InstancePre, ModuleExport, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::cgi::env::Environment;
use super::cgi::preview1::{RequestIo, RequestIoParts};
use super::cgi::stdin::Stdin;
use super::cgi::stdio::{BoundedOutput, GuestLog, GuestStream};
use super::deadline::{DeadlinePassed, deadline_by_epoch};
use super::linkers::Prepared;
use super::store::{GuestLimiter, StoreState};
use crate::catalogue::ServedModule;
use crate::config::Limits;
use crate::outcome::Outcome;

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
    Timeout { module: Arc<str>, ms: u128 },
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

/// Runs `module` once with environment `env` and `stdin` as its standard input; returns
/// what it wrote to stdout.
pub async fn invoke(
    module: &ServedModule,
    env: Environment,
    stdin: Stdin,
) -> Result<Bytes, InvokeError> {
    let limits = module.settings.limits;
    let started = Instant::now();
    let run = Run {
        module,
        limits,
        deadline: started + limits.timeout,
        stdout: BoundedOutput::new(limits.max_output_bytes as usize),
    };
    let result = match &module.compiled.prepared {
        Prepared::Gateway { pre, start } => {
            let io = RequestIo::new(RequestIoParts {
                args: module.args.clone(),
                env: env.into_block(),
                stdin,
                deadline: run.deadline,
                stdout: run.stdout.clone(),
                module: module.name.clone(),
            });
            // Every host function here returns at once or bounds its own wait by the
            // deadline, so the epoch checks are all the deadline needs.
            run.call(pre, start, io, HostWaits::Bounded).await
        }
        Prepared::WasmtimeWasi { pre, start } => {
            let ctx = run.wasi_ctx(&env, stdin)?;
            // wasmtime-wasi's host calls can wait (poll_oneoff, files): a timer covers them.
            run.call(pre, start, ctx, HostWaits::Unbounded).await
        }
    };
    if let Err(InvokeError::Timeout { .. }) = &result {
        module
            .metrics()
            .timeout_overshoot(started.elapsed().saturating_sub(limits.timeout));
    }
    result.map(|()| run.stdout.take())
}

/// One invocation's fixed parts.
struct Run<'m> {
    module: &'m ServedModule,
    limits: Limits,
    deadline: Instant,
    stdout: BoundedOutput,
}

/// Whether the host functions a guest calls bound their own waits by the deadline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostWaits {
    Bounded,
    /// A timer around the whole call stops them at the deadline.
    Unbounded,
}

/// How a call failed, before it is named.
enum Failure {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

impl Run<'_> {
    /// Instantiates `pre` in a fresh store holding `io`, calls `start`, and names how it
    /// ended.
    async fn call<Io: Send + 'static>(
        &self,
        pre: &InstancePre<StoreState<Io>>,
        start: &ModuleExport,
        io: Io,
        waits: HostWaits,
    ) -> Result<(), InvokeError> {
        let mut store = self.store(pre.module().engine(), io);
        let budget = store.get_fuel().unwrap_or(0);
        let call = self.run_start(&mut store, pre, start);
        let result = match waits {
            HostWaits::Bounded => call.await,
            HostWaits::Unbounded => tokio::time::timeout_at(self.deadline.into(), call)
                .await
                .unwrap_or_else(|_elapsed| Err(Failure::Run(DeadlinePassed.into()))),
        };
        self.record_fuel(&store, budget);
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Instantiate(e)) => Err(self.instantiate_error(&store, e)),
            Err(Failure::Run(e)) => self.classify(&store, e),
        }
    }

    /// A store for one request: fuel, the memory limiter and the deadline set.
    fn store<Io>(&self, engine: &Engine, io: Io) -> Store<StoreState<Io>> {
        let state = StoreState {
            io,
            limiter: GuestLimiter::new(self.limits.max_memory_bytes as usize),
            module: self.module.name.clone(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        let fuel = match self.limits.fuel {
            0 => u64::MAX,
            fuel => fuel,
        };
        // Fuel metering is on in the engine whenever any module is metered; setting it
        // only fails when metering is off, and then there is nothing to set.
        let _ = store.set_fuel(fuel);
        deadline_by_epoch(&mut store, self.deadline);
        store
    }

    async fn run_start<Io: Send + 'static>(
        &self,
        store: &mut Store<StoreState<Io>>,
        pre: &InstancePre<StoreState<Io>>,
        start: &ModuleExport,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let instance = pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        self.module.metrics().instantiated(started.elapsed());
        let start = instance
            .get_module_export(&mut *store, start)
            .and_then(|e| e.into_func())
            .ok_or_else(|| {
                Failure::Instantiate(wasmtime::format_err!("`_start` is not a function"))
            })?;
        start
            .call_async(&mut *store, &[], &mut [])
            .await
            .map_err(Failure::Run)
    }

    /// Records the fuel a metered request used.
    fn record_fuel<Io>(&self, store: &Store<StoreState<Io>>, budget: u64) {
        if self.limits.fuel != 0 {
            // `get_fuel` fails only when the engine does not meter fuel at all.
            let left = store.get_fuel().unwrap_or(budget);
            self.module
                .metrics()
                .fuel_consumed(budget.saturating_sub(left));
        }
    }

    /// The request as a wasmtime-wasi context, with the module's volumes opened read-only.
    fn wasi_ctx(&self, env: &Environment, stdin: Stdin) -> Result<WasiP1Ctx, InvokeError> {
        let module = self.module;
        let mut wasi = WasiCtxBuilder::new();
        for (key, value) in env.iter() {
            wasi.env(key, value);
        }
        for arg in module.args.strings() {
            wasi.arg(arg);
        }
        stdin.give_to(&mut wasi);
        wasi.stdout(GuestStream(self.stdout.clone()))
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

    fn timed_out(&self) -> InvokeError {
        InvokeError::Timeout {
            module: self.module.name.clone(),
            ms: self.limits.timeout.as_millis(),
        }
    }

    fn memory_exceeded(&self) -> InvokeError {
        InvokeError::MemoryExceeded {
            module: self.module.name.clone(),
            limit: self.limits.max_memory_bytes,
        }
    }

    fn instantiate_error<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        error: wasmtime::Error,
    ) -> InvokeError {
        if error.is::<DeadlinePassed>() {
            return self.timed_out();
        }
        if store.data().limiter.memory_exceeded {
            return self.memory_exceeded();
        }
        tracing::warn!(module = %self.module.name, error = ?error, "instantiation failed");
        InvokeError::Instantiate {
            module: self.module.name.clone(),
            reason: error.root_cause().to_string(),
        }
    }

    /// Names what stopped a guest. `Ok(())` for a `proc_exit(0)`, which is a clean finish.
    fn classify<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        error: wasmtime::Error,
    ) -> Result<(), InvokeError> {
        let name = self.module.name.clone();
        if error.is::<DeadlinePassed>() {
            return Err(self.timed_out());
        }
        if self.stdout.overflowed() {
            return Err(InvokeError::OutputTooLarge {
                module: name,
                limit: self.limits.max_output_bytes,
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
                fuel: self.limits.fuel,
            });
        }
        if store.data().limiter.memory_exceeded {
            return Err(self.memory_exceeded());
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
}
