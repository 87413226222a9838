//! Which implementation of WASI preview1 a CGI module is linked against, chosen once
//! from its import list when it is loaded.

use wasmtime::Module;

/// The import module of WASI preview1.
pub(super) const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The preview1 functions served here; a module importing anything else gets wasmtime-wasi.
pub const CGI_IMPORTS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "fd_write",
    "fd_read",
    "fd_close",
    "fd_fdstat_get",
    "fd_seek",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "sched_yield",
    "proc_exit",
];

/// Which implementation of WASI preview1 a CGI module is linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview1 {
    /// The gateway's own functions (`functions.rs`): stdio, environment and arguments only.
    Gateway,
    /// wasmtime-wasi's preview1, for modules that need more (files, polling, ...).
    WasmtimeWasi,
}

impl Preview1 {
    /// The implementation `module` needs: [`Preview1::Gateway`] when every WASI function
    /// it imports is served here and it has no volumes to open.
    pub(crate) fn for_module(module: &Module, has_volumes: bool) -> Preview1 {
        let all_served = module
            .imports()
            .filter(|import| import.module() == WASI_MODULE)
            .all(|import| CGI_IMPORTS.contains(&import.name()));
        if all_served && !has_volumes {
            Preview1::Gateway
        } else {
            Preview1::WasmtimeWasi
        }
    }

    /// The `wasi` field of `/modules`: `cgi` for the gateway's own functions.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Preview1::Gateway => "cgi",
            Preview1::WasmtimeWasi => "wasi",
        }
    }
}
