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

/// Both plugins `make install` installs, in kernel-install's order: the GRUB tries
/// plugin must leave the systemd-boot partition alone (check_mirror: no `grub/`).
fn plugins() -> String {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units/kernel-install");
    format!(
        "{} {}",
        d.join("87-ostree-grub-tries.install").display(),
        d.join("88-ostree-composefs.install").display()
    )
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

/// A copy of the sysroot and of the partition image, to start each kill from.
struct Saved {
    sysroot: PathBuf,
    img: PathBuf,
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
    let sysroot = sysroot_deployed_by_ostree(t.path(), KVER);
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
        let o = self.esp_command(script, envs).output().unwrap();
        assert_ne!(
            o.status.code(),
            Some(99),
            "mount failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    fn esp_command(&self, script: &str, envs: &[(&str, &str)]) -> Command {
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
            .env("KERNEL_INSTALL_PLUGINS", plugins())
            .env("TMPDIR", self.t.path())
            .env("OSTREE_COMPOSEFS", BIN)
            .env("BIN", BIN)
            .env("SYSROOT", &self.sysroot)
            .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &self.kiroot)
            .env("SYSTEMD_RELAX_ESP_CHECKS", "1");
        if !self.vfat {
            c.env("OSTREE_COMPOSEFS_VFAT_ANY_FS", "1");
        }
        for (k, v) in envs {
            c.env(k, v);
        }
        c
    }

    /// Saves the sysroot and the partition image as they are now.
    fn save(&self) -> Saved {
        let s = Saved {
            sysroot: self.t.path().join("template"),
            img: self.t.path().join("esp0.img"),
        };
        copy_tree(&self.sysroot, &s.sysroot);
        fs::copy(&self.img, &s.img).unwrap();
        s
    }

    /// Puts back what [`Env::save`] saved.
    fn restore(&self, s: &Saved) {
        remove_sysroot(&self.sysroot);
        copy_tree(&s.sysroot, &self.sysroot);
        fs::copy(&s.img, &self.img).unwrap();
    }

    pub fn on_esp(&self, script: &str) -> String {
        stdout(&mut self.esp_command(script, &[]))
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

/// The files of an entries directory: name → text.
fn entry_texts(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
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

/// The entries on the partition snapshot: name → text.
pub fn esp_entries(snap: &Path) -> BTreeMap<String, String> {
    entry_texts(&snap.join("loader/entries"))
}

fn sysroot_entries(sysroot: &Path) -> BTreeMap<String, String> {
    entry_texts(&sysroot.join("boot/loader/entries"))
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
    // Nothing else at the top: not even the `<machine-id>/<kver>` directory
    // kernel-install makes for the plugins (ext4's lost+found aside).
    let mut top: Vec<String> = fs::read_dir(snap)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect();
    top.sort();
    assert_eq!(top, ["loader", "ostree"]);
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
fn deploy_and_undeploy_cli() {
    let Some(e) = setup("") else { return };
    e.write_tries("2\n");
    let out = e.on_esp("\"$BIN\" deploy --sysroot \"$SYSROOT\" --vfat-boot \"$ESP\" testos/stable");
    assert!(out.contains("Deployed testos/"), "{out}");
    let m = check_mirror(&e.sysroot, &e.snap());
    let names: Vec<&str> = m.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ostree-1+2.conf", "ostree-2+2.conf"]);
    e.on_esp("\"$BIN\" undeploy --sysroot \"$SYSROOT\" --vfat-boot \"$ESP\" 1");
    let m = check_mirror(&e.sysroot, &e.snap());
    assert_eq!(m.len(), 1);
    // Not a vfat filesystem (the scratch directory's), or staged: refused, nothing done.
    let before = deployment_dirs(&e.sysroot);
    let o = e.on_esp_output(
        "\"$BIN\" deploy --sysroot \"$SYSROOT\" --vfat-boot \"$SYSROOT/..\" testos/stable",
        &[("OSTREE_COMPOSEFS_VFAT_ANY_FS", "0")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("not a vfat filesystem"), "{err}");
    let o = e.on_esp_output(
        "\"$BIN\" deploy --sysroot \"$SYSROOT\" --stage --vfat-boot \"$ESP\" testos/stable",
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("--stage"), "{err}");
    assert_eq!(deployment_dirs(&e.sysroot), before);
}

/// `vfat-boot=auto` with the partition named as kernel-install's documentation says:
/// `BOOT_ROOT=` in install.conf (kernel-install would otherwise pick the sysroot's
/// /boot, which has `loader/entries`).
#[test]
fn boot_root_from_install_conf() {
    let Some(e) = setup("vfat-boot=auto\n") else {
        return;
    };
    write(
        &e.conf.join("install.conf"),
        &format!("layout=ostree\nBOOT_ROOT={}\n", e.mnt.display()),
    );
    let o = e.on_esp_output(&e.add_script(KVER, "k\n"), &[("BOOT_ROOT", "")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = check_mirror(&e.sysroot, &e.snap());
    assert_eq!(m.len(), 2);
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

/// The ostree entries of a partition snapshot (name → text): all of `loader/entries`
/// but the other OS's entry, which must be there unchanged.
fn ostree_set(snap: &Path) -> BTreeMap<String, String> {
    let mut m = esp_entries(snap);
    assert_eq!(
        m.remove("other.conf").as_deref(),
        Some("title Other\nlinux /other/vmlinuz\n")
    );
    m
}

/// Every entry of the set boots: its kernel and initrd are on the partition with the
/// bytes the sysroot (or, for files already cleaned up there, the template) has, and
/// its `ostree=` bootlink resolves to a complete deployment.
fn check_bootable(
    set: &BTreeMap<String, String>,
    snap: &Path,
    sysroot: &Path,
    template: &Path,
    what: &str,
) {
    for (name, text) in set {
        for l in text.lines() {
            if let Some(p) = l
                .strip_prefix("linux ")
                .or_else(|| l.strip_prefix("initrd "))
            {
                let rel = p.trim_start_matches('/');
                let want = fs::read(sysroot.join("boot").join(rel))
                    .or_else(|_| fs::read(template.join("boot").join(rel)))
                    .unwrap_or_else(|e| panic!("{what}: {name}: {p} in no boot/: {e}"));
                let got = fs::read(snap.join(rel))
                    .unwrap_or_else(|e| panic!("{what}: {name}: {p} not on the partition: {e}"));
                assert!(got == want, "{what}: {name}: {p} differs");
            }
            if let Some(o) = l.strip_prefix("options ") {
                let link = o
                    .rsplit_once("ostree=")
                    .unwrap()
                    .1
                    .split(' ')
                    .next()
                    .unwrap();
                let d = sysroot.join(link.trim_start_matches('/'));
                assert!(
                    d.join("usr/lib/os-release").is_file(),
                    "{what}: {name}: {link} does not resolve to a deployment"
                );
            }
        }
    }
}

/// SIGKILL at every checkpoint of `kernel-install add` onto a partition with no mirror
/// yet (`first`) or with one: afterwards `loader/entries` holds the complete old set or
/// the complete new set, every file each names is there with the right bytes, and a
/// rerun completes, leaving no staging directory.
fn killed_at_every_checkpoint(first: bool) {
    let Some(e) = setup("") else { return };
    e.write_tries("3\n");
    if !first {
        e.add(KVER, "our kernel\n");
    }
    // The starting point, copied back before every run.
    let saved = e.save();
    e.on_esp("true");
    let old = ostree_set(&e.snap());
    let reset = || e.restore(&saved);
    let script = e.add_script(KVER2, "another kernel\n");
    // The mirror of the sysroot as it was, which every change first brings the
    // partition to (the same as `old` once there is a mirror): a run stopped right
    // after that shows it.
    let o = e.on_esp_output(&script, &[("OSTREE_COMPOSEFS_FAULT", "start")]);
    assert!(!o.status.success());
    let synced_old = ostree_set(&e.snap());
    if !first {
        assert_eq!(synced_old, old);
    }
    reset();
    let o = e.on_esp_output(&script, &[("OSTREE_COMPOSEFS_FAULT_TRACE", "1")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let new = ostree_set(&e.snap());
    assert_ne!(new, old);
    let mut points: Vec<(String, u32)> = Vec::new();
    for l in String::from_utf8_lossy(&o.stderr).lines() {
        if let Some(name) = l
            .strip_prefix("checkpoint ")
            .and_then(|r| r.split(' ').next())
        {
            let n = points.iter().filter(|(p, _)| p == name).count() as u32 + 1;
            points.push((name.to_string(), n));
        }
    }
    for want in [
        "vfat-kernel-copied",
        "vfat-entry-written",
        "vfat-before-swap",
        "vfat-after-swap",
        "vfat-old-removed",
        "vfat-done",
    ] {
        assert!(
            points.iter().any(|(p, _)| p == want),
            "{want} not passed: {points:?}"
        );
    }
    if first {
        assert!(points.iter().any(|(p, _)| p == "vfat-loader-conf-written"));
    } else {
        // The partition already mirrors the sysroot: the change's first pass over it
        // rewrites nothing.
        let start = points.iter().position(|(p, _)| p == "start").unwrap();
        assert!(
            !points[..start]
                .iter()
                .any(|(p, _)| p == "vfat-entry-written"),
            "{points:?}"
        );
    }
    let (mut saw_old, mut saw_new) = (0, 0);
    // The set the partition holds after each kill: `old` (or the mirror of the
    // sysroot as it was) or `new`, nothing in between.
    for (name, n) in &points {
        let what = format!("killed at {name}:{n}");
        reset();
        let o = e.on_esp_output(
            &script,
            &[("OSTREE_COMPOSEFS_FAULT", &format!("{name}:{n}"))],
        );
        assert!(!o.status.success(), "{what}: not killed");
        let now = ostree_set(&e.snap());
        if now == old || now == synced_old {
            saw_old += 1;
        } else {
            assert_eq!(now, new, "{what}: neither the old nor the new set");
            saw_new += 1;
        }
        check_bootable(&now, &e.snap(), &e.sysroot, &saved.sysroot, &what);
        e.on_esp(&script);
        check_mirror(&e.sysroot, &e.snap());
        assert!(
            !e.snap().join("loader").join("entries.ostree-new").exists(),
            "{what}"
        );
    }
    eprintln!(
        "{} kills: {saw_old} left the old set, {saw_new} the new one",
        points.len()
    );
    assert!(saw_old > 0 && saw_new > 0);
}

#[test]
fn first_mirror_killed_at_every_checkpoint() {
    killed_at_every_checkpoint(true);
}

#[test]
fn mirror_update_killed_at_every_checkpoint() {
    killed_at_every_checkpoint(false);
}

/// The partition fills up while the mirror follows a switched sysroot: the change
/// fails, nothing the old mirror boots is cleaned up, and the next change (here a
/// `remove` of a kernel nothing boots) completes the mirror and then cleans up.
#[test]
fn full_partition_after_the_switch() {
    let Some(e) = setup("") else { return };
    e.add(KVER, "our kernel\n");
    e.on_esp("true");
    let old = ostree_set(&e.snap());
    let template = e.t.path().join("template");
    copy_tree(&e.sysroot, &template);
    let big = "x".repeat(4 << 20);
    let o = e.on_esp_output(
        &format!(
            "dd if=/dev/zero of=\"$ESP/filler\" bs=1M 2>/dev/null; sync; {}",
            e.add_script(KVER2, &big)
        ),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("writing the systemd-boot mirror"), "{err}");
    // The sysroot switched (ostree sees the new deployment first), the partition did
    // not, and what its entries boot is all still there.
    let on_disk = || {
        fs::read_dir(e.sysroot.join("ostree/deploy/testos/deploy"))
            .unwrap()
            .filter(|d| d.as_ref().unwrap().file_type().unwrap().is_dir())
            .count()
    };
    let sys = sysroot_entries(&e.sysroot);
    assert!(sys.values().any(|t| t.contains(KVER2)), "{sys:?}");
    assert_eq!(
        on_disk(),
        3,
        "the deployment only the old mirror boots was removed"
    );
    let mut now = ostree_set(&e.snap());
    assert_eq!(now, old);
    check_bootable(&now, &e.snap(), &e.sysroot, &template, "after ENOSPC");
    e.on_esp("rm \"$ESP/filler\"; kernel-install -v remove 9.9.9-none");
    now = ostree_set(&e.snap());
    assert_ne!(now, old);
    assert_eq!(on_disk(), 2);
    let m = check_mirror(&e.sysroot, &e.snap());
    assert!(m["ostree-2"].1.contains(KVER2), "{m:?}");
}

/// Temp files anywhere on the partition snapshot.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(temps(&e.path()));
        } else if name.ends_with(".tmp") {
            out.push(e.path());
        }
    }
    out
}

/// `kernel-install add` onto an existing mirror, its whole process group SIGKILLed at
/// random moments (also in the middle of a kernel copy or an entry write, between
/// checkpoints): the same invariants, and the rerun leaves no temp file.
#[test]
fn mirror_update_killed_at_random_moments() {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let Some(e) = setup("") else { return };
    e.write_tries("3\n");
    e.add(KVER, "our kernel\n");
    let saved = e.save();
    e.on_esp("true");
    let old = ostree_set(&e.snap());
    let reset = || e.restore(&saved);
    // A kernel big enough for a kill to land inside its copy now and then.
    let script = e.add_script(KVER2, &"k".repeat(8 << 20));
    e.on_esp(&script);
    let new = ostree_set(&e.snap());
    // How long mounting and kernel-install take, without the snapshot the exit trap
    // makes (a SIGKILL skips it): kill delays are drawn below that.
    reset();
    let t0 = Instant::now();
    let o = e
        .esp_command(&format!("{script} >/dev/null 2>&1; kill -KILL $$"), &[])
        .output()
        .unwrap();
    let full = t0.elapsed();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(9)
    );
    let runs: u64 = std::env::var("CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut seed: u64 = 0x2545f4914f6cdd1d;
    let (mut saw_old, mut saw_new, mut leftovers) = (0, 0, 0);
    for i in 0..runs {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 + 1));
        reset();
        let mut child = e
            .esp_command(&script, &[])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // The whole group: kernel-install, the plugin script and the binary.
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
        let st = child.wait().unwrap();
        let what = format!("run {i}, killed after {delay:?} ({st})");
        e.on_esp("true");
        let now = ostree_set(&e.snap());
        if now == old {
            saw_old += 1;
        } else {
            assert_eq!(now, new, "{what}: neither the old nor the new set");
            saw_new += 1;
        }
        check_bootable(&now, &e.snap(), &e.sysroot, &saved.sysroot, &what);
        if !temps(&e.snap()).is_empty() {
            leftovers += 1;
        }
        e.on_esp(&script);
        check_mirror(&e.sysroot, &e.snap());
        assert_eq!(temps(&e.snap()), Vec::<PathBuf>::new(), "{what}");
    }
    eprintln!(
        "{runs} random kills (full run {full:?}): {saw_old} old set, {saw_new} new set, {leftovers} left temp files"
    );
}
