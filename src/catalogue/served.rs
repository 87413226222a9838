//! A module as requests find it in the registry: what compiling produced, plus what serving
//! needs beside it — the module's settings, its arguments as the guest reads them, the
//! metric series every request of it records into, and the permits that cap how many of
//! its guests run at once. The series and the permits belong to the module's name, not to
//! one version: a reloaded module keeps both ([`ModuleShared`]).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Semaphore;

use super::abi::Abi;
use super::compile::Compiled;
use crate::config::ModuleSettings;
use crate::guest::cgi::preview1::Preview1;
use crate::guest::cgi::string_block::StringBlock;
use crate::guest::wasi_http::allowed::AllowedHost;
use crate::metrics::ModuleMetrics;

/// A module ready to serve.
pub struct ServedModule {
    pub(crate) name: Arc<str>,
    pub(crate) compiled: Compiled,
    pub(crate) settings: ModuleSettings,
    /// Its arguments (the module name, then the config's `args`) as the guest reads them.
    pub(crate) args: Arc<StringBlock>,
    /// Its metric series and its concurrency permits, shared with its other versions.
    pub(crate) shared: ModuleShared,
    /// Where its outgoing HTTP requests may go (components only).
    pub(crate) allowed_outbound: Arc<[AllowedHost]>,
    pub(crate) loaded_at: SystemTime,
    /// Where this version came from (`/modules` `origin`).
    pub(crate) origin: Arc<str>,
}

/// What a module's versions share: made when its name is first seen.
#[derive(Clone)]
pub(crate) struct ModuleShared {
    pub metrics: Arc<ModuleMetrics>,
    /// One permit per guest of this module that may run at once (`max_concurrency`).
    pub guests: Arc<Semaphore>,
}

impl ModuleShared {
    pub(crate) fn new(metrics: Arc<ModuleMetrics>, max_concurrency: u32) -> ModuleShared {
        ModuleShared {
            metrics,
            guests: Arc::new(Semaphore::new(max_concurrency as usize)),
        }
    }
}

impl ServedModule {
    pub(crate) fn new(
        name: &str,
        compiled: Compiled,
        settings: ModuleSettings,
        shared: ModuleShared,
    ) -> ServedModule {
        let args = StringBlock::args(
            std::iter::once(name).chain(settings.args.iter().map(String::as_str)),
        );
        ServedModule {
            name: Arc::from(name),
            allowed_outbound: settings.allowed_outbound_hosts.iter().cloned().collect(),
            compiled,
            settings,
            args: Arc::new(args),
            shared,
            loaded_at: SystemTime::now(),
            origin: Arc::from(format!("{name}.wasm")),
        }
    }

    /// The same module, recorded as coming from `origin`.
    pub(crate) fn with_origin(self, origin: Arc<str>) -> ServedModule {
        ServedModule { origin, ..self }
    }

    /// The module's metric series.
    pub(crate) fn metrics(&self) -> &ModuleMetrics {
        &self.shared.metrics
    }

    /// Which preview1 implementation serves the module; `None` for a component.
    pub fn preview1(&self) -> Option<Preview1> {
        self.compiled.prepared.preview1()
    }

    /// Which ABI the module is served through.
    pub fn abi(&self) -> Abi {
        self.compiled.prepared.abi()
    }
}
