//! Loads module files into the registry: the first scan of the modules directory at
//! start-up, and one file at a time afterwards (the hot-reload path).
//!
//! Compilation is CPU-bound and blocking, so it runs on tokio's blocking pool, never on a
//! worker that serves requests, with at most one compile per core at once.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::compile::{Compiler, LoadFailure};
use crate::error::LoadError;
use crate::name;
use crate::registry::Registry;

/// Loads the module files of one directory.
#[derive(Clone)]
pub struct Loader {
    compiler: Compiler,
    registry: Arc<Registry>,
    dir: PathBuf,
    compiles: Arc<Semaphore>,
}

impl Loader {
    pub fn new(compiler: Compiler, registry: Arc<Registry>, dir: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Loader {
            compiler,
            registry,
            dir,
            compiles: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Loads every module file in the directory, in parallel, and waits for all of them.
    pub async fn load_all(&self) -> io::Result<()> {
        let names = module_files(&self.dir)?;
        let tasks: Vec<_> = names
            .into_iter()
            .map(|name| {
                let loader = self.clone();
                tokio::spawn(async move { loader.load(&name).await })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a module load task failed");
            }
        }
        Ok(())
    }

    /// (Re)loads the file of module `name`: serves it if it loads, records the failure
    /// beside the version being served if it does not.
    pub async fn load(&self, name: &str) {
        let Ok(_permit) = self.compiles.acquire().await else {
            return;
        };
        let compiler = self.compiler.clone();
        let path = self.path_of(name);
        let owned = name.to_string();
        let result = tokio::task::spawn_blocking(move || compiler.load_file(&owned, &path)).await;
        match result {
            Ok(Ok(module)) => {
                tracing::info!(
                    module = name,
                    digest = %module.facts.digest,
                    compile_ms = format_args!("{:.1}", module.compile_ms),
                    source = %module.source,
                    "module loaded"
                );
                self.registry.install(module);
            }
            Ok(Err(failure)) => self.fail(name, failure),
            Err(join) => self.fail(
                name,
                LoadFailure {
                    facts: None,
                    error: LoadError::Compile(format!("the compiler stopped: {join}")),
                    at: std::time::SystemTime::now(),
                },
            ),
        }
    }

    fn fail(&self, name: &str, failure: LoadFailure) {
        tracing::warn!(module = name, error = %failure.error, "module failed to load");
        self.registry.record_failure(name, failure);
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }
}

/// The module names of the `NAME.wasm` files in `dir`.
pub fn module_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink())
        {
            continue;
        }
        if let Some(name) = entry.file_name().to_str().and_then(name::from_file_name) {
            names.push(name.as_str().to_string());
        }
    }
    names.sort();
    Ok(names)
}
