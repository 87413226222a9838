//! Refuses, in milliseconds and before anything is compiled, a module that could never be
//! served.
//!
//! Compiling is the expensive step: seconds to minutes, and gigabytes for a hostile module
//! (BENCHMARKS.md, "Compile bombs"). Whatever can be told from the binary's sections alone
//! is told first, with the real reason: a core module with no `_start` (a reactor or a
//! library), an import the gateway does not provide, a memory or tables that no pool slot
//! can hold, a component that exports no wasi:http handler. The binary is only parsed
//! here, not validated: a binary that does not even parse is left to the compiler, which
//! says why in its own words, as fast.

use std::collections::HashSet;

use wasmparser::{ComponentExternalKind, ExternalKind, Parser, Payload, TypeRef};

use crate::guest::abi::Abi;

/// The entry point of a WASI command module.
const START_EXPORT: &str = "_start";
/// What a wasi:http component's handler export is named, up to its version: 0.2's
/// `incoming-handler`, or 0.3's `handler`.
const HTTP_HANDLER_EXPORTS: [&str; 2] = ["wasi:http/incoming-handler@0.2", "wasi:http/handler@0.3"];
/// The namespace of the interfaces a component's imports may come from.
const WASI_NAMESPACE: &str = "wasi:";
/// Bytes in a WebAssembly page.
const PAGE_BYTES: u64 = 64 * 1024;

/// Why a module is refused before it is compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "no `_start` function exported: a WASI command module is expected (a reactor or a \
         library cannot serve requests)"
    )]
    NoStart,
    /// `import` is `module::name`.
    #[error("it imports `{import}`, which the gateway does not provide")]
    UnknownImport { import: String },
    #[error("it imports a {kind} (`{import}`); the gateway provides functions only")]
    NotAFunction { kind: &'static str, import: String },
    #[error("it has {count} memories; a module may have one")]
    TooManyMemories { count: usize },
    #[error(
        "its memory starts at {bytes} bytes, over its max_memory_bytes of {limit}: raise \
         max_memory_bytes in its [modules.NAME] section to serve it"
    )]
    MemoryTooLarge { bytes: u64, limit: u64 },
    #[error("it has {count} tables; a module may have {limit}")]
    TooManyTables { count: usize, limit: usize },
    #[error("a table of it starts with {elements} elements; a table may hold {limit}")]
    TableTooLarge { elements: u64, limit: usize },
    #[error("it imports `{name}`, which the gateway does not provide (only WASI interfaces)")]
    UnknownComponentImport { name: String },
    #[error(
        "the component exports no wasi:http handler: a component of the wasi:http/proxy \
         world (exporting wasi:http/incoming-handler@0.2) or of the wasi:http/service world \
         (exporting wasi:http/handler@0.3) is expected"
    )]
    NoHttpHandler,
}

/// What a pool slot holds for one core module.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotFit {
    pub max_memory_bytes: u64,
    pub max_tables: usize,
    pub max_table_elements: usize,
}

/// The functions the CGI linkers provide, as (module, name).
pub(crate) type Provided = HashSet<(String, String)>;

/// Checks `bytes`, of kind `abi`, for what can be told before compiling: a CGI module may
/// import only what `provided` has, and must fit a slot as `fit` says.
pub(crate) fn check(
    bytes: &[u8],
    abi: Abi,
    provided: &Provided,
    fit: SlotFit,
) -> Result<(), Refusal> {
    let checked = match abi {
        Abi::Cgi => check_core(bytes, provided, fit),
        Abi::WasiHttp | Abi::WasiHttp03 => check_component(bytes),
    };
    match checked {
        Err(Unread::Refused(refusal)) => Err(refusal),
        Ok(()) | Err(Unread::Malformed) => Ok(()),
    }
}

/// Why a check did not pass.
enum Unread {
    Refused(Refusal),
    /// The binary does not parse: the compiler's to report.
    Malformed,
}

impl From<Refusal> for Unread {
    fn from(refusal: Refusal) -> Self {
        Unread::Refused(refusal)
    }
}

impl From<wasmparser::BinaryReaderError> for Unread {
    fn from(_: wasmparser::BinaryReaderError) -> Self {
        Unread::Malformed
    }
}

fn check_core(bytes: &[u8], provided: &Provided, fit: SlotFit) -> Result<(), Unread> {
    let mut has_start = false;
    let (mut memories, mut tables) = (0usize, 0usize);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let named = || format!("{}::{}", import.module, import.name);
                    let kind = match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => None,
                        TypeRef::Memory(_) => Some("memory"),
                        TypeRef::Table(_) => Some("table"),
                        TypeRef::Global(_) => Some("global"),
                        TypeRef::Tag(_) => Some("tag"),
                    };
                    if let Some(kind) = kind {
                        let import = named();
                        return Err(Refusal::NotAFunction { kind, import }.into());
                    }
                    let key = (import.module.to_string(), import.name.to_string());
                    if !provided.contains(&key) {
                        return Err(Refusal::UnknownImport { import: named() }.into());
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory?;
                    memories += 1;
                    let bytes = memory.initial.saturating_mul(PAGE_BYTES);
                    if bytes > fit.max_memory_bytes {
                        return Err(Refusal::MemoryTooLarge {
                            bytes,
                            limit: fit.max_memory_bytes,
                        }
                        .into());
                    }
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table?;
                    tables += 1;
                    if table.ty.initial > fit.max_table_elements as u64 {
                        return Err(Refusal::TableTooLarge {
                            elements: table.ty.initial,
                            limit: fit.max_table_elements,
                        }
                        .into());
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    has_start |= export.name == START_EXPORT && export.kind == ExternalKind::Func;
                }
            }
            _ => {}
        }
    }
    if memories > 1 {
        return Err(Refusal::TooManyMemories { count: memories }.into());
    }
    if tables > fit.max_tables {
        return Err(Refusal::TooManyTables {
            count: tables,
            limit: fit.max_tables,
        }
        .into());
    }
    if !has_start {
        return Err(Refusal::NoStart.into());
    }
    Ok(())
}

/// A component may import only WASI interfaces (which of them the linker has is for it to
/// say), and must export the wasi:http handler, both at its outermost level; the nested
/// modules and components it carries are its own business.
fn check_component(bytes: &[u8]) -> Result<(), Unread> {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let name = import?.name.name;
                    if !name.starts_with(WASI_NAMESPACE) {
                        let name = name.to_string();
                        return Err(Refusal::UnknownComponentImport { name }.into());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export?;
                    if export.kind == ComponentExternalKind::Instance
                        && HTTP_HANDLER_EXPORTS
                            .iter()
                            .any(|handler| export.name.name.starts_with(handler))
                    {
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
    }
    Err(Refusal::NoHttpHandler.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIT: SlotFit = SlotFit {
        max_memory_bytes: 1 << 20,
        max_tables: 1,
        max_table_elements: 10,
    };

    fn provided() -> Provided {
        HashSet::from([("wasi_snapshot_preview1".to_string(), "fd_write".to_string())])
    }

    fn core(wat: &str) -> Result<(), Refusal> {
        check(&wat::parse_str(wat).unwrap(), Abi::Cgi, &provided(), FIT)
    }

    #[test]
    fn a_command_module_with_provided_imports_passes() {
        let ok = r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                     (memory 1) (table 4 funcref) (func (export "_start")))"#;
        assert_eq!(core(ok), Ok(()));
    }

    #[test]
    fn what_no_slot_or_linker_can_serve_is_refused() {
        assert_eq!(
            core("(module (func (export \"run\")))"),
            Err(Refusal::NoStart)
        );
        assert!(matches!(
            core(r#"(module (import "host" "call" (func)) (func (export "_start")))"#),
            Err(Refusal::UnknownImport { import }) if import == "host::call"
        ));
        assert!(matches!(
            core(r#"(module (import "env" "memory" (memory 1)) (func (export "_start")))"#),
            Err(Refusal::NotAFunction { kind: "memory", .. })
        ));
        assert_eq!(
            core(r#"(module (memory 17) (func (export "_start")))"#),
            Err(Refusal::MemoryTooLarge {
                bytes: 17 << 16,
                limit: 1 << 20
            })
        );
        assert_eq!(
            core(r#"(module (table 11 funcref) (func (export "_start")))"#),
            Err(Refusal::TableTooLarge {
                elements: 11,
                limit: 10
            })
        );
        assert_eq!(
            core(r#"(module (table 1 funcref) (table 1 funcref) (func (export "_start")))"#),
            Err(Refusal::TooManyTables { count: 2, limit: 1 })
        );
        // A binary that does not parse (a section longer than the file) is the
        // compiler's to report.
        let cut = b"\0asm\x01\0\0\0\x01\x05\x01";
        assert_eq!(check(cut, Abi::Cgi, &provided(), FIT), Ok(()));
    }

    #[test]
    fn a_component_without_the_http_handler_or_with_a_foreign_import_is_refused() {
        let component = wat::parse_str("(component)").unwrap();
        assert_eq!(
            check(&component, Abi::WasiHttp, &provided(), FIT),
            Err(Refusal::NoHttpHandler)
        );
        let foreign = wat::parse_str(
            r#"(component (import "acme:nothing/api@1.0.0" (instance (export "f" (func)))))"#,
        )
        .unwrap();
        assert_eq!(
            check(&foreign, Abi::WasiHttp, &provided(), FIT),
            Err(Refusal::UnknownComponentImport {
                name: "acme:nothing/api@1.0.0".into()
            })
        );
    }
}
