//! The plugin under the real `kernel-install` (Debian 12, systemd 252) with
//! `KERNEL_INSTALL_PLUGINS` pointing at `units/kernel-install/88-ostree-composefs.install`,
//! against sysroots built with the real `ostree` CLI.
//!
//! Signature checks use `ostree_boot::sign::verify_commit` (the verification prepare-root
//! runs in signed mode) and, when it is built beside us, `ostree-prepare-root --check`
//! with the unpacked initrd as its configuration root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{self, PublicKey};

const KVER: &str = "6.1.0-test";

struct Env {
    t: Scratch,
    sysroot: PathBuf,
    conf: PathBuf,
    kiroot: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn plugin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../units/kernel-install/88-ostree-composefs.install")
}

fn have_tools() -> bool {
    have_ostree()
        && require(
            ostree_boot_test_support::have_command("kernel-install"),
            "needs systemd's kernel-install",
        )
}

fn setup(conf_text: &str) -> Option<Env> {
    if !have_tools() {
        return None;
    }
    let t = Scratch::new();
    let sysroot = sysroot_deployed_by_ostree(t.path(), KVER);
    let conf = t.path().join("conf");
    write(&conf.join("install.conf"), "layout=ostree\n");
    write(
        &conf.join("cmdline"),
        "# comment\nroot=LABEL=ROOT rw\nquiet\n",
    );
    let kiroot = t.path().join("kiroot");
    let text = conf_text.replace("@SYSROOT@", sysroot.to_str().unwrap());
    write(&kiroot.join("etc/ostree/kernel-install.conf"), &text);
    let kernel = t.path().join(format!("vmlinuz-{KVER}"));
    fs::write(&kernel, "a kernel\n").unwrap();
    let initrd = t.path().join(format!("initrd.img-{KVER}"));
    make_initrd(t.path(), &initrd);
    Some(Env {
        t,
        sysroot,
        conf,
        kiroot,
        kernel,
        initrd,
    })
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kernel-install");
        c.args(args)
            .env("KERNEL_INSTALL_CONF_ROOT", &self.conf)
            .env("BOOT_ROOT", self.sysroot.join("boot"))
            .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
            .env("KERNEL_INSTALL_PLUGINS", plugin())
            .env("TMPDIR", self.t.path())
            .env("OSTREE_COMPOSEFS", BIN)
            .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &self.kiroot);
        c
    }
    fn kernel_install(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        stdout(&mut self.command(args))
    }
    fn fails(&self, args: &[&str]) -> String {
        let o = self.kernel_install(args);
        assert!(!o.status.success(), "kernel-install {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
    fn add(&self) -> String {
        self.ok(&[
            "-v",
            "add",
            KVER,
            self.kernel.to_str().unwrap(),
            self.initrd.to_str().unwrap(),
        ])
    }
    fn default_entry(&self) -> String {
        let mut best = (0, String::new());
        for e in fs::read_dir(self.sysroot.join("boot/loader/entries")).unwrap() {
            let text = fs::read_to_string(e.unwrap().path()).unwrap();
            let v: u32 = text
                .lines()
                .find_map(|l| l.strip_prefix("version "))
                .unwrap()
                .parse()
                .unwrap();
            if v > best.0 {
                best = (v, text);
            }
        }
        best.1
    }
    fn repo(&self) -> Repo {
        Repo::open(self.sysroot.join("ostree/repo")).unwrap()
    }
}

fn key(e: &str, k: &str) -> String {
    e.lines()
        .find_map(|l| l.strip_prefix(&format!("{k} ")))
        .unwrap_or_else(|| panic!("no {k} in {e}"))
        .to_string()
}

/// The public key appended to an initrd at `keypath`, after the original `orig_len`
/// bytes (padded to 4).
fn initrd_key(initrd: &[u8], orig_len: usize, keypath: &str) -> PublicKey {
    let start = orig_len.next_multiple_of(4);
    assert!(initrd[orig_len..start].iter().all(|&b| b == 0));
    let (members, end) = ostree_boot::cpio::read(initrd, start).unwrap();
    assert_eq!(end, initrd.len());
    let m = members
        .iter()
        .find(|m| m.name == keypath.trim_start_matches('/'))
        .expect("key member");
    let keys = sign::parse_public_keys(std::str::from_utf8(&m.data).unwrap()).unwrap();
    assert_eq!(keys.len(), 1);
    keys[0]
}

/// Checks the default deployment the plugin wrote: listed first by ostree, entry boots
/// it, image matches the commit digest. Returns (deployment dir, commit csum, initrd).
fn check_default(e: &Env) -> (PathBuf, String, Vec<u8>) {
    let st = status(&e.sysroot);
    let dir = deployment_dirs(&e.sysroot)[0].clone();
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(st.lines().next().unwrap().contains(&name), "{st}");
    assert!(st.contains("origin refspec: testos/stable"), "{st}");
    let entry = e.default_entry();
    let options = key(&entry, "options");
    assert!(
        options.starts_with("root=LABEL=ROOT rw quiet ostree=/ostree/boot."),
        "{options}"
    );
    let link = options.rsplit_once("ostree=").unwrap().1;
    let resolved = fs::canonicalize(e.sysroot.join(link.trim_start_matches('/'))).unwrap();
    assert_eq!(resolved, fs::canonicalize(&dir).unwrap());
    let csum = name.split('.').next().unwrap().to_string();
    let (_, commit) = e
        .repo()
        .load_commit(&ostree_boot::ostree::objects::parse_checksum(&csum).unwrap())
        .unwrap();
    let want = commit
        .composefs_digest()
        .expect("commit has a composefs digest")
        .unwrap();
    assert_eq!(
        ostree_boot::fsverity::digest::digest_file(dir.join(".ostree.cfs")).unwrap(),
        want
    );
    let initrd = fs::read(
        e.sysroot
            .join("boot")
            .join(key(&entry, "initrd").trim_start_matches('/')),
    )
    .unwrap();
    assert_eq!(
        key(&entry, "linux").rsplit('/').next().unwrap(),
        format!("vmlinuz-{KVER}")
    );
    (dir, csum, initrd)
}

fn verify(e: &Env, csum: &str, k: &PublicKey) -> bool {
    let c = ostree_boot::ostree::objects::parse_checksum(csum).unwrap();
    let repo = e.repo();
    let (bytes, _) = repo.load_commit(&c).unwrap();
    let (_, meta) = repo.load_commitmeta(&c).unwrap().expect("commitmeta");
    sign::verify_commit(&bytes, &meta, std::slice::from_ref(k)).is_ok()
}

/// No file below `root` holds an Ed25519 key pair (raw or in `ostree sign`'s base64
/// form) whose public half is `pk`.
fn assert_no_secret_key(root: &Path, pk: &PublicKey) {
    use base64::Engine;
    let pkb = pk.to_bytes();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if !md.is_file() {
            continue;
        }
        let data = fs::read(&p).unwrap();
        // A key pair is seed ‖ public key where the seed derives the public key (the
        // public key alone is expected: in the initrd and the sealed commit).
        for w in data.windows(64) {
            if w[32..] == pkb {
                let seed: [u8; 32] = w[..32].try_into().unwrap();
                assert!(
                    sign::SecretKey::from_seed(&seed).public_key() != *pk,
                    "{}: raw key pair",
                    p.display()
                );
            }
        }
        for tok in
            data.split(|b| !(b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'='))
        {
            if tok.len() >= 86
                && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(tok)
            {
                assert!(
                    !(raw.len() == 64 && raw[32..] == pkb),
                    "{}: base64 key pair",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn transient_add_remove_and_downgrade_protection() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\nsigning=transient\n") else {
        return;
    };
    let orig = fs::read(&e.initrd).unwrap();
    let out = e.add();
    assert!(out.contains("transient key"), "{out}");
    let (dir1, csum1, initrd1) = check_default(&e);
    assert!(
        initrd1.starts_with(&orig),
        "the initrd in /boot is the original plus the key"
    );
    let k1 = initrd_key(
        &initrd1,
        orig.len(),
        "/etc/ostree/initramfs-root-binding.key",
    );
    assert!(
        verify(&e, &csum1, &k1),
        "the initrd's key verifies the deployed commit"
    );
    assert_no_secret_key(e.t.path(), &k1);
    // The real cpio reads the appended archive too.
    let tail = e.t.path().join("tail.cpio");
    fs::write(&tail, &initrd1[orig.len().next_multiple_of(4)..]).unwrap();
    let listing = stdout(
        Command::new("sh")
            .arg("-c")
            .arg("cpio -it --quiet < \"$1\"")
            .arg("sh")
            .arg(&tail),
    );
    assert!(
        listing
            .lines()
            .any(|l| l == "etc/ostree/initramfs-root-binding.key"),
        "{listing}"
    );

    // A second add: another key, another sealed commit, another initrd.
    e.add();
    let (_dir2, csum2, initrd2) = check_default(&e);
    assert_ne!(csum1, csum2);
    let k2 = initrd_key(
        &initrd2,
        orig.len(),
        "/etc/ostree/initramfs-root-binding.key",
    );
    assert!(verify(&e, &csum2, &k2));
    // Downgrade protection: each initrd's key refuses the other deployment's commit.
    assert!(
        !verify(&e, &csum1, &k2),
        "the new initrd must not boot the old deployment"
    );
    assert!(
        !verify(&e, &csum2, &k1),
        "the old initrd must not boot the new deployment"
    );
    assert_eq!(deployment_dirs(&e.sysroot).len(), 2);
    assert!(dir1.exists(), "the previous one is the rollback");

    // remove drops every deployment booting the kernel.
    e.ok(&["-v", "remove", KVER]);
    assert!(
        deployment_dirs(&e.sysroot).is_empty(),
        "{}",
        status(&e.sysroot)
    );
    assert!(
        fs::read_dir(e.sysroot.join("boot/ostree"))
            .unwrap()
            .next()
            .is_none(),
        "kernel dirs cleaned up"
    );
}

#[test]
fn unsigned_add_keeps_and_remove_spares_other_kernels() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\nkeep=3\n") else {
        return;
    };
    // No INITRD argument: a generator's initrd would be in the staging area; here none,
    // so the deployment boots without one (ostree adds init=…prepare-root).
    e.ok(&["add", KVER, e.kernel.to_str().unwrap()]);
    let entry = e.default_entry();
    assert!(
        key(&entry, "options").contains("init=/ostree/boot."),
        "{entry}"
    );
    let other = e.t.path().join("vmlinuz-6.2.0-new");
    fs::write(&other, "a newer kernel\n").unwrap();
    e.ok(&[
        "add",
        "6.2.0-new",
        other.to_str().unwrap(),
        e.initrd.to_str().unwrap(),
    ]);
    assert_eq!(deployment_dirs(&e.sysroot).len(), 3, "keep=3");
    e.ok(&["remove", KVER]);
    let left = deployment_dirs(&e.sysroot);
    assert_eq!(left.len(), 1, "{}", status(&e.sysroot));
    assert!(key(&e.default_entry(), "linux").ends_with("/vmlinuz-6.2.0-new"));
}

#[test]
fn booted_deployment_is_never_removed() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\n") else {
        return;
    };
    e.ok(&[
        "add",
        KVER,
        e.kernel.to_str().unwrap(),
        e.initrd.to_str().unwrap(),
    ]);
    // Pretend the rollback (ostree's deployment) is booted: /run/ostree-booted in a
    // private mount namespace names its directory.
    let booted_dir = deployment_dirs(&e.sysroot)[1].clone();
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(&booted_dir).unwrap();
    let b = ostree_boot::ostree::booted::OstreeBooted {
        backing_root_device_inode: (md.dev(), md.ino()),
        ..Default::default()
    };
    let file = e.t.path().join("ostree-booted");
    fs::write(&file, b.to_bytes().unwrap()).unwrap();
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /run && cp \"$1\" /run/ostree-booted && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&file)
        .args(["kernel-install", "remove", KVER])
        .env("KERNEL_INSTALL_CONF_ROOT", &e.conf)
        .env("BOOT_ROOT", e.sysroot.join("boot"))
        .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
        .env("KERNEL_INSTALL_PLUGINS", plugin())
        .env("TMPDIR", e.t.path())
        .env("OSTREE_COMPOSEFS", BIN)
        .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &e.kiroot)
        .output()
        .unwrap();
    if !require(
        o.status.success() || !String::from_utf8_lossy(&o.stderr).contains("unshare failed"),
        "needs mount namespaces (unshare)",
    ) {
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left = deployment_dirs(&e.sysroot);
    assert_eq!(left, vec![booted_dir], "only the booted one stays");
}

#[test]
fn other_layouts_are_left_alone() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\n") else {
        return;
    };
    write(&e.conf.join("install.conf"), "layout=bls\n");
    // kernel-install itself makes $BOOT_ROOT/$MACHINE_ID/$KVER for layout=bls.
    let ours = |s: &Path| {
        let mut m = snapshot(s);
        m.retain(|k, _| !k.starts_with("boot/3e0484f3634a418b8e6a39e8828b03e3"));
        m
    };
    let before = ours(&e.sysroot);
    e.ok(&[
        "add",
        KVER,
        e.kernel.to_str().unwrap(),
        e.initrd.to_str().unwrap(),
    ]);
    assert_same(&before, &ours(&e.sysroot), "layout=bls");
}

#[test]
fn clear_errors() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\nsigning=transient\n") else {
        return;
    };
    let k = e.kernel.to_str().unwrap().to_string();
    let i = e.initrd.to_str().unwrap().to_string();
    // Transient signing without an initrd.
    let err = e.fails(&["add", KVER, &k]);
    assert!(err.contains("signing=transient needs an initrd"), "{err}");
    // Unknown ref.
    let conf = e.kiroot.join("etc/ostree/kernel-install.conf");
    write(
        &conf,
        &format!(
            "[kernel-install]\nsysroot={}\nref=no/such/ref\n",
            e.sysroot.display()
        ),
    );
    let err = e.fails(&["add", KVER, &k, &i]);
    assert!(err.contains("unknown ref 'no/such/ref'"), "{err}");
    // Bad value: the key is named.
    write(
        &conf,
        &format!(
            "[kernel-install]\nsysroot={}\nkeep=none\n",
            e.sysroot.display()
        ),
    );
    let err = e.fails(&["add", KVER, &k, &i]);
    assert!(
        err.contains("[kernel-install] keep") && err.contains("kernel-install.conf:3"),
        "{err}"
    );
    // No ostree sysroot, or no repo in it: not ours, exit 0 without a word of error
    // (not_an_ostree_sysroot_is_left_alone checks that nothing is touched).
    write(&conf, "[kernel-install]\nsysroot=/nonexistent\n");
    e.ok(&["add", KVER, &k, &i]);
    let bare = e.t.path().join("norepo");
    fs::create_dir_all(bare.join("ostree")).unwrap();
    fs::create_dir_all(bare.join("boot")).unwrap();
    write(
        &conf,
        &format!("[kernel-install]\nsysroot={}\n", bare.display()),
    );
    e.ok(&["add", KVER, &k, &i]);
    e.ok(&["remove", KVER]);
    // Kernel missing (kernel-install checks the image itself; the plugin too).
    write(
        &conf,
        &format!("[kernel-install]\nsysroot={}\n", e.sysroot.display()),
    );
    let o = Command::new(BIN)
        .args([
            "kernel-install",
            "add",
            KVER,
            "/tmp/entry",
            "/nonexistent/vmlinuz",
        ])
        .env("KERNEL_INSTALL_LAYOUT", "ostree")
        .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &e.kiroot)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("kernel image /nonexistent/vmlinuz does not exist")
    );
    // Initrd missing.
    let err = e.fails(&["add", KVER, &k, "/nonexistent/initrd.img"]);
    assert!(
        err.contains("initrd /nonexistent/initrd.img cannot be read"),
        "{err}"
    );
    // Nothing was deployed by any of these.
    assert_eq!(deployment_dirs(&e.sysroot).len(), 1);
    // A read-only /boot (a read-only bind mount in a private namespace) is remounted
    // writable in the plugin's own namespace only: still read-only here afterwards.
    let boot = e.sysroot.join("boot");
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            // 77: the plugin's success, which ends kernel-install's plugin loop.
            "set -e; b=$1; mount --bind \"$b\" \"$b\"; mount -o remount,bind,ro \"$b\"; shift; \
             rc=0; \"$@\" || rc=$?; [ $rc = 77 ] || exit $rc; \
             if touch \"$b/probe\" 2>/dev/null; then echo still writable >&2; exit 1; fi",
        ])
        .arg("sh")
        .arg(&boot)
        .args([BIN, "kernel-install", "add", KVER, "/tmp/entry", &k, &i])
        .env("KERNEL_INSTALL_LAYOUT", "ostree")
        .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &e.kiroot)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !err.contains("unshare failed") {
        assert!(o.status.success(), "{err}");
        assert_eq!(deployment_dirs(&e.sysroot).len(), 2);
    }
}

#[test]
fn key_signing_then_ostree_deploys_on_top() {
    let Some(e) = setup("") else { return };
    let sk = sign::SecretKey::generate().unwrap();
    let keyfile = e.t.path().join("secret.key");
    write_secret_key(&keyfile, &sk);
    write(
        &e.kiroot.join("etc/ostree/kernel-install.conf"),
        &format!(
            "[kernel-install]\nsysroot={}\nsigning=key\nsigning-key={}\n",
            e.sysroot.display(),
            keyfile.display()
        ),
    );
    let orig = fs::read(&e.initrd).unwrap();
    e.add();
    let (_, csum, initrd) = check_default(&e);
    assert_eq!(initrd, orig, "key mode leaves the initrd as it is");
    assert!(verify(&e, &csum, &sk.public_key()));
    // ostree deploys on top of ours, and sees ours as the merge deployment.
    theirs(&e.sysroot, &["--os=testos", "testos/stable"]);
    let dirs = deployment_dirs(&e.sysroot);
    assert_eq!(dirs.len(), 2);
    assert!(
        dirs[1].ends_with(format!("{csum}.0")),
        "ours is the rollback: {}",
        status(&e.sysroot)
    );
    run(Command::new("ostree")
        .args(["admin", "cleanup"])
        .arg(format!("--sysroot={}", e.sysroot.display())));
    run(Command::new("ostree")
        .arg(format!(
            "--repo={}",
            e.sysroot.join("ostree/repo").display()
        ))
        .arg("fsck"));
}

/// `ostree-prepare-root` from the same build, when it was built (`cargo test --workspace`).
fn prepare_root_bin() -> Option<PathBuf> {
    let p = Path::new(BIN).with_file_name("ostree-prepare-root");
    p.is_file().then_some(p)
}

/// Unpacks an initrd the plugin installed (gzip'd cpio + our appended cpio) into `dir`,
/// and gives it the signed-mode prepare-root.conf an initrd for this flow carries.
fn unpack_initrd(initrd: &[u8], orig_len: usize, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let (a, b) = (dir.join("a.gz"), dir.join("b.cpio"));
    fs::write(&a, &initrd[..orig_len]).unwrap();
    fs::write(&b, &initrd[orig_len.next_multiple_of(4)..]).unwrap();
    run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && gzip -dc a.gz | cpio -id --quiet && cpio -id --quiet < b.cpio && rm a.gz b.cpio")
        .arg("sh")
        .arg(dir));
    write(
        &dir.join("etc/ostree/prepare-root.conf"),
        "[composefs]\nenabled=signed\n",
    );
}

#[test]
fn prepare_root_check_refuses_the_other_initrds_deployment() {
    let pr = prepare_root_bin();
    if !require(
        pr.is_some(),
        "needs ostree-prepare-root built beside ostree-composefs (cargo test --workspace)",
    ) {
        return;
    }
    let pr = pr.unwrap();
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\nsigning=transient\n") else {
        return;
    };
    let orig_len = fs::metadata(&e.initrd).unwrap().len() as usize;
    e.add();
    let (dir1, csum1, initrd1) = check_default(&e);
    e.add();
    let (dir2, csum2, initrd2) = check_default(&e);
    let (r1, r2) = (e.t.path().join("initrd1"), e.t.path().join("initrd2"));
    unpack_initrd(&initrd1, orig_len, &r1);
    unpack_initrd(&initrd2, orig_len, &r2);
    let check = |root: &Path, dep: &Path| {
        let o = Command::new(&pr)
            .args(["--check", "--sysroot"])
            .arg(&e.sysroot)
            .arg("--config-root")
            .arg(root)
            .arg(dep)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let own1 = check(&r1, &dir1);
    let own2 = check(&r2, &dir2);
    assert!(
        own1.contains(&format!("ok: commit {csum1} signed by key 1")),
        "{own1}"
    );
    assert!(
        own2.contains(&format!("ok: commit {csum2} signed by key 1")),
        "{own2}"
    );
    // Each initrd refuses the other deployment: no key of it signed that commit.
    for out in [check(&r2, &dir1), check(&r1, &dir2)] {
        assert!(!out.contains("signed by key"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("FAIL:") && l.to_lowercase().contains("signature")),
            "{out}"
        );
    }
}

/// layout=ostree on a machine without ostree/repo (a container build where rpm-ostree's
/// plugin owns the layout): add and remove exit 0 and touch nothing.
#[test]
fn not_an_ostree_sysroot_is_left_alone() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@/../plain\n") else {
        return;
    };
    let plain = e.t.path().join("plain");
    fs::create_dir_all(plain.join("boot")).unwrap();
    let before = snapshot(e.t.path());
    let (k, i) = (e.kernel.to_str().unwrap(), e.initrd.to_str().unwrap());
    e.ok(&["add", KVER, k, i]);
    e.ok(&["remove", KVER]);
    assert_same(&before, &snapshot(e.t.path()), "a non-ostree machine");
}

/// Deployments whose entries carry 2022.7's names (`ostree-N-STATEROOT.conf`) are found
/// by `remove`, which rewrites the rest with today's names.
#[test]
fn remove_finds_entries_of_both_namings() {
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\n") else {
        return;
    };
    let (k, i) = (e.kernel.to_str().unwrap(), e.initrd.to_str().unwrap());
    let out = Command::new("kernel-install")
        .args(["add", "6.1.0-other", k, i])
        .env("KERNEL_INSTALL_CONF_ROOT", &e.conf)
        .env("BOOT_ROOT", e.sysroot.join("boot"))
        .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
        .env("KERNEL_INSTALL_PLUGINS", plugin())
        .env("TMPDIR", e.t.path())
        .env("OSTREE_COMPOSEFS", BIN)
        .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &e.kiroot)
        .env("OSTREE_SYSROOT_OPTS", "bootloader-naming-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = || {
        let mut v: Vec<String> = fs::read_dir(e.sysroot.join("boot/loader/entries"))
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(), ["ostree-1-testos.conf", "ostree-2-testos.conf"]);
    e.ok(&["remove", "6.1.0-other"]);
    assert_eq!(names(), ["ostree-1.conf"]);
    assert_eq!(deployment_dirs(&e.sysroot).len(), 1);
}

/// A secret key file as the signer's own, private (0600): the plugin refuses others.
fn write_secret_key(path: &Path, sk: &sign::SecretKey) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(format!("{}\n", sk.to_base64().as_str()).as_bytes())
        .unwrap();
}

/// Only what was computed here is signed: a commit that claims a digest its tree does
/// not give is refused before any signature is written, and so is a secret key that
/// group or others can read.
#[test]
fn key_signing_refuses_forged_digest_and_open_key() {
    use ostree_boot::ostree::objects::{COMPOSEFS_DIGEST_KEY, Value};
    use std::os::unix::fs::PermissionsExt;
    let Some(e) = setup("") else { return };
    let sk = sign::SecretKey::generate().unwrap();
    let keyfile = e.t.path().join("secret.key");
    write_secret_key(&keyfile, &sk);
    write(
        &e.kiroot.join("etc/ostree/kernel-install.conf"),
        &format!(
            "[kernel-install]\nsysroot={}\nsigning=key\nsigning-key={}\n",
            e.sysroot.display(),
            keyfile.display()
        ),
    );
    let k = e.kernel.to_str().unwrap().to_string();
    let i = e.initrd.to_str().unwrap().to_string();
    let before = deployment_dirs(&e.sysroot).len();

    // A key file others can read is refused, naming it.
    fs::set_permissions(&keyfile, fs::Permissions::from_mode(0o644)).unwrap();
    let err = e.fails(&["add", KVER, &k, &i]);
    assert!(
        err.contains(&format!(
            "secret key {}: permissions 0644 are too open",
            keyfile.display()
        )),
        "{err}"
    );
    fs::set_permissions(&keyfile, fs::Permissions::from_mode(0o600)).unwrap();

    // Someone with write access to the repo moves the ref to a commit claiming a
    // digest of their choice.
    let repo = e.repo();
    let head = repo.resolve_rev("testos/stable").unwrap();
    let (_, mut commit) = repo.load_commit(&head).unwrap();
    commit
        .metadata
        .insert(COMPOSEFS_DIGEST_KEY, Value::bytes(&[0x42; 32]));
    let forged = repo.write_commit(&commit).unwrap();
    repo.set_ref("testos/stable", &forged).unwrap();
    let err = e.fails(&["add", KVER, &k, &i]);
    assert!(
        err.contains(&format!(
            "commit {} claims ostree.composefs.digest.v0 {}",
            hex(&forged),
            "42".repeat(32)
        )) && err.contains("refusing to sign"),
        "{err}"
    );
    // No signature was made, nothing was deployed.
    assert!(repo.load_commitmeta(&forged).unwrap().is_none());
    assert_eq!(deployment_dirs(&e.sysroot).len(), before);

    // `ostree-composefs sign` refuses it too.
    let o = Command::new(BIN)
        .args(["sign", "--repo"])
        .arg(e.sysroot.join("ostree/repo"))
        .arg("--secret")
        .arg(&keyfile)
        .arg(hex(&forged))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("refusing to sign"),
        "{err}"
    );
    assert!(repo.load_commitmeta(&forged).unwrap().is_none());

    // The honest commit signs fine.
    repo.set_ref("testos/stable", &head).unwrap();
    e.add();
}

fn hex(c: &[u8; 32]) -> String {
    c.iter().map(|b| format!("{b:02x}")).collect()
}

/// The commit objects in the repository.
fn commit_objects(repo: &Path) -> usize {
    let mut n = 0;
    for d in fs::read_dir(repo.join("objects")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            n += usize::from(f.unwrap().path().extension().is_some_and(|x| x == "commit"));
        }
    }
    n
}

/// The plugin decides and seals under the sysroot lock: while another holder has it,
/// the plugin waits before writing anything, and the sealed commit appears only once
/// the lock is released.
#[test]
fn add_seals_only_under_the_sysroot_lock() {
    use std::os::unix::fs::MetadataExt;
    let Some(e) = setup("[kernel-install]\nsysroot=@SYSROOT@\nsigning=transient\n") else {
        return;
    };
    let repo = e.sysroot.join("ostree/repo");
    let before = commit_objects(&repo);
    // ostree's lock: an fcntl write lock on ostree/lock.
    let lock_path = e.sysroot.join("ostree/lock");
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .unwrap();
    rustix::fs::fcntl_lock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let ino = lock.metadata().unwrap().ino();
    let mut child = e
        .command(&[
            "add",
            KVER,
            e.kernel.to_str().unwrap(),
            e.initrd.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    // /proc/locks lists a process blocked on a lock as `-> POSIX ... <dev>:<ino> ...`.
    let waiting = |ino: u64| {
        fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains("->") && l.contains(&format!(":{ino} ")))
    };
    let start = std::time::Instant::now();
    while !waiting(ino) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the plugin ended ({st}) while the sysroot was locked");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the plugin never waited for the sysroot lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        commit_objects(&repo),
        before,
        "a commit was sealed before the sysroot lock was taken"
    );
    drop(lock);
    let st = child.wait().unwrap();
    assert!(st.success(), "kernel-install add: {st}");
    assert_eq!(commit_objects(&repo), before + 1, "one sealed commit");
    check_default(&e);
}
