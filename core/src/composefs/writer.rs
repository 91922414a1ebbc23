//! The EROFS composefs image writer, byte for byte what libcomposefs 1.4 / composefs
//! 1.0.8 `lcfs_write_to` produces for format versions 0 and 1.
//!
//! The steps follow `lcfs-writer.c` and `lcfs-writer-erofs.c`:
//! 1. the format version is raised from `min_version` to 1 when a whiteout (char device
//!    0:0) exists and `max_version` allows it;
//! 2. the tree is rewritten for overlayfs: `trusted.overlay.*` xattrs are escaped to
//!    `trusted.overlay.overlay.*`; a regular file without inline data gets
//!    `trusted.overlay.metacopy` (empty, or 36 bytes carrying its fs-verity digest) and
//!    `trusted.overlay.redirect` = `/` + payload; whiteouts become regular files marked
//!    with escaped whiteout xattrs, their directory marked too (`opaque=x` only from
//!    version 1); the root gets `trusted.overlay.opaque=y` and 256 stub whiteouts
//!    `00`..`ff`, which hide the data directory's `xx/` subdirectories;
//! 3. inodes are laid out in breadth-first order, compact where the values fit,
//!    xattrs used more than once shared, tails inlined where they fit in the block.

use super::dump::{MAX_PAYLOAD, MAX_XATTR_BUDGET, XattrBudget, XattrSetError};
use super::format::*;
use super::tree::{NodeId, ROOT, Timespec, Tree, mode};
use std::borrow::Cow;
use std::collections::HashMap;

/// Format version bounds, as `mkcomposefs --min-version/--max-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub min_version: u32,
    pub max_version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            min_version: 0,
            max_version: 1,
        }
    }
}

/// Why a tree cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("format version {0} is not supported (highest is {COMPOSEFS_VERSION_MAX})")]
    Version(u32),
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

fn invalid(tree: &Tree, paths: &PathIndex, id: NodeId, msg: impl Into<String>) -> WriteError {
    WriteError::Invalid {
        path: paths.path(tree, id),
        msg: msg.into(),
    }
}

/// Finds a node's path lazily, only when an error must name it.
struct PathIndex;
impl PathIndex {
    fn path(&self, tree: &Tree, id: NodeId) -> String {
        for (p, _, _, i) in tree.walk_entries() {
            if i == id {
                return String::from_utf8_lossy(&p).into_owned();
            }
        }
        format!("<inode {id}>")
    }
}

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const ESCAPE_PREFIX: &[u8] = b"trusted.overlay.overlay.";
const METACOPY: &[u8] = b"trusted.overlay.metacopy";
const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const OPAQUE: &[u8] = b"trusted.overlay.opaque";
const ESC_WHITEOUT: &[u8] = b"trusted.overlay.overlay.whiteout";
const ESC_WHITEOUTS: &[u8] = b"trusted.overlay.overlay.whiteouts";
const ESC_OPAQUE: &[u8] = b"trusted.overlay.overlay.opaque";
const USER_WHITEOUT: &[u8] = b"user.overlay.whiteout";
const USER_WHITEOUTS: &[u8] = b"user.overlay.whiteouts";
const USER_OPAQUE: &[u8] = b"user.overlay.opaque";

static STUB_NAMES: [[u8; 2]; 256] = {
    let hex = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [hex[i >> 4], hex[i & 15]];
        i += 1;
    }
    t
};

type Bytes<'a> = Cow<'a, [u8]>;

/// An inode as the writer lays it out.
struct Inode<'a> {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u32,
    size: u64,
    mtime: Timespec,
    nlink: u32,
    payload: Option<&'a [u8]>,
    content: Option<&'a [u8]>,
    xattrs: Vec<(Bytes<'a>, Bytes<'a>)>,
    /// libcomposefs's xattr space accounting.
    budget: XattrBudget,
    /// Directory entries in name order, `.` and `..` included: (name, inode index).
    dirents: Vec<(&'a [u8], u32)>,
    // Layout, filled in by `layout`.
    compact: bool,
    n_blocks: u64,
    tail: u64,
    ipad: u64,
    xattr_size: u64,
    n_shared: usize,
    nid: u64,
    /// Per xattr (in sorted order): its shared-area offset if stored shared.
    shared: Vec<Option<u64>>,
}

impl<'a> Inode<'a> {
    fn ty(&self) -> u32 {
        self.mode & mode::S_IFMT
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.xattrs.iter().position(|(k, _)| k.as_ref() == key)
    }

    /// `lcfs_node_set_xattr` (external-input limit), counted as `dump` counts it.
    fn set_xattr(&mut self, key: Bytes<'a>, value: Bytes<'a>) -> Result<(), String> {
        let fail =
            |e: XattrSetError| format!("cannot set xattr {:?}: {e}", String::from_utf8_lossy(&key));
        XattrBudget::check_lengths(&key, value.len()).map_err(fail)?;
        if let Some(i) = self.find(&key) {
            let (_, old) = self.xattrs.swap_remove(i);
            self.budget
                .removed(key.len(), old.len(), self.xattrs.is_empty());
        }
        self.budget
            .add(
                key.len(),
                value.len(),
                self.xattrs.is_empty(),
                MAX_XATTR_BUDGET,
            )
            .map_err(fail)?;
        self.xattrs.push((key, value));
        Ok(())
    }
}

fn dtype(m: u32) -> u8 {
    match m & mode::S_IFMT {
        mode::S_IFREG => FT_REG_FILE,
        mode::S_IFDIR => FT_DIR,
        mode::S_IFCHR => FT_CHRDEV,
        mode::S_IFBLK => FT_BLKDEV,
        mode::S_IFIFO => FT_FIFO,
        mode::S_IFSOCK => FT_SOCK,
        mode::S_IFLNK => FT_SYMLINK,
        _ => FT_UNKNOWN,
    }
}

fn valid_type(m: u32) -> bool {
    dtype(m) != FT_UNKNOWN
}

fn is_whiteout(m: u32, rdev: u64) -> bool {
    m & mode::S_IFMT == mode::S_IFCHR && rdev as u32 == 0
}

/// Writes `tree` as an EROFS composefs image.
pub fn write_image(tree: &Tree, opts: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let mut version = opts.min_version;
    let mut max_version = opts.max_version;
    if version > COMPOSEFS_VERSION_MAX {
        return Err(WriteError::Version(version));
    }
    if max_version > COMPOSEFS_VERSION_MAX {
        return Err(WriteError::Version(max_version));
    }
    if max_version < version {
        max_version = version;
    }
    if tree.nodes.is_empty() || !tree.node(ROOT).is_dir() {
        return Err(WriteError::Invalid {
            path: "/".into(),
            msg: "the root must be a directory".into(),
        });
    }
    if version < 1 && max_version >= 1 && has_whiteout(tree) {
        version = 1;
    }
    let mut inodes = build(tree, version)?;
    finish_tree(&mut inodes);
    Ok(serialize(&mut inodes, version))
}

/// Any whiteout reachable from the root (lcfs_write_update_version).
fn has_whiteout(tree: &Tree) -> bool {
    let mut seen = vec![false; tree.nodes.len()];
    let mut stack = vec![ROOT];
    seen[ROOT] = true;
    while let Some(id) = stack.pop() {
        for &c in tree.node(id).children.values() {
            let Some(n) = tree.nodes.get(c) else { continue };
            if is_whiteout(n.mode, n.rdev) {
                return true;
            }
            if n.is_dir() && !seen[c] {
                seen[c] = true;
                stack.push(c);
            }
        }
    }
    false
}

enum Pending {
    Placed(u32),
    Link(NodeId),
}

const DOT: &[u8] = b".";
const DOTDOT: &[u8] = b"..";

/// Builds the inode list in breadth-first order, with the overlayfs rewrite applied.
fn build<'a>(tree: &'a Tree, version: u32) -> Result<Vec<Inode<'a>>, WriteError> {
    let paths = PathIndex;
    let nlinks = tree.effective_nlinks();
    let mut placed: Vec<Option<u32>> = vec![None; tree.nodes.len()];
    // Per inode: its tree node (usize::MAX for the stubs) and its parent inode.
    let mut tid_of: Vec<NodeId> = Vec::with_capacity(tree.nodes.len() + 256);
    let mut parent_of: Vec<u32> = Vec::with_capacity(tree.nodes.len() + 256);
    let mut inodes: Vec<Inode<'a>> = Vec::with_capacity(tree.nodes.len() + 256);
    // Hardlink dirents resolved once every primary is placed: (dir, dirent index, target).
    let mut links: Vec<(u32, usize, NodeId)> = Vec::new();

    inodes.push(new_inode(tree, &paths, ROOT, nlinks[ROOT])?);
    tid_of.push(ROOT);
    parent_of.push(0);
    placed[ROOT] = Some(0);

    let mut qi = 0usize;
    while qi < inodes.len() {
        let tid = tid_of[qi];
        if tid == usize::MAX || !tree.node(tid).is_dir() {
            qi += 1;
            continue;
        }
        let dir = tree.node(tid);
        let is_root = qi == 0;
        let mut entries: Vec<(&'a [u8], Pending)> = Vec::with_capacity(dir.children.len() + 2);
        // The stubs merge into the root's entries in name order; a real entry of the
        // same name replaces its stub.
        let mut stub = if is_root { 0usize } else { 256 };
        for (name, &child) in &dir.children {
            while stub < 256 && STUB_NAMES[stub].as_slice() <= name.as_slice() {
                if STUB_NAMES[stub].as_slice() < name.as_slice() {
                    let idx = inodes.len() as u32;
                    let st = stub_inode(&inodes[0]).map_err(|m| invalid(tree, &paths, ROOT, m))?;
                    inodes.push(st);
                    tid_of.push(usize::MAX);
                    parent_of.push(0);
                    entries.push((STUB_NAMES[stub].as_slice(), Pending::Placed(idx)));
                }
                stub += 1;
            }
            let Some(cnode) = tree.nodes.get(child) else {
                let n = String::from_utf8_lossy(name).into_owned();
                return Err(invalid(
                    tree,
                    &paths,
                    tid,
                    format!("entry {n:?} names a missing inode"),
                ));
            };
            let secondary = cnode.hardlinks.iter().any(|(p, n)| *p == tid && n == name);
            if secondary || placed[child].is_some() {
                if cnode.is_dir() {
                    return Err(invalid(
                        tree,
                        &paths,
                        child,
                        "a directory cannot be hardlinked",
                    ));
                }
                entries.push((name.as_slice(), Pending::Link(child)));
                continue;
            }
            let idx = inodes.len() as u32;
            let mut ino = new_inode(tree, &paths, child, nlinks[child])?;
            if is_whiteout(cnode.mode, cnode.rdev) {
                // Whiteouts become regular files with escaped markers, their directory
                // marked as containing some.
                ino.size = 0;
                ino.mode = mode::S_IFREG | (ino.mode & !mode::S_IFMT);
                let r: Result<(), String> = (|| {
                    ino.set_xattr(Cow::Borrowed(ESC_WHITEOUT), Cow::Borrowed(b""))?;
                    ino.set_xattr(Cow::Borrowed(USER_WHITEOUT), Cow::Borrowed(b""))
                })();
                r.map_err(|m| invalid(tree, &paths, child, m))?;
                let parent = &mut inodes[qi];
                let r: Result<(), String> = (|| {
                    parent.set_xattr(Cow::Borrowed(ESC_WHITEOUTS), Cow::Borrowed(b""))?;
                    parent.set_xattr(Cow::Borrowed(USER_WHITEOUTS), Cow::Borrowed(b""))?;
                    if version >= 1 {
                        parent.set_xattr(Cow::Borrowed(ESC_OPAQUE), Cow::Borrowed(b"x"))?;
                        parent.set_xattr(Cow::Borrowed(USER_OPAQUE), Cow::Borrowed(b"x"))?;
                    }
                    Ok(())
                })();
                r.map_err(|m| invalid(tree, &paths, tid, m))?;
            }
            inodes.push(ino);
            tid_of.push(child);
            parent_of.push(qi as u32);
            placed[child] = Some(idx);
            entries.push((name.as_slice(), Pending::Placed(idx)));
        }
        while stub < 256 {
            let idx = inodes.len() as u32;
            let st = stub_inode(&inodes[0]).map_err(|m| invalid(tree, &paths, ROOT, m))?;
            inodes.push(st);
            tid_of.push(usize::MAX);
            parent_of.push(0);
            entries.push((STUB_NAMES[stub].as_slice(), Pending::Placed(idx)));
            stub += 1;
        }
        // "." and ".." are entries like the others, sorted by name: ".#x" sorts
        // between them, "-x" before both.
        let at = entries.partition_point(|(n, _)| *n < DOT);
        entries.insert(at, (DOT, Pending::Placed(qi as u32)));
        let at = entries.partition_point(|(n, _)| *n < DOTDOT);
        entries.insert(at, (DOTDOT, Pending::Placed(parent_of[qi])));
        let dirents = entries
            .into_iter()
            .enumerate()
            .map(|(pos, (name, p))| match p {
                Pending::Placed(i) => (name, i),
                Pending::Link(t) => {
                    links.push((qi as u32, pos, t));
                    (name, u32::MAX)
                }
            })
            .collect();
        inodes[qi].dirents = dirents;
        qi += 1;
    }
    for (dir, pos, target) in links {
        let Some(idx) = placed[target] else {
            return Err(invalid(
                tree,
                &paths,
                target,
                "hardlink to an inode that has no primary entry in the tree",
            ));
        };
        inodes[dir as usize].dirents[pos].1 = idx;
    }
    // The root's opaque marker is set after the rewrite, so it is not escaped.
    inodes[0]
        .set_xattr(Cow::Borrowed(OPAQUE), Cow::Borrowed(b"y"))
        .map_err(|m| invalid(tree, &paths, ROOT, m))?;
    Ok(inodes)
}

fn stub_inode<'a>(root: &Inode<'a>) -> Result<Inode<'a>, String> {
    let mut s = Inode {
        mode: mode::S_IFCHR | 0o644,
        uid: root.uid,
        gid: root.gid,
        rdev: 0,
        size: 0,
        mtime: root.mtime,
        nlink: 1,
        payload: None,
        content: None,
        xattrs: Vec::new(),
        budget: XattrBudget::default(),
        dirents: Vec::new(),
        compact: false,
        n_blocks: 0,
        tail: 0,
        ipad: 0,
        xattr_size: 0,
        n_shared: 0,
        nid: 0,
        shared: Vec::new(),
    };
    if let Some(i) = root.find(b"security.selinux") {
        let v = root.xattrs[i].1.clone();
        s.set_xattr(Cow::Borrowed(b"security.selinux"), v)?;
    }
    Ok(s)
}

/// An inode from a tree node: validated, xattrs replayed and escaped, metacopy and
/// redirect added (`lcfs_node_validate` + the first half of `add_overlayfs_xattrs`).
fn new_inode<'a>(
    tree: &'a Tree,
    paths: &PathIndex,
    id: NodeId,
    nlink: u32,
) -> Result<Inode<'a>, WriteError> {
    let n = tree.node(id);
    let bad = |m: String| invalid(tree, paths, id, m);
    if !valid_type(n.mode) {
        return Err(bad(format!("mode {:o} has no valid file type", n.mode)));
    }
    let ty = n.mode & mode::S_IFMT;
    let mut content = None;
    let mut size = n.size;
    let payload = n.payload.as_deref();
    if ty == mode::S_IFLNK {
        match payload {
            Some(p) if !p.is_empty() && p.len() <= MAX_PAYLOAD => size = p.len() as u64,
            Some(p) if !p.is_empty() => {
                return Err(bad(format!(
                    "symlink target of {} bytes is longer than {MAX_PAYLOAD}",
                    p.len()
                )));
            }
            _ => return Err(bad("symlink without a target".into())),
        }
    } else {
        if let Some(c) = n.content.as_deref() {
            if c.len() > MAX_INLINE_CONTENT {
                return Err(bad(format!(
                    "inline content of {} bytes exceeds {MAX_INLINE_CONTENT}",
                    c.len()
                )));
            }
            if !c.is_empty() {
                content = Some(c);
                size = c.len() as u64;
            }
        }
        if let Some(p) = payload
            && p.len() > MAX_PAYLOAD
        {
            return Err(bad(format!(
                "payload of {} bytes is longer than {MAX_PAYLOAD}",
                p.len()
            )));
        }
    }
    if ty == mode::S_IFREG
        && size > 0
        && content.is_none()
        && chunking(size).1 > MAX_NONINLINE_CHUNKS
    {
        return Err(bad(format!(
            "file size {size} is too big for a composefs image"
        )));
    }
    let mut ino = Inode {
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        size,
        mtime: n.mtime,
        nlink,
        payload,
        content,
        xattrs: Vec::with_capacity(n.xattrs.len() + 2),
        budget: XattrBudget::default(),
        dirents: Vec::new(),
        compact: false,
        n_blocks: 0,
        tail: 0,
        ipad: 0,
        xattr_size: 0,
        n_shared: 0,
        nid: 0,
        shared: Vec::new(),
    };
    for x in &n.xattrs {
        ino.set_xattr(Cow::Borrowed(&x.key), Cow::Borrowed(&x.value))
            .map_err(bad)?;
    }
    // Escape: renamed in place, the space accounting left as it was.
    for (k, _) in ino.xattrs.iter_mut() {
        if let Some(rest) = k.strip_prefix(OVERLAY_PREFIX) {
            let mut nk = Vec::with_capacity(ESCAPE_PREFIX.len() + rest.len());
            nk.extend_from_slice(ESCAPE_PREFIX);
            nk.extend_from_slice(rest);
            *k = Cow::Owned(nk);
        }
    }
    if ty == mode::S_IFREG && size > 0 && content.is_none() {
        let meta: Bytes<'a> = match &n.digest {
            Some(d) => {
                let mut v = Vec::with_capacity(36);
                v.extend_from_slice(&[0, 36, 0, 1]);
                v.extend_from_slice(d);
                Cow::Owned(v)
            }
            None => Cow::Borrowed(b""),
        };
        ino.set_xattr(Cow::Borrowed(METACOPY), meta).map_err(bad)?;
        if let Some(p) = payload.filter(|p| !p.is_empty()) {
            let mut r = Vec::with_capacity(p.len() + 1);
            r.push(b'/');
            r.extend_from_slice(p);
            ino.set_xattr(Cow::Borrowed(REDIRECT), Cow::Owned(r))
                .map_err(bad)?;
        }
    }
    Ok(ino)
}

struct Layout {
    min_mtime: Timespec,
    has_acl: bool,
    shared_entries: Vec<(Vec<u8>, Vec<u8>)>,
    shared_size: u64,
    inodes_end: u64,
    n_data_blocks: u64,
}

/// nlink of directories, canonical xattr order (lcfs_compute_tree).
fn finish_tree(inodes: &mut [Inode<'_>]) {
    let is_dir: Vec<bool> = inodes.iter().map(|i| i.ty() == mode::S_IFDIR).collect();
    for (i, ino) in inodes.iter_mut().enumerate() {
        if is_dir[i] {
            let subdirs = ino
                .dirents
                .iter()
                .filter(|&&(n, c)| n != b"." && n != b".." && c != u32::MAX && is_dir[c as usize])
                .count();
            ino.nlink = 2 + subdirs as u32;
        }
        ino.xattrs.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

fn xattr_entry_size(key: &[u8], value_len: usize) -> u64 {
    let (_, suffix) = xattr_index(key);
    round_up(XATTR_ENTRY_SIZE + suffix.len() as u64 + value_len as u64, 4)
}

fn dir_size(ino: &Inode<'_>) -> (u64, u64) {
    let mut blocks = 0u64;
    let mut used = 0u64;
    for (name, _) in &ino.dirents {
        let len = DIRENT_SIZE + name.len() as u64;
        if used + len > BLOCK_SIZE {
            blocks += 1;
            used = 0;
        }
        used += len;
    }
    // Never inline more than half a block.
    if used > BLOCK_SIZE / 2 {
        blocks += 1;
        used = 0;
    }
    (blocks, used)
}

fn layout(inodes: &mut [Inode<'_>]) -> Layout {
    let mut min_mtime = inodes[0].mtime;
    let mut has_acl = false;
    for ino in inodes.iter() {
        if ino.mtime < min_mtime {
            min_mtime = ino.mtime;
        }
        if ino.find(b"system.posix_acl_access").is_some()
            || ino.find(b"system.posix_acl_default").is_some()
        {
            has_acl = true;
        }
    }

    // Shared xattrs: every (key, value) used more than once, ordered by key, value
    // length and value, all descending (upstream's xattrs_ht_sort).
    let mut counts: HashMap<(&[u8], &[u8]), u32> = HashMap::new();
    for ino in inodes.iter() {
        for (k, v) in &ino.xattrs {
            *counts.entry((k.as_ref(), v.as_ref())).or_insert(0) += 1;
        }
    }
    let mut multi: Vec<(&[u8], &[u8])> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(kv, _)| *kv)
        .collect();
    multi.sort_by(|a, b| {
        b.0.cmp(a.0)
            .then(b.1.len().cmp(&a.1.len()))
            .then(b.1.cmp(a.1))
    });
    let mut offsets: HashMap<(&[u8], &[u8]), u64> = HashMap::with_capacity(multi.len());
    let mut shared_size = 0u64;
    let mut shared_entries = Vec::with_capacity(multi.len());
    for (k, v) in &multi {
        offsets.insert((k, v), shared_size);
        shared_size += xattr_entry_size(k, v.len());
        shared_entries.push((k.to_vec(), v.to_vec()));
    }
    let per_inode: Vec<Vec<Option<u64>>> = inodes
        .iter()
        .map(|ino| {
            let mut n = 0;
            ino.xattrs
                .iter()
                .map(|(k, v)| match offsets.get(&(k.as_ref(), v.as_ref())) {
                    Some(&off) if n < MAX_SHARED_PER_INODE => {
                        n += 1;
                        Some(off)
                    }
                    _ => None,
                })
                .collect()
        })
        .collect();
    drop(offsets);
    drop(counts);
    for (ino, sh) in inodes.iter_mut().zip(per_inode) {
        ino.shared = sh;
    }

    let mut pos = SUPER_OFFSET + SUPER_SIZE;
    let meta_start = pos / BLOCK_SIZE * BLOCK_SIZE;
    let mut n_data_blocks = 0;
    for ino in inodes.iter_mut() {
        let ty = ino.ty();
        // compute_erofs_inode_size
        (ino.n_blocks, ino.tail) = match ty {
            mode::S_IFDIR => dir_size(ino),
            mode::S_IFLNK => (0, ino.size),
            mode::S_IFREG if ino.size > 0 => {
                if ino.content.is_some() {
                    let (b, t) = (ino.size / BLOCK_SIZE, ino.size % BLOCK_SIZE);
                    if t > BLOCK_SIZE / 2 {
                        (b + 1, 0)
                    } else {
                        (b, t)
                    }
                } else {
                    (0, chunking(ino.size).1 * 4)
                }
            }
            _ => (0, 0),
        };
        let size = if ty == mode::S_IFDIR {
            ino.n_blocks * BLOCK_SIZE + ino.tail
        } else {
            ino.size
        };
        ino.compact = ino.mtime == min_mtime
            && ino.nlink <= u16::MAX as u32
            && ino.uid <= u16::MAX as u32
            && ino.gid <= u16::MAX as u32
            && size <= u32::MAX as u64;
        let inode_size = if ino.compact {
            COMPACT_INODE_SIZE
        } else {
            EXTENDED_INODE_SIZE
        };
        let mut n_shared = 0usize;
        let mut unshared = 0u64;
        for ((k, v), s) in ino.xattrs.iter().zip(&ino.shared) {
            if s.is_some() {
                n_shared += 1;
            } else {
                unshared += xattr_entry_size(k, v.len());
            }
        }
        ino.n_shared = n_shared;
        ino.xattr_size = if n_shared == 0 && unshared == 0 {
            0
        } else {
            round_up(XATTR_HEADER_SIZE + n_shared as u64 * 4 + unshared, 4)
        };
        let ppos = pos;
        pos = round_up(pos, SLOT_SIZE);
        ino.ipad = pos - ppos;
        let extra = tail_padding(ino, pos, inode_size, ino.xattr_size);
        ino.ipad += extra;
        pos += extra;
        n_data_blocks += ino.n_blocks;
        ino.nid = (pos - meta_start) / SLOT_SIZE;
        pos += inode_size + ino.xattr_size + ino.tail;
    }
    Layout {
        min_mtime,
        has_acl,
        shared_entries,
        shared_size,
        inodes_end: round_up(pos, SLOT_SIZE),
        n_data_blocks,
    }
}

/// Padding before an inode so its inline tail does not cross a block boundary; moves
/// the tail to a data block where it cannot fit (compute_erofs_inode_padding_for_tail).
fn tail_padding(ino: &mut Inode<'_>, pos: u64, inode_size: u64, xattr_size: u64) -> u64 {
    let non_tail = inode_size + xattr_size;
    let total = non_tail + ino.tail;
    if ino.ty() == mode::S_IFLNK {
        let pos_block = pos / BLOCK_SIZE;
        let end_block = (pos + total - 1) / BLOCK_SIZE;
        if total / BLOCK_SIZE > 0 {
            ino.n_blocks += 1;
            ino.tail = 0;
        }
        if pos_block != end_block {
            return round_up(pos, BLOCK_SIZE) - pos;
        }
        return 0;
    }
    let remainder = BLOCK_SIZE - (pos + non_tail) % BLOCK_SIZE;
    if remainder < ino.tail {
        let extra = round_up(remainder, SLOT_SIZE);
        let remainder = BLOCK_SIZE - (pos + non_tail + extra) % BLOCK_SIZE;
        if ino.tail <= remainder {
            return extra;
        }
        ino.n_blocks += 1;
        ino.tail = 0;
        return round_up(pos, BLOCK_SIZE) - pos;
    }
    0
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn pad_to(out: &mut Vec<u8>, align: u64) {
    let end = round_up(out.len() as u64, align) as usize;
    out.resize(end, 0);
}

fn write_xattr_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let (index, suffix) = xattr_index(key);
    out.push(suffix.len() as u8);
    out.push(index);
    put16(out, value.len() as u16);
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    pad_to(out, 4);
}

fn serialize(inodes: &mut [Inode<'_>], version: u32) -> Vec<u8> {
    let lay = layout(inodes);
    let data_start = round_up(lay.inodes_end + lay.shared_size, BLOCK_SIZE);
    let total = data_start + lay.n_data_blocks * BLOCK_SIZE;
    let mut out = Vec::with_capacity(total as usize);

    // composefs header
    put32(&mut out, COMPOSEFS_MAGIC);
    put32(&mut out, COMPOSEFS_HEADER_VERSION);
    put32(
        &mut out,
        if lay.has_acl {
            COMPOSEFS_FLAG_HAS_ACL
        } else {
            0
        },
    );
    put32(&mut out, version);
    out.resize(SUPER_OFFSET as usize, 0);

    // superblock
    put32(&mut out, EROFS_MAGIC);
    put32(&mut out, 0); // checksum
    put32(&mut out, FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER);
    out.push(BLOCK_BITS as u8);
    out.push(0); // sb_extslots
    put16(&mut out, inodes[0].nid as u16);
    put64(&mut out, inodes.len() as u64);
    put64(&mut out, lay.min_mtime.sec as u64);
    put32(&mut out, lay.min_mtime.nsec);
    put32(
        &mut out,
        (data_start / BLOCK_SIZE + lay.n_data_blocks) as u32,
    );
    put32(&mut out, ((SUPER_OFFSET + SUPER_SIZE) / BLOCK_SIZE) as u32); // meta_blkaddr
    put32(&mut out, (lay.inodes_end / BLOCK_SIZE) as u32); // xattr_blkaddr
    out.resize((SUPER_OFFSET + SUPER_SIZE) as usize, 0);

    let nids: Vec<u64> = inodes.iter().map(|i| i.nid).collect();
    let types: Vec<u32> = inodes.iter().map(|i| i.ty()).collect();
    let mut current_end = data_start;
    for (inum, ino) in inodes.iter().enumerate() {
        out.resize(out.len() + ino.ipad as usize, 0);
        let ty = ino.ty();
        let icount: u16 = if ino.xattr_size == 0 {
            0
        } else {
            ((ino.xattr_size - XATTR_HEADER_SIZE) / 4 + 1) as u16
        };
        let mut layout = if ino.tail > 0 {
            LAYOUT_FLAT_INLINE
        } else {
            LAYOUT_FLAT_PLAIN
        };
        let mut chunk_format = None;
        let size = match ty {
            mode::S_IFDIR => ino.n_blocks * BLOCK_SIZE + ino.tail,
            mode::S_IFREG => {
                if ino.size > 0 && ino.content.is_none() {
                    layout = LAYOUT_CHUNK_BASED;
                    chunk_format = Some((chunking(ino.size).0 - BLOCK_BITS) as u16);
                }
                ino.size
            }
            mode::S_IFLNK => {
                if ino.n_blocks == 0 {
                    ino.tail
                } else {
                    ino.size
                }
            }
            _ => 0,
        };
        let format = layout << 1 | if ino.compact { 0 } else { 1 };
        // The i_u union: block address, rdev, or chunk format over the low half.
        let mut iu = [0u8; 4];
        match ty {
            mode::S_IFCHR | mode::S_IFBLK => iu = ino.rdev.to_le_bytes(),
            mode::S_IFDIR | mode::S_IFREG | mode::S_IFLNK => {
                if ino.n_blocks > 0 {
                    iu = ((current_end / BLOCK_SIZE) as u32).to_le_bytes();
                    current_end += BLOCK_SIZE * ino.n_blocks;
                }
                if ty != mode::S_IFDIR
                    && let Some(f) = chunk_format
                {
                    iu[..2].copy_from_slice(&f.to_le_bytes());
                }
            }
            _ => {}
        }
        if ino.compact {
            put16(&mut out, format);
            put16(&mut out, icount);
            put16(&mut out, ino.mode as u16);
            put16(&mut out, ino.nlink as u16);
            put32(&mut out, size as u32);
            put32(&mut out, 0);
            out.extend_from_slice(&iu);
            put32(&mut out, inum as u32);
            put16(&mut out, ino.uid as u16);
            put16(&mut out, ino.gid as u16);
            put32(&mut out, 0);
        } else {
            put16(&mut out, format);
            put16(&mut out, icount);
            put16(&mut out, ino.mode as u16);
            put16(&mut out, 0);
            put64(&mut out, size);
            out.extend_from_slice(&iu);
            put32(&mut out, inum as u32);
            put32(&mut out, ino.uid);
            put32(&mut out, ino.gid);
            put64(&mut out, ino.mtime.sec as u64);
            put32(&mut out, ino.mtime.nsec);
            put32(&mut out, ino.nlink);
            out.resize(out.len() + 16, 0);
        }
        if ino.xattr_size > 0 {
            let start = out.len();
            let mut filter = 0u32;
            for (k, _) in &ino.xattrs {
                let (index, suffix) = xattr_index(k);
                filter |= 1 << (xxh32(suffix, XATTR_FILTER_SEED.wrapping_add(index as u32)) & 31);
            }
            put32(&mut out, !filter);
            out.push(ino.n_shared as u8);
            out.resize(out.len() + 7, 0);
            for s in ino.shared.iter().flatten() {
                put32(&mut out, ((lay.inodes_end % BLOCK_SIZE + s) / 4) as u32);
            }
            for ((k, v), s) in ino.xattrs.iter().zip(&ino.shared) {
                if s.is_none() {
                    write_xattr_entry(&mut out, k, v);
                }
            }
            debug_assert_eq!((out.len() - start) as u64, ino.xattr_size);
        }
        match ty {
            mode::S_IFDIR => write_dirents(&mut out, ino, &nids, &types, false),
            mode::S_IFLNK if ino.n_blocks == 0 => {
                out.extend_from_slice(ino.payload.unwrap_or_default());
            }
            mode::S_IFREG if ino.tail > 0 => match ino.content {
                Some(c) => out.extend_from_slice(&c[c.len() - ino.tail as usize..]),
                None => {
                    for _ in 0..ino.tail / 4 {
                        put32(&mut out, NULL_ADDR);
                    }
                }
            },
            _ => {}
        }
    }
    pad_to(&mut out, SLOT_SIZE);
    debug_assert_eq!(out.len() as u64, lay.inodes_end);
    for (k, v) in &lay.shared_entries {
        write_xattr_entry(&mut out, k, v);
    }
    pad_to(&mut out, BLOCK_SIZE);
    debug_assert_eq!(out.len() as u64, data_start);
    for ino in inodes.iter() {
        let ty = ino.ty();
        if ty == mode::S_IFDIR {
            write_dirents(&mut out, ino, &nids, &types, true);
        }
        if ino.n_blocks > 0 {
            match ty {
                mode::S_IFREG => match ino.content {
                    None => out.extend(std::iter::repeat_n(0xffu8, BLOCK_SIZE as usize)),
                    Some(c) => {
                        out.extend_from_slice(&c[..c.len().min(BLOCK_SIZE as usize)]);
                        pad_to(&mut out, BLOCK_SIZE);
                    }
                },
                mode::S_IFLNK => {
                    let p = ino.payload.unwrap_or_default();
                    out.extend_from_slice(&p[..p.len().min(BLOCK_SIZE as usize)]);
                    pad_to(&mut out, BLOCK_SIZE);
                }
                _ => {}
            }
        }
    }
    debug_assert_eq!(out.len() as u64, total);
    out
}

fn write_dirent_chunk(
    out: &mut Vec<u8>,
    chunk: &[(&[u8], u32)],
    nids: &[u64],
    types: &[u32],
    align: u64,
) {
    let mut nameoff = (chunk.len() as u64 * DIRENT_SIZE) as u16;
    for &(name, target) in chunk {
        let t = target as usize;
        put64(out, nids.get(t).copied().unwrap_or(0));
        put16(out, nameoff);
        out.push(dtype(types.get(t).copied().unwrap_or(0)));
        out.push(0);
        nameoff = nameoff.wrapping_add(name.len() as u16);
    }
    for &(name, _) in chunk {
        out.extend_from_slice(name);
    }
    pad_to(out, align);
}

/// Full blocks (`blocks`) or the inline tail (`!blocks`) of a directory
/// (write_erofs_dentries).
fn write_dirents(out: &mut Vec<u8>, ino: &Inode<'_>, nids: &[u64], types: &[u32], blocks: bool) {
    let d = &ino.dirents;
    let mut used = 0u64;
    let mut written = 0u64;
    let mut first = 0usize;
    for (i, (name, _)) in d.iter().enumerate() {
        let len = DIRENT_SIZE + name.len() as u64;
        if used + len > BLOCK_SIZE {
            if blocks {
                write_dirent_chunk(out, &d[first..i], nids, types, BLOCK_SIZE);
            }
            written += 1;
            used = 0;
            first = i;
        }
        used += len;
    }
    if written < ino.n_blocks {
        if blocks {
            write_dirent_chunk(out, &d[first..], nids, types, BLOCK_SIZE);
        }
        used = 0;
        first = d.len();
    }
    if !blocks && used > 0 {
        write_dirent_chunk(out, &d[first..], nids, types, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::composefs::tree::Node;
    use crate::composefs::{dump, reader};

    fn tree_with_whiteout() -> Tree {
        let mut t = Tree::new(Node::directory(0o755));
        let d = t.add(ROOT, b"d", Node::directory(0o755)).unwrap();
        t.add(d, b"gone", Node::new(mode::S_IFCHR | 0o644)).unwrap();
        let mut f = Node::file(0o644, 10);
        f.payload = Some(b"ab/cdef".to_vec());
        f.digest = Some([7; 32]);
        t.add(ROOT, b"f", f).unwrap();
        t
    }

    fn header_version(img: &[u8]) -> u32 {
        u32::from_le_bytes(img[12..16].try_into().unwrap())
    }

    #[test]
    fn whiteouts_raise_the_version_only_when_allowed() {
        let t = tree_with_whiteout();
        let v1 = write_image(&t, &WriteOptions::default()).unwrap();
        assert_eq!(header_version(&v1), 1);
        let v0 = write_image(
            &t,
            &WriteOptions {
                min_version: 0,
                max_version: 0,
            },
        )
        .unwrap();
        assert_eq!(header_version(&v0), 0);
        // Version 1 marks the directory opaque=x; both read back to the same tree.
        let a = dump::write(&reader::read_image(&v1).unwrap());
        let b = dump::write(&reader::read_image(&v0).unwrap());
        let s = String::from_utf8(a.clone()).unwrap();
        assert!(s.contains("/d/gone 0 20644 1 0 0 0 0.0 - - -"), "{s}");
        assert!(s.contains("trusted.overlay.opaque=x"), "{s}");
        assert!(!String::from_utf8(b).unwrap().contains("opaque"));
        assert!(s.contains("/f 10 100644 1 0 0 0 0.0 ab/cdef - 0707"), "{s}");
        let mut no_wo = tree_with_whiteout();
        let d = no_wo.lookup(b"/d").unwrap();
        no_wo.node_mut(d).children.clear();
        assert_eq!(
            header_version(&write_image(&no_wo, &WriteOptions::default()).unwrap()),
            0
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_path() {
        let mut t = Tree::new(Node::directory(0o755));
        t.add(ROOT, b"huge", Node::file(0o644, u64::MAX)).unwrap();
        let e = write_image(&t, &WriteOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("/huge: file size"), "{e}");
        let e = write_image(
            &t,
            &WriteOptions {
                min_version: 2,
                max_version: 2,
            },
        )
        .unwrap_err();
        assert_eq!(e, WriteError::Version(2));
        let mut t = Tree::new(Node::directory(0o755));
        t.add(ROOT, b"l", Node::new(mode::S_IFLNK | 0o777)).unwrap();
        assert!(
            write_image(&t, &WriteOptions::default())
                .unwrap_err()
                .to_string()
                .contains("/l: symlink")
        );
    }

    #[test]
    fn reader_survives_corruption() {
        let img = write_image(&tree_with_whiteout(), &WriteOptions::default()).unwrap();
        for len in (0..img.len()).step_by(7) {
            let _ = reader::read_image(&img[..len]);
        }
        let mut s = 0x9e3779b97f4a7c15u64;
        for _ in 0..3000 {
            let mut m = img.clone();
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let i = (s as usize) % 1400;
                m[i] = (s >> 32) as u8;
            }
            if let Ok(t) = reader::read_image(&m) {
                let _ = dump::write(&t);
            }
        }
    }
}
