//! The one atomic file write of the workspace: a temporary file beside the target,
//! written, fsynced, renamed over the target, and the directory fsynced, so a crash
//! leaves either the old file or the new one, never a torn one.

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
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(TEMP_MARK).is_some_and(|(_, suffix)| {
            !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_hexdigit())
        })
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
    getrandom::fill(&mut rnd).map_err(|e| WriteError {
        path: dir.to_path_buf(),
        source: io::Error::other(e.to_string()),
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
}
