//! Which of the two kinds of function a `.wasm` file is, told by its header alone (the
//! version and layer fields after the `\0asm` magic), with no manifest and no naming
//! convention: a core module is served CGI-style, a component through wasi:http.

/// How every WebAssembly binary, module or component, begins.
const WASM_MAGIC: &[u8] = b"\0asm";
/// The layer field (bytes 6 and 7, little-endian) of a component; a core module's is 0.
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// How a guest is handed its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Abi {
    /// A WASI preview1 command module: environment variables, stdin, stdout.
    #[serde(rename = "cgi")]
    Cgi,
    /// A component exporting a wasi:http handler (told apart by [`Abi::of`]; once linked,
    /// a 0.3 handler is [`Abi::WasiHttp03`]).
    #[serde(rename = "wasi-http")]
    WasiHttp,
    /// A component exporting `wasi:http/handler@0.3` (the `wasi:http/service` world).
    #[serde(rename = "wasi-http@0.3")]
    WasiHttp03,
}

impl Abi {
    /// The ABI of a binary by its header; `None` when it is not WebAssembly at all.
    pub(crate) fn of(bytes: &[u8]) -> Option<Abi> {
        if !bytes.starts_with(WASM_MAGIC) {
            return None;
        }
        Some(match bytes.get(6..8) {
            Some(layer) if layer == COMPONENT_LAYER => Abi::WasiHttp,
            _ => Abi::Cgi,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_tells_a_component_from_a_core_module() {
        assert_eq!(Abi::of(b"\0asm\x01\0\0\0"), Some(Abi::Cgi));
        assert_eq!(Abi::of(b"\0asm\x0d\0\x01\0"), Some(Abi::WasiHttp));
        assert_eq!(Abi::of(b"\0asm"), Some(Abi::Cgi));
        assert_eq!(Abi::of(b"\x7fELF\x02\x01\x01\0"), None);
        assert_eq!(Abi::of(b""), None);
    }
}
