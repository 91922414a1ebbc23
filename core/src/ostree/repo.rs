//! Reading (and a little writing) of ostree repositories without libostree.
//!
//! Supported modes are the ones a booted system uses: `bare` (file objects carry their
//! metadata in the inode), `bare-user` (metadata in the `user.ostreemeta` xattr, symlinks
//! stored as regular files holding the target) and `bare-user-only` (root-owned, no
//! xattrs, real symlinks). `archive-z2` is refused with a clear error.
//!
//! Everything read from the repository is untrusted: objects are parsed with the checked
//! parsers of [`super::objects`], walks are depth-limited, and writes are atomic
//! (temporary file, fsync, rename, fsync of the directory).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::objects::{
    Checksum, Commit, CommitMeta, DirMeta, DirTree, FileHeader, ObjectError, ObjectType, VarDict,
    Xattr, object_path, parse_checksum, sha256,
};
use crate::composefs::tree::mode::{S_IFLNK, S_IFMT, S_IFREG};
use crate::fsutil::{ReadKind, open_regular, read_regular};
use crate::keyfile::{KeyFile, KeyFileError};

/// ostree's own limit on directory nesting (`OSTREE_MAX_RECURSION`).
pub const MAX_RECURSION: usize = 256;

/// How file objects are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoMode {
    Bare,
    BareUser,
    BareUserOnly,
}

impl RepoMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
        }
    }
}

/// Why a repository operation failed. Every variant names the file or object.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error(transparent)]
    ConfigSyntax(#[from] KeyFileError),
    #[error("repository mode {0:?} is not supported (bare, bare-user and bare-user-only are)")]
    UnsupportedMode(String),
    #[error("{path}: {err}")]
    Object { path: PathBuf, err: ObjectError },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("ref {0:?} not found")]
    RefNotFound(String),
    #[error("invalid ref name {0:?}")]
    BadRefName(String),
    #[error("commit {0} has no parent")]
    NoParent(String),
    #[error("directory nesting deeper than {MAX_RECURSION} at {0}")]
    TooDeep(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RepoError + '_ {
    move |err| RepoError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// A metadata object (commit, dirtree, dirmeta) is named by the SHA-256 of its bytes.
fn check_named(path: &Path, csum: &Checksum, bytes: &[u8]) -> Result<(), RepoError> {
    let got = sha256(bytes);
    if got != *csum {
        return Err(RepoError::Corrupt {
            path: path.to_path_buf(),
            msg: format!(
                "corrupted object: its content hashes to {}, not to its name",
                hex::encode(got)
            ),
        });
    }
    Ok(())
}

/// A file object's metadata and where its content is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileObject {
    /// uid, gid, full mode, symlink target and xattrs, as ostree checksums them.
    pub header: FileHeader,
    /// Content size of a regular file; 0 for a symlink.
    pub size: u64,
    /// The object file in the repository.
    pub path: PathBuf,
}

impl FileObject {
    pub fn is_symlink(&self) -> bool {
        self.header.mode & S_IFMT == S_IFLNK
    }
    pub fn is_regular(&self) -> bool {
        self.header.mode & S_IFMT == S_IFREG
    }

    /// Recomputes the object's checksum as ostree does (header, then content).
    pub fn compute_checksum(&self) -> Result<Checksum, RepoError> {
        let mut h = self
            .header
            .checksum_state()
            .map_err(|err| RepoError::Object {
                path: self.path.clone(),
                err,
            })?;
        if self.is_regular() {
            let mut f = open_regular(&self.path).map_err(io_err(&self.path))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err(&self.path))?;
                if n == 0 {
                    break;
                }
                sha2::Digest::update(&mut h, &buf[..n]);
            }
        }
        Ok(sha2::Digest::finalize(h).into())
    }
}

/// One entry met while walking a commit's tree.
#[cfg(feature = "writer")]
#[derive(Clone, Debug)]
pub enum WalkEntry<'a> {
    Dir {
        meta: &'a DirMeta,
        dirtree: Checksum,
        dirmeta: Checksum,
    },
    File {
        checksum: Checksum,
        object: &'a FileObject,
    },
}

/// An open repository.
#[derive(Clone, Debug)]
pub struct Repo {
    path: PathBuf,
    mode: RepoMode,
    /// `config`, read with GKeyFile's rules as libostree reads it.
    config: KeyFile,
}

/// Reads a whole regular file within the cap of `kind`, turning ENOENT into `None`.
fn read_optional(path: &Path, kind: ReadKind) -> Result<Option<Vec<u8>>, RepoError> {
    match read_regular(path, kind) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RepoError::Io {
            path: path.to_path_buf(),
            err: e,
        }),
    }
}

/// A ref name as ostree accepts it: `/`-separated components of `[A-Za-z0-9._-]`, none
/// empty, `.` or `..`.
pub fn valid_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn get_xattrs(path: &Path, follow: bool) -> Result<Vec<Xattr>, RepoError> {
    let list = |buf: &mut [u8]| {
        if follow {
            rustix::fs::listxattr(path, buf)
        } else {
            rustix::fs::llistxattr(path, buf)
        }
    };
    let mut names = vec![0u8; 4096];
    let n = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => {
                names.resize(names.len() * 4, 0)
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => {
                return Err(RepoError::Io {
                    path: path.to_path_buf(),
                    err: e.into(),
                });
            }
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; 4096];
        let len = loop {
            let r = if follow {
                rustix::fs::getxattr(path, name_os, &mut value[..])
            } else {
                rustix::fs::lgetxattr(path, name_os, &mut value[..])
            };
            match r {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) if value.len() < 1 << 20 => {
                    value.resize(value.len() * 4, 0)
                }
                Err(e) => {
                    return Err(RepoError::Io {
                        path: path.to_path_buf(),
                        err: e.into(),
                    });
                }
            }
        };
        value.truncate(len);
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    Ok(out)
}

impl Repo {
    /// Opens the repository at `path`, reading its `config`.
    pub fn open(path: impl AsRef<Path>) -> Result<Repo, RepoError> {
        let path = path.as_ref().to_path_buf();
        let cfg_path = path.join("config");
        let bytes = read_regular(&cfg_path, ReadKind::Config).map_err(io_err(&cfg_path))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            io_err(&cfg_path)(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
        })?;
        let config = KeyFile::parse(&text, &cfg_path)?;
        let mode = config.get("core", "mode").unwrap_or("bare").to_string();
        let mode = match mode.as_str() {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            "archive" | "archive-z2" => return Err(RepoError::UnsupportedMode(mode)),
            _ => {
                return Err(RepoError::Config {
                    path: cfg_path,
                    msg: format!("invalid core.mode {mode:?}"),
                });
            }
        };
        let objects = path.join("objects");
        if !objects.is_dir() {
            return Err(RepoError::Config {
                path: objects,
                msg: "not a directory: not an ostree repository".into(),
            });
        }
        Ok(Repo { path, mode, config })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn mode(&self) -> RepoMode {
        self.mode
    }
    /// A value of the repository's `config` (GKeyFile), e.g. `("ex-integrity", "composefs")`.
    pub fn config_value(&self, group: &str, key: &str) -> Option<String> {
        self.config.get(group, key).map(str::to_string)
    }

    pub fn object_path(&self, csum: &Checksum, kind: ObjectType) -> PathBuf {
        self.path.join("objects").join(object_path(csum, kind))
    }

    fn ref_path(&self, refspec: &str) -> Result<PathBuf, RepoError> {
        match refspec.split_once(':') {
            Some((remote, name)) => {
                if !valid_ref_name(remote) || remote.contains('/') || !valid_ref_name(name) {
                    return Err(RepoError::BadRefName(refspec.to_string()));
                }
                Ok(self.path.join("refs/remotes").join(remote).join(name))
            }
            None => {
                if !valid_ref_name(refspec) {
                    return Err(RepoError::BadRefName(refspec.to_string()));
                }
                Ok(self.path.join("refs/heads").join(refspec))
            }
        }
    }

    fn read_ref_file(path: &Path) -> Result<Option<Checksum>, RepoError> {
        let Some(b) = read_optional(path, ReadKind::Small)? else {
            return Ok(None);
        };
        let s = String::from_utf8_lossy(&b);
        parse_checksum(s.trim())
            .map(Some)
            .map_err(|err| RepoError::Object {
                path: path.to_path_buf(),
                err,
            })
    }

    /// The commit a ref names: `name` (a local ref, then `refs/remotes/<name>` and
    /// `refs/mirrors/<name>` as ostree also looks there), `remote:name`, or a full
    /// checksum; each `^` suffix steps to the parent.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum, RepoError> {
        if let Some(base) = rev.strip_suffix('^') {
            let c = self.resolve_rev(base)?;
            let (_, commit) = self.load_commit(&c)?;
            return commit
                .parent
                .ok_or_else(|| RepoError::NoParent(hex::encode(c)));
        }
        if rev.len() == 64 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            return parse_checksum(&rev.to_ascii_lowercase()).map_err(|err| RepoError::Object {
                path: self.path.clone(),
                err,
            });
        }
        if let Some(c) = Self::read_ref_file(&self.ref_path(rev)?)? {
            return Ok(c);
        }
        if !rev.contains(':') {
            for dir in ["refs/remotes", "refs/mirrors"] {
                if let Some(c) = Self::read_ref_file(&self.path.join(dir).join(rev))? {
                    return Ok(c);
                }
            }
        }
        Err(RepoError::RefNotFound(rev.to_string()))
    }

    /// Whether `rev` names a ref (as opposed to a checksum): the ref [`Repo::set_ref`]
    /// would move.
    #[cfg(feature = "writer")]
    pub fn is_ref(&self, rev: &str) -> bool {
        let checksum = rev.len() == 64 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        !checksum && !rev.contains('^')
    }

    /// All refs: local ones by name, remote ones as `remote:name`, sorted.
    #[cfg(feature = "writer")]
    pub fn list_refs(&self) -> Result<Vec<(String, Checksum)>, RepoError> {
        fn walk(
            dir: &Path,
            prefix: &str,
            out: &mut Vec<(String, PathBuf)>,
        ) -> Result<(), RepoError> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(RepoError::Io {
                        path: dir.to_path_buf(),
                        err: e,
                    });
                }
            };
            for e in rd {
                let e = e.map_err(io_err(dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let full = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let ft = e.file_type().map_err(io_err(&e.path()))?;
                if ft.is_dir() {
                    walk(&e.path(), &full, out)?;
                } else if ft.is_file() {
                    out.push((full, e.path()));
                }
            }
            Ok(())
        }
        let mut files = Vec::new();
        walk(&self.path.join("refs/heads"), "", &mut files)?;
        let mut remote = Vec::new();
        walk(&self.path.join("refs/remotes"), "", &mut remote)?;
        for (name, p) in remote {
            if let Some((r, n)) = name.split_once('/') {
                files.push((format!("{r}:{n}"), p));
            }
        }
        let mut out = Vec::new();
        for (name, p) in files {
            if let Some(c) = Self::read_ref_file(&p)? {
                out.push((name, c));
            }
        }
        out.sort();
        Ok(out)
    }

    fn load_meta(
        &self,
        csum: &Checksum,
        kind: ObjectType,
    ) -> Result<(PathBuf, Vec<u8>), RepoError> {
        let p = self.object_path(csum, kind);
        let cap = match kind {
            ObjectType::Commit => ReadKind::Commit,
            ObjectType::CommitMeta => ReadKind::CommitMeta,
            ObjectType::DirTree => ReadKind::DirTree,
            ObjectType::DirMeta | ObjectType::File => ReadKind::DirMeta,
        };
        let b = read_regular(&p, cap).map_err(io_err(&p))?;
        Ok((p, b))
    }

    /// The exact bytes of a `.commit` object (what signatures cover) and its parsed form.
    /// The bytes must hash to the object's name: a commit object replaced by another
    /// one's bytes is corruption, not a different commit under an old name.
    pub fn load_commit(&self, csum: &Checksum) -> Result<(Vec<u8>, Commit), RepoError> {
        let (p, b) = self.load_meta(csum, ObjectType::Commit)?;
        check_named(&p, csum, &b)?;
        let c = Commit::parse(&b).map_err(|err| RepoError::Object { path: p, err })?;
        Ok((b, c))
    }

    /// The detached metadata of a commit, `None` when it has none.
    pub fn load_commitmeta(
        &self,
        csum: &Checksum,
    ) -> Result<Option<(Vec<u8>, CommitMeta)>, RepoError> {
        let p = self.object_path(csum, ObjectType::CommitMeta);
        Ok(read_optional(&p, ReadKind::CommitMeta)?.map(|b| {
            let m = VarDict::parse(&b);
            (b, m)
        }))
    }

    pub fn load_dirtree(&self, csum: &Checksum) -> Result<DirTree, RepoError> {
        let (p, b) = self.load_meta(csum, ObjectType::DirTree)?;
        check_named(&p, csum, &b)?;
        DirTree::parse(&b).map_err(|err| RepoError::Object { path: p, err })
    }

    pub fn load_dirmeta(&self, csum: &Checksum) -> Result<DirMeta, RepoError> {
        let (p, b) = self.load_meta(csum, ObjectType::DirMeta)?;
        check_named(&p, csum, &b)?;
        DirMeta::parse(&b).map_err(|err| RepoError::Object { path: p, err })
    }

    /// A file object's metadata, read as the repository mode stores it.
    pub fn load_file(&self, csum: &Checksum) -> Result<FileObject, RepoError> {
        let path = self.object_path(csum, ObjectType::File);
        let st = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let corrupt = |msg: &str| RepoError::Corrupt {
            path: path.clone(),
            msg: msg.to_string(),
        };
        let ft = st.file_type();
        let header = match self.mode {
            RepoMode::Bare | RepoMode::BareUserOnly => {
                let symlink_target = if ft.is_symlink() {
                    let t = fs::read_link(&path).map_err(io_err(&path))?;
                    t.to_str()
                        .ok_or_else(|| corrupt("symlink target is not UTF-8"))?
                        .to_string()
                } else if ft.is_file() {
                    String::new()
                } else {
                    return Err(corrupt("neither a regular file nor a symlink"));
                };
                let (uid, gid, xattrs) = if self.mode == RepoMode::Bare {
                    // ostree canonicalises xattrs by name when it commits them.
                    let mut x = get_xattrs(&path, false)?;
                    x.sort();
                    (st.uid(), st.gid(), x)
                } else {
                    (0, 0, Vec::new())
                };
                FileHeader {
                    uid,
                    gid,
                    mode: st.mode(),
                    symlink_target,
                    xattrs,
                }
            }
            RepoMode::BareUser => {
                if !ft.is_file() {
                    return Err(corrupt("bare-user object is not a regular file"));
                }
                let meta = rustix::fs::lgetxattr_query(&path, "user.ostreemeta")
                    .and_then(|n| {
                        let mut v = vec![0u8; n];
                        let n = rustix::fs::lgetxattr(&path, "user.ostreemeta", &mut v[..])?;
                        v.truncate(n);
                        Ok(v)
                    })
                    .map_err(|e| RepoError::Corrupt {
                        path: path.clone(),
                        msg: format!("reading user.ostreemeta: {e}"),
                    })?;
                let m = DirMeta::parse(&meta).map_err(|err| RepoError::Object {
                    path: path.clone(),
                    err,
                })?;
                let symlink_target = match m.mode & S_IFMT {
                    S_IFLNK => {
                        if st.len() > 4096 {
                            return Err(corrupt("symlink target longer than PATH_MAX"));
                        }
                        let mut t = read_regular(&path, ReadKind::Small).map_err(io_err(&path))?;
                        // ostree writes the target with its C string terminator.
                        if t.last() == Some(&0) {
                            t.pop();
                        }
                        String::from_utf8(t).map_err(|_| corrupt("symlink target is not UTF-8"))?
                    }
                    S_IFREG => String::new(),
                    _ => {
                        return Err(corrupt(
                            "user.ostreemeta mode is neither a regular file nor a symlink",
                        ));
                    }
                };
                FileHeader {
                    uid: m.uid,
                    gid: m.gid,
                    mode: m.mode,
                    symlink_target,
                    xattrs: m.xattrs,
                }
            }
        };
        let size = if header.mode & S_IFMT == S_IFREG {
            st.len()
        } else {
            0
        };
        Ok(FileObject { header, size, path })
    }
}

/// Walking a commit for a checkout, and writing objects and refs: writers only.
#[cfg(feature = "writer")]
impl Repo {
    /// Walks a commit's tree depth-first in ostree's order (files, then subdirectories,
    /// each by name), calling `f` with the path (`/` for the root) and the entry.
    pub fn walk_commit(
        &self,
        commit: &Commit,
        f: &mut dyn FnMut(&str, WalkEntry<'_>) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        self.walk_dir(commit.root_contents, commit.root_metadata, "/", 0, f)
    }

    fn walk_dir(
        &self,
        dirtree: Checksum,
        dirmeta: Checksum,
        path: &str,
        depth: usize,
        f: &mut dyn FnMut(&str, WalkEntry<'_>) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        if depth > MAX_RECURSION {
            return Err(RepoError::TooDeep(path.to_string()));
        }
        let meta = self.load_dirmeta(&dirmeta)?;
        f(
            path,
            WalkEntry::Dir {
                meta: &meta,
                dirtree,
                dirmeta,
            },
        )?;
        let tree = self.load_dirtree(&dirtree)?;
        let join = |name: &str| {
            if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            }
        };
        for (name, csum) in &tree.files {
            let obj = self.load_file(csum)?;
            f(
                &join(name),
                WalkEntry::File {
                    checksum: *csum,
                    object: &obj,
                },
            )?;
        }
        for (name, t, m) in &tree.dirs {
            self.walk_dir(*t, *m, &join(name), depth + 1, f)?;
        }
        Ok(())
    }

    /// Writes `data` to `path` atomically ([`crate::fsutil::write_atomic`]), creating
    /// the directory first.
    pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), RepoError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        crate::fsutil::write_atomic(path, data, mode).map_err(|e| RepoError::Io {
            path: e.path,
            err: e.source,
        })
    }

    /// Stores a metadata object under the checksum of its bytes and returns it. An object
    /// already present is left alone (same name, same content).
    pub fn write_metadata_object(
        &self,
        kind: ObjectType,
        bytes: &[u8],
    ) -> Result<Checksum, RepoError> {
        let csum = sha256(bytes);
        let p = self.object_path(&csum, kind);
        if !p.exists() {
            Self::write_atomic(&p, bytes, 0o644)?;
        }
        Ok(csum)
    }

    /// Stores a new commit object; returns its checksum.
    pub fn write_commit(&self, commit: &Commit) -> Result<Checksum, RepoError> {
        let bytes = commit.to_bytes().map_err(|err| RepoError::Object {
            path: self.path.join("objects"),
            err,
        })?;
        self.write_metadata_object(ObjectType::Commit, &bytes)
    }

    /// Replaces the detached metadata of commit `csum`.
    pub fn write_commitmeta(&self, csum: &Checksum, meta: &CommitMeta) -> Result<(), RepoError> {
        let p = self.object_path(csum, ObjectType::CommitMeta);
        let bytes = meta.to_bytes().map_err(|err| RepoError::Object {
            path: p.clone(),
            err,
        })?;
        Self::write_atomic(&p, &bytes, 0o644)
    }

    /// Points ref `name` (`name` or `remote:name`) at `csum`, atomically.
    pub fn set_ref(&self, name: &str, csum: &Checksum) -> Result<(), RepoError> {
        let p = self.ref_path(name)?;
        Self::write_atomic(&p, format!("{}\n", hex::encode(csum)).as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keyfile_lookup() {
        let t = "[core]\nrepo_version=1\nmode = bare-user\n\n[ex-integrity]\ncomposefs=true\n# x\n";
        let kf = KeyFile::parse(t, Path::new("config")).unwrap();
        assert_eq!(kf.get("core", "mode"), Some("bare-user"));
        assert_eq!(kf.get("ex-integrity", "composefs"), Some("true"));
        assert_eq!(kf.get("core", "composefs"), None);
    }

    #[test]
    fn ref_names() {
        assert!(valid_ref_name("fedora/x86_64/silverblue"));
        assert!(valid_ref_name("a.b-c_d"));
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a b", "a:b"] {
            assert!(!valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn archive_and_garbage_configs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("objects")).unwrap();
        fs::write(d.path().join("config"), "[core]\nmode=archive-z2\n").unwrap();
        assert!(matches!(
            Repo::open(d.path()),
            Err(RepoError::UnsupportedMode(_))
        ));
        fs::write(d.path().join("config"), "[core]\nmode=weird\n").unwrap();
        assert!(matches!(
            Repo::open(d.path()),
            Err(RepoError::Config { .. })
        ));
        fs::write(d.path().join("config"), "[core]\nmode=bare-user-only\n").unwrap();
        let r = Repo::open(d.path()).unwrap();
        assert_eq!(r.mode(), RepoMode::BareUserOnly);
        assert!(matches!(
            r.resolve_rev("nope"),
            Err(RepoError::RefNotFound(_))
        ));
        assert!(matches!(
            r.resolve_rev("../x"),
            Err(RepoError::BadRefName(_))
        ));
        r.set_ref("a/b", &[0xab; 32]).unwrap();
        r.set_ref("origin:main", &[0xcd; 32]).unwrap();
        assert_eq!(r.resolve_rev("a/b").unwrap(), [0xab; 32]);
        assert_eq!(r.resolve_rev("origin:main").unwrap(), [0xcd; 32]);
        assert_eq!(r.resolve_rev("origin/main").unwrap(), [0xcd; 32]);
        assert_eq!(
            r.list_refs().unwrap(),
            vec![
                ("a/b".into(), [0xab; 32]),
                ("origin:main".into(), [0xcd; 32])
            ]
        );
        let mode = fs::metadata(d.path().join("refs/heads/a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
