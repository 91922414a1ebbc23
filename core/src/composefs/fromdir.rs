//! A tree from a directory on disk, as `mkcomposefs DIR IMAGE` builds it (composefs
//! 1.0.8 `lcfs_build` + `compute_digest`): every inode with its stat mode, owner,
//! device number, size, mtime and all xattrs; hardlinks broken into separate inodes with
//! nlink 1; each non-empty regular file gets its fs-verity digest and the payload
//! `xx/<rest of the digest in hex>`, and files of at most 64 bytes are also inlined.
//! Digests are computed on all cores.

use super::dump::{MAX_PAYLOAD, MAX_XATTR_BUDGET, XattrBudget, set_xattr_counted};
use super::tree::{Node, NodeId, ROOT, Timespec, Tree, mode};
use crate::fsverity::digest::FsVerityHasher;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest file content stored inline in the image (`LCFS_RECOMMENDED_INLINE_CONTENT_MAX`).
pub const INLINE_MAX: u64 = 64;

/// What to read from the directory.
#[derive(Debug, Clone)]
pub struct FromDirOptions {
    /// Worker threads for digests; 0 means all available cores.
    pub threads: usize,
    /// Inline files of at most [`INLINE_MAX`] bytes (upstream's default).
    pub inline: bool,
}

impl Default for FromDirOptions {
    fn default() -> Self {
        FromDirOptions {
            threads: 0,
            inline: true,
        }
    }
}

fn ctx(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {what}: {e}", path.display()))
}

fn node_from(path: &Path, md: &std::fs::Metadata) -> io::Result<Node> {
    let mut n = Node::new(md.mode());
    n.uid = md.uid();
    n.gid = md.gid();
    n.rdev = md.rdev() as u32 as u64;
    n.size = md.size();
    n.mtime = Timespec {
        sec: md.mtime(),
        nsec: md.mtime_nsec() as u32,
    };
    n.nlink = Some(1);
    let ty = md.mode() & mode::S_IFMT;
    if ty == mode::S_IFLNK {
        let t = std::fs::read_link(path).map_err(|e| ctx(path, "readlink", e))?;
        let t = t.into_os_string().into_vec();
        if t.is_empty() || t.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: symlink target of {} bytes is not supported",
                    path.display(),
                    t.len()
                ),
            ));
        }
        n.size = t.len() as u64;
        n.payload = Some(t);
    }
    let mut budget = XattrBudget::default();
    for (k, v) in read_xattrs(path)? {
        set_xattr_counted(&mut n.xattrs, &mut budget, &k, &v, MAX_XATTR_BUDGET).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: xattr {:?}: {e}",
                    path.display(),
                    String::from_utf8_lossy(&k)
                ),
            )
        })?;
    }
    Ok(n)
}

/// All xattrs of `path` itself (not following a symlink).
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr(path, &mut [0u8; 0][..])
                    .map_err(|e| ctx(path, "listxattr", e.into()))?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(ctx(path, "listxattr", e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname =
            std::ffi::CString::new(name).map_err(|_| io::Error::other("NUL in xattr name"))?;
        let mut val = vec![0u8; 256];
        let vlen = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut val) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut [0u8; 0][..])
                        .map_err(|e| ctx(path, "getxattr", e.into()))?;
                    val.resize(need.max(val.len() * 2), 0);
                }
                Err(e) => return Err(ctx(path, "getxattr", e.into())),
            }
        };
        val.truncate(vlen);
        out.push((name.to_vec(), val));
    }
    Ok(out)
}

/// Reads the tree under `root` (which must be a directory).
pub fn tree_from_dir(root: &Path, opts: &FromDirOptions) -> io::Result<Tree> {
    let md = std::fs::symlink_metadata(root).map_err(|e| ctx(root, "stat", e))?;
    if !md.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{}: not a directory", root.display()),
        ));
    }
    let mut tree = Tree::new(node_from(root, &md)?);
    let mut files: Vec<(NodeId, PathBuf, u64)> = Vec::new();
    let mut stack: Vec<(NodeId, PathBuf)> = vec![(ROOT, root.to_path_buf())];
    while let Some((dir, dpath)) = stack.pop() {
        let mut names: Vec<OsString> = Vec::new();
        for e in std::fs::read_dir(&dpath).map_err(|e| ctx(&dpath, "readdir", e))? {
            names.push(e.map_err(|e| ctx(&dpath, "readdir", e))?.file_name());
        }
        names.sort();
        for name in names {
            let p = dpath.join(&name);
            let md = std::fs::symlink_metadata(&p).map_err(|e| ctx(&p, "stat", e))?;
            let node = node_from(&p, &md)?;
            let is_dir = node.is_dir();
            let is_file = node.is_reg() && node.size > 0;
            let size = node.size;
            let id = tree.add(dir, name.as_bytes(), node).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
            })?;
            if is_dir {
                stack.push((id, p));
            } else if is_file {
                files.push((id, p, size));
            }
        }
    }
    let results = hash_files(&files, opts)?;
    for ((id, _, _), (digest, content)) in files.iter().zip(results) {
        let n = tree.node_mut(*id);
        let hex = hex::encode(digest);
        n.payload = Some(format!("{}/{}", &hex[..2], &hex[2..]).into_bytes());
        n.digest = Some(digest);
        if let Some(c) = content {
            n.content = Some(c);
        }
    }
    Ok(tree)
}

type Hashed = ([u8; 32], Option<Vec<u8>>);

fn hash_one(path: &Path, size: u64, inline: bool) -> io::Result<Hashed> {
    let mut f = std::fs::File::open(path).map_err(|e| ctx(path, "open", e))?;
    if inline && size <= INLINE_MAX {
        let mut buf = Vec::with_capacity(size as usize);
        (&mut f)
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| ctx(path, "read", e))?;
        if (buf.len() as u64) < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: file shrank while reading", path.display()),
            ));
        }
        let mut h = FsVerityHasher::new();
        h.update(&buf);
        return Ok((h.finalize(), Some(buf)));
    }
    let d = crate::fsverity::digest::digest_reader(&mut f).map_err(|e| ctx(path, "read", e))?;
    Ok((d, None))
}

fn hash_files(files: &[(NodeId, PathBuf, u64)], opts: &FromDirOptions) -> io::Result<Vec<Hashed>> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .clamp(1, files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let parts: Vec<io::Result<Vec<(usize, Hashed)>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> io::Result<Vec<(usize, Hashed)>> {
                    let mut out = Vec::new();
                    while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, p, size)) = files.get(i) else {
                            break;
                        };
                        match hash_one(p, *size, opts.inline) {
                            Ok(h) => out.push((i, h)),
                            Err(e) => {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("digest worker panicked")))
            })
            .collect()
    });
    let mut slots: Vec<Option<Hashed>> = vec![None; files.len()];
    for part in parts {
        for (i, h) in part? {
            slots[i] = Some(h);
        }
    }
    slots
        .into_iter()
        .map(|s| s.ok_or_else(|| io::Error::other("a file was not hashed")))
        .collect()
}
