//! The one-shot commands beside `serve`: `run` (one request through a module file, as the
//! gateway would serve it), `compile` (fill the artifact cache and exit) and `push`
//! (publish a module to an OCI registry), `kv` (an operator's reads and writes of a
//! store), `new` (a first function's project, from a template); and `compile-worker`, which the gateway starts to
//! compile one module in a process of its own.

pub(crate) mod compile;
pub(crate) mod compile_worker;
pub(crate) mod kv;
pub(crate) mod new;
pub(crate) mod push;
pub(crate) mod run;
