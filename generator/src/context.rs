//! What the generator is told by its environment.
//!
//! systemd passes `SYSTEMD_IN_INITRD`; `SYSTEMD_PROC_CMDLINE` and `SYSTEMD_FSTAB` are
//! systemd's own debug overrides, which its generators honour and so do we.
//! `OSTREE_GENERATOR_ROOT` names a directory that stands for `/` for every file the
//! generator reads (tests and offline inspection), never for the output directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const ENV_ROOT: &str = "OSTREE_GENERATOR_ROOT";

/// The inputs that do not depend on the file system below the root.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    pub in_initrd: bool,
    /// The kernel command line when `SYSTEMD_PROC_CMDLINE` gave it; otherwise read later.
    pub cmdline_override: Option<String>,
    /// `SYSTEMD_FSTAB`: an absolute path, not below the root.
    pub fstab_override: Option<PathBuf>,
}

impl Context {
    /// Reads the environment through `get` (a parameter so tests need not mutate
    /// the process environment).
    pub fn from_env(get: impl Fn(&str) -> Option<OsString>) -> Context {
        let root = get(ENV_ROOT)
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let cmdline_override =
            get("SYSTEMD_PROC_CMDLINE").map(|v| v.to_string_lossy().into_owned());
        let fstab_override = get("SYSTEMD_FSTAB")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut ctx = Context {
            root,
            in_initrd: false,
            cmdline_override,
            fstab_override,
        };
        // systemd's rule: the variable when it is a valid boolean, else /etc/initrd-release.
        ctx.in_initrd =
            match get("SYSTEMD_IN_INITRD").and_then(|v| parse_boolean(&v.to_string_lossy())) {
                Some(b) => b,
                None => ctx.path("/etc/initrd-release").exists(),
            };
        ctx
    }

    /// `abs` (an absolute path on the running system) below the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn fstab_path(&self) -> PathBuf {
        self.fstab_override
            .clone()
            .unwrap_or_else(|| self.path("/etc/fstab"))
    }
}

/// systemd's `parse_boolean()`.
pub fn parse_boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx(vars: &[(&str, &str)]) -> Context {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Context::from_env(|k| m.get(k).cloned())
    }

    #[test]
    fn initrd_from_env_or_release_file() {
        assert!(ctx(&[("SYSTEMD_IN_INITRD", "yes")]).in_initrd);
        assert!(!ctx(&[("SYSTEMD_IN_INITRD", "0")]).in_initrd);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/initrd-release"), "").unwrap();
        let root = tmp.path().to_str().unwrap();
        assert!(ctx(&[(ENV_ROOT, root)]).in_initrd);
        assert!(ctx(&[(ENV_ROOT, root), ("SYSTEMD_IN_INITRD", "garbage")]).in_initrd);
        assert!(!ctx(&[(ENV_ROOT, root), ("SYSTEMD_IN_INITRD", "off")]).in_initrd);
    }

    #[test]
    fn paths_below_root() {
        let c = ctx(&[(ENV_ROOT, "/x/y")]);
        assert_eq!(c.path("/etc/fstab"), Path::new("/x/y/etc/fstab"));
        assert_eq!(c.fstab_path(), Path::new("/x/y/etc/fstab"));
        let c = ctx(&[("SYSTEMD_FSTAB", "/t/fstab")]);
        assert_eq!(c.path("/run/ostree"), Path::new("/run/ostree"));
        assert_eq!(c.fstab_path(), Path::new("/t/fstab"));
    }
}
