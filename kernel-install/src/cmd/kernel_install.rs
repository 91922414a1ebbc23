//! `ostree-composefs kernel-install`: the kernel-install(8) plugin
//! (`/usr/lib/kernel/install.d/88-ostree-composefs.install` runs it). With
//! `layout=ostree`, `add` deploys a composefs deployment booting the given kernel and
//! exits 77 so that no later plugin writes a non-ostree entry; `remove` drops the
//! deployments booting that kernel (never the booted one) and exits 77. Any other
//! layout, or a machine that is not an ostree sysroot (no `ostree/repo`): nothing, exit 0.
//!
//! Configuration: `ostree/kernel-install.conf` under `/etc`, else `/usr/lib` (the first
//! found wins wholesale, like prepare-root.conf), GKeyFile syntax, group
//! `[kernel-install]`. See ostree-kernel-install.conf(5).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree_boot::config::DEFAULT_KEYPATH;
use ostree_boot::cpio;
use ostree_boot::keyfile::{KeyFile, KeyFileError};
use ostree_boot::layout::{self, Kargs};
use ostree_boot::ostree::objects::Value;
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::SecretKey;

use crate::deploy::vfat::{self, VfatSetting};
use crate::deploy::{self, DeployOptions, KargsSpec, KernelArg, seal};

/// Exit status that makes kernel-install skip the remaining plugins (and still succeed).
pub const EXIT_SKIP_REST: i32 = 77;

/// Commit metadata recording the public half of the transient key a commit was sealed
/// for: it makes the sealed commit unique to that key, so a signature made for one
/// initrd never lands on a commit another initrd boots.
pub const TRANSIENT_KEY_META: &str = "ostree-composefs.transient-key";

/// kernel-install's plugin arguments: `add KVER ENTRY_DIR KERNEL [INITRD...]` or
/// `remove KVER ENTRY_DIR`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// add, remove (anything else is ignored).
    command: String,
    /// KVER ENTRY_DIR [KERNEL [INITRD...]]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub const CONF_GROUP: &str = "kernel-install";
pub const CONF_PATHS: [&str; 2] = [
    "etc/ostree/kernel-install.conf",
    "usr/lib/ostree/kernel-install.conf",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signing {
    None,
    /// A secret key file in `ostree sign`'s format (base64 of seed ‖ public key).
    Key(PathBuf),
    /// A fresh key pair per deployment; the public key goes into the initrd.
    Transient,
}

/// `ostree/kernel-install.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub sysroot: PathBuf,
    pub stateroot: Option<String>,
    pub refspec: Option<String>,
    pub kargs: Option<String>,
    pub keep: Option<usize>,
    pub signing: Signing,
    /// Where the transient public key goes in the initrd (prepare-root's
    /// `composefs.keypath`).
    pub keypath: String,
    /// Stage the deployment for finalization at shutdown (`deploy --stage`).
    pub stage: bool,
    /// The vfat partition systemd-boot reads, mirrored from the sysroot's boot/.
    pub vfat_boot: VfatSetting,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            sysroot: PathBuf::from("/"),
            stateroot: None,
            refspec: None,
            kargs: None,
            keep: None,
            signing: Signing::None,
            keypath: DEFAULT_KEYPATH.into(),
            stage: false,
            vfat_boot: VfatSetting::Auto,
        }
    }
}

const KEYS: [&str; 10] = [
    "sysroot",
    "stateroot",
    "ref",
    "kargs",
    "keep",
    "signing",
    "signing-key",
    "keypath",
    "stage",
    "vfat-boot",
];

impl Config {
    /// Loads the first of `/etc/ostree/kernel-install.conf` and
    /// `/usr/lib/ostree/kernel-install.conf` under `root`.
    pub fn load(root: &Path) -> Result<Config, KeyFileError> {
        match KeyFile::load_first(root, &CONF_PATHS)? {
            None => Ok(Config::default()),
            Some(kf) => Config::from_keyfile(&kf),
        }
    }

    pub fn from_keyfile(kf: &KeyFile) -> Result<Config, KeyFileError> {
        let mut c = Config {
            source: Some(kf.source().to_path_buf()),
            ..Config::default()
        };
        for g in kf.groups() {
            if g != CONF_GROUP {
                return Err(KeyFileError::Parse {
                    path: kf.source().to_path_buf(),
                    line: 0,
                    message: format!("unknown group [{g}] (expected [{CONF_GROUP}])"),
                });
            }
        }
        for k in kf.keys(CONF_GROUP) {
            if !KEYS.contains(&k) {
                return Err(KeyFileError::Parse {
                    path: kf.source().to_path_buf(),
                    line: kf.line_of(CONF_GROUP, k).unwrap_or(0),
                    message: format!(
                        "[{CONF_GROUP}] unknown key '{k}' (known: {})",
                        KEYS.join(", ")
                    ),
                });
            }
        }
        let get = |k: &str| {
            kf.get(CONF_GROUP, k)
                .map(|v| v.trim_end().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("sysroot") {
            if !v.starts_with('/') {
                return Err(kf.invalid_value(CONF_GROUP, "sysroot", "an absolute path"));
            }
            c.sysroot = PathBuf::from(v);
        }
        if let Some(v) = get("stateroot") {
            if layout::validate_stateroot(&v).is_err() {
                return Err(kf.invalid_value(CONF_GROUP, "stateroot", "a stateroot name (no '/')"));
            }
            c.stateroot = Some(v);
        }
        c.refspec = get("ref");
        c.kargs = get("kargs");
        if let Some(v) = get("keep") {
            match v.parse::<usize>() {
                Ok(n) if n >= 1 => c.keep = Some(n),
                _ => {
                    return Err(kf.invalid_value(
                        CONF_GROUP,
                        "keep",
                        "a whole number of at least 1",
                    ));
                }
            }
        }
        c.signing = match get("signing").as_deref() {
            None | Some("none") => Signing::None,
            Some("transient") => Signing::Transient,
            Some("key") => match get("signing-key") {
                Some(p) if p.starts_with('/') => Signing::Key(PathBuf::from(p)),
                Some(_) => {
                    return Err(kf.invalid_value(CONF_GROUP, "signing-key", "an absolute path"));
                }
                None => {
                    return Err(KeyFileError::Parse {
                        path: kf.source().to_path_buf(),
                        line: kf.line_of(CONF_GROUP, "signing").unwrap_or(0),
                        message: format!(
                            "[{CONF_GROUP}] signing=key needs signing-key=<secret key file>"
                        ),
                    });
                }
            },
            Some(_) => {
                return Err(kf.invalid_value(CONF_GROUP, "signing", "none, key or transient"));
            }
        };
        if let Some(v) = get("keypath") {
            if !v.starts_with('/') || v.split('/').any(|c| c == "..") {
                return Err(kf.invalid_value(
                    CONF_GROUP,
                    "keypath",
                    "an absolute path without '..'",
                ));
            }
            c.keypath = v;
        }
        c.stage = kf.get_bool(CONF_GROUP, "stage")?.unwrap_or(false);
        if let Some(v) = get("vfat-boot") {
            c.vfat_boot = VfatSetting::parse(&v).ok_or_else(|| {
                kf.invalid_value(CONF_GROUP, "vfat-boot", "auto, none or an absolute path")
            })?;
        }
        Ok(c)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The kernel command line kernel-install defines: `$KERNEL_INSTALL_CONF_ROOT/cmdline`
/// when that is set, else `/etc/kernel/cmdline`, else `/usr/lib/kernel/cmdline`;
/// comment lines dropped, words joined by one space.
fn kernel_install_cmdline() -> Result<Option<Kargs>> {
    let candidates: Vec<PathBuf> = match env("KERNEL_INSTALL_CONF_ROOT") {
        Some(r) => vec![PathBuf::from(r).join("cmdline")],
        None => vec![
            PathBuf::from("/etc/kernel/cmdline"),
            PathBuf::from("/usr/lib/kernel/cmdline"),
        ],
    };
    for p in candidates {
        match fs::read_to_string(&p) {
            Ok(t) => {
                let words: Vec<&str> = t
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .flat_map(str::split_whitespace)
                    .collect();
                return Ok(Some(Kargs::parse(&words.join(" "))));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
    Ok(None)
}

/// The vfat mirror for this run: the configured partition, else kernel-install's
/// `$KERNEL_INSTALL_BOOT_ROOT` when it is vfat; with the tries kernel-install defines.
fn mirror(cfg: &Config, verbose: bool) -> Result<Option<vfat::Mirror>> {
    let boot_root = env("KERNEL_INSTALL_BOOT_ROOT").map(PathBuf::from);
    let Some(root) = vfat::resolve(&cfg.vfat_boot, &cfg.sysroot, boot_root.as_deref())? else {
        return Ok(None);
    };
    let tries = vfat::read_tries()?;
    say(
        verbose,
        &format!(
            "systemd-boot mirror on {}{}",
            root.display(),
            tries.map_or(String::new(), |t| format!(", {t} boot tries"))
        ),
    );
    Ok(Some(vfat::Mirror { root, tries }))
}

/// kernel-install makes `$BOOT_ROOT/$ENTRY_TOKEN/$KVER` before the plugins for every
/// layout but `bls`, and never removes it. On the mirror's partition that would leave
/// an empty directory per kernel and make kernel-install's layout detection later
/// take the partition for a `bls` one (it looks for `$BOOT_ROOT/$ENTRY_TOKEN`):
/// removed when empty, with its parent when that empties too.
fn drop_entry_dir(entry_dir: Option<&String>, mirror: Option<&vfat::Mirror>) {
    let (Some(dir), Some(m)) = (entry_dir, mirror) else {
        return;
    };
    let dir = Path::new(dir);
    if !dir.starts_with(&m.root) || dir == m.root {
        return;
    }
    if fs::remove_dir(dir).is_ok()
        && let Some(parent) = dir.parent().filter(|p| *p != m.root)
    {
        let _ = fs::remove_dir(parent);
    }
}

fn say(verbose: bool, msg: &str) {
    if verbose {
        println!("ostree-composefs: {msg}");
    }
}

/// The initrd to boot: the INITRD arguments, else the `initrd*` files an initrd
/// generator left in the staging area. Several are concatenated (the kernel unpacks
/// them in order).
fn pick_initrd(args: &[String]) -> Result<Option<(Vec<u8>, String)>> {
    let mut paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    if paths.is_empty()
        && let Some(stage) = env("KERNEL_INSTALL_STAGING_AREA")
    {
        let stage = PathBuf::from(stage);
        if let Ok(rd) = fs::read_dir(&stage) {
            for e in rd {
                let e = e.with_context(|| format!("reading {}", stage.display()))?;
                if e.file_name().to_string_lossy().starts_with("initrd") {
                    paths.push(e.path());
                }
            }
        }
        paths.sort();
    }
    if paths.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for p in &paths {
        let b = fs::read(p).with_context(|| format!("initrd {} cannot be read", p.display()))?;
        out = if out.is_empty() {
            b
        } else {
            cpio::append(&out, &b)
        };
    }
    let names = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some((out, names)))
}

/// A file for the initrd to install, in a private directory (mkdtemp: created
/// exclusively, mode 0700, random name) in the staging area or the temp directory, so
/// that nothing another user pre-created under a predictable name is used or blocks
/// the install. The directory goes when the returned guard drops; the deploy links or
/// copies the file into /boot before that.
fn write_initrd(data: &[u8]) -> Result<(tempfile::TempDir, PathBuf)> {
    let base = env("KERNEL_INSTALL_STAGING_AREA")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&base).with_context(|| format!("mkdir {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".ostree-composefs-initrd.")
        .tempdir_in(&base)
        .with_context(|| format!("making a private directory in {}", base.display()))?;
    let path = dir.path().join("initrd");
    deploy::fsutil::write_atomic(&path, data, 0o644)?;
    Ok((dir, path))
}

fn add(rest: &[String], verbose: bool) -> Result<i32> {
    let [kver, entry_dir, kernel, initrds @ ..] = rest else {
        bail!(
            "usage: add KVER ENTRY_DIR KERNEL [INITRD...] (got {} arguments)",
            rest.len()
        );
    };
    let conf_root = env("OSTREE_KERNEL_INSTALL_CONF_ROOT").unwrap_or_else(|| "/".into());
    let cfg = Config::load(Path::new(&conf_root))?;
    let sysroot = cfg.sysroot.clone();
    if not_ours(&sysroot, verbose) {
        return Ok(0);
    }
    let kernel = PathBuf::from(kernel);
    if !kernel.is_file() {
        bail!("kernel image {} does not exist", kernel.display());
    }
    let mirror = mirror(&cfg, verbose)?;
    if cfg.stage
        && let Some(m) = &mirror
    {
        // Finalization at shutdown does not write the mirror: refused rather than
        // leaving systemd-boot with entries that miss the staged deployment.
        bail!(
            "stage=true cannot be used with the systemd-boot mirror on {} (vfat-boot=): set stage=false, or vfat-boot=none",
            m.root.display()
        );
    }
    // The lock first, and the state read once under it: the ref, the merge deployment
    // and the sealed commit are decided on the configuration the deploy then changes,
    // and no other writer of the sysroot runs in between.
    let change = deploy::begin_change_with(&sysroot, mirror.as_ref())?;
    let booted = change.booted.as_ref();
    let sr = deploy::resolve_stateroot(&sysroot, cfg.stateroot.as_deref(), booted)?;
    let merge = deploy::merge_deployment(&change.state, &sr, booted).cloned();

    let refspec = match &cfg.refspec {
        Some(r) => r.clone(),
        None => {
            let d = merge.as_ref().context(
                "no ref to deploy: no deployment to take it from; set ref= in kernel-install.conf",
            )?;
            let p = sysroot.join(d.origin_path());
            let t = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            layout::origin_refspec(&t, &p)?
                .with_context(|| format!("{}: no [origin] refspec", p.display()))?
        }
    };
    let repo = Repo::open(sysroot.join("ostree/repo")).context("opening the repository")?;
    let csum = repo.resolve_rev(&refspec).with_context(|| {
        format!(
            "unknown ref '{refspec}' in {}",
            sysroot.join("ostree/repo").display()
        )
    })?;

    let kargs = match (&cfg.kargs, kernel_install_cmdline()?) {
        (Some(k), _) => KargsSpec::Exact(Kargs::parse(k)),
        (None, Some(k)) => KargsSpec::Exact(k),
        // The booted (or default) deployment's arguments, as ostree admin deploy.
        (None, None) => KargsSpec::Merge(Vec::new()),
    };

    let mut initrd = pick_initrd(initrds)?;
    if let Some((_, names)) = &initrd {
        say(verbose, &format!("initrd: {names}"));
    }
    let deploy_csum = match &cfg.signing {
        Signing::None => csum,
        Signing::Key(path) => {
            let sk = SecretKey::load_file(path).context("loading the signing key")?;
            let c = seal::with_composefs_digest(&repo, &csum, None)?;
            seal::sign_commit(&repo, &c, &sk)?;
            say(
                verbose,
                &format!("signed {} with {}", hex::encode(c), path.display()),
            );
            c
        }
        Signing::Transient => {
            let Some((data, _)) = initrd.take() else {
                bail!(
                    "signing=transient needs an initrd to carry the public key: no INITRD argument and no initrd* in KERNEL_INSTALL_STAGING_AREA"
                );
            };
            let sk = SecretKey::generate()?;
            let pk = sk.public_key();
            let c = seal::with_composefs_digest(
                &repo,
                &csum,
                Some((TRANSIENT_KEY_META, Value::bytes(&pk.to_bytes()))),
            )?;
            seal::sign_commit(&repo, &c, &sk)?;
            // The secret half ends here: dropped (and zeroized) before anything else.
            drop(sk);
            let member = cpio::file_with_parents(
                &cfg.keypath,
                0o644,
                format!("{}\n", pk.to_base64()).into_bytes(),
            )?;
            initrd = Some((
                cpio::append(&data, &cpio::write(&member)?),
                format!("with {}", cfg.keypath),
            ));
            say(
                verbose,
                &format!(
                    "sealed {} with a transient key; public key at {} in the initrd",
                    hex::encode(c),
                    cfg.keypath
                ),
            );
            c
        }
    };

    let tmp = match &initrd {
        Some((data, _)) => Some(write_initrd(data)?),
        None => None,
    };
    let opts = DeployOptions {
        sysroot: sysroot.clone(),
        stateroot: Some(sr),
        rev: hex::encode(deploy_csum),
        kargs,
        keep: cfg.keep,
        kernel: Some(KernelArg {
            kernel,
            initrd: tmp.as_ref().map(|(_, p)| p.clone()),
            kver: Some(kver.clone()),
        }),
        origin_refspec: Some(refspec),
        naming: layout::EntryNaming::from_env(),
        vfat: mirror,
    };
    if cfg.stage {
        // The kernel and initrd go to /boot now (they are not in the tree); the /etc
        // merge and the entries at shutdown.
        let r = deploy::staged::stage_in(&opts, false, change)?;
        drop(tmp);
        say(
            verbose,
            &format!(
                "staged {}/{} booting {kver} (finalized at shutdown)",
                r.target.osname,
                r.target.name()
            ),
        );
        return Ok(EXIT_SKIP_REST);
    }
    let r = deploy::deploy_in(&opts, change)?;
    drop(tmp);
    drop_entry_dir(Some(entry_dir), opts.vfat.as_ref());
    say(
        verbose,
        &format!(
            "deployed {}/{}.{} booting {kver}",
            r.stateroot, r.csum, r.deployserial
        ),
    );
    Ok(EXIT_SKIP_REST)
}

fn remove(rest: &[String], verbose: bool) -> Result<i32> {
    let Some(kver) = rest.first() else {
        bail!("usage: remove KVER [ENTRY_DIR]")
    };
    let conf_root = env("OSTREE_KERNEL_INSTALL_CONF_ROOT").unwrap_or_else(|| "/".into());
    let cfg = Config::load(Path::new(&conf_root))?;
    if not_ours(&cfg.sysroot, verbose) {
        return Ok(0);
    }
    let mirror = mirror(&cfg, verbose)?;
    // As for add: the state is read once, under the lock the removal holds.
    let change = deploy::begin_change_with(&cfg.sysroot, mirror.as_ref())?;
    let sr = deploy::resolve_stateroot(
        &cfg.sysroot,
        cfg.stateroot.as_deref(),
        change.booted.as_ref(),
    )?;
    let gone = deploy::undeploy_kver(
        change,
        &sr,
        kver,
        layout::EntryNaming::from_env(),
        mirror.as_ref(),
    )?;
    drop_entry_dir(rest.get(1), mirror.as_ref());
    for d in &gone {
        say(verbose, &format!("removed {}/{}", d.stateroot, d.name()));
    }
    if gone.is_empty() {
        say(
            verbose,
            &format!("no deployment of {sr} boots {kver} (the booted one is kept)"),
        );
    }
    Ok(EXIT_SKIP_REST)
}

/// `layout=ostree` on a machine that is not an ostree sysroot (no `ostree/repo`): a
/// container build, where rpm-ostree's `05-rpmostree.install` owns that layout. Not ours
/// to act on, and not an error: exit 0 and let the other plugins run.
fn not_ours(sysroot: &Path, verbose: bool) -> bool {
    if sysroot.join("ostree/repo").is_dir() {
        return false;
    }
    say(
        verbose,
        &format!(
            "{} is not an ostree sysroot (no ostree/repo): nothing to do",
            sysroot.display()
        ),
    );
    true
}

pub fn run(a: Args) -> Result<i32> {
    let layout = env("KERNEL_INSTALL_LAYOUT").unwrap_or_default();
    let verbose = env("KERNEL_INSTALL_VERBOSE").as_deref() == Some("1");
    if layout != "ostree" {
        say(
            verbose,
            &format!("layout is '{layout}', not 'ostree': nothing to do"),
        );
        return Ok(0);
    }
    match a.command.as_str() {
        "add" => add(&a.rest, verbose),
        "remove" => remove(&a.rest, verbose),
        other => {
            say(verbose, &format!("'{other}': nothing to do"));
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Result<Config, KeyFileError> {
        Config::from_keyfile(
            &KeyFile::parse(text, Path::new("/etc/ostree/kernel-install.conf")).unwrap(),
        )
    }

    #[test]
    fn config_values() {
        let c = conf("[kernel-install]\nsysroot=/sysroot\nstateroot=debian\nref=os/stable\nkargs=root=/dev/vda2 rw\nkeep=2\nsigning=transient\nkeypath=/etc/ostree/k.pub\n").unwrap();
        assert_eq!(c.sysroot, PathBuf::from("/sysroot"));
        assert_eq!(c.stateroot.as_deref(), Some("debian"));
        assert_eq!(c.refspec.as_deref(), Some("os/stable"));
        assert_eq!(c.kargs.as_deref(), Some("root=/dev/vda2 rw"));
        assert_eq!(c.keep, Some(2));
        assert_eq!(c.signing, Signing::Transient);
        assert_eq!(c.keypath, "/etc/ostree/k.pub");
        assert_eq!(conf("").unwrap().signing, Signing::None);
        assert!(!conf("").unwrap().stage);
        assert!(conf("[kernel-install]\nstage=true\n").unwrap().stage);
        assert_eq!(conf("").unwrap().vfat_boot, VfatSetting::Auto);
        assert_eq!(
            conf("[kernel-install]\nvfat-boot=none\n")
                .unwrap()
                .vfat_boot,
            VfatSetting::None
        );
        assert_eq!(
            conf("[kernel-install]\nvfat-boot=/efi\n")
                .unwrap()
                .vfat_boot,
            VfatSetting::Path("/efi".into())
        );
        let k = conf("[kernel-install]\nsigning=key\nsigning-key=/etc/ostree/sk\n").unwrap();
        assert_eq!(k.signing, Signing::Key("/etc/ostree/sk".into()));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[kernel-install]\nkeep=0\n", "keep"),
            ("[kernel-install]\nkeep=two\n", "keep"),
            ("[kernel-install]\nsigning=maybe\n", "signing"),
            ("[kernel-install]\nsigning=key\n", "signing-key"),
            (
                "[kernel-install]\nsigning=key\nsigning-key=rel\n",
                "signing-key",
            ),
            ("[kernel-install]\nsysroot=relative\n", "sysroot"),
            ("[kernel-install]\nstateroot=a/b\n", "stateroot"),
            ("[kernel-install]\nkeypath=/a/../b\n", "keypath"),
            ("[kernel-install]\nstage=yes\n", "stage"),
            ("[kernel-install]\nvfat-boot=efi\n", "vfat-boot"),
            ("[kernel-install]\nvfat-boot=yes\n", "vfat-boot"),
            ("[kernel-install]\nkep=1\n", "kep"),
            ("[other]\nkeep=1\n", "[other]"),
        ] {
            let e = conf(text).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("kernel-install.conf"),
                "{text:?}: {e}"
            );
        }
    }
}
