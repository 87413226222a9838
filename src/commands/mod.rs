//! The one-shot commands beside `serve`: `run` (one request through a module file, as the
//! gateway would serve it) and `compile` (fill the artifact cache and exit).

pub(crate) mod compile;
pub(crate) mod run;
