//! Fuzzes the gateway's own WASI preview1 functions against wasmtime-wasi: the input
//! chooses a function, its arguments, the guest's memory and its stdin
//! (`tests/it/common/preview1_cases.rs`); the call runs linked against both, and any
//! difference in how it ended (trap, exit, errno, out-parameters, memory written) fails.
//! `tests/preview1_props.rs` runs the same comparison on a fixed seed in CI.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/common/preview1_cases.rs"]
mod preview1_cases;
#[path = "../../tests/it/common/preview1_diff.rs"]
mod preview1_diff;

use preview1_cases::{Entropy, FUNCTIONS, InputBytes, case};
use preview1_diff::Both;

/// One runtime and one pair of linkers for the whole fuzzing run.
fn shared() -> &'static (Both, tokio::runtime::Runtime) {
    static SHARED: OnceLock<(Both, tokio::runtime::Runtime)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        (Both::new(), runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = InputBytes(data);
    let function = FUNCTIONS[input.below(FUNCTIONS.len() as u32) as usize];
    let case = case(function, &mut input);
    let (both, runtime) = shared();
    if let Some(difference) = runtime.block_on(both.differ(&case)) {
        panic!("{difference}");
    }
});
