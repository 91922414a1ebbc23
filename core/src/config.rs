//! `prepare-root.conf`: what the initrd is configured to do with the root filesystem.
//!
//! Read exactly as ostree reads it (`otcore_load_config`, `otcore_load_rootfs_config`,
//! `ostree-prepare-root.c:main`): `/usr/lib/ostree/prepare-root.conf` then
//! `/etc/ostree/prepare-root.conf`, each existing file parsed (a parse error in either is
//! fatal) and each replacing the previous one wholesale, so the `/etc` file, if present,
//! is the whole configuration. [`PrepareRootConfig`] is the file; [`RootConfig`] is what
//! prepare-root acts on after the kernel command line override and the defaults.

use std::path::{Path, PathBuf};

use crate::cmdline::{COMPOSEFS_KARG, Cmdline, CmdlineError};
use crate::keyfile::{KeyFile, KeyFileError};

/// The public keys that signed composefs commits are checked against, by default.
pub const DEFAULT_KEYPATH: &str = "/etc/ostree/initramfs-root-binding.key";

/// Where prepare-root.conf is looked for, relative to a root, first existing wins.
pub const CONFIG_PATHS: [&str; 2] = [
    "etc/ostree/prepare-root.conf",
    "usr/lib/ostree/prepare-root.conf",
];

// The mode is shared with the kernel command line: it lives in its own module so that
// `cmdline` and `config` do not import each other. Re-exported here, where users look.
pub use crate::mode::ComposefsMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// `root.transient` and `root.transient-ro` are exclusive.
    #[error("{}:{line}: [root] transient-ro: Cannot set both root.transient and root.transient-ro", file.display())]
    TransientConflict { file: PathBuf, line: usize },
    /// A kernel argument asked for less than the initrd's configuration requires.
    #[error(
        "kernel argument {karg}={value} refused: it would lower composefs.enabled={required} set by {}; a kernel argument may only keep or raise it",
        file.display()
    )]
    KargDowngrade {
        karg: &'static str,
        value: String,
        required: ComposefsMode,
        file: PathBuf,
    },
}

/// The contents of prepare-root.conf, validated, before the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareRootConfig {
    /// The file that was read; `None` when neither exists (all defaults).
    pub source: Option<PathBuf>,
    /// `composefs.enabled` (default `no`).
    pub composefs: ComposefsMode,
    /// `composefs.keypath`, raw (trailing whitespace included, as ostree reads it).
    pub keypath: PathBuf,
    pub etc_transient: bool,
    /// `root.transient`; true as well when `root.transient-ro` is set.
    pub root_transient: bool,
    pub root_transient_ro: bool,
    /// `sysroot.readonly` when the file sets it; the default depends on composefs.
    pub sysroot_readonly: Option<bool>,
}

impl Default for PrepareRootConfig {
    fn default() -> Self {
        PrepareRootConfig {
            source: None,
            composefs: ComposefsMode::No,
            keypath: PathBuf::from(DEFAULT_KEYPATH),
            etc_transient: false,
            root_transient: false,
            root_transient_ro: false,
            sysroot_readonly: None,
        }
    }
}

const ENABLED_EXPECTED: &str = "yes, no, maybe, verity, signed, true, false, 1 or 0";

impl PrepareRootConfig {
    /// Loads the configuration under `config_root` (`/` in the initrd) as ostree does:
    /// both files parsed in ostree's order, the last existing one is the configuration.
    pub fn load(config_root: &Path) -> Result<PrepareRootConfig, ConfigError> {
        let load_order = [CONFIG_PATHS[1], CONFIG_PATHS[0]];
        let kf = KeyFile::load_replacing(config_root, &load_order)?;
        Self::from_keyfile(kf.as_ref())
    }

    /// Interprets a parsed file; `None` is the all-defaults configuration.
    pub fn from_keyfile(kf: Option<&KeyFile>) -> Result<PrepareRootConfig, ConfigError> {
        let Some(kf) = kf else {
            return Ok(PrepareRootConfig::default());
        };
        let mut cfg = PrepareRootConfig {
            source: Some(kf.source().to_path_buf()),
            ..PrepareRootConfig::default()
        };
        // ostree reads root.* first, so their errors come before composefs.enabled's.
        let transient = kf.get_bool("root", "transient")?.unwrap_or(false);
        let transient_ro = kf.get_bool("root", "transient-ro")?.unwrap_or(false);
        if transient && transient_ro {
            return Err(ConfigError::TransientConflict {
                file: kf.source().to_path_buf(),
                line: kf.line_of("root", "transient-ro").unwrap_or_default(),
            });
        }
        cfg.root_transient = transient || transient_ro;
        cfg.root_transient_ro = transient_ro;

        if let Some(raw) = kf.get("composefs", "enabled") {
            // `signed` and `verity` are compared raw (so `signed ` is not `signed`); only
            // the tristate words are whitespace-stripped.
            cfg.composefs = match raw {
                "signed" => ComposefsMode::Signed,
                "verity" => ComposefsMode::Verity,
                _ => ComposefsMode::parse_tristate(raw.trim_matches(crate::keyfile::g_space))
                    .ok_or_else(|| kf.invalid_value("composefs", "enabled", ENABLED_EXPECTED))?,
            };
        }
        if let Some(raw) = kf.get("composefs", "keypath") {
            cfg.keypath = PathBuf::from(raw);
        }
        cfg.etc_transient = kf.get_bool("etc", "transient")?.unwrap_or(false);
        cfg.sysroot_readonly = kf.get_bool("sysroot", "readonly")?;
        Ok(cfg)
    }
}

/// The effective configuration: the file, then the kernel command line, then defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootConfig {
    /// The effective mode: `Yes` with verity required reads as `Verity`, with a signature
    /// as `Signed`. `Maybe` stays `Maybe`; see `require_verity` for maybe+verity.
    pub composefs: ComposefsMode,
    /// fs-verity required on the image (and so on every object) when composefs is mounted.
    pub require_verity: bool,
    /// The commit signature must be checked against the keys at `keypath`.
    pub is_signed: bool,
    pub keypath: PathBuf,
    pub etc_transient: bool,
    pub root_transient: bool,
    pub root_transient_ro: bool,
    /// After the default (true when composefs is required). The legacy
    /// `repo/config [sysroot] readonly` flag is a fact about the disk; the plan applies it.
    pub sysroot_readonly: bool,
}

impl RootConfig {
    /// Applies `ostree.prepare-root.composefs=` (ostree's table, plus `verity`, which
    /// upstream rejects) and the defaults.
    ///
    /// As upstream: a karg other than `signed`/`verity` clears `is_signed` but leaves
    /// `require_verity` as the file set it (file `verity` + karg `yes` is still verity).
    /// Beyond upstream: karg `signed` with a file that is not `signed` is a defined state
    /// (signed, keys from `keypath`); prepare-root loads the keys then and fails cleanly
    /// if there are none, where ostree aborts on an assertion.
    ///
    /// Unlike upstream, a karg cannot lower a file's `verity` or `signed`: anyone who can
    /// edit a boot entry could otherwise boot an unverified root with an initrd whose
    /// configuration promises to boot only the userspace it was made for. Such a karg is
    /// [`ConfigError::KargDowngrade`] (the boot fails closed). Keeping (`yes` with a file
    /// `verity` still means verity) or raising is allowed.
    pub fn new(cfg: &PrepareRootConfig, cmdline: &Cmdline) -> Result<RootConfig, ConfigError> {
        let (mut enabled, mut require_verity, mut is_signed) = match cfg.composefs {
            ComposefsMode::Signed => (ComposefsMode::Yes, true, true),
            ComposefsMode::Verity => (ComposefsMode::Yes, true, false),
            m => (m, false, false),
        };
        match cmdline.composefs_override()? {
            None => {}
            Some(ComposefsMode::Signed) => {
                enabled = ComposefsMode::Yes;
                require_verity = true;
                is_signed = true;
            }
            Some(ComposefsMode::Verity) => {
                enabled = ComposefsMode::Yes;
                require_verity = true;
                is_signed = false;
            }
            Some(m) => {
                enabled = m;
                is_signed = false;
            }
        }
        let composefs = match enabled {
            ComposefsMode::Yes if is_signed => ComposefsMode::Signed,
            ComposefsMode::Yes if require_verity => ComposefsMode::Verity,
            m => m,
        };
        if matches!(cfg.composefs, ComposefsMode::Verity | ComposefsMode::Signed)
            && composefs.strength() < cfg.composefs.strength()
        {
            return Err(ConfigError::KargDowngrade {
                karg: COMPOSEFS_KARG,
                value: cmdline.get(COMPOSEFS_KARG).unwrap_or("").to_string(),
                required: cfg.composefs,
                file: cfg.source.clone().unwrap_or_default(),
            });
        }
        let sysroot_readonly = cfg.sysroot_readonly.unwrap_or(composefs.is_required());
        Ok(RootConfig {
            composefs,
            require_verity,
            is_signed,
            keypath: cfg.keypath.clone(),
            etc_transient: cfg.etc_transient,
            root_transient: cfg.root_transient,
            root_transient_ro: cfg.root_transient_ro,
            sysroot_readonly,
        })
    }

    /// The configuration under `config_root` with `cmdline` applied, as prepare-root and
    /// `--print-config` see it. The legacy `repo/config` flag is not part of it: it is a
    /// fact about the disk (see [`crate::plan::Facts`]).
    pub fn load(config_root: &Path, cmdline: &Cmdline) -> Result<RootConfig, ConfigError> {
        RootConfig::new(&PrepareRootConfig::load(config_root)?, cmdline)
    }

    /// The `--print-config` lines, in their fixed order, each ending in `\n`.
    pub fn print(&self) -> String {
        format!(
            "composefs.enabled={}\ncomposefs.keypath={}\netc.transient={}\nroot.transient={}\nroot.transient-ro={}\nsysroot.readonly={}\n",
            self.composefs,
            self.keypath.display(),
            self.etc_transient,
            self.root_transient,
            self.root_transient_ro,
            self.sysroot_readonly,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<PrepareRootConfig, ConfigError> {
        let kf = KeyFile::parse(text, Path::new("/usr/lib/ostree/prepare-root.conf"))?;
        PrepareRootConfig::from_keyfile(Some(&kf))
    }

    fn root(text: &str, cmdline: &str) -> Result<RootConfig, ConfigError> {
        RootConfig::new(&cfg(text)?, &Cmdline::parse(cmdline))
    }

    #[test]
    fn defaults_without_file() {
        let c = PrepareRootConfig::from_keyfile(None).unwrap();
        assert_eq!(c, PrepareRootConfig::default());
        let r = RootConfig::new(&c, &Cmdline::parse("ostree=/x")).unwrap();
        assert_eq!(
            r.print(),
            "composefs.enabled=no\ncomposefs.keypath=/etc/ostree/initramfs-root-binding.key\netc.transient=false\nroot.transient=false\nroot.transient-ro=false\nsysroot.readonly=false\n"
        );
    }

    #[test]
    fn enabled_values() {
        for (v, mode) in [
            ("yes", ComposefsMode::Yes),
            ("true", ComposefsMode::Yes),
            ("1", ComposefsMode::Yes),
            ("no", ComposefsMode::No),
            ("false", ComposefsMode::No),
            ("0", ComposefsMode::No),
            ("maybe", ComposefsMode::Maybe),
            ("verity", ComposefsMode::Verity),
            ("signed", ComposefsMode::Signed),
            ("yes  ", ComposefsMode::Yes),
            ("maybe\t", ComposefsMode::Maybe),
        ] {
            let c = cfg(&format!("[composefs]\nenabled={v}\n")).unwrap();
            assert_eq!(c.composefs, mode, "{v:?}");
        }
    }

    #[test]
    fn enabled_invalid_values_are_fatal() {
        for v in [
            "", "Yes", "YES", "on", "sure", "signed ", "verity ", "Signed", "yes # c",
        ] {
            let e = cfg(&format!("[sysroot]\n\n[composefs]\nenabled={v}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(
                    "/usr/lib/ostree/prepare-root.conf:4: [composefs] enabled: invalid value"
                ),
                "{v:?}: {e}"
            );
        }
    }

    #[test]
    fn booleans_are_glib_booleans() {
        for key in [
            "[sysroot]\nreadonly",
            "[etc]\ntransient",
            "[root]\ntransient",
            "[root]\ntransient-ro",
        ] {
            for bad in ["yes", "no", "True", "on", "2", ""] {
                let e = cfg(&format!("{key}={bad}\n")).unwrap_err().to_string();
                assert!(e.contains(":2: ["), "{key} {bad}: {e}");
            }
        }
        let c = cfg("[sysroot]\nreadonly=1\n[etc]\ntransient=true \n").unwrap();
        assert_eq!(c.sysroot_readonly, Some(true));
        assert!(c.etc_transient);
        assert_eq!(
            cfg("[sysroot]\nreadonly=0\n").unwrap().sysroot_readonly,
            Some(false)
        );
    }

    #[test]
    fn transient_rules() {
        let c = cfg("[root]\ntransient-ro=true\n").unwrap();
        assert!(c.root_transient && c.root_transient_ro);
        let c = cfg("[root]\ntransient=true\n").unwrap();
        assert!(c.root_transient && !c.root_transient_ro);
        let e = cfg("[root]\ntransient=true\ntransient-ro=true\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/usr/lib/ostree/prepare-root.conf:3: [root] transient-ro: Cannot set both root.transient and root.transient-ro"
        );
        // Both set false is fine.
        assert!(cfg("[root]\ntransient=false\ntransient-ro=false\n").is_ok());
    }

    #[test]
    fn keypath_raw_and_default() {
        let c = cfg("[composefs]\nenabled=signed\n").unwrap();
        assert_eq!(c.keypath, PathBuf::from(DEFAULT_KEYPATH));
        let c = cfg("[composefs]\nkeypath=/k#1.pub \n").unwrap();
        assert_eq!(c.keypath, PathBuf::from("/k#1.pub "));
    }

    #[test]
    fn mixed_case_and_padded_groups_are_ignored() {
        let c =
            cfg("[Composefs]\nenabled=yes\n[composefs]\nEnabled=yes\n[ sysroot ]\nreadonly=junk\n")
                .unwrap();
        assert_eq!(c.composefs, ComposefsMode::No);
        assert_eq!(c.sysroot_readonly, None);
    }

    #[test]
    fn derived_table_config_only() {
        // ostree.md 1.4, rows without a karg.
        for (file, mode, verity, signed, ro) in [
            ("", ComposefsMode::No, false, false, false),
            (
                "[composefs]\nenabled=no\n",
                ComposefsMode::No,
                false,
                false,
                false,
            ),
            (
                "[composefs]\nenabled=maybe\n",
                ComposefsMode::Maybe,
                false,
                false,
                false,
            ),
            (
                "[composefs]\nenabled=yes\n",
                ComposefsMode::Yes,
                false,
                false,
                true,
            ),
            (
                "[composefs]\nenabled=verity\n",
                ComposefsMode::Verity,
                true,
                false,
                true,
            ),
            (
                "[composefs]\nenabled=signed\n",
                ComposefsMode::Signed,
                true,
                true,
                true,
            ),
        ] {
            let r = root(file, "ostree=/x").unwrap();
            assert_eq!(
                (
                    r.composefs,
                    r.require_verity,
                    r.is_signed,
                    r.sysroot_readonly
                ),
                (mode, verity, signed, ro),
                "{file:?}"
            );
        }
    }

    #[test]
    fn derived_table_karg_override() {
        // Files that do not require verity: every karg applies, as upstream.
        for file in [
            "",
            "[composefs]\nenabled=maybe\n",
            "[composefs]\nenabled=yes\n",
        ] {
            let karg = |v: &str| {
                root(
                    file,
                    &format!("ostree=/x ostree.prepare-root.composefs={v}"),
                )
                .unwrap()
            };
            let r = karg("signed");
            assert_eq!(
                (r.composefs, r.require_verity, r.is_signed),
                (ComposefsMode::Signed, true, true)
            );
            let r = karg("verity");
            assert_eq!(
                (r.composefs, r.require_verity, r.is_signed),
                (ComposefsMode::Verity, true, false)
            );
            for v in ["0", "no", "false"] {
                let r = karg(v);
                assert_eq!(
                    (r.composefs, r.require_verity, r.is_signed),
                    (ComposefsMode::No, false, false)
                );
                assert!(!r.sysroot_readonly);
            }
            for v in ["1", "yes", "true"] {
                let r = karg(v);
                assert_eq!(
                    (r.composefs, r.require_verity, r.is_signed),
                    (ComposefsMode::Yes, false, false)
                );
                assert!(r.sysroot_readonly);
            }
            let r = karg("maybe");
            assert_eq!(
                (r.composefs, r.require_verity, r.is_signed),
                (ComposefsMode::Maybe, false, false)
            );
            assert!(root(file, "ostree.prepare-root.composefs=sure").is_err());
            assert!(root(file, "ostree.prepare-root.composefs=Yes").is_err());
        }
    }

    /// A karg may keep or raise `verity`/`signed`, never lower it (upstream lets it).
    #[test]
    fn karg_never_lowers_verity_or_signed() {
        let verity = "[composefs]\nenabled=verity\n";
        let signed = "[composefs]\nenabled=signed\n";
        let karg = |file: &str, v: &str| root(file, &format!("ostree=/x {COMPOSEFS_KARG}={v}"));
        let ok = |file: &str, v: &str| {
            let r = karg(file, v).unwrap();
            (r.composefs, r.require_verity, r.is_signed)
        };
        assert_eq!(ok(verity, "verity"), (ComposefsMode::Verity, true, false));
        for v in ["1", "yes", "true"] {
            // Upstream keeps require_verity: `yes` does not lower a file's `verity`.
            assert_eq!(ok(verity, v), (ComposefsMode::Verity, true, false));
        }
        assert_eq!(ok(verity, "signed"), (ComposefsMode::Signed, true, true));
        assert_eq!(ok(signed, "signed"), (ComposefsMode::Signed, true, true));
        assert_eq!(
            root(signed, "ostree=/x").unwrap().composefs,
            ComposefsMode::Signed
        );
        let lowering = [
            (verity, vec!["0", "no", "false", "maybe"]),
            (
                signed,
                vec!["0", "no", "false", "maybe", "1", "yes", "true", "verity"],
            ),
        ];
        for (file, values) in lowering {
            for v in values {
                let e = karg(file, v).unwrap_err();
                assert!(
                    matches!(e, ConfigError::KargDowngrade { .. }),
                    "{file:?} {v}: {e}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("{COMPOSEFS_KARG}={v} refused")),
                    "{msg}"
                );
                assert!(msg.contains("/usr/lib/ostree/prepare-root.conf"), "{msg}");
            }
        }
        // The first karg is the one applied, so the one judged.
        assert!(karg(signed, "no ostree.prepare-root.composefs=signed").is_err());
    }

    #[test]
    fn explicit_sysroot_readonly_wins_over_default() {
        let r = root("[composefs]\nenabled=yes\n[sysroot]\nreadonly=false\n", "").unwrap();
        assert!(!r.sysroot_readonly);
        let r = root(
            "[sysroot]\nreadonly=true\n",
            "ostree.prepare-root.composefs=0",
        )
        .unwrap();
        assert!(r.sysroot_readonly);
    }

    #[test]
    fn first_karg_wins() {
        let r = root(
            "",
            "ostree.prepare-root.composefs=1 ostree.prepare-root.composefs=signed",
        )
        .unwrap();
        assert_eq!(r.composefs, ComposefsMode::Yes);
    }

    #[test]
    fn karg_error_message() {
        let e = root("", "ostree.prepare-root.composefs=sure")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "handling karg ostree.prepare-root.composefs: Invalid tri-state value: sure"
        );
    }

    #[test]
    fn load_etc_replaces_usr_lib() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/ostree")).unwrap();
        std::fs::create_dir_all(d.path().join("usr/lib/ostree")).unwrap();
        assert_eq!(
            PrepareRootConfig::load(d.path()).unwrap(),
            PrepareRootConfig::default()
        );
        std::fs::write(
            d.path().join(CONFIG_PATHS[1]),
            "[composefs]\nenabled=yes\n[sysroot]\nreadonly=true\n",
        )
        .unwrap();
        let c = PrepareRootConfig::load(d.path()).unwrap();
        assert_eq!(
            (c.composefs, c.sysroot_readonly),
            (ComposefsMode::Yes, Some(true))
        );
        std::fs::write(d.path().join(CONFIG_PATHS[0]), "[etc]\ntransient=true\n").unwrap();
        let c = PrepareRootConfig::load(d.path()).unwrap();
        assert_eq!(
            (c.composefs, c.sysroot_readonly, c.etc_transient),
            (ComposefsMode::No, None, true)
        );
        assert_eq!(c.source, Some(d.path().join(CONFIG_PATHS[0])));
        // A broken /usr/lib file is fatal even when /etc exists, as in ostree.
        std::fs::write(d.path().join(CONFIG_PATHS[1]), "[composefs]\nenabled\n").unwrap();
        let e = PrepareRootConfig::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("usr/lib/ostree/prepare-root.conf:2:"), "{e}");
        // A broken /etc file names /etc.
        std::fs::write(d.path().join(CONFIG_PATHS[1]), "").unwrap();
        std::fs::write(
            d.path().join(CONFIG_PATHS[0]),
            "[composefs]\nenabled=sure\n",
        )
        .unwrap();
        let e = PrepareRootConfig::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("etc/ostree/prepare-root.conf:2: [composefs] enabled: invalid value 'sure'"),
            "{e}"
        );
    }
}
