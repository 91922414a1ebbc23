//! The composefs tree of a commit, as `ostree checkout --composefs` builds it
//! (`ostree-repo-composefs.c`): the tree that `.ostree.cfs` and the commit metadata
//! `ostree.composefs.digest.v0` are made from.
//!
//! What ostree does, and so what we do:
//! * the root and every directory take mode, uid, gid and xattrs from their dirmeta;
//! * every file is its own inode (no hardlinks, even for equal content), mtime 0;
//! * a non-empty regular file gets payload `xx/<62 hex>.file` and no inline data; an
//!   empty one gets neither;
//! * a symlink's payload is its target;
//! * object xattrs are copied;
//! * `usr etc boot var sysroot` are added as root-owned 0755 directories when missing;
//! * fs-verity digests of non-empty regular files: with [`Verity::Yes`] the kernel's
//!   measurement when the object has verity, else computed in userspace; with
//!   [`Verity::Maybe`] only the kernel's; with [`Verity::No`] none.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::objects::{Checksum, Commit, ObjectType, object_path};
use super::repo::{Repo, RepoError, WalkEntry};
use crate::composefs::tree::{Node, NodeId, ROOT, Tree, TreeError, mode::S_IFDIR};

/// Whether and how the image records fs-verity digests of the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verity {
    /// No digests (`--composefs-noverity`).
    No,
    /// Digests only of objects that already have fs-verity enabled.
    Maybe,
    /// Digests of every non-empty regular file (ostree's default and what the commit
    /// metadata digest is computed with).
    Yes,
}

/// Directories a composefs root needs as mount points, in ostree's order.
pub const FORCED_ROOT_DIRS: [&str; 5] = ["usr", "etc", "boot", "var", "sysroot"];

/// Why a commit could not be turned into a tree.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{path}: {err}")]
    Tree { path: String, err: TreeError },
    #[error("{path}: fs-verity digest of {object}: {err}")]
    Digest {
        path: String,
        object: PathBuf,
        err: io::Error,
    },
}

/// Where fs-verity digests come from: the kernel's measurement of a file that has
/// verity, and a userspace computation over many files.
pub trait DigestSource {
    /// The kernel's fs-verity sha256 digest of the file, `None` when verity is not
    /// enabled on it (or the filesystem has none).
    fn measure(&self, file: &File) -> Option<[u8; 32]>;
    /// Userspace fs-verity digests of the files, in order.
    fn digest_files(&self, paths: &[PathBuf]) -> Vec<io::Result<[u8; 32]>>;
}

/// Digests from this system: the kernel's measurement of objects with fs-verity, the
/// crate's multi-threaded userspace digest for the rest.
pub struct SystemDigests;

impl DigestSource for SystemDigests {
    fn measure(&self, file: &File) -> Option<[u8; 32]> {
        // Any failure (no fs-verity here, not enabled, another algorithm) means "not
        // measured": ostree then hashes the content itself for `Yes`.
        crate::fsverity::ioctl::measure(file).ok().flatten()
    }
    fn digest_files(&self, paths: &[PathBuf]) -> Vec<io::Result<[u8; 32]>> {
        crate::fsverity::digest::digest_files_parallel(paths)
    }
}

/// The composefs tree of commit `commit` (a checksum), as ostree builds it for
/// `.ostree.cfs` and for `ostree.composefs.digest.v0`.
pub fn commit_tree(repo: &Repo, commit: &Checksum, verity: Verity) -> Result<Tree, CheckoutError> {
    commit_tree_with(repo, commit, verity, &SystemDigests)
}

/// The image ostree writes for a tree: EROFS, format version 0, raised to 1 only when
/// the tree needs it (whiteouts).
pub fn write_image(tree: &Tree) -> Result<Vec<u8>, crate::composefs::writer::WriteError> {
    crate::composefs::writer::write_image(
        tree,
        &crate::composefs::writer::WriteOptions {
            min_version: 0,
            max_version: 1,
        },
    )
}

/// Why a commit's composefs image could not be made, or is not the one it claims.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("building the composefs tree: {0}")]
    Tree(#[from] CheckoutError),
    #[error("writing the composefs image: {0}")]
    Write(#[from] crate::composefs::writer::WriteError),
    #[error("Expected composefs fs-verity in metadata has the wrong size ({0} bytes, expected 32)")]
    ClaimSize(usize),
    #[error(
        "Generated composefs image digest ({}) doesn't match expected digest ({})",
        hex::encode(.computed),
        hex::encode(.claimed)
    )]
    Mismatch {
        computed: [u8; 32],
        claimed: [u8; 32],
    },
}

/// The digest `commit` claims in `ostree.composefs.digest.v0`, if any.
pub fn claimed_digest(commit: &Commit) -> Result<Option<[u8; 32]>, ImageError> {
    commit
        .composefs_digest()
        .transpose()
        .map_err(ImageError::ClaimSize)
}

/// A commit's composefs image and its fs-verity digest.
pub struct CommitImage {
    pub bytes: Vec<u8>,
    pub digest: [u8; 32],
}

/// Tree, image, digest: the composefs image of commit `csum` (whose object is
/// `commit`) built with `verity`. With [`Verity::Yes`] a digest the commit claims must
/// be this one, as ostree checks at deploy; the claim is computed with YES, so an image
/// of another mode is not compared with it.
pub fn commit_image(
    repo: &Repo,
    csum: &Checksum,
    commit: &Commit,
    verity: Verity,
) -> Result<CommitImage, ImageError> {
    let claimed = match verity {
        Verity::Yes => claimed_digest(commit)?,
        Verity::No | Verity::Maybe => None,
    };
    let tree = commit_tree(repo, csum, verity)?;
    let bytes = write_image(&tree)?;
    let digest = crate::fsverity::digest::digest(&bytes);
    match claimed {
        Some(claimed) if claimed != digest => Err(ImageError::Mismatch {
            computed: digest,
            claimed,
        }),
        _ => Ok(CommitImage { bytes, digest }),
    }
}

/// Builds the composefs tree of commit `commit` (a checksum) with digests from
/// `digests`.
pub fn commit_tree_with(
    repo: &Repo,
    commit: &Checksum,
    verity: Verity,
    digests: &dyn DigestSource,
) -> Result<Tree, CheckoutError> {
    let (_, c) = repo.load_commit(commit)?;
    let mut tree: Option<Tree> = None;
    // Directory node of each path, to attach children; paths arrive parents first.
    let mut dirs: std::collections::HashMap<String, NodeId> = std::collections::HashMap::new();
    // Regular files whose digest is still to compute: node, object path, display path.
    let mut pending: Vec<(NodeId, PathBuf, String)> = Vec::new();

    repo.walk_commit(&c, &mut |path, entry| {
        let (parent, name) = match path.rsplit_once('/') {
            Some(("", n)) if path != "/" => ("/", n),
            Some((p, n)) => (p, n),
            None => ("/", path),
        };
        match entry {
            WalkEntry::Dir { meta, .. } => {
                let mut node = Node::new(S_IFDIR | (meta.mode & 0o7777));
                node.uid = meta.uid;
                node.gid = meta.gid;
                for x in &meta.xattrs {
                    node.set_xattr(x.name.clone(), x.value.clone());
                }
                if path == "/" {
                    tree = Some(Tree::new(node));
                    dirs.insert("/".into(), ROOT);
                } else {
                    let t = tree.as_mut().ok_or_else(|| not_found(path))?;
                    let p = *dirs.get(parent).ok_or_else(|| not_found(path))?;
                    let id = t
                        .add(p, name.as_bytes(), node)
                        .map_err(|e| tree_err(path, e))?;
                    dirs.insert(path.to_string(), id);
                }
            }
            WalkEntry::File { checksum, object } => {
                let h = &object.header;
                let mut node = Node::new(h.mode);
                node.uid = h.uid;
                node.gid = h.gid;
                for x in &h.xattrs {
                    node.set_xattr(x.name.clone(), x.value.clone());
                }
                let mut measure_path = None;
                if object.is_symlink() {
                    node.size = h.symlink_target.len() as u64;
                    node.payload = Some(h.symlink_target.as_bytes().to_vec());
                } else if object.size > 0 {
                    node.size = object.size;
                    node.payload = Some(object_path(&checksum, ObjectType::File).into_bytes());
                    measure_path = Some(object.path.clone());
                }
                let t = tree.as_mut().ok_or_else(|| not_found(path))?;
                let p = *dirs.get(parent).ok_or_else(|| not_found(path))?;
                let id = t
                    .add(p, name.as_bytes(), node)
                    .map_err(|e| tree_err(path, e))?;
                if let (Some(obj), true) = (measure_path, verity != Verity::No) {
                    pending.push((id, obj, path.to_string()));
                }
            }
        }
        Ok(())
    })?;
    let mut tree = tree.ok_or_else(|| not_found("/"))?;

    // Like ostree's ensure_lcfs_dir, an existing entry of any type is kept as it is.
    for d in FORCED_ROOT_DIRS {
        if !tree.root().children.contains_key(d.as_bytes()) {
            tree.add(ROOT, d.as_bytes(), Node::directory(0o755))
                .map_err(|e| CheckoutError::Tree {
                    path: format!("/{d}"),
                    err: e,
                })?;
        }
    }

    // The kernel's digest first: an object with verity needs no reading.
    let mut compute = Vec::new();
    for (id, obj, path) in pending {
        let measured = crate::fsutil::open_regular(&obj)
            .ok()
            .and_then(|f| digests.measure(&f));
        match measured {
            Some(d) => tree.node_mut(id).digest = Some(d),
            None if verity == Verity::Yes => compute.push((id, obj, path)),
            None => {}
        }
    }
    let paths: Vec<PathBuf> = compute.iter().map(|(_, p, _)| p.clone()).collect();
    for ((id, obj, path), d) in compute.into_iter().zip(digests.digest_files(&paths)) {
        let d = d.map_err(|err| CheckoutError::Digest {
            path,
            object: obj,
            err,
        })?;
        tree.node_mut(id).digest = Some(d);
    }
    Ok(tree)
}

fn not_found(path: &str) -> RepoError {
    RepoError::Corrupt {
        path: PathBuf::from(path),
        msg: "parent directory missing from the walk".into(),
    }
}

fn tree_err(path: &str, e: TreeError) -> RepoError {
    // ostree refuses the same name twice in a directory ("Target checkout file already
    // exist") and invalid names; both mean a corrupt dirtree.
    RepoError::Corrupt {
        path: PathBuf::from(path),
        msg: e.to_string(),
    }
}
