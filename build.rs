//! Rebuilds the crate when what `wasmgate new` embeds changes: the templates, and the WIT
//! the component templates are built against (`include_dir!` cannot tell Cargo itself).

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=modules/src/wit");
    println!("cargo:rerun-if-changed=build.rs");
}
