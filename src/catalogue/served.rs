//! A module as requests find it in the registry: what compiling produced, plus what serving
//! needs beside it — the module's settings, its arguments as the guest reads them, and the
//! metric series every request of it records into.

use std::sync::Arc;
use std::time::SystemTime;

use super::compile::Compiled;
use crate::config::ModuleSettings;
use crate::guest::cgi::preview1::Preview1;
use crate::guest::cgi::string_block::StringBlock;
use crate::metrics::ModuleMetrics;

/// A module ready to serve.
pub struct ServedModule {
    pub(crate) name: Arc<str>,
    pub(crate) compiled: Compiled,
    pub(crate) settings: ModuleSettings,
    /// Its arguments (the module name, then the config's `args`) as the guest reads them.
    pub(crate) args: Arc<StringBlock>,
    /// Its metric series, registered when it was loaded.
    pub(crate) metrics: Arc<ModuleMetrics>,
    pub(crate) loaded_at: SystemTime,
}

impl ServedModule {
    pub(crate) fn new(
        name: &str,
        compiled: Compiled,
        settings: ModuleSettings,
        metrics: Arc<ModuleMetrics>,
    ) -> ServedModule {
        let args = StringBlock::args(
            std::iter::once(name).chain(settings.args.iter().map(String::as_str)),
        );
        ServedModule {
            name: Arc::from(name),
            compiled,
            settings,
            args: Arc::new(args),
            metrics,
            loaded_at: SystemTime::now(),
        }
    }

    /// Which preview1 implementation serves the module.
    pub fn preview1(&self) -> Preview1 {
        self.compiled.prepared.preview1()
    }
}
