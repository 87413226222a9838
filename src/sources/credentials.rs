//! ModuleTable credentials: `WASMGATE_OCI_USERNAME` and `WASMGATE_OCI_PASSWORD`, or the
//! Docker `config.json` (in `DOCKER_CONFIG`, else `~/.docker`), as `docker login` and
//! `oras login` write it. Anonymous when neither names the host.
//!
//! Credentials belong to one registry host and are offered to no other (issue 30: a
//! Basic challenge from a second registry and the token realm of a third both received
//! them). `config.json` is keyed by host already. The environment's pair is for the host
//! `WASMGATE_OCI_REGISTRY` names (`HOST[:PORT]`); without it, for the one registry the
//! command is about (`push`'s target, or the one host every `source` names), and a config
//! whose sources name several hosts is refused at start until it says which.
//!
//! Credentials are handed to the registry client and nowhere else: they have no
//! `Display` or `Debug` of their own, and no error message quotes them.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

const USERNAME_VAR: &str = "WASMGATE_OCI_USERNAME";
const PASSWORD_VAR: &str = "WASMGATE_OCI_PASSWORD";
const REGISTRY_VAR: &str = "WASMGATE_OCI_REGISTRY";

/// A user name and password for one registry.
#[derive(Clone)]
pub(crate) struct Basic {
    pub(crate) user: String,
    pub(crate) password: String,
}

/// Why the environment's credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "WASMGATE_OCI_USERNAME is set, but the config's sources name several registries \
         ({0}); set WASMGATE_OCI_REGISTRY=HOST[:PORT] to the one they are for"
    )]
    Unbound(String),
}

/// Every registry's credentials, as this process was given them.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    /// The environment's pair, with the host it is for.
    env: Option<(String, Basic)>,
}

impl Credentials {
    /// The credentials of this process, the environment's bound to `WASMGATE_OCI_REGISTRY`
    /// or else to the one host in `hosts` (the registries the command talks to).
    pub(crate) fn from_env(hosts: &[&str]) -> Result<Credentials, CredentialsError> {
        let Some(basic) = basic_from_env() else {
            return Ok(Credentials::default());
        };
        let host = match std::env::var(REGISTRY_VAR) {
            Ok(host) => host,
            Err(_) => the_one(hosts)?,
        };
        Ok(Credentials {
            env: Some((host, basic)),
        })
    }

    /// The credentials for registry `host` (`HOST[:PORT]`), if any.
    pub(crate) fn for_host(&self, host: &str) -> Option<Basic> {
        match &self.env {
            Some((bound, basic)) if bound == host => Some(basic.clone()),
            _ => from_docker_config(host),
        }
    }
}

/// The one host of `hosts` (repeats aside), for the environment's credentials.
fn the_one(hosts: &[&str]) -> Result<String, CredentialsError> {
    let mut distinct: Vec<&str> = hosts.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.as_slice() {
        [] => Ok(String::new()),
        [one] => Ok(one.to_string()),
        several => Err(CredentialsError::Unbound(several.join(", "))),
    }
}

fn basic_from_env() -> Option<Basic> {
    let user = std::env::var(USERNAME_VAR).ok()?;
    let password = std::env::var(PASSWORD_VAR).unwrap_or_default();
    Some(Basic { user, password })
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

fn from_docker_config(host: &str) -> Option<Basic> {
    let text = std::fs::read_to_string(docker_config_path()?).ok()?;
    let config: DockerConfig = serde_json::from_str(&text).ok()?;
    lookup(&config, host)
}

/// The entry for `host`, keyed as Docker keys it: `HOST`, or a URL naming it.
fn lookup(config: &DockerConfig, host: &str) -> Option<Basic> {
    let entry = config.auths.iter().find_map(|(key, auth)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        (key.split('/').next() == Some(host)).then_some(auth)
    })?;
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Some(Basic {
            user: user.clone(),
            password: password.clone(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_deref()?)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(auth: Option<Basic>) -> Option<(String, String)> {
        auth.map(|b| (b.user, b.password))
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

    #[test]
    fn the_environment_s_pair_is_bound_to_one_host() {
        assert_eq!(the_one(&["r:5000", "r:5000"]), Ok("r:5000".into()));
        assert!(matches!(
            the_one(&["r:5000", "other:5000"]),
            Err(CredentialsError::Unbound(hosts)) if hosts == "other:5000, r:5000"
        ));
        let credentials = Credentials {
            env: Some((
                "r:5000".into(),
                Basic {
                    user: "u".into(),
                    password: "p".into(),
                },
            )),
        };
        assert!(credentials.for_host("r:5000").is_some());
        assert!(credentials.for_host("r:5001").is_none());
        assert!(credentials.for_host("other:5000").is_none());
    }
}
