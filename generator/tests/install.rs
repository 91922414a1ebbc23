//! `make install` / `make uninstall`, the static units under `systemd-analyze verify`,
//! the dracut module inside a real initrd, and our unit-name escaping against
//! `systemd-escape`. These run the host's real tools (make, go-md2man, dracut,
//! lsinitrd, systemd-analyze, systemd-escape), all installed by scripts/setup.sh.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ostree_system_generator::escape::escape_path;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A release dir as `make install` expects: our two binaries for real, stand-ins for
/// the other crates' binaries (this crate's tests cannot build them).
fn release_dir(dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    fs::create_dir_all(&bins).unwrap();
    fs::copy(
        env!("CARGO_BIN_EXE_ostree-system-generator"),
        bins.join("ostree-system-generator"),
    )
    .unwrap();
    fs::copy(
        env!("CARGO_BIN_EXE_ostree-remount"),
        bins.join("ostree-remount"),
    )
    .unwrap();
    for b in ["ostree-prepare-root", "ostree-composefs"] {
        fs::write(
            bins.join(b),
            format!("#!/bin/sh\necho {b} stand-in >&2\nexit 1\n"),
        )
        .unwrap();
        fs::set_permissions(bins.join(b), fs::Permissions::from_mode(0o755)).unwrap();
    }
    bins
}

fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.insert(
                    e.path()
                        .strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn make(args: &[&str]) -> String {
    let o = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo())
        .args(args)
        .output()
        .expect("make");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "make {args:?} failed:\n{text}");
    text
}

#[test]
fn make_install_and_uninstall() {
    let work = tempfile::tempdir().unwrap();
    let bins = release_dir(work.path());
    let dest = work.path().join("dest");
    let destdir = format!("DESTDIR={}", dest.display());
    let release = format!("RELEASE_DIR={}", bins.display());
    // Someone else's file in a shared directory must survive uninstall.
    let foreign = dest.join("usr/lib/systemd/system/foreign.service");
    fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    fs::write(&foreign, "[Unit]\n").unwrap();

    make(&["install", &destdir, "PREFIX=/usr", &release]);
    let installed = files(&dest);
    let mut want: BTreeSet<String> = [
        "usr/lib/ostree/ostree-prepare-root",
        "usr/lib/ostree/ostree-remount",
        "usr/lib/systemd/system-generators/ostree-system-generator",
        "usr/bin/ostree-composefs",
        "usr/lib/systemd/system/ostree-prepare-root.service",
        "usr/lib/systemd/system/ostree-remount.service",
        "usr/lib/systemd/system/ostree-composefs-finalize-staged.service",
        "usr/lib/systemd/system/ostree-composefs-finalize-staged-hold.service",
        "usr/lib/systemd/system/ostree-composefs-finalize-staged.path",
        "usr/lib/systemd/system/ostree-grub-bless.service",
        "usr/lib/ostree/grub.cfg",
        "usr/lib/systemd/system/foreign.service",
        "usr/lib/tmpfiles.d/ostree-tmpfiles.conf",
        "usr/lib/dracut/modules.d/50ostree/module-setup.sh",
        "usr/lib/kernel/install.conf",
        "etc/dracut.conf.d/ostree.conf",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for m in fs::read_dir(repo().join("man")).unwrap() {
        let name = m.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(page) = name.strip_suffix(".md") {
            let section = page.rsplit('.').next().unwrap();
            want.insert(format!("usr/share/man/man{section}/{page}"));
        }
    }
    for p in fs::read_dir(repo().join("units/kernel-install"))
        .into_iter()
        .flatten()
    {
        let name = p.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".install") {
            want.insert(format!("usr/lib/kernel/install.d/{name}"));
        }
    }
    assert_eq!(installed, want);
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode("usr/lib/systemd/system-generators/ostree-system-generator"),
        0o755
    );
    assert_eq!(
        mode("usr/lib/dracut/modules.d/50ostree/module-setup.sh"),
        0o755
    );
    assert_eq!(mode("usr/lib/systemd/system/ostree-remount.service"), 0o644);
    assert_eq!(
        fs::read_to_string(dest.join("usr/lib/kernel/install.conf"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["layout=ostree"]
    );

    make(&["uninstall", &destdir, "PREFIX=/usr", &release]);
    assert_eq!(
        files(&dest),
        BTreeSet::from(["usr/lib/systemd/system/foreign.service".to_string()])
    );
    assert!(!dest.join("usr/lib/dracut/modules.d/50ostree").exists());
    assert!(!dest.join("usr/lib/ostree").exists());
}

/// An existing /usr/lib/kernel/install.conf (systemd's, rpm-ostree's) is neither
/// overwritten by install nor removed by uninstall.
#[test]
fn make_install_keeps_an_existing_kernel_install_conf() {
    let work = tempfile::tempdir().unwrap();
    let bins = release_dir(work.path());
    let dest = work.path().join("dest");
    let destdir = format!("DESTDIR={}", dest.display());
    let release = format!("RELEASE_DIR={}", bins.display());
    let conf = dest.join("usr/lib/kernel/install.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::write(&conf, "layout=bls\n").unwrap();
    let out = make(&["install", &destdir, "PREFIX=/usr", &release]);
    assert!(out.contains("KEEP"), "{out}");
    assert_eq!(fs::read_to_string(&conf).unwrap(), "layout=bls\n");
    make(&["uninstall", &destdir, "PREFIX=/usr", &release]);
    assert_eq!(fs::read_to_string(&conf).unwrap(), "layout=bls\n");
}

#[test]
fn make_install_honours_prefix() {
    let work = tempfile::tempdir().unwrap();
    let bins = release_dir(work.path());
    let dest = work.path().join("dest");
    make(&[
        "install",
        &format!("DESTDIR={}", dest.display()),
        "PREFIX=/opt/os",
        &format!("RELEASE_DIR={}", bins.display()),
        "INSTALL_DRACUT_CONF=no",
    ]);
    let installed = files(&dest);
    assert!(
        installed.iter().all(|p| p.starts_with("opt/os/")),
        "{installed:?}"
    );
    assert!(installed.contains("opt/os/lib/systemd/system/ostree-prepare-root.service"));
    assert!(installed.contains("opt/os/lib/systemd/system-generators/ostree-system-generator"));
}

#[test]
fn install_without_binaries_fails_clearly() {
    let work = tempfile::tempdir().unwrap();
    let o = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .arg(format!("DESTDIR={}", work.path().join("d").display()))
        .arg(format!(
            "RELEASE_DIR={}",
            work.path().join("none").display()
        ))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("run 'make release' first"));
}

/// The static units load cleanly where they run: a staged root with the host's
/// vendor units, ours, stub ExecStart binaries, and the sysroot.mount that
/// systemd-fstab-generator writes in the initrd.
#[test]
fn static_units_pass_systemd_analyze_verify() {
    let work = tempfile::tempdir().unwrap();
    let stage = work.path();
    let unit_dir = stage.join("usr/lib/systemd/system");
    fs::create_dir_all(unit_dir.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg("/lib/systemd/system")
        .arg(&unit_dir)
        .status()
        .unwrap();
    assert!(st.success());
    for u in ["ostree-prepare-root.service", "ostree-remount.service"] {
        fs::copy(repo().join("units").join(u), unit_dir.join(u)).unwrap();
    }
    fs::create_dir_all(stage.join("usr/lib/ostree")).unwrap();
    for b in ["ostree-prepare-root", "ostree-remount"] {
        let p = stage.join("usr/lib/ostree").join(b);
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let etc = stage.join("etc/systemd/system");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("sysroot.mount"),
        "[Mount]\nWhat=/dev/disk/by-label/root\nWhere=/sysroot\n",
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", stage.display()))
        .args(["ostree-prepare-root.service", "ostree-remount.service"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("ostree"), "{stderr}");

    // And a broken unit is caught by the same check (the test can fail).
    fs::write(
        unit_dir.join("ostree-remount.service"),
        "[Service]\nExecStart=/usr/lib/ostree/missing\n",
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", stage.display()))
        .arg("ostree-remount.service")
        .output()
        .unwrap();
    assert!(!o.status.success());
}

/// systemd-tmpfiles applies the file to a scratch root: /run/ostree appears 0755.
#[test]
fn tmpfiles_conf_applies() {
    let conf = repo().join("units/tmpfiles.d/ostree-tmpfiles.conf");
    let root = tempfile::tempdir().unwrap();
    let o = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .args(["--create", "--remove"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = fs::metadata(root.path().join("run/ostree")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn escaping_matches_systemd_escape() {
    let paths = [
        "/",
        "/var",
        "/sysroot",
        "//var//",
        "/var/./lib",
        "/a b",
        "/.foo/.bar",
        "/ünï",
        "/a\\b",
        "/tmp/x:y",
        "/a-b",
        "/a_b",
        "/x%",
        "/a/.b",
        "/-",
        "/foo//bar/",
        "/.",
        "/~",
        "/a*b",
        "/run/ostree/.private/cfsroot-lower",
        "/sysroot/ostree/deploy/my os/var",
        "/über/straße",
        "/0/9/A/Z/a/z",
        "/a.b.c",
        "/\t",
        "/\u{7f}",
        "/日本",
        "/-/-",
        "/..a",
        "/a..",
        "/emoji/😀",
    ];
    for p in paths {
        let o = Command::new("systemd-escape")
            .args(["--path", "--", p])
            .output()
            .expect("systemd-escape");
        let theirs = String::from_utf8_lossy(&o.stdout)
            .trim_end_matches('\n')
            .to_string();
        assert!(o.status.success(), "systemd-escape rejected {p:?}");
        assert_eq!(escape_path(p).as_deref(), Ok(theirs.as_str()), "{p:?}");
    }
    for p in ["/a/../b", "/a/.."] {
        let o = Command::new("systemd-escape")
            .args(["--path", "--", p])
            .output()
            .unwrap();
        assert!(!o.status.success(), "systemd-escape accepted {p:?}");
        assert!(escape_path(p).is_err(), "{p:?}");
    }
}

/// A real initrd from Debian's dracut with our module; see tests/dracut-initrd.sh.
/// Kernel modules come from OSTREE_TEST_KMODDIR (a lib/modules/<kver> tree) or the
/// VM tests' kernel cache (build/vm/kernel/<kver>/root/usr/lib/modules/<kver>).
#[test]
fn dracut_builds_an_initrd_with_our_module() {
    let work = tempfile::tempdir().unwrap();
    let bins = release_dir(work.path());
    let kmoddir = std::env::var_os("OSTREE_TEST_KMODDIR")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = repo().join("build/vm/kernel");
            let kver = fs::read_to_string(cache.join("kver")).ok()?;
            let kver = kver.trim();
            let d = cache.join(kver).join("root/usr/lib/modules").join(kver);
            d.is_dir().then_some(d)
        });
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("generator/tests/dracut-initrd.sh"))
        .arg(repo())
        .arg(&bins)
        .arg(work.path().join("w"));
    if let Some(k) = &kmoddir {
        cmd.arg(k);
    }
    let o = cmd.output().unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{out}");
    assert!(o.status.success() && out.contains("PASS"), "{out}");
}
