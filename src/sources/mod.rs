//! Module sources beyond a local directory (../shared/DESIGN.md "Module sources beyond a local
//! directory"): OCI registries, followed tag by tag.
//!
//! - [`credentials`]: who the gateway is to each registry;
//! - [`auth`]: answering a registry's challenge with its own credentials only;
//! - [`oci`]: resolving, pulling and pushing; [`wire`]: what a registry sends, capped and
//!   checked; [`error`]: why it failed;
//! - [`store`]: the last good version of each, in `cache_dir`, for restarts;
//! - [`follow`]: one task per module, polling its tag and loading what changed.
//!
//! Everything downstream of the bytes (compile, cache, registry, reload, metrics) is the
//! catalogue's, exactly as for a copied file. A polled modules directory is the
//! catalogue's own (`catalogue::poll`).

pub(crate) mod auth;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod follow;
pub(crate) mod oci;
pub(crate) mod store;
pub(crate) mod wire;
