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

/// One input: a root directory and the environment the generator runs with.
struct Input {
    label: &'static str,
    root: PathBuf,
    outs: Vec<PathBuf>,
    times: Vec<Duration>,
}

fn report(label: &str, g: &mut [Duration], t: &mut [Duration]) {
    let (mg, mt) = (median(g), median(t));
    println!(
        "{label:<28} generator median {:>7.1} µs | true median {:>7.1} µs | ratio {:.2}x | own cost {:>6.1} µs ({RUNS} runs)",
        mg.as_secs_f64() * 1e6,
        mt.as_secs_f64() * 1e6,
        mg.as_secs_f64() / mt.as_secs_f64(),
        (mg.as_secs_f64() - mt.as_secs_f64()) * 1e6,
    );
}

fn main() {
    let generator = env!("CARGO_BIN_EXE_ostree-system-generator");
    let truebin = if Path::new("/usr/bin/true").exists() {
        "/usr/bin/true"
    } else {
        "/bin/true"
    };
    let base = tempfile::Builder::new()
        .prefix("ostree-gen-bench")
        .tempdir_in(scratch_base())
        .unwrap();
    let mut inputs = vec![
        Input {
            label: "real root, composefs",
            root: base.path().join("real-root"),
            outs: vec![],
            times: vec![],
        },
        Input {
            label: "initrd, composefs signed",
            root: base.path().join("initrd"),
            outs: vec![],
            times: vec![],
        },
    ];
    real_root(&inputs[0].root);
    initrd_root(&inputs[1].root);
    // Every run gets a fresh, empty output directory: files are created exclusively.
    for (n, input) in inputs.iter_mut().enumerate() {
        input.outs = (0..=RUNS)
            .map(|i| base.path().join(format!("out-{n}-{i}")))
            .collect();
        for o in &input.outs {
            fs::create_dir_all(o).unwrap();
        }
    }
    let cmd = |root: &Path, out: &Path| {
        let mut c = Command::new(generator);
        c.env_clear()
            .env("OSTREE_GENERATOR_ROOT", root)
            .args([out, out, out])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // Warm-up (page cache, dynamic loader), then `true` and the inputs interleaved so
    // that all of them see the same machine load.
    for input in &inputs {
        time(&mut cmd(&input.root, &input.outs[RUNS]));
    }
    let mut floor = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        floor.push(time(Command::new(truebin).stdout(Stdio::null())));
        for input in inputs.iter_mut() {
            let d = time(&mut cmd(&input.root, &input.outs[i]));
            input.times.push(d);
        }
    }
    for input in inputs.iter_mut() {
        assert!(
            fs::read_dir(&input.outs[0]).unwrap().count() > 0,
            "{}: the generator wrote nothing",
            input.label
        );
        let mut t = floor.clone();
        report(input.label, &mut input.times, &mut t);
    }
}
