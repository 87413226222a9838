//! A directory of the gateway's own (`cache_dir` and the directories under it), opened
//! once and then used only through its handle.
//!
//! The cache holds native code the gateway runs, so *which* directory it reads from must
//! not change after start. A path is resolved again at every use: a symlink anywhere along
//! it, re-pointed by its owner, would move the whole cache to a directory of theirs
//! (issue 30: a forged artifact with a matching seal ran as the gateway). So the path is
//! resolved once, at start, and refused if anyone but this user (or root) could swap any
//! part of it: every directory along the way must be theirs and writable by no one else
//! (or sticky, as `/tmp` is), every symlink followed must be theirs. The directory is then
//! opened, and every later open, create, rename, list and remove is relative to that
//! handle (`openat`, `renameat`, ...), with `O_NOFOLLOW` on the name, so nothing is
//! resolved by path again. A compile worker inherits the handle rather than the path.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};

/// Owner-only: what is kept here is, or becomes, executable code.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// Mode bits that let someone other than the owner create, rename or remove entries.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// The sticky bit: only an entry's owner may rename or remove it.
const STICKY: u32 = 0o1000;
/// Symlinks followed while resolving one path, as the kernel's own limit.
const MAX_SYMLINKS: usize = 40;
/// Prefix of the temporary names files are written under before being renamed into place.
const INCOMING_PREFIX: &str = ".incoming-";
/// Attempts at a fresh temporary name before giving up.
const TEMP_NAME_ATTEMPTS: usize = 16;

/// Why a directory cannot be trusted with native code.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache_dir cannot be created or read: {0}")]
    Io(#[from] io::Error),
    #[error(
        "cache_dir is not safe to load native code from: {which} {why}; \
         make it owned by this user and writable by no one else (chmod 700)"
    )]
    Unsafe {
        which: &'static str,
        why: &'static str,
    },
    #[error(
        "cache_dir is not safe to load native code from: its path component `{component}` \
         {why}, so another user could swap it for a directory of theirs after start; use a \
         path only this user (or root) controls"
    )]
    Swappable {
        component: String,
        why: &'static str,
    },
}

/// One entry of a directory, as listed.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) modified: SystemTime,
}

/// An open directory that only this user can write, used only through its handle.
#[derive(Debug, Clone)]
pub(crate) struct PrivateDir {
    fd: Arc<OwnedFd>,
}

impl PrivateDir {
    /// Creates `path` (owner-only) if needed, checks that no one else could swap any part
    /// of it, and opens it.
    pub(crate) fn open(path: &Path) -> Result<PrivateDir, CacheError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)?;
        check_unswappable(path)?;
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        PrivateDir::checked(fd, "the directory")
    }

    /// The directory a parent process handed down as `fd` (a compile worker's cache).
    ///
    /// # Safety
    /// `fd` must be an open descriptor that nothing else in this process owns.
    pub(crate) unsafe fn inherited(fd: RawFd) -> Result<PrivateDir, CacheError> {
        // SAFETY: passed on to the caller.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        PrivateDir::checked(fd, "the inherited directory")
    }

    /// The subdirectory `name`, created owner-only if needed; never through a symlink.
    pub(crate) fn child(&self, name: &str) -> Result<PrivateDir, CacheError> {
        match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io::Error::from(e).into()),
        }
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        PrivateDir::checked(fd, "its subdirectory")
    }

    fn checked(fd: OwnedFd, which: &'static str) -> Result<PrivateDir, CacheError> {
        let stat = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
        let unsafe_because = |why| Err(CacheError::Unsafe { which, why });
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return unsafe_because("is not a directory");
        }
        if stat.st_uid != effective_uid() {
            return unsafe_because("is owned by another user");
        }
        if stat.st_mode & WRITABLE_BY_OTHERS != 0 {
            return unsafe_because("is writable by group or others");
        }
        Ok(PrivateDir { fd: Arc::new(fd) })
    }

    /// The handle, for a child process to inherit.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn handle(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The whole of file `name`, never through a symlink.
    pub(crate) fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut file = self.open_file(name, OFlags::RDONLY)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Whether `name` is here (as anything, a symlink included).
    pub(crate) fn contains(&self, name: &str) -> bool {
        rustix::fs::statat(self.handle(), name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Writes `bytes` to a new owner-only file under a random name, created exclusively,
    /// then renames it to `name`; the temporary file is removed on failure.
    pub(crate) fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let (temp, mut file) = self.create_temp()?;
        file.write_all(bytes)?;
        file.sync_data()?;
        rustix::fs::renameat(self.handle(), temp.name(), self.handle(), name)?;
        temp.disarm();
        Ok(())
    }

    fn create_temp(&self) -> io::Result<(Incoming<'_>, File)> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        for _ in 0..TEMP_NAME_ATTEMPTS {
            let name = format!("{INCOMING_PREFIX}{:016x}", rand::random::<u64>());
            match self.open_file(&name, flags) {
                Ok(file) => return Ok((Incoming::new(self, name), file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name",
        ))
    }

    fn open_file(&self, name: &str, flags: OFlags) -> io::Result<File> {
        let fd = rustix::fs::openat(
            self.handle(),
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )?;
        Ok(File::from(fd))
    }

    /// Removes file `name` (a symlink itself, never what it points to).
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(self.handle(), name, AtFlags::empty())?)
    }

    /// Sets file `name`'s modification time to now.
    pub(crate) fn touch(&self, name: &str) -> io::Result<()> {
        let file = self.open_file(name, OFlags::RDONLY)?;
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let omit = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        rustix::fs::futimens(
            &file,
            &Timestamps {
                last_access: omit,
                last_modification: now,
            },
        )?;
        Ok(())
    }

    /// The regular files here whose names end with `.{extension}`.
    pub(crate) fn files_with(&self, extension: &str) -> io::Result<Vec<Entry>> {
        let suffix = format!(".{extension}");
        let mut found = Vec::new();
        for entry in rustix::fs::Dir::read_from(self.handle())? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if !name.ends_with(&suffix) {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(self.handle(), name, AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
                found.push(Entry {
                    name: name.to_string(),
                    len: stat.st_size as u64,
                    modified: modified(stat.st_mtime, stat.st_mtime_nsec as i64),
                });
            }
        }
        Ok(found)
    }
}

/// A temporary file being written; removed when dropped unless renamed into place.
struct Incoming<'a> {
    dir: &'a PrivateDir,
    name: Option<String>,
}

impl<'a> Incoming<'a> {
    fn new(dir: &'a PrivateDir, name: String) -> Self {
        Incoming {
            dir,
            name: Some(name),
        }
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// It was renamed into place: nothing to remove.
    fn disarm(mut self) {
        self.name = None;
    }
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = self.dir.remove(name);
        }
    }
}

fn modified(seconds: i64, nanos: i64) -> SystemTime {
    let since_epoch = Duration::new(seconds.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
    SystemTime::UNIX_EPOCH + since_epoch
}

/// Refuses `path` if anyone but this user or root could make it name another directory:
/// a directory along it (symlinks followed) that they own or may write without the sticky
/// bit, or a symlink along it that they own.
fn check_unswappable(path: &Path) -> Result<(), CacheError> {
    let absolute = std::path::absolute(path)?;
    let mut pending: Vec<PathBuf> = vec![absolute];
    let mut at = PathBuf::from("/");
    let mut followed = 0;
    check_directory(&at)?;
    while let Some(next) = pending.pop() {
        let mut components = next.components();
        let Some(first) = components.next() else {
            continue;
        };
        let rest = components.as_path();
        if !rest.as_os_str().is_empty() {
            pending.push(rest.to_path_buf());
        }
        match first {
            Component::RootDir => at = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                let link = step(&mut at, name)?;
                if let Some(target) = link {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(io::Error::from(rustix::io::Errno::LOOP).into());
                    }
                    pending.push(target);
                }
            }
        }
    }
    Ok(())
}

/// Moves `at` into its entry `name`, checking it; a symlink's target is returned to be
/// resolved next, with `at` left where the symlink is.
fn step(at: &mut PathBuf, name: &OsStr) -> Result<Option<PathBuf>, CacheError> {
    let entry = at.join(name);
    let meta = std::fs::symlink_metadata(&entry)?;
    if !trusted_owner(meta.uid()) {
        return Err(swappable(&entry, "is owned by another user"));
    }
    if meta.file_type().is_symlink() {
        return Ok(Some(std::fs::read_link(&entry)?));
    }
    *at = entry;
    check_directory(at)?;
    Ok(None)
}

/// Refuses a directory along the path in which another user could rename or replace an
/// entry.
fn check_directory(dir: &Path) -> Result<(), CacheError> {
    let meta = std::fs::metadata(dir)?;
    let mode = meta.mode();
    if !trusted_owner(meta.uid()) {
        return Err(swappable(dir, "is owned by another user"));
    }
    if mode & WRITABLE_BY_OTHERS != 0 && mode & STICKY == 0 {
        return Err(swappable(
            dir,
            "is writable by group or others (and not sticky)",
        ));
    }
    Ok(())
}

/// Names only the last component of `at`: a start error names the problem, not the host's
/// layout.
fn swappable(at: &Path, why: &'static str) -> CacheError {
    let component = at
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    CacheError::Swappable { component, why }
}

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == effective_uid()
}

/// The user this process acts as.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_along_the_path_is_refused_unless_sticky() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        mode(&shared, 0o777);
        let refused = PrivateDir::open(&shared.join("cache")).unwrap_err();
        assert!(
            matches!(&refused, CacheError::Swappable { component, .. } if component == "shared"),
            "{refused}"
        );
        assert!(!refused.to_string().contains(root.path().to_str().unwrap()));
        mode(&shared, 0o1777);
        PrivateDir::open(&shared.join("cache")).expect("a sticky directory is safe");
    }

    #[test]
    fn a_symlink_along_the_path_is_followed_and_its_target_checked() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir_all(shared.join("cache")).unwrap();
        mode(&shared, 0o777);
        std::os::unix::fs::symlink("shared", root.path().join("link")).unwrap();
        let refused = PrivateDir::open(&root.path().join("link/cache")).unwrap_err();
        assert!(matches!(refused, CacheError::Swappable { .. }), "{refused}");
        mode(&shared, 0o755);
        PrivateDir::open(&root.path().join("link/../link/cache")).expect("safe through a link");
    }

    /// Once open, the directory is the one that was opened, wherever its path points now.
    #[test]
    fn every_use_goes_through_the_handle_not_the_path() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x.seal"), b"from a").unwrap();
        std::fs::write(b.join("x.seal"), b"from b").unwrap();
        std::os::unix::fs::symlink("a", root.path().join("link")).unwrap();
        let dir = PrivateDir::open(&root.path().join("link")).unwrap();
        std::fs::remove_file(root.path().join("link")).unwrap();
        std::os::unix::fs::symlink("b", root.path().join("link")).unwrap();
        assert_eq!(dir.read("x.seal").unwrap(), b"from a");
        dir.write_atomically("y.seal", b"new").unwrap();
        assert!(a.join("y.seal").exists() && !b.join("y.seal").exists());
        let child = dir.child("sub").unwrap();
        child.write_atomically("z.seal", b"z").unwrap();
        assert!(a.join("sub/z.seal").exists() && !b.join("sub").exists());
        dir.remove("x.seal").unwrap();
        assert!(!a.join("x.seal").exists() && b.join("x.seal").exists());
        let names: Vec<String> = dir
            .files_with("seal")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["y.seal"]);
    }

    #[test]
    fn a_symlinked_subdirectory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open(root.path()).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("sub")).unwrap();
        assert!(dir.child("sub").is_err());
    }
}
