//! Registry credentials: `WASMGATE_OCI_USERNAME` and `WASMGATE_OCI_PASSWORD`, or the
//! Docker `config.json` (in `DOCKER_CONFIG`, else `~/.docker`), as `docker login` and
//! `oras login` write it. Anonymous when neither names the host.
//!
//! Credentials are handed to the OCI client and nowhere else: they have no `Display` or
//! `Debug` of their own, and no error message quotes them.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

const USERNAME_VAR: &str = "WASMGATE_OCI_USERNAME";
const PASSWORD_VAR: &str = "WASMGATE_OCI_PASSWORD";

/// The credentials for registry `host`.
pub(crate) fn for_host(host: &str) -> RegistryAuth {
    from_env()
        .or_else(|| from_docker_config(host))
        .unwrap_or(RegistryAuth::Anonymous)
}

fn from_env() -> Option<RegistryAuth> {
    let user = std::env::var(USERNAME_VAR).ok()?;
    let password = std::env::var(PASSWORD_VAR).unwrap_or_default();
    Some(RegistryAuth::Basic(user, password))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn docker_config_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    Some(dir.join("config.json"))
}

fn from_docker_config(host: &str) -> Option<RegistryAuth> {
    let text = std::fs::read_to_string(docker_config_path()?).ok()?;
    let config: DockerConfig = serde_json::from_str(&text).ok()?;
    lookup(&config, host)
}

/// The entry for `host`, keyed as Docker keys it: `HOST`, or a URL naming it.
fn lookup(config: &DockerConfig, host: &str) -> Option<RegistryAuth> {
    let entry = config.auths.iter().find_map(|(key, auth)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        (key.split('/').next() == Some(host)).then_some(auth)
    })?;
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Some(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_deref()?)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(auth: Option<RegistryAuth>) -> Option<(String, String)> {
        match auth? {
            RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        }
    }

    #[test]
    fn docker_config_entries_are_found_by_host() {
        let text = r#"{"auths": {
            "https://registry.example.com/v1/": {"auth": "YWxpY2U6czNjcmV0"},
            "127.0.0.1:5000": {"username": "bob", "password": "pw"}
        }}"#;
        let config: DockerConfig = serde_json::from_str(text).unwrap();
        assert_eq!(
            basic(lookup(&config, "registry.example.com")),
            Some(("alice".into(), "s3cret".into()))
        );
        assert_eq!(
            basic(lookup(&config, "127.0.0.1:5000")),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(basic(lookup(&config, "other.example.com")), None);
    }
}
