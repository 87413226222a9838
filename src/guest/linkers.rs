//! The linkers a guest can be linked against, one per store type: for a CGI module the
//! gateway's own preview1 functions, or wasmtime-wasi's, both with the `env.log_*`
//! functions; for a wasi:http component, wasmtime-wasi's WASIp2 (and the clocks, random
//! and cli of WASIp3), wasmtime-wasi-http's 0.2 and 0.3, and the gateway's
//! `wasi:keyvalue`.
//! Linking happens once per module, at load, into a [`Prepared`] guest that every request
//! instantiates.

use std::collections::HashSet;

use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ModuleExport, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::cgi::kv;
use super::cgi::preview1::{self, Preview1, RequestIo};
use super::log;
use super::store::{Footprint, GuestLimiter, StoreState};
use super::swap::SlotResetCheck;
use super::wasi_http::io::ComponentStore;
use super::wasi_http::keyvalue;
use crate::guest::abi::Abi;
use crate::kv::KvSession;

/// The entry point of a WASI command module.
const START_EXPORT: &str = "_start";
/// The memory WASI functions read and write.
const MEMORY_EXPORT: &str = "memory";

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
    #[error(
        "the component exports no wasi:http handler: a component of the wasi:http/proxy \
         world (exporting wasi:http/incoming-handler@0.2) or of the wasi:http/service world \
         (exporting wasi:http/handler@0.3) is expected ({0})"
    )]
    NoHttpHandler(String),
}

/// A guest linked and ready to instantiate.
pub(crate) enum Prepared {
    Cgi(CgiModule),
    /// A `wasi:http/incoming-handler@0.2` component.
    Http(ProxyPre<ComponentStore>),
    /// A `wasi:http/handler@0.3` component.
    Service(ServicePre<ComponentStore>),
}

/// A CGI module linked and ready to instantiate, with its `_start` looked up.
pub(crate) enum CgiModule {
    Gateway {
        pre: InstancePre<GatewayStore>,
        start: ModuleExport,
        /// Its exported memory, which each instance hands its preview1 functions once
        /// rather than each call looking it up by name.
        memory: Option<ModuleExport>,
    },
    WasmtimeWasi {
        pre: InstancePre<WasiStore>,
        start: ModuleExport,
    },
}

impl Prepared {
    /// Which preview1 implementation serves a CGI module.
    pub(crate) fn preview1(&self) -> Option<Preview1> {
        match self {
            Prepared::Cgi(CgiModule::Gateway { .. }) => Some(Preview1::Gateway),
            Prepared::Cgi(CgiModule::WasmtimeWasi { .. }) => Some(Preview1::WasmtimeWasi),
            Prepared::Http(_) | Prepared::Service(_) => None,
        }
    }

    pub(crate) fn abi(&self) -> Abi {
        match self {
            Prepared::Cgi(_) => Abi::Cgi,
            Prepared::Http(_) => Abi::WasiHttp,
            Prepared::Service(_) => Abi::WasiHttp03,
        }
    }
}

/// Every linker, built once per engine.
pub(crate) struct Linkers {
    gateway: Linker<GatewayStore>,
    wasi: Linker<WasiStore>,
    component: wasmtime::component::Linker<ComponentStore>,
    /// The functions a CGI module may import, as (module, name): wasmtime-wasi's linker
    /// has every one the gateway's own has, and more.
    cgi_imports: HashSet<(String, String)>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut gateway = Linker::new(engine);
        preview1::add_to_linker(&mut gateway, |state: &mut GatewayStore| &mut state.io)?;
        log::add_to_linker(&mut gateway)?;
        kv::add_to_linker(&mut gateway)?;
        let mut wasi = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut wasi, |state: &mut WasiStore| &mut state.io)?;
        log::add_to_linker(&mut wasi)?;
        kv::add_to_linker(&mut wasi)?;
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component)?;
        wasmtime_wasi::p3::clocks::add_to_linker(&mut component)?;
        wasmtime_wasi::p3::random::add_to_linker(&mut component)?;
        wasmtime_wasi::p3::cli::add_to_linker(&mut component)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut component)?;
        keyvalue::add_to_linker(&mut component, ComponentStore::keyvalue)?;
        let cgi_imports = defined_functions(engine, &wasi);
        Ok(Linkers {
            gateway,
            wasi,
            component,
            cgi_imports,
        })
    }

    /// The functions a CGI module may import, as (module, name).
    pub(crate) fn cgi_imports(&self) -> &HashSet<(String, String)> {
        &self.cgi_imports
    }

    /// Links `module` against the implementation it needs (wasmtime-wasi when it has
    /// `volumes` to open), and finds its `_start`.
    pub(crate) fn link(&self, module: &Module, has_volumes: bool) -> Result<Prepared, LinkError> {
        let start =
            export_of(module, START_EXPORT, |e| e.func().is_some()).ok_or(LinkError::NoStart)?;
        let refused = |e: wasmtime::Error| LinkError::Imports(one_line(&format!("{e:#}")));
        Ok(Prepared::Cgi(
            match Preview1::for_module(module, has_volumes) {
                Preview1::Gateway => CgiModule::Gateway {
                    pre: self.gateway.instantiate_pre(module).map_err(refused)?,
                    start,
                    memory: export_of(module, MEMORY_EXPORT, |e| e.memory().is_some()),
                },
                Preview1::WasmtimeWasi => CgiModule::WasmtimeWasi {
                    pre: self.wasi.instantiate_pre(module).map_err(refused)?,
                    start,
                },
            },
        ))
    }

    /// Links `component` against WASI and wasi:http, and finds its HTTP handler: 0.2's
    /// `incoming-handler`, or else 0.3's `handler`.
    pub(crate) fn link_component(&self, component: &Component) -> Result<Prepared, LinkError> {
        let pre = self
            .component
            .instantiate_pre(component)
            .map_err(|e| LinkError::Imports(one_line(&format!("{e:#}"))))?;
        match ProxyPre::new(pre.clone()) {
            Ok(proxy) => Ok(Prepared::Http(proxy)),
            Err(not_02) => ServicePre::new(pre)
                .map(Prepared::Service)
                .map_err(|not_03| {
                    LinkError::NoHttpHandler(one_line(&format!("0.2: {not_02:#}; 0.3: {not_03:#}")))
                }),
        }
    }
}

/// The functions `linker` defines, as (module, name). Listing them takes a store, which
/// holds nothing here and is dropped at once.
fn defined_functions(engine: &Engine, linker: &Linker<WasiStore>) -> HashSet<(String, String)> {
    let state = StoreState {
        io: WasiCtxBuilder::new().build_p1(),
        limiter: GuestLimiter::new(0, Footprint::CORE_MODULE),
        module: "".into(),
        kv: KvSession::new(None, std::time::Instant::now()),
        _reset_check: SlotResetCheck,
    };
    let mut store = Store::new(engine, state);
    linker
        .iter(&mut store)
        .filter(|(_, _, item)| item.clone().into_func().is_some())
        .map(|(module, name, _)| (module.to_string(), name.to_string()))
        .collect()
}

/// `module`'s export `name`, when it is of the kind `is_kind` accepts.
fn export_of(
    module: &Module,
    name: &str,
    is_kind: impl Fn(&ExternType) -> bool,
) -> Option<ModuleExport> {
    module
        .get_export_index(name)
        .filter(|_| module.get_export(name).is_some_and(|e| is_kind(&e)))
}

/// wasmtime's messages can span lines; a load error is shown on one (log, JSON, HTTP).
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
