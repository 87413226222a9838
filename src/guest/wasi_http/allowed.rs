//! The destinations a component may send HTTP requests to: the `allowed_outbound_hosts`
//! of its config section, each one a scheme, a host and a port.
//!
//! Matching is exact, with no wildcards and no name resolution: `http://127.0.0.1:9000`
//! lets through requests to that scheme, host and port and nothing else, and a port left
//! out means the scheme's default (80 or 443), on both sides. Host names compare without
//! regard to case, as DNS does.

use http::Uri;
use http::uri::Scheme;

/// One destination a component may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    https: bool,
    /// Lowercased; an IPv6 address keeps its brackets, as in a URI.
    host: String,
    port: u16,
}

/// Why an `allowed_outbound_hosts` entry is not a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedHostError {
    NotUrl,
    Scheme,
    Extra,
    Wildcard,
    Port,
}

impl AllowedHostError {
    /// The reason, as the config error's message ends.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            AllowedHostError::NotUrl => {
                "is not a URL like \"http://127.0.0.1:9000\" or \"https://api.example.com\""
            }
            AllowedHostError::Scheme => "must start with http:// or https://",
            AllowedHostError::Extra => {
                "must be a scheme, a host and a port only (no user, path or query)"
            }
            AllowedHostError::Wildcard => "has a wildcard: list each destination on its own",
            AllowedHostError::Port => "has a port that is not a number from 1 to 65535",
        }
    }
}

impl AllowedHost {
    /// Parses one entry of `allowed_outbound_hosts`.
    pub fn parse(text: &str) -> Result<AllowedHost, AllowedHostError> {
        let uri: Uri = text.parse().map_err(|_| AllowedHostError::NotUrl)?;
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(AllowedHostError::Scheme),
        };
        let authority = uri.authority().ok_or(AllowedHostError::NotUrl)?;
        let bare_path = matches!(uri.path(), "" | "/");
        if authority.as_str().contains('@') || !bare_path || uri.query().is_some() {
            return Err(AllowedHostError::Extra);
        }
        let host = authority.host();
        if host.contains('*') {
            return Err(AllowedHostError::Wildcard);
        }
        if !is_host(host) {
            return Err(AllowedHostError::NotUrl);
        }
        Ok(AllowedHost {
            https,
            host: authority.host().to_ascii_lowercase(),
            port: port_of(authority, https)?,
        })
    }

    /// Whether a request to `scheme://host:port` goes to this destination.
    pub(crate) fn admits(&self, https: bool, host: &str, port: Option<u16>) -> bool {
        self.https == https
            && self.host.eq_ignore_ascii_case(host)
            && self.port == port.unwrap_or(default_port(https))
    }
}

/// A DNS name, an IPv4 address, or an IPv6 address in brackets.
fn is_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The entry's port: the scheme's default when it names none; refused when it is not a
/// number from 1 to 65535 (`http::Uri` takes `:abc`, `:70000` and a bare `:` as no port,
/// and the request would only fail later, at name resolution). The authority has no user
/// part here, so it is the host, then the port if any.
fn port_of(authority: &http::uri::Authority, https: bool) -> Result<u16, AllowedHostError> {
    let after_host = &authority.as_str()[authority.host().len()..];
    match after_host.strip_prefix(':') {
        None if after_host.is_empty() => Ok(default_port(https)),
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(AllowedHostError::Port),
        None => Err(AllowedHostError::Port),
    }
}

fn default_port(https: bool) -> u16 {
    if https { 443 } else { 80 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(entry: &str, https: bool, host: &str, port: Option<u16>) -> bool {
        AllowedHost::parse(entry).unwrap().admits(https, host, port)
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        assert!(admits(
            "http://127.0.0.1:9000",
            false,
            "127.0.0.1",
            Some(9000)
        ));
        assert!(!admits(
            "http://127.0.0.1:9000",
            false,
            "127.0.0.1",
            Some(9001)
        ));
        assert!(!admits(
            "http://127.0.0.1:9000",
            true,
            "127.0.0.1",
            Some(9000)
        ));
        assert!(!admits(
            "http://127.0.0.1:9000",
            false,
            "127.0.0.2",
            Some(9000)
        ));
        assert!(!admits("http://127.0.0.1:9000", false, "127.0.0.1", None));
    }

    #[test]
    fn a_missing_port_is_the_schemes_default() {
        assert!(admits(
            "https://api.example.com",
            true,
            "api.example.com",
            None
        ));
        assert!(admits(
            "https://api.example.com",
            true,
            "API.Example.com",
            Some(443)
        ));
        assert!(admits(
            "http://example.com/",
            false,
            "example.com",
            Some(80)
        ));
        assert!(!admits(
            "https://api.example.com",
            true,
            "api.example.com",
            Some(8443)
        ));
        assert!(!admits(
            "https://example.com",
            true,
            "sub.example.com",
            None
        ));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert!(admits("http://[::1]:8000", false, "[::1]", Some(8000)));
    }

    #[test]
    fn entries_that_are_not_a_destination_are_refused() {
        use AllowedHostError::*;
        for (entry, why) in [
            ("127.0.0.1:9000", Scheme),
            ("ftp://example.com", Scheme),
            ("example.com", Scheme),
            ("http://", NotUrl),
            ("http://user:pw@example.com", Extra),
            ("http://example.com/api", Extra),
            ("http://example.com/?x=1", Extra),
            ("http://*.example.com", Wildcard),
            ("http://exa_mple.com", NotUrl),
            ("http://evil@127.0.0.1:9", Extra),
            ("http://127.0.0.1:abc", Port),
            ("http://127.0.0.1:70000", Port),
            ("http://127.0.0.1:", Port),
        ] {
            assert_eq!(AllowedHost::parse(entry), Err(why), "{entry}");
        }
    }
}
