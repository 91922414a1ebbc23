//! Reads an EROFS composefs image back into a [`Tree`], undoing the overlayfs rewrite
//! the way `lcfs_load_node_from_image` does (composefs 1.0.8): redirect and metacopy
//! xattrs become payload and digest, escaped whiteouts become char devices 0:0 again,
//! `trusted.overlay.overlay.*` is unescaped, other `trusted.overlay.*` and the stub
//! whiteouts `00`..`ff` are dropped. An inode reached by a second name becomes a
//! hardlink of the first name met in depth-first order.
//!
//! Images are untrusted: every offset is bounds-checked, directories are visited once,
//! the number of directory entries is bounded by the image size, and paths are capped,
//! so a hostile image gives an error, never a panic, a loop or an outsized allocation.

use super::format::*;
use super::tree::{Node, NodeId, ROOT, Timespec, Tree, TreeError, Xattr, mode};
use std::collections::HashMap;

/// Longest path accepted in an image (`PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// Why an image could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not a composefs image: {0}")]
    NotComposefs(String),
    #[error("corrupt image: {0}")]
    Corrupt(String),
    #[error("unsupported image: {0}")]
    Unsupported(String),
}

fn corrupt(m: impl Into<String>) -> ReadError {
    ReadError::Corrupt(m.into())
}

/// What the 32-byte composefs header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    pub composefs_version: u32,
}

impl Header {
    pub fn has_acl(&self) -> bool {
        self.flags & COMPOSEFS_FLAG_HAS_ACL != 0
    }
}

/// How many leading bytes of an image [`read_header`] looks at: the composefs header
/// and the EROFS superblock magic.
pub const HEADER_BYTES: usize = SUPER_OFFSET as usize + 4;

/// Reads the composefs header and checks the EROFS superblock magic: what is checked
/// before an image is mounted (`img` may be just its first [`HEADER_BYTES`]).
pub fn read_header(img: &[u8]) -> Result<Header, ReadError> {
    let b = Bytes(img);
    let magic = b
        .u32(0)
        .ok_or_else(|| ReadError::NotComposefs("shorter than its header".into()))?;
    if magic != COMPOSEFS_MAGIC {
        return Err(ReadError::NotComposefs(format!(
            "magic {magic:#010x}, expected {COMPOSEFS_MAGIC:#010x}"
        )));
    }
    let version = b.u32(4).unwrap_or(0);
    if version != COMPOSEFS_HEADER_VERSION {
        return Err(ReadError::Unsupported(format!(
            "composefs header version {version}"
        )));
    }
    let sb_magic = b
        .u32(SUPER_OFFSET)
        .ok_or_else(|| corrupt("no EROFS superblock"))?;
    if sb_magic != EROFS_MAGIC {
        return Err(corrupt(format!(
            "EROFS superblock magic {sb_magic:#010x}, expected {EROFS_MAGIC:#010x}"
        )));
    }
    Ok(Header {
        flags: b.u32(8).unwrap_or(0),
        composefs_version: b.u32(12).unwrap_or(0),
    })
}

#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn get(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.0.get(start..end)
    }
    fn u16(&self, off: u64) -> Option<u16> {
        self.get(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, off: u64) -> Option<u32> {
        self.get(off, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, off: u64) -> Option<u64> {
        self.get(off, 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    }
}

struct Image<'a> {
    b: Bytes<'a>,
    meta: u64,
    xattr: u64,
    build_time: Timespec,
}

struct RawInode<'a> {
    node: Node,
    layout: u16,
    raw_blkaddr: u32,
    /// Bytes right after the inode and its xattrs (where an inline tail lives).
    tail_start: u64,
    /// A char device 0:0 on disk: a stub whiteout, skipped (decided before the xattrs
    /// turn an escaped whiteout back into one).
    stub: bool,
    _p: std::marker::PhantomData<&'a ()>,
}

/// Reads an image into a tree.
pub fn read_image(img: &[u8]) -> Result<Tree, ReadError> {
    read_header(img)?;
    let b = Bytes(img);
    let sb = SUPER_OFFSET;
    let blkszbits = b.get(sb + 12, 1).map(|x| x[0]).unwrap_or(0);
    if blkszbits as u32 != BLOCK_BITS {
        return Err(ReadError::Unsupported(format!("block size 2^{blkszbits}")));
    }
    let root_nid = b.u16(sb + 14).ok_or_else(|| corrupt("short superblock"))? as u64;
    let build_time = Timespec {
        sec: b.u64(sb + 24).unwrap_or(0) as i64,
        nsec: b.u32(sb + 32).unwrap_or(0),
    };
    let meta = b.u32(sb + 40).ok_or_else(|| corrupt("short superblock"))? as u64 * BLOCK_SIZE;
    let xattr = b.u32(sb + 44).ok_or_else(|| corrupt("short superblock"))? as u64 * BLOCK_SIZE;
    let im = Image {
        b,
        meta,
        xattr,
        build_time,
    };

    let root = im.inode(root_nid)?;
    if root.node.file_type() != mode::S_IFDIR {
        return Err(corrupt("the root inode is not a directory"));
    }
    let root_dirents = im.dirents(&root)?;
    let mut tree = Tree::new(root.node);
    let mut by_nid: HashMap<u64, NodeId> = HashMap::new();
    by_nid.insert(root_nid, ROOT);
    // Every dirent takes at least 12 bytes of the image, so a sane image has fewer
    // entries than this in all; a hostile one sharing blocks between directories is cut.
    let mut budget = img.len() / DIRENT_SIZE as usize + 1;
    budget = budget.saturating_sub(root_dirents.len());
    // Depth-first, in dirent order, as upstream builds nodes.
    // (directory, length of its path, its entries, next entry)
    let mut stack: Vec<(NodeId, usize, Dirents, usize)> = vec![(ROOT, 1, root_dirents, 0)];
    while let Some((dir, depth_len, ents, pos)) = stack.last_mut() {
        let (dir, depth_len) = (*dir, *depth_len);
        let Some((name, nid)) = ents.get(*pos).cloned() else {
            stack.pop();
            continue;
        };
        *pos += 1;
        if name == b"." || name == b".." {
            continue;
        }
        let path_len = depth_len + 1 + name.len();
        if path_len > MAX_PATH {
            return Err(ReadError::Unsupported(format!(
                "a path is longer than {MAX_PATH} bytes"
            )));
        }
        if let Some(&existing) = by_nid.get(&nid) {
            if tree.node(existing).is_dir() {
                return Err(corrupt(format!(
                    "directory inode {nid} has more than one name"
                )));
            }
            tree.link(dir, &name, existing)
                .map_err(|e| tree_err(e, &name))?;
            continue;
        }
        let ino = im.inode(nid)?;
        if ino.stub {
            // The stub whiteouts (and any plain 0:0 device) are not part of the tree.
            if ino.node.nlink.unwrap_or(1) > 1 {
                return Err(corrupt(format!("whiteout inode {nid} has several links")));
            }
            continue;
        }
        let is_dir = ino.node.is_dir();
        let sub = if is_dir {
            Some(im.dirents(&ino)?)
        } else {
            None
        };
        let mut node = ino.node;
        if is_dir {
            node.nlink = None;
        }
        let id = tree.add(dir, &name, node).map_err(|e| tree_err(e, &name))?;
        by_nid.insert(nid, id);
        if let Some(sub) = sub {
            if sub.len() > budget {
                return Err(corrupt("more directory entries than the image can hold"));
            }
            budget -= sub.len();
            stack.push((id, path_len, sub, 0));
        }
    }
    Ok(tree)
}

/// Directory entries as read: (name, nid).
type Dirents = Vec<(Vec<u8>, u64)>;

fn tree_err(e: TreeError, name: &[u8]) -> ReadError {
    corrupt(format!("entry {:?}: {e}", String::from_utf8_lossy(name)))
}

impl<'a> Image<'a> {
    fn inode(&self, nid: u64) -> Result<RawInode<'a>, ReadError> {
        let off = nid
            .checked_mul(SLOT_SIZE)
            .and_then(|o| o.checked_add(self.meta))
            .ok_or_else(|| corrupt(format!("inode {nid} out of range")))?;
        let b = self.b;
        let oob = || corrupt(format!("inode {nid} lies outside the image"));
        let format = b.u16(off).ok_or_else(oob)?;
        let extended = format & 1 != 0;
        let layout = (format >> 1) & 7;
        let isize = if extended {
            EXTENDED_INODE_SIZE
        } else {
            COMPACT_INODE_SIZE
        };
        b.get(off, isize).ok_or_else(oob)?;
        let icount = b.u16(off + 2).ok_or_else(oob)?;
        let m = b.u16(off + 4).ok_or_else(oob)? as u32;
        let mut node = Node::new(m);
        let raw_blkaddr = b.u32(off + 16).ok_or_else(oob)?;
        let size;
        if extended {
            size = b.u64(off + 8).ok_or_else(oob)?;
            node.uid = b.u32(off + 24).ok_or_else(oob)?;
            node.gid = b.u32(off + 28).ok_or_else(oob)?;
            node.mtime = Timespec {
                sec: b.u64(off + 32).ok_or_else(oob)? as i64,
                nsec: b.u32(off + 40).ok_or_else(oob)?,
            };
            node.nlink = Some(b.u32(off + 44).ok_or_else(oob)?);
        } else {
            node.nlink = Some(b.u16(off + 6).ok_or_else(oob)? as u32);
            size = b.u32(off + 8).ok_or_else(oob)? as u64;
            node.uid = b.u16(off + 24).ok_or_else(oob)? as u32;
            node.gid = b.u16(off + 26).ok_or_else(oob)? as u32;
            node.mtime = self.build_time;
        }
        node.size = size;
        let ty = m & mode::S_IFMT;
        if !matches!(
            ty,
            mode::S_IFREG
                | mode::S_IFDIR
                | mode::S_IFLNK
                | mode::S_IFCHR
                | mode::S_IFBLK
                | mode::S_IFIFO
                | mode::S_IFSOCK
        ) {
            return Err(corrupt(format!("inode {nid} has invalid mode {m:o}")));
        }
        if ty == mode::S_IFCHR || ty == mode::S_IFBLK {
            node.rdev = raw_blkaddr as u64;
        }
        let xattr_size = if icount == 0 {
            0
        } else {
            XATTR_HEADER_SIZE + 4 * (icount as u64 - 1)
        };
        let xstart = off + isize;
        let tail_start = xstart + xattr_size;
        let stub = ty == mode::S_IFCHR && node.rdev == 0;
        let mut ino = RawInode {
            node,
            layout,
            raw_blkaddr,
            tail_start,
            stub,
            _p: std::marker::PhantomData,
        };
        let is_reg = ty == mode::S_IFREG;

        // Data first, as upstream does: a whiteout marker xattr turns the file into a
        // char device afterwards.
        match ty {
            mode::S_IFLNK => {
                if size >= MAX_PATH as u64 {
                    return Err(corrupt(format!("symlink inode {nid} is {size} bytes long")));
                }
                let data = self.data(&ino, size, nid)?;
                let target: Vec<u8> = data.iter().copied().take_while(|&c| c != 0).collect();
                if target.is_empty() {
                    return Err(corrupt(format!("symlink inode {nid} has an empty target")));
                }
                ino.node.size = target.len() as u64;
                ino.node.payload = Some(target);
            }
            mode::S_IFREG if size > 0 => match layout {
                LAYOUT_FLAT_PLAIN | LAYOUT_FLAT_INLINE => {
                    if size > MAX_INLINE_CONTENT as u64 {
                        return Err(corrupt(format!(
                            "file inode {nid} has {size} bytes of inline data"
                        )));
                    }
                    ino.node.content = Some(self.data(&ino, size, nid)?);
                }
                LAYOUT_CHUNK_BASED => {}
                l => {
                    return Err(ReadError::Unsupported(format!(
                        "inode {nid} has data layout {l}"
                    )));
                }
            },
            _ => {}
        }

        if xattr_size > 0 {
            let hdr = b
                .get(xstart, xattr_size)
                .ok_or_else(|| corrupt(format!("xattrs of inode {nid} lie outside the image")))?;
            let shared_count = hdr[4] as u64;
            let mut p = XATTR_HEADER_SIZE + 4 * shared_count;
            if p > xattr_size {
                return Err(corrupt(format!(
                    "inode {nid} has more shared xattrs than room for them"
                )));
            }
            let mut found: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
            while p + XATTR_ENTRY_SIZE < xattr_size {
                let (name_len, index, vsize) = (
                    hdr[p as usize] as u64,
                    hdr[p as usize + 1],
                    u16::from_le_bytes([hdr[p as usize + 2], hdr[p as usize + 3]]) as u64,
                );
                let body = p + XATTR_ENTRY_SIZE;
                let name = hdr.get(body as usize..(body + name_len) as usize);
                let value = hdr.get((body + name_len) as usize..(body + name_len + vsize) as usize);
                let (Some(name), Some(value)) = (name, value) else {
                    return Err(corrupt(format!(
                        "an xattr of inode {nid} overruns its xattr area"
                    )));
                };
                found.push((index, name.to_vec(), value.to_vec()));
                p += round_up(XATTR_ENTRY_SIZE + name_len + vsize, 4);
            }
            for i in 0..shared_count {
                let id = u32::from_le_bytes([
                    hdr[(12 + 4 * i) as usize],
                    hdr[(13 + 4 * i) as usize],
                    hdr[(14 + 4 * i) as usize],
                    hdr[(15 + 4 * i) as usize],
                ]) as u64;
                let eoff = self.xattr + id * 4;
                let bad = || {
                    corrupt(format!(
                        "shared xattr {id} of inode {nid} lies outside the image"
                    ))
                };
                let e = b.get(eoff, 4).ok_or_else(bad)?;
                let (name_len, index, vsize) =
                    (e[0] as u64, e[1], u16::from_le_bytes([e[2], e[3]]) as u64);
                let name = b.get(eoff + 4, name_len).ok_or_else(bad)?;
                let value = b.get(eoff + 4 + name_len, vsize).ok_or_else(bad)?;
                found.push((index, name.to_vec(), value.to_vec()));
            }
            for (index, suffix, value) in found {
                let prefix = xattr_prefix(index).ok_or_else(|| {
                    ReadError::Unsupported(format!("xattr name index {index} in inode {nid}"))
                })?;
                let mut key = prefix.to_vec();
                key.extend_from_slice(&suffix);
                apply_xattr(&mut ino.node, is_reg, key, value);
            }
        }
        Ok(ino)
    }

    /// A file's bytes: full blocks at the block address, then the inline tail.
    fn data(&self, ino: &RawInode<'_>, size: u64, nid: u64) -> Result<Vec<u8>, ReadError> {
        let bad = || corrupt(format!("data of inode {nid} lies outside the image"));
        let blocks_len = match ino.layout {
            LAYOUT_FLAT_PLAIN => size,
            LAYOUT_FLAT_INLINE => size / BLOCK_SIZE * BLOCK_SIZE,
            l => {
                return Err(ReadError::Unsupported(format!(
                    "inode {nid} has data layout {l}"
                )));
            }
        };
        let mut out = Vec::with_capacity(size.min(self.b.0.len() as u64) as usize);
        if blocks_len > 0 {
            let at = ino.raw_blkaddr as u64 * BLOCK_SIZE;
            out.extend_from_slice(self.b.get(at, blocks_len).ok_or_else(bad)?);
        }
        let tail = size - blocks_len;
        if tail > 0 {
            out.extend_from_slice(self.b.get(ino.tail_start, tail).ok_or_else(bad)?);
        }
        Ok(out)
    }

    /// A directory's entries in on-disk order: (name, nid).
    fn dirents(&self, ino: &RawInode<'_>) -> Result<Vec<(Vec<u8>, u64)>, ReadError> {
        let size = ino.node.size;
        if size > self.b.0.len() as u64 {
            return Err(corrupt("a directory is larger than the image"));
        }
        let data = self.data(ino, size, 0)?;
        let mut out = Vec::new();
        for block in data.chunks(BLOCK_SIZE as usize) {
            parse_dirent_block(block, &mut out)?;
        }
        Ok(out)
    }
}

fn parse_dirent_block(block: &[u8], out: &mut Vec<(Vec<u8>, u64)>) -> Result<(), ReadError> {
    if block.len() < DIRENT_SIZE as usize {
        return Err(corrupt("a directory block is too short"));
    }
    let b = Bytes(block);
    let first = b.u16(8).unwrap_or(0) as usize;
    if first == 0 || !first.is_multiple_of(DIRENT_SIZE as usize) || first > block.len() {
        return Err(corrupt(
            "a directory block has an invalid first name offset",
        ));
    }
    let n = first / DIRENT_SIZE as usize;
    for i in 0..n {
        let at = (i * DIRENT_SIZE as usize) as u64;
        let nid = b.u64(at).ok_or_else(|| corrupt("short dirent"))?;
        let off = b.u16(at + 8).ok_or_else(|| corrupt("short dirent"))? as usize;
        let end = if i + 1 < n {
            b.u16(at + 8 + DIRENT_SIZE)
                .ok_or_else(|| corrupt("short dirent"))? as usize
        } else {
            // The last name runs to the end of the block or the first NUL.
            let rest = block.get(off..).unwrap_or_default();
            off + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
        };
        if off < first || end < off || end > block.len() {
            return Err(corrupt("a directory entry name lies outside its block"));
        }
        out.push((block[off..end].to_vec(), nid));
    }
    Ok(())
}

/// Undoes what the writer added (lcfs_build_node_erofs_xattr).
fn apply_xattr(node: &mut Node, is_reg: bool, mut key: Vec<u8>, value: Vec<u8>) {
    const PREFIX: &[u8] = b"trusted.overlay.";
    const ESCAPED: &[u8] = b"trusted.overlay.overlay.";
    match key.as_slice() {
        b"trusted.overlay.redirect" => {
            if is_reg {
                let v = match value.as_slice() {
                    [b'/', rest @ ..] if !rest.is_empty() => rest.to_vec(),
                    v => v.to_vec(),
                };
                let v: Vec<u8> = v.into_iter().take_while(|&c| c != 0).collect();
                node.payload = Some(v);
            }
            return;
        }
        b"trusted.overlay.metacopy" => {
            if is_reg && value.len() == 36 {
                let mut d = [0u8; 32];
                d.copy_from_slice(&value[4..]);
                node.digest = Some(d);
            }
            return;
        }
        b"trusted.overlay.overlay.whiteout" if node.is_reg() => {
            node.mode = (node.mode & !mode::S_IFMT) | mode::S_IFCHR;
            node.rdev = 0;
            node.size = 0;
            return;
        }
        b"trusted.overlay.overlay.whiteouts"
        | b"user.overlay.whiteout"
        | b"user.overlay.whiteouts" => return,
        _ => {}
    }
    if key.starts_with(PREFIX) {
        if key.starts_with(ESCAPED) {
            key.drain(b"trusted.".len()..PREFIX.len());
        } else {
            return;
        }
    }
    match node.xattrs.iter_mut().find(|x| x.key == key) {
        Some(x) => x.value = value,
        None => node.xattrs.push(Xattr { key, value }),
    }
}
