//! Writing into a generator output directory.
//!
//! Generators run in parallel and share their output directories, and whatever a
//! failing generator leaves behind is still loaded by systemd. So every file appears
//! whole or not at all (written to an anonymous `O_TMPFILE`, then linked into place),
//! an existing file is never replaced (`linkat` fails with `EEXIST`: two generators
//! claiming the same unit is a conflict to report, not to paper over), and
//! dependency symlinks that already exist are accepted, as systemd's own
//! `generator_add_symlink()` does.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

/// An error from writing into the output directory, naming the path involved.
#[derive(Debug)]
pub struct OutputError {
    pub path: PathBuf,
    pub kind: OutputErrorKind,
}

#[derive(Debug)]
pub enum OutputErrorKind {
    /// Another generator (or an earlier step) already wrote this file.
    AlreadyExists,
    Io(io::Error),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OutputErrorKind::AlreadyExists => write!(
                f,
                "{} already exists (written by another generator?), not replacing it",
                self.path.display()
            ),
            OutputErrorKind::Io(e) => write!(f, "writing {}: {e}", self.path.display()),
        }
    }
}

impl std::error::Error for OutputError {}

impl OutputError {
    fn io(path: PathBuf, e: impl Into<io::Error>) -> Self {
        OutputError {
            path,
            kind: OutputErrorKind::Io(e.into()),
        }
    }
}

/// One generator output directory (normally `argv[1]`).
pub struct OutputDir {
    path: PathBuf,
    fd: OwnedFd,
}

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

impl OutputDir {
    /// Opens an existing directory; systemd creates the output directories itself.
    pub fn open(path: &Path) -> Result<Self, OutputError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OutputError::io(path.to_owned(), e))?;
        Ok(OutputDir {
            path: path.to_owned(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `rel` (a file name or `subdir/name`) with `contents`, mode 0644.
    /// Parent directories are created as needed; an existing file is an error.
    pub fn write_file(&self, rel: &str, contents: &str) -> Result<(), OutputError> {
        let full = self.path.join(rel);
        let (dir, name) = self.parent_of(rel)?;
        let dir_fd = dir.as_ref().map(|d| d.as_fd()).unwrap_or(self.fd.as_fd());
        match rustix::fs::openat(
            dir_fd,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        ) {
            Ok(tmp) => {
                fill(&tmp, contents).map_err(|e| OutputError::io(full.clone(), e))?;
                link_tmpfile(&tmp, dir_fd, name).map_err(|e| map_exists(full, e))
            }
            // Filesystems without O_TMPFILE: a named temporary, linked without replacing.
            Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
                write_via_named_temp(dir_fd, name, contents).map_err(|e| map_exists(full, e))
            }
            Err(e) => Err(OutputError::io(full, e)),
        }
    }

    /// Creates the symlink `rel` → `target`; an existing entry is left alone.
    pub fn symlink(&self, rel: &str, target: &str) -> Result<(), OutputError> {
        let (dir, name) = self.parent_of(rel)?;
        let dir_fd = dir.as_ref().map(|d| d.as_fd()).unwrap_or(self.fd.as_fd());
        match rustix::fs::symlinkat(target, dir_fd, name) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(OutputError::io(self.path.join(rel), e)),
        }
    }

    /// Opens (creating with 0755) the directories leading to `rel`'s last component.
    fn parent_of<'a>(&self, rel: &'a str) -> Result<(Option<OwnedFd>, &'a str), OutputError> {
        let Some((dirs, name)) = rel.rsplit_once('/') else {
            return Ok((None, rel));
        };
        let mut cur: Option<OwnedFd> = None;
        let mut sofar = self.path.clone();
        for comp in dirs.split('/').filter(|c| !c.is_empty()) {
            sofar.push(comp);
            let parent = cur.as_ref().map(|d| d.as_fd()).unwrap_or(self.fd.as_fd());
            match rustix::fs::mkdirat(parent, comp, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(OutputError::io(sofar, e)),
            }
            let next = rustix::fs::openat(
                parent,
                comp,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| OutputError::io(sofar.clone(), e))?;
            cur = Some(next);
        }
        Ok((cur, name))
    }
}

fn map_exists(path: PathBuf, e: io::Error) -> OutputError {
    if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) {
        OutputError {
            path,
            kind: OutputErrorKind::AlreadyExists,
        }
    } else {
        OutputError::io(path, e)
    }
}

fn fill(fd: &OwnedFd, contents: &str) -> io::Result<()> {
    let mut buf = contents.as_bytes();
    while !buf.is_empty() {
        let n = rustix::io::write(fd, buf)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        buf = &buf[n..];
    }
    // The umask may have narrowed the creation mode; unit files are world-readable.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(FILE_MODE))?;
    rustix::fs::fsync(fd)?;
    Ok(())
}

fn link_tmpfile(tmp: &OwnedFd, dir: impl AsFd, name: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", tmp.as_raw_fd());
    match rustix::fs::linkat(CWD, proc_path.as_str(), &dir, name, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        // Without /proc, AT_EMPTY_PATH does the same (it needs CAP_DAC_READ_SEARCH).
        Err(Errno::NOENT) => Ok(rustix::fs::linkat(
            tmp,
            "",
            &dir,
            name,
            AtFlags::EMPTY_PATH,
        )?),
        Err(e) => Err(e.into()),
    }
}

fn write_via_named_temp(dir: impl AsFd, name: &str, contents: &str) -> io::Result<()> {
    let pid = rustix::process::getpid().as_raw_nonzero();
    for attempt in 0..16u32 {
        let tmp_name = format!(".#{name}.{pid}.{attempt}");
        let fd = match rustix::fs::openat(
            &dir,
            tmp_name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        ) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        };
        let linked = fill(&fd, contents).and_then(|()| {
            Ok(rustix::fs::linkat(
                &dir,
                tmp_name.as_str(),
                &dir,
                name,
                AtFlags::empty(),
            )?)
        });
        let _ = rustix::fs::unlinkat(&dir, tmp_name.as_str(), AtFlags::empty());
        return linked;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_files_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        out.write_file("var.mount", "[Mount]\n").unwrap();
        out.write_file("sysroot.mount.d/x.conf", "[Unit]\n")
            .unwrap();
        out.symlink("local-fs.target.requires/var.mount", "../var.mount")
            .unwrap();
        // Existing symlinks are fine, existing files are not.
        out.symlink("local-fs.target.requires/var.mount", "../var.mount")
            .unwrap();
        let err = out.write_file("var.mount", "x").unwrap_err();
        assert!(matches!(err.kind, OutputErrorKind::AlreadyExists), "{err}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("var.mount")).unwrap(),
            "[Mount]\n"
        );
        let meta = std::fs::metadata(tmp.path().join("sysroot.mount.d/x.conf")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        let dmeta = std::fs::metadata(tmp.path().join("sysroot.mount.d")).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read_link(tmp.path().join("local-fs.target.requires/var.mount")).unwrap(),
            Path::new("../var.mount")
        );
        // No temporaries are left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn named_temp_fallback_never_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutputDir::open(tmp.path()).unwrap();
        write_via_named_temp(&out.fd, "a.conf", "one").unwrap();
        let e = write_via_named_temp(&out.fd, "a.conf", "two").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(Errno::EXIST.raw_os_error()));
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("a.conf")).unwrap(),
            "one"
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_output_dir_is_reported() {
        let err = OutputDir::open(Path::new("/nonexistent/generator-out"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("/nonexistent/generator-out"),
            "{err}"
        );
    }
}
