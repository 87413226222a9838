//! The linkers a CGI module can be linked against, one per store type: the gateway's own
//! preview1 functions, or wasmtime-wasi's; both with the `env.log_*` functions. Linking
//! happens once per module, at load, into a [`Prepared`] module that every request
//! instantiates.

use wasmtime::{Engine, InstancePre, Linker, Module, ModuleExport};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::cgi::preview1::{self, Preview1, RequestIo};
use super::log;
use super::store::StoreState;

/// The entry point of a WASI command module.
const START_EXPORT: &str = "_start";

/// The store of a module served by the gateway's own preview1 functions.
pub(crate) type GatewayStore = StoreState<RequestIo>;
/// The store of a module served by wasmtime-wasi.
pub(crate) type WasiStore = StoreState<WasiP1Ctx>;

/// Why a compiled module cannot be linked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("cannot link: {0}")]
    Imports(String),
    #[error("no `_start` function exported: a WASI command module is expected")]
    NoStart,
}

/// A module linked and ready to instantiate, with its `_start` looked up.
pub(crate) enum Prepared {
    Gateway {
        pre: InstancePre<GatewayStore>,
        start: ModuleExport,
    },
    WasmtimeWasi {
        pre: InstancePre<WasiStore>,
        start: ModuleExport,
    },
}

impl Prepared {
    /// Which preview1 implementation serves the module.
    pub(crate) fn preview1(&self) -> Preview1 {
        match self {
            Prepared::Gateway { .. } => Preview1::Gateway,
            Prepared::WasmtimeWasi { .. } => Preview1::WasmtimeWasi,
        }
    }
}

/// Both linkers, built once per engine.
pub(crate) struct Linkers {
    gateway: Linker<GatewayStore>,
    wasi: Linker<WasiStore>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut gateway = Linker::new(engine);
        preview1::add_to_linker(&mut gateway, |state: &mut GatewayStore| &mut state.io)?;
        log::add_to_linker(&mut gateway)?;
        let mut wasi = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut wasi, |state: &mut WasiStore| &mut state.io)?;
        log::add_to_linker(&mut wasi)?;
        Ok(Linkers { gateway, wasi })
    }

    /// Links `module` against the implementation it needs (wasmtime-wasi when it has
    /// `volumes` to open), and finds its `_start`.
    pub(crate) fn link(&self, module: &Module, has_volumes: bool) -> Result<Prepared, LinkError> {
        let start = module
            .get_export_index(START_EXPORT)
            .filter(|_| {
                module
                    .get_export(START_EXPORT)
                    .is_some_and(|e| e.func().is_some())
            })
            .ok_or(LinkError::NoStart)?;
        let refused = |e: wasmtime::Error| LinkError::Imports(one_line(&format!("{e:#}")));
        Ok(match Preview1::for_module(module, has_volumes) {
            Preview1::Gateway => Prepared::Gateway {
                pre: self.gateway.instantiate_pre(module).map_err(refused)?,
                start,
            },
            Preview1::WasmtimeWasi => Prepared::WasmtimeWasi {
                pre: self.wasi.instantiate_pre(module).map_err(refused)?,
                start,
            },
        })
    }
}

/// wasmtime's messages can span lines; a load error is shown on one (log, JSON, HTTP).
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
