//! Following OCI sources: one task per module, which resolves its tag every `oci_poll_ms`
//! (one `HEAD`, so an unchanged tag costs one small request) and, when the manifest
//! digest moves, pulls the layer and loads it exactly as a copied file is loaded.
//!
//! A version becomes the module's last good one (kept in the [`PulledStore`]) only once it
//! has loaded. A broken version is tried once per manifest digest, never replaces the
//! version serving, and stays reported in `/modules` until the tag moves again. A source
//! that cannot be reached is reported the same way, and asked again with a backoff that
//! doubles up to [`MAX_BACKOFF`]; when it answers again with the version serving, the
//! report is cleared. A digest-pinned source is pulled once and never asked again. Each
//! module has a task of its own, so a registry that hangs holds up nobody else; at start
//! the gateway waits for the first answers [`FIRST_LOAD_WAIT`] at most.

use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::task::TaskTracker;

use super::credentials::{Credentials, CredentialsError};
use super::error::SourceError;
use super::oci::OciClient;
use super::store::{Pinned, PulledStore};
use crate::catalogue::ModuleTable;
use crate::catalogue::failure::LoadError;
use crate::catalogue::loader::{Loader, Origin, Phase};
use crate::catalogue::private_dir::PrivateDir;
use crate::catalogue::table::SourceChecks;
use crate::config::Config;
use crate::config::reference::OciReference;
use crate::metrics::{Metrics, PollResult};
use crate::shutdown::Shutdown;

/// The longest the gateway waits for its sources' first answers before it serves.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(3);
/// The longest a poll (a resolve and, if the tag moved, a pull) may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait between two polls of a source that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Failed polls in a row past which the backoff stops doubling.
const MAX_DOUBLINGS: u32 = 6;

/// Every OCI-sourced module of one gateway.
pub(crate) struct OciSources {
    followers: Vec<Follower>,
}

impl OciSources {
    /// The followers for the modules whose config names an OCI `source`; an error when
    /// the environment's credentials do not say which of their registries they are for.
    pub(crate) fn new(
        config: &Config,
        cache_dir: Option<&PrivateDir>,
        loader: Loader,
        table: Arc<ModuleTable>,
        metrics: Metrics,
    ) -> Result<OciSources, CredentialsError> {
        let sources: Vec<(String, OciReference)> = config
            .sources
            .iter()
            .map(|(name, source)| (name.clone(), source.clone()))
            .collect();
        if sources.is_empty() {
            return Ok(OciSources {
                followers: Vec::new(),
            });
        }
        let mut plain_http = config.oci_insecure.clone();
        plain_http.extend(
            sources
                .iter()
                .filter(|(_, s)| s.is_loopback())
                .map(|(_, s)| s.host().to_string()),
        );
        let hosts: Vec<&str> = sources.iter().map(|(_, s)| s.host()).collect();
        let credentials = Credentials::from_env(&hosts)?;
        let client = OciClient::new(plain_http, credentials, config.max_module_bytes);
        let store = cache_dir.and_then(|dir| {
            PulledStore::open(dir)
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot keep pulled modules in cache_dir; a restart needs the registry");
                })
                .ok()
        });
        let shared = Arc::new(Shared {
            client,
            store,
            loader,
            table,
            metrics,
            interval: config.oci_poll,
        });
        let followers = sources
            .into_iter()
            .map(|(name, source)| Follower::new(name, source, shared.clone()))
            .collect();
        Ok(OciSources { followers })
    }

    /// Starts following every source. Each module's last good version is loaded from the
    /// store, or else its registry is asked; the gateway waits for that at most
    /// [`FIRST_LOAD_WAIT`] before it serves, so that a slow or silent registry delays
    /// readiness by no more. A source with no answer by then shows as failed ("no answer
    /// yet") until its answer comes, whichever it is.
    pub(crate) async fn start(self, shutdown: &Shutdown, tasks: &TaskTracker) {
        let deadline = tokio::time::Instant::now() + FIRST_LOAD_WAIT;
        let mut waiting = Vec::new();
        for mut follower in self.followers {
            let (loaded, first) = tokio::sync::oneshot::channel::<()>();
            let shared = follower.shared.clone();
            let placeholder = (follower.name.clone(), follower.source.host().to_string());
            let origin = follower.tried_origin();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                if !follower.restore().await {
                    follower.poll().await;
                }
                drop(loaded);
                follower.run(shutdown).await;
            });
            waiting.push((first, shared, placeholder, origin));
        }
        for (first, shared, (name, host), origin) in waiting {
            if tokio::time::timeout_at(deadline, first).await.is_err() {
                tracing::warn!(module = %name, source = %origin.0, "the module's source has not answered yet; serving without it meanwhile");
                let error = SourceError::Pending(host).into();
                shared.loader.source_pending(&name, error, origin);
            }
        }
    }
}

/// What every follower uses.
struct Shared {
    client: OciClient,
    store: Option<PulledStore>,
    loader: Loader,
    table: Arc<ModuleTable>,
    metrics: Metrics,
    interval: Duration,
}

/// One module's source, and what it has seen of it.
struct Follower {
    name: String,
    source: OciReference,
    /// The `source` label of its metrics: the reference without the scheme.
    label: String,
    shared: Arc<Shared>,
    /// The manifest digest of the version serving.
    serving: Option<String>,
    /// The manifest digest last tried, and its load error if it did not load.
    tried: Option<(String, Option<LoadError>)>,
    /// Whether the latest report is the source's own failure (not a version's).
    unreachable: bool,
    failures: u32,
    checks: SourceChecks,
}

impl Follower {
    fn new(name: String, source: OciReference, shared: Arc<Shared>) -> Follower {
        Follower {
            label: source.to_string(),
            name,
            source,
            shared,
            serving: None,
            tried: None,
            unreachable: false,
            failures: 0,
            checks: SourceChecks::default(),
        }
    }

    /// Loads the last good version kept for this source; whether there was one.
    async fn restore(&mut self) -> bool {
        let Some(store) = &self.shared.store else {
            return false;
        };
        let Some((pinned, bytes)) = store.load(&self.name, &self.label) else {
            return false;
        };
        let origin = self.origin(&pinned.manifest);
        let loaded = self
            .shared
            .loader
            .load_bytes(&self.name, bytes, origin, Phase::Startup)
            .await;
        if loaded.is_ok() {
            tracing::info!(module = %self.name, source = %self.label, digest = %pinned.manifest, "module restored from its last pull");
            self.serving = Some(pinned.manifest.clone());
            self.tried = Some((pinned.manifest, None));
        }
        loaded.is_ok()
    }

    async fn run(mut self, shutdown: Shutdown) {
        loop {
            if self.source.is_pinned() && self.serving.is_some() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(self.next_delay()) => self.poll().await,
                () = shutdown.triggered() => return,
            }
        }
    }

    /// The poll interval, doubled for each failure in a row, within [`MAX_BACKOFF`].
    fn next_delay(&self) -> Duration {
        let interval = self.shared.interval;
        let backoff = interval.saturating_mul(1 << self.failures.min(MAX_DOUBLINGS));
        backoff.min(MAX_BACKOFF.max(interval))
    }

    /// Asks the registry once, and loads what changed.
    async fn poll(&mut self) {
        let polled = tokio::time::timeout(POLL_TIMEOUT, self.poll_once()).await;
        let result =
            polled.unwrap_or_else(|_| Err(SourceError::Timeout(self.source.host().to_string())));
        let now = Some(unix_seconds());
        self.checks.checked_at = now;
        match result {
            Ok(changed) => {
                self.failures = 0;
                self.checks.last_success_at = now;
                let label = if changed {
                    PollResult::Changed
                } else {
                    PollResult::Unchanged
                };
                self.shared.metrics.source_poll(&self.label, label);
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.shared
                    .metrics
                    .source_poll(&self.label, PollResult::Error);
                tracing::warn!(module = %self.name, source = %self.label, error = %error, "cannot poll the module's source; the last good version, if any, keeps serving");
                let origin = self.tried_origin();
                self.shared
                    .loader
                    .source_failed(&self.name, error.into(), origin);
                self.unreachable = true;
            }
        }
        self.shared.table.record_check(&self.name, self.checks);
    }

    /// Resolves the tag and, if it moved, pulls and loads the new version; whether it moved.
    async fn poll_once(&mut self) -> Result<bool, SourceError> {
        let client = &self.shared.client;
        let digest = client.resolve(&self.source).await?;
        if let Some((tried, error)) = &self.tried
            && *tried == digest
        {
            if std::mem::take(&mut self.unreachable) {
                self.report_again(tried.clone(), error.clone());
            }
            return Ok(false);
        }
        let pulled = client.pull(&self.source, &digest).await?;
        let origin = self.origin(&digest);
        let bytes = pulled.bytes.clone();
        let loaded = self
            .shared
            .loader
            .load_bytes(&self.name, pulled.bytes, origin, Phase::Reload)
            .await;
        self.unreachable = false;
        match &loaded {
            Ok(()) => {
                self.serving = Some(digest.clone());
                self.keep(&digest, &pulled.layer_digest.to_string(), &bytes);
            }
            Err(error) => {
                tracing::warn!(module = %self.name, source = %self.label, digest = %digest, error = %error, "a new version from the registry failed to load");
            }
        }
        self.tried = Some((digest, loaded.err()));
        Ok(true)
    }

    /// After the source answered again with the version last tried: the report goes back
    /// to what that version's load said.
    fn report_again(&self, digest: String, error: Option<LoadError>) {
        let loader = &self.shared.loader;
        match error {
            None => loader.source_recovered(&self.name),
            Some(error) => loader.source_failed(&self.name, error, self.origin(&digest)),
        }
    }

    /// Remembers a version that loaded, for restarts.
    fn keep(&self, manifest: &str, layer: &str, bytes: &[u8]) {
        let Some(store) = &self.shared.store else {
            return;
        };
        let pinned = Pinned {
            source: self.label.clone(),
            manifest: manifest.to_string(),
            layer: layer.to_string(),
        };
        if let Err(e) = store.save(&self.name, &pinned, bytes) {
            tracing::warn!(module = %self.name, error = %e, "cannot keep the pulled module in cache_dir");
        }
    }

    /// `/modules` `origin` for manifest `digest`: the reference with its resolved digest.
    fn origin(&self, digest: &str) -> Origin {
        match self.source.is_pinned() {
            true => Origin(Arc::from(self.label.as_str())),
            false => Origin(Arc::from(format!("{}@{digest}", self.label))),
        }
    }

    /// The origin of the version last tried, or the bare reference before any.
    fn tried_origin(&self) -> Origin {
        match &self.tried {
            Some((digest, _)) => self.origin(digest),
            None => Origin(Arc::from(self.label.as_str())),
        }
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
