//! `/run/ostree/staged-deployment`: the `a{sv}` libostree leaves when a deployment is
//! staged (`ostree admin deploy --stage`), read back by `ostree admin status` and by
//! `ostree admin finalize-staged` at shutdown.
//!
//! Facts from libostree (`src/libostree/ostree-sysroot-deploy.c`,
//! `ostree_sysroot_stage_tree_with_options` and `serialize_deployment_to_variant`, the
//! same in 2022.7 and 2026.4 except for the keys marked below):
//!
//! - top level, in this order: `target` (`a{sv}`), `locked` (`b`, only when true; since
//!   2023.8), `merge-deployment` (`a{sv}`, when there is one), `kargs` (`as`, when the
//!   caller overrides the kernel arguments), `overlay-initrds` (`as`), `bootconfig-extra`
//!   (`a{ss}`, extension BLS keys; 2026.x);
//! - each deployment: `name` (`"<csum>.<deployserial>"`), `osname`, `bootcsum`, all `s`.
//!
//! Writing emits those keys in that order through GLib's normal form, so the bytes are
//! libostree's. Reading follows `_ostree_sysroot_reload_staged`: a missing or mistyped
//! `target` means nothing is staged, unknown keys are ignored; a deployment lacking one
//! of its three strings is an error (`Missing key: name` as upstream). Beyond upstream,
//! names that would become paths are checked (stateroot, hex checksums), because a
//! finalize run as root at shutdown must not follow a crafted file out of the sysroot.

use gvariant::aligned_bytes::{A8, AsAligned, copy_to_align};
use gvariant::{Marker, Structure, gv};

use super::objects::{Value, VarDict};
use crate::deployment::DeployName;

/// Where libostree keeps the staged deployment.
pub const RUN_STAGED: &str = "/run/ostree/staged-deployment";
/// The older way of locking finalization, still honoured and still written.
pub const RUN_STAGED_LOCKED: &str = "/run/ostree/staged-deployment-locked";
/// Overlay initrds staged for the deployment, by their sha256.
pub const RUN_STAGED_INITRDS: &str = "/run/ostree/staged-initrds";
/// Relative to /boot: the error of a failed finalization.
pub const FINALIZE_FAILURE_STAMP: &str = "ostree/finalize-failure.stamp";
/// Larger files are refused unread: libostree's own are a few hundred bytes.
pub const MAX_SIZE: usize = 1 << 20;

pub const KEY_TARGET: &str = "target";
pub const KEY_LOCKED: &str = "locked";
pub const KEY_MERGE: &str = "merge-deployment";
pub const KEY_KARGS: &str = "kargs";
pub const KEY_OVERLAY_INITRDS: &str = "overlay-initrds";
pub const KEY_BOOTCONFIG_EXTRA: &str = "bootconfig-extra";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StagedError {
    #[error("staged deployment: {0} holds a NUL byte")]
    Nul(&'static str),
    #[error("staged deployment: {0} bytes, more than the {MAX_SIZE} accepted")]
    TooLarge(usize),
    #[error("staged deployment: {0}: Missing key: {1}")]
    MissingKey(&'static str, &'static str),
    #[error("staged deployment: {0}: invalid {1} {2:?}")]
    Invalid(&'static str, &'static str, String),
}

/// A deployment as the staged file names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedRef {
    pub osname: String,
    pub csum: String,
    pub deployserial: u32,
    pub bootcsum: String,
}

impl StagedRef {
    /// `<csum>.<deployserial>`, the deployment's directory name.
    pub fn name(&self) -> String {
        format!("{}.{}", self.csum, self.deployserial)
    }

    fn to_value(&self, what: &'static str) -> Result<Value, StagedError> {
        let s = |v: &str| Value::string(v).ok_or(StagedError::Nul(what));
        let mut d = VarDict::new();
        d.insert("name", s(&self.name())?);
        d.insert("osname", s(&self.osname)?);
        d.insert("bootcsum", s(&self.bootcsum)?);
        dict_value(&d, what)
    }

    fn from_dict(d: &VarDict, what: &'static str) -> Result<StagedRef, StagedError> {
        let get = |k: &'static str| {
            d.get(k)
                .and_then(Value::as_str)
                .ok_or(StagedError::MissingKey(what, k))
        };
        let name = get("name")?;
        let bootcsum = get("bootcsum")?;
        let osname = get("osname")?;
        let n = DeployName::parse(&name)
            .map_err(|_| StagedError::Invalid(what, "name", name.clone()))?;
        // libostree prints the serial with %d: a serial past i32 is not one it wrote.
        if n.serial > i32::MAX as u32 || !crate::layout::is_hex_csum(&n.checksum) {
            return Err(StagedError::Invalid(what, "name", name));
        }
        if !crate::layout::is_hex_csum(&bootcsum) {
            return Err(StagedError::Invalid(what, "bootcsum", bootcsum));
        }
        if crate::layout::validate_stateroot(&osname).is_err() {
            return Err(StagedError::Invalid(what, "osname", osname));
        }
        Ok(StagedRef {
            osname,
            csum: n.checksum,
            deployserial: n.serial,
            bootcsum,
        })
    }
}

/// The content of `/run/ostree/staged-deployment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub target: StagedRef,
    /// Finalization locked through the file (ostree >= 2023.8); see also
    /// [`RUN_STAGED_LOCKED`].
    pub locked: bool,
    pub merge: Option<StagedRef>,
    /// Kernel arguments replacing the merge deployment's.
    pub kargs: Option<Vec<String>>,
    pub overlay_initrds: Option<Vec<String>>,
    /// Extension BLS keys (`x-…`) carried to the entry.
    pub bootconfig_extra: Option<Vec<(String, String)>>,
}

fn dict_value(d: &VarDict, what: &'static str) -> Result<Value, StagedError> {
    Ok(Value {
        typestr: b"a{sv}".to_vec(),
        data: d.to_bytes().map_err(|_| StagedError::Nul(what))?,
    })
}

fn strv_value(v: &[String], what: &'static str) -> Result<Value, StagedError> {
    if v.iter().any(|s| s.contains('\0')) {
        return Err(StagedError::Nul(what));
    }
    let refs: Vec<&str> = v.iter().map(String::as_str).collect();
    let mut data = Vec::new();
    gv!("as")
        .serialize(&refs, &mut data)
        .map_err(|_| StagedError::Nul(what))?;
    Ok(Value {
        typestr: b"as".to_vec(),
        data,
    })
}

fn pairs_value(v: &[(String, String)], what: &'static str) -> Result<Value, StagedError> {
    if v.iter().any(|(a, b)| a.contains('\0') || b.contains('\0')) {
        return Err(StagedError::Nul(what));
    }
    let refs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut data = Vec::new();
    gv!("a{ss}")
        .serialize(&refs, &mut data)
        .map_err(|_| StagedError::Nul(what))?;
    Ok(Value {
        typestr: b"a{ss}".to_vec(),
        data,
    })
}

/// An `as` as `g_variant_dict_lookup (…, "^a&s", …)` reads it; `None` for another type.
fn as_strv(v: &Value) -> Option<Vec<String>> {
    (v.typestr == b"as").then(|| {
        let a = copy_to_align::<A8>(&v.data);
        gv!("as")
            .cast(a.as_ref().as_aligned())
            .iter()
            .map(|s| s.to_str().to_owned())
            .collect()
    })
}

fn as_pairs(v: &Value) -> Option<Vec<(String, String)>> {
    (v.typestr == b"a{ss}").then(|| {
        let a = copy_to_align::<A8>(&v.data);
        gv!("a{ss}")
            .cast(a.as_ref().as_aligned())
            .iter()
            .map(|e| {
                let (k, v) = e.to_tuple();
                (k.to_str().to_owned(), v.to_str().to_owned())
            })
            .collect()
    })
}

fn as_dict(v: &Value) -> Option<VarDict> {
    (v.typestr == b"a{sv}").then(|| VarDict::parse(&v.data))
}

impl Staged {
    /// The file's bytes, as libostree writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StagedError> {
        let mut d = VarDict::new();
        d.insert(KEY_TARGET, self.target.to_value(KEY_TARGET)?);
        if self.locked {
            d.insert(KEY_LOCKED, Value::bool(true));
        }
        if let Some(m) = &self.merge {
            d.insert(KEY_MERGE, m.to_value(KEY_MERGE)?);
        }
        if let Some(k) = &self.kargs {
            d.insert(KEY_KARGS, strv_value(k, KEY_KARGS)?);
        }
        if let Some(i) = &self.overlay_initrds {
            d.insert(KEY_OVERLAY_INITRDS, strv_value(i, KEY_OVERLAY_INITRDS)?);
        }
        if let Some(x) = &self.bootconfig_extra {
            d.insert(KEY_BOOTCONFIG_EXTRA, pairs_value(x, KEY_BOOTCONFIG_EXTRA)?);
        }
        d.to_bytes().map_err(|_| StagedError::Nul("key"))
    }

    /// Reads the file's bytes: `Ok(None)` when nothing is staged (no usable `target`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Option<Staged>, StagedError> {
        if bytes.len() > MAX_SIZE {
            return Err(StagedError::TooLarge(bytes.len()));
        }
        let d = VarDict::parse(bytes);
        let Some(target) = d.get(KEY_TARGET).and_then(as_dict) else {
            return Ok(None);
        };
        let target = StagedRef::from_dict(&target, KEY_TARGET)?;
        let merge = match d.get(KEY_MERGE).and_then(as_dict) {
            Some(m) => Some(StagedRef::from_dict(&m, KEY_MERGE)?),
            None => None,
        };
        Ok(Some(Staged {
            target,
            locked: d.get(KEY_LOCKED).and_then(Value::as_bool).unwrap_or(false),
            merge,
            kargs: d.get(KEY_KARGS).and_then(as_strv),
            overlay_initrds: d.get(KEY_OVERLAY_INITRDS).and_then(as_strv),
            bootconfig_extra: d.get(KEY_BOOTCONFIG_EXTRA).and_then(as_pairs),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(serial: u32) -> StagedRef {
        StagedRef {
            osname: "testos".into(),
            csum: "ab".repeat(32),
            deployserial: serial,
            bootcsum: "cd".repeat(32),
        }
    }

    fn full() -> Staged {
        Staged {
            target: r(1),
            locked: true,
            merge: Some(r(0)),
            kargs: Some(vec!["root=/dev/vda".into(), "quiet".into()]),
            overlay_initrds: Some(vec![]),
            bootconfig_extra: Some(vec![("x-options-source-tuned".into(), "a b".into())]),
        }
    }

    /// Bytes from GLib itself with libostree's builder calls
    /// (`core/tests/data/staged-glib-ref.c`): target only; target and merge; every key.
    const GLIB_TARGET: &str = "74617267657400006e616d6500000000616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622e310000730500006f736e616d650000746573746f7300007307000000000000626f6f746373756d000000000000000063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364000073094e62bc00617b73767d07ce";
    const GLIB_MERGE: &str = "74617267657400006e616d6500000000616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622e310000730500006f736e616d650000746573746f7300007307000000000000626f6f746373756d000000000000000063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364000073094e62bc00617b73767d0700006d657267652d6465706c6f796d656e7400000000000000006e616d6500000000616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622e300000730500006f736e616d650000746573746f7300007307000000000000626f6f746373756d000000000000000063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364000073094e62bc00617b73767d11ce00ae01";
    const GLIB_ALL: &str = "74617267657400006e616d6500000000616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622e310000730500006f736e616d650000746573746f7300007307000000000000626f6f746373756d000000000000000063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364000073094e62bc00617b73767d0700006c6f636b6564000001006207000000006d657267652d6465706c6f796d656e7400000000000000006e616d6500000000616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622e300000730500006f736e616d650000746573746f7300007307000000000000626f6f746373756d000000000000000063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364000073094e62bc00617b73767d1100006b61726773000000726f6f743d2f6465762f766461007175696574000e1400617306000000000000626f6f74636f6e6669672d65787472610000000000000000782d6f7074696f6e732d736f757263652d74756e65640061206200171c00617b73737d11ce00dc00be01e2012402";

    #[test]
    fn glib_vectors() {
        let mut s = Staged {
            target: r(1),
            locked: false,
            merge: None,
            kargs: None,
            overlay_initrds: None,
            bootconfig_extra: None,
        };
        assert_eq!(hex::encode(s.to_bytes().unwrap()), GLIB_TARGET);
        s.merge = Some(r(0));
        assert_eq!(hex::encode(s.to_bytes().unwrap()), GLIB_MERGE);
        let mut all = full();
        all.overlay_initrds = None;
        assert_eq!(hex::encode(all.to_bytes().unwrap()), GLIB_ALL);
        for v in [GLIB_TARGET, GLIB_MERGE, GLIB_ALL] {
            let b = hex::decode(v).unwrap();
            let st = Staged::from_bytes(&b).unwrap().unwrap();
            assert_eq!(st.to_bytes().unwrap(), b);
        }
    }

    #[test]
    fn roundtrip() {
        let s = full();
        assert_eq!(Staged::from_bytes(&s.to_bytes().unwrap()).unwrap(), Some(s));
        let min = Staged {
            target: r(7),
            locked: false,
            merge: None,
            kargs: None,
            overlay_initrds: None,
            bootconfig_extra: None,
        };
        assert_eq!(
            Staged::from_bytes(&min.to_bytes().unwrap()).unwrap(),
            Some(min)
        );
    }

    #[test]
    fn nothing_staged() {
        assert_eq!(Staged::from_bytes(b"").unwrap(), None);
        let mut d = VarDict::new();
        d.insert(KEY_TARGET, Value::string("x").unwrap());
        assert_eq!(Staged::from_bytes(&d.to_bytes().unwrap()).unwrap(), None);
    }

    #[test]
    fn missing_and_hostile_keys() {
        let mut t = VarDict::new();
        t.insert(
            "name",
            Value::string(&format!("{}.0", "ab".repeat(32))).unwrap(),
        );
        t.insert("osname", Value::string("testos").unwrap());
        let mut d = VarDict::new();
        d.insert(KEY_TARGET, dict_value(&t, KEY_TARGET).unwrap());
        assert_eq!(
            Staged::from_bytes(&d.to_bytes().unwrap()),
            Err(StagedError::MissingKey(KEY_TARGET, "bootcsum"))
        );
        for (k, v) in [
            ("bootcsum", "../../etc"),
            ("osname", ".."),
            ("name", "ab.0/../x"),
        ] {
            let mut t2 = t.clone();
            t2.insert("bootcsum", Value::string(&"cd".repeat(32)).unwrap());
            t2.insert(k, Value::string(v).unwrap());
            d.insert(KEY_TARGET, dict_value(&t2, KEY_TARGET).unwrap());
            assert!(matches!(
                Staged::from_bytes(&d.to_bytes().unwrap()),
                Err(StagedError::Invalid(..))
            ));
        }
        assert_eq!(
            Staged::from_bytes(&vec![0u8; MAX_SIZE + 1]),
            Err(StagedError::TooLarge(MAX_SIZE + 1))
        );
    }

    #[test]
    fn junk_never_panics() {
        let good = full().to_bytes().unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            let _ = Staged::from_bytes(&b);
            let _ = Staged::from_bytes(&good[..i]);
        }
    }

    #[test]
    fn nul_refused() {
        let mut s = full();
        s.kargs = Some(vec!["a\0b".into()]);
        assert_eq!(s.to_bytes(), Err(StagedError::Nul(KEY_KARGS)));
    }
}
