//! A property test of the gateway's own WASI preview1 functions: random calls of each, with
//! random arguments, memory and iovec layouts (`common/preview1_cases.rs`), run through
//! the invoke path twice — linked against the gateway's functions, and against
//! wasmtime-wasi — must end the same way (trap or not, exit code) and write the same
//! stdout: the errno, the out-parameters and every byte of memory the call could touch.
//!
//! The seed is fixed, so a failure reproduces; `PREVIEW1_PROPS_SEED` and
//! `PREVIEW1_PROPS_CASES` explore further. The cargo-fuzz target `preview1_diff` runs the
//! same comparison on a fuzzer's inputs.

use crate::{preview1_cases, preview1_diff};

use preview1_cases::{Entropy, FUNCTIONS, XorShift, case};
use preview1_diff::Both;

const SEED: u64 = 0x005e_ed0f_9a7e;
/// Cases per function: a few seconds for all of them in a release build.
const CASES_PER_FUNCTION: usize = 60;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_calls_answer_as_wasmtime_wasi_does() {
    let seed = env_number("PREVIEW1_PROPS_SEED").unwrap_or(SEED);
    let cases = env_number("PREVIEW1_PROPS_CASES").map_or(CASES_PER_FUNCTION, |n| n as usize);
    let both = Both::new();
    let mut entropy = XorShift::new(seed);
    let mut differences = Vec::new();
    let mut ran = 0;
    for function in FUNCTIONS {
        for _ in 0..cases {
            let case = case(function, &mut entropy);
            ran += 1;
            if let Some(difference) = both.differ(&case).await {
                differences.push(difference);
            }
        }
    }
    assert!(ran >= FUNCTIONS.len() * cases);
    assert!(
        differences.is_empty(),
        "{} of {ran} random calls (seed {seed:#x}) answered differently; the first:\n{}",
        differences.len(),
        differences
            .iter()
            .take(400)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The generator itself: the same seed makes the same cases, and cases reach every
/// function with pointers both inside and outside memory.
#[test]
fn cases_are_reproducible_and_varied() {
    let texts = |seed| {
        let mut e = XorShift::new(seed);
        (0..20)
            .map(|_| case("fd_write", &mut e).call)
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(7), texts(7));
    assert_ne!(texts(7), texts(8));
    let mut e = XorShift::new(1);
    let calls: Vec<String> = (0..200)
        .map(|_| case("fd_fdstat_get", &mut e).call)
        .collect();
    let outside = calls
        .iter()
        .filter(|c| c.contains("0xfff") || c.len() > 30)
        .count();
    assert!(
        outside > 0 && outside < 200,
        "{outside} of 200 calls reach past memory"
    );
    assert!(e.next_u32() != e.next_u32());
}
