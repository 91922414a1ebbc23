//! The one atomic file write of the workspace: a temporary file beside the target,
//! written, fsynced, renamed over the target, and the directory fsynced, so a crash
//! leaves either the old file or the new one, never a torn one.
//!
//! And the one bounded read: [`read_regular`] and [`open_regular`] only read regular
//! files (a FIFO, device, socket or directory is an error, never a hang: the open is
//! non-blocking), and never more than the cap of the file's [`ReadKind`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An atomic write that failed, naming the file the failing step touched.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError {
        path: path.to_path_buf(),
        source,
    }
}

/// The marker between a target's name and the random suffix of its temporary file.
const TEMP_MARK: &str = ".tmp-";

/// Whether `name` is a temporary file [`write_atomic`] creates (`.<name>.tmp-<hex>`), so
/// that a crash's leftovers can be recognised and removed.
#[cfg(feature = "writer")]
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(TEMP_MARK).is_some_and(|(_, suffix)| {
            !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// Fills `buf` from the kernel's random source (getrandom(2), which blocks only until
/// the pool is first initialised). A short read (a signal) goes on where it stopped.
pub(crate) fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes `data` to `path` with permission bits `mode` (not narrowed by the umask)
/// atomically. The temporary file has a random name, so concurrent writers of the same
/// target never share one; on failure it is removed. A bare file name is written in
/// the current directory. The directory must exist.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = path.file_name().ok_or_else(|| WriteError {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let mut rnd = [0u8; 6];
    fill_random(&mut rnd).map_err(|source| WriteError {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{}{TEMP_MARK}{}",
        base.to_string_lossy(),
        hex::encode(rnd)
    ));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(data).map_err(err(&tmp))?;
        // The umask may have narrowed the mode given at creation.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        fs::rename(&tmp, path).map_err(err(path))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
        return res;
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir))
}

/// What is being read, which sets how many bytes may be read. The caps are far above
/// what a sane file of each kind holds, and low enough that a link to `/dev/zero` or a
/// huge file cannot exhaust an initrd's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// An INI file: prepare-root.conf, repo/config, kernel-install.conf, a BLS entry.
    Config,
    /// A `.commit` object.
    Commit,
    /// A `.commitmeta` object (detached metadata: signatures).
    CommitMeta,
    /// A `.dirtree` object.
    DirTree,
    /// A `.dirmeta` object.
    DirMeta,
    /// A public or secret key file.
    Key,
    /// Small runtime files: /proc/cmdline, /run/ostree-booted, /etc/fstab.
    Small,
    /// A whole composefs image (`.ostree.cfs`), read for checking.
    Image,
}

/// Cap of [`ReadKind::Config`].
pub const CONFIG_MAX: u64 = 4 << 20;
/// Cap of [`ReadKind::Commit`]; a commit is a few hundred bytes plus its metadata.
pub const COMMIT_MAX: u64 = 16 << 20;
/// Cap of [`ReadKind::CommitMeta`].
pub const COMMITMETA_MAX: u64 = 16 << 20;
/// Cap of [`ReadKind::DirTree`]; ~60 bytes per entry, so about a million entries.
pub const DIRTREE_MAX: u64 = 64 << 20;
/// Cap of [`ReadKind::DirMeta`]: uid, gid, mode and xattrs.
pub const DIRMETA_MAX: u64 = 1 << 20;
/// Cap of [`ReadKind::Key`].
pub const KEY_MAX: u64 = 1 << 20;
/// Cap of [`ReadKind::Small`].
pub const SMALL_MAX: u64 = 1 << 20;
/// Cap of [`ReadKind::Image`].
pub const IMAGE_MAX: u64 = 1 << 30;
/// How many bytes of an image the mount path reads itself (the composefs header and
/// the EROFS superblock magic); the kernel reads the rest.
pub const IMAGE_HEADER_MAX: u64 = 1028;

impl ReadKind {
    pub const fn max(self) -> u64 {
        match self {
            ReadKind::Config => CONFIG_MAX,
            ReadKind::Commit => COMMIT_MAX,
            ReadKind::CommitMeta => COMMITMETA_MAX,
            ReadKind::DirTree => DIRTREE_MAX,
            ReadKind::DirMeta => DIRMETA_MAX,
            ReadKind::Key => KEY_MAX,
            ReadKind::Small => SMALL_MAX,
            ReadKind::Image => IMAGE_MAX,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ReadKind::Config => "a configuration file",
            ReadKind::Commit => "a commit object",
            ReadKind::CommitMeta => "a commitmeta object",
            ReadKind::DirTree => "a dirtree object",
            ReadKind::DirMeta => "a dirmeta object",
            ReadKind::Key => "a key file",
            ReadKind::Small => "this file",
            ReadKind::Image => "a composefs image",
        }
    }
}

fn file_type_name(t: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match t {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        _ => "not a regular file",
    }
}

/// Opens `path` for reading only if it is a regular file (after following symlinks).
/// The open is `O_NONBLOCK`, so a FIFO without a writer cannot make it wait; the type
/// comes from `fstat` of the opened file, so it cannot change between check and read.
/// Errors keep the `io::ErrorKind` (`NotFound` for a missing file) and say what the
/// file is; callers add the path.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    let t = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&f)?.st_mode);
    if t != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, expected a regular file", file_type_name(t)),
        ));
    }
    Ok(f)
}

/// Reads the whole regular file at `path`, refusing one larger than the cap of `kind`.
/// The size is counted while reading, not taken from `st_size` (which is 0 for files
/// in /proc and may change under us).
pub fn read_regular(path: &Path, kind: ReadKind) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    read_capped(f, kind)
}

/// Reads all of `f` (already opened, e.g. by [`open_regular`]) up to the cap of `kind`.
pub fn read_capped(f: File, kind: ReadKind) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let max = kind.max();
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {} bytes, the limit for {}", max, kind.name()),
        ));
    }
    Ok(buf)
}

/// [`read_regular`] with a missing file as `Ok(None)`.
pub fn read_regular_optional(path: &Path, kind: ReadKind) -> io::Result<Option<Vec<u8>>> {
    match read_regular(path, kind) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_with_exact_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_names_the_path_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let e = write_atomic(&d.path().join("missing/f"), b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        // Renaming over a directory fails after the temporary file was written.
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/x"), "").unwrap();
        assert!(write_atomic(&d.path().join("dir"), b"x", 0o644).is_err());
        let names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !is_temp_name(n)), "{names:?}");
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".f.origin.tmp-0a1b2c3d4e5f"));
        assert!(!is_temp_name("f.tmp-00"));
        assert!(!is_temp_name(".f.tmp-"));
        assert!(!is_temp_name(".f.tmp-zz"));
        assert!(!is_temp_name("abc.0.origin"));
    }

    #[test]
    fn read_regular_refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // No writer: a blocking open would hang here.
        let e = read_regular(&fifo, ReadKind::Config).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO, expected a regular file");
        let e = read_regular(d.path(), ReadKind::Config).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, expected a regular file");
        let e = read_regular(Path::new("/dev/zero"), ReadKind::Commit).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a character device, expected a regular file"
        );
        // Through a symlink, the target is judged.
        std::os::unix::fs::symlink("/dev/null", d.path().join("l")).unwrap();
        assert!(read_regular(&d.path().join("l"), ReadKind::Small).is_err());
        let e = read_regular(&d.path().join("missing"), ReadKind::Small).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            read_regular_optional(&d.path().join("missing"), ReadKind::Small)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn read_regular_caps_the_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, vec![b'x'; DIRMETA_MAX as usize]).unwrap();
        assert_eq!(
            read_regular(&p, ReadKind::DirMeta).unwrap().len() as u64,
            DIRMETA_MAX
        );
        fs::write(&p, vec![b'x'; DIRMETA_MAX as usize + 1]).unwrap();
        let e = read_regular(&p, ReadKind::DirMeta).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("limit for a dirmeta object"), "{e}");
        // /proc files report st_size 0 and are still read whole.
        assert!(
            !read_regular(Path::new("/proc/self/cmdline"), ReadKind::Small)
                .unwrap()
                .is_empty()
        );
    }
}
