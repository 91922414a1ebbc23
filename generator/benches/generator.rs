//! The generator's run time, as systemd sees it (fork, exec, run, exit), against
//! `true` as the floor, measured in the same run with the two interleaved.
//!
//! Inputs are a typical composefs system on tmpfs (/dev/shm): the real-root side
//! (composefs /run/ostree-booted, fstab, /boot on the root partition, a long kernel
//! command line) and the initrd side (signed prepare-root.conf). `cargo bench -p
//! ostree-system-generator --bench generator` or `make bench-generator`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ostree_boot::ostree::booted::OstreeBooted;

const RUNS: usize = 1000;
const CMDLINE: &str = "BOOT_IMAGE=(hd0,gpt3)/boot/ostree/fedora-8c1f0e3a9b7d/vmlinuz-6.12.0-100.fc41.x86_64 \
    root=UUID=6c2b1f83-2a1e-4c4d-9a50-2f6c1b7e7d10 rw rootflags=subvol=root \
    ostree=/ostree/boot.1/fedora/8c1f0e3a9b7d2e4f6a8c0e2f4a6b8d0f2e4a6c8e0f2a4b6c8d0e2f4a6b8c0d2e/0 \
    console=tty0 console=ttyS0,115200n8 quiet rhgb mitigations=auto ignition.platform.id=qemu";

fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn real_root(root: &Path) {
    fs::create_dir_all(root.join("run/ostree")).unwrap();
    let booted = OstreeBooted {
        backing_root_device_inode: (64769, 1234567),
        composefs: Some(true),
        composefs_verity: Some(true),
        composefs_signed: Some("/etc/ostree/initramfs-root-binding.key".into()),
        sysroot_ro: true,
        ..Default::default()
    };
    fs::write(root.join("run/ostree-booted"), booted.to_bytes().unwrap()).unwrap();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), format!("{CMDLINE}\n")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/fstab"),
        "# /etc/fstab\nUUID=6c2b1f83-2a1e-4c4d-9a50-2f6c1b7e7d10 / btrfs subvol=root,compress=zstd:1 0 0\n\
         UUID=6c2b1f83-2a1e-4c4d-9a50-2f6c1b7e7d10 /home btrfs subvol=home,compress=zstd:1 0 0\n\
         UUID=ABCD-1234 /boot/efi vfat umask=0077,shortname=winnt 0 2\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("sysroot/boot/loader.1")).unwrap();
    std::os::unix::fs::symlink("loader.1", root.join("sysroot/boot/loader")).unwrap();
    fs::create_dir_all(root.join("boot")).unwrap();
}

fn initrd_root(root: &Path) {
    fs::create_dir_all(root.join("etc/ostree")).unwrap();
    fs::write(root.join("etc/initrd-release"), "NAME=initrd\n").unwrap();
    fs::write(
        root.join("etc/ostree/prepare-root.conf"),
        "[composefs]\nenabled = signed\nkeypath = /etc/ostree/initramfs-root-binding.key\n[etc]\ntransient = false\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("usr/lib/ostree")).unwrap();
    fs::write(
        root.join("usr/lib/ostree/prepare-root.conf"),
        "[composefs]\nenabled = yes\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), format!("{CMDLINE}\n")).unwrap();
}

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd.status().unwrap();
    let d = t.elapsed();
    assert!(st.success(), "{cmd:?} failed");
    d
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(label: &str, root: &Path, base: &Path) {
    let generator = env!("CARGO_BIN_EXE_ostree-system-generator");
    let outs: Vec<PathBuf> = (0..RUNS)
        .map(|i| base.join(format!("out-{label}-{i}")))
        .collect();
    for o in &outs {
        fs::create_dir_all(o).unwrap();
    }
    let truebin = if Path::new("/usr/bin/true").exists() {
        "/usr/bin/true"
    } else {
        "/bin/true"
    };
    // Warm up the page cache for both binaries.
    let warm = base.join(format!("warm-{label}"));
    fs::create_dir_all(&warm).unwrap();
    let mk = |out: &Path| {
        let mut c = Command::new(generator);
        c.env_clear()
            .env("OSTREE_GENERATOR_ROOT", root)
            .args([out, out, out])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    time(&mut mk(&warm));
    let (mut g, mut t) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for out in &outs {
        g.push(time(&mut mk(out)));
        t.push(time(Command::new(truebin).stdout(Stdio::null())));
    }
    let files = fs::read_dir(&outs[0]).unwrap().count();
    assert!(files > 0, "{label}: the generator wrote nothing");
    let (mg, mt) = (median(&mut g), median(&mut t));
    println!(
        "{label:<28} generator median {:>7.1} µs | true median {:>7.1} µs | ratio {:.2}x | own cost {:>6.1} µs ({RUNS} runs)",
        mg.as_secs_f64() * 1e6,
        mt.as_secs_f64() * 1e6,
        mg.as_secs_f64() / mt.as_secs_f64(),
        (mg.as_secs_f64() - mt.as_secs_f64()) * 1e6,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    let base = tempfile::Builder::new()
        .prefix("ostree-gen-bench")
        .tempdir_in(scratch_base())
        .unwrap();
    let rr = base.path().join("real-root");
    real_root(&rr);
    bench("real root, composefs", &rr, base.path());
    let ir = base.path().join("initrd");
    initrd_root(&ir);
    bench("initrd, composefs signed", &ir, base.path());
}
