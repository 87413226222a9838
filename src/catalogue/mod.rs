//! The module catalogue: which version of each module is served, kept in step with the
//! modules directory, and compiled off the request path.
//!
//! - [`watch`]: file-system events, debounced, to [`loader`] syncs; [`poll`]: the same
//!   from looking at the directory, for shared volumes without events;
//! - [`loader`]: one module file at a time, to a new version or a recorded failure;
//! - [`file`], [`digest`]: what a module file is;
//! - [`preflight`]: what is refused before compiling, in milliseconds;
//! - [`compile`] and [`cache`]: bytes to a prepared module, through the artifact cache,
//!   kept in a [`private_dir`] opened once;
//!   [`worker`]: the compile itself, in a process of its own while serving;
//! - [`served`] and [`table`]: what requests find, by name;
//! - [`failure`]: why a file could not be loaded.

pub(crate) mod cache;
pub(crate) mod compile;
pub(crate) mod digest;
pub(crate) mod failure;
pub(crate) mod file;
pub(crate) mod loader;
pub(crate) mod poll;
pub(crate) mod preflight;
pub(crate) mod private_dir;
pub(crate) mod served;
pub(crate) mod table;
pub(crate) mod watch;
pub(crate) mod worker;

pub(crate) use cache::ArtifactCache;
pub use served::ServedModule;
pub(crate) use table::ModuleTable;
