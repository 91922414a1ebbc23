//! Containment for trees whose contents are not trusted: a commit's checkout, the /etc
//! of a deployment, a sysroot named on the command line.
//!
//! Every operation is relative to an open directory ([`Dir`]) and resolved by the kernel
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: a `..`
//! or a symbolic link anywhere in the path is an error, so nothing a tree ships can
//! redirect a read or a write outside it. Kernels before 5.6 (no openat2) get the same
//! rule from a walk that opens one component at a time with `O_NOFOLLOW`.
//!
//! A few reads (os-release, prepare-root.conf) follow links the way the booted system
//! would see them: [`Resolve::InRoot`], where the kernel resolves every link, absolute
//! or relative, as if the tree were `/`, so it still cannot leave the tree.
//!
//! Files are only ever read after `fstat` says they are regular (a FIFO or a device is
//! never opened for reading), with a size cap the caller names. A symlink is copied as
//! a symlink, never followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, XattrFlags};
use rustix::io::Errno;

/// A failed operation in a contained tree, naming the path (as the caller sees it).
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error(
        "{}: a symbolic link in the path (links a tree ships are data, never followed)",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{}: the path leaves its tree", path.display())]
    Escapes { path: PathBuf },
    #[error("{}: not a regular file ({kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: larger than the {max} bytes allowed for it", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{}: unsupported file type ({kind})", path.display())]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BeneathError {
    /// Whether the path (or one of its parents) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BeneathError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    pub fn is_symlink(&self) -> bool {
        matches!(self, BeneathError::Symlink { .. })
    }
}

type Result<T> = std::result::Result<T, BeneathError>;

/// How links inside the tree are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Any symbolic link in the path is an error.
    NoSymlinks,
    /// Links are followed as if the tree were the root directory (`RESOLVE_IN_ROOT`);
    /// without openat2 this falls back to [`Resolve::NoSymlinks`].
    InRoot,
}

/// What a file type is called in messages.
pub fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "unknown type",
    }
}

/// An open directory every operation is relative to.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn io_at(path: &Path, e: impl Into<io::Error>) -> BeneathError {
    BeneathError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// The components of a relative path, or why it is not one: only plain names (and
/// `.`) are accepted, so nothing can climb out before the kernel even looks.
fn components(base: &Path, rel: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(BeneathError::Escapes {
                    path: base.join(rel),
                });
            }
        }
    }
    Ok(out)
}

/// A single name (no `/`, not `.` or `..`), for operations on a directory's children.
fn child_name<'a>(dir: &Path, name: &'a OsStr) -> Result<&'a OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(BeneathError::Escapes {
            path: dir.join(name),
        });
    }
    Ok(name)
}

impl Dir {
    /// Opens the top of a tree. `path` itself is trusted (the caller chose it); only
    /// what lies below it is contained.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_at(path, e))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path this directory was opened as, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn display(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens `rel` below this directory with `flags`, contained as `how` says.
    fn resolve(&self, rel: &Path, flags: OFlags, how: Resolve) -> Result<OwnedFd> {
        let comps = components(&self.path, rel)?;
        let shown = self.display(rel);
        let joined: PathBuf = if comps.is_empty() {
            PathBuf::from(".")
        } else {
            comps.iter().collect()
        };
        let rflags = match how {
            Resolve::NoSymlinks => {
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
            }
            Resolve::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        };
        // openat2 refuses O_PATH with any flag but these few.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        #[cfg(test)]
        if tests::FORCE_WALK.with(|f| f.get()) {
            return self.walk(&comps, flags, &shown);
        }
        // The kernel asks for a retry when a rename raced the lookup.
        for _ in 0..16 {
            match rustix::fs::openat2(&self.fd, &joined, flags, Mode::empty(), rflags) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => return self.walk(&comps, flags, &shown),
                Err(Errno::LOOP) if how == Resolve::NoSymlinks => {
                    return Err(BeneathError::Symlink { path: shown });
                }
                Err(Errno::XDEV) => return Err(BeneathError::Escapes { path: shown }),
                Err(e) => return Err(io_at(&shown, e)),
            }
        }
        Err(io_at(&shown, Errno::AGAIN))
    }

    /// The pre-openat2 containment: one component at a time, never following a link.
    fn walk(&self, comps: &[OsString], flags: OFlags, shown: &Path) -> Result<OwnedFd> {
        let mut cur = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(|e| io_at(shown, e))?;
        let Some((last, parents)) = comps.split_last() else {
            return rustix::fs::openat(&cur, ".", flags, Mode::empty())
                .map_err(|e| io_at(shown, e));
        };
        for c in parents {
            let next = rustix::fs::openat(
                &cur,
                c.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            cur = match next {
                Ok(fd) => fd,
                Err(e) => return Err(self.walk_error(&cur, c, e, shown)),
            };
        }
        let fd = rustix::fs::openat(
            &cur,
            last.as_os_str(),
            flags | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| self.walk_error(&cur, last, e, shown))?;
        if flags.contains(OFlags::PATH)
            && rustix::fs::fstat(&fd)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink)
        {
            return Err(BeneathError::Symlink {
                path: shown.to_path_buf(),
            });
        }
        Ok(fd)
    }

    fn walk_error(&self, dir: &OwnedFd, name: &OsStr, e: Errno, shown: &Path) -> BeneathError {
        let is_link = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
        if is_link {
            BeneathError::Symlink {
                path: shown.to_path_buf(),
            }
        } else {
            io_at(shown, e)
        }
    }

    /// The directory `rel` (which must be a real directory, reached without links).
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Resolve::NoSymlinks)?;
        Ok(Dir {
            fd,
            path: self.display(rel),
        })
    }

    /// The regular file `rel`, open for reading. It is looked at (`O_PATH`, `fstat`)
    /// before it is opened, so a FIFO or a device is never opened at all; the read
    /// open is non-blocking and checked again.
    pub fn open_file(&self, rel: impl AsRef<Path>, how: Resolve) -> Result<File> {
        let rel = rel.as_ref();
        let shown = self.display(rel);
        let probe = self.resolve(rel, OFlags::PATH, how)?;
        let st = rustix::fs::fstat(&probe).map_err(|e| io_at(&shown, e))?;
        let regular = |st: &Stat| -> Result<()> {
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Ok(()),
                FileType::Symlink => Err(BeneathError::Symlink {
                    path: shown.clone(),
                }),
                other => Err(BeneathError::NotRegular {
                    path: shown.clone(),
                    kind: kind_name(other),
                }),
            }
        };
        regular(&st)?;
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK, how)?;
        let st2 = rustix::fs::fstat(&fd).map_err(|e| io_at(&shown, e))?;
        regular(&st2)?;
        if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
            return Err(io_at(
                &shown,
                io::Error::other("replaced while it was being opened"),
            ));
        }
        Ok(File::from(fd))
    }

    /// The whole regular file `rel`, refused when larger than `max` bytes.
    pub fn read_file(&self, rel: impl AsRef<Path>, how: Resolve, max: u64) -> Result<Vec<u8>> {
        let rel = rel.as_ref();
        let f = self.open_file(rel, how)?;
        let mut out = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| io_at(&self.display(rel), e))?;
        if out.len() as u64 > max {
            return Err(BeneathError::TooLarge {
                path: self.display(rel),
                max,
            });
        }
        Ok(out)
    }

    /// The parent directory of `rel` and its last name.
    fn parent_of<'a>(&self, rel: &'a Path) -> Result<(Dir, &'a OsStr)> {
        let name = rel.file_name().ok_or_else(|| BeneathError::Escapes {
            path: self.display(rel),
        })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(parent)?, name))
    }

    /// `lstat` of `rel`: `None` when it (or a parent) does not exist. A link in a parent
    /// is an error; a link as the last component is reported as one.
    pub fn metadata(&self, rel: impl AsRef<Path>) -> Result<Option<Stat>> {
        let rel = rel.as_ref();
        let (dir, name) = match self.parent_of(rel) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_at(&self.display(rel), e)),
        }
    }

    /// `lstat` of the direct child `name`.
    pub fn stat_child(&self, name: &OsStr) -> Result<Option<Stat>> {
        let name = child_name(&self.path, name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_at(&self.path.join(name), e)),
        }
    }

    /// `fstat` of this directory.
    pub fn stat(&self) -> Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(|e| io_at(&self.path, e))
    }

    /// The target of the symbolic link `rel` (its parents contained).
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of(rel)?;
        let t = rustix::fs::readlinkat(&dir.fd, name, Vec::new())
            .map_err(|e| io_at(&self.display(rel), e))?;
        Ok(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    }

    /// The names in this directory, in readdir order, with their types from `lstat`.
    pub fn entries(&self) -> Result<Vec<(OsString, Stat)>> {
        let mut d = rustix::fs::Dir::read_from(&self.fd).map_err(|e| io_at(&self.path, e))?;
        let mut out = Vec::new();
        while let Some(ent) = d.read() {
            let ent = ent.map_err(|e| io_at(&self.path, e))?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_os_string();
            let st = rustix::fs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_at(&self.path.join(&name), e))?;
            out.push((name, st));
        }
        Ok(out)
    }

    /// Creates the directory `name` with `mode` (the umask applies).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        let name = child_name(&self.path, name)?;
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|e| io_at(&self.path.join(name), e))
    }

    /// Creates the new regular file `name` (never through an existing name or link).
    pub fn create_file(&self, name: &OsStr, mode: u32) -> Result<File> {
        let name = child_name(&self.path, name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| io_at(&self.path.join(name), e))?;
        Ok(File::from(fd))
    }

    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<()> {
        let name = child_name(&self.path, name)?;
        rustix::fs::symlinkat(target, &self.fd, name).map_err(|e| io_at(&self.path.join(name), e))
    }

    /// Removes the non-directory `name`.
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        let name = child_name(&self.path, name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(|e| io_at(&self.path.join(name), e))
    }

    /// `rename(this/name, to/to_name)`.
    pub fn rename(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<()> {
        let name = child_name(&self.path, name)?;
        let to_name = child_name(&to.path, to_name)?;
        rustix::fs::renameat(&self.fd, name, &to.fd, to_name)
            .map_err(|e| io_at(&self.path.join(name), e))
    }

    /// `rm -rf name` below this directory, never following a link; a missing name is fine.
    pub fn remove_all(&self, name: &OsStr) -> Result<()> {
        let Some(st) = self.stat_child(name)? else {
            return Ok(());
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = self.open_dir(Path::new(name))?;
            for (n, _) in sub.entries()? {
                sub.remove_all(&n)?;
            }
            rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
                .map_err(|e| io_at(&self.path.join(name), e))
        } else {
            self.unlink(name)
        }
    }

    /// Owner of the child `name`, not following a link.
    pub fn chown_child(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        let name = child_name(&self.path, name)?;
        rustix::fs::chownat(
            &self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_at(&self.path.join(name), e))
    }

    /// Modification time of the child `name`, not following a link (atime untouched).
    pub fn set_mtime_child(&self, name: &OsStr, sec: i64, nsec: i64) -> Result<()> {
        use rustix::fs::{Timespec, Timestamps, UTIME_OMIT};
        let name = child_name(&self.path, name)?;
        let ts = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: sec,
                tv_nsec: nsec as _,
            },
        };
        rustix::fs::utimensat(&self.fd, name, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_at(&self.path.join(name), e))
    }

    /// The child `name` as a path through this directory's descriptor
    /// (`/proc/self/fd/N/name`): the directory is the one already open, whatever has
    /// been renamed since, and the `l*` calls given it do not follow a final link.
    fn proc_path(&self, name: &OsStr) -> Result<PathBuf> {
        let name = child_name(&self.path, name)?;
        Ok(PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name))
    }

    /// All xattrs of the child `name` (not following a link).
    pub fn xattrs_child(&self, name: &OsStr) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.proc_path(name)?;
        let shown = self.path.join(name);
        let mut names = vec![0u8; 1024];
        let n = loop {
            match rustix::fs::llistxattr(&p, &mut names[..]) {
                Ok(n) => break n,
                Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
                Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Err(e) => return Err(io_at(&shown, e)),
            }
        };
        let mut out = Vec::new();
        for x in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let mut val = vec![0u8; 256];
            let len = loop {
                match rustix::fs::lgetxattr(&p, OsStr::from_bytes(x), &mut val[..]) {
                    Ok(len) => break len,
                    Err(Errno::RANGE) => val.resize(val.len() * 4, 0),
                    Err(e) => return Err(io_at(&shown, e)),
                }
            };
            val.truncate(len);
            out.push((x.to_vec(), val));
        }
        Ok(out)
    }

    pub fn set_xattrs_child(&self, name: &OsStr, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let p = self.proc_path(name)?;
        for (k, v) in xattrs {
            rustix::fs::lsetxattr(&p, OsStr::from_bytes(k), v, XattrFlags::empty()).map_err(
                |e| {
                    io_at(
                        &self.path.join(name),
                        io::Error::other(format!(
                            "setting xattr {}: {e}",
                            String::from_utf8_lossy(k)
                        )),
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Owner, permission bits, xattrs and mtime of `st` onto the child `name`. Bits
    /// are set with `fchmod` on a descriptor opened without following links (a link
    /// has no bits of its own; chmod on one would change its target).
    pub fn copy_attrs_child(
        &self,
        name: &OsStr,
        st: &Stat,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        self.set_xattrs_child(name, xattrs)?;
        self.chown_child(name, st.st_uid, st.st_gid)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::Symlink {
            let fd = rustix::fs::openat(
                &self.fd,
                child_name(&self.path, name)?,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_at(&self.path.join(name), e))?;
            let now = rustix::fs::fstat(&fd).map_err(|e| io_at(&self.path.join(name), e))?;
            if FileType::from_raw_mode(now.st_mode) == FileType::Symlink {
                return Err(BeneathError::Symlink {
                    path: self.path.join(name),
                });
            }
            // fchmod needs a real descriptor; reopen through the O_PATH one's magic
            // link, which names exactly the inode just checked.
            let real = rustix::fs::open(
                format!("/proc/self/fd/{}", fd.as_raw_fd()),
                if ft == FileType::Directory {
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
                } else {
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY
                },
                Mode::empty(),
            );
            match real {
                Ok(real) => rustix::fs::fchmod(&real, Mode::from_raw_mode(st.st_mode & 0o7777)),
                // Not openable for reading (a device node): chmodat on the name, which
                // fstat just showed is not a link.
                Err(_) => rustix::fs::chmodat(
                    &self.fd,
                    name,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                ),
            }
            .map_err(|e| io_at(&self.path.join(name), e))?;
        }
        self.set_mtime_child(name, st.st_mtime, st.st_mtime_nsec as i64)
    }
}

/// Copies `src/src_name` (any depth of directories, regular files and symlinks) to the
/// new `dst/dst_name`, keeping owner, mode, mtime and xattrs. Symlinks are copied as
/// symlinks; an existing destination is an error (nothing is written through it); a
/// FIFO, socket or device is refused by name.
pub fn copy_tree(src: &Dir, src_name: &OsStr, dst: &Dir, dst_name: &OsStr) -> Result<()> {
    let st = src
        .stat_child(src_name)?
        .ok_or_else(|| io_at(&src.path.join(src_name), Errno::NOENT))?;
    let xattrs = src.xattrs_child(src_name)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            dst.mkdir(dst_name, 0o700)?;
            let s = src.open_dir(Path::new(src_name))?;
            let d = dst.open_dir(Path::new(dst_name))?;
            for (n, _) in s.entries()? {
                copy_tree(&s, &n, &d, &n)?;
            }
        }
        FileType::Symlink => {
            let t = src.read_link(Path::new(src_name))?;
            dst.symlink(&t, dst_name)?;
        }
        FileType::RegularFile => {
            let mut from = src.open_file(Path::new(src_name), Resolve::NoSymlinks)?;
            let mut to = dst.create_file(dst_name, 0o600)?;
            io::copy(&mut from, &mut to).map_err(|e| io_at(&dst.path.join(dst_name), e))?;
            to.flush().map_err(|e| io_at(&dst.path.join(dst_name), e))?;
        }
        other => {
            return Err(BeneathError::Unsupported {
                path: src.path.join(src_name),
                kind: kind_name(other),
            });
        }
    }
    dst.copy_attrs_child(dst_name, &st, &xattrs)
}

/// Whether two regular files have the same bytes.
pub fn same_bytes(a: &mut File, b: &mut File) -> io::Result<bool> {
    let (mut ba, mut bb) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        let n = read_full(a, &mut ba)?;
        let m = read_full(b, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    thread_local! {
        /// Tests of the pre-5.6 walk set this to bypass openat2.
        pub static FORCE_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn the_fallback_walk_refuses_the_same() {
        FORCE_WALK.with(|f| f.set(true));
        links_in_any_component_are_refused();
        fifo_and_devices_are_never_opened();
        copy_keeps_links_as_links_and_never_writes_through_them();
        FORCE_WALK.with(|f| f.set(false));
    }

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let inside = t.path().join("tree");
        let outside = t.path().join("outside");
        fs::create_dir_all(inside.join("a/b")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "host\n").unwrap();
        fs::write(inside.join("a/b/f"), "in\n").unwrap();
        (t, inside, outside)
    }

    #[test]
    fn links_in_any_component_are_refused() {
        let (_t, inside, outside) = tree();
        symlink(&outside, inside.join("abs")).unwrap();
        symlink("../outside", inside.join("rel")).unwrap();
        symlink("a", inside.join("inside_link")).unwrap();
        let d = Dir::open(&inside).unwrap();
        for p in [
            "abs/secret",
            "rel/secret",
            "inside_link/b/f",
            "abs",
            "../outside/secret",
        ] {
            let e = d.read_file(p, Resolve::NoSymlinks, 100).unwrap_err();
            assert!(
                matches!(
                    e,
                    BeneathError::Symlink { .. } | BeneathError::Escapes { .. }
                ),
                "{p}: {e}"
            );
            assert!(e.to_string().contains(p.trim_start_matches("../")), "{e}");
        }
        assert!(d.open_dir("abs").unwrap_err().is_symlink());
        assert!(d.metadata("abs/secret").unwrap_err().is_symlink());
        assert_eq!(
            FileType::from_raw_mode(d.metadata("abs").unwrap().unwrap().st_mode),
            FileType::Symlink
        );
        assert!(d.metadata("nope/x").unwrap().is_none());
        assert_eq!(
            d.read_file("a/b/f", Resolve::NoSymlinks, 100).unwrap(),
            b"in\n"
        );
    }

    #[test]
    fn in_root_links_stay_in_the_tree() {
        let (_t, inside, outside) = tree();
        fs::create_dir_all(inside.join("etc")).unwrap();
        fs::write(inside.join("etc/secret"), "tree\n").unwrap();
        // An absolute link resolves against the tree, never the host.
        symlink(outside.join("secret"), inside.join("abs")).unwrap();
        symlink("/etc/secret", inside.join("rooted")).unwrap();
        symlink("../../../../../../etc/secret", inside.join("climb")).unwrap();
        let d = Dir::open(&inside).unwrap();
        assert!(
            d.read_file("abs", Resolve::InRoot, 100)
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(
            d.read_file("rooted", Resolve::InRoot, 100).unwrap(),
            b"tree\n"
        );
        assert_eq!(
            d.read_file("climb", Resolve::InRoot, 100).unwrap(),
            b"tree\n"
        );
    }

    #[test]
    fn fifo_and_devices_are_never_opened() {
        let (_t, inside, _) = tree();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            inside.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        symlink("/dev/zero", inside.join("zero")).unwrap();
        let d = Dir::open(&inside).unwrap();
        let e = d.read_file("fifo", Resolve::NoSymlinks, 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file (FIFO)"), "{e}");
        let e = d.read_file("fifo", Resolve::InRoot, 100).unwrap_err();
        assert!(matches!(e, BeneathError::NotRegular { .. }), "{e}");
        assert!(
            d.read_file("zero", Resolve::NoSymlinks, 100)
                .unwrap_err()
                .is_symlink()
        );
        // In the tree's own root, /dev/zero does not exist (the pre-5.6 walk follows
        // no link at all).
        let e = d.read_file("zero", Resolve::InRoot, 100).unwrap_err();
        assert!(e.is_not_found() || e.is_symlink(), "{e}");
        fs::write(inside.join("big"), vec![b'x'; 101]).unwrap();
        assert!(matches!(
            d.read_file("big", Resolve::NoSymlinks, 100).unwrap_err(),
            BeneathError::TooLarge { max: 100, .. }
        ));
    }

    #[test]
    fn copy_keeps_links_as_links_and_never_writes_through_them() {
        let (t, inside, outside) = tree();
        symlink(&outside, inside.join("a/out")).unwrap();
        fs::set_permissions(inside.join("a/b/f"), fs::Permissions::from_mode(0o640)).unwrap();
        let dst = t.path().join("dst");
        fs::create_dir(&dst).unwrap();
        // Where the filesystem has user xattrs, they are copied too.
        let xattr = rustix::fs::lsetxattr(
            inside.join("a/b/f"),
            "user.test",
            b"42",
            XattrFlags::empty(),
        )
        .is_ok();
        let (s, d) = (Dir::open(&inside).unwrap(), Dir::open(&dst).unwrap());
        copy_tree(&s, OsStr::new("a"), &d, OsStr::new("a")).unwrap();
        if xattr {
            let mut v = [0u8; 8];
            let n = rustix::fs::lgetxattr(dst.join("a/b/f"), "user.test", &mut v).unwrap();
            assert_eq!(&v[..n], b"42");
        }
        assert_eq!(fs::read_link(dst.join("a/out")).unwrap(), outside);
        assert_eq!(fs::read_to_string(dst.join("a/b/f")).unwrap(), "in\n");
        assert_eq!(
            fs::metadata(dst.join("a/b/f")).unwrap().mode() & 0o7777,
            0o640
        );
        // A destination that exists (here a link to the outside) is not written through.
        symlink(&outside, dst.join("b")).unwrap();
        let before = fs::metadata(&outside).unwrap().mode();
        assert!(copy_tree(&s, OsStr::new("a"), &d, OsStr::new("b")).is_err());
        assert_eq!(fs::metadata(&outside).unwrap().mode(), before);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
        // Removing follows nothing either.
        d.remove_all(OsStr::new("b")).unwrap();
        assert!(outside.join("secret").exists());
        d.remove_all(OsStr::new("a")).unwrap();
        assert!(outside.join("secret").exists());
        assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);
    }
}
