//! A module as requests find it in the table: the module its guests run, plus where this
//! version came from (its file's facts, whether it was compiled or found in the cache, how
//! long that took, when and from where it was loaded), as `/modules` shows it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::cache::ArtifactCache;
use super::compile::{Compiled, Compiler, Needs, Provenance};
use super::failure::LoadFailure;
use super::file::FileFacts;
use crate::config::Config;
use crate::guest::module::{GuestModule, ModuleShared};
use crate::guest::settings::ModuleSettings;
use crate::kv::KvStores;
use crate::metrics::Metrics;
use crate::runtime::GuestRuntime;

/// A module ready to serve.
pub struct ServedModule {
    /// What its guests run.
    pub(crate) guest: Arc<GuestModule>,
    pub(crate) facts: FileFacts,
    pub(crate) provenance: Provenance,
    /// How long compiling (or loading from the cache) took.
    pub(crate) took: Duration,
    pub(crate) loaded_at: SystemTime,
    /// Where this version came from (`/modules` `origin`).
    pub(crate) origin: Arc<str>,
}

impl ServedModule {
    pub(crate) fn new(
        name: &str,
        compiled: Compiled,
        settings: ModuleSettings,
        shared: ModuleShared,
    ) -> ServedModule {
        ServedModule {
            guest: Arc::new(GuestModule::new(name, compiled.prepared, settings, shared)),
            facts: compiled.facts,
            provenance: compiled.provenance,
            took: compiled.took,
            loaded_at: SystemTime::now(),
            origin: Arc::from(format!("{name}.wasm")),
        }
    }

    /// Compiles `bytes` as module `name` on `runtime`, with its settings from `config` and
    /// `kv`'s stores, as the gateway would serve it, through `cache` when there is one (no
    /// metrics): for `run`, the tests and the benches. Blocking.
    pub(crate) fn load(
        runtime: &GuestRuntime,
        name: &str,
        bytes: &[u8],
        config: &Config,
        kv: Option<&Arc<KvStores>>,
        cache: Option<Arc<ArtifactCache>>,
    ) -> Result<ServedModule, LoadFailure> {
        let settings = config.module_settings(name);
        let facts = FileFacts::of(bytes);
        let compiled = Compiler::new(runtime, cache)
            .compile(bytes, facts.clone(), Needs::of(&settings))
            .map_err(|error| LoadFailure::new(Some(facts), error))?;
        let shared = ModuleShared::new(name, Metrics::disabled().module(name), &settings, kv);
        Ok(ServedModule::new(name, compiled, settings, shared))
    }

    /// The same module, recorded as coming from `origin`.
    pub(crate) fn with_origin(self, origin: Arc<str>) -> ServedModule {
        ServedModule { origin, ..self }
    }

    /// The module's name.
    pub fn name(&self) -> &Arc<str> {
        &self.guest.name
    }
}
