//! A module as its guests run it: its name, what it was linked as, its settings, its
//! arguments as the guest reads them, the metric series every request of it records
//! into, and the permits that cap how many of its guests run at once. The series and the
//! permits belong to the module's name, not to one version: a reloaded module keeps both
//! ([`ModuleShared`]). Where the version came from is the catalogue's business
//! (`catalogue::GuestModule`), never the guest's.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::abi::Abi;
use super::cgi::preview1::Preview1;
use super::cgi::string_block::StringBlock;
use super::linkers::Prepared;
use super::settings::ModuleSettings;
use super::wasi_http::allowed::AllowedHost;
use crate::kv::{KvAccess, KvStores};
use crate::metrics::ModuleMetrics;

/// A module ready to run.
pub struct GuestModule {
    pub(crate) name: Arc<str>,
    pub(crate) prepared: Prepared,
    pub(crate) settings: ModuleSettings,
    /// Its arguments (the module name, then the config's `args`) as the guest reads them.
    pub(crate) args: Arc<StringBlock>,
    /// Its metric series and its concurrency permits, shared with its other versions.
    pub(crate) shared: ModuleShared,
    /// Where its outgoing HTTP requests may go (components only).
    pub(crate) allowed_outbound: Arc<[AllowedHost]>,
}

/// What a module's versions share: made when its name is first seen.
#[derive(Clone)]
pub(crate) struct ModuleShared {
    pub metrics: Arc<ModuleMetrics>,
    /// One permit per guest of this module that may run at once (`max_concurrency`).
    pub guests: Arc<Semaphore>,
    /// Its access to the key-value stores (those its section lists), when the gateway has
    /// stores.
    pub kv: Option<Arc<KvAccess>>,
}

impl ModuleShared {
    /// What the versions of module `name` with `settings` share, recording into
    /// `metrics`, and opening those of `kv`'s stores its settings list.
    pub(crate) fn new(
        name: &str,
        metrics: Arc<ModuleMetrics>,
        settings: &ModuleSettings,
        kv: Option<&Arc<KvStores>>,
    ) -> ModuleShared {
        let kv = kv.map(|stores| {
            let allowed = settings.kv_stores.clone();
            Arc::new(KvAccess::new(stores.clone(), Arc::from(name), allowed))
        });
        ModuleShared {
            metrics,
            guests: Arc::new(Semaphore::new(settings.limits.max_concurrency as usize)),
            kv,
        }
    }
}

impl GuestModule {
    pub(crate) fn new(
        name: &str,
        prepared: Prepared,
        settings: ModuleSettings,
        shared: ModuleShared,
    ) -> GuestModule {
        let args = StringBlock::args(
            std::iter::once(name).chain(settings.args.iter().map(String::as_str)),
        );
        GuestModule {
            name: Arc::from(name),
            allowed_outbound: settings.allowed_outbound_hosts.iter().cloned().collect(),
            prepared,
            settings,
            args: Arc::new(args),
            shared,
        }
    }

    /// The module's metric series.
    pub(crate) fn metrics(&self) -> &ModuleMetrics {
        &self.shared.metrics
    }

    /// Which preview1 implementation serves the module; `None` for a component.
    pub fn preview1(&self) -> Option<Preview1> {
        self.prepared.preview1()
    }

    /// Which ABI the module is served through.
    pub fn abi(&self) -> Abi {
        self.prepared.abi()
    }
}
