//! One request's memory never reaches the next, with swap on or off (SECURITY.md, "A
//! request's memory").
//!
//! A guest (`secret.wat`) stores a secret at 1 MiB of its memory and sleeps; meanwhile the
//! test pages the gateway out (`process_madvise(MADV_PAGEOUT)` over its writable private
//! mappings) onto a swap file it turned on; then the next request to the module prints
//! what its fresh memory holds there. wasmtime 48's page-scanning reset missed such a
//! swapped-out page, and the next request read the secret.
//!
//! These tests need root (`swapon`, and `process_madvise` on the gateway). CI runs as root;
//! elsewhere they fail, saying so, rather than pass without having run.
//!
//! They are a test binary of their own, the only one beside `tests/it`: a swap area is the
//! whole machine's, and a gateway that resets slots by page scanning stops when one is
//! turned on after its start (by design, see SECURITY.md), so no other test's gateway may
//! run while these do; cargo runs test binaries one after another.

#[path = "it/common/mod.rs"]
mod common;

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::served::Served;

/// What the guest keeps; the next request must never print it.
const SECRET: &str = "wasmgate-isolation-secret-7f3a9c";
/// One pool slot, so that every request to the module runs in the same one.
const ONE_SLOT: &str = "max_instances = 1\n";
/// Swap areas are the host's: the tests of this file take turns.
static HOST_SWAP: Mutex<()> = Mutex::new(());
/// Iovecs per `process_madvise` call (the kernel's `UIO_MAXIOV` is 1024).
const IOVECS_PER_CALL: usize = 512;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests turn a swap file on and page the gateway out, which needs root; \
         run them as root (CI does), or leave this file out with `--skip swap`"
    );
}

/// Whether the host has a swap area on now.
fn swap_active() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .unwrap()
        .lines()
        .count()
        > 1
}

/// A swap file, on while it lives.
struct SwapFile(PathBuf);

impl SwapFile {
    fn on(dir: &Path) -> SwapFile {
        let path = dir.join("swapfile");
        run(
            "dd",
            &[
                "if=/dev/zero",
                &format!("of={}", path.display()),
                "bs=1M",
                "count=256",
            ],
        );
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        run("mkswap", &[path.to_str().unwrap()]);
        run("swapon", &[path.to_str().unwrap()]);
        SwapFile(path)
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pages out every writable private mapping of process `pid`, as memory pressure would;
/// returns the process's swapped-out KiB afterwards.
fn page_out(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let ranges: Vec<libc::iovec> = maps
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("rw-p"))
        .filter_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            Some(libc::iovec {
                iov_base: start as *mut c_void,
                iov_len: end - start,
            })
        })
        .collect();
    // SAFETY: pidfd_open and process_madvise read only the arguments given; the iovecs
    // name the other process's memory, which this process never touches.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        for chunk in ranges.chunks(IOVECS_PER_CALL) {
            // A mapping that went away in between fails its call; the others are paged out.
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd,
                chunk.as_ptr(),
                chunk.len(),
                libc::MADV_PAGEOUT,
                0,
            );
        }
        libc::close(pidfd as i32);
    }
    status_kib(pid, "VmSwap:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One round: a request stores the secret, the gateway is paged out while its guest
/// sleeps, then a second request reads where the secret was. Returns the first request's
/// answer, the KiB that went to swap, and the second's answer.
fn keep_page_out_read(gw: &Served) -> ((u16, String), u64, (u16, String)) {
    let (kept, swapped) = std::thread::scope(|scope| {
        let keeper = scope.spawn(|| gw.request("POST", "/secret", SECRET));
        // The guest has stored the secret and sleeps for 600 ms.
        std::thread::sleep(Duration::from_millis(250));
        let swapped = page_out(gw.child.id());
        (keeper.join().unwrap(), swapped)
    });
    (kept, swapped, gw.get("/secret"))
}

#[test]
fn with_swap_on_at_start_a_swapped_out_page_never_reaches_the_next_request() {
    require_root();
    let _host = HOST_SWAP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let _swap = SwapFile::on(dir.path());
    let gw = Served::start_with(&[("secret", "secret")], &[], ONE_SLOT, &[]);
    assert!(
        gw.wait_for_log("slot_reset=Memset").is_some(),
        "with swap on, slots are reset with memset:\n{}",
        gw.log.lock().unwrap()
    );
    for round in 0..3 {
        let (kept, swapped, (status, body)) = keep_page_out_read(&gw);
        assert_eq!(kept, (200, "stored\n".into()), "round {round}");
        assert!(
            swapped > 0,
            "round {round}: nothing went to swap, so nothing was tried"
        );
        assert_eq!(status, 200, "round {round}: {body}");
        assert!(
            !body.contains(SECRET),
            "round {round}: the next request read the secret"
        );
    }
}

#[test]
fn a_swap_area_turned_on_after_start_stops_the_gateway_before_a_slot_is_reused() {
    require_root();
    let _host = HOST_SWAP.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        !swap_active(),
        "this test needs a host with no swap area on at its start (see /proc/swaps)"
    );
    let mut gw = Served::start_with(&[("secret", "secret")], &[], ONE_SLOT, &[]);
    assert!(
        gw.wait_for_log("slot_reset=PagemapScan").is_some(),
        "without swap, on Linux 6.7 or later, slots are reset by page scanning:\n{}",
        gw.log.lock().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let _swap = SwapFile::on(dir.path());
    let (_, swapped, (_, body)) = keep_page_out_read(&gw);
    assert!(swapped > 0, "nothing went to swap, so nothing was tried");
    assert!(!body.contains(SECRET), "the next request read the secret");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway still runs with swap on under page scanning"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}");
    assert!(
        gw.wait_for_log("a swap area was turned on after start")
            .is_some(),
        "the log says why:\n{}",
        gw.log.lock().unwrap()
    );
}
