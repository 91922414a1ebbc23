//! The GRUB boot assessment's host side: `grubenv` (the environment block as GRUB reads
//! it), `grub-bless` (the success marker) and the kernel-install plugin
//! 87-ostree-grub-tries.install driven by the real kernel-install. GRUB's own side
//! (units/grub/grub.cfg) is proven in the VM cases grub-efi-update and grub-efi-rollback-*.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ostree-composefs");

fn bin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn err(o: Output) -> String {
    assert!(!o.status.success(), "unexpected success");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn grubenv_edits_keep_the_block_size_and_format() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("grub/grubenv");
    ok(bin(&[
        "grubenv",
        "--file",
        s(&f),
        "set",
        "a=1",
        "saved_entry=x y",
    ]));
    let data = fs::read(&f).unwrap();
    assert_eq!(data.len(), 1024);
    assert!(data.starts_with(b"# GRUB Environment Block\na=1\nsaved_entry=x y\n#"));
    ok(bin(&["grubenv", "--file", s(&f), "arm", "3"]));
    assert_eq!(
        ok(bin(&["grubenv", "--file", s(&f), "list"]))
            .lines()
            .take(3)
            .collect::<Vec<_>>(),
        ["a=1", "saved_entry=x y", "ostree_tries=3"]
    );
    ok(bin(&[
        "grubenv",
        "--file",
        s(&f),
        "unset",
        "a",
        "nonexistent",
    ]));
    // A larger block (grub-editenv keeps any size it finds) stays that large.
    let mut big = b"# GRUB Environment Block\nk=v\n".to_vec();
    big.resize(4096, b'#');
    fs::write(&f, &big).unwrap();
    ok(bin(&["grubenv", "--file", s(&f), "set", "k=w"]));
    assert_eq!(fs::read(&f).unwrap().len(), 4096);
    // No temporary file is left beside it.
    assert_eq!(fs::read_dir(f.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn grubenv_refusals_name_the_file() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("grubenv");
    fs::write(&f, "hello\n").unwrap();
    let e = err(bin(&["grubenv", "--file", s(&f), "set", "a=1"]));
    assert!(e.contains(s(&f)) && e.contains("signature"), "{e}");
    assert_eq!(
        fs::read(&f).unwrap(),
        b"hello\n",
        "a refused block is left alone"
    );
    let g = t.path().join("g");
    assert!(err(bin(&["grubenv", "--file", s(&g), "set", "noequals"])).contains("NAME=VALUE"));
    assert!(
        err(bin(&["grubenv", "--file", s(&g), "set", "9x=1"]))
            .contains("invalid GRUB variable name")
    );
    assert!(err(bin(&["grubenv", "--file", s(&g), "arm", "0"])).contains("1..=16"));
    assert!(err(bin(&["grubenv", "--file", s(&g), "arm", "17"])).contains("1..=16"));
    assert!(err(bin(&["grubenv", "--file", s(&g), "list"])).contains("no such file"));
    assert!(!g.exists());
}

/// A /boot with two ostree entries (version 2 is the default) and an armed counter.
fn boot_dir(t: &Path) -> PathBuf {
    let boot = t.join("boot");
    fs::create_dir_all(boot.join("loader.1/entries")).unwrap();
    std::os::unix::fs::symlink("loader.1", boot.join("loader")).unwrap();
    for (n, serial) in [(1, 1), (2, 0)] {
        fs::write(
            boot.join(format!("loader.1/entries/ostree-{n}-debian.conf")),
            format!(
                "title t\nversion {n}\noptions root=/dev/vda rw ostree=/ostree/boot.1/debian/abc/{serial}\n\
                 linux /boot/ostree/debian-abc/vmlinuz-6\n"
            ),
        )
        .unwrap();
    }
    ok(bin(&[
        "grubenv",
        "--file",
        s(&boot.join("grub/grubenv")),
        "arm",
        "2",
    ]));
    boot
}

fn bless(boot: &Path, cmdline: &str) -> String {
    let c = boot.parent().unwrap().join("cmdline");
    fs::write(&c, cmdline).unwrap();
    ok(bin(&["grub-bless", "--boot", s(boot), "--cmdline", s(&c)]))
}

fn env_list(boot: &Path) -> String {
    ok(bin(&[
        "grubenv",
        "--file",
        s(&boot.join("grub/grubenv")),
        "list",
    ]))
    .lines()
    .filter(|l| !l.starts_with("ostree-composefs:"))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn bless_drops_the_counter_of_the_default_entry_only() {
    let t = tempfile::tempdir().unwrap();
    let boot = boot_dir(t.path());
    // GRUB fell back to entry 1: the counter stays.
    let out = bless(
        &boot,
        "BOOT_IMAGE=/x root=/dev/vda ostree=/ostree/boot.1/debian/abc/1\n",
    );
    assert!(out.contains("counter left at ostree_tries=2"), "{out}");
    assert_eq!(env_list(&boot), "ostree_tries=2");
    // No ostree= at all: unknown, the counter stays.
    assert!(bless(&boot, "root=/dev/vda\n").contains("counter left"));
    // The default entry booted: blessed.
    let out = bless(
        &boot,
        "BOOT_IMAGE=/x ostree=/ostree/boot.1/debian/abc/0 quiet\n",
    );
    assert!(out.contains("boot counter dropped"), "{out}");
    assert_eq!(env_list(&boot), "");
    // Nothing armed any more: nothing to do, still success.
    assert!(bless(&boot, "ostree=/ostree/boot.1/debian/abc/0\n").contains("nothing to mark"));
}

#[test]
fn bless_without_grubenv_and_with_a_corrupt_one() {
    let t = tempfile::tempdir().unwrap();
    let boot = t.path().join("boot");
    fs::create_dir_all(&boot).unwrap();
    assert!(bless(&boot, "ostree=/x\n").contains("no GRUB environment block"));
    fs::create_dir_all(boot.join("grub")).unwrap();
    fs::write(
        boot.join("grub/grubenv"),
        "# GRUB Environment Block\nbroken",
    )
    .unwrap();
    let c = t.path().join("cmdline");
    fs::write(&c, "ostree=/x\n").unwrap();
    let e = err(bin(&["grub-bless", "--boot", s(&boot), "--cmdline", s(&c)]));
    assert!(
        e.contains("grub/grubenv") && e.contains("not terminated"),
        "{e}"
    );
}

fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../units/kernel-install/87-ostree-grub-tries.install")
}

/// Runs the real kernel-install with only the tries plugin.
fn kernel_install(t: &Path, layout: &str, tries: Option<&str>) -> Output {
    let conf = t.join("conf");
    fs::create_dir_all(&conf).unwrap();
    fs::write(conf.join("install.conf"), format!("layout={layout}\n")).unwrap();
    let _ = fs::remove_file(conf.join("tries"));
    if let Some(v) = tries {
        fs::write(conf.join("tries"), v).unwrap();
    }
    let kernel = t.join("vmlinuz-6.1.0-test");
    fs::write(&kernel, "kernel").unwrap();
    fs::create_dir_all(t.join("boot")).unwrap();
    Command::new("kernel-install")
        .args(["add", "6.1.0-test", s(&kernel)])
        .env("KERNEL_INSTALL_CONF_ROOT", &conf)
        .env("BOOT_ROOT", t.join("boot"))
        .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
        .env("KERNEL_INSTALL_PLUGINS", plugin())
        .env("TMPDIR", t)
        .env("OSTREE_COMPOSEFS", BIN)
        .output()
        .unwrap()
}

#[test]
fn tries_plugin_through_kernel_install() {
    if !ostree_boot_test_support::require(
        ostree_boot_test_support::have_command("kernel-install"),
        "needs systemd's kernel-install",
    ) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let env = t.path().join("boot/grub/grubenv");
    // No tries file: nothing is armed, no grubenv is made.
    ok(kernel_install(t.path(), "ostree", None));
    assert!(!env.exists());
    // Another layout: not ours to arm.
    ok(kernel_install(t.path(), "bls", Some("3\n")));
    assert!(!env.exists());
    ok(kernel_install(t.path(), "ostree", Some("3\n")));
    assert_eq!(
        ok(bin(&["grubenv", "--file", s(&env), "list"]))
            .lines()
            .next(),
        Some("ostree_tries=3")
    );
    // Bad values fail kernel-install with the file named.
    let o = kernel_install(t.path(), "ostree", Some("three\n"));
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("tries") && e.contains("'three' is not a number"),
        "{e}"
    );
    let o = kernel_install(t.path(), "ostree", Some("17\n"));
    assert!(!o.status.success(), "17 tries is beyond the ladder");
}
