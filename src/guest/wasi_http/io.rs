//! What a component's WASI and wasi:http functions read and write: its `wasi:cli` context
//! (the module's own `env`, its arguments, stdout and stderr to the log), the resource
//! table, the HTTP context, and the outbound policy.
//!
//! The context opens nothing: no preopened directories, and no sockets (TCP, UDP and name
//! lookups are all refused), so the only way out of a component is an outgoing HTTP
//! request, which the [`OutboundPolicy`] decides.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::keyvalue::KeyValue;
use super::outbound::OutboundPolicy;
use crate::guest::cgi::stderr::{GuestLog, LogStream};
use crate::guest::cgi::string_block::StringBlock;
use crate::guest::host_limits::{MAX_FIELDS_BYTES, MAX_RESOURCES};
use crate::guest::store::StoreState;

/// The store of a wasi:http component.
pub(crate) type ComponentStore = StoreState<ComponentIo>;

/// One request's component I/O.
pub(crate) struct ComponentIo {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: OutboundPolicy,
}

impl ComponentIo {
    /// The I/O of one request of module `name`, with its own `env` and `args`, whose
    /// outgoing requests `outbound` decides.
    pub(crate) fn new(
        name: &Arc<str>,
        env: &[(String, String)],
        args: &StringBlock,
        outbound: OutboundPolicy,
    ) -> ComponentIo {
        let mut wasi = WasiCtxBuilder::new();
        for (key, value) in env {
            wasi.env(key, value);
        }
        for arg in args.strings() {
            wasi.arg(arg);
        }
        wasi.stdout(LogStream(GuestLog::new(name.clone())))
            .stderr(LogStream(GuestLog::new(name.clone())))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        ComponentIo {
            wasi: wasi.build(),
            http,
            table,
            outbound,
        }
    }
}

impl ComponentStore {
    /// What the `wasi:keyvalue` functions reach.
    pub(crate) fn keyvalue(&mut self) -> KeyValue<'_> {
        KeyValue {
            kv: &mut self.kv,
            table: &mut self.io.table,
        }
    }
}

impl WasiView for ComponentStore {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.io.wasi,
            table: &mut self.io.table,
        }
    }
}

impl WasiHttpView for ComponentStore {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.io.http,
            table: &mut self.io.table,
            hooks: &mut self.io.outbound,
        }
    }
}
