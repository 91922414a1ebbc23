//! `ostree-prepare-root --print-config`, run as a process.

use std::path::Path;
use std::process::Command;

fn run(root: &Path, cmdline: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ostree-prepare-root"))
        .args(["--print-config", "--config-root"])
        .arg(root)
        .args(["--cmdline", cmdline])
        .output()
        .expect("run ostree-prepare-root");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root_with(usr_lib: Option<&str>, etc: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (rel, text) in [
        ("usr/lib/ostree/prepare-root.conf", usr_lib),
        ("etc/ostree/prepare-root.conf", etc),
    ] {
        if let Some(t) = text {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
    }
    d
}

fn expect(enabled: &str, keypath: &str, etc: bool, root: bool, root_ro: bool, ro: bool) -> String {
    format!(
        "composefs.enabled={enabled}\ncomposefs.keypath={keypath}\netc.transient={etc}\nroot.transient={root}\nroot.transient-ro={root_ro}\nsysroot.readonly={ro}\n"
    )
}

const KEY: &str = "/etc/ostree/initramfs-root-binding.key";

#[test]
fn defaults_without_files() {
    let d = root_with(None, None);
    assert_eq!(
        run(d.path(), "ostree=/x"),
        (
            0,
            expect("no", KEY, false, false, false, false),
            String::new()
        )
    );
}

#[test]
fn usr_lib_config() {
    let d = root_with(
        Some("[composefs]\nenabled=verity\nkeypath=/etc/k.pub\n[etc]\ntransient=1\n"),
        None,
    );
    let (code, out, _) = run(d.path(), "ostree=/x");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        expect("verity", "/etc/k.pub", true, false, false, true)
    );
}

#[test]
fn etc_replaces_usr_lib_wholesale() {
    let d = root_with(
        Some("[composefs]\nenabled=signed\n[sysroot]\nreadonly=true\n"),
        Some("[root]\ntransient-ro=true\n"),
    );
    let (code, out, _) = run(d.path(), "");
    assert_eq!(code, 0);
    assert_eq!(out, expect("no", KEY, false, true, true, false));
}

#[test]
fn karg_override() {
    let d = root_with(Some("[composefs]\nenabled=yes\n"), None);
    let (_, out, _) = run(d.path(), "ostree=/x ostree.prepare-root.composefs=0");
    assert_eq!(out, expect("no", KEY, false, false, false, false));
    let (_, out, _) = run(
        d.path(),
        "quiet foo=\"a b\" ostree.prepare-root.composefs=maybe",
    );
    assert_eq!(out, expect("maybe", KEY, false, false, false, false));
    let d = root_with(Some("[composefs]\nenabled=verity\n"), None);
    let (_, out, _) = run(d.path(), "ostree.prepare-root.composefs=yes");
    assert_eq!(out, expect("verity", KEY, false, false, false, true));
    let (_, out, _) = run(d.path(), "ostree.prepare-root.composefs=signed");
    assert_eq!(out, expect("signed", KEY, false, false, false, true));
}

/// A karg cannot lower the initrd's `verity` or `signed`: --print-config says so and
/// fails, as the boot does.
#[test]
fn karg_downgrade_is_refused() {
    for (file, karg) in [
        ("verity", "0"),
        ("verity", "maybe"),
        ("signed", "no"),
        ("signed", "yes"),
        ("signed", "verity"),
    ] {
        let d = root_with(Some(&format!("[composefs]\nenabled={file}\n")), None);
        let (code, out, err) = run(
            d.path(),
            &format!("ostree=/x ostree.prepare-root.composefs={karg}"),
        );
        assert_eq!((code, out.as_str()), (1, ""), "{file} {karg}: {err}");
        assert!(
            err.contains(&format!(
                "kernel argument ostree.prepare-root.composefs={karg} refused: it would lower composefs.enabled={file}"
            )) && err.contains("usr/lib/ostree/prepare-root.conf"),
            "{err}"
        );
    }
}

#[test]
fn bad_config_exits_1_naming_file_line_key() {
    let d = root_with(
        None,
        Some("[composefs]\nenabled=yes\n\n[sysroot]\nreadonly=yes\n"),
    );
    let (code, out, err) = run(d.path(), "");
    assert_eq!((code, out.as_str()), (1, ""));
    let want = format!(
        "{}:5: [sysroot] readonly: invalid value 'yes'",
        d.path().join("etc/ostree/prepare-root.conf").display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn syntax_error_exits_1() {
    let d = root_with(Some("; comment\n[composefs]\n"), None);
    let (code, _, err) = run(d.path(), "");
    assert_eq!(code, 1);
    assert!(err.contains("usr/lib/ostree/prepare-root.conf:1:"), "{err}");
}

#[test]
fn transient_conflict_and_bad_karg_exit_1() {
    let d = root_with(Some("[root]\ntransient=true\ntransient-ro=true\n"), None);
    let (code, _, err) = run(d.path(), "");
    assert_eq!(code, 1);
    assert!(
        err.contains("Cannot set both root.transient and root.transient-ro"),
        "{err}"
    );
    let d = root_with(None, None);
    let (code, _, err) = run(d.path(), "ostree.prepare-root.composefs=sure");
    assert_eq!(code, 1);
    assert!(err.contains("Invalid tri-state value: sure"), "{err}");
}

#[test]
fn usage_error_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_ostree-prepare-root"))
        .args(["--print-config", "--nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
