//! The numbers of the preview1 ABI the gateway's functions use: errno values, the
//! standard descriptors, rights, clocks, and the bounds that keep one host call's work
//! small.

/// WASI errno values (the witx `errno` enum) that these functions return.
pub(super) mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const NOTDIR: i32 = 54;
    pub const OVERFLOW: i32 = 61;
    pub const SPIPE: i32 = 70;
}

/// `writev`/`readv` take at most this many buffers, as on Linux (`IOV_MAX`); it also bounds
/// the work of one host call, which the epoch deadline cannot interrupt.
pub(super) const MAX_IOVECS: u32 = 1024;
/// Exit statuses at or above this are refused with a trap, as wasmtime-wasi does.
pub(super) const MAX_EXIT_STATUS: i32 = 126;
pub(super) const STDIN: u32 = 0;
pub(super) const STDERR: u32 = 2;
/// The witx `fdstat` record: filetype (u8) at 0, flags (u16) at 2, rights at 8 and 16.
pub(super) const FDSTAT_BYTES: usize = 24;
pub(super) const RIGHT_FD_READ: u64 = 1 << 1;
pub(super) const RIGHT_FD_WRITE: u64 = 1 << 6;
pub(super) const CLOCK_REALTIME: i32 = 0;
pub(super) const CLOCK_MONOTONIC: i32 = 1;
pub(super) const CLOCK_PROCESS_CPUTIME: i32 = 2;
pub(super) const CLOCK_THREAD_CPUTIME: i32 = 3;
/// The largest `whence` (`SET`, `CUR`, `END`); others trap as an invalid enum value.
pub(super) const MAX_WHENCE: i32 = 2;
/// Both clocks report nanoseconds.
pub(super) const CLOCK_RESOLUTION_NS: u64 = 1;
/// The most `random_get` fills in one call, as wasmtime-wasi (a larger request traps): the
/// call cannot be interrupted by the deadline, so its work must stay bounded.
pub(super) const MAX_RANDOM_BYTES: usize = 64 << 20;
/// The most one `fd_read` asks of a body that is still arriving.
pub(super) const STREAM_READ_BYTES: usize = 64 * 1024;
