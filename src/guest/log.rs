//! The `env.log_i32` and `env.log_string` host functions: a guest writes `[NAME]: ...` to
//! the gateway's log, tagged with its module. Both are optional imports, linked for every
//! kind of store.
//!
//! What a guest logs is escaped ([`escape_controls`]): a CR or LF in it would otherwise
//! start a line of its own in the text log, which could pass for one of the gateway's.

use std::borrow::Cow;

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

/// `text` with its control characters (CR, LF, ESC, ...) escaped as `\r`, `\n`,
/// `\u{1b}`, so that a guest's line stays one line of the log, tagged with its module.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => escaped.push(c),
            c if c.is_control() => escaped.extend(c.escape_default()),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
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
    let text = escape_controls(&text);
    let module = &state.module;
    tracing::info!(target: "wasmgate::guest", module = %module, "[{module}]: {text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line_of_their_own() {
        assert_eq!(
            escape_controls("plain text\twith a tab"),
            "plain text\twith a tab"
        );
        let forged = "ok\n2026-12-01T00:00:00Z  INFO wasmgate: module loaded\r\x1b[2K";
        let escaped = escape_controls(forged);
        assert!(!escaped.contains(['\n', '\r', '\x1b']), "{escaped}");
        assert!(
            escaped.contains("\\n2026") && escaped.contains("\\r"),
            "{escaped}"
        );
    }
}
