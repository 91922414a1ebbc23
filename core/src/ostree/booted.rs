//! `/run/ostree-booted`: the `a{sv}` that prepare-root leaves for the booted system.
//!
//! Writing reproduces ostree's bytes exactly: the same keys, in the order ostree's
//! GVariantBuilder inserts them, each only when ostree writes it. Reading is lenient as
//! `g_variant_lookup` is: any order, unknown keys ignored, missing keys defaulted, a key of
//! the wrong type treated as missing, and an empty file is an empty dictionary.

use super::objects::{Value, VarDict};

pub const KEY_BACKING_ROOT_DEVICE_INODE: &str = "backing-root-device-inode";
pub const KEY_ROOT_TRANSIENT: &str = "root.transient";
pub const KEY_ROOT_TRANSIENT_RO: &str = "root.transient-ro";
pub const KEY_COMPOSEFS_SIGNED: &str = "composefs.signed";
pub const KEY_COMPOSEFS: &str = "composefs";
pub const KEY_COMPOSEFS_VERITY: &str = "composefs.verity";
pub const KEY_SYSROOT_RO: &str = "sysroot-ro";
pub const KEY_TRANSIENT_ETC: &str = "transient-etc";

/// The content of `/run/ostree-booted`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OstreeBooted {
    /// `(st_dev, st_ino)` of the deployment directory.
    pub backing_root_device_inode: (u64, u64),
    pub root_transient: bool,
    pub root_transient_ro: bool,
    /// Path of the key file that verified the commit signature.
    pub composefs_signed: Option<String>,
    /// Present (and `true`) when a composefs root was mounted.
    pub composefs: Option<bool>,
    /// Whether fs-verity was required for the composefs mount.
    pub composefs_verity: Option<bool>,
    pub sysroot_ro: bool,
    /// Upper directory of a transient `/etc`.
    pub transient_etc: Option<String>,
}

/// Why `/run/ostree-booted` could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootedError {
    #[error("{0}: a string value holds a NUL byte")]
    Nul(&'static str),
    #[error("not a GVariant a{{sv}} dictionary ({0} bytes with no readable entry)")]
    Malformed(usize),
}

impl OstreeBooted {
    /// The entries ostree writes, in the order its GVariantBuilder inserts them: the one
    /// place that order and presence are written down ([`to_bytes`](Self::to_bytes) and
    /// [`keys`](Self::keys) both come from here).
    fn entries(&self) -> Vec<(&'static str, Result<Value, BootedError>)> {
        let s = |key: &'static str, v: &str| Value::string(v).ok_or(BootedError::Nul(key));
        let (dev, ino) = self.backing_root_device_inode;
        let mut e = vec![
            (KEY_BACKING_ROOT_DEVICE_INODE, Ok(Value::u64_pair(dev, ino))),
            (KEY_ROOT_TRANSIENT, Ok(Value::bool(self.root_transient))),
            (
                KEY_ROOT_TRANSIENT_RO,
                Ok(Value::bool(self.root_transient_ro)),
            ),
        ];
        if let Some(k) = &self.composefs_signed {
            e.push((KEY_COMPOSEFS_SIGNED, s(KEY_COMPOSEFS_SIGNED, k)));
        }
        if let Some(c) = self.composefs {
            e.push((KEY_COMPOSEFS, Ok(Value::bool(c))));
        }
        if let Some(v) = self.composefs_verity {
            e.push((KEY_COMPOSEFS_VERITY, Ok(Value::bool(v))));
        }
        e.push((KEY_SYSROOT_RO, Ok(Value::bool(self.sysroot_ro))));
        if let Some(t) = &self.transient_etc {
            e.push((KEY_TRANSIENT_ETC, s(KEY_TRANSIENT_ETC, t)));
        }
        e
    }

    /// The keys the file holds, in order.
    pub fn keys(&self) -> Vec<&'static str> {
        self.entries().into_iter().map(|(k, _)| k).collect()
    }

    /// The file's bytes, byte-identical to ostree-prepare-root's.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BootedError> {
        let mut d = VarDict::new();
        for (k, v) in self.entries() {
            d.insert(k, v?);
        }
        // Keys are fixed ASCII constants: serialisation cannot fail.
        d.to_bytes().map_err(|_| BootedError::Nul("key"))
    }

    /// Reads the file's bytes. Malformed parts read as defaults, as in GLib; only bytes
    /// in which not one entry can be found are refused (an empty file is an empty
    /// dictionary).
    pub fn from_bytes(bytes: &[u8]) -> Result<OstreeBooted, BootedError> {
        let d = VarDict::parse(bytes);
        if d.is_empty() && !bytes.is_empty() {
            return Err(BootedError::Malformed(bytes.len()));
        }
        let b = |k: &str| d.get(k).and_then(Value::as_bool);
        let s = |k: &str| d.get(k).and_then(Value::as_str);
        Ok(OstreeBooted {
            backing_root_device_inode: d
                .get(KEY_BACKING_ROOT_DEVICE_INODE)
                .and_then(Value::as_u64_pair)
                .unwrap_or((0, 0)),
            root_transient: b(KEY_ROOT_TRANSIENT).unwrap_or(false),
            root_transient_ro: b(KEY_ROOT_TRANSIENT_RO).unwrap_or(false),
            composefs_signed: s(KEY_COMPOSEFS_SIGNED),
            composefs: b(KEY_COMPOSEFS),
            composefs_verity: b(KEY_COMPOSEFS_VERITY),
            sysroot_ro: b(KEY_SYSROOT_RO).unwrap_or(false),
            transient_etc: s(KEY_TRANSIENT_ETC),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "6261636b696e672d726f6f742d6465766963652d696e6f64650000000000000001fd00000000000087d612000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000726f6f742e7472616e7369656e742d726f000000000000000000621200000000737973726f6f742d726f0000000000000000620b364c6c84";
    const COMPOSEFS: &str = "6261636b696e672d726f6f742d6465766963652d696e6f64650000000000000001fd00000000000087d612000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000726f6f742e7472616e7369656e742d726f000000000000000000621200000000636f6d706f73656673000000000000000100620a00000000636f6d706f736566732e76657269747900000000000000000000621100000000737973726f6f742d726f0000000000000100620b364c6c84a4bc";

    fn dev_ino() -> (u64, u64) {
        ((253 << 8) | 1, 1234567)
    }

    #[test]
    fn legacy_vector() {
        let b = OstreeBooted {
            backing_root_device_inode: dev_ino(),
            ..Default::default()
        };
        let bytes = b.to_bytes().unwrap();
        assert_eq!(bytes.len(), 136);
        assert_eq!(hex::encode(&bytes), LEGACY);
        assert_eq!(OstreeBooted::from_bytes(&bytes).unwrap(), b);
    }

    #[test]
    fn composefs_vector() {
        let b = OstreeBooted {
            backing_root_device_inode: dev_ino(),
            composefs: Some(true),
            composefs_verity: Some(false),
            sysroot_ro: true,
            ..Default::default()
        };
        let bytes = b.to_bytes().unwrap();
        assert_eq!(bytes.len(), 194);
        assert_eq!(hex::encode(&bytes), COMPOSEFS);
        assert_eq!(
            OstreeBooted::from_bytes(&hex::decode(COMPOSEFS).unwrap()).unwrap(),
            b
        );
    }

    #[test]
    fn all_keys_roundtrip() {
        let b = OstreeBooted {
            backing_root_device_inode: (1, 2),
            root_transient: true,
            root_transient_ro: true,
            composefs_signed: Some("/etc/ostree/initramfs-root-binding.key".into()),
            composefs: Some(true),
            composefs_verity: Some(true),
            sysroot_ro: true,
            transient_etc: Some("/run/ostree/transient-etc.abc123".into()),
        };
        assert_eq!(OstreeBooted::from_bytes(&b.to_bytes().unwrap()).unwrap(), b);
    }

    #[test]
    fn lenient_reading() {
        assert_eq!(
            OstreeBooted::from_bytes(b"").unwrap(),
            OstreeBooted::default()
        );
        assert_eq!(
            OstreeBooted::from_bytes(b"\x01"),
            Err(BootedError::Malformed(1))
        );
        // Unknown keys, other order, a wrong type (treated as missing).
        let mut d = VarDict::new();
        d.insert("sysroot-ro", Value::bool(true));
        d.insert("future-key", Value::string("x").unwrap());
        d.insert("composefs", Value::string("yes").unwrap());
        d.insert("root.transient", Value::bool(true));
        let r = OstreeBooted::from_bytes(&d.to_bytes().unwrap()).unwrap();
        assert!(r.sysroot_ro && r.root_transient);
        assert_eq!(r.composefs, None);
        for n in 0..200 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = OstreeBooted::from_bytes(&junk);
        }
    }

    #[test]
    fn nul_in_string_is_an_error() {
        let b = OstreeBooted {
            transient_etc: Some("a\0b".into()),
            ..Default::default()
        };
        assert_eq!(b.to_bytes(), Err(BootedError::Nul(KEY_TRANSIENT_ETC)));
    }
}
