//! `wasmgate push FILE oci://HOST[:PORT]/REPOSITORY:TAG`: publishes a module in the CNCF
//! Wasm OCI artifact layout (the layout `source = "oci://..."` pulls), so that a fleet
//! following the tag picks the new version up. Prints the manifest digest, which a config
//! can pin with `@sha256:...`.

use std::path::Path;

use crate::catalogue::file::{ReadError, ReadLimits, read_module_file};
use crate::config::Config;
use crate::config::reference::{OciReference, ReferenceError};
use crate::guest::abi::Abi;
use crate::sources::credentials::{Credentials, CredentialsError};
use crate::sources::error::SourceError;
use crate::sources::oci::OciClient;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the target {0}")]
    Target(#[from] ReferenceError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the file is not WebAssembly (no `\\0asm` magic at its start)")]
    NotWasm,
    #[error(transparent)]
    ModuleTable(#[from] SourceError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Pushes module `file` to `target`; returns the manifest digest. Plain HTTP is used for
/// a loopback registry, a registry in the config's `oci_insecure`, or any with `insecure`.
pub async fn push(
    config: &Config,
    file: &Path,
    target: &str,
    insecure: bool,
) -> Result<String, PushError> {
    let target = OciReference::parse(target)?;
    let limits = ReadLimits {
        within: None,
        max_bytes: config.max_module_bytes,
    };
    let wasm = read_module_file(file, limits)?;
    let os = match Abi::of(&wasm).ok_or(PushError::NotWasm)? {
        Abi::Cgi => "wasip1",
        Abi::WasiHttp | Abi::WasiHttp03 => "wasip2",
    };
    let mut plain_http = config.oci_insecure.clone();
    if insecure || target.is_loopback() {
        plain_http.push(target.host().to_string());
    }
    let credentials = Credentials::from_env(&[target.host()])?;
    let client = OciClient::new(plain_http, credentials, config.max_module_bytes);
    Ok(client.push(&target, wasm, os).await?)
}
