//! ostree's GVariant objects: `.commit`, `.dirtree`, `.dirmeta`, `.commitmeta` and the
//! file header, with GLib's normal-form serialisation and ostree's checksums.
//!
//! Reading takes untrusted bytes and never panics: GVariant is lenient by design (a
//! malformed child reads as its type's default, as in GLib), and on top of that the
//! ostree-level rules (32-byte checksums, valid file names) are checked and reported as
//! [`ObjectError`]. Writing goes through the `gvariant` crate's serialisers, which emit
//! the normal form GLib emits, so checksums of objects we write match ostree's.
//!
//! ostree stores uid, gid and mode (dirmeta, file header) and the commit timestamp
//! big-endian inside little-endian GVariants; the models here hold host values and
//! convert at the boundary.

use gvariant::aligned_bytes::AsAligned;
use gvariant::aligned_bytes::{A8, AlignedSlice, copy_to_align};
use gvariant::{Marker, SerializeTo, Structure, Variant, gv};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;

/// A sha256 object checksum.
pub type Checksum = [u8; 32];

/// Why bytes are not a valid ostree object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("{object}: {field} is {len} bytes, expected a 32-byte checksum")]
    BadChecksum {
        object: &'static str,
        field: &'static str,
        len: usize,
    },
    #[error("{object}: invalid file name {name:?}")]
    BadName { object: &'static str, name: String },
    #[error("{object}: names are not sorted and unique at {name:?}")]
    Unsorted { object: &'static str, name: String },
    #[error("{object}: a string holds a NUL byte")]
    Nul { object: &'static str },
    #[error("invalid checksum string {0:?}")]
    BadHex(String),
}

/// The kinds of object a repository stores, named as the file extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    File,
    DirTree,
    DirMeta,
    Commit,
    CommitMeta,
}

impl ObjectType {
    pub fn extension(self) -> &'static str {
        match self {
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::CommitMeta => "commitmeta",
        }
    }
}

/// `objects/`-relative path of an object: `xx/<62 hex>.<ext>`.
pub fn object_path(csum: &Checksum, kind: ObjectType) -> String {
    let h = hex::encode(csum);
    format!("{}/{}.{}", &h[..2], &h[2..], kind.extension())
}

/// Parses a 64-character lowercase or uppercase hex checksum.
pub fn parse_checksum(s: &str) -> Result<Checksum, ObjectError> {
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(ObjectError::BadHex(s.to_string()));
    }
    Ok(out)
}

/// sha256 of bytes: the checksum of a metadata object is that of its serialised form.
pub fn sha256(data: &[u8]) -> Checksum {
    Sha256::digest(data).into()
}

fn checksum_of(
    object: &'static str,
    field: &'static str,
    b: &[u8],
) -> Result<Checksum, ObjectError> {
    b.try_into().map_err(|_| ObjectError::BadChecksum {
        object,
        field,
        len: b.len(),
    })
}

/// A GVariant `s` as GLib reads it: the bytes before the terminating NUL, or "" when the
/// string is not NUL-terminated, holds another NUL, or is not UTF-8.
fn gstr(s: &gvariant::Str) -> String {
    s.to_str().to_owned()
}

/// An `ay` holding a NUL-terminated byte string (`g_variant_new_bytestring`), as ostree
/// stores xattr names: the terminator is dropped.
fn bytestring(b: &[u8]) -> Vec<u8> {
    match b.split_last() {
        Some((0, rest)) => rest.to_vec(),
        _ => b.to_vec(),
    }
}

fn with_nul(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(b);
    v.push(0);
    v
}

/// The one way serialising to a `Vec` can fail in the crate: a Rust string with a NUL.
fn ser(
    object: &'static str,
    f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<usize>,
) -> Result<Vec<u8>, ObjectError> {
    let mut out = Vec::new();
    f(&mut out).map_err(|_| ObjectError::Nul { object })?;
    Ok(out)
}

fn aligned(data: &[u8]) -> std::borrow::Cow<'_, AlignedSlice<A8>> {
    copy_to_align(data)
}

/// A GVariant value of any type: its type string and its serialised bytes, as found in
/// a `v`. Values read from disk are kept byte for byte, so rewriting a dictionary keeps
/// every entry we do not touch exactly as it was.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    pub typestr: Vec<u8>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{}> {}",
            String::from_utf8_lossy(&self.typestr),
            hex::encode(&self.data)
        )
    }
}

impl SerializeTo<Variant> for &Value {
    fn serialize(self, f: &mut impl Write) -> std::io::Result<usize> {
        f.write_all(&self.data)?;
        f.write_all(b"\0")?;
        f.write_all(&self.typestr)?;
        Ok(self.data.len() + 1 + self.typestr.len())
    }
}

impl Value {
    fn wrap<M: Marker, T: SerializeTo<M::Type>>(m: M, v: T) -> Value {
        let mut data = Vec::new();
        // Serialising into a Vec fails only for a string holding NUL, which the typed
        // constructors below rule out before calling.
        let _ = m.serialize(v, &mut data);
        Value {
            typestr: M::TYPESTR.to_vec(),
            data,
        }
    }
    pub fn bool(b: bool) -> Value {
        Value::wrap(gv!("b"), &b)
    }
    /// A `s`; `None` when the string holds a NUL, which GVariant cannot represent.
    pub fn string(s: &str) -> Option<Value> {
        (!s.contains('\0')).then(|| Value::wrap(gv!("s"), s))
    }
    /// An `ay`.
    pub fn bytes(b: &[u8]) -> Value {
        Value::wrap(gv!("ay"), b)
    }
    /// An `aay`.
    pub fn byte_arrays(items: &[Vec<u8>]) -> Value {
        Value::wrap(gv!("aay"), items)
    }
    /// A `(tt)`.
    pub fn u64_pair(a: u64, b: u64) -> Value {
        Value::wrap(gv!("(tt)"), &(a, b))
    }
    pub fn u64(v: u64) -> Value {
        Value::wrap(gv!("t"), v)
    }

    fn is(&self, t: &[u8]) -> bool {
        self.typestr == t
    }
    pub fn as_bool(&self) -> Option<bool> {
        self.is(b"b").then(|| {
            gv!("b")
                .cast(aligned(&self.data).as_ref().as_aligned())
                .to_bool()
        })
    }
    pub fn as_str(&self) -> Option<String> {
        self.is(b"s")
            .then(|| gstr(gv!("s").cast(aligned(&self.data).as_ref().as_aligned())))
    }
    pub fn as_bytes(&self) -> Option<Vec<u8>> {
        self.is(b"ay").then(|| self.data.clone())
    }
    pub fn as_byte_arrays(&self) -> Option<Vec<Vec<u8>>> {
        self.is(b"aay").then(|| {
            let a = aligned(&self.data);
            gv!("aay")
                .cast(a.as_ref().as_aligned())
                .iter()
                .map(|x| x.to_vec())
                .collect()
        })
    }
    pub fn as_u64_pair(&self) -> Option<(u64, u64)> {
        self.is(b"(tt)").then(|| {
            let a = aligned(&self.data);
            let (x, y) = gv!("(tt)").cast(a.as_ref().as_aligned()).to_tuple();
            (*x, *y)
        })
    }
}

/// An `a{sv}`: ordered, as GVariantBuilder keeps insertion order. Lookups take the first
/// entry of a key, as `g_variant_lookup_value` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VarDict {
    pub entries: Vec<(String, Value)>,
}

impl VarDict {
    pub fn new() -> Self {
        VarDict::default()
    }

    /// Reads an `a{sv}` from untrusted bytes. Never fails: like GLib, malformed parts read
    /// as empty values.
    pub fn parse(bytes: &[u8]) -> VarDict {
        let a = aligned(bytes);
        VarDict::from_gv(gv!("a{sv}").cast(a.as_ref().as_aligned()))
    }

    fn from_gv(
        d: &gvariant::NonFixedWidthArray<
            impl for<'a> Structure<'a, RefTuple = (&'a gvariant::Str, &'a Variant)>
            + gvariant::Cast
            + ?Sized,
        >,
    ) -> VarDict {
        let entries = d
            .iter()
            .map(|e| {
                let (k, v) = e.to_tuple();
                let (typestr, data) = v.split();
                let data: &[u8] = data.as_ref();
                (
                    gstr(k),
                    Value {
                        typestr: typestr.to_vec(),
                        data: data.to_vec(),
                    },
                )
            })
            .collect();
        VarDict { entries }
    }

    /// GLib's normal form of this dictionary. Fails only for a key holding NUL.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ObjectError> {
        let refs: Vec<(&str, &Value)> = self.entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
        ser("a{sv}", |out| gv!("a{sv}").serialize(&refs, out))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Replaces the value of `key` in place, or appends it.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An extended attribute as ostree stores it in `a(ayay)` (the name without its NUL).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

fn parse_xattrs<'a, S>(arr: &'a gvariant::NonFixedWidthArray<S>) -> Vec<Xattr>
where
    S: Structure<'a, RefTuple = (&'a [u8], &'a [u8])> + gvariant::Cast + ?Sized + 'static,
{
    arr.iter()
        .map(|e| {
            let (n, v) = e.to_tuple();
            Xattr {
                name: bytestring(n),
                value: v.to_vec(),
            }
        })
        .collect()
}

/// Serialises `a(ayay)` xattrs as ostree does, each name with its NUL terminator.
pub fn xattrs_to_bytes(xattrs: &[Xattr]) -> Vec<u8> {
    let names: Vec<Vec<u8>> = xattrs.iter().map(|x| with_nul(&x.name)).collect();
    let refs: Vec<(&[u8], &[u8])> = names
        .iter()
        .zip(xattrs)
        .map(|(n, x)| (n.as_slice(), x.value.as_slice()))
        .collect();
    gv!("a(ayay)").serialize_to_vec(&refs)
}

/// Parses `a(ayay)` xattrs, as stored in bare-user's `user.ostreemeta` tail or in a dirmeta.
pub fn parse_xattrs_bytes(bytes: &[u8]) -> Vec<Xattr> {
    let a = aligned(bytes);
    parse_xattrs(gv!("a(ayay)").cast(a.as_ref().as_aligned()))
}

/// A `.commit` object: `(a{sv}aya(say)sstayay)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub metadata: VarDict,
    pub parent: Option<Checksum>,
    /// Related objects `a(say)`, name and checksum bytes; kept as read.
    pub related: Vec<(String, Vec<u8>)>,
    pub subject: String,
    pub body: String,
    /// Seconds since the epoch (host order; stored big-endian).
    pub timestamp: u64,
    pub root_contents: Checksum,
    pub root_metadata: Checksum,
}

impl Commit {
    pub fn parse(bytes: &[u8]) -> Result<Commit, ObjectError> {
        let a = aligned(bytes);
        let c = gv!("(a{sv}aya(say)sstayay)").cast(a.as_ref().as_aligned());
        let (meta, parent, related, subject, body, ts, contents, metadata) = c.to_tuple();
        let parent = match parent.len() {
            0 => None,
            _ => Some(checksum_of("commit", "parent", parent)?),
        };
        let related = related
            .iter()
            .map(|r| {
                let (n, c) = r.to_tuple();
                (gstr(n), c.to_vec())
            })
            .collect();
        Ok(Commit {
            metadata: VarDict::from_gv(meta),
            parent,
            related,
            subject: gstr(subject),
            body: gstr(body),
            timestamp: u64::from_be(*ts),
            root_contents: checksum_of("commit", "root dirtree", contents)?,
            root_metadata: checksum_of("commit", "root dirmeta", metadata)?,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ObjectError> {
        let mrefs: Vec<(&str, &Value)> = self
            .metadata
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let parent: &[u8] = match &self.parent {
            Some(p) => p,
            None => &[],
        };
        let related: Vec<(&str, &[u8])> = self
            .related
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        let ts = self.timestamp.to_be();
        let t = (
            &mrefs,
            parent,
            &related,
            self.subject.as_str(),
            self.body.as_str(),
            ts,
            &self.root_contents[..],
            &self.root_metadata[..],
        );
        ser("commit", |out| {
            gv!("(a{sv}aya(say)sstayay)").serialize(&t, out)
        })
    }

    /// The metadata value `ostree.composefs.digest.v0`, when it is an `ay` of 32 bytes.
    pub fn composefs_digest(&self) -> Option<Result<[u8; 32], usize>> {
        let v = self.metadata.get(COMPOSEFS_DIGEST_KEY)?.as_bytes()?;
        Some(v.as_slice().try_into().map_err(|_| v.len()))
    }
}

/// Commit metadata key holding the fs-verity digest of the commit's composefs image.
pub const COMPOSEFS_DIGEST_KEY: &str = "ostree.composefs.digest.v0";
/// Detached metadata key holding Ed25519 signatures (`aay`).
pub const ED25519_SIGNATURES_KEY: &str = "ostree.sign.ed25519";
/// Commit metadata key of bootc container commits.
pub const CONTAINER_IMAGE_CONFIG_KEY: &str = "ostree.container.image-config";

/// ostree's file name rule (`ot_util_filename_validate`): not empty, `.` or `..`, no `/`.
/// GVariant strings already exclude NUL.
pub fn valid_filename(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// A `.dirtree` object: `(a(say)a(sayay))`, files then subdirectories, each sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirTree {
    pub files: Vec<(String, Checksum)>,
    /// name, dirtree checksum, dirmeta checksum
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

fn check_sorted<'a>(
    object: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ObjectError> {
    let mut prev: Option<&str> = None;
    for n in names {
        if !valid_filename(n) {
            return Err(ObjectError::BadName {
                object,
                name: n.to_string(),
            });
        }
        if prev.is_some_and(|p| p.as_bytes() >= n.as_bytes()) {
            return Err(ObjectError::Unsorted {
                object,
                name: n.to_string(),
            });
        }
        prev = Some(n);
    }
    Ok(())
}

impl DirTree {
    /// Parses and validates as `ostree_validate_structureof_dirtree` does: checksums of 32
    /// bytes and valid names; on top, names sorted and unique within each list (ostree
    /// always writes them so, and a checkout relies on it).
    pub fn parse(bytes: &[u8]) -> Result<DirTree, ObjectError> {
        let a = aligned(bytes);
        let (files, dirs) = gv!("(a(say)a(sayay))")
            .cast(a.as_ref().as_aligned())
            .to_tuple();
        let files = files
            .iter()
            .map(|f| {
                let (n, c) = f.to_tuple();
                Ok((gstr(n), checksum_of("dirtree", "file checksum", c)?))
            })
            .collect::<Result<Vec<_>, ObjectError>>()?;
        let dirs = dirs
            .iter()
            .map(|d| {
                let (n, t, m) = d.to_tuple();
                Ok((
                    gstr(n),
                    checksum_of("dirtree", "dirtree checksum", t)?,
                    checksum_of("dirtree", "dirmeta checksum", m)?,
                ))
            })
            .collect::<Result<Vec<_>, ObjectError>>()?;
        check_sorted("dirtree", files.iter().map(|f| f.0.as_str()))?;
        check_sorted("dirtree", dirs.iter().map(|d| d.0.as_str()))?;
        Ok(DirTree { files, dirs })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ObjectError> {
        let files: Vec<(&str, &[u8])> = self
            .files
            .iter()
            .map(|(n, c)| (n.as_str(), &c[..]))
            .collect();
        let dirs: Vec<(&str, &[u8], &[u8])> = self
            .dirs
            .iter()
            .map(|(n, t, m)| (n.as_str(), &t[..], &m[..]))
            .collect();
        ser("dirtree", |out| {
            gv!("(a(say)a(sayay))").serialize(&(&files, &dirs), out)
        })
    }
}

/// A `.dirmeta` object: `(uuua(ayay))`, uid, gid and mode big-endian.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub xattrs: Vec<Xattr>,
}

impl DirMeta {
    pub fn parse(bytes: &[u8]) -> Result<DirMeta, ObjectError> {
        let a = aligned(bytes);
        let (uid, gid, mode, xattrs) = gv!("(uuua(ayay))").cast(a.as_ref().as_aligned()).to_tuple();
        Ok(DirMeta {
            uid: u32::from_be(*uid),
            gid: u32::from_be(*gid),
            mode: u32::from_be(*mode),
            xattrs: parse_xattrs(xattrs),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let names: Vec<Vec<u8>> = self.xattrs.iter().map(|x| with_nul(&x.name)).collect();
        let xs: Vec<(&[u8], &[u8])> = names
            .iter()
            .zip(&self.xattrs)
            .map(|(n, x)| (n.as_slice(), x.value.as_slice()))
            .collect();
        gv!("(uuua(ayay))").serialize_to_vec(&(
            self.uid.to_be(),
            self.gid.to_be(),
            self.mode.to_be(),
            &xs,
        ))
    }
}

/// A `.commitmeta` object: the detached metadata `a{sv}` of a commit.
pub type CommitMeta = VarDict;

/// The metadata of a file object as ostree checksums it: the `(uuuusa(ayay))` file header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileHeader {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode`, type bits included.
    pub mode: u32,
    /// Target of a symlink, empty otherwise.
    pub symlink_target: String,
    pub xattrs: Vec<Xattr>,
}

impl FileHeader {
    pub fn to_bytes(&self) -> Result<Vec<u8>, ObjectError> {
        let names: Vec<Vec<u8>> = self.xattrs.iter().map(|x| with_nul(&x.name)).collect();
        let xs: Vec<(&[u8], &[u8])> = names
            .iter()
            .zip(&self.xattrs)
            .map(|(n, x)| (n.as_slice(), x.value.as_slice()))
            .collect();
        let t = (
            self.uid.to_be(),
            self.gid.to_be(),
            self.mode.to_be(),
            0u32,
            self.symlink_target.as_str(),
            &xs,
        );
        ser("file header", |out| {
            gv!("(uuuusa(ayay))").serialize(&t, out)
        })
    }

    /// A hasher primed as ostree's `ostree_checksum_file_from_input` primes it: the
    /// header's size as a big-endian u32, four bytes of padding, the header. Feed the
    /// content of a regular file after it.
    pub fn checksum_state(&self) -> Result<Sha256, ObjectError> {
        let h = self.to_bytes()?;
        let mut s = Sha256::new();
        s.update((h.len() as u32).to_be_bytes());
        s.update([0u8; 4]);
        s.update(&h);
        Ok(s)
    }
}

/// The `user.ostreemeta` xattr of bare-user repos: `(uuua(ayay))`, like a dirmeta.
pub type OstreeMeta = DirMeta;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vardict_roundtrip_and_lookup() {
        let mut d = VarDict::new();
        d.insert("a", Value::bool(true));
        d.insert("b", Value::string("hello").unwrap());
        d.insert("c", Value::bytes(&[1, 2, 3]));
        d.insert("d", Value::byte_arrays(&[vec![9; 64], vec![]]));
        let b = d.to_bytes().unwrap();
        let p = VarDict::parse(&b);
        assert_eq!(p, d);
        assert_eq!(p.get("a").unwrap().as_bool(), Some(true));
        assert_eq!(p.get("b").unwrap().as_str().as_deref(), Some("hello"));
        assert_eq!(p.get("c").unwrap().as_bytes(), Some(vec![1, 2, 3]));
        assert_eq!(
            p.get("d").unwrap().as_byte_arrays(),
            Some(vec![vec![9; 64], vec![]])
        );
        assert_eq!(p.get("a").unwrap().as_str(), None);
        assert!(VarDict::parse(&[]).is_empty());
        assert_eq!(VarDict::new().to_bytes().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn commit_roundtrip() {
        let mut metadata = VarDict::new();
        metadata.insert(COMPOSEFS_DIGEST_KEY, Value::bytes(&[7; 32]));
        let c = Commit {
            metadata,
            parent: Some([1; 32]),
            related: vec![],
            subject: "subject".into(),
            body: String::new(),
            timestamp: 1_700_000_000,
            root_contents: [2; 32],
            root_metadata: [3; 32],
        };
        let b = c.to_bytes().unwrap();
        let p = Commit::parse(&b).unwrap();
        assert_eq!(p, c);
        assert_eq!(p.composefs_digest(), Some(Ok([7; 32])));
        // The timestamp is big-endian on disk.
        let ts_pos = b
            .windows(8)
            .position(|w| w == 1_700_000_000u64.to_be_bytes())
            .is_some();
        assert!(ts_pos);
    }

    #[test]
    fn dirtree_and_dirmeta_roundtrip() {
        let t = DirTree {
            files: vec![("a".into(), [1; 32]), ("b".into(), [2; 32])],
            dirs: vec![("d".into(), [3; 32], [4; 32])],
        };
        assert_eq!(DirTree::parse(&t.to_bytes().unwrap()).unwrap(), t);
        let m = DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: vec![Xattr {
                name: b"user.a".to_vec(),
                value: b"v".to_vec(),
            }],
        };
        let b = m.to_bytes();
        assert_eq!(&b[8..12], &0o40755u32.to_be_bytes());
        assert_eq!(DirMeta::parse(&b).unwrap(), m);
    }

    #[test]
    fn bad_objects_are_errors() {
        assert!(Commit::parse(&[]).is_err());
        assert!(Commit::parse(&[0xff; 100]).is_err());
        let t = DirTree {
            files: vec![("b".into(), [1; 32]), ("a".into(), [2; 32])],
            dirs: vec![],
        };
        assert!(matches!(
            DirTree::parse(&t.to_bytes().unwrap()),
            Err(ObjectError::Unsorted { .. })
        ));
        let t = DirTree {
            files: vec![("..".into(), [1; 32])],
            dirs: vec![],
        };
        assert!(matches!(
            DirTree::parse(&t.to_bytes().unwrap()),
            Err(ObjectError::BadName { .. })
        ));
        assert_eq!(DirTree::parse(&[]).unwrap(), DirTree::default());
    }

    #[test]
    fn paths() {
        let c = parse_checksum("f6a517d53831a40cff3886a965c70d57aa50797a8e5ea965b2c49cc575a6ff51")
            .unwrap();
        assert_eq!(
            object_path(&c, ObjectType::File),
            "f6/a517d53831a40cff3886a965c70d57aa50797a8e5ea965b2c49cc575a6ff51.file"
        );
        assert!(parse_checksum("f6").is_err());
        assert!(parse_checksum(&"g".repeat(64)).is_err());
    }
}
