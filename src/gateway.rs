//! `wasmgate serve`: puts the pieces together — the guest runtime, module table, loader, and
//! the two listeners, started in an order that surfaces every error before anything is
//! served.
//!
//! Both addresses are bound first, so a port in use fails start-up at once. The admin
//! listener then answers (with `/readyz` at 503) while the first scan compiles; the public
//! listener starts accepting once the scan is done, so no request sees a half-loaded
//! modules directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::catalogue::compile::Compiler;
use crate::catalogue::loader::{Loader, module_files};
use crate::catalogue::poll::DirectoryPoller;
use crate::catalogue::private_dir::CacheError;
use crate::catalogue::watch::{ModuleWatcher, WatchEvents};
use crate::catalogue::worker::CompileWorkers;
use crate::catalogue::{ArtifactCache, ModuleTable};
use crate::config::{Config, WatchMode};
use crate::front::admin::AdminService;
use crate::front::connection::Speaking;
use crate::front::listener::{self, ConnInfo, ListenOptions};
use crate::front::server::PublicService;
use crate::front::threads;
use crate::front::tls::{Tls, TlsError};
use crate::guest::pipeline::Gate;
use crate::kv::{KvOpenError, KvStores};
use crate::metrics::{Metrics, UPKEEP_INTERVAL};
use crate::runtime::{AllocatorChoice, GuestRuntime, RuntimeError};
use crate::shutdown::Shutdown;
use crate::sources::credentials::CredentialsError;
use crate::sources::follow::OciSources;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the modules directory: {0}")]
    ModulesDir(std::io::Error),
    #[error("cannot start the compile threads: {0}")]
    Threads(String),
    #[error("cannot watch the modules directory: {0}")]
    Watch(String),
    #[error(transparent)]
    Cache(CacheError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Kv(#[from] KvOpenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How long a stopping gateway waits for its background tasks (module syncs, source
/// followers, watchers) once its listeners have drained; a compile still running then is
/// abandoned with its worker.
const BACKGROUND_DRAIN: Duration = Duration::from_secs(5);

/// A gateway that is running; dropping it starts its shutdown, as [`stop`] does, without
/// waiting for the drain.
///
/// [`stop`]: RunningGateway::stop
pub struct RunningGateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

impl RunningGateway {
    /// Starts the gateway described by `config`, and returns once both listeners are bound
    /// (the first scan of the modules directory goes on in the background).
    pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
        let config = Arc::new(config);
        let metrics = if config.metrics {
            Metrics::new()
        } else {
            Metrics::disabled()
        };
        let kv = open_kv(&config, &metrics)?;
        let runtime = GuestRuntime::new(&config, AllocatorChoice::PoolingWithFallback)?;
        metrics.set_pool_slots(config.max_instances);
        let (cache_dir, cache) =
            ArtifactCache::open_at(&config.cache_dir, runtime.engine(), config.cache_max_bytes)
                .map_err(StartError::Cache)?
                .map(|(root, cache)| (Some(root), Some(Arc::new(cache))))
                .unwrap_or_default();
        let table = Arc::new(ModuleTable::new());
        let compiler =
            Compiler::new(&runtime, cache.clone()).in_workers(CompileWorkers::for_config(&config));
        let tasks = TaskTracker::new();
        let loader = Loader::new(
            compiler,
            config.clone(),
            table.clone(),
            metrics.clone(),
            tasks.clone(),
            kv,
        )
        .map_err(|e| StartError::Threads(e.to_string()))?;
        // Fail now, not in the background, if the directory cannot be listed.
        module_files(&config.modules_dir).map_err(StartError::ModulesDir)?;
        let watching = Watching::start(&config, &loader, &metrics)?;
        let sources = OciSources::new(
            &config,
            cache_dir.as_ref(),
            loader.clone(),
            table.clone(),
            metrics.clone(),
        )?;

        let public = bind("public", config.listen).await?;
        let admin = bind("admin", config.admin_listen).await?;
        let public_addr = local_addr("public", &public, config.listen)?;
        let admin_addr = local_addr("admin", &admin, config.admin_listen)?;
        let shutdown = Shutdown::new();
        let tls = match &config.protocols.tls {
            Some(files) => Some(Tls::start(files, &metrics, &shutdown, &tasks)?),
            None => None,
        };
        let (connections, grace) = (config.max_connections, config.shutdown_grace);
        let streams = Some(config.protocols.http2_max_streams);
        let speaking = Speaking::new(streams, tls);
        let public_options = ListenOptions::speaking(connections, grace, speaking);
        // The admin listener stays cleartext (it is on loopback by default), but speaks
        // HTTP/2 too: a load balancer that talks HTTP/2 to the replicas checks /readyz in it.
        let admin_options = ListenOptions::new(connections, grace, streams);

        let slots = Arc::new(Semaphore::new(config.max_instances as usize));
        let admin_service = Arc::new(AdminService {
            slots: slots.clone(),
            max_instances: config.max_instances as usize,
            admin_hosts: config.admin_hosts.clone(),
            table: table.clone(),
            shutdown: shutdown.clone(),
            metrics: metrics.clone(),
            cache,
        });
        tasks.spawn(upkeep(metrics.clone(), shutdown.clone()));
        // The admin listener outlives the public drain, so load balancers and Prometheus
        // see `/readyz` answer 503 (rather than a refused connection) until the end.
        let admin_down = Shutdown::new();
        let admin_task = tasks.spawn(listener::serve(
            admin,
            move |req, conn: ConnInfo| admin_service.clone().handle(req, conn),
            admin_down.clone(),
            admin_options,
        ));
        let public_service = Arc::new(PublicService {
            table: table.clone(),
            gate: Gate::new(
                slots.clone(),
                config.queue_timeout,
                config.body_timeout,
                metrics.clone(),
            ),
            access_log: config.access_log,
            metrics,
        });
        let table = table.clone();
        let down = shutdown.clone();
        let (threads, pin) = (config.serve_threads, config.pin_serve_threads);
        // The public listener stops accepting `shutdown_delay_ms` after readiness turns 503.
        let public_down = delayed(&shutdown, config.shutdown_delay, &tasks);
        let task = tokio::spawn(async move {
            // Deadlines are enforced while the runtime lives: as long as anything is served.
            let _runtime = runtime;
            if let Err(e) = loader.load_all().await {
                tracing::error!(error = %e, "cannot scan the modules directory");
            }
            sources.start(&down, &tasks).await;
            let _watcher = watching.serve(loader, &down, &tasks);
            table.set_ready(true);
            tracing::info!(modules = table.serving_count(), %public_addr, threads, "serving");
            let handle = move |req, conn: ConnInfo| public_service.clone().handle(req, conn);
            match threads {
                0 => listener::serve(public, handle, public_down, public_options).await,
                n => {
                    let options = public_options;
                    threads::serve_on_threads(public, n, pin, handle, public_down, options).await
                }
            }
            admin_down.trigger();
            let _ = admin_task.await;
            drain_background(&tasks).await;
        });
        Ok(RunningGateway {
            public_addr,
            admin_addr,
            shutdown,
            task: Some(task),
        })
    }

    /// Drains and stops the gateway, and waits until it has.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.wait().await;
    }

    /// Waits until the gateway has stopped (after its shutdown was triggered).
    pub async fn wait(mut self) {
        let Some(task) = self.task.take() else { return };
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the gateway task failed");
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Waits up to [`BACKGROUND_DRAIN`] for every background task, once no more may start.
async fn drain_background(tasks: &TaskTracker) {
    tasks.close();
    if tokio::time::timeout(BACKGROUND_DRAIN, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = tasks.len(),
            "background tasks still running at stop; abandoning them"
        );
    }
}

/// How the modules directory is watched (`watch`).
enum Watching {
    Events(ModuleWatcher, WatchEvents),
    Poll(DirectoryPoller),
}

impl Watching {
    /// Starts noticing changes now; they are acted on once [`Watching::serve`] runs.
    fn start(config: &Config, loader: &Loader, metrics: &Metrics) -> Result<Watching, StartError> {
        Ok(match config.watch {
            WatchMode::Events => {
                let (watcher, events) = ModuleWatcher::start(loader)
                    .map_err(|e| StartError::Watch(format!("{:?}", e.kind)))?;
                Watching::Events(watcher, events)
            }
            WatchMode::Poll => Watching::Poll(DirectoryPoller::start(
                loader,
                config.poll_interval,
                metrics.clone(),
            )),
        })
    }

    /// Syncs changes until shutdown, in a task of `tasks`; the returned watcher must live
    /// as long.
    fn serve(
        self,
        loader: Loader,
        shutdown: &Shutdown,
        tasks: &TaskTracker,
    ) -> Option<ModuleWatcher> {
        match self {
            Watching::Events(watcher, events) => {
                tasks.spawn(events.serve(loader, shutdown.clone()));
                Some(watcher)
            }
            Watching::Poll(poller) => {
                tasks.spawn(poller.serve(loader, shutdown.clone()));
                None
            }
        }
    }
}

/// A shutdown that follows `shutdown` after `delay`, counted in a task of `tasks`.
fn delayed(shutdown: &Shutdown, delay: Duration, tasks: &TaskTracker) -> Shutdown {
    if delay.is_zero() {
        return shutdown.clone();
    }
    let later = Shutdown::new();
    let (first, then) = (shutdown.clone(), later.clone());
    tasks.spawn(async move {
        first.triggered().await;
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "not ready any more; still accepting for the shutdown delay"
        );
        tokio::time::sleep(delay).await;
        then.trigger();
    });
    later
}

/// Folds histogram samples into buckets every few seconds, until shutdown.
async fn upkeep(metrics: Metrics, shutdown: Shutdown) {
    let mut every = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => metrics.upkeep(),
            () = shutdown.triggered() => break,
        }
    }
}

/// The key-value stores, when the config uses them.
fn open_kv(config: &Config, metrics: &Metrics) -> Result<Option<Arc<KvStores>>, StartError> {
    let Some(settings) = &config.kv else {
        return Ok(None);
    };
    let stores = KvStores::open_counted(settings, metrics.clone())?;
    tracing::info!(backend = %settings.backend.redacted(), "key-value stores open");
    Ok(Some(Arc::new(stores)))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    l: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    l.local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}
