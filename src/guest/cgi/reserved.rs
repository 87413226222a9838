//! The environment names the gateway sets itself for every request, so that a module's
//! config may not: a leaf that both the config checks and the CGI environment read.

/// The seed's lowercase names and the CGI/1.1 names: set by the gateway for every request.
const RESERVED: &[&str] = &[
    "http_path",
    "http_method",
    "http_host",
    "http_query",
    "remote_addr",
    "GATEWAY_INTERFACE",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
];

/// Whether the gateway sets `name` itself, so a module's config may not.
pub(crate) fn is_reserved_env_name(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with("HTTP_")
}
