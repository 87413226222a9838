//! Which `Host` the admin listener answers: a page in a browser on the operator's machine
//! could otherwise read `/modules` and `/metrics` through DNS rebinding (a name of the
//! attacker's that resolves to 127.0.0.1 after the page has loaded). Rebinding needs a
//! name, so the listener answers a request with no `Host` (HTTP/1.0 health checks), an IP
//! address (Prometheus, kubelet probes and load balancers use the pod's or host's
//! address), `localhost`, or a name listed in `admin_hosts`; anything else is a 421.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::HOST;

/// The loopback name every resolver keeps to itself.
const LOCALHOST: &str = "localhost";

/// Whether the admin listener answers a request with these `headers`, given the operator's
/// own names for it (`admin_hosts`, lowercased).
pub(crate) fn answers(headers: &HeaderMap, admin_hosts: &[String]) -> bool {
    let Some(host) = headers.get(HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = name_of(host).to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == LOCALHOST || admin_hosts.contains(&name)
}

/// `host` without its port; an IPv6 address without its brackets.
fn name_of(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers_host(host: Option<&str>, names: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(HOST, host.parse().unwrap());
        }
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        answers(&headers, &names)
    }

    #[test]
    fn addresses_localhost_and_listed_names_are_answered_and_other_names_are_not() {
        for host in [
            None,
            Some("127.0.0.1:9180"),
            Some("10.0.3.7:9180"),
            Some("[::1]:9180"),
            Some("localhost:9180"),
            Some("LOCALHOST"),
            Some("gw.internal:9180"),
        ] {
            assert!(answers_host(host, &["gw.internal"]), "{host:?}");
        }
        for host in [
            "rebind.attacker.example:9180",
            "localhost.attacker.example",
            "gw.internal",
        ] {
            assert!(!answers_host(Some(host), &[]), "{host}");
        }
    }
}
