//! What the host gives a guest: the per-request store state, its resource limiter, and the
//! two linkers a module can be linked against (WASI preview1, served by the gateway's own
//! functions or by wasmtime-wasi, plus the `env.log_*` functions in both).

use std::sync::Arc;

use wasmtime::{Caller, Engine, Extern, Linker, ResourceLimiter};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::preview1::{self, GuestAbi, RequestIo};

/// Bytes of one `env.log_string` message that are logged; the rest is cut.
pub const MAX_LOG_STRING_BYTES: usize = 4096;
/// Instances, tables and memories one request may create.
const MAX_INSTANCES: usize = 1;
const MAX_TABLES: usize = 4;
const MAX_MEMORIES: usize = 1;
/// Elements one table may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The state of one request's store.
pub struct Host {
    /// What the gateway's own preview1 functions serve ([`GuestAbi::Cgi`] modules).
    pub io: Option<RequestIo>,
    /// wasmtime-wasi's context ([`GuestAbi::Wasi`] modules).
    pub wasi: Option<WasiP1Ctx>,
    pub limits: GuestLimiter,
    pub module: Arc<str>,
}

/// Caps a guest's memory and tables, and remembers whether the memory cap was hit so that
/// the trap that usually follows (an allocator giving up) is reported as `memory_exceeded`.
pub struct GuestLimiter {
    max_memory_bytes: usize,
    pub memory_exceeded: bool,
}

impl GuestLimiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        GuestLimiter {
            max_memory_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// The two linkers, one per [`GuestAbi`].
pub struct Linkers {
    cgi: Linker<Host>,
    wasi: Linker<Host>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut cgi = Linker::new(engine);
        preview1::add_to_linker(&mut cgi)?;
        add_log_functions(&mut cgi)?;
        let mut wasi = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut wasi, wasi_ctx)?;
        add_log_functions(&mut wasi)?;
        Ok(Linkers { cgi, wasi })
    }

    pub fn get(&self, abi: GuestAbi) -> &Linker<Host> {
        match abi {
            GuestAbi::Cgi => &self.cgi,
            GuestAbi::Wasi => &self.wasi,
        }
    }
}

/// The wasmtime-wasi context of a store. Only [`GuestAbi::Wasi`] modules are linked against
/// wasmtime-wasi, and invoke gives their stores one; the empty context is a fallback that is
/// never reached, rather than a panic.
fn wasi_ctx(host: &mut Host) -> &mut WasiP1Ctx {
    host.wasi
        .get_or_insert_with(|| WasiCtxBuilder::new().build_p1())
}

fn add_log_functions(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "log_i32", |caller: Caller<'_, Host>, value: i32| {
        let module = &caller.data().module;
        tracing::info!(target: "wasmgate::guest", module = %module, "[{module}]: {value}");
    })?;
    linker.func_wrap("env", "log_string", log_string)?;
    Ok(())
}

/// `env.log_string(ptr, len)`: logs a UTF-8 (or lossily decoded) string from guest memory.
fn log_string(mut caller: Caller<'_, Host>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("env.log_string needs an exported memory");
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let shown = len.min(MAX_LOG_STRING_BYTES);
    let data = memory.data(&caller);
    let Some(bytes) = ptr.checked_add(shown).and_then(|end| data.get(ptr..end)) else {
        wasmtime::bail!("env.log_string: {len} bytes at {ptr} are outside memory");
    };
    let text = String::from_utf8_lossy(bytes).into_owned();
    let module = caller.data_mut().module.clone();
    tracing::info!(target: "wasmgate::guest", module = %module, "[{module}]: {text}");
    Ok(())
}
