//! ostree-remount against real mounts, in a private mount namespace (`unshare -m`):
//! a tmpfs stands for `/`, and tmpfs mounts for /sysroot, /etc and /var start out
//! read-only or writable; `/run/ostree-booted` holds ostree's own test vectors.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ostree-remount");

// ostree.md 1.8 vectors: legacy with a writable sysroot, and composefs with a
// read-only one.
const LEGACY_RW: &str = "6261636b696e672d726f6f742d6465766963652d696e6f64650000000000000001fd00000000000087d612000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000726f6f742e7472616e7369656e742d726f000000000000000000621200000000737973726f6f742d726f0000000000000000620b364c6c84";
const COMPOSEFS_RO: &str = "6261636b696e672d726f6f742d6465766963652d696e6f64650000000000000001fd00000000000087d612000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000726f6f742e7472616e7369656e742d726f000000000000000000621200000000636f6d706f73656673000000000000000100620a00000000636f6d706f736566732e76657269747900000000000000000000621100000000737973726f6f742d726f0000000000000100620b364c6c84a4bc";

/// Sets up the mounts, runs ostree-remount, prints each mount's final state.
const SCRIPT: &str = r#"
set -euo pipefail
BIN=$1 R=$2 BOOTED=$3 ROOT_RO=$4 SYSROOT=$5 ETC=$6 VAR=$7
mount -t tmpfs tmpfs "$R"
mkdir -p "$R/run" "$R/sysroot" "$R/etc"
if [ "$BOOTED" != none ]; then cp "$BOOTED" "$R/run/ostree-booted"; fi
mount -t tmpfs -o "$SYSROOT" tmpfs "$R/sysroot"
mount -t tmpfs -o "$ETC" tmpfs "$R/etc"
if [ "$VAR" = symlink ]; then ln -s sysroot/var "$R/var"; else mkdir -p "$R/var"; mount -t tmpfs -o "$VAR" tmpfs "$R/var"; fi
if [ "$ROOT_RO" = ro ]; then mount -o remount,ro "$R"; fi
# systemd makes every mount shared; the remount must leave that as it is.
for m in sysroot etc var; do [ -L "$R/$m" ] || mount --make-shared "$R/$m"; done
rc=0
OSTREE_REMOUNT_ROOT=$R SYSTEMD_LOG_TARGET=console "$BIN" || rc=$?
echo "rc=$rc"
for m in sysroot etc var; do
    if [ -L "$R/$m" ]; then echo "$m=link"; else echo "$m=$(findmnt -no OPTIONS "$R/$m" | cut -d, -f1)"; echo "$m.propagation=$(findmnt -no PROPAGATION "$R/$m")"; fi
done
if [ -e "$R/run/ostree-booted" ]; then echo "booted=$(stat -c %a:%s "$R/run/ostree-booted")"; fi
"#;

fn run(booted: Option<&[u8]>, root_ro: bool, sysroot: &str, etc: &str, var: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let booted_arg = match booted {
        Some(b) => {
            let p = work.path().join("booted");
            std::fs::write(&p, b).unwrap();
            p.to_string_lossy().into_owned()
        }
        None => "none".into(),
    };
    let o = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "bash",
            "-c",
            SCRIPT,
            "_",
            BIN,
        ])
        .arg(&root)
        .args([
            booted_arg.as_str(),
            if root_ro { "ro" } else { "rw" },
            sysroot,
            etc,
            var,
        ])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "script failed: {stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

fn has(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l == line),
        "missing {line:?} in:\n{out}"
    );
}

#[test]
fn legacy_writable_sysroot() {
    let out = run(
        Some(&hex::decode(LEGACY_RW).unwrap()),
        false,
        "ro",
        "ro",
        "ro",
    );
    has(&out, "Remounted rw: /sysroot");
    has(&out, "Remounted rw: /var");
    has(&out, "rc=0");
    has(&out, "sysroot=rw");
    // /etc is only touched when the sysroot is read-only (it is then a bind of it).
    has(&out, "etc=ro");
    has(&out, "var=rw");
}

#[test]
fn composefs_readonly_sysroot() {
    let out = run(
        Some(&hex::decode(COMPOSEFS_RO).unwrap()),
        false,
        "rw",
        "ro",
        "ro",
    );
    has(&out, "Remounted ro: /sysroot");
    has(&out, "Remounted rw: /etc");
    has(&out, "Remounted rw: /var");
    has(&out, "rc=0");
    has(&out, "sysroot=ro");
    has(&out, "etc=rw");
    has(&out, "var=rw");
}

#[test]
fn readonly_root_without_composefs_is_left_alone() {
    let out = run(
        Some(&hex::decode(LEGACY_RW).unwrap()),
        true,
        "ro",
        "ro",
        "ro",
    );
    has(&out, "rc=0");
    has(&out, "sysroot=ro");
    has(&out, "var=ro");
    assert!(!out.contains("Remounted"), "{out}");
}

#[test]
fn readonly_root_with_composefs_still_remounts() {
    let out = run(
        Some(&hex::decode(COMPOSEFS_RO).unwrap()),
        true,
        "rw",
        "ro",
        "ro",
    );
    has(&out, "rc=0");
    has(&out, "sysroot=ro");
    has(&out, "etc=rw");
    has(&out, "var=rw");
}

#[test]
fn nothing_to_change_and_symlinked_var() {
    let out = run(
        Some(&hex::decode(LEGACY_RW).unwrap()),
        false,
        "rw",
        "rw",
        "symlink",
    );
    has(&out, "rc=0");
    has(&out, "var=link");
    assert!(!out.contains("Remounted"), "{out}");
}

#[test]
fn missing_booted_file_is_created_like_ostree() {
    let out = run(None, false, "ro", "ro", "ro");
    has(&out, "rc=0");
    has(&out, "Remounted rw: /sysroot");
    has(&out, "Remounted rw: /var");
    has(&out, "booted=640:0");
}

#[test]
fn broken_booted_file_fails_with_its_name() {
    let out = run(Some(b"\x01\x02\x03"), false, "ro", "ro", "ro");
    has(&out, "rc=1");
    assert!(
        out.contains("failed to read") && out.contains("run/ostree-booted"),
        "{out}"
    );
    // Nothing was remounted on bad input.
    has(&out, "sysroot=ro");
    has(&out, "var=ro");
}

/// Upstream's ostree-remount (2025+) no longer makes /sysroot recursively private: the
/// propagation of /sysroot, /etc and /var (shared, as systemd mounts them) is unchanged.
#[test]
fn mount_propagation_is_left_as_it_is() {
    for booted in [LEGACY_RW, COMPOSEFS_RO] {
        let out = run(Some(&hex::decode(booted).unwrap()), false, "ro", "ro", "ro");
        has(&out, "rc=0");
        for m in ["sysroot", "etc", "var"] {
            has(&out, &format!("{m}.propagation=shared"));
        }
    }
}

/// Upstream's ostree-remount (ostree 2026.x, `tests/src/peer.rs`) and ours, each in the
/// peer chroot in a namespace of its own, on the same mounts (shared, as systemd leaves
/// them) and `/run/ostree-booted`: the same exit status and, for /sysroot, /etc and /var,
/// the same read-only flag and propagation afterwards.
fn remount_in_peer(
    peer: &ostree_boot_tests::peer::Peer,
    exe: &str,
    booted: &[u8],
    sysroot: &str,
    etc: &str,
    var: &str,
) -> String {
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("booted");
    std::fs::write(&b, booted).unwrap();
    let q = |p: &std::path::Path| ostree_boot_tests::peer::quote(&p.display().to_string());
    let setup = format!(
        r#"mkdir -p "$R/sysroot"; mount -t tmpfs -o {sysroot} tmpfs "$R/sysroot"
mount --bind "$R/etc" "$R/etc"; mount -o remount,bind,{etc} "$R/etc"
mount -t tmpfs -o {var} tmpfs "$R/var"
for m in sysroot etc var; do mount --make-shared "$R/$m"; done
cp {b} "$R/run/ostree-booted"
cp {bin} "$R/usr/local/bin/ours-remount"
"#,
        b = q(&b),
        bin = ostree_boot_tests::peer::quote(BIN),
    );
    let o = peer.run_with(
        &[],
        &setup,
        &format!(
            "{exe} >/dev/null 2>&1; echo rc=$?; for m in /sysroot /etc /var; do \
             echo \"$m $(findmnt -no OPTIONS $m | cut -d, -f1) $(findmnt -no PROPAGATION $m)\"; done"
        ),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn same_remounts_as_2026() {
    let Some(peer) = ostree_boot_tests::peer::peer() else {
        return;
    };
    for (booted, sysroot, etc, var) in [
        (LEGACY_RW, "ro", "ro", "ro"),
        (LEGACY_RW, "rw", "rw", "rw"),
        (COMPOSEFS_RO, "rw", "ro", "ro"),
        (COMPOSEFS_RO, "ro", "rw", "ro"),
    ] {
        let b = hex::decode(booted).unwrap();
        let theirs = remount_in_peer(
            &peer,
            "/usr/lib/ostree/ostree-remount",
            &b,
            sysroot,
            etc,
            var,
        );
        let ours = remount_in_peer(&peer, "/usr/local/bin/ours-remount", &b, sysroot, etc, var);
        assert!(
            theirs.contains("rc=0") && theirs.lines().count() == 4,
            "{theirs}"
        );
        assert_eq!(theirs, ours, "sysroot={sysroot} etc={etc} var={var}");
    }
}
