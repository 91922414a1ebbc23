//! ostree-prepare-root against upstream's (ostree 2026.x, `tests/src/peer.rs`): both run
//! in the peer chroot, each in a private mount namespace of its own, on the same sysroot
//! (bound at `/sysroot`), configuration and kernel command line; the mount tree below
//! `/sysroot` (`findmnt`), `/run/ostree-booted` and success or failure must agree.

mod common;

use std::fs;

use common::Sysroot;
use ostree_boot_tests::peer::{Peer, peer, quote};

#[derive(Debug, PartialEq)]
struct Outcome {
    ok: bool,
    /// `TARGET FSTYPE OPTIONS PROPAGATION` of every mount at or below /sysroot, options
    /// normalized (see [`normalize`]).
    mounts: Vec<String>,
    /// `/run/ostree-booted`, hex.
    booted: String,
    /// Where `/run/systemd/volatile-root` points, if anywhere.
    volatile_root: String,
}

#[derive(Default, Clone)]
struct Conf<'a> {
    usr_conf: Option<&'a str>,
    etc_conf: Option<&'a str>,
    key: Option<String>,
    kargs: &'a str,
}

/// Options that name things each implementation picks itself: loop devices, the private
/// directories of the composefs lower layer, SELinux-free defaults the kernel adds.
fn normalize(fstype: &str, opts: &str) -> String {
    let mut v: Vec<&str> = opts
        .split(',')
        .filter(|o| {
            !o.starts_with("lowerdir") && !o.starts_with("upperdir") && !o.starts_with("workdir")
        })
        .filter(|o| !(fstype == "erofs" && o.starts_with("source")))
        .collect();
    v.sort();
    v.join(",")
}

fn run(p: &Peer, sr: &Sysroot, bin: &str, conf: &Conf) -> (Outcome, String) {
    run_on(p, sr, bin, conf, None)
}

/// [`run`]; with `btrfs`, the sysroot is copied onto that (fresh) btrfs image, loop
/// mounted at `/sysroot` inside the namespace, instead of bound; the loop device node is
/// made visible in the chroot's `/dev`, as devtmpfs shows it in an initrd.
fn run_on(
    p: &Peer,
    sr: &Sysroot,
    bin: &str,
    conf: &Conf,
    btrfs: Option<&std::path::Path>,
) -> (Outcome, String) {
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let w = work.path();
    let srq = quote(&sr.path.display().to_string());
    let mut setup = "mkdir -p \"$R/sysroot\" \"$R/etc/ostree\" \"$R/usr/lib/ostree\"\n".to_string();
    match btrfs {
        None => setup.push_str(&format!("mount --bind {srq} \"$R/sysroot\"\n")),
        Some(img) => setup.push_str(&format!(
            "mount -o loop {img} \"$R/sysroot\"\ncp -a {srq}/. \"$R/sysroot/\"\n\
             loop=$(findmnt -no SOURCE \"$R/sysroot\"); : > \"$R$loop\"; mount --bind \"$loop\" \"$R$loop\"\n",
            img = quote(&img.display().to_string())
        )),
    }
    for (path, content) in [
        (
            "usr/lib/ostree/prepare-root.conf",
            conf.usr_conf.map(str::to_string),
        ),
        (
            "etc/ostree/prepare-root.conf",
            conf.etc_conf.map(str::to_string),
        ),
        ("etc/ostree/initramfs-root-binding.key", conf.key.clone()),
    ] {
        if let Some(c) = content {
            fs::write(w.join("f"), format!("{c}\n")).unwrap();
            setup.push_str(&format!(
                "cp {}/f \"$R/{path}\"\n",
                quote(&w.display().to_string())
            ));
        }
    }
    let cmdline = format!(
        "root=UUID=cafebabe ostree={} {}",
        sr.karg.replace(&sr.path.display().to_string(), ""),
        conf.kargs
    );
    fs::write(w.join("cmdline"), format!("{cmdline}\n")).unwrap();
    setup.push_str(&format!(
        "mount --bind {}/cmdline \"$R/proc/cmdline\"\n",
        quote(&w.display().to_string())
    ));
    if bin != "upstream" {
        setup.push_str(&format!(
            "cp {} \"$R/usr/local/bin/ours-prepare-root\"\n",
            quote(bin)
        ));
    }
    let exe = if bin == "upstream" {
        "/usr/lib/ostree/ostree-prepare-root"
    } else {
        "/usr/local/bin/ours-prepare-root"
    };
    let script = format!(
        "{exe} /sysroot; echo \"rc=$?\"; echo '--mounts--'; \
         findmnt -rn -o TARGET,FSTYPE,OPTIONS,PROPAGATION | grep '^/sysroot'; echo '--booted--'; \
         od -An -tx1 -v /run/ostree-booted 2>/dev/null | tr -d ' \\n'; echo; \
         echo '--volatile--'; readlink /run/systemd/volatile-root"
    );
    let o = p.run_with(&[], &setup, &script);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let rc = out
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or("?");
    let (_, rest) = out.split_once("--mounts--\n").unwrap_or(("", ""));
    let (m, b) = rest.split_once("--booted--\n").unwrap_or((rest, ""));
    let (b, volatile_root) = b.split_once("--volatile--\n").unwrap_or((b, ""));
    let mounts: Vec<String> = m
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (w.len() == 4).then(|| format!("{} {} {} {}", w[0], w[1], normalize(w[1], w[2]), w[3]))
        })
        .collect();
    // The harness's bind of the sysroot is moved to /sysroot/sysroot by prepare-root, so
    // every line is prepare-root's doing. The transient /etc directory's mkdtemp suffix (6 bytes after "transient-etc.").
    let mut booted = b.trim().to_string();
    let marker = "7472616e7369656e742d6574632e";
    if let Some(i) = booted.find(marker) {
        let at = i + marker.len();
        booted.replace_range(at..(at + 12).min(booted.len()), "XXXXXXXXXXXX");
    }
    (
        Outcome {
            ok: rc == "0",
            mounts,
            booted,
            volatile_root: volatile_root.trim().to_string(),
        },
        format!("{out}\n{err}"),
    )
}

fn compare(p: &Peer, sr: &Sysroot, conf: &Conf, what: &str) -> Outcome {
    let (a, ta) = run(p, sr, "upstream", conf);
    let (b, tb) = run(p, sr, &common::prepare_root_bin(), conf);
    assert_eq!(
        a, b,
        "{what}: upstream vs ours\n--- upstream said:\n{ta}\n--- ours said:\n{tb}"
    );
    a
}

fn fixture(with_cfs: bool) -> Option<(Peer, std::sync::MutexGuard<'static, ()>, Sysroot)> {
    let p = peer()?;
    if !common::privileged() {
        panic!("the prepare-root differential tests need root");
    }
    let g = common::serial();
    let sr = Sysroot::build(&[]);
    if with_cfs {
        sr.write_cfs();
    }
    Some((p, g, sr))
}

const YES: &str = "[composefs]\nenabled=yes";

#[test]
fn same_mounts_and_booted_file_as_2026() {
    let Some((p, _g, sr)) = fixture(true) else {
        return;
    };
    let cases: Vec<(&str, Conf)> = vec![
        (
            "yes",
            Conf {
                usr_conf: Some(YES),
                ..Default::default()
            },
        ),
        (
            "maybe",
            Conf {
                usr_conf: Some("[composefs]\nenabled=maybe"),
                ..Default::default()
            },
        ),
        (
            "no",
            Conf {
                usr_conf: Some("[composefs]\nenabled=no"),
                ..Default::default()
            },
        ),
        ("no config", Conf::default()),
        (
            "transient etc",
            Conf {
                usr_conf: Some("[composefs]\nenabled=yes\n[etc]\ntransient=true"),
                ..Default::default()
            },
        ),
        (
            "transient root",
            Conf {
                usr_conf: Some("[composefs]\nenabled=yes\n[root]\ntransient=true"),
                ..Default::default()
            },
        ),
        (
            "sysroot readonly false",
            Conf {
                usr_conf: Some("[composefs]\nenabled=yes\n[sysroot]\nreadonly=false"),
                ..Default::default()
            },
        ),
        (
            "legacy sysroot readonly",
            Conf {
                usr_conf: Some("[composefs]\nenabled=no\n[sysroot]\nreadonly=true"),
                ..Default::default()
            },
        ),
        (
            "karg disables",
            Conf {
                usr_conf: Some(YES),
                kargs: "ostree.prepare-root.composefs=0",
                ..Default::default()
            },
        ),
        (
            "karg enables",
            Conf {
                usr_conf: Some("[composefs]\nenabled=no"),
                kargs: "ostree.prepare-root.composefs=1",
                ..Default::default()
            },
        ),
        (
            "etc overrides usr",
            Conf {
                usr_conf: Some("[composefs]\nenabled=no"),
                etc_conf: Some(YES),
                ..Default::default()
            },
        ),
    ];
    for (what, conf) in &cases {
        let o = compare(&p, &sr, conf, what);
        assert!(o.ok && o.mounts.len() >= 3, "{what}: {o:?}");
    }
    // An image that exists but does not mount (garbage): 2026.x falls back to the plain
    // bind only when there is no image (ENOENT from lcfs_mount_image); here maybe fails
    // as yes does, in both.
    fs::write(sr.cfs_path(), vec![0x5a; 8192]).unwrap();
    let m = compare(
        &p,
        &sr,
        &Conf {
            usr_conf: Some("[composefs]\nenabled=maybe"),
            ..Default::default()
        },
        "maybe, broken image",
    );
    assert!(!m.ok, "{m:?}");
    let y = compare(
        &p,
        &sr,
        &Conf {
            usr_conf: Some(YES),
            ..Default::default()
        },
        "yes, broken image",
    );
    assert!(!y.ok);
    // Missing image: maybe falls back to the plain bind, yes fails.
    sr.remove_cfs();
    let m = compare(
        &p,
        &sr,
        &Conf {
            usr_conf: Some("[composefs]\nenabled=maybe"),
            ..Default::default()
        },
        "maybe without image",
    );
    assert!(m.ok);
    let y = compare(
        &p,
        &sr,
        &Conf {
            usr_conf: Some(YES),
            ..Default::default()
        },
        "yes without image",
    );
    assert!(!y.ok);
}

#[test]
fn same_verdicts_on_signed_commits_as_2026() {
    let Some((p, _g, sr)) = fixture(true) else {
        return;
    };
    let signed = |key: &str| Conf {
        usr_conf: Some("[composefs]\nenabled=signed"),
        key: Some(key.to_string()),
        ..Default::default()
    };
    // Unsigned commit: refused by both.
    assert!(!compare(&p, &sr, &signed(&sr.public_b64), "signed, unsigned commit").ok);
    sr.sign(&sr.secret_b64);
    let (_, other) = sr.other_key();
    assert!(!compare(&p, &sr, &signed(&other), "signed by another key").ok);
    // The right key, but the commit carries no composefs digest: both refuse.
    assert!(
        !compare(
            &p,
            &sr,
            &signed(&sr.public_b64),
            "signed, no digest in the commit"
        )
        .ok
    );
}

/// A physical root on btrfs (anonymous st_dev): both find its one device through
/// BTRFS_IOC_FS_INFO for /run/systemd/volatile-root, the loop device here.
#[test]
fn volatile_root_on_btrfs_as_2026() {
    let Some((p, _g, sr)) = fixture(true) else {
        return;
    };
    let img = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    img.as_file().set_len(200 << 20).unwrap();
    let mk = std::process::Command::new("mkfs.btrfs")
        .args(["-q", "-f"])
        .arg(img.path())
        .output()
        .expect("mkfs.btrfs (scripts/setup.sh installs btrfs-progs)");
    assert!(
        mk.status.success(),
        "mkfs.btrfs: {}",
        String::from_utf8_lossy(&mk.stderr)
    );
    let conf = Conf {
        usr_conf: Some(YES),
        ..Default::default()
    };
    let (a, ta) = run_on(&p, &sr, "upstream", &conf, Some(img.path()));
    let (b, tb) = run_on(
        &p,
        &sr,
        &common::prepare_root_bin(),
        &conf,
        Some(img.path()),
    );
    assert!(a.ok && b.ok, "upstream:\n{ta}\nours:\n{tb}");
    assert!(
        a.volatile_root.starts_with("/dev/block/7:"),
        "upstream: {a:?}\n{ta}"
    );
    // Each run attached its own loop device; the link names it.
    assert!(
        b.volatile_root.starts_with("/dev/block/7:"),
        "ours: {b:?}\n{tb}"
    );
    assert_eq!(a.mounts, b.mounts);
}
