//! What every guest runs under, whatever its ABI: a store with its fuel, memory limiter and
//! deadline set, and the naming of how its run ended ([`GuestError`]). The CGI path
//! ([`cgi::run`](super::cgi::run)) and the wasi:http path ([`wasi_http`](super::wasi_http))
//! both start from [`Bounds`], so a limit means the same on either.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::I32Exit;

use super::cgi::stdout::OutputFate;
use super::deadline::{DeadlinePassed, deadline_by_epoch};
use super::host_limits;
use super::lazy_sleep::unless_past;
use super::store::{Footprint, GuestLimiter, StoreState};
use super::swap::SlotResetCheck;
use crate::guest::body::BodyError;
use crate::guest::module::GuestModule;
use crate::guest::settings::Limits;
use crate::kv::{KvAccess, KvSession};
use crate::metrics::ModuleMetrics;
use crate::outcome::Outcome;

/// Where the guide explains each failure, for the hints the messages end with.
const FAILURES_DOC: &str = "docs/writing-functions.md, \"When things go wrong\"";

/// Why a guest did not finish well. Messages name the module and the reason, then what
/// usually causes it and what to change.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(
        "module '{module}' trapped: {reason}; the guest crashed (a Rust panic, a C abort(), \
         unreachable code, an access outside its memory): what it wrote to stderr just \
         before, in the log, usually says where ({FAILURES_DOC})"
    )]
    Trap { module: Arc<str>, reason: String },
    #[error("module '{module}' exited with status {code}; {} ({FAILURES_DOC})", exit_hint(*.code))]
    Exit { module: Arc<str>, code: i32 },
    #[error(
        "module '{module}' ran out of its fuel budget ({fuel} units): it computed for longer \
         than a request may, most often in an endless loop; if the work is meant to be that \
         long, raise `fuel` in [modules.{module}] ({FAILURES_DOC})"
    )]
    FuelExhausted { module: Arc<str>, fuel: u64 },
    #[error(
        "module '{module}' went past its memory limit of {limit} bytes: a buffer that grows \
         without bound, or a runtime that needs more (Go, Python, JavaScript); raise \
         `max_memory_bytes` in [modules.{module}] if it needs more ({FAILURES_DOC})"
    )]
    MemoryExceeded { module: Arc<str>, limit: u64 },
    #[error("module '{module}' went past the host's cap on {cap}")]
    HostLimit { module: Arc<str>, cap: &'static str },
    #[error("module '{module}' wrote more than its output limit of {limit} bytes")]
    OutputTooLarge { module: Arc<str>, limit: u64 },
    #[error(
        "module '{module}' did not finish within its deadline of {ms} ms: most often it waits \
         for something that never comes (a body it was not sent, a slow outgoing request, a \
         sleep) or loops; raise `timeout_ms` in [modules.{module}] if it is meant to take \
         longer ({FAILURES_DOC})"
    )]
    Timeout { module: Arc<str>, ms: u128 },
    #[error("module '{module}' could not be instantiated: {reason}")]
    Instantiate { module: Arc<str>, reason: String },
    #[error("module '{module}' returned without setting a response")]
    NoResponse { module: Arc<str> },
    #[error("module '{module}' answered with an error instead of a response: {code}")]
    ErrorResponse { module: Arc<str>, code: String },
    #[error("module '{module}': request body larger than {limit} bytes")]
    BodyTooLarge { module: Arc<str>, limit: u64 },
    /// The body streamed to the guest broke off: `reason` ends "the request body ...".
    #[error("module '{module}': the request body {reason}")]
    BodyIncomplete {
        module: Arc<str>,
        reason: &'static str,
    },
    #[error("module '{module}': the client went away before the response was complete")]
    ClientGone { module: Arc<str> },
}

/// What a non-zero exit status usually means.
fn exit_hint(code: i32) -> &'static str {
    match code {
        GO_PANIC_STATUS => {
            "a Go program exits with 2 when it panics (its panic message and stack are in the \
             log, from stderr)"
        }
        _ => {
            "the guest ended itself with a failure status (C exit(), Rust std::process::exit, \
             Go os.Exit or log.Fatal, a component's exit with an error): what it wrote to \
             stderr, in the log, usually says why"
        }
    }
}

/// The exit status of a Go program that panicked.
const GO_PANIC_STATUS: i32 = 2;

impl GuestError {
    pub fn outcome(&self) -> Outcome {
        match self {
            GuestError::Trap { .. } => Outcome::Trap,
            GuestError::Exit { .. } => Outcome::ExitError,
            GuestError::FuelExhausted { .. } => Outcome::FuelExhausted,
            GuestError::MemoryExceeded { .. } | GuestError::HostLimit { .. } => {
                Outcome::MemoryExceeded
            }
            GuestError::OutputTooLarge { .. } => Outcome::OutputTooLarge,
            GuestError::Timeout { .. } => Outcome::Timeout,
            GuestError::Instantiate { .. } => Outcome::Unavailable,
            GuestError::NoResponse { .. } | GuestError::ErrorResponse { .. } => Outcome::BadOutput,
            GuestError::BodyTooLarge { .. } => Outcome::BodyTooLarge,
            GuestError::BodyIncomplete { .. } => Outcome::BadRequest,
            GuestError::ClientGone { .. } => Outcome::ClientGone,
        }
    }

    /// The answer to a request body that could not be given to `module` whole.
    pub(crate) fn body(module: &Arc<str>, limit: u64, error: BodyError) -> GuestError {
        let module = module.clone();
        match error {
            BodyError::TooLarge => GuestError::BodyTooLarge { module, limit },
            BodyError::Unreadable => GuestError::BodyIncomplete {
                module,
                reason: "could not be read",
            },
            BodyError::TimedOut => GuestError::BodyIncomplete {
                module,
                reason: "was not received in time",
            },
        }
    }
}

/// How a call failed, before it is named.
pub(crate) enum Failure {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

/// One run's limits, its deadline, and the module it is of.
pub(crate) struct Bounds {
    pub name: Arc<str>,
    pub limits: Limits,
    pub deadline: Instant,
    /// The stores its guest may open.
    pub kv: Option<Arc<KvAccess>>,
}

impl Bounds {
    /// The bounds of a run of `module` that started at `started`.
    pub(crate) fn new(module: &GuestModule, started: Instant) -> Bounds {
        let limits = module.settings.limits;
        Bounds {
            name: module.name.clone(),
            limits,
            deadline: started + limits.timeout,
            kv: module.shared.kv.clone(),
        }
    }

    /// A store for one run: fuel, the memory limiter (for a guest of `footprint`) and the
    /// deadline set.
    pub(crate) fn store<Io>(
        &self,
        engine: &Engine,
        io: Io,
        footprint: Footprint,
    ) -> Store<StoreState<Io>> {
        let state = StoreState {
            io,
            limiter: GuestLimiter::new(self.limits.max_memory_bytes as usize, footprint),
            module: self.name.clone(),
            kv: KvSession::new(self.kv.clone(), self.deadline),
            _reset_check: SlotResetCheck,
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
        host_limits::cap_store(&mut store);
        store
    }

    /// Runs `call` until it ends or the deadline passes, whichever is first: a call still
    /// running then (waiting in a host call, where the epoch cannot stop it) ends as a
    /// deadline failure.
    pub(crate) async fn before_deadline(
        &self,
        call: impl Future<Output = Result<(), Failure>>,
    ) -> Result<(), Failure> {
        unless_past(self.deadline, call)
            .await
            .unwrap_or_else(|| Err(Failure::Run(DeadlinePassed.into())))
    }

    /// The fuel a fresh store of these bounds holds.
    pub(crate) fn budget<Io>(store: &Store<StoreState<Io>>) -> u64 {
        store.get_fuel().unwrap_or(0)
    }

    /// Records the fuel a metered run used, out of `budget`.
    pub(crate) fn record_fuel<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        budget: u64,
        metrics: &ModuleMetrics,
    ) {
        if self.limits.fuel != 0 {
            // `get_fuel` fails only when the engine does not meter fuel at all.
            let left = store.get_fuel().unwrap_or(budget);
            metrics.fuel_consumed(budget.saturating_sub(left));
        }
    }

    pub(crate) fn timed_out(&self) -> GuestError {
        GuestError::Timeout {
            module: self.name.clone(),
            ms: self.limits.timeout.as_millis(),
        }
    }

    fn memory_exceeded(&self) -> GuestError {
        GuestError::MemoryExceeded {
            module: self.name.clone(),
            limit: self.limits.max_memory_bytes,
        }
    }

    pub(crate) fn output_too_large(&self) -> GuestError {
        GuestError::OutputTooLarge {
            module: self.name.clone(),
            limit: self.limits.max_output_bytes,
        }
    }

    /// Names how a run ended; `output` says what became of its stdout.
    pub(crate) fn name<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        result: Result<(), Failure>,
        output: OutputFate,
    ) -> Result<(), GuestError> {
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Instantiate(e)) => Err(self.instantiate_error(store, e)),
            Err(Failure::Run(e)) => self.classify(store, e, output),
        }
    }

    /// Names why instantiating failed.
    fn instantiate_error<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        error: wasmtime::Error,
    ) -> GuestError {
        if error.is::<DeadlinePassed>() {
            return self.timed_out();
        }
        if store.data().limiter.memory_exceeded {
            return self.memory_exceeded();
        }
        tracing::warn!(module = %self.name, error = ?error, "instantiation failed");
        GuestError::Instantiate {
            module: self.name.clone(),
            reason: error.root_cause().to_string(),
        }
    }

    /// Names what stopped a guest. `Ok(())` for an exit with status 0, which is a clean
    /// finish. `output` says whether the guest wrote past its output cap, or lost its
    /// client.
    fn classify<Io>(
        &self,
        store: &Store<StoreState<Io>>,
        error: wasmtime::Error,
        output: OutputFate,
    ) -> Result<(), GuestError> {
        let name = self.name.clone();
        if error.is::<DeadlinePassed>() {
            return Err(self.timed_out());
        }
        match output {
            OutputFate::Overflowed => return Err(self.output_too_large()),
            OutputFate::ClientGone => return Err(GuestError::ClientGone { module: name }),
            OutputFate::Kept => {}
        }
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return match exit.0 {
                0 => Ok(()),
                code => Err(GuestError::Exit { module: name, code }),
            };
        }
        let trap = error.downcast_ref::<Trap>().copied();
        if trap == Some(Trap::OutOfFuel) {
            return Err(GuestError::FuelExhausted {
                module: name,
                fuel: self.limits.fuel,
            });
        }
        if store.data().limiter.memory_exceeded {
            return Err(self.memory_exceeded());
        }
        if let Some(cap) = host_limits::cap_hit(&error) {
            return Err(GuestError::HostLimit { module: name, cap });
        }
        tracing::debug!(module = %name, error = ?error, "guest trapped");
        let reason = match trap {
            Some(trap) => trap.to_string(),
            None => error.root_cause().to_string(),
        };
        Err(GuestError::Trap {
            module: name,
            reason,
        })
    }
}
