//! Answering a registry's authentication challenge, with that registry's own credentials
//! and no one else's.
//!
//! A request goes out with the grant already held for its registry and scope (none, at
//! first); a `401` carries a `WWW-Authenticate` challenge, answered here once:
//!
//! - `Basic`: the registry's credentials, if it has some ([`Credentials::for_host`]);
//! - `Bearer realm=...`: a token from the realm, asked for with the registry's
//!   credentials only when the realm is on the registry's own host and port, anonymously
//!   otherwise (a realm elsewhere is a third party: issue 30 saw one receive the password).
//!
//! Grants are kept per registry and scope until the token's `expires_in`, so an unchanged
//! tag costs one request per poll. A grant is only ever attached to requests to its own
//! registry; on a redirect to another host the HTTP client drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::secrets::RegistryAuth;
use reqwest::{RequestBuilder, Url};
use serde::Deserialize;

use super::credentials::{Basic, Credentials};
use super::error::SourceError;
use super::wire::{SMALL_RESPONSE_TIMEOUT, read_capped};

/// Bytes of a token response that are read.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 64 * 1024;
/// How long a token lives when the realm does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is renewed this long before it expires.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(5);
/// How long a Basic grant is kept before the registry is asked again.
const BASIC_LIFETIME: Duration = Duration::from_secs(3600);

/// What a request to a registry carries.
#[derive(Clone)]
pub(crate) enum Grant {
    Anonymous,
    Basic(Basic),
    Bearer(String),
}

impl Grant {
    /// `request` carrying this grant.
    pub(crate) fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Grant::Anonymous => request,
            Grant::Basic(b) => request.basic_auth(&b.user, Some(&b.password)),
            Grant::Bearer(token) => request.bearer_auth(token),
        }
    }

    /// The same grant, as `oci-client` (which pushes) takes it.
    pub(crate) fn registry_auth(&self) -> RegistryAuth {
        match self {
            Grant::Anonymous => RegistryAuth::Anonymous,
            Grant::Basic(b) => RegistryAuth::Basic(b.user.clone(), b.password.clone()),
            Grant::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// The grants of one gateway's registries.
pub(crate) struct Authorizer {
    http: reqwest::Client,
    credentials: Credentials,
    plain_http: Arc<[String]>,
    held: Mutex<HashMap<(String, String), (Grant, Instant)>>,
}

impl Authorizer {
    pub(crate) fn new(
        http: reqwest::Client,
        credentials: Credentials,
        plain_http: Arc<[String]>,
    ) -> Authorizer {
        Authorizer {
            http,
            credentials,
            plain_http,
            held: Mutex::default(),
        }
    }

    /// The grant held for `scope` on registry `host`, while it lasts.
    pub(crate) fn held(&self, host: &str, scope: &str) -> Grant {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get(&(host.to_string(), scope.to_string())) {
            Some((grant, until)) if Instant::now() < *until => grant.clone(),
            _ => Grant::Anonymous,
        }
    }

    /// Answers `challenge` (a `WWW-Authenticate` value) from registry `host` for `scope`.
    pub(crate) async fn answer(
        &self,
        host: &str,
        scope: &str,
        challenge: &str,
    ) -> Result<Grant, SourceError> {
        let refused = || SourceError::Unauthorized(host.to_string());
        let challenge = Challenge::parse(challenge).ok_or_else(refused)?;
        let (grant, lifetime) = match challenge.scheme.as_str() {
            "basic" => (
                Grant::Basic(self.credentials.for_host(host).ok_or_else(refused)?),
                BASIC_LIFETIME,
            ),
            "bearer" => self.token(host, scope, &challenge).await?,
            _ => return Err(refused()),
        };
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_RENEW_MARGIN);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(
            (host.to_string(), scope.to_string()),
            (grant.clone(), until),
        );
        Ok(grant)
    }

    /// A token from the challenge's realm.
    async fn token(
        &self,
        host: &str,
        scope: &str,
        challenge: &Challenge,
    ) -> Result<(Grant, Duration), SourceError> {
        let refused = || SourceError::Unauthorized(host.to_string());
        let realm = challenge.param("realm").ok_or_else(refused)?;
        let realm = Url::parse(realm).map_err(|_| refused())?;
        let plain_allowed = self.plain_http.iter().any(|h| h == host);
        match realm.scheme() {
            "https" => {}
            "http" if plain_allowed => {}
            _ => return Err(refused()),
        }
        let mut request = self
            .http
            .get(realm.clone())
            .timeout(SMALL_RESPONSE_TIMEOUT)
            .query(&[("scope", challenge.param("scope").unwrap_or(scope))]);
        if let Some(service) = challenge.param("service") {
            request = request.query(&[("service", service)]);
        }
        if authority(&realm) == host
            && let Some(basic) = self.credentials.for_host(host)
        {
            request = request.basic_auth(basic.user, Some(basic.password));
        }
        let response = request.send().await.map_err(|_| refused())?;
        if !response.status().is_success() {
            return Err(refused());
        }
        let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|_| refused())?;
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|_| refused())?;
        let lifetime = token
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let token = token.token.or(token.access_token).ok_or_else(refused)?;
        Ok((Grant::Bearer(token), lifetime))
    }
}

/// A token endpoint's answer (the distribution spec's token authentication).
#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// `HOST[:PORT]` of `url`, as a reference names its registry.
pub(crate) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// A parsed `WWW-Authenticate` challenge: `SCHEME k="v", k=v, ...`.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    /// Lowercase.
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn parse(text: &str) -> Option<Challenge> {
        let text = text.trim();
        let (scheme, mut rest) = text.split_once(' ').unwrap_or((text, ""));
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if rest.is_empty() {
                break;
            }
            let (key, after) = rest.split_once('=')?;
            let (value, after) = match after.strip_prefix('"') {
                Some(quoted) => unquote(quoted)?,
                None => {
                    let end = after.find(',').unwrap_or(after.len());
                    (after[..end].trim().to_string(), &after[end..])
                }
            };
            params.push((key.trim().to_ascii_lowercase(), value));
            rest = after;
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The quoted string at the start of `text` (its opening quote already taken), and what
/// follows its closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_as_registries_send_them() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:fns/a:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example.com/token"));
        assert_eq!(c.param("scope"), Some("repository:fns/a:pull"));
        let c = Challenge::parse(r#"Basic realm="a \"quoted\" realm", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(c.param("charset"), Some("UTF-8"));
        assert_eq!(Challenge::parse(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn a_realm_s_authority_is_compared_with_the_port() {
        let url = |s| Url::parse(s).unwrap();
        assert_eq!(
            authority(&url("https://r.example.com/token")),
            "r.example.com"
        );
        assert_eq!(authority(&url("http://127.0.0.1:5000/t")), "127.0.0.1:5000");
    }
}
