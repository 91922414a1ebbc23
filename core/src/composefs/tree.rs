//! The in-memory filesystem tree that a composefs image is written from.
//!
//! Plain data: an arena of inodes, directories map names to inode ids. Two directory
//! entries naming the same id are hardlinks, so `nlink` is derived, never stored, and can
//! never disagree with the tree.

use std::collections::BTreeMap;

/// Index of an inode in [`Tree::nodes`].
pub type NodeId = usize;

/// File type bits of `st_mode`, kept here so the model does not depend on libc.
pub mod mode {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFSOCK: u32 = 0o140000;
    pub const S_IFLNK: u32 = 0o120000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFBLK: u32 = 0o060000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFIFO: u32 = 0o010000;
}

/// Seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// One extended attribute. Keys and values are bytes: they come from disk or from
/// untrusted dump files and need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xattr {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// An inode. What each field means depends on the file type in `mode`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Full `st_mode`: type bits and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number of block and character devices (a whiteout is a char device 0).
    pub rdev: u64,
    pub mtime: Timespec,
    /// Size of a regular file's content.
    pub size: u64,
    /// For a regular file: where its data lives, relative to the data layer
    /// (ostree: `xx/<checksum>.file`). For a symlink: the link target.
    pub payload: Option<Vec<u8>>,
    /// Inline data of a small regular file, stored in the image itself.
    pub content: Option<Vec<u8>>,
    /// fs-verity sha256 digest of a regular file's content.
    pub digest: Option<[u8; 32]>,
    pub xattrs: Vec<Xattr>,
    /// Entries of a directory, ordered by name bytes as EROFS stores them.
    pub children: BTreeMap<Vec<u8>, NodeId>,
    /// `st_nlink` to record for a non-directory, when it must not be derived from the
    /// tree: a dump file carries its own NLINK field, which libcomposefs keeps as is.
    /// `None`: the number of names of the inode in the tree. Ignored for directories
    /// (always 2 + subdirectories).
    pub nlink: Option<u32>,
    /// The secondary names `(directory, name)` of a hardlinked inode, recorded by
    /// [`Tree::link`]. The entry made by [`Tree::add`] is the primary one: libcomposefs
    /// serialises the inode where its primary entry is, so the distinction is part of
    /// the image layout.
    pub hardlinks: Vec<(NodeId, Vec<u8>)>,
}

impl Node {
    pub fn new(mode: u32) -> Self {
        Node {
            mode,
            ..Default::default()
        }
    }
    pub fn directory(perms: u32) -> Self {
        Node::new(mode::S_IFDIR | (perms & 0o7777))
    }
    pub fn file(perms: u32, size: u64) -> Self {
        Node {
            size,
            ..Node::new(mode::S_IFREG | (perms & 0o7777))
        }
    }
    pub fn symlink(target: impl Into<Vec<u8>>) -> Self {
        Node {
            payload: Some(target.into()),
            ..Node::new(mode::S_IFLNK | 0o777)
        }
    }
    pub fn file_type(&self) -> u32 {
        self.mode & mode::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == mode::S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.file_type() == mode::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == mode::S_IFLNK
    }
    /// An overlayfs whiteout: a character device with device number 0.
    pub fn is_whiteout(&self) -> bool {
        self.file_type() == mode::S_IFCHR && self.rdev == 0
    }
    pub fn xattr(&self, key: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|x| x.key == key)
            .map(|x| x.value.as_slice())
    }
    /// Sets or replaces an xattr, keeping the position of an existing key.
    pub fn set_xattr(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        match self.xattrs.iter_mut().find(|x| x.key == key) {
            Some(x) => x.value = value,
            None => self.xattrs.push(Xattr { key, value }),
        }
    }
}

/// Why a tree edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error(
        "invalid file name {0:?}: empty, '.', '..', longer than 255 bytes, or containing '/' or NUL"
    )]
    InvalidName(String),
    #[error("{0:?} already exists")]
    Exists(String),
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    #[error("{0:?} not found")]
    NotFound(String),
    #[error("a directory cannot be hardlinked ({0:?})")]
    DirectoryHardlink(String),
}

/// A filesystem tree. `nodes[0]` is the root directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

pub const ROOT: NodeId = 0;

/// A name is a valid directory entry name for EROFS and for ostree.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl Tree {
    /// A tree holding only `root`, which must be a directory.
    pub fn new(root: Node) -> Self {
        debug_assert!(root.is_dir());
        Tree { nodes: vec![root] }
    }

    pub fn root(&self) -> &Node {
        &self.nodes[ROOT]
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    /// Adds a new inode `node` as `name` in directory `parent`.
    pub fn add(&mut self, parent: NodeId, name: &[u8], node: Node) -> Result<NodeId, TreeError> {
        self.check_entry(parent, name)?;
        let id = self.nodes.len();
        self.nodes.push(node);
        self.nodes[parent].children.insert(name.to_vec(), id);
        Ok(id)
    }

    /// Adds `name` in `parent` as a hardlink to the existing non-directory inode `target`.
    pub fn link(&mut self, parent: NodeId, name: &[u8], target: NodeId) -> Result<(), TreeError> {
        if self.nodes[target].is_dir() {
            return Err(TreeError::DirectoryHardlink(show(name)));
        }
        self.check_entry(parent, name)?;
        self.nodes[parent].children.insert(name.to_vec(), target);
        self.nodes[target].hardlinks.push((parent, name.to_vec()));
        Ok(())
    }

    fn check_entry(&self, parent: NodeId, name: &[u8]) -> Result<(), TreeError> {
        if !valid_name(name) {
            return Err(TreeError::InvalidName(show(name)));
        }
        let p = &self.nodes[parent];
        if !p.is_dir() {
            return Err(TreeError::NotADirectory(show(name)));
        }
        if p.children.contains_key(name) {
            return Err(TreeError::Exists(show(name)));
        }
        Ok(())
    }

    /// Whether the entry `name` in `parent` is a secondary name (a hardlink) of its inode.
    pub fn is_secondary(&self, parent: NodeId, name: &[u8]) -> bool {
        match self.nodes[parent].children.get(name) {
            Some(&id) => self.nodes[id]
                .hardlinks
                .iter()
                .any(|(p, n)| *p == parent && n == name),
            None => false,
        }
    }

    /// `st_nlink` as written to an image: directories 2 + subdirectories, other inodes
    /// their [`Node::nlink`] override or their number of names.
    pub fn effective_nlinks(&self) -> Vec<u32> {
        let mut n = self.nlinks();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_dir()
                && let Some(v) = node.nlink
            {
                n[i] = v;
            }
        }
        n
    }

    /// Looks up an absolute or relative `/`-separated path from the root.
    pub fn lookup(&self, path: &[u8]) -> Option<NodeId> {
        let mut id = ROOT;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            id = *self.nodes[id].children.get(comp)?;
        }
        Some(id)
    }

    /// Number of directory entries naming each inode, as `st_nlink` reports it:
    /// directories count `.` and each subdirectory's `..`.
    pub fn nlinks(&self) -> Vec<u32> {
        let mut n = vec![0u32; self.nodes.len()];
        n[ROOT] = 2;
        for node in &self.nodes {
            for &child in node.children.values() {
                n[child] += 1;
                if self.nodes[child].is_dir() {
                    n[child] += 1;
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_dir() {
                n[i] += node
                    .children
                    .values()
                    .filter(|&&c| self.nodes[c].is_dir())
                    .count() as u32;
            }
        }
        n
    }

    /// Every entry in depth-first, name-ordered order: `(path, id)`, the root first as `/`.
    /// A hardlinked inode appears once per name.
    pub fn walk(&self) -> Vec<(Vec<u8>, NodeId)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        self.walk_into(ROOT, b"/".to_vec(), &mut out);
        out
    }

    fn walk_into(&self, id: NodeId, path: Vec<u8>, out: &mut Vec<(Vec<u8>, NodeId)>) {
        out.push((path.clone(), id));
        for (name, &child) in &self.nodes[id].children {
            let mut p = path.clone();
            if p.len() > 1 {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            if self.nodes[child].is_dir() {
                self.walk_into(child, p, out);
            } else {
                out.push((p, child));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardlinks_share_an_inode_and_count_links() {
        let mut t = Tree::new(Node::directory(0o755));
        let usr = t.add(ROOT, b"usr", Node::directory(0o755)).unwrap();
        let f = t.add(usr, b"a", Node::file(0o644, 3)).unwrap();
        t.link(ROOT, b"b", f).unwrap();
        let n = t.nlinks();
        assert_eq!(n[f], 2);
        assert_eq!(n[usr], 2);
        assert_eq!(n[ROOT], 3);
        assert_eq!(t.lookup(b"/usr/a"), Some(f));
        assert_eq!(t.lookup(b"b"), Some(f));
        let paths: Vec<_> = t.walk().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            vec![
                b"/".to_vec(),
                b"/b".to_vec(),
                b"/usr".to_vec(),
                b"/usr/a".to_vec()
            ]
        );
    }

    #[test]
    fn bad_names_and_dir_hardlinks_are_refused() {
        let mut t = Tree::new(Node::directory(0o755));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(matches!(
                t.add(ROOT, bad, Node::file(0o644, 0)),
                Err(TreeError::InvalidName(_))
            ));
        }
        let d = t.add(ROOT, b"d", Node::directory(0o755)).unwrap();
        assert!(matches!(
            t.link(ROOT, b"e", d),
            Err(TreeError::DirectoryHardlink(_))
        ));
        assert!(matches!(
            t.add(ROOT, b"d", Node::file(0o644, 0)),
            Err(TreeError::Exists(_))
        ));
    }
}
