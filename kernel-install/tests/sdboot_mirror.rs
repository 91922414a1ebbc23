//! The systemd-boot mirror written through the real `kernel-install` (systemd 252) onto a
//! loop-mounted partition in a private mount namespace, read back by the real `bootctl`.
//!
//! The partition is vfat when the kernel has it; this CI host's kernel has no vfat, so
//! there it is ext4 with `OSTREE_COMPOSEFS_VFAT_ANY_FS=1` (the layout written is the
//! same: no symlinks, one exchange of directories; the VM cases boot real vfat).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const KVER: &str = "6.1.0-test";
const KVER2: &str = "6.2.0-test";

fn plugin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../units/kernel-install/88-ostree-composefs.install")
}

fn kernel_has_vfat() -> bool {
    fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("vfat"))
}

pub struct Env {
    pub t: Scratch,
    pub sysroot: PathBuf,
    conf: PathBuf,
    kiroot: PathBuf,
    img: PathBuf,
    pub mnt: PathBuf,
    vfat: bool,
}

fn make_initrd(dir: &Path, out: &Path) {
    let root = dir.join("initrd-root");
    write(&root.join("init"), "#!/bin/sh\n");
    run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -9 > \"$2\"")
        .arg("sh")
        .arg(&root)
        .arg(out));
}

pub fn setup(conf_extra: &str) -> Option<Env> {
    let vfat = kernel_has_vfat();
    let mkfs = if vfat { "mkfs.vfat" } else { "mkfs.ext4" };
    if !have_ostree()
        || !require(
            have_command("kernel-install") && have_command("bootctl"),
            "needs systemd's kernel-install and bootctl (systemd-boot)",
        )
        || !require(
            Command::new(mkfs).arg("--help").output().is_ok(),
            format!("needs {mkfs}"),
        )
        || !privileged()
    {
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, KVER, "a kernel\n");
    let sysroot = t.path().join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(
        &sysroot,
        &["--os=testos", "--karg=root=LABEL=OLD", "testos/stable"],
    );
    let conf = t.path().join("conf");
    write(&conf.join("install.conf"), "layout=ostree\n");
    write(&conf.join("cmdline"), "root=LABEL=ROOT rw\n");
    let kiroot = t.path().join("kiroot");
    write(
        &kiroot.join("etc/ostree/kernel-install.conf"),
        &format!(
            "[kernel-install]\nsysroot={}\n{conf_extra}",
            sysroot.display()
        ),
    );
    let img = t.path().join("esp.img");
    run(Command::new("truncate").args(["-s", "64M"]).arg(&img));
    let mut mk = Command::new(mkfs);
    if vfat {
        mk.arg("-n").arg("ESP");
    } else {
        mk.arg("-q").arg("-F");
    }
    run(mk.arg(&img));
    let mnt = t.path().join("esp");
    fs::create_dir(&mnt).unwrap();
    let e = Env {
        t,
        sysroot,
        conf,
        kiroot,
        img,
        mnt,
        vfat,
    };
    // Another OS's entry, which every rewrite carries over.
    e.on_esp("mkdir -p \"$ESP/loader/entries\"; printf 'title Other\\nlinux /other/vmlinuz\\n' > \"$ESP/loader/entries/other.conf\"");
    Some(e)
}

impl Env {
    /// Runs `script` (sh) with the partition mounted at `$ESP` in a private mount
    /// namespace, kernel-install's environment set; snapshots the partition to
    /// `$SNAP` afterwards, whatever the script's status.
    pub fn on_esp_output(&self, script: &str, envs: &[(&str, &str)]) -> Output {
        let full = format!(
            "set -u\nmount -o loop \"$IMG\" \"$ESP\" || exit 99\ntrap 'rm -rf \"$SNAP\"; cp -r \"$ESP\" \"$SNAP\"; umount \"$ESP\"' EXIT\n{script}\n"
        );
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", &full])
            .env("IMG", &self.img)
            .env("ESP", &self.mnt)
            .env("SNAP", self.snap())
            .env("KERNEL_INSTALL_CONF_ROOT", &self.conf)
            .env("BOOT_ROOT", &self.mnt)
            .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
            .env("KERNEL_INSTALL_PLUGINS", plugin())
            .env("OSTREE_COMPOSEFS", BIN)
            .env("BIN", BIN)
            .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &self.kiroot)
            .env("SYSTEMD_RELAX_ESP_CHECKS", "1");
        if !self.vfat {
            c.env("OSTREE_COMPOSEFS_VFAT_ANY_FS", "1");
        }
        for (k, v) in envs {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert_ne!(
            o.status.code(),
            Some(99),
            "mount failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn on_esp(&self, script: &str) -> String {
        let o = self.on_esp_output(script, &[]);
        assert!(
            o.status.success(),
            "{script}: {}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A copy of the partition as the last command left it.
    pub fn snap(&self) -> PathBuf {
        self.t.path().join("snap")
    }

    pub fn kernel(&self, kver: &str, content: &str) -> (PathBuf, PathBuf) {
        let k = self.t.path().join(format!("vmlinuz-{kver}"));
        fs::write(&k, content).unwrap();
        let i = self.t.path().join(format!("initrd.img-{kver}"));
        make_initrd(self.t.path(), &i);
        (k, i)
    }

    pub fn add_script(&self, kver: &str, content: &str) -> String {
        let (k, i) = self.kernel(kver, content);
        format!(
            "kernel-install -v add {kver} '{}' '{}'",
            k.display(),
            i.display()
        )
    }

    pub fn add(&self, kver: &str, content: &str) -> String {
        self.on_esp(&self.add_script(kver, content))
    }

    pub fn bootctl(&self) -> String {
        self.on_esp("bootctl --esp-path=\"$ESP\" --no-variables list")
    }

    pub fn write_tries(&self, text: &str) {
        fs::write(self.conf.join("tries"), text).unwrap();
    }
}

/// The entries on the partition snapshot: name → text.
pub fn esp_entries(snap: &Path) -> BTreeMap<String, String> {
    fs::read_dir(snap.join("loader/entries"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

fn sysroot_entries(sysroot: &Path) -> BTreeMap<String, String> {
    fs::read_dir(sysroot.join("boot/loader/entries"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every ostree entry of the partition is the sysroot's entry of that N with paths on
/// the partition whose files hold the sysroot's bytes; the other OS's entry is there;
/// nothing else is in loader/ but entries/ and loader.conf; every kernel directory is
/// referenced. Returns the ostree entries by name without counter.
pub fn check_mirror(sysroot: &Path, snap: &Path) -> BTreeMap<String, (String, String)> {
    let esp = esp_entries(snap);
    let sys = sysroot_entries(sysroot);
    assert_eq!(
        esp.get("other.conf").map(String::as_str),
        Some("title Other\nlinux /other/vmlinuz\n")
    );
    let mut ours = BTreeMap::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (name, text) in &esp {
        if name == "other.conf" {
            continue;
        }
        let (base, _) = ostree_boot::sdboot::split_entry_name(name).unwrap();
        let want = sys
            .get(&format!("{base}.conf"))
            .unwrap_or_else(|| panic!("{name} is not in the sysroot: {sys:?}"));
        let mut lines = text.lines();
        let id = lines.next().unwrap();
        assert!(id.starts_with("# ostree-deployment: testos/"), "{text}");
        let rest: Vec<&str> = lines.collect();
        let want: Vec<String> = want
            .lines()
            .map(|l| l.replace(" /boot/ostree/", " /ostree/"))
            .collect();
        assert_eq!(rest, want, "{name}");
        for l in &rest {
            if let Some(p) = l
                .strip_prefix("linux ")
                .or_else(|| l.strip_prefix("initrd "))
            {
                let on_esp = snap.join(p.trim_start_matches('/'));
                let in_boot = sysroot.join("boot").join(p.trim_start_matches('/'));
                assert_eq!(
                    fs::read(&on_esp).unwrap_or_else(|e| panic!("{p}: {e}")),
                    fs::read(&in_boot).unwrap(),
                    "{p}"
                );
                dirs.insert(
                    Path::new(p)
                        .parent()
                        .unwrap()
                        .file_name()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
        ours.insert(base.to_string(), (name.clone(), text.clone()));
    }
    assert_eq!(ours.len(), sys.len(), "{esp:?}\n{sys:?}");
    let on_esp: std::collections::BTreeSet<_> = fs::read_dir(snap.join("ostree"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(on_esp, dirs);
    let mut loader: Vec<String> = fs::read_dir(snap.join("loader"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    loader.sort();
    assert_eq!(loader, ["entries", "loader.conf"]);
    ours
}

/// The `id:` and `tries:` lines of `bootctl list`, in its order.
fn bootctl_ids(out: &str) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = Vec::new();
    for l in out.lines() {
        let l = l.trim();
        if let Some(id) = l.strip_prefix("id: ") {
            v.push((id.to_string(), None));
        } else if let Some(t) = l.strip_prefix("tries: ") {
            v.last_mut().unwrap().1 = Some(t.to_string());
        }
    }
    v
}

/// The id of the entry `bootctl list` marks `(default)`.
fn default_id(out: &str) -> String {
    let mut is_default = false;
    for l in out.lines() {
        let l = l.trim();
        if l.starts_with("title: ") {
            is_default = l.contains("(default)");
        } else if let Some(id) = l.strip_prefix("id: ")
            && is_default
        {
            return id.to_string();
        }
    }
    panic!("no default entry in {out}");
}

#[test]
fn mirror_through_kernel_install() {
    let Some(e) = setup("") else { return };
    let out = e.add(KVER, "our kernel\n");
    assert!(out.contains("systemd-boot mirror on"), "{out}");
    let m = check_mirror(&e.sysroot, &e.snap());
    assert_eq!(m.keys().collect::<Vec<_>>(), ["ostree-1", "ostree-2"]);
    // No tries file: no counters.
    assert!(m.values().all(|(n, _)| !n.contains('+')), "{m:?}");
    let conf = fs::read_to_string(e.snap().join("loader/loader.conf")).unwrap();
    assert!(conf.lines().any(|l| l == "default ostree-*"), "{conf}");
    // systemd's own reader of the partition: by id, highest first (the other OS's
    // entry sorts first), and the default is the newest deployment.
    let list = e.bootctl();
    let ids = bootctl_ids(&list);
    let ids: Vec<&str> = ids.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["other.conf", "ostree-2.conf", "ostree-1.conf"]);
    assert_eq!(default_id(&list), "ostree-2.conf", "{list}");
    // ostree still reads the sysroot.
    let st = status(&e.sysroot);
    assert_eq!(deployment_dirs(&e.sysroot).len(), 2, "{st}");

    // A loader.conf of the user's is never replaced.
    e.on_esp("printf 'timeout 9\\n' > \"$ESP/loader/loader.conf\"");
    e.add(KVER2, "another kernel\n");
    let m2 = check_mirror(&e.sysroot, &e.snap());
    assert_eq!(m2.len(), 2);
    assert_eq!(
        fs::read_to_string(e.snap().join("loader/loader.conf")).unwrap(),
        "timeout 9\n"
    );
    // ostree's default rule dropped the deployment ostree admin made: its kernel
    // directory left the partition (check_mirror: every directory is referenced).
    assert!(m2["ostree-2"].1.contains(KVER2), "{m2:?}");
}

#[test]
fn boot_counters() {
    let Some(e) = setup("keep=3\n") else { return };
    e.write_tries("3\n");
    e.add(KVER, "our kernel\n");
    let m = check_mirror(&e.sysroot, &e.snap());
    let names: Vec<&str> = m.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ostree-1+3.conf", "ostree-2+3.conf"]);
    let id_of = |m: &BTreeMap<String, (String, String)>, k: &str| {
        m[k].1.lines().next().unwrap().to_string()
    };
    let (theirs_id, first_id) = (id_of(&m, "ostree-1"), id_of(&m, "ostree-2"));
    // As systemd-boot counts a boot of the newest, and systemd-bless-boot blesses the
    // older one.
    e.on_esp(
        "cd \"$ESP/loader/entries\" && mv ostree-2+3.conf ostree-2+2-1.conf && mv ostree-1+3.conf ostree-1.conf",
    );
    e.add(KVER2, "another kernel\n");
    let m = check_mirror(&e.sysroot, &e.snap());
    let names: Vec<&str> = m.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["ostree-1.conf", "ostree-2+2-1.conf", "ostree-3+3.conf"]
    );
    // The counters followed their deployments to their new N.
    assert_eq!(id_of(&m, "ostree-1"), theirs_id);
    assert_eq!(id_of(&m, "ostree-2"), first_id);
    let list = e.bootctl();
    assert_eq!(
        bootctl_ids(&list),
        [
            ("other.conf".into(), None),
            ("ostree-3.conf".into(), Some("3 left".into())),
            ("ostree-2.conf".into(), Some("2 left; 1 done".into())),
            ("ostree-1.conf".into(), None),
        ]
    );
    assert_eq!(default_id(&list), "ostree-3.conf", "{list}");

    // The new deployment never came up: its tries are used up, it sorts last, and the
    // previous deployment is the default again.
    e.on_esp("cd \"$ESP/loader/entries\" && mv ostree-3+3.conf ostree-3+0-3.conf");
    let list = e.bootctl();
    assert_eq!(default_id(&list), "ostree-2.conf", "{list}");
    assert_eq!(
        bootctl_ids(&list).last().unwrap(),
        &("ostree-3.conf".into(), Some("0 left; 3 done".into()))
    );
    let before = deployment_dirs(&e.sysroot);
    for bad in ["0\n", "three\n", "\n"] {
        e.write_tries(bad);
        let o = e.on_esp_output(&e.add_script("6.3.0-test", "third\n"), &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad:?}");
        assert!(
            err.contains(&format!("{}/tries", e.conf.display())),
            "{err}"
        );
        assert_eq!(deployment_dirs(&e.sysroot), before, "{bad:?}");
    }
    e.write_tries("2\n");
    // kernel-install remove drops the deployment booting KVER2 from the mirror too.
    let out = e.on_esp(&format!("kernel-install -v remove {KVER2}"));
    assert!(out.contains("removed testos/"), "{out}");
    let m = check_mirror(&e.sysroot, &e.snap());
    let names: Vec<&str> = m.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ostree-1.conf", "ostree-2+2-1.conf"]);
    assert_eq!(id_of(&m, "ostree-2"), first_id);
}

#[test]
fn stage_with_mirror_is_refused() {
    let Some(e) = setup("stage=true\n") else {
        return;
    };
    let before = deployment_dirs(&e.sysroot);
    let o = e.on_esp_output(&e.add_script(KVER, "k\n"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("stage=true cannot be used with the systemd-boot mirror"),
        "{err}"
    );
    assert_eq!(deployment_dirs(&e.sysroot), before);
}

#[test]
fn explicit_path_must_be_the_partition() {
    let Some(e) = setup("vfat-boot=/nonexistent-esp\n") else {
        return;
    };
    let o = e.on_esp_output(&e.add_script(KVER, "k\n"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("/nonexistent-esp: not a directory"), "{err}");
}
