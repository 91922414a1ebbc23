//! ostree-prepare-root end to end, as root in a private mount namespace, on a sysroot
//! made by the real `ostree` CLI: the mount table and `/run/ostree-booted` it leaves,
//! its failures, and `--check`'s agreement with each run.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::Sysroot;
use ostree_boot::ostree::booted::OstreeBooted;

#[derive(Debug, Clone)]
struct Mount {
    target: String,
    source: String,
    fstype: String,
    options: String,
}

#[derive(Debug)]
struct RunOut {
    code: i32,
    stderr: String,
    mounts: Vec<Mount>,
    booted: Option<OstreeBooted>,
    modes: String,
    lower_entries: String,
    volatile_root: String,
    /// Wall time of the prepare-root process (printed for information, never asserted).
    elapsed_us: u64,
}

impl RunOut {
    fn mount(&self, target: &Path) -> Option<&Mount> {
        let t = target.to_string_lossy();
        // The last mount on a path is the visible one.
        self.mounts.iter().rev().find(|m| m.target == t)
    }
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "prepare-root failed: {}", self.stderr);
        self
    }
    fn opts(&self, target: &Path) -> Vec<String> {
        self.mount(target)
            .unwrap_or_else(|| {
                panic!(
                    "{} is not a mount point: {:#?}",
                    target.display(),
                    self.mounts
                )
            })
            .options
            .split(',')
            .map(str::to_string)
            .collect()
    }
}

/// The configuration prepare-root finds in the "initrd" and the extra kernel arguments.
#[derive(Default)]
struct Setup<'a> {
    usr_conf: Option<&'a str>,
    etc_conf: Option<&'a str>,
    /// Public key file content, written to the default keypath.
    key: Option<String>,
    kargs: &'a str,
    /// Replaces the `ostree=` value.
    target: Option<&'a str>,
}

fn unescape(s: &str) -> String {
    s.replace("\\x20", " ").replace("\\x5c", "\\")
}

fn run_prepare_root(sr: &Sysroot, setup: &Setup) -> RunOut {
    let out = tempfile::tempdir_in("/var/tmp").unwrap();
    let o = out.path().display();
    let mut pre = String::new();
    for (path, content) in [
        (
            "/usr/lib/ostree/prepare-root.conf",
            setup.usr_conf.map(str::to_string),
        ),
        (
            "/etc/ostree/prepare-root.conf",
            setup.etc_conf.map(str::to_string),
        ),
        ("/etc/ostree/initramfs-root-binding.key", setup.key.clone()),
    ] {
        if let Some(c) = content {
            pre.push_str(&format!("cat > {path} <<'__EOF__'\n{c}\n__EOF__\n"));
        }
    }
    let cmdline = format!(
        "root=UUID=cafebabe ostree={} {}",
        setup.target.unwrap_or(&sr.karg),
        setup.kargs
    );
    let script = format!(
        r#"t0=$(date +%s%N); {bin} {sr} '{cmdline}' > {o}/stdout 2> {o}/stderr; echo $? > {o}/rc; t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000 )) > {o}/elapsed_us
findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS > {o}/mounts
cp /run/ostree-booted {o}/booted 2>/dev/null
stat -c %a /run/ostree /run/ostree/.private > {o}/modes 2>/dev/null
stat -c %a /run/ostree/.private/root/upper /run/ostree/.private/root/work /run/ostree/transient-etc.* /run/ostree/transient-etc.*/upper >> {o}/modes 2>/dev/null
ls -A /run/ostree/.private/cfsroot-lower 2>&1 | wc -l > {o}/lower
readlink /run/systemd/volatile-root > {o}/volatile 2>/dev/null
true"#,
        bin = common::prepare_root_bin(),
        sr = sr.path.display(),
    );
    let ns = common::in_namespace(&sr.path, &pre, &script);
    assert!(
        ns.status.success(),
        "namespace setup failed: {}",
        common::stderr(&ns)
    );
    let read = |n: &str| fs::read_to_string(out.path().join(n)).unwrap_or_default();
    let mounts = read("mounts")
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            Some(Mount {
                target: unescape(it.next()?),
                source: unescape(it.next()?),
                fstype: it.next()?.to_string(),
                options: it.next()?.to_string(),
            })
        })
        .collect();
    let booted = fs::read(out.path().join("booted"))
        .ok()
        .map(|b| OstreeBooted::from_bytes(&b).unwrap());
    RunOut {
        code: read("rc").trim().parse().unwrap_or(-1),
        stderr: read("stderr"),
        mounts,
        booted,
        modes: read("modes"),
        lower_entries: read("lower").trim().to_string(),
        volatile_root: read("volatile").trim().to_string(),
        elapsed_us: read("elapsed_us").trim().parse().unwrap_or(0),
    }
}

/// `--check` with the same configuration, outside any namespace (it mounts nothing).
fn run_check(sr: &Sysroot, setup: &Setup) -> (i32, String) {
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    for (path, content) in [
        (
            "usr/lib/ostree/prepare-root.conf",
            setup.usr_conf.map(str::to_string),
        ),
        (
            "etc/ostree/prepare-root.conf",
            setup.etc_conf.map(str::to_string),
        ),
        ("etc/ostree/initramfs-root-binding.key", setup.key.clone()),
    ] {
        if let Some(c) = content {
            let p = root.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{c}\n")).unwrap();
        }
    }
    let cmdline = format!(
        "root=UUID=cafebabe ostree={} {}",
        setup.target.unwrap_or(&sr.karg),
        setup.kargs
    );
    let o = Command::new(common::prepare_root_bin())
        .arg("--check")
        .arg("--sysroot")
        .arg(&sr.path)
        .arg("--config-root")
        .arg(root.path())
        .arg("--cmdline")
        .arg(&cmdline)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", common::stdout(&o), common::stderr(&o)),
    )
}

/// Runs prepare-root and `--check` and asserts they agree on whether it boots.
fn run_both(sr: &Sysroot, setup: &Setup) -> RunOut {
    let r = run_prepare_root(sr, setup);
    let (code, text) = run_check(sr, setup);
    assert_eq!(
        code == 0,
        r.code == 0,
        "--check (exit {code}) disagrees with the run (exit {}):\n--check said:\n{text}\nthe run said:\n{}",
        r.code,
        r.stderr
    );
    r
}

fn fixture(with_cfs: bool) -> Option<(std::sync::MutexGuard<'static, ()>, Sysroot)> {
    if !common::privileged() {
        return None;
    }
    let g = common::serial();
    let sr = Sysroot::build(&[]);
    if with_cfs {
        sr.write_cfs();
    }
    Some((g, sr))
}

const YES: &str = "[composefs]\nenabled=yes";

#[test]
fn composefs_yes() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(YES),
            ..Default::default()
        },
    );
    r.ok();
    let s = &sr.path;
    let root = r.mount(s).unwrap();
    assert_eq!(
        (root.source.as_str(), root.fstype.as_str()),
        ("composefs", "overlay"),
        "{root:?}"
    );
    let o = r.opts(s);
    assert!(
        o.contains(&"ro".into())
            && o.contains(&"metacopy=on".into())
            && o.contains(&"redirect_dir=on".into()),
        "{o:?}"
    );
    assert!(
        o.iter()
            .any(|x| x == "lowerdir+=/run/ostree/.private/cfsroot-lower"),
        "{o:?}"
    );
    assert!(
        o.iter()
            .any(|x| x == &format!("datadir+={}/ostree/repo/objects", s.display())),
        "{o:?}"
    );
    // /etc: the deployment's own, writable.
    assert!(r.opts(&s.join("etc")).contains(&"rw".into()));
    assert!(
        r.mount(&s.join("etc"))
            .unwrap()
            .source
            .ends_with(&format!("{}/etc]", sr.deploy_rel))
    );
    // No /usr mount with composefs; /boot is never mounted by prepare-root.
    assert!(r.mount(&s.join("usr")).is_none());
    assert!(r.mount(&s.join("boot")).is_none());
    // The physical root at /sysroot, read-only (composefs makes sysroot.readonly default
    // true), with the stateroot's /var bound writable on itself.
    assert!(r.opts(&s.join("sysroot")).contains(&"ro".into()));
    assert!(
        r.opts(&s.join("sysroot/ostree/deploy/default/var"))
            .contains(&"rw".into())
    );
    let b = r.booted.as_ref().unwrap();
    assert_eq!(b.composefs, Some(true));
    assert_eq!(b.composefs_verity, Some(false));
    assert_eq!(b.composefs_signed, None);
    assert!(b.sysroot_ro && !b.root_transient && !b.root_transient_ro);
    assert_eq!(b.transient_etc, None);
    let st = fs::symlink_metadata(&sr.deploy).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(b.backing_root_device_inode, (st.dev(), st.ino()));
    assert_eq!(r.modes, "755\n0\n");
    assert_eq!(r.lower_entries, "0", "cfsroot-lower is left empty");
    let dev = st.dev();
    assert_eq!(
        r.volatile_root,
        format!(
            "/dev/block/{}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        )
    );
    assert!(
        r.stderr.contains("Resolved OSTree target to: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("composefs: mounted successfully (verity=false)"),
        "{}",
        r.stderr
    );
    eprintln!("prepare-root (composefs yes) took {} µs", r.elapsed_us);
    assert!(
        r.stderr
            .contains("composefs: kernel features: new mount API: yes; EROFS: file-backed"),
        "{}",
        r.stderr
    );
}

#[test]
fn composefs_maybe_with_and_without_image() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let maybe = Setup {
        usr_conf: Some("[composefs]\nenabled=maybe"),
        ..Default::default()
    };
    let r = run_both(&sr, &maybe);
    r.ok();
    assert_eq!(r.mount(&sr.path).unwrap().source, "composefs");
    // maybe does not make the sysroot read-only by default.
    assert!(!r.booted.as_ref().unwrap().sysroot_ro);
    assert!(r.opts(&sr.path.join("sysroot")).contains(&"rw".into()));

    sr.remove_cfs();
    let r = run_both(&sr, &maybe);
    r.ok();
    assert!(
        r.stderr.contains("composefs: No image present"),
        "{}",
        r.stderr
    );
    let root = r.mount(&sr.path).unwrap();
    assert_ne!(root.fstype, "overlay");
    assert!(
        root.source.ends_with(&format!("{}]", sr.deploy_rel)),
        "{root:?}"
    );
    let b = r.booted.unwrap();
    assert_eq!((b.composefs, b.composefs_verity), (None, None));
    assert_eq!(r.volatile_root, "", "no volatile-root without composefs");
}

#[test]
fn legacy_no_composefs() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(&sr, &Setup::default());
    r.ok();
    let s = &sr.path;
    assert!(
        r.mount(s)
            .unwrap()
            .source
            .ends_with(&format!("{}]", sr.deploy_rel))
    );
    assert!(
        r.opts(&s.join("usr")).contains(&"ro".into()),
        "legacy /usr is a read-only bind"
    );
    assert!(
        r.mount(&s.join("etc")).is_none(),
        "/etc is left alone when nothing is read-only"
    );
    assert!(r.opts(&s.join("sysroot")).contains(&"rw".into()));
    assert!(
        r.mount(&s.join("sysroot/ostree/deploy/default/var"))
            .is_none()
    );
    let b = r.booted.unwrap();
    assert_eq!((b.composefs, b.sysroot_ro), (None, false));
    assert!(r.stderr.contains("Using legacy ostree bind mount for /"));
}

#[test]
fn sysroot_readonly_true_and_false() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some("[sysroot]\nreadonly=true"),
            ..Default::default()
        },
    );
    r.ok();
    let s = &sr.path;
    assert!(r.opts(&s.join("sysroot")).contains(&"ro".into()));
    assert!(
        r.opts(&s.join("etc")).contains(&"rw".into()),
        "/etc bound writable under a read-only sysroot"
    );
    assert!(
        r.opts(&s.join("sysroot/ostree/deploy/default/var"))
            .contains(&"rw".into())
    );
    assert!(r.booted.unwrap().sysroot_ro);

    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(&format!("{YES}\n[sysroot]\nreadonly=false")),
            ..Default::default()
        },
    );
    r.ok();
    assert_eq!(r.mount(s).unwrap().source, "composefs");
    assert!(r.opts(&s.join("sysroot")).contains(&"rw".into()));
    assert!(
        r.mount(&s.join("sysroot/ostree/deploy/default/var"))
            .is_none()
    );
    assert!(!r.booted.unwrap().sysroot_ro);
}

#[test]
fn etc_transient() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(&format!("{YES}\n[etc]\ntransient=true")),
            ..Default::default()
        },
    );
    r.ok();
    let etc = r.mount(&sr.path.join("etc")).unwrap();
    assert_eq!(etc.fstype, "overlay");
    assert!(
        etc.options.contains("upperdir=/run/ostree/transient-etc."),
        "{etc:?}"
    );
    assert_eq!(
        r.modes, "755\n0\n700\n755\n",
        "/run/ostree, .private, transient-etc.X, its upper"
    );
    let b = r.booted.unwrap();
    let t = b.transient_etc.unwrap();
    assert!(
        t.starts_with("/run/ostree/transient-etc.")
            && t.len() == "/run/ostree/transient-etc.".len() + 6,
        "{t}"
    );
}

#[test]
fn root_transient_and_transient_ro() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(&format!("{YES}\n[root]\ntransient=true")),
            ..Default::default()
        },
    );
    r.ok();
    let o = r.opts(&sr.path);
    assert!(o.contains(&"rw".into()), "{o:?}");
    assert!(
        o.iter()
            .any(|x| x == "upperdir=/run/ostree/.private/root/upper"),
        "{o:?}"
    );
    assert!(
        o.iter()
            .any(|x| x == "workdir=/run/ostree/.private/root/work"),
        "{o:?}"
    );
    let b = r.booted.unwrap();
    assert!(b.root_transient && !b.root_transient_ro);
    assert_eq!(
        r.modes, "755\n0\n755\n700\n",
        "/run/ostree, .private, root/upper, root/work"
    );

    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(&format!("{YES}\n[root]\ntransient-ro=true")),
            ..Default::default()
        },
    );
    r.ok();
    let o = r.opts(&sr.path);
    assert!(
        o.contains(&"ro".into())
            && o.iter()
                .any(|x| x == "upperdir=/run/ostree/.private/root/upper"),
        "{o:?}"
    );
    let b = r.booted.unwrap();
    assert!(b.root_transient && b.root_transient_ro);

    // Without composefs a transient root is refused.
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some("[root]\ntransient=true"),
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Must enable composefs with root.transient"),
        "{}",
        r.stderr
    );
}

#[test]
fn karg_overrides_config_both_ways() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(YES),
            kargs: "ostree.prepare-root.composefs=0",
            ..Default::default()
        },
    );
    r.ok();
    assert_ne!(r.mount(&sr.path).unwrap().fstype, "overlay");
    assert_eq!(r.booted.unwrap().composefs, None);

    let r = run_both(
        &sr,
        &Setup {
            kargs: "ostree.prepare-root.composefs=1",
            ..Default::default()
        },
    );
    r.ok();
    assert_eq!(r.mount(&sr.path).unwrap().source, "composefs");
    assert_eq!(r.booted.unwrap().composefs, Some(true));
}

/// ostree's tests-unit-container/test-prepare-root.sh, on our sysroot.
#[test]
fn upstream_test_prepare_root_sh() {
    let Some((_g, sr)) = fixture(false) else {
        return;
    };
    let s = &sr.path;
    let base = "ostree.prepare-root.composefs=0";
    // 1. The image's config has readonly=true.
    let conf = "[sysroot]\nreadonly = true";
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(conf),
            kargs: base,
            ..Default::default()
        },
    );
    r.ok();
    assert!(r.booted.is_some());
    assert!(r.mount(&s.join("etc")).is_some() && r.mount(&s.join("usr")).is_some());
    assert!(
        !r.mount(&s.join("etc"))
            .unwrap()
            .options
            .contains("upperdir=/run/ostree/transient-etc")
    );
    assert!(r.mount(&s.join("boot")).is_none());
    assert!(r.opts(&s.join("sysroot")).contains(&"ro".into()));
    // 2. No prepare-root.conf.
    let r = run_both(
        &sr,
        &Setup {
            kargs: base,
            ..Default::default()
        },
    );
    r.ok();
    assert!(r.opts(&s.join("sysroot")).contains(&"rw".into()));
    // 3. etc.transient appended.
    let conf3 = format!("{conf}\n[etc]\ntransient = true");
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(&conf3),
            kargs: base,
            ..Default::default()
        },
    );
    r.ok();
    assert!(
        r.mount(&s.join("etc"))
            .unwrap()
            .options
            .contains("upperdir=/run/ostree/transient-etc")
    );
    // 4. boot/loader is a symlink (it is, ostree admin deploy made it): /boot still not mounted.
    assert!(
        fs::symlink_metadata(s.join("boot/loader"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(r.mount(&s.join("boot")).is_none());
}

#[test]
fn failure_missing_image_with_yes() {
    let Some((_g, sr)) = fixture(false) else {
        return;
    };
    for mode in ["yes", "verity", "signed"] {
        let key = Some(sr.public_b64.clone());
        let r = run_both(
            &sr,
            &Setup {
                usr_conf: Some(&format!("[composefs]\nenabled={mode}")),
                key,
                ..Default::default()
            },
        );
        assert_eq!(r.code, 1, "{mode}");
        if mode != "signed" {
            let want = format!("composefs is required (composefs.enabled={mode}) but deployment");
            assert!(r.stderr.contains(&want), "{mode}: {}", r.stderr);
            assert!(
                r.stderr.contains("has no .ostree.cfs"),
                "{mode}: {}",
                r.stderr
            );
        }
        assert!(r.booted.is_none(), "nothing written on failure");
    }
}

#[test]
fn failure_bad_config() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some("[composefs]\nenabled=bogus"),
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("prepare-root.conf") && r.stderr.contains("enabled"),
        "{}",
        r.stderr
    );
    let r = run_both(
        &sr,
        &Setup {
            etc_conf: Some("[sysroot]\nreadonly=yes"),
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("/etc/ostree/prepare-root.conf") && r.stderr.contains("readonly"),
        "{}",
        r.stderr
    );
    assert!(
        r.mounts
            .iter()
            .all(|m| m.target != sr.path.join("sysroot").to_string_lossy())
    );
}

#[test]
fn failure_target_escaping_the_sysroot() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    std::os::unix::fs::symlink("/etc", sr.path.join("ostree/evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", sr.path.join("ostree/evil2")).unwrap();
    for t in [
        "/ostree/evil",
        "/ostree/evil2",
        "/../../etc",
        "/ostree/nonexistent",
    ] {
        let r = run_both(
            &sr,
            &Setup {
                target: Some(t),
                ..Default::default()
            },
        );
        assert_eq!(r.code, 1, "{t}: {}", r.stderr);
        assert!(!r.stderr.is_empty());
        assert!(r.booted.is_none());
    }
}

fn signed_setup(key: Option<String>) -> Setup<'static> {
    Setup {
        usr_conf: Some("[composefs]\nenabled=signed"),
        key,
        ..Default::default()
    }
}

#[test]
fn failure_missing_key_file() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    sr.sign(&sr.secret_b64);
    let r = run_both(&sr, &signed_setup(None));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Reading public key file '/etc/ostree/initramfs-root-binding.key'"),
        "{}",
        r.stderr
    );
    // composefs=signed on the command line with a config that is not signed: clean error.
    let r = run_both(
        &sr,
        &Setup {
            kargs: "ostree.prepare-root.composefs=signed",
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("public key file"), "{}", r.stderr);
}

#[test]
fn failure_unsigned_commit_in_signed_mode() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let r = run_both(&sr, &signed_setup(Some(sr.public_b64.clone())));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("No commitmeta for deploy"),
        "{}",
        r.stderr
    );
    assert!(r.mount(&sr.path).is_none_or(|m| m.source != "composefs"));
}

#[test]
fn failure_signature_by_another_key() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let (other_secret, _) = sr.other_key();
    sr.sign(&other_secret);
    let r = run_both(&sr, &signed_setup(Some(sr.public_b64.clone())));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("No valid (of 1) signatures found"),
        "{}",
        r.stderr
    );
}

#[test]
fn signed_commit_without_digest_is_refused() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    sr.sign(&sr.secret_b64);
    let r = run_both(&sr, &signed_setup(Some(sr.public_b64.clone())));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no valid digest in commit"),
        "{}",
        r.stderr
    );
}

/// A good signature over a commit with a digest: everything passes up to the kernel's
/// fs-verity measurement of the image, which this host cannot do (the VM tests cover
/// the rest, including a real digest mismatch).
#[test]
fn failure_digest_mismatch_checked_up_to_the_ioctl() {
    if !common::privileged() {
        return;
    }
    let _g = common::serial();
    let digest = (0..32)
        .map(|i| format!("0x{:02x}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let sr = Sysroot::build(&[&format!("ostree.composefs.digest.v0=[byte {digest}]")]);
    sr.write_cfs();
    sr.sign(&sr.secret_b64);
    let r = run_both(&sr, &signed_setup(Some(sr.public_b64.clone())));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Validated commit signature using '/etc/ostree/initramfs-root-binding.key'"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Verifying digest: 0102030405"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("fsverity not enabled on composefs image"),
        "{}",
        r.stderr
    );
    assert!(
        r.mount(&sr.path).is_none_or(|m| m.source != "composefs"),
        "never falls back to an unverified root"
    );

    // verity mode: verity is required of the image and the objects.
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some("[composefs]\nenabled=verity"),
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("fsverity not enabled on composefs image"),
        "{}",
        r.stderr
    );
}

#[test]
fn usr_hotfix_overlay() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    for d in [".usr-ovl-upper", ".usr-ovl-work"] {
        fs::create_dir(sr.deploy.join(d)).unwrap();
    }
    fs::create_dir_all(sr.deploy.join(".usr-ovl-upper/bin")).unwrap();
    fs::write(sr.deploy.join(".usr-ovl-upper/bin/hotfix"), b"x").unwrap();
    for conf in [None, Some(YES)] {
        let r = run_both(
            &sr,
            &Setup {
                usr_conf: conf,
                ..Default::default()
            },
        );
        r.ok();
        let usr = r
            .mount(&sr.path.join("usr"))
            .unwrap_or_else(|| panic!("{conf:?}: no /usr mount"));
        assert_eq!(usr.fstype, "overlay", "{conf:?}");
        assert!(
            usr.options
                .contains(&format!("upperdir={}/.usr-ovl-upper", sr.deploy.display())),
            "{usr:?}"
        );
        assert!(
            r.stderr.contains("Using /usr hotfix overlay"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn maybe_never_falls_back_when_verity_is_required() {
    let Some((_g, sr)) = fixture(false) else {
        return;
    };
    // The file asks for verity; the karg says maybe. That karg is refused outright (it
    // would allow an unverified bind mount), before the deployment is even looked at.
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some("[composefs]\nenabled=verity"),
            kargs: "ostree.prepare-root.composefs=maybe",
            ..Default::default()
        },
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("kernel argument ostree.prepare-root.composefs=maybe refused"),
        "{}",
        r.stderr
    );
    let (_, check) = run_check(
        &sr,
        &Setup {
            usr_conf: Some("[composefs]\nenabled=verity"),
            kargs: "ostree.prepare-root.composefs=maybe",
            ..Default::default()
        },
    );
    assert!(
        check.contains("kernel argument ostree.prepare-root.composefs=maybe refused"),
        "{check}"
    );
    assert!(
        r.mount(&sr.path)
            .is_none_or(|m| !m.source.contains(&sr.deploy_rel))
    );
}

#[test]
fn a_second_run_in_the_same_boot_is_refused() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let out = tempfile::tempdir_in("/var/tmp").unwrap();
    let bin = common::prepare_root_bin();
    let script = format!(
        "{bin} {s} 'ostree={k}' 2>/dev/null; {bin} {s} 'ostree={k}' 2> {o}/err; echo $? > {o}/rc",
        s = sr.path.display(),
        k = sr.karg,
        o = out.path().display()
    );
    let ns = common::in_namespace(&sr.path, "", &script);
    assert!(ns.status.success(), "{}", common::stderr(&ns));
    assert_eq!(
        fs::read_to_string(out.path().join("rc")).unwrap().trim(),
        "1"
    );
    let err = fs::read_to_string(out.path().join("err")).unwrap();
    assert!(err.contains("already ran in this boot"), "{err}");
}

#[test]
fn usage_errors() {
    // Usage errors exit 2, failures 1.
    let o = Command::new(common::prepare_root_bin()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("usage: ostree-prepare-root SYSROOT [KERNEL_CMDLINE]"));
    let o = Command::new(common::prepare_root_bin())
        .args(["/nonexistent", "ostree=/x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("realpath(\"/nonexistent\")"),
        "{}",
        common::stderr(&o)
    );
    let o = Command::new(common::prepare_root_bin())
        .args(["--check", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("unknown argument '--bogus'"));
}

#[test]
fn check_names_a_deployment_and_reports_verity_it_cannot_confirm() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let conf = root.path().join("usr/lib/ostree");
    fs::create_dir_all(&conf).unwrap();
    let check = |conf_text: &str, dep: &str| {
        fs::write(conf.join("prepare-root.conf"), conf_text).unwrap();
        let mut cmd = Command::new(common::prepare_root_bin());
        cmd.arg("--check")
            .arg("--sysroot")
            .arg(&sr.path)
            .arg("--config-root")
            .arg(root.path());
        cmd.args(["--cmdline", "quiet"]);
        if !dep.is_empty() {
            cmd.arg(dep);
        }
        let o = cmd.output().unwrap();
        (o.status.code(), common::stdout(&o), common::stderr(&o))
    };
    // By directory, relative to the sysroot and absolute; by boot link.
    for dep in [
        sr.deploy_rel.clone(),
        sr.deploy.display().to_string(),
        sr.karg.clone(),
    ] {
        let (code, out, err) = check("[composefs]\nenabled=yes\n", &dep);
        assert_eq!(code, Some(0), "{dep}: {out}{err}");
        assert!(out.contains("would boot: yes"), "{out}");
        assert!(
            out.contains(&format!("ok: deployment {}", sr.deploy.display())),
            "{out}"
        );
    }
    let (code, out, err) = check("[composefs]\nenabled=verity\n", &sr.deploy_rel);
    assert_eq!(code, Some(1));
    assert!(out.contains("would boot: no"), "{out}");
    assert!(
        err.contains("fsverity not enabled on composefs image") && err.contains("cannot confirm"),
        "{err}"
    );
    assert!(
        err.contains("fs-verity is required but not enabled on object"),
        "{err}"
    );
    // Without a deployment and without ostree= on the command line.
    let (code, _, err) = check("", "");
    assert_eq!(code, Some(1));
    assert!(err.contains("No ostree target found"), "{err}");
}

/// The bootc fallback: the deployed commit has no detached metadata, its base does; the
/// base's signature and digest are used. The digest here is the true one of the image
/// (our writer over the same tree), so on a kernel with fs-verity (the VM tests) this
/// boots; here it stops at the measurement.
#[test]
fn signed_bootc_base_commit_fallback() {
    if !common::privileged() {
        return;
    }
    let _g = common::serial();
    // The image digest depends only on the tree: learn it from a first build.
    let probe = Sysroot::build(&[]);
    probe.write_cfs();
    let digest = ostree_boot::fsverity::digest::digest(&fs::read(probe.cfs_path()).unwrap());
    drop(probe);
    let bytes = digest
        .iter()
        .map(|b| format!("0x{b:02x}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sr = Sysroot::build_opts(
        &[&format!("ostree.composefs.digest.v0=[byte {bytes}]")],
        true,
    );
    sr.write_cfs();
    assert_eq!(
        ostree_boot::fsverity::digest::digest(&fs::read(sr.cfs_path()).unwrap()),
        digest
    );
    let base = sr.base.clone().unwrap();
    sr.sign_commit(&base, &sr.secret_b64);
    let setup = signed_setup(Some(sr.public_b64.clone()));
    let (code, text) = run_check(&sr, &setup);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("commit {base} signed by key 1")),
        "{text}"
    );
    assert!(text.contains("(bootc base commit)"), "{text}");
    assert!(
        text.contains(&format!("expected image digest {}", hex::encode(digest))),
        "{text}"
    );
    let r = run_both(&sr, &setup);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Validating composefs using bootc base commit"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("Verifying digest: {}", hex::encode(digest))),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("fsverity not enabled on composefs image"),
        "{}",
        r.stderr
    );

    // Detached metadata on the child, even without signatures, wins over the base.
    sr.sign_commit(&sr.commit, &sr.other_key().0);
    let r = run_both(&sr, &setup);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("No valid (of 1) signatures found"),
        "{}",
        r.stderr
    );
}

/// ostree's legacy `[sysroot] readonly=true` in the repository config, honoured when
/// nothing else decides (not with composefs=yes).
#[test]
fn legacy_repo_config_readonly_flag() {
    let Some((_g, sr)) = fixture(true) else {
        return;
    };
    let cfg = sr.repo.join("config");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[sysroot]\nreadonly=true\n");
    fs::write(&cfg, text).unwrap();
    let r = run_both(&sr, &Setup::default());
    r.ok();
    assert!(
        r.stderr.contains("Found legacy sysroot.readonly flag"),
        "{}",
        r.stderr
    );
    assert!(r.opts(&sr.path.join("sysroot")).contains(&"ro".into()));
    assert!(r.booted.unwrap().sysroot_ro);
    // With composefs required the flag is not consulted at all.
    let r = run_both(
        &sr,
        &Setup {
            usr_conf: Some(YES),
            ..Default::default()
        },
    );
    r.ok();
    assert!(
        !r.stderr.contains("Found legacy sysroot.readonly flag"),
        "{}",
        r.stderr
    );
}
