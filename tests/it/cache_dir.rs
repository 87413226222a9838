//! `cache_dir` holds native code the gateway runs, so the directory it names at start is
//! the one used until the gateway stops (issue 30, item 1): a symlink along its path
//! re-pointed after start moves nothing, and a path that another user could re-point is
//! refused at start. Against the real binary, whose compile workers inherit the cache's
//! handle rather than its path.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::hello_saying;
use common::served::{BIN, Served};
use sha2::{Digest as _, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Points symlink `link` at `target`, replacing it in one rename as an attacker would.
fn repoint(link: &Path, target: &Path) {
    let fresh = link.with_extension("new");
    std::os::unix::fs::symlink(target, &fresh).unwrap();
    std::fs::rename(&fresh, link).unwrap();
}

/// `wasmgate compile` of `modules` into `cache`: what `serve` opens its cache with, in a
/// command that ends.
fn compile_into(modules: &Path, cache: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["compile", "--modules"])
        .arg(modules)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap()
}

/// Plants in `cache` (a cache_dir) the machine code of `forged`, sealed as the artifact
/// of the module `claimed`: what someone who can write `cache` can always do, which is
/// why no one else may.
fn plant_forged_artifact(cache: &Path, forged: &[u8], claimed: &[u8]) {
    let modules = tempfile::tempdir().unwrap();
    std::fs::write(modules.path().join("forged.wasm"), forged).unwrap();
    let compiled = compile_into(modules.path(), cache);
    assert!(compiled.status.success(), "{compiled:?}");
    let engine_dir = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("an engine directory");
    let (forged_hex, claimed_hex) = (sha256_hex(forged), sha256_hex(claimed));
    let artifact = std::fs::read(engine_dir.join(format!("{forged_hex}.cwasm"))).unwrap();
    std::fs::write(engine_dir.join(format!("{claimed_hex}.cwasm")), &artifact).unwrap();
    let seal = format!(
        "wasmgate-artifact-seal v1\nmodule sha256:{claimed_hex}\nartifact sha256:{}\n",
        sha256_hex(&artifact)
    );
    std::fs::write(engine_dir.join(format!("{claimed_hex}.seal")), seal).unwrap();
}

/// What `/hello` answers once it no longer answers `old`.
fn next_answer(served: &Served, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (status, body) = served.get("/hello");
        if status == 200 && body != old {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("/hello still answers {old:?}");
}

#[test]
fn a_symlink_in_cache_dir_re_pointed_after_start_moves_nothing() {
    let place = tempfile::tempdir().unwrap();
    let (mine, theirs) = (place.path().join("mine"), place.path().join("theirs"));
    std::fs::create_dir(&mine).unwrap();
    let link = place.path().join("cache");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    let v1 = hello_saying("genuine v1");
    let served = Served::start_bytes(
        &[("hello".into(), v1)],
        &[],
        "",
        &["--cache-dir", link.to_str().unwrap()],
    );
    assert_eq!(served.get("/hello"), (200, "genuine v1\n".into()));

    // The next version's artifact, forged, waits in a directory the link now names.
    let v2 = hello_saying("genuine v2");
    plant_forged_artifact(&theirs, &hello_saying("FORGED"), &v2);
    repoint(&link, &theirs);
    std::fs::write(served.dir.path().join("modules/hello.wasm"), &v2).unwrap();

    assert_eq!(next_answer(&served, "genuine v1\n"), "genuine v2\n");
    let engine_dir = std::fs::read_dir(&mine).unwrap().next().unwrap().unwrap();
    assert!(
        engine_dir
            .path()
            .join(format!("{}.cwasm", sha256_hex(&v2)))
            .exists(),
        "v2 was compiled into the directory opened at start"
    );
    let forged_seal = std::fs::read_dir(theirs.join(engine_dir.file_name()))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "seal")
        .count();
    assert_eq!(forged_seal, 2, "the planted directory was left alone");
}

#[test]
fn a_cache_dir_path_another_user_could_swap_is_refused_at_start() {
    let place = tempfile::tempdir().unwrap();
    let shared = place.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let modules = place.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    let refused = compile_into(&modules, &shared.join("cache"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("path component `shared` is writable by group or others"),
        "{stderr}"
    );
}

/// The attack as the review made it: a symlink along the path owned by another user.
/// Needs root to give the symlink away (CI runs as root).
#[test]
fn a_symlink_another_user_owns_along_cache_dir_is_refused() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test gives a symlink to another user, which needs root; run it as root \
         (CI does), or leave it out with `--skip another_user_owns`"
    );
    let place = tempfile::tempdir().unwrap();
    let real = place.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = place.path().join("theirs");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    const NOBODY: u32 = 65534;
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let modules = place.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    let refused = compile_into(&modules, &link.join("cache"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("path component `theirs` is owned by another user"),
        "{stderr}"
    );
}
