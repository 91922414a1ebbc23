//! A sysroot made by the real `ostree` CLI for the prepare-root tests, a composefs image
//! for its deployment, and a private mount namespace to run prepare-root in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use ostree_boot::composefs::writer;
use ostree_boot::ostree::checkout;
use ostree_boot::ostree::objects::parse_checksum;
use ostree_boot::ostree::repo::Repo;
use ostree_boot::sign::{self, SecretKey};

use crate::run;

/// prepare-root mounts on `/sysroot.tmp` of the real root and rmdirs it afterwards: two
/// runs at once would pull it from under each other. One at a time per test binary.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sysroot with one deployment of a small commit.
pub struct Sysroot {
    pub tmp: tempfile::TempDir,
    pub path: PathBuf,
    pub repo: PathBuf,
    pub commit: String,
    /// Absolute path of the deployment directory.
    pub deploy: PathBuf,
    /// The deployment relative to the sysroot (`ostree/deploy/default/deploy/<csum>.0`).
    pub deploy_rel: String,
    /// The `ostree=` value the BLS entry carries.
    pub karg: String,
    /// Private key (base64 seed‖public, as `ostree sign` wants it) and public key (base64).
    pub secret_b64: String,
    pub public_b64: String,
    /// The bootc base commit, when built with one.
    pub base: Option<String>,
}

impl Drop for Sysroot {
    fn drop(&mut self) {
        // `ostree admin deploy` makes deployment directories immutable.
        let _ = Command::new("chattr").arg("-i").arg(&self.deploy).status();
    }
}

/// A fresh Ed25519 key pair: secret (base64 seed‖public, `ostree sign`'s format) and
/// public key (base64, the `composefs.keypath` format).
fn keypair() -> (String, String) {
    let sk = SecretKey::generate().unwrap();
    (sk.to_base64().to_string(), sk.public_key().to_base64())
}

impl Sysroot {
    /// `admin init-fs`, `admin os-init default`, a commit of a small tree with a kernel,
    /// `admin deploy`. `metadata` are extra `--add-metadata` arguments (GVariant text).
    pub fn build(metadata: &[&str]) -> Sysroot {
        Self::build_opts(metadata, false)
    }

    /// With `bootc_base`, the deployed commit is a bootc-style child (metadata
    /// `ostree.container.image-config`, same tree) of a base commit that carries
    /// `metadata`; the base is [`Sysroot::base`].
    pub fn build_opts(metadata: &[&str], bootc_base: bool) -> Sysroot {
        let tmp = tempfile::Builder::new()
            .prefix("prepare-root-test.")
            .tempdir_in("/var/tmp")
            .unwrap();
        let t = tmp.path();
        let tree = t.join("tree");
        for d in [
            "usr/etc",
            "usr/lib/modules/6.1.0",
            "usr/bin",
            "sysroot",
            "var",
            "boot",
            "etc",
        ] {
            fs::create_dir_all(tree.join(d)).unwrap();
        }
        fs::remove_dir(tree.join("etc")).unwrap();
        fs::write(
            tree.join("usr/lib/modules/6.1.0/vmlinuz"),
            b"not a kernel\n",
        )
        .unwrap();
        fs::write(
            tree.join("usr/lib/modules/6.1.0/initramfs.img"),
            b"not an initramfs\n",
        )
        .unwrap();
        fs::write(
            tree.join("usr/etc/os-release"),
            b"ID=test\nPRETTY_NAME=Test\n",
        )
        .unwrap();
        fs::write(tree.join("usr/etc/hostname"), b"test\n").unwrap();
        fs::write(
            tree.join("usr/bin/hello"),
            b"hello from the composefs root\n",
        )
        .unwrap();
        let big: Vec<u8> = (0..20000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(tree.join("usr/bin/big"), &big).unwrap();
        fs::set_permissions(
            tree.join("usr/bin/hello"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();

        let src = t.join("srcrepo");
        run(Command::new("ostree")
            .arg(format!("--repo={}", src.display()))
            .args(["init", "--mode=bare-user"]));
        let mut c = Command::new("ostree");
        c.arg(format!("--repo={}", src.display()))
            .args([
                "commit",
                "-b",
                "os",
                "--owner-uid=0",
                "--owner-gid=0",
                "--canonical-permissions",
            ])
            .arg(format!("--tree=dir={}", tree.display()));
        for m in metadata {
            c.arg(format!("--add-metadata={m}"));
        }
        let mut commit = String::from_utf8(run(&mut c).stdout)
            .unwrap()
            .trim()
            .to_string();
        let mut base = None;
        if bootc_base {
            let child = run(Command::new("ostree")
                .arg(format!("--repo={}", src.display()))
                .args(["commit", "-b", "os", "--tree=ref=os"])
                .arg(format!("--parent={commit}"))
                .arg("--add-metadata-string=ostree.container.image-config={}"))
            .stdout;
            base = Some(commit);
            commit = String::from_utf8(child).unwrap().trim().to_string();
        }

        let path = t.join("sysroot");
        fs::create_dir(&path).unwrap();
        let sr = format!("--sysroot={}", path.display());
        run(Command::new("ostree")
            .args(["admin", "init-fs", &sr])
            .arg(&path));
        run(Command::new("ostree").args(["admin", "os-init", &sr, "default"]));
        let repo = path.join("ostree/repo");
        run(Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["pull-local", "--depth=1"])
            .arg(&src)
            .arg("os"));
        run(Command::new("ostree").args(["admin", "deploy", &sr, "--os=default", "os"]));
        if let Some(b) = &base {
            // `admin deploy` pruned the parent: bring the base commit back, as a bootc
            // host keeps it.
            run(Command::new("ostree")
                .arg(format!("--repo={}", repo.display()))
                .arg("pull-local")
                .arg(&src)
                .arg(b));
        }

        let deploy_rel = format!("ostree/deploy/default/deploy/{commit}.0");
        let deploy = path.join(&deploy_rel);
        let entries = path.join("boot/loader/entries");
        let entry = fs::read_dir(&entries)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let conf = fs::read_to_string(entry).unwrap();
        let karg = conf
            .lines()
            .find_map(|l| l.strip_prefix("options "))
            .and_then(|o| o.split(' ').find_map(|w| w.strip_prefix("ostree=")))
            .unwrap()
            .to_string();
        run(Command::new("chattr").arg("-i").arg(&deploy));
        let (secret_b64, public_b64) = keypair();
        Sysroot {
            tmp,
            path,
            repo,
            commit,
            deploy,
            deploy_rel,
            karg,
            secret_b64,
            public_b64,
            base,
        }
    }

    /// Signs the deployed commit as `ostree sign` does (Debian's ostree is built without
    /// ed25519): a signature over the raw `.commit` bytes appended to the
    /// `ostree.sign.ed25519` array of its detached metadata.
    pub fn sign(&self, secret_b64: &str) {
        self.sign_commit(&self.commit, secret_b64)
    }

    /// Signs `commit` (a checksum) in the sysroot's repository.
    pub fn sign_commit(&self, commit: &str, secret_b64: &str) {
        let sk = SecretKey::from_base64(secret_b64).unwrap();
        let repo = Repo::open(&self.repo).unwrap();
        let csum = parse_checksum(commit).unwrap();
        let (bytes, _) = repo.load_commit(&csum).unwrap();
        let mut meta = repo
            .load_commitmeta(&csum)
            .unwrap()
            .map(|(_, m)| m)
            .unwrap_or_default();
        sign::add_signature(&mut meta, &sk.sign(&bytes));
        repo.write_commitmeta(&csum, &meta).unwrap();
    }

    /// A second, unrelated key pair.
    pub fn other_key(&self) -> (String, String) {
        keypair()
    }

    pub fn cfs_path(&self) -> PathBuf {
        self.deploy.join(".ostree.cfs")
    }

    /// Writes `.ostree.cfs` for the deployment as `ostree admin deploy` does with
    /// composefs: the commit's composefs tree (ostree's rules, fs-verity digests of every
    /// object) through our libcomposefs-identical EROFS writer.
    pub fn write_cfs(&self) {
        let repo = Repo::open(&self.repo).unwrap();
        let csum = parse_checksum(&self.commit).unwrap();
        let tree =
            checkout::commit_tree_with(&repo, &csum, checkout::Verity::Yes, &Digests).unwrap();
        let image = writer::write_image(&tree, &writer::WriteOptions::default()).unwrap();
        fs::write(self.cfs_path(), image).unwrap();
    }

    pub fn remove_cfs(&self) {
        let _ = fs::remove_file(self.cfs_path());
    }
}

/// fs-verity digests for the image: the kernel's where a file has verity, else computed.
struct Digests;

impl checkout::DigestSource for Digests {
    fn measure(&self, file: &fs::File) -> Option<[u8; 32]> {
        ostree_boot::fsverity::ioctl::measure(file).ok().flatten()
    }
    fn digest_files(&self, paths: &[PathBuf]) -> Vec<std::io::Result<[u8; 32]>> {
        ostree_boot::fsverity::digest::digest_files_parallel(paths)
    }
}

/// Runs `script` with sh in a new private mount namespace, with a fresh tmpfs on /run,
/// writable overlays on /etc/ostree and /usr/lib/ostree (for prepare-root.conf), and the
/// sysroot bind-mounted on itself (it is a mount point in the initrd).
pub fn in_namespace(sysroot: &Path, setup: &str, script: &str) -> Output {
    let scratch = tempfile::Builder::new()
        .prefix("prepare-root-ns.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let s = scratch.path().display();
    let full = format!(
        r#"set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs {s}
mkdir -p {s}/etc-upper {s}/etc-work {s}/lib-upper/ostree {s}/lib-work
mount -t tmpfs tmpfs /etc/ostree
mount -t overlay overlay -o lowerdir=/usr/lib,upperdir={s}/lib-upper,workdir={s}/lib-work /usr/lib
mount --bind {sr} {sr}
{setup}
set +e
{script}
"#,
        sr = sysroot.display()
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &full])
        .output()
        .expect("running unshare")
}
