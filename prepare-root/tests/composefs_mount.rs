//! The composefs mount on this host's kernel: EROFS from a file and through a loop
//! device, overlayfs with data-only layers, the verity checks up to the ioctl.
//!
//! Each test re-runs itself inside `unshare -m` (the mount calls are library functions,
//! so they must run in the test process, in a private namespace).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ostree_prepare_root::composefs_mount::{
    self, CfsMountError, CfsMountOptions, ErofsBacking, OverlaySyntax,
};

const INNER: &str = "PREPARE_ROOT_TEST_IN_NAMESPACE";

/// Runs the test `name` again in a private mount namespace; returns true when we are
/// that inner run and the body should execute.
fn reexec(name: &str, env: &[(&str, String)]) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    if !common::privileged() {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private"]).arg(exe).args([
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(INNER, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let so = common::stdout(&out);
    assert!(
        out.status.success() && so.contains("1 passed"),
        "inner run of {name} failed:\n{so}\n{}",
        common::stderr(&out)
    );
    false
}

fn opts(s: &Path, lower: &Path) -> CfsMountOptions {
    CfsMountOptions {
        image_mountdir: lower.to_path_buf(),
        objdirs: vec![s.join("ostree/repo/objects")],
        upper_work: None,
        read_only: true,
        require_verity: false,
        expected_digest: None,
    }
}

fn findmnt(target: &Path) -> String {
    let o = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-M"])
        .arg(target)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn with_sysroot(test: &str, body: impl FnOnce(&Path, &Path)) {
    let _g = common::serial();
    let sr;
    let path = if std::env::var_os(INNER).is_some() {
        PathBuf::from(std::env::var("TEST_SYSROOT").unwrap())
    } else {
        if !common::privileged() {
            return;
        }
        sr = common::Sysroot::build(&[]);
        sr.write_cfs();
        reexec(
            test,
            &[
                ("TEST_SYSROOT", sr.path.display().to_string()),
                ("TEST_DEPLOY", sr.deploy.display().to_string()),
            ],
        );
        return;
    };
    let deploy = PathBuf::from(std::env::var("TEST_DEPLOY").unwrap());
    let _ = &path;
    body(&path, &deploy);
}

#[test]
fn mounts_from_file_with_lowerdir_plus() {
    with_sysroot("mounts_from_file_with_lowerdir_plus", |s, deploy| {
        let work = tempfile::tempdir().unwrap();
        let lower = work.path().join("lower");
        let target = work.path().join("target");
        std::fs::create_dir(&lower).unwrap();
        std::fs::create_dir(&target).unwrap();
        let report =
            composefs_mount::mount_image(&deploy.join(".ostree.cfs"), &target, &opts(s, &lower))
                .unwrap();
        assert_eq!(
            report.erofs,
            ErofsBacking::File,
            "kernel 6.12+ mounts EROFS from a file"
        );
        assert_eq!(report.overlay, OverlaySyntax::LowerdirPlus);
        assert!(report.new_mount_api);
        assert_eq!(
            std::fs::read(target.join("usr/bin/hello")).unwrap(),
            b"hello from the composefs root\n"
        );
        assert_eq!(
            std::fs::read(target.join("usr/bin/big")).unwrap().len(),
            20000
        );
        let m = findmnt(&target);
        assert!(m.starts_with("composefs overlay ro,"), "{m}");
        assert!(
            m.contains("metacopy=on") && m.contains("redirect_dir=on"),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "datadir+={}",
                s.join("ostree/repo/objects").display()
            )),
            "{m}"
        );
        // The temporary EROFS mount is gone, its directory empty.
        assert_eq!(findmnt(&lower), "");
        assert_eq!(std::fs::read_dir(&lower).unwrap().count(), 0);
        assert!(std::fs::write(target.join("x"), b"").is_err(), "read-only");
    });
}

#[test]
fn mounts_through_a_loop_device_and_transient_upper() {
    with_sysroot(
        "mounts_through_a_loop_device_and_transient_upper",
        |s, deploy| {
            let work = tempfile::tempdir().unwrap();
            let lower = work.path().join("lower");
            let target = work.path().join("target");
            for d in [&lower, &target] {
                std::fs::create_dir(d).unwrap();
            }
            // The loop path, as kernels before 6.12 need it.
            let img = std::fs::File::open(deploy.join(".ostree.cfs")).unwrap();
            let backing = composefs_mount::mount_erofs_with(&img, false, &lower, true).unwrap();
            let ErofsBacking::Loop(dev) = backing else {
                panic!("expected a loop device, got {backing:?}")
            };
            let m = findmnt(&lower);
            assert!(
                m.starts_with(&format!("{} erofs", dev.display()))
                    && m.contains(" ro,")
                    && m.contains("noacl"),
                "{m}"
            );
            assert!(lower.join("usr/bin/hello").exists());
            rustix::mount::unmount(&lower, rustix::mount::UnmountFlags::DETACH).unwrap();

            // A writable (transient) root: upper and work on a tmpfs.
            let t = work.path().join("t");
            std::fs::create_dir(&t).unwrap();
            rustix::mount::mount(
                "tmpfs",
                &t,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .unwrap();
            let (u, w) = (t.join("upper"), t.join("work"));
            std::fs::create_dir(&u).unwrap();
            std::fs::create_dir(&w).unwrap();
            let mut o = opts(s, &lower);
            o.upper_work = Some((u.clone(), w));
            o.read_only = false;
            composefs_mount::mount_image(&deploy.join(".ostree.cfs"), &target, &o).unwrap();
            std::fs::write(target.join("usr/bin/new"), b"x").unwrap();
            assert!(u.join("usr/bin/new").exists());
            let m = findmnt(&target);
            assert!(m.starts_with("composefs overlay rw,"), "{m}");
        },
    );
}

#[test]
fn verity_required_or_expected_fails_before_mounting() {
    with_sysroot(
        "verity_required_or_expected_fails_before_mounting",
        |s, deploy| {
            let work = tempfile::tempdir().unwrap();
            let lower = work.path().join("lower");
            let target = work.path().join("target");
            for d in [&lower, &target] {
                std::fs::create_dir(d).unwrap();
            }
            let image = deploy.join(".ostree.cfs");
            let mut o = opts(s, &lower);
            o.require_verity = true;
            let err = composefs_mount::mount_image(&image, &target, &o).unwrap_err();
            assert!(matches!(err, CfsMountError::NoVerity { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with("fsverity not enabled on composefs image"),
                "{err}"
            );
            o.require_verity = false;
            o.expected_digest = Some([0x11; 32]);
            let err = composefs_mount::mount_image(&image, &target, &o).unwrap_err();
            assert!(matches!(err, CfsMountError::NoVerity { .. }), "{err:?}");
            assert_eq!(findmnt(&target), "", "nothing mounted");
            assert_eq!(findmnt(&lower), "", "nothing mounted");
            // A missing image is its own error (composefs=maybe falls back on it).
            let err =
                composefs_mount::mount_image(&deploy.join("nope.cfs"), &target, &opts(s, &lower))
                    .unwrap_err();
            assert!(matches!(err, CfsMountError::ImageMissing(_)), "{err:?}");
            // Not a composefs image.
            let err = composefs_mount::mount_image(
                &deploy.join("usr/bin/big"),
                &target,
                &opts(s, &lower),
            )
            .unwrap_err();
            assert!(matches!(err, CfsMountError::BadHeader { .. }), "{err:?}");
        },
    );
}

#[test]
fn legacy_overlay_option_string() {
    with_sysroot("legacy_overlay_option_string", |s, deploy| {
        let work = tempfile::tempdir().unwrap();
        let lower = work.path().join("lower");
        let target = work.path().join("target");
        for d in [&lower, &target] {
            std::fs::create_dir(d).unwrap();
        }
        let img = std::fs::File::open(deploy.join(".ostree.cfs")).unwrap();
        composefs_mount::mount_erofs_with(&img, false, &lower, false).unwrap();
        let syntax = composefs_mount::overlay_legacy(&target, &opts(s, &lower)).unwrap();
        assert_eq!(
            syntax,
            OverlaySyntax::LegacyDataOnly,
            "6.5+ takes data-only layers"
        );
        assert_eq!(
            std::fs::read(target.join("usr/bin/hello")).unwrap(),
            b"hello from the composefs root\n"
        );
        let m = findmnt(&target);
        assert!(m.starts_with("composefs overlay ro,"), "{m}");
        assert!(
            m.contains(&format!(
                "lowerdir={}::{}",
                lower.display(),
                s.join("ostree/repo/objects").display()
            )),
            "{m}"
        );
    });
}
