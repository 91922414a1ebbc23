//! Kernel extras and legacy kernel locations, differential against `ostree admin
//! deploy` (Debian 12's 2022.7, which has the FIPS hmac, `dtb/` and the legacy
//! layouts), and the entry keys of what 2022.7 lacks (`sysroot.bootprefix`, aboot)
//! checked against libostree's source.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Two identical sysroots with a commit of a tree `shape` made.
fn pair_with(shape: impl Fn(&Path)) -> Option<(Scratch, std::path::PathBuf, std::path::PathBuf)> {
    if !have_ostree() {
        eprintln!("skipped: no ostree CLI");
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    shape(&tree);
    let a = t.path().join("ref");
    make_sysroot(&a, &tree, "1.0");
    let b = t.path().join("ours");
    copy_tree(&a, &b);
    Some((t, a, b))
}

fn both(a: &Path, b: &Path) {
    theirs(a, &["--os=testos", "--karg=root=LABEL=x", "testos/stable"]);
    ours(
        b,
        &[
            "--stateroot",
            "testos",
            "--karg",
            "root=LABEL=x",
            "testos/stable",
        ],
    );
}

fn entry(sysroot: &Path) -> String {
    fs::read_to_string(sysroot.join("boot/loader/entries/ostree-1-testos.conf")).unwrap()
}

#[test]
fn hmac_and_dtb_directory_match_ostree() {
    let Some((_t, a, b)) = pair_with(|tree| {
        let m = tree.join("usr/lib/modules/6.1.0-test");
        write(&m.join(".vmlinuz.hmac"), "hmac of the kernel\n");
        write(&m.join("dtb/vendor/board.dtb"), "board\n");
        write(&m.join("dtb/other.dtb"), "other\n");
    }) else {
        return;
    };
    both(&a, &b);
    assert_same(&snapshot_2022(&a), &snapshot_2022(&b), "hmac + dtb/");
    let e = entry(&b);
    assert!(e.contains("\nfdtdir /ostree/testos-"), "{e}");
    let kdir = fs::read_dir(b.join("boot/ostree"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(kdir.join(".vmlinuz-6.1.0-test.hmac").is_file());
    assert!(kdir.join("dtb/vendor/board.dtb").is_file());
}

#[test]
fn devicetree_file_matches_ostree() {
    let Some((_t, a, b)) = pair_with(|tree| {
        write(
            &tree.join("usr/lib/modules/6.1.0-test/devicetree"),
            "one tree\n",
        );
        write(
            &tree.join("usr/lib/modules/6.1.0-test/dtb/x.dtb"),
            "ignored\n",
        );
    }) else {
        return;
    };
    both(&a, &b);
    assert_same(&snapshot_2022(&a), &snapshot_2022(&b), "devicetree");
    assert!(entry(&b).contains("\ndevicetree /ostree/testos-"));
}

#[test]
fn legacy_layouts_match_ostree() {
    let c = "0123456789abcdef".repeat(4);
    for dir in ["usr/lib/ostree-boot", "boot"] {
        let Some((_t, a, b)) = pair_with(|tree| {
            fs::remove_dir_all(tree.join("usr/lib/modules")).unwrap();
            write(
                &tree.join(dir).join(format!("vmlinuz-5.10.0-{c}")),
                "old kernel\n",
            );
            write(
                &tree.join(dir).join(format!("initramfs-5.10.0.img-{c}")),
                "old initramfs\n",
            );
        }) else {
            return;
        };
        both(&a, &b);
        assert_same(&snapshot_2022(&a), &snapshot_2022(&b), dir);
        let e = entry(&b);
        assert!(
            e.contains(&format!("linux /ostree/testos-{c}/vmlinuz-5.10.0\n")),
            "{e}"
        );
    }
}

/// `sysroot.bootprefix` (libostree 2020.7+, not in 2022.7's Debian build's reach here:
/// checked against `install_deployment_kernel`: `bootprefix = "/boot/"` for linux,
/// initrd, devicetree and fdtdir, never for aboot/abootcfg).
#[test]
fn bootprefix_and_aboot_entry_lines() {
    let Some((_t, _a, b)) = pair_with(|tree| {
        let m = tree.join("usr/lib/modules/6.1.0-test");
        write(&m.join("aboot.img"), "aboot\n");
        write(&m.join("dtb/x.dtb"), "x\n");
    }) else {
        return;
    };
    let cfg = b.join("ostree/repo/config");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("{text}\n[sysroot]\nbootprefix=true\n")).unwrap();
    ours(&b, &["--stateroot", "testos", "testos/stable"]);
    let dep = deployment_dirs(&b)[0].clone();
    let name = dep.file_name().unwrap().to_str().unwrap().to_string();
    let e = ostree_boot::layout::BootEntry::parse(&entry(&b));
    let linux = e.get("linux").unwrap();
    assert!(linux.starts_with("/boot/ostree/testos-"), "{linux}");
    let kdir = linux.trim_end_matches("/vmlinuz-6.1.0-test");
    assert_eq!(
        e.get("initrd").unwrap(),
        format!("{kdir}/initramfs-6.1.0-test.img")
    );
    assert_eq!(e.get("fdtdir").unwrap(), format!("{kdir}/dtb"));
    let rel = kdir.trim_start_matches("/boot");
    assert_eq!(
        e.get("aboot").unwrap(),
        format!("{rel}/aboot-6.1.0-test.img")
    );
    assert_eq!(
        e.get("abootcfg").unwrap(),
        format!("/ostree/deploy/testos/deploy/{name}/usr/lib/ostree-boot/aboot.cfg")
    );
    assert!(
        b.join("boot")
            .join(rel.trim_start_matches('/'))
            .join("aboot-6.1.0-test.img")
            .is_file()
    );
    // ostree 2022.7 still reads the sysroot we wrote.
    status(&b);
}

/// The files under /boot and the entries, as text (what a bootloader reads).
fn boot_view(sysroot: &Path) -> Vec<String> {
    snapshot_content(&sysroot.join("boot"))
        .into_iter()
        .filter(|(k, _)| k.starts_with("loader") || k.starts_with("ostree/"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect()
}

/// Against the sid peer's ostree (2026.x, which has bootprefix and aboot), run in its
/// chroot in a private mount and PID namespace: the same /boot (entries byte for byte,
/// kernel files), for a tree with aboot.img, a dtb/ directory, the FIPS hmac, and
/// `sysroot.bootprefix=true`.
#[test]
fn bootprefix_and_aboot_match_the_sid_peer() {
    let peer = std::env::var_os("OSTREE_PEER_SID")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/peer-sid"));
    if !require(
        peer.join("usr/bin/ostree").is_file(),
        format!(
            "needs the sid peer at {} (scripts/peer-sid.sh builds it)",
            peer.display()
        ),
    ) {
        return;
    }
    let Some((_t, a, b)) = pair_with(|tree| {
        let m = tree.join("usr/lib/modules/6.1.0-test");
        write(&m.join("aboot.img"), "aboot\n");
        write(&m.join(".vmlinuz.hmac"), "hmac\n");
        write(&m.join("dtb/x.dtb"), "x\n");
    }) else {
        return;
    };
    for s in [&a, &b] {
        let cfg = s.join("ostree/repo/config");
        let text = fs::read_to_string(&cfg).unwrap();
        fs::write(&cfg, format!("{text}\n[sysroot]\nbootprefix=true\n")).unwrap();
    }
    // Twice: the second run rewrites the first entry from its file (another key
    // order in ostree's hash table) beside the new one.
    for _ in 0..2 {
        let o = std::process::Command::new("unshare")
            .args(["-m", "-p", "-f", "--propagation", "private", "sh", "-euc"])
            .arg(
                "mount --bind \"$1\" \"$2/mnt\"; mount -t proc proc \"$2/proc\"; \
                 exec chroot \"$2\" ostree admin deploy --sysroot=/mnt --os=testos --karg=root=LABEL=x testos/stable",
            )
            .arg("sh")
            .arg(&a)
            .arg(&peer)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ours_default(
            &b,
            &[
                "--stateroot",
                "testos",
                "--karg",
                "root=LABEL=x",
                "testos/stable",
            ],
        );
    }
    for n in ["ostree-1.conf", "ostree-2.conf"] {
        let ea = fs::read_to_string(a.join("boot/loader/entries").join(n)).unwrap();
        let eb = fs::read_to_string(b.join("boot/loader/entries").join(n)).unwrap();
        assert_eq!(ea, eb, "{n}: ostree 2026 vs ours");
    }
    let (va, vb) = (boot_view(&a), boot_view(&b));
    assert_eq!(va, vb, "ostree 2026 vs ours");
    let e = fs::read_to_string(b.join("boot/loader/entries/ostree-2.conf")).unwrap();
    assert!(
        e.contains("\naboot /ostree/testos-") && e.contains("\nfdtdir /boot/ostree/"),
        "{e}"
    );
}
