//! Staged deployments on a simulated booted system (tests/booted-ns.sh: a chroot into
//! the booted deployment in a private mount namespace, with its own /run), against the
//! real ostree CLI (Debian 12's 2022.7): either tool stages, either finalizes, and the
//! sysroots come out the same.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const NS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/booted-ns.sh");

/// A tree that can be the root of the chroot: mount points, and bin/lib links into the
/// host's /usr that booted-ns.sh mounts at /run/hostusr.
fn bootable_tree(dir: &Path, kver: &str, kernel: &str) {
    make_tree(dir, kver, kernel);
    for d in ["sysroot", "boot", "run", "tmp", "proc", "dev"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("run/hostusr/{l}"), dir.join(l)).unwrap();
    }
    std::os::unix::fs::symlink("sysroot/ostree", dir.join("ostree")).unwrap();
}

struct Booted {
    _t: Scratch,
    sysroot: PathBuf,
    tree: PathBuf,
    out: PathBuf,
}

/// A sysroot with one deployment made by `ostree admin deploy`, and a second commit.
fn booted() -> Option<Booted> {
    if !have_ostree() {
        eprintln!("skipped: no ostree CLI");
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    bootable_tree(&tree, "6.1.0-test", "a kernel\n");
    let sysroot = t.path().join("sysroot");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(
        &sysroot,
        &["--os=testos", "--karg=root=LABEL=x", "testos/stable"],
    );
    // The update: new content and a new kernel.
    write(&tree.join("usr/share/doc/v"), "2\n");
    write(&tree.join("usr/etc/new.conf"), "from the update\n");
    write(
        &tree.join("usr/lib/modules/6.1.0-test/vmlinuz"),
        "kernel 2\n",
    );
    commit(&sysroot, &tree, "2.0");
    let out = t.path().join("out");
    fs::create_dir_all(&out).unwrap();
    Some(Booted {
        _t: t,
        sysroot,
        tree,
        out,
    })
}

impl Booted {
    /// Runs `script` with the current default deployment booted; false when mount
    /// namespaces are not available.
    fn run(&self, script: &str) -> Option<String> {
        let dep = deployment_dirs(&self.sysroot)[0].clone();
        let md = fs::metadata(&dep).unwrap();
        let info = ostree_boot::ostree::booted::OstreeBooted {
            backing_root_device_inode: (md.dev(), md.ino()),
            ..Default::default()
        };
        let file = self.out.join("ostree-booted");
        fs::write(&file, info.to_bytes().unwrap()).unwrap();
        let o = Command::new("unshare")
            .args(["-m", "-p", "-f", "--propagation", "private", NS])
            .arg(&self.sysroot)
            .arg(&dep)
            .arg(&file)
            .arg(&self.out)
            .arg(BIN)
            .arg(script)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if err.contains("unshare failed")
            && !require(false, format!("needs mount namespaces: {err}"))
        {
            return None;
        }
        assert!(
            o.status.success(),
            "script failed: {script}\nstdout: {}\nstderr: {err}",
            String::from_utf8_lossy(&o.stdout)
        );
        Some(String::from_utf8_lossy(&o.stdout).into_owned() + &err)
    }

    fn out(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }
}

const OURS_STAGE: &str = "$OURS deploy --stage testos/stable";
const THEIRS_STAGE: &str = "ostree admin deploy --stage testos/stable";
const OURS_FINALIZE: &str = "$OURS finalize-staged";
const THEIRS_FINALIZE: &str = "ostree admin finalize-staged";

/// Stage, check it is staged, edit /etc, finalize: the sysroot afterwards.
fn scenario(
    stage: &str,
    finalize: &str,
) -> Option<(Booted, std::collections::BTreeMap<String, String>)> {
    let b = booted()?;
    let script = format!(
        "{stage}
ostree admin status > /tmp/status-staged
cp /run/ostree/staged-deployment /tmp/staged-file
ls /boot/loader/entries > /tmp/entries-staged
(cd /ostree/repo/refs/heads && find ostree -type f | sort | xargs cat) > /tmp/refs-staged
ls /ostree/deploy/testos/deploy > /tmp/deploy-staged
lsattr -d /ostree/deploy/testos/deploy/*.? > /tmp/attrs-staged 2>&1 || true
echo 'edited after staging' > /etc/motd
echo new > /etc/added-after-staging
{finalize}
test ! -e /run/ostree/staged-deployment
ostree admin status > /tmp/status-final"
    );
    b.run(&script)?;
    assert!(
        b.out("status-staged").contains("(staged)"),
        "{}",
        b.out("status-staged")
    );
    assert_eq!(b.out("entries-staged").lines().count(), 1);
    let st = b.out("status-final");
    assert!(!st.contains("staged"), "{st}");
    let dirs = deployment_dirs(&b.sysroot);
    assert_eq!(dirs.len(), 2, "{st}");
    let new = &dirs[0];
    assert_eq!(
        fs::read_to_string(new.join("etc/motd")).unwrap(),
        "edited after staging\n"
    );
    assert_eq!(
        fs::read_to_string(new.join("etc/added-after-staging")).unwrap(),
        "new\n"
    );
    assert_eq!(
        fs::read_to_string(new.join("etc/new.conf")).unwrap(),
        "from the update\n"
    );
    let snap = snapshot_content_2022(&b.sysroot);
    Some((b, snap))
}

#[test]
fn ours_stage_and_finalize() {
    let Some((b, _)) = scenario(OURS_STAGE, OURS_FINALIZE) else {
        return;
    };
    // Staged: our file is read back by our parser and names the new deployment.
    let bytes = fs::read(b.out.join("staged-file")).unwrap();
    let s = ostree_boot::ostree::staged::Staged::from_bytes(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(s.target.osname, "testos");
    assert!(s.merge.is_some() && !s.locked && s.kargs.is_none());
    let entry =
        fs::read_to_string(b.sysroot.join("boot/loader/entries/ostree-2-testos.conf")).unwrap();
    assert!(entry.contains("root=LABEL=x"), "{entry}");
    assert!(
        entry.contains(&format!("-{}/vmlinuz-6.1.0-test", s.target.bootcsum)),
        "{entry}"
    );
    let _ = b.tree;
}

#[test]
fn stage_and_finalize_match_ostree_either_way() {
    let Some((a, reference)) = scenario(THEIRS_STAGE, THEIRS_FINALIZE) else {
        return;
    };
    let theirs_file = fs::read(a.out.join("staged-file")).unwrap();
    for (stage, finalize) in [
        (OURS_STAGE, THEIRS_FINALIZE),
        (THEIRS_STAGE, OURS_FINALIZE),
        (OURS_STAGE, OURS_FINALIZE),
    ] {
        let (b, snap) = scenario(stage, finalize).unwrap();
        assert_same(&reference, &snap, &format!("{stage} / {finalize}"));
        // While staged: the same refs (the staged commit protected from pruning), the
        // same deployment directories and immutable flags.
        for f in ["refs-staged", "deploy-staged", "attrs-staged"] {
            assert_eq!(b.out(f), a.out(f), "{f}: {stage}");
        }
        // Same commit, same serial, same merge deployment: the same bytes.
        assert_eq!(
            fs::read(b.out.join("staged-file")).unwrap(),
            theirs_file,
            "{stage}"
        );
    }
}

fn entries(sysroot: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(sysroot.join("boot/loader/entries"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

fn deploy_dir_count(sysroot: &Path) -> usize {
    fs::read_dir(sysroot.join("ostree/deploy/testos/deploy"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
        .count()
}

#[test]
fn locked_stage_is_not_finalized_and_goes_on_next_boot() {
    let Some(b) = booted() else { return };
    let before = entries(&b.sysroot);
    // Ours locks: neither finalizer touches it. Theirs locks (2022.7: the legacy
    // lock file only): ours leaves it too.
    let Some(_) = b.run(
        "$OURS deploy --lock-finalization testos/stable
test -e /run/ostree/staged-deployment-locked
$OURS finalize-staged
ostree admin finalize-staged
ostree admin status > /tmp/status-locked
test -e /run/ostree/staged-deployment
ostree admin deploy --stage --lock-finalization testos/stable
$OURS finalize-staged > /tmp/finalize-out
test -e /run/ostree/staged-deployment",
    ) else {
        return;
    };
    assert!(b.out("status-locked").contains("(staged)"));
    assert_eq!(entries(&b.sysroot), before);
    assert_eq!(deploy_dir_count(&b.sysroot), 2);
    // The next boot (a fresh /run): the unfinalized deployment is removed by the next
    // change, as by libostree's cleanup; here a new stage.
    b.run("$OURS deploy --stage testos/stable\nostree admin status > /tmp/status-2")
        .unwrap();
    assert_eq!(deploy_dir_count(&b.sysroot), 2);
    assert_eq!(entries(&b.sysroot), before);
    // And ostree's own cleanup, after another reboot, agrees that it is garbage.
    b.run("ostree admin cleanup").unwrap();
    assert_eq!(deploy_dir_count(&b.sysroot), 1);
}

#[test]
fn killed_finalization_leaves_a_bootable_configuration() {
    for point in [
        "staged-file-removed",
        "etc-merged",
        "before-swap",
        "after-swap",
    ] {
        let Some(b) = booted() else { return };
        let before = entries(&b.sysroot);
        b.run(&format!(
            "$OURS deploy --stage testos/stable
if OSTREE_COMPOSEFS_FAULT={point} $OURS finalize-staged; then exit 1; fi
ostree admin status > /tmp/status-killed
test ! -e /run/ostree/staged-deployment"
        ))
        .unwrap();
        let st = b.out("status-killed");
        let after = entries(&b.sysroot);
        if point == "after-swap" {
            assert_eq!(after.len(), 2, "{point}: {st}");
        } else {
            assert_eq!(after, before, "{point}: {st}");
        }
        // Every entry's kernel and deployment exist.
        for e in &after {
            let e = ostree_boot::layout::BootEntry::parse(e);
            let linux = e.get("linux").unwrap().trim_start_matches('/');
            assert!(
                b.sysroot.join("boot").join(linux).is_file(),
                "{point}: {linux}"
            );
        }
        // The next boot stages and finalizes again.
        b.run("$OURS deploy --stage testos/stable\n$OURS finalize-staged")
            .unwrap();
        assert_eq!(entries(&b.sysroot).len(), 2, "{point}");
    }
}

#[test]
fn journal_entries_carry_ostree_message_ids() {
    let Some(b) = booted() else { return };
    // The journal socket inside the namespace is this one (booted-ns.sh mounts it).
    let jdir = b.out.join("journal");
    fs::create_dir_all(&jdir).unwrap();
    let sock = std::os::unix::net::UnixDatagram::bind(jdir.join("socket")).unwrap();
    sock.set_nonblocking(true).unwrap();
    b.run("$OURS deploy --stage testos/stable\necho x > /etc/motd\n$OURS finalize-staged")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let find = |id: &str| {
        got.iter()
            .find(|m| m.contains(&format!("MESSAGE_ID={id}\n")))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {got:#?}"))
    };
    let fin = find("e8646cd63dff4625b77909a8e7a40994");
    assert!(
        fin.contains("MESSAGE=Finalizing staged deployment\n"),
        "{fin}"
    );
    assert!(
        fin.contains("OSTREE_OSNAME=testos\nOSTREE_CHECKSUM="),
        "{fin}"
    );
    let merge = find("d3863baec13e4449ab0384684a8af3a7");
    assert!(
        merge.contains("MESSAGE=Copying /etc changes: 1 modified, 0 removed, 0 added\n"),
        "{merge}"
    );
    assert!(merge.contains("ETC_N_MODIFIED=1\n"), "{merge}");
    let done = find("dd440e3e549083b63d0efc7dc15255f1");
    assert!(done.contains("OSTREE_N_DEPLOYMENTS=2\n"), "{done}");
    assert!(done.contains("bootconfig swap: yes"), "{done}");
    assert!(
        got.iter()
            .any(|m| m.contains("MESSAGE=Finalized deployment\n"))
    );
}

/// kernel-install on the running system with `stage=true`: the plugin stages, the new
/// kernel is in /boot but no entry boots it until finalization, which carries an /etc
/// edit made after the kernel-install.
#[test]
fn kernel_install_plugin_stages() {
    let Some(b) = booted() else { return };
    if Command::new("kernel-install")
        .arg("--version")
        .output()
        .is_err()
        && !require(false, "needs systemd's kernel-install")
    {
        return;
    }
    write(&b.out.join("conf/install.conf"), "layout=ostree\n");
    write(&b.out.join("conf/cmdline"), "root=LABEL=ROOT rw\n");
    write(
        &b.out.join("kiroot/etc/ostree/kernel-install.conf"),
        "[kernel-install]\nstage=true\n",
    );
    write(&b.out.join("vmlinuz-6.2.0-new"), "a new kernel\n");
    let plugin = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../units/kernel-install/88-ostree-composefs.install"
    );
    fs::copy(plugin, b.out.join("88-ostree-composefs.install")).unwrap();
    let Some(_) = b.run(
        "export KERNEL_INSTALL_CONF_ROOT=/tmp/conf BOOT_ROOT=/boot \
MACHINE_ID=3e0484f3634a418b8e6a39e8828b03e3 KERNEL_INSTALL_PLUGINS=/tmp/88-ostree-composefs.install \
OSTREE_COMPOSEFS=$OURS OSTREE_KERNEL_INSTALL_CONF_ROOT=/tmp/kiroot
kernel-install -v add 6.2.0-new /tmp/vmlinuz-6.2.0-new > /tmp/ki-out 2>&1
test -e /run/ostree/staged-deployment
ls /boot/loader/entries > /tmp/entries-staged
echo after > /etc/motd
$OURS finalize-staged",
    ) else {
        return;
    };
    assert!(b.out("ki-out").contains("staged"), "{}", b.out("ki-out"));
    assert_eq!(b.out("entries-staged").lines().count(), 1);
    let e = ostree_boot::layout::BootEntry::parse(
        &fs::read_to_string(b.sysroot.join("boot/loader/entries/ostree-2-testos.conf")).unwrap(),
    );
    assert!(e.get("linux").unwrap().ends_with("/vmlinuz-6.2.0-new"));
    assert!(e.get("options").unwrap().starts_with("root=LABEL=ROOT rw"));
    let new = &deployment_dirs(&b.sysroot)[0];
    assert_eq!(fs::read_to_string(new.join("etc/motd")).unwrap(), "after\n");
}

/// A regular deploy while a deployment is staged drops the staged one (its state,
/// lock and directory), as libostree: the same sysroot whichever tool deploys.
#[test]
fn regular_deploy_drops_the_staged_deployment() {
    let mut snaps = Vec::new();
    for deploy in [
        "ostree admin deploy testos/stable",
        "$OURS deploy --bootloader-naming-1 testos/stable",
    ] {
        let Some(b) = booted() else { return };
        b.run(&format!(
            "$OURS deploy --lock-finalization testos/stable
{deploy}
test ! -e /run/ostree/staged-deployment
test ! -e /run/ostree/staged-deployment-locked
ostree admin status > /tmp/status"
        ))
        .unwrap();
        assert!(!b.out("status").contains("staged"), "{}", b.out("status"));
        assert_eq!(deploy_dir_count(&b.sysroot), 2, "{deploy}");
        snaps.push((b, deploy));
    }
    let (a, _) = &snaps[0];
    let (b, d) = &snaps[1];
    assert_same(
        &snapshot_content_2022(&a.sysroot),
        &snapshot_content_2022(&b.sysroot),
        d,
    );
}

/// A failed finalization leaves its message in /boot/ostree/finalize-failure.stamp (as
/// libostree) and the old entries; a later successful one removes the stamp. `--hold`
/// waits with /boot open until SIGTERM.
#[test]
fn failure_stamp_and_hold() {
    let Some(b) = booted() else { return };
    let before = entries(&b.sysroot);
    b.run(
        "$OURS finalize-staged --hold & hold=$!
sleep 0.3
kill -0 $hold
$OURS deploy --stage testos/stable
# The staged tree loses its kernel: finalization cannot write an entry for it.
d=$(ls -d /ostree/deploy/testos/deploy/*.? | while read -r x; do [ -d \"$x/usr/lib/modules\" ] && lsattr -d \"$x\" | grep -q -- '-i-' || echo \"$x\"; done | head -n1)
rm -r \"$d/usr/lib/modules\"
if $OURS finalize-staged 2> /tmp/finalize-err; then exit 1; fi
cp /boot/ostree/finalize-failure.stamp /tmp/stamp
$OURS deploy --stage testos/stable
$OURS finalize-staged
test ! -e /boot/ostree/finalize-failure.stamp
kill $hold
wait $hold || true",
    )
    .unwrap();
    let stamp = b.out("stamp");
    assert!(stamp.contains("no kernel with bootcsum"), "{stamp}");
    assert!(
        b.out("finalize-err").contains(&stamp),
        "{}",
        b.out("finalize-err")
    );
    let after = entries(&b.sysroot);
    assert_ne!(after, before);
    assert_eq!(after.len(), 2);
}

/// With kernel arguments the staged file carries them (`kargs`): the same bytes from
/// both tools, and the finalized entry has them.
#[test]
fn staged_kargs_match_ostree() {
    let mut files = Vec::new();
    for stage in [
        "ostree admin deploy --stage --karg=quiet --karg=root=LABEL=y testos/stable",
        "$OURS deploy --stage --karg quiet --karg root=LABEL=y testos/stable",
    ] {
        let Some(b) = booted() else { return };
        b.run(&format!(
            "{stage}\ncp /run/ostree/staged-deployment /tmp/staged-file\n$OURS finalize-staged"
        ))
        .unwrap();
        let e =
            fs::read_to_string(b.sysroot.join("boot/loader/entries/ostree-2-testos.conf")).unwrap();
        // The merge deployment's arguments, root= replaced in place, quiet appended,
        // and ostree= rewritten in place when the entry is written.
        assert!(
            e.contains("options root=LABEL=y ostree=/ostree/boot.0/testos/"),
            "{e}"
        );
        assert!(e.contains("/0 quiet\n"), "{e}");
        files.push(fs::read(b.out.join("staged-file")).unwrap());
    }
    assert_eq!(files[0], files[1]);
    let s = ostree_boot::ostree::staged::Staged::from_bytes(&files[1])
        .unwrap()
        .unwrap();
    let k = s.kargs.unwrap();
    assert_eq!(
        (k.len(), k[0].as_str(), k[2].as_str()),
        (3, "root=LABEL=y", "quiet")
    );
    assert!(k[1].starts_with("ostree=/ostree/boot.1/testos/"), "{k:?}");
}

/// An overlay initrd staged by ostree (`--overlay-initrd`): our finalization installs it
/// and lists it in the entry as ostree's does.
#[test]
fn overlay_initrd_staged_by_ostree() {
    let mut snaps = Vec::new();
    for finalize in [THEIRS_FINALIZE, OURS_FINALIZE] {
        let Some(b) = booted() else { return };
        write(&b.out.join("overlay.img"), "an overlay initrd\n");
        b.run(&format!(
            "ostree admin deploy --stage --overlay-initrd=/tmp/overlay.img testos/stable\n{finalize}"
        ))
        .unwrap();
        let e =
            fs::read_to_string(b.sysroot.join("boot/loader/entries/ostree-2-testos.conf")).unwrap();
        assert!(
            e.contains("\ninitrd /ostree/initramfs-overlays/"),
            "{finalize}: {e}"
        );
        snaps.push((snapshot_content_2022(&b.sysroot), b));
    }
    assert_same(&snaps[0].0, &snaps[1].0, "overlay initrd");
}

/// A commit whose version would add lines to the boot entry is refused on the staged
/// path as on a plain deploy, before anything is staged.
#[test]
fn newline_in_commit_version_is_refused_when_staging() {
    let Some(b) = booted() else { return };
    let csum = commit(&b.sysroot, &b.tree, "2.0\noptions init=/bin/sh");
    let before = entries(&b.sysroot);
    b.run(
        "if $OURS deploy --stage testos/stable 2>/tmp/stage-err; then exit 1; fi
test ! -e /run/ostree/staged-deployment",
    )
    .unwrap();
    let err = b.out("stage-err");
    assert!(
        err.contains(&format!(
            "boot entry for commit {csum}: version \"2.0\\noptions init=/bin/sh\" refused: it contains a control character"
        )),
        "{err}"
    );
    assert_eq!(entries(&b.sysroot), before);
    assert_eq!(deploy_dir_count(&b.sysroot), 1);
}
