//! Runs one request's CGI guest: a fresh instance from the module's `InstancePre`, with its
//! own store, fuel, deadline, memory limit, stdin and stdout, dropped afterwards.
//!
//! Guests run as async calls on the tokio runtime, not on a separate thread pool. The
//! store's epoch deadline ([`deadline`](crate::guest::deadline)) makes a guest yield back to the
//! scheduler every tick, so a spinning guest shares its worker with other requests instead
//! of stalling them, and a guest sleeping in `poll_oneoff` is just a parked future (forty
//! of them cost forty futures, not forty threads). The wall-clock deadline is checked at
//! those same ticks, which stops guest code; for modules on wasmtime-wasi, whose host calls
//! can wait, a timer around the whole call covers the host calls too, and dropping the
//! call's future tears the instance down. The deadline is known here, so the timeout's
//! overshoot is recorded here too.

use std::time::Instant;

use bytes::Bytes;
use wasmtime::{Extern, Instance, InstancePre, ModuleExport, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder, WasiView};

use super::env::Environment;
use super::preview1::{RequestIo, RequestIoParts};
use super::stderr::{GuestLog, LogStream};
use super::stdin::Stdin;
use super::stdout::Stdout;
use crate::guest::bounds::{Bounds, Failure, GuestError};
use crate::guest::host_limits::MAX_RESOURCES;
use crate::guest::linkers::{CgiModule, GatewayStore, Prepared, WasiStore};
use crate::guest::module::GuestModule;
use crate::guest::store::{Footprint, StoreState};

/// Runs `module` once with environment `env` and `stdin` as its standard input; returns
/// all it wrote to stdout, kept whole (as the tests, benches and fuzzers look at it).
pub async fn run_cgi(
    module: &GuestModule,
    env: Environment,
    stdin: Stdin,
) -> Result<Bytes, GuestError> {
    let stdout = Stdout::collecting(module.settings.limits.max_output_bytes);
    run_guest(module, env, stdin, stdout.clone(), Instant::now()).await?;
    Ok(stdout.take())
}

/// Runs `module` once with environment `env`, `stdin` as its standard input, and `stdout`
/// as its standard output; its deadline counts from `started`, which is now.
pub(crate) async fn run_guest(
    module: &GuestModule,
    env: Environment,
    stdin: Stdin,
    stdout: Stdout,
    started: Instant,
) -> Result<(), GuestError> {
    let bounds = Bounds::new(module, started);
    let run = Run {
        module,
        stdout,
        bounds,
    };
    let cgi = match &module.prepared {
        Prepared::Cgi(cgi) => cgi,
        Prepared::Http(_) | Prepared::Service(_) => {
            return Err(GuestError::Instantiate {
                module: module.name.clone(),
                reason: "it is a wasi:http component, not a CGI module".into(),
            });
        }
    };
    let result = match cgi {
        CgiModule::Gateway { pre, start, memory } => {
            let io = RequestIo::new(RequestIoParts {
                args: module.args.clone(),
                env: env.into_block(),
                stdin,
                deadline: run.bounds.deadline,
                started,
                stdout: run.stdout.clone(),
                module: module.name.clone(),
            });
            let attach = |store: &mut Store<GatewayStore>, instance: Instance| {
                let memory = memory
                    .as_ref()
                    .and_then(|m| instance.get_module_export(&mut *store, m))
                    .and_then(Extern::into_memory);
                store.data_mut().io.attach(memory);
            };
            // Every host function here returns at once or bounds its own wait by the
            // deadline, so the epoch checks are all the deadline needs.
            run.call(pre, start, io, attach, HostWaits::Bounded).await
        }
        CgiModule::WasmtimeWasi { pre, start } => {
            let ctx = run.wasi_ctx(&env, stdin)?;
            // wasmtime-wasi finds the memory itself.
            let attach = |_: &mut Store<WasiStore>, _: Instance| {};
            // wasmtime-wasi's host calls can wait (poll_oneoff, files): a timer covers them.
            run.call(pre, start, ctx, attach, HostWaits::Unbounded)
                .await
        }
    };
    if let Err(GuestError::Timeout { .. }) = &result {
        module
            .metrics()
            .timeout_overshoot(started.elapsed().saturating_sub(run.bounds.limits.timeout));
    }
    result
}

/// One invocation's fixed parts.
struct Run<'m> {
    module: &'m GuestModule,
    bounds: Bounds,
    stdout: Stdout,
}

/// Whether the host functions a guest calls bound their own waits by the deadline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostWaits {
    Bounded,
    /// A timer around the whole call stops them at the deadline.
    Unbounded,
}

impl Run<'_> {
    /// Instantiates `pre` in a fresh store holding `io`, gives the instance to `attach`,
    /// calls `start`, and names how it ended.
    async fn call<Io: Send + 'static>(
        &self,
        pre: &InstancePre<StoreState<Io>>,
        start: &ModuleExport,
        io: Io,
        attach: impl FnOnce(&mut Store<StoreState<Io>>, Instance) + Send,
        waits: HostWaits,
    ) -> Result<(), GuestError> {
        let bounds = &self.bounds;
        let mut store = bounds.store(pre.module().engine(), io, Footprint::CORE_MODULE);
        let budget = Bounds::budget(&store);
        let call = self.run_start(&mut store, pre, start, attach);
        let result = match waits {
            HostWaits::Bounded => call.await,
            HostWaits::Unbounded => bounds.before_deadline(call).await,
        };
        bounds.record_fuel(&store, budget, self.module.metrics());
        bounds.name(&store, result, self.stdout.fate())
    }

    async fn run_start<Io: Send + 'static>(
        &self,
        store: &mut Store<StoreState<Io>>,
        pre: &InstancePre<StoreState<Io>>,
        start: &ModuleExport,
        attach: impl FnOnce(&mut Store<StoreState<Io>>, Instance) + Send,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let instance = pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        self.module.metrics().instantiated(started.elapsed());
        attach(store, instance);
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

    /// The request as a wasmtime-wasi context, with the module's volumes opened read-only.
    fn wasi_ctx(&self, env: &Environment, stdin: Stdin) -> Result<WasiP1Ctx, GuestError> {
        let module = self.module;
        let mut wasi = WasiCtxBuilder::new();
        for (key, value) in env.iter() {
            wasi.env(key, value);
        }
        for arg in module.args.strings() {
            wasi.arg(arg);
        }
        stdin.give_to(&mut wasi);
        wasi.stdout(self.stdout.clone())
            .stderr(LogStream(GuestLog::new(module.name.clone())));
        for (guest, host) in &module.settings.volumes {
            if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadOnly) {
                tracing::warn!(module = %module.name, volume = %guest, error = %e, "cannot open a volume");
                return Err(GuestError::Instantiate {
                    module: module.name.clone(),
                    reason: format!("volume {guest} cannot be opened"),
                });
            }
        }
        let mut ctx = wasi.build_p1();
        ctx.ctx().table.set_max_capacity(MAX_RESOURCES);
        Ok(ctx)
    }
}
