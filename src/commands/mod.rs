//! The one-shot commands beside `serve`: `run` (one request through a module file, as the
//! gateway would serve it), `compile` (fill the artifact cache and exit) and `push`
//! (publish a module to an OCI registry).

pub(crate) mod compile;
pub(crate) mod push;
pub(crate) mod run;
