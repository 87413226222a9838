//! An OCI module source as the config names it: `oci://HOST[:PORT]/REPOSITORY:TAG` or
//! `oci://HOST[:PORT]/REPOSITORY@sha256:...`.
//!
//! The registry host is always explicit: a bare `REPOSITORY:TAG` would mean Docker Hub
//! to the OCI client, which is never what a gateway config means by accident.

use std::fmt;

use oci_client::Reference;

/// The scheme a module's `source` starts with.
pub(crate) const OCI_SCHEME: &str = "oci://";

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    reference: Reference,
}

/// Why a `source` is not an OCI reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("does not start with oci://")]
    Scheme,
    #[error("does not name a registry host (oci://HOST[:PORT]/REPOSITORY:TAG)")]
    NoHost,
    #[error("is not an OCI reference")]
    Invalid,
}

impl ReferenceError {
    /// The reason, as the config error's message ends.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ReferenceError::Scheme => "must start with oci://",
            ReferenceError::NoHost => "must name its registry: oci://HOST[:PORT]/REPOSITORY:TAG",
            ReferenceError::Invalid => {
                "is not an OCI reference (a lowercase repository, then :TAG or @sha256:DIGEST)"
            }
        }
    }
}

impl OciReference {
    /// Parses `oci://HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)`; a reference with neither tag
    /// nor digest means the tag `latest`, as everywhere else in OCI tooling.
    pub fn parse(text: &str) -> Result<OciReference, ReferenceError> {
        let rest = text
            .strip_prefix(OCI_SCHEME)
            .ok_or(ReferenceError::Scheme)?;
        let (host, path) = rest.split_once('/').ok_or(ReferenceError::NoHost)?;
        if host.is_empty() || path.is_empty() {
            return Err(ReferenceError::NoHost);
        }
        let reference: Reference = rest
            .parse()
            .map_err(|_: oci_client::ParseError| ReferenceError::Invalid)?;
        // The parser moves a host without a dot or a port (`registry/fns/x`) to Docker Hub.
        if reference.registry() != host {
            return Err(ReferenceError::NoHost);
        }
        Ok(OciReference { reference })
    }

    /// The reference in the client's terms.
    pub(crate) fn as_oci(&self) -> &Reference {
        &self.reference
    }

    /// `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        self.reference.registry()
    }

    /// Whether the reference names a manifest digest, so that it can never change.
    pub fn is_pinned(&self) -> bool {
        self.reference.digest().is_some()
    }

    /// Whether the registry is on a loopback address, which may use plain HTTP unlisted.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.host())
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for OciReference {
    /// `HOST[:PORT]/REPOSITORY:TAG` (or `@DIGEST`), without the scheme.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reference;
        write!(f, "{}/{}", r.registry(), r.repository())?;
        if let Some(tag) = r.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = r.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_digests_and_ports_parse() {
        let r = OciReference::parse("oci://127.0.0.1:5000/fns/hello:v1").unwrap();
        assert_eq!(
            (r.host(), r.is_pinned(), r.to_string().as_str()),
            ("127.0.0.1:5000", false, "127.0.0.1:5000/fns/hello:v1")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = OciReference::parse(&format!("oci://ghcr.io/acme/fn@{digest}")).unwrap();
        assert!(r.is_pinned());
        assert_eq!(r.to_string(), format!("ghcr.io/acme/fn@{digest}"));
        let r = OciReference::parse("oci://localhost/fn").unwrap();
        assert_eq!(r.to_string(), "localhost/fn:latest");
    }

    #[test]
    fn a_source_without_scheme_or_host_is_refused() {
        assert_eq!(
            OciReference::parse("127.0.0.1:5000/fn:v1"),
            Err(ReferenceError::Scheme)
        );
        assert_eq!(
            OciReference::parse("oci://fn:v1"),
            Err(ReferenceError::NoHost)
        );
        assert_eq!(
            OciReference::parse("oci://registry/fns/x:v1"),
            Err(ReferenceError::NoHost)
        );
        assert_eq!(
            OciReference::parse("oci://127.0.0.1:5000/Fns/X:v1"),
            Err(ReferenceError::Invalid)
        );
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost:5000", "127.0.0.1", "127.9.9.9:80", "[::1]:5000"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.0.0.1:5000",
            "registry.example.com",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
