//! One module's settings: its `[modules.NAME]` table over the `[limits]` defaults, each
//! value checked and named by its key when it cannot be used.

use std::time::Duration;

use super::ConfigError;
use super::defaults::{MAX_BUFFER_BYTES, MAX_WASM32_MEMORY_BYTES, WASM_PAGE_BYTES};
use super::name::ModuleName;
use super::reference::OciReference;
use super::schema::{FileLimits, FileModule};
use crate::guest::cgi::reserved::is_reserved_env_name;
use crate::guest::settings::{Limits, ModuleSettings};
use crate::guest::wasi_http::allowed::AllowedHost;

/// Module `name`'s settings from its table `module` over `defaults`, and the OCI source
/// it names, if any.
pub(super) fn module_settings(
    name: &str,
    module: &FileModule,
    defaults: &Limits,
) -> Result<(ModuleSettings, Option<OciReference>), ConfigError> {
    let section = format!("modules.{name}");
    if ModuleName::parse(name).is_err() {
        return Err(ConfigError::value(
            &section,
            name,
            "is not a module name ([A-Za-z0-9_-], 1 to 64 characters)",
        ));
    }
    let limits = merge_limits(defaults, &module.limits, &section)?;
    for (key, value) in &module.env {
        check_env(&section, key, value)?;
    }
    if let Some(arg) = module.args.iter().find(|a| a.contains('\0')) {
        return Err(ConfigError::value(
            &format!("{section}.args"),
            format!("{arg:?}"),
            "has a NUL byte, which would split it into two arguments",
        ));
    }
    for (guest, host) in &module.volumes {
        let key = format!("{section}.volumes");
        if !guest.starts_with('/') || guest.contains('\0') {
            return Err(ConfigError::value(
                &key,
                guest,
                "is not an absolute guest path like \"/lib\"",
            ));
        }
        if !host.is_dir() {
            return Err(ConfigError::value(
                &key,
                guest,
                "maps to a host directory that does not exist",
            ));
        }
    }
    let allowed_outbound_hosts = module
        .allowed_outbound_hosts
        .iter()
        .map(|entry| {
            AllowedHost::parse(entry).map_err(|why| ConfigError::Value {
                key: format!("{section}.allowed_outbound_hosts"),
                value: format!("{entry:?}"),
                reason: why.reason(),
            })
        })
        .collect::<Result<_, _>>()?;
    let source = module
        .source
        .as_deref()
        .map(|text| {
            OciReference::parse(text).map_err(|why| ConfigError::Value {
                key: format!("{section}.source"),
                value: format!("{text:?}"),
                reason: why.reason(),
            })
        })
        .transpose()?;
    let settings = ModuleSettings {
        limits,
        allowed_outbound_hosts,
        args: module.args.clone(),
        volumes: module
            .volumes
            .iter()
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect(),
        env: module
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        pass_authorization: module.pass_authorization,
        kv_stores: super::kv::module_stores(&section, &module.kv_stores)?,
    };
    Ok((settings, source))
}

/// Refuses an environment variable that a guest cannot be given, naming `section.env`.
pub(super) fn check_env(section: &str, key: &str, value: &str) -> Result<(), ConfigError> {
    let at = || format!("{section}.env");
    if value.contains('\0') {
        return Err(ConfigError::value(
            &at(),
            key,
            "has a NUL byte in its value, which an environment cannot carry",
        ));
    }
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(ConfigError::value(
            &at(),
            key,
            "is not a valid variable name",
        ));
    }
    if is_reserved_env_name(key) {
        return Err(ConfigError::value(
            &at(),
            key,
            "is set by the gateway for every request and cannot be overridden",
        ));
    }
    Ok(())
}

pub(super) fn merge_limits(
    base: &Limits,
    file: &FileLimits,
    section: &str,
) -> Result<Limits, ConfigError> {
    let limits = Limits {
        timeout: file.timeout_ms.map_or(base.timeout, Duration::from_millis),
        fuel: file.fuel.unwrap_or(base.fuel),
        max_memory_bytes: file.max_memory_bytes.unwrap_or(base.max_memory_bytes),
        max_output_bytes: file.max_output_bytes.unwrap_or(base.max_output_bytes),
        max_body_bytes: file.max_body_bytes.unwrap_or(base.max_body_bytes),
        max_concurrency: file.max_concurrency.unwrap_or(base.max_concurrency),
        stream_after_bytes: file.stream_after_bytes.unwrap_or(base.stream_after_bytes),
        stream_after: file
            .stream_after_ms
            .map_or(base.stream_after, Duration::from_millis),
    };
    let key = |k: &str| format!("{section}.{k}");
    if limits.max_concurrency == 0 {
        return Err(ConfigError::value(
            &key("max_concurrency"),
            0,
            "must be at least 1",
        ));
    }
    if limits.timeout.is_zero() {
        return Err(ConfigError::value(
            &key("timeout_ms"),
            0,
            "must be at least 1",
        ));
    }
    if limits.max_memory_bytes < WASM_PAGE_BYTES
        || limits.max_memory_bytes > MAX_WASM32_MEMORY_BYTES
    {
        return Err(ConfigError::value(
            &key("max_memory_bytes"),
            limits.max_memory_bytes,
            "must be between 65536 (one page) and 4 GiB",
        ));
    }
    for (name, value) in [
        ("max_output_bytes", limits.max_output_bytes),
        ("max_body_bytes", limits.max_body_bytes),
        ("stream_after_bytes", limits.stream_after_bytes),
    ] {
        if value > MAX_BUFFER_BYTES {
            return Err(ConfigError::value(
                &key(name),
                value,
                "must be at most 1 GiB",
            ));
        }
    }
    Ok(limits)
}
