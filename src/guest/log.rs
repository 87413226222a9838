//! The `env.log_i32` and `env.log_string` host functions: a guest writes `[NAME]: ...` to
//! the gateway's log, tagged with its module. Both are optional imports, linked for every
//! kind of store.
//!
//! What a guest logs cannot start a line of its own: the log's writer escapes control
//! characters in every event (`crate::logging`).

use wasmtime::{Caller, Extern, Linker};

use super::store::StoreState;

/// Bytes of one `env.log_string` message that are logged; the rest is cut.
const MAX_LOG_STRING_BYTES: usize = 4096;

/// Adds both functions to `linker`.
pub(crate) fn add_to_linker<Io: 'static>(
    linker: &mut Linker<StoreState<Io>>,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "log_i32",
        |caller: Caller<'_, StoreState<Io>>, value: i32| {
            let module = &caller.data().module;
            tracing::info!(target: "wasmgate::guest", module = %module, "[{module}]: {value}");
        },
    )?;
    linker.func_wrap("env", "log_string", log_string::<Io>)?;
    Ok(())
}

/// `env.log_string(ptr, len)`: logs a UTF-8 (or lossily decoded) string from guest memory.
fn log_string<Io: 'static>(
    mut caller: Caller<'_, StoreState<Io>>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("env.log_string needs an exported memory");
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let shown = len.min(MAX_LOG_STRING_BYTES);
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let Some(bytes) = ptr.checked_add(shown).and_then(|end| data.get(ptr..end)) else {
        wasmtime::bail!("env.log_string: {len} bytes at {ptr} are outside memory");
    };
    let text = String::from_utf8_lossy(bytes);
    let module = &state.module;
    tracing::info!(target: "wasmgate::guest", module = %module, "[{module}]: {text}");
    Ok(())
}
