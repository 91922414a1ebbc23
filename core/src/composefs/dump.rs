//! The composefs dump format (`composefs-dump(5)`): one line per file, eleven
//! space-separated fields, then `key=value` xattrs.
//!
//! The parser follows `mkcomposefs --from-file` (composefs 1.0.8 `tools/mkcomposefs.c`):
//! lenient by default, and with `strict` the extra checks of `CFS_PARSE_STRICT=1`
//! (trailing newline required, no device number on non-devices, symlink size equal to
//! the target length, no content on symlinks). Values are truncated to the widths
//! libcomposefs stores (`u32` mode, nlink, uid, gid and rdev), and names, payloads and
//! xattr keys end at an escaped NUL, as C strings do, so that an accepted dump gives the
//! same image as upstream. Where upstream silently accepts garbage (a malformed gid or
//! rdev after a valid uid, a digest that is not 64 hex digits, a hardlink to a
//! directory through a non-directory `@` mode) this parser rejects it.
//!
//! The input is untrusted: everything is bounds-checked, nothing panics, and memory is
//! proportional to the input (xattrs per line are capped like upstream).

use super::format::MAX_INLINE_CONTENT;
use super::tree::{Node, NodeId, ROOT, Timespec, Tree, TreeError, Xattr, mode};
use std::collections::HashMap;

/// Longest symlink target or payload (`PATH_MAX - 1`).
pub const MAX_PAYLOAD: usize = 4095;
/// Longest xattr name (`XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;
/// Budget of a node's xattrs from external input (`LCFS_INODE_EXTERNAL_XATTR_MAX`),
/// counted as libcomposefs counts it (see [`XattrBudget`]).
pub const MAX_XATTR_BUDGET: u64 = (u16::MAX / 2) as u64;
/// Longest run of xattr fields on one line, as upstream caps it.
pub const MAX_XATTR_FIELDS_LEN: usize = u16::MAX as usize;

/// A dump file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct DumpError {
    /// 1-based line number.
    pub line: usize,
    pub msg: String,
}

/// libcomposefs's running count of a node's xattr space (`lcfs_node_s.xattr_size`), with
/// its exact arithmetic: setting adds `2*4-1 + len(key) + len(value)` (plus the 12-byte
/// header for the first one), removing subtracts the same computed from the name used
/// to remove, and removing the last one resets it to 0. A rename does not update it.
#[derive(Debug, Clone, Copy, Default)]
pub struct XattrBudget(pub u64);

/// Why an xattr could not be set (`ERANGE`/`EINVAL` from `lcfs_node_set_xattr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XattrSetError {
    #[error("xattr name length {0} is not between 1 and {MAX_XATTR_NAME}")]
    BadNameLength(usize),
    #[error("xattr value of {0} bytes exceeds 65535")]
    ValueTooLong(usize),
    #[error("xattrs of this file exceed the limit of {MAX_XATTR_BUDGET} bytes of metadata")]
    OverBudget,
}

/// One xattr entry's share of the count: `2*4-1 + len(key) + len(value)`.
fn entry_cost(key_len: usize, value_len: usize) -> u64 {
    7 + key_len as u64 + value_len as u64
}

impl XattrBudget {
    /// The checks `lcfs_node_set_xattr` makes on the lengths before anything changes.
    pub fn check_lengths(key: &[u8], value_len: usize) -> Result<(), XattrSetError> {
        if key.is_empty() || key.len() > MAX_XATTR_NAME {
            return Err(XattrSetError::BadNameLength(key.len()));
        }
        if value_len > u16::MAX as usize {
            return Err(XattrSetError::ValueTooLong(value_len));
        }
        Ok(())
    }

    /// An entry was removed by a key of `key_len` bytes, its value had `value_len`;
    /// `now_empty` when it was the last one.
    pub fn removed(&mut self, key_len: usize, value_len: usize, now_empty: bool) {
        self.0 = if now_empty {
            0
        } else {
            // Wrapping like the C size_t: a rename made the entry longer than counted.
            self.0.wrapping_sub(entry_cost(key_len, value_len))
        };
    }

    /// Counts an entry about to be appended to a node whose xattrs are `was_empty`;
    /// past `limit` it is refused and nothing is counted.
    pub fn add(
        &mut self,
        key_len: usize,
        value_len: usize,
        was_empty: bool,
        limit: u64,
    ) -> Result<(), XattrSetError> {
        let mut entry = entry_cost(key_len, value_len);
        if was_empty {
            entry += 12;
        }
        if self.0 > u64::MAX / 2 || self.0.wrapping_add(entry) > limit {
            return Err(XattrSetError::OverBudget);
        }
        self.0 = self.0.wrapping_add(entry);
        Ok(())
    }
}

/// `lcfs_node_set_xattr_internal` with the external-input limit: replaces an existing
/// key (removing it first), then appends.
pub fn set_xattr_counted(
    xattrs: &mut Vec<Xattr>,
    budget: &mut XattrBudget,
    key: &[u8],
    value: &[u8],
    limit: u64,
) -> Result<(), XattrSetError> {
    XattrBudget::check_lengths(key, value.len())?;
    unset_xattr_counted(xattrs, budget, key);
    budget.add(key.len(), value.len(), xattrs.is_empty(), limit)?;
    xattrs.push(Xattr {
        key: key.to_vec(),
        value: value.to_vec(),
    });
    Ok(())
}

/// `lcfs_node_unset_xattr`: swap-removes `key` if present.
pub fn unset_xattr_counted(xattrs: &mut Vec<Xattr>, budget: &mut XattrBudget, key: &[u8]) {
    if let Some(i) = xattrs.iter().position(|x| x.key == key) {
        let removed = xattrs.swap_remove(i);
        budget.removed(key.len(), removed.value.len(), xattrs.is_empty());
    }
}

fn err(line: usize, msg: impl Into<String>) -> DumpError {
    DumpError {
        line,
        msg: msg.into(),
    }
}

fn hexdigit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Undoes the dump escapes `\\ \n \r \t \xHH`.
pub fn unescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("no character after escape '\\'".into());
        };
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                let (Some(&a), Some(&b)) = (s.get(i), s.get(i + 1)) else {
                    return Err("no hex characters after hex escape '\\x'".into());
                };
                i += 2;
                match (hexdigit(a), hexdigit(b)) {
                    (Some(a), Some(b)) => out.push(a << 4 | b),
                    _ => {
                        return Err(format!(
                            "invalid hex characters after hex escape: {:?}",
                            String::from_utf8_lossy(&[a, b])
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unsupported escape type '\\{}'",
                    other.escape_ascii()
                ));
            }
        }
    }
    Ok(out)
}

/// `-` alone means "not set".
fn unescape_optional(s: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if s == b"-" {
        Ok(None)
    } else {
        unescape(s).map(Some)
    }
}

/// C strings end at the first NUL.
fn cstr(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(p) = v.iter().position(|&b| b == 0) {
        v.truncate(p);
    }
    v
}

/// `strtoull` over the whole field, as upstream uses it: optional leading white space
/// and sign, at least one digit, nothing after; overflow saturates, '-' negates.
fn parse_uint(field: &[u8], base: u32, what: &str) -> Result<u64, String> {
    let bad = || format!("invalid {what} {:?}", String::from_utf8_lossy(field));
    let mut s = field;
    while let [c, rest @ ..] = s {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            s = rest;
        } else {
            break;
        }
    }
    let mut neg = false;
    if let [c @ (b'+' | b'-'), rest @ ..] = s {
        neg = *c == b'-';
        s = rest;
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for &c in s {
        let d = (c as char).to_digit(base).ok_or_else(bad)? as u64;
        match v.checked_mul(base as u64).and_then(|v| v.checked_add(d)) {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    if overflow {
        return Ok(u64::MAX);
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// Splits at the first `sep` like upstream's `split_at`: without one, the whole rest
/// is the part and the rest becomes empty.
fn split_at<'a>(s: &mut &'a [u8], sep: u8) -> (&'a [u8], bool) {
    match s.iter().position(|&b| b == sep) {
        Some(p) => {
            let part = &s[..p];
            *s = &s[p + 1..];
            (part, true)
        }
        None => {
            let part = *s;
            *s = &s[s.len()..];
            (part, false)
        }
    }
}

fn valid_type(m: u32) -> bool {
    matches!(
        m & mode::S_IFMT,
        mode::S_IFREG
            | mode::S_IFDIR
            | mode::S_IFLNK
            | mode::S_IFBLK
            | mode::S_IFCHR
            | mode::S_IFSOCK
            | mode::S_IFIFO
    )
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Fixup {
    line: usize,
    placeholder: NodeId,
    parent: NodeId,
    name: Vec<u8>,
    target: Option<Vec<u8>>,
}

struct Parser {
    tree: Option<Tree>,
    strict: bool,
    fixups: Vec<Fixup>,
    /// Placeholders of hardlink entries, resolved once every line is read.
    placeholders: HashMap<NodeId, usize>,
    /// The parent directory of the previous line: dumps list siblings together, so
    /// most lines skip the walk from the root.
    last_parent: Option<(Vec<u8>, NodeId)>,
}

/// Parses a dump file into a tree. `strict` adds upstream's `CFS_PARSE_STRICT` checks.
pub fn parse(text: &[u8], strict: bool) -> Result<Tree, DumpError> {
    let mut p = Parser {
        tree: None,
        strict,
        fixups: Vec::new(),
        placeholders: HashMap::new(),
        last_parent: None,
    };
    let mut rest = text;
    let mut lineno = 0;
    while !rest.is_empty() {
        lineno += 1;
        let (line, terminated) = split_at(&mut rest, b'\n');
        if !terminated && strict {
            return Err(err(lineno, "missing trailing newline"));
        }
        p.line(lineno, line)?;
    }
    p.finish(lineno)
}

impl Parser {
    fn line(&mut self, n: usize, line: &[u8]) -> Result<(), DumpError> {
        if let Some(off) = line.iter().position(|&b| b == 0) {
            return Err(err(
                n,
                format!("invalid embedded NUL character at position {off}"),
            ));
        }
        let mut rest = line;
        let mut f: [&[u8]; 11] = [&[]; 11];
        for slot in f.iter_mut() {
            *slot = split_at(&mut rest, b' ').0;
        }
        let [
            path_f,
            size_f,
            mode_f,
            nlink_f,
            uid_f,
            gid_f,
            rdev_f,
            mtime_f,
            payload_f,
            content_f,
            digest_f,
        ] = f;
        let e = |m: String| err(n, m);

        let path = cstr(unescape(path_f).map_err(|m| e(format!("path: {m}")))?);
        if path.is_empty() {
            return Err(e("invalid empty path".into()));
        }
        let (hardlink, mode_digits) = match mode_f {
            [b'@', r @ ..] => (true, r),
            r => (false, r),
        };
        let m = parse_uint(mode_digits, 8, "mode").map_err(e)? as u32;
        if !valid_type(m) {
            return Err(e(format!(
                "invalid mode {m:o} of {}: no valid file type",
                show(&path)
            )));
        }
        let (id, parent, name) = self.add_node(n, &path, Node::new(m))?;

        if hardlink {
            if m & mode::S_IFMT == mode::S_IFDIR {
                return Err(e(format!(
                    "{}: directories can't be hardlinked",
                    show(&path)
                )));
            }
            let target = unescape_optional(payload_f)
                .map_err(|m| e(format!("hardlink target: {m}")))?
                .map(cstr);
            self.placeholders.insert(id, self.fixups.len());
            self.fixups.push(Fixup {
                line: n,
                placeholder: id,
                parent,
                name,
                target,
            });
            return Ok(());
        }

        let size = parse_uint(size_f, 10, "size").map_err(e)?;
        let nlink = parse_uint(nlink_f, 10, "nlink").map_err(e)? as u32;
        let uid = parse_uint(uid_f, 10, "uid").map_err(e)? as u32;
        let gid = parse_uint(gid_f, 10, "gid").map_err(e)? as u32;
        let rdev = parse_uint(rdev_f, 10, "rdev").map_err(e)?;
        let mut mt = mtime_f;
        let (sec_f, _) = split_at(&mut mt, b'.');
        let sec = parse_uint(sec_f, 10, "mtime seconds").map_err(e)?;
        let nsec = parse_uint(mt, 10, "mtime nanoseconds").map_err(e)?;
        let payload = unescape_optional(payload_f)
            .map_err(|m| e(format!("payload: {m}")))?
            .map(cstr);
        let content = unescape_optional(content_f).map_err(|m| e(format!("content: {m}")))?;
        if let Some(c) = &content
            && c.len() as u64 != size
        {
            return Err(e(format!(
                "invalid content size {}, must match size {size}",
                c.len()
            )));
        }
        let digest = match unescape_optional(digest_f).map_err(|m| e(format!("digest: {m}")))? {
            None => None,
            // An empty field (a short line) sets no usable digest upstream either.
            Some(d) if cstr(d.clone()).is_empty() => None,
            Some(d) => Some(parse_digest(&cstr(d)).map_err(e)?),
        };
        let ty = m & mode::S_IFMT;

        let tree = self
            .tree
            .as_mut()
            .ok_or_else(|| err(n, "root directory missing"))?;
        let node = tree.node_mut(id);
        node.nlink = Some(nlink);
        node.uid = uid;
        node.gid = gid;
        if ty == mode::S_IFCHR || ty == mode::S_IFBLK {
            // libcomposefs keeps st_rdev in 32 bits.
            node.rdev = rdev as u32 as u64;
        } else if self.strict && rdev != 0 {
            return Err(e(format!(
                "{}: non-zero device number on a non-device",
                show(&path)
            )));
        }
        node.mtime = Timespec {
            sec: sec as i64,
            nsec: nsec as u32,
        };
        if ty == mode::S_IFLNK {
            let target = match payload {
                Some(t) if !t.is_empty() => t,
                _ => return Err(e(format!("{}: invalid symlink: empty target", show(&path)))),
            };
            if target.len() > MAX_PAYLOAD {
                return Err(e(format!(
                    "{}: symlink target of {} bytes is longer than {MAX_PAYLOAD}",
                    show(&path),
                    target.len()
                )));
            }
            if self.strict {
                if size != target.len() as u64 {
                    return Err(e(format!(
                        "{}: invalid symlink size {size}, must match target length {}",
                        show(&path),
                        target.len()
                    )));
                }
                if content.as_ref().is_some_and(|c| !c.is_empty()) {
                    return Err(e(format!("{}: symlink cannot have content", show(&path))));
                }
            }
            node.size = target.len() as u64;
            node.payload = Some(target);
        } else {
            node.size = size;
            if let Some(p) = &payload
                && p.len() > MAX_PAYLOAD
            {
                return Err(e(format!(
                    "{}: payload of {} bytes is longer than {MAX_PAYLOAD}",
                    show(&path),
                    p.len()
                )));
            }
            node.payload = payload;
            if let Some(c) = content {
                if c.len() > MAX_INLINE_CONTENT {
                    return Err(e(format!(
                        "{}: inline content size {} exceeds maximum {MAX_INLINE_CONTENT}",
                        show(&path),
                        c.len()
                    )));
                }
                // Empty content is no content (lcfs_node_set_content).
                node.size = c.len() as u64;
                node.content = if c.is_empty() { None } else { Some(c) };
            }
        }
        node.digest = digest;

        if rest.len() > MAX_XATTR_FIELDS_LEN {
            return Err(e(format!("{}: too many xattrs", show(&path))));
        }
        let mut budget = XattrBudget::default();
        let mut xattrs = Vec::new();
        while !rest.is_empty() {
            let (field, _) = split_at(&mut rest, b' ');
            let mut kv = field;
            let (k, found) = split_at(&mut kv, b'=');
            if !found {
                return Err(e(format!(
                    "{}: missing '=' in xattr {:?}",
                    show(&path),
                    show(field)
                )));
            }
            let key = cstr(unescape(k).map_err(|m| e(format!("xattr name: {m}")))?);
            let value = unescape(kv).map_err(|m| e(format!("xattr value: {m}")))?;
            set_xattr_counted(&mut xattrs, &mut budget, &key, &value, MAX_XATTR_BUDGET).map_err(
                |x| {
                    e(format!(
                        "{}: can't set xattr {:?}: {x}",
                        show(&path),
                        show(&key)
                    ))
                },
            )?;
        }
        node.xattrs = xattrs;
        Ok(())
    }

    /// Places a new node at `path` (upstream `tree_add_node`).
    fn add_node(
        &mut self,
        n: usize,
        path: &[u8],
        node: Node,
    ) -> Result<(NodeId, NodeId, Vec<u8>), DumpError> {
        if path == b"/" {
            if !node.is_dir() {
                return Err(err(n, "root must be a directory"));
            }
            if self.tree.is_some() {
                return Err(err(n, "can't have multiple roots"));
            }
            self.tree = Some(Tree::new(node));
            return Ok((ROOT, ROOT, Vec::new()));
        }
        let Some(tree) = self.tree.as_mut() else {
            return Err(err(n, format!("{}: root node not present", show(path))));
        };
        // Upstream's lookup_parent_path: leading slashes are skipped at each level and
        // the last component is the name, even when empty.
        // A plain path ("/a/b/c": one slash between components, none at the end) splits
        // at its last slash; others take upstream's walk below.
        let simple = path.first() == Some(&b'/')
            && path.last() != Some(&b'/')
            && !path.windows(2).any(|w| w == b"//");
        let split = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let cached = match &self.last_parent {
            Some((prefix, id)) if simple && prefix.as_slice() == &path[..split] => Some(*id),
            _ => None,
        };
        let (parent, p) = match cached {
            Some(id) => (id, &path[split + 1..]),
            None => {
                let mut parent = ROOT;
                let mut p = path;
                loop {
                    while let [b'/', r @ ..] = p {
                        p = r;
                    }
                    match p.iter().position(|&b| b == b'/') {
                        None => break,
                        Some(i) => {
                            let comp = &p[..i];
                            parent = match tree.node(parent).children.get(comp) {
                                Some(&c) => c,
                                None => {
                                    return Err(err(
                                        n,
                                        format!("parent directory missing for {}", show(path)),
                                    ));
                                }
                            };
                            p = &p[i..];
                        }
                    }
                }
                (parent, p)
            }
        };
        let name = p.to_vec();
        if !tree.node(parent).is_dir() || self.placeholders.contains_key(&parent) {
            return Err(err(
                n,
                format!("parent must be a directory for {}", show(path)),
            ));
        }
        if name == b"." || name == b".." {
            return Err(err(n, format!("invalid . or .. in path: {}", show(path))));
        }
        if simple && cached.is_none() {
            self.last_parent = Some((path[..split].to_vec(), parent));
        }
        match tree.add(parent, &name, node) {
            Ok(id) => Ok((id, parent, name)),
            Err(TreeError::Exists(_)) => Err(err(n, format!("path {} already exists", show(path)))),
            Err(TreeError::InvalidName(_)) => Err(err(
                n,
                format!(
                    "invalid file name in {}: empty or longer than 255 bytes",
                    show(path)
                ),
            )),
            Err(x) => Err(err(n, format!("{}: {x}", show(path)))),
        }
    }

    fn finish(mut self, last_line: usize) -> Result<Tree, DumpError> {
        let Some(mut tree) = self.tree.take() else {
            return Err(err(
                last_line.max(1),
                "no files in dump file (no root directory)",
            ));
        };
        // Resolve each hardlink to its final (non-placeholder) target, following chains
        // of hardlinks to hardlinks and refusing cycles.
        let mut resolved: Vec<Option<NodeId>> = vec![None; self.fixups.len()];
        for i in 0..self.fixups.len() {
            let mut seen = vec![i];
            let mut cur = i;
            let target = loop {
                let fx = &self.fixups[cur];
                if let Some(t) = resolved[cur] {
                    break t;
                }
                let Some(tp) = &fx.target else {
                    return Err(err(fx.line, "no target path for the hardlink"));
                };
                let Some(t) = tree.lookup(tp) else {
                    return Err(err(
                        fx.line,
                        format!("no target at {} for hardlink", show(tp)),
                    ));
                };
                if t == fx.placeholder {
                    return Err(err(
                        fx.line,
                        format!("self-referential hardlink {}", show(tp)),
                    ));
                }
                match self.placeholders.get(&t) {
                    None => break t,
                    Some(&next) => {
                        if seen.contains(&next) {
                            return Err(err(
                                fx.line,
                                format!("hardlink cycle through {}", show(tp)),
                            ));
                        }
                        seen.push(next);
                        cur = next;
                    }
                }
            };
            if tree.node(target).is_dir() {
                let fx = &self.fixups[i];
                return Err(err(fx.line, "a directory cannot be hardlinked"));
            }
            for s in seen {
                resolved[s] = Some(target);
            }
        }
        for (fx, target) in self.fixups.iter().zip(resolved) {
            let Some(target) = target else { continue };
            tree.node_mut(fx.parent)
                .children
                .insert(fx.name.clone(), target);
            tree.node_mut(target)
                .hardlinks
                .push((fx.parent, fx.name.clone()));
        }
        if !self.fixups.is_empty() {
            tree = compact(&tree);
        }
        Ok(tree)
    }
}

fn parse_digest(d: &[u8]) -> Result<[u8; 32], String> {
    let bad = || format!("invalid digest {:?}: expected 64 hex digits", show(d));
    if d.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in d.chunks_exact(2).enumerate() {
        out[i] = hexdigit(pair[0]).ok_or_else(bad)? << 4 | hexdigit(pair[1]).ok_or_else(bad)?;
    }
    Ok(out)
}

/// A copy of `tree` holding only the nodes reachable from the root, renumbered in
/// depth-first order (drops hardlink placeholders).
pub fn compact(tree: &Tree) -> Tree {
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    let mut order = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        if map.contains_key(&id) {
            continue;
        }
        map.insert(id, order.len());
        order.push(id);
        for &c in tree.node(id).children.values().rev() {
            if !map.contains_key(&c) {
                stack.push(c);
            }
        }
    }
    let nodes = order
        .iter()
        .map(|&old| {
            let mut n = tree.node(old).clone();
            for c in n.children.values_mut() {
                *c = map[c];
            }
            n.hardlinks = n
                .hardlinks
                .iter()
                .filter_map(|(p, name)| map.get(p).map(|&p| (p, name.clone())))
                .collect();
            n
        })
        .collect();
    Tree { nodes }
}

// ---- writing ----

#[derive(Clone, Copy)]
enum Esc {
    Standard,
    LoneDash,
    Equal,
}

fn escape_into(out: &mut Vec<u8>, v: &[u8], esc: Esc) {
    if matches!(esc, Esc::LoneDash) && v == b"-" {
        out.extend_from_slice(b"\\x2d");
        return;
    }
    for &c in v {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if matches!(esc, Esc::Equal) => out.extend_from_slice(b"\\x3d"),
            // isgraph in the C locale: printable and not a space.
            0x21..=0x7e => out.push(c),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
            }
        }
    }
}

fn push_num(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

/// Writes `tree` as a dump file, as `composefs-info dump` prints it: depth-first in
/// name order, a hardlink's secondary names as `@` lines pointing at the primary path.
pub fn write(tree: &Tree) -> Vec<u8> {
    let nlinks = tree.effective_nlinks();
    // Primary path of every hardlinked inode: a secondary name may come first.
    let mut primary_path: HashMap<NodeId, Vec<u8>> = HashMap::new();
    let has_links = tree.nodes.iter().any(|n| !n.hardlinks.is_empty());
    let entries = tree.walk_entries();
    if has_links {
        for (path, parent, name, id) in &entries {
            if !tree.node(*id).hardlinks.is_empty() && !is_secondary_entry(tree, *parent, name, *id)
            {
                primary_path.entry(*id).or_insert_with(|| path.clone());
            }
        }
    }
    let mut out = Vec::with_capacity(entries.len() * 128);
    for (path, parent, name, id) in &entries {
        let node = tree.node(*id);
        let link_target = if has_links && is_secondary_entry(tree, *parent, name, *id) {
            primary_path.get(id)
        } else {
            None
        };
        escape_into(&mut out, path, Esc::Standard);
        out.push(b' ');
        push_num(&mut out, node.size);
        out.push(b' ');
        if link_target.is_some() {
            out.push(b'@');
        }
        push_num(&mut out, format_args!("{:o}", node.mode));
        out.push(b' ');
        push_num(&mut out, nlinks[*id]);
        out.push(b' ');
        push_num(&mut out, node.uid);
        out.push(b' ');
        push_num(&mut out, node.gid);
        out.push(b' ');
        push_num(&mut out, node.rdev);
        out.push(b' ');
        push_num(
            &mut out,
            format_args!("{}.{}", node.mtime.sec, node.mtime.nsec),
        );
        out.push(b' ');
        match link_target.or(node.payload.as_ref()) {
            Some(p) => escape_into(&mut out, p, Esc::LoneDash),
            None => out.push(b'-'),
        }
        out.push(b' ');
        match &node.content {
            Some(c) => escape_into(&mut out, c, Esc::LoneDash),
            None => out.push(b'-'),
        }
        out.push(b' ');
        match &node.digest {
            Some(d) => out.extend_from_slice(hex::encode(d).as_bytes()),
            None => out.push(b'-'),
        }
        for x in &node.xattrs {
            out.push(b' ');
            escape_into(&mut out, &x.key, Esc::Equal);
            out.push(b'=');
            escape_into(&mut out, &x.value, Esc::Equal);
        }
        out.push(b'\n');
    }
    out
}

fn is_secondary_entry(tree: &Tree, parent: NodeId, name: &[u8], id: NodeId) -> bool {
    id != ROOT
        && tree
            .node(id)
            .hardlinks
            .iter()
            .any(|(p, n)| *p == parent && n == name)
}

/// (directory, its path, the rest of its entries)
type WalkFrame<'a> = (
    NodeId,
    Vec<u8>,
    std::collections::btree_map::Iter<'a, Vec<u8>, NodeId>,
);

impl Tree {
    /// Every entry depth-first in name order: `(path, parent, name, id)`, the root
    /// first as `/` (its own parent, empty name). Iterative: trees from untrusted input
    /// may be deep.
    pub fn walk_entries(&self) -> Vec<(Vec<u8>, NodeId, Vec<u8>, NodeId)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        out.push((b"/".to_vec(), ROOT, Vec::new(), ROOT));
        // Stack of (directory id, its path, iterator position).
        let mut stack: Vec<WalkFrame<'_>> =
            vec![(ROOT, Vec::new(), self.nodes[ROOT].children.iter())];
        let mut on_stack = vec![false; self.nodes.len()];
        on_stack[ROOT] = true;
        while let Some((dir, dpath, it)) = stack.last_mut() {
            let dir = *dir;
            match it.next() {
                None => {
                    on_stack[dir] = false;
                    stack.pop();
                }
                Some((name, &child)) => {
                    let mut p = dpath.clone();
                    p.push(b'/');
                    p.extend_from_slice(name);
                    out.push((p.clone(), dir, name.clone(), child));
                    // A directory reachable twice would loop; the model forbids it,
                    // but a hand-built tree might not respect that.
                    if self.nodes[child].is_dir() && !on_stack[child] {
                        on_stack[child] = true;
                        stack.push((child, p, self.nodes[child].children.iter()));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_budget_counts_as_libcomposefs() {
        let (mut x, mut b) = (Vec::new(), XattrBudget::default());
        // First entry: header 12 + 7 + key + value.
        set_xattr_counted(&mut x, &mut b, b"user.a", b"1", 100).unwrap();
        assert_eq!(b.0, 12 + 7 + 6 + 1);
        set_xattr_counted(&mut x, &mut b, b"user.b", b"22", 100).unwrap();
        assert_eq!(b.0, 26 + 7 + 6 + 2);
        // Replacing removes the old entry's share first.
        set_xattr_counted(&mut x, &mut b, b"user.a", b"333", 100).unwrap();
        assert_eq!(b.0, 26 + 15 + 2);
        // Past the limit: refused, nothing counted or added.
        assert_eq!(
            set_xattr_counted(&mut x, &mut b, b"user.c", &[0; 50], 100),
            Err(XattrSetError::OverBudget)
        );
        assert_eq!((b.0, x.len()), (43, 2));
        assert_eq!(
            set_xattr_counted(&mut x, &mut b, b"", b"", 100),
            Err(XattrSetError::BadNameLength(0))
        );
        // Removing the last one resets the count, header included.
        unset_xattr_counted(&mut x, &mut b, b"user.a");
        assert_eq!(b.0, 43 - 16);
        unset_xattr_counted(&mut x, &mut b, b"user.b");
        assert_eq!(b.0, 0);
    }

    #[test]
    fn escapes_round_trip() {
        let raw = b"a b\\c\nd\te=f\x00\xff-";
        let mut out = Vec::new();
        escape_into(&mut out, raw, Esc::Equal);
        assert_eq!(out, b"a\\x20b\\\\c\\nd\\te\\x3df\\x00\\xff-".to_vec());
        assert_eq!(unescape(&out).unwrap(), raw.to_vec());
        let mut dash = Vec::new();
        escape_into(&mut dash, b"-", Esc::LoneDash);
        assert_eq!(dash, b"\\x2d");
        assert!(unescape(b"\\q").is_err());
        assert!(unescape(b"\\x4").is_err());
        assert!(unescape(b"\\xzz").is_err());
        assert!(unescape(b"abc\\").is_err());
    }

    #[test]
    fn parses_and_writes_back() {
        let text = b"/ 4096 40755 3 0 0 0 10.5 - - - user.a=b\n\
/d 4096 40700 2 1 2 0 11.0 - - -\n\
/d/f 3 100644 2 0 0 0 12.0 - abc - security.x=\\x00\n\
/l 4 120777 1 0 0 0 0.0 /d/f - -\n\
/x 3 @100644 2 0 0 0 12.0 /d/f - -\n";
        let t = parse(text, true).unwrap();
        let f = t.lookup(b"/d/f").unwrap();
        assert_eq!(t.lookup(b"/x"), Some(f));
        assert_eq!(t.node(f).content.as_deref(), Some(&b"abc"[..]));
        assert!(t.is_secondary(ROOT, b"x"));
        let back = write(&t);
        let t2 = parse(&back, true).unwrap();
        assert_eq!(write(&t2), back);
        assert!(String::from_utf8_lossy(&back).contains("/x 3 @100644 2 0 0 0 12.0 /d/f abc -"));
    }

    #[test]
    fn strict_and_lenient_differ() {
        let no_nl = b"/ 4096 40755 2 0 0 0 0.0 - - -";
        assert!(parse(no_nl, false).is_ok());
        assert!(parse(no_nl, true).unwrap_err().msg.contains("newline"));
        let rdev = b"/ 4096 40755 2 0 0 5 0.0 - - -\n";
        assert!(parse(rdev, false).is_ok());
        assert!(parse(rdev, true).is_err());
        let lsize = b"/ 4096 40755 2 0 0 0 0.0 - - -\n/l 9 120777 1 0 0 0 0.0 abc - -\n";
        assert!(parse(lsize, false).is_ok());
        assert!(parse(lsize, true).unwrap_err().msg.contains("symlink size"));
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no files"),
            (b"/a 0 100644 1 0 0 0 0.0 - - -\n", "root node not present"),
            (b"/ 0 100644 1 0 0 0 0.0 - - -\n", "root must be a directory"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/ 0 40755 1 0 0 0 0.0 - - -\n", "multiple roots"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a/b 0 100644 1 0 0 0 0.0 - - -\n", "parent directory missing"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0 - - -\n", "mtime nanoseconds"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - - k\n", "missing '='"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - zz\n", "invalid digest"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 2 100644 1 0 0 0 0.0 - abc -\n", "content size"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n\n", "empty path"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - - a=\x00\n", "NUL"),
            (b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n", "cycle"),
        ];
        for (text, want) in cases {
            let e = parse(text, false).unwrap_err();
            assert!(
                e.to_string().contains(want),
                "{:?}: got {e}",
                String::from_utf8_lossy(text)
            );
        }
        let e = parse(
            b"/ 0 40755 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 x.0 - - -\n",
            false,
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn numbers_behave_like_strtoull() {
        assert_eq!(parse_uint(b"17", 10, "x"), Ok(17));
        assert_eq!(parse_uint(b"+17", 10, "x"), Ok(17));
        assert_eq!(parse_uint(b"-1", 10, "x"), Ok(u64::MAX));
        assert_eq!(
            parse_uint(b"99999999999999999999999", 10, "x"),
            Ok(u64::MAX)
        );
        assert_eq!(parse_uint(b"777", 8, "x"), Ok(0o777));
        assert!(parse_uint(b"8", 8, "x").is_err());
        assert!(parse_uint(b"", 10, "x").is_err());
        assert!(parse_uint(b"1x", 10, "x").is_err());
    }
}
