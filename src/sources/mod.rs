//! Module sources beyond a local directory (DESIGN.md "Module sources beyond a local
//! directory"): OCI registries, followed tag by tag.
//!
//! - [`reference`]: what `source = "oci://..."` names;
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
pub(crate) mod reference;
pub(crate) mod store;
pub(crate) mod wire;

use serde::Serialize;

/// When a module's source was last asked, and last answered (Unix seconds), as
/// `/modules` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SourceChecks {
    pub(crate) checked_at: Option<u64>,
    pub(crate) last_success_at: Option<u64>,
}
