//! Sysroots made with the real `ostree` CLI (Debian 12's 2022.7) for the deploy tests,
//! and a whole-sysroot snapshot to compare two sysroots.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::{run, run_stdout as stdout, write};

/// A temp dir that can be removed although deployments in it are sealed (`chattr +i`).
pub struct Scratch(pub tempfile::TempDir);

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unseal(self.0.path());
    }
}

/// Clears the immutable flag on every deployment directory below `root`.
pub fn unseal(root: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" -path '*/ostree/deploy/*/deploy/*' -prune -type d -exec chattr -i {} + 2>/dev/null")
        .arg("sh")
        .arg(root)
        .status();
}

/// `rm -rf` of a sysroot with sealed deployments.
pub fn remove_sysroot(root: &Path) {
    unseal(root);
    let _ = fs::remove_dir_all(root);
}

/// A small OS tree: a kernel and initramfs in usr/lib/modules, os-release, /usr/etc
/// with files, a symlink and a subdirectory, /var content, an xattr'd file.
pub fn make_tree(dir: &Path, kver: &str, kernel: &str) {
    let m = dir.join("usr/lib/modules").join(kver);
    write(&m.join("vmlinuz"), kernel);
    write(&m.join("initramfs.img"), "an initramfs\n");
    write(
        &dir.join("usr/lib/os-release"),
        "PRETTY_NAME=\"Test OS\"\nID=testos\n",
    );
    write(&dir.join("usr/etc/motd"), "hello\n");
    write(&dir.join("usr/etc/keep"), "x\n");
    write(&dir.join("usr/etc/conf.d/a.conf"), "a=1\n");
    std::os::unix::fs::symlink("../usr/lib/os-release", dir.join("usr/etc/os-release")).unwrap();
    write(&dir.join("usr/bin/tool"), "#!/bin/sh\necho tool\n");
    fs::set_permissions(
        dir.join("usr/bin/tool"),
        fs::Permissions::from_mode_ext(0o755),
    )
    .unwrap();
    write(&dir.join("usr/share/doc/x"), "doc\n");
    write(&dir.join("var/lib/foo/state"), "s\n");
    let _ = Command::new("setfattr")
        .args(["-n", "user.test", "-v", "42"])
        .arg(dir.join("usr/share/doc/x"))
        .status();
}

trait ModeExt {
    fn from_mode_ext(m: u32) -> fs::Permissions;
}
impl ModeExt for fs::Permissions {
    fn from_mode_ext(m: u32) -> fs::Permissions {
        std::os::unix::fs::PermissionsExt::from_mode(m)
    }
}

/// `ostree admin init-fs` + `os-init testos` + a commit of `tree` on `testos/stable`.
pub fn make_sysroot(sysroot: &Path, tree: &Path, version: &str) -> String {
    fs::create_dir_all(sysroot).unwrap();
    run(Command::new("ostree")
        .args(["admin", "init-fs"])
        .arg(sysroot));
    run(Command::new("ostree")
        .args(["admin", "os-init", "--sysroot"])
        .arg(sysroot)
        .arg("testos"));
    commit(sysroot, tree, version)
}

pub fn commit(sysroot: &Path, tree: &Path, version: &str) -> String {
    let repo = sysroot.join("ostree/repo");
    stdout(
        Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args([
                "commit",
                "-b",
                "testos/stable",
                "--timestamp=2024-01-01T00:00:00Z",
            ])
            .arg(format!("--add-metadata-string=version={version}"))
            .arg(format!("--tree=dir={}", tree.display())),
    )
    .trim()
    .to_string()
}

pub fn theirs(sysroot: &Path, args: &[&str]) -> Output {
    run(Command::new("ostree")
        .args(["admin", "deploy"])
        .arg(format!("--sysroot={}", sysroot.display()))
        .args(args))
}

pub fn status(sysroot: &Path) -> String {
    stdout(
        Command::new("ostree")
            .args(["admin", "status"])
            .arg(format!("--sysroot={}", sysroot.display())),
    )
}

/// `cp -a`, keeping hardlinks and xattrs.
pub fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn xattrs(p: &Path) -> Vec<String> {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "--absolute-names"])
        .arg(p)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Everything observable about a sysroot except times, inode numbers, `.ostree.cfs`,
/// and the repo's scratch state: type, mode, owner, link count, content hash, link
/// target and xattrs of every path.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    // ostree prunes objects after an undeploy; we leave that to `ostree prune`.
    if rel.starts_with("ostree/repo/tmp")
        || rel.starts_with("ostree/repo/objects/")
        || rel == "ostree/repo/.lock"
        || rel.ends_with(".ostree.cfs")
    {
        return;
    }
    let md = fs::symlink_metadata(p).unwrap();
    let ft = md.file_type();
    let mut desc = format!("mode={:o} uid={} gid={}", md.mode(), md.uid(), md.gid());
    if ft.is_file() {
        let data = fs::read(p).unwrap();
        desc += &format!(
            " nlink={} sha256={}",
            md.nlink(),
            hex::encode(Sha256::digest(&data))
        );
    } else if ft.is_symlink() {
        desc += &format!(" -> {}", fs::read_link(p).unwrap().display());
    }
    let x = xattrs(p);
    if !x.is_empty() {
        desc += &format!(" xattrs={x:?}");
    }
    out.insert(rel, desc);
    if ft.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            walk(root, &n, out);
        }
    }
}

/// [`snapshot`] without the deployments' backing directories, which ostree ≥ 2025 creates
/// and 2022.7 does not: for the differential tests against the host's 2022.7.
pub fn snapshot_2022(root: &Path) -> BTreeMap<String, String> {
    without_backing(snapshot(root))
}

/// [`snapshot_content`] without the backing directories (see [`snapshot_2022`]).
pub fn snapshot_content_2022(root: &Path) -> BTreeMap<String, String> {
    without_backing(snapshot_content(root))
}

fn without_backing(snap: BTreeMap<String, String>) -> BTreeMap<String, String> {
    snap.into_iter()
        .filter(|(k, _)| {
            let mut parts = k.split('/');
            !(parts.next() == Some("ostree")
                && parts.next() == Some("deploy")
                && parts.next().is_some()
                && parts.next() == Some("backing"))
        })
        .collect()
}

/// [`snapshot`] without link counts, which change when another checkout shares objects.
pub fn snapshot_content(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .split(' ')
                .filter(|w| !w.starts_with("nlink="))
                .collect::<Vec<_>>()
                .join(" ");
            (k, v)
        })
        .collect()
}

/// Asserts two snapshots are equal, listing every difference.
pub fn assert_same(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in ostree's: {k} {v}")),
            Some(w) if w != v => diffs.push(format!("differs: {k}\n  ostree: {v}\n  ours:   {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            diffs.push(format!("only in ours: {k} {v}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The deployment directories of the stateroot, newest entry first.
pub fn deployment_dirs(sysroot: &Path) -> Vec<PathBuf> {
    let st = status(sysroot);
    st.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['*', ' ']);
            let (sr, name) = l.split_once(' ')?;
            let name = name.split_whitespace().next()?;
            let csum = ostree_boot::deployment::DeployName::parse(name)
                .ok()?
                .checksum;
            if !ostree_boot::layout::is_hex_csum(&csum) {
                return None;
            }
            Some(
                sysroot
                    .join("ostree/deploy")
                    .join(sr)
                    .join("deploy")
                    .join(name),
            )
        })
        .collect()
}
