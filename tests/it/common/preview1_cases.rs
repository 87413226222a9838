//! Random calls of the gateway's own WASI preview1 functions, for the differential property
//! test (`tests/preview1_props.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/preview1_diff.rs`), which both run each call against the gateway's
//! functions and against wasmtime-wasi and compare what the guest saw.
//!
//! A case is one module: 8 KiB of random memory (with iovec arrays laid out in it where a
//! call takes one), one call of one function with random arguments — descriptors open,
//! closed and made up; pointers aligned, misaligned, at the end of memory and past it —
//! then a dump of those 8 KiB and the call's errno to stdout. What the two runs must agree
//! on: whether the guest trapped or exited (and with what code), and every byte of its
//! stdout, but for the bytes a clock or `random_get` wrote, which differ by nature.

#![allow(dead_code)] // the property test and the fuzz target each use part of this

use std::fmt::Write as _;
use std::ops::Range;

/// Bytes of memory a case fills at random and dumps afterwards.
pub const DUMPED: usize = 8192;
/// Where the dump's own iovecs and the call's errno live, past the dumped bytes.
const DUMP_IOVECS: u32 = 65000;
const ERRNO_AT: u32 = 65100;
const PAGE: u32 = 65536;
/// The most bytes of stdin a case gives. Every read's first buffer holds them all, and a
/// write has at most one buffer that is not empty, each within memory: the deliberate
/// differences (a read fills every buffer and a write writes every buffer, where
/// wasmtime-wasi takes the first only, and so does not look at the others) are
/// documented in the README, not tested here; so is a buffer longer than memory, which
/// wasmtime-wasi answers `ENOMEM` before it looks at the descriptor.
pub const MAX_STDIN: usize = 64;

/// Where random numbers come from.
pub trait Entropy {
    fn next_u32(&mut self) -> u32;

    /// A number below `n` (n > 0).
    fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }

    /// One of `choices`.
    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u32) as usize]
    }
}

/// A seeded xorshift64*: the property test's fixed, reproducible sequence.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }
}

impl Entropy for XorShift {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// A fuzzer's input, read four bytes at a time (zeros once it runs out).
pub struct InputBytes<'a>(pub &'a [u8]);

impl Entropy for InputBytes<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut word = [0u8; 4];
        let n = self.0.len().min(4);
        word[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u32::from_le_bytes(word)
    }
}

/// One call to run both ways.
pub struct Case {
    pub function: &'static str,
    /// The call, as the module writes it (for messages).
    pub call: String,
    pub wat: String,
    pub stdin: Vec<u8>,
    /// Bytes of the dump that may differ between the two runs.
    pub masked: Vec<Range<usize>>,
}

/// The functions the gateway serves itself: every one must have a case below.
pub use wasmgate::testing::CGI_IMPORTS as FUNCTIONS;

/// A random case for `function`.
pub fn case(function: &'static str, e: &mut impl Entropy) -> Case {
    let mut memory: Vec<u8> = (0..DUMPED).map(|_| e.next_u32() as u8).collect();
    let mut masked = Vec::new();
    let args: Vec<Arg> = match function {
        "args_sizes_get" | "args_get" | "environ_sizes_get" | "environ_get" => {
            vec![Arg::I32(pointer(e)), Arg::I32(pointer(e))]
        }
        "fd_write" | "fd_read" => {
            // A read with no buffer to read into is one more documented difference
            // (wasmtime-wasi answers EINTR when stdin has bytes): every read here has at
            // least one iovec, laid out in the dumped bytes or wholly outside memory.
            let (iovs, count) = match function {
                "fd_read" => {
                    let iovs = pointer(e);
                    let iovs = match iovs as usize {
                        at if at + 8 <= DUMPED || iovs >= PAGE => iovs,
                        _ => e.below(DUMPED as u32 / 8 - 8) * 8,
                    };
                    (iovs, iovec_count(e).max(1))
                }
                _ => (pointer(e), iovec_count(e)),
            };
            let layout = match function {
                "fd_read" => Layout::Read,
                _ => Layout::Write,
            };
            lay_out_iovecs(&mut memory, iovs, count, layout, e);
            vec![
                Arg::I32(fd(e)),
                Arg::I32(iovs),
                Arg::I32(count),
                Arg::I32(pointer(e)),
            ]
        }
        "fd_close" => vec![Arg::I32(fd(e))],
        "fd_fdstat_get" | "fd_prestat_get" => vec![Arg::I32(fd(e)), Arg::I32(pointer(e))],
        "fd_seek" => {
            let (offset, whence) = (i64::from(e.next_u32()), e.next_u32());
            vec![
                Arg::I32(fd(e)),
                Arg::I64(e.pick(&[0, 1, -1, i64::MAX, offset])),
                Arg::I32(e.pick(&[0, 1, 2, 3, whence])),
                Arg::I32(pointer(e)),
            ]
        }
        "fd_prestat_dir_name" => vec![Arg::I32(fd(e)), Arg::I32(pointer(e)), Arg::I32(length(e))],
        "clock_time_get" => {
            let out = pointer(e);
            masked.push(span(out, 8));
            vec![
                Arg::I32(clock_id(e)),
                Arg::I64(i64::from(e.next_u32())),
                Arg::I32(out),
            ]
        }
        "clock_res_get" => vec![Arg::I32(clock_id(e)), Arg::I32(pointer(e))],
        "random_get" => {
            let (buf, any) = (pointer(e), length(e));
            let len = e.pick(&[0, 1, 16, 4096, any, 0x0400_0001]);
            masked.push(span(buf, len));
            vec![Arg::I32(buf), Arg::I32(len)]
        }
        "sched_yield" => vec![],
        "proc_exit" => {
            let any = e.next_u32();
            vec![Arg::I32(e.pick(&[0, 1, 33, 125, 126, 255, any]))]
        }
        other => panic!("no case for {other}"),
    };
    let stdin: Vec<u8> = (0..e.below(MAX_STDIN as u32 + 1))
        .map(|_| e.next_u32() as u8)
        .collect();
    let call = format!(
        "{function}({})",
        args.iter().map(Arg::shown).collect::<Vec<_>>().join(", ")
    );
    Case {
        function,
        wat: module_text(function, &args, &memory),
        call,
        stdin,
        masked,
    }
}

#[derive(Clone, Copy)]
enum Arg {
    I32(u32),
    I64(i64),
}

impl Arg {
    fn shown(&self) -> String {
        match self {
            Arg::I32(v) => format!("{v:#x}"),
            Arg::I64(v) => format!("{v}"),
        }
    }
}

/// A descriptor: the three standard ones, ones that are not open, and nonsense.
fn fd(e: &mut impl Entropy) -> u32 {
    let any = e.next_u32();
    e.pick(&[0, 1, 2, 1, 2, 3, 4, u32::MAX, any])
}

/// A pointer: mostly aligned inside the dumped bytes; sometimes misaligned, at the very
/// end of memory, or far past it.
fn pointer(e: &mut impl Entropy) -> u32 {
    match e.below(20) {
        0..=12 => e.below(DUMPED as u32 / 8 - 8) * 8,
        13..=15 => e.below(DUMPED as u32 - 16),
        16..=18 => PAGE - 8 + e.below(12),
        _ => e.next_u32(),
    }
}

fn length(e: &mut impl Entropy) -> u32 {
    match e.below(10) {
        0..=6 => e.below(64),
        7 | 8 => e.below(DUMPED as u32),
        _ => e.next_u32(),
    }
}

fn iovec_count(e: &mut impl Entropy) -> u32 {
    match e.below(10) {
        0..=7 => e.below(4),
        _ => e.below(17),
    }
}

fn clock_id(e: &mut impl Entropy) -> u32 {
    let any = e.next_u32();
    e.pick(&[0, 1, 0, 1, 2, 3, 4, any])
}

/// Which call an iovec array is for (see [`MAX_STDIN`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Read,
    Write,
}

/// Writes `count` iovecs at `iovs` where they fall inside the dumped bytes.
fn lay_out_iovecs(memory: &mut [u8], iovs: u32, count: u32, layout: Layout, e: &mut impl Entropy) {
    let mut wrote_one = false;
    for i in 0..count {
        let at = iovs as usize + i as usize * 8;
        if at + 8 > memory.len() {
            return;
        }
        let buf = pointer(e);
        let mut len = length(e);
        match layout {
            Layout::Read if i == 0 => len = len.clamp(MAX_STDIN as u32, DUMPED as u32),
            Layout::Read => len = len.min(DUMPED as u32),
            Layout::Write if wrote_one => len = 0,
            Layout::Write => {
                len = len.min(DUMPED as u32);
                wrote_one = len > 0;
            }
        }
        memory[at..at + 4].copy_from_slice(&buf.to_le_bytes());
        memory[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }
}

/// The part of the dump that `len` bytes at `ptr` cover.
fn span(ptr: u32, len: u32) -> Range<usize> {
    let start = (ptr as usize).min(DUMPED);
    start..(ptr as usize).saturating_add(len as usize).min(DUMPED)
}

fn module_text(function: &str, args: &[Arg], memory: &[u8]) -> String {
    let params: Vec<&str> = args
        .iter()
        .map(|a| match a {
            Arg::I32(_) => "i32",
            Arg::I64(_) => "i64",
        })
        .collect();
    let result = if function == "proc_exit" {
        ""
    } else {
        "(result i32)"
    };
    let values: String = args
        .iter()
        .map(|a| match a {
            Arg::I32(v) => format!("(i32.const {})", *v as i32),
            Arg::I64(v) => format!("(i64.const {v})"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let call = if function == "proc_exit" {
        format!("(call $f {values})")
    } else {
        format!("(i32.store (i32.const {ERRNO_AT}) (call $f {values}))")
    };
    let mut data = String::with_capacity(memory.len() * 3);
    for b in memory {
        let _ = write!(data, "\\{b:02x}");
    }
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "{function}" (func $f (param {params}) {result}))
  (import "wasi_snapshot_preview1" "fd_write" (func $dump (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{data}")
  (func (export "_start")
    {call}
    (i32.store (i32.const {DUMP_IOVECS}) (i32.const 0))
    (i32.store (i32.const {iov_len}) (i32.const {DUMPED}))
    (drop (call $dump (i32.const 1) (i32.const {DUMP_IOVECS}) (i32.const 1) (i32.const {nwritten})))
    (i32.store (i32.const {DUMP_IOVECS}) (i32.const {ERRNO_AT}))
    (i32.store (i32.const {iov_len}) (i32.const 4))
    (drop (call $dump (i32.const 1) (i32.const {DUMP_IOVECS}) (i32.const 1) (i32.const {nwritten})))))"#,
        params = params.join(" "),
        iov_len = DUMP_IOVECS + 4,
        nwritten = DUMP_IOVECS + 16,
    )
}

/// `stdout` with the bytes of `masked` (within the dump at its end) zeroed.
pub fn masked_stdout(stdout: &[u8], masked: &[Range<usize>]) -> Vec<u8> {
    let mut out = stdout.to_vec();
    // The dump is the last DUMPED + 4 bytes; anything before it is what the call wrote.
    let Some(dump_start) = out.len().checked_sub(DUMPED + 4) else {
        return out;
    };
    for range in masked {
        for b in &mut out[dump_start + range.start..dump_start + range.end] {
            *b = 0;
        }
    }
    out
}
