//! CGI/1.1 (RFC 3875) in both directions: the request becomes the guest's environment
//! ([`build_env`]), and the guest's stdout becomes the HTTP response ([`parse_output`]).

mod env;
mod response;

pub use env::{EnvError, Environment, RequestMeta, build_env, is_reserved_env_name};
pub use response::{CgiResponse, OutputError, parse_output};
