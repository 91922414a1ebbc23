//! `/etc` of a new deployment: a copy of `usr/etc`, then ostree's 3-way merge of the
//! local changes of the previous deployment (`merge_configuration_from`): the diff of
//! its `usr/etc` (what it shipped) against its `etc` (what the admin made of it) is
//! replayed onto the new `etc`; a locally changed file always wins.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::fsutil;

/// Creates `etc` from `usr/etc` (moving a commit's `/etc` to `usr/etc` first, as
/// upstream does for trees that ship it there).
pub fn prepare_etc(deploy: &Path) -> Result<()> {
    let (usr_etc, etc) = (deploy.join("usr/etc"), deploy.join("etc"));
    let has_usr_etc = fs::symlink_metadata(&usr_etc).is_ok();
    let has_etc = fs::symlink_metadata(&etc).is_ok();
    if has_usr_etc && has_etc {
        bail!("Tree contains both /etc and /usr/etc");
    }
    if has_etc {
        fs::rename(&etc, &usr_etc).context("moving /etc to /usr/etc")?;
    }
    if fs::symlink_metadata(&usr_etc).is_ok() {
        fsutil::copy_dir(&usr_etc, &etc).context("copying /usr/etc to /etc")?;
        // ostree's finalize drops the systemd ConditionNeedsUpdate stamp.
        match fs::remove_file(etc.join(".updated")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing etc/.updated"),
        }
    }
    Ok(())
}

/// The three lists of ostree's `ostree_diff_dirs` (xattrs ignored), as relative paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EtcDiff {
    pub modified: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub added: Vec<PathBuf>,
}

fn names(dir: &Path) -> Result<BTreeSet<OsString>> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        out.insert(
            e.with_context(|| format!("reading {}", dir.display()))?
                .file_name(),
        );
    }
    Ok(out)
}

fn same_content(a: &Path, b: &Path, ma: &fs::Metadata, mb: &fs::Metadata) -> Result<bool> {
    if ma.mode() != mb.mode() || ma.uid() != mb.uid() || ma.gid() != mb.gid() {
        return Ok(false);
    }
    let ft = ma.file_type();
    if ft.is_symlink() {
        return Ok(fs::read_link(a)? == fs::read_link(b)?);
    }
    if !ft.is_file() {
        return Ok(ma.rdev() == mb.rdev());
    }
    if ma.len() != mb.len() {
        return Ok(false);
    }
    if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
        return Ok(true);
    }
    let (mut fa, mut fb) = (
        fs::File::open(a).with_context(|| format!("opening {}", a.display()))?,
        fs::File::open(b).with_context(|| format!("opening {}", b.display()))?,
    );
    let (mut ba, mut bb) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn file_kind(md: &fs::Metadata) -> u32 {
    md.mode() & 0o170000
}

fn diff_rec(orig: &Path, modified: &Path, rel: &Path, out: &mut EtcDiff) -> Result<()> {
    let (a, b) = (orig.join(rel), modified.join(rel));
    let (na, nb) = (names(&a)?, names(&b)?);
    for name in &na {
        let r = rel.join(name);
        if !nb.contains(name) {
            out.removed.push(r);
            continue;
        }
        let (pa, pb) = (a.join(name), b.join(name));
        let ma = fs::symlink_metadata(&pa).with_context(|| format!("stat {}", pa.display()))?;
        let mb = fs::symlink_metadata(&pb).with_context(|| format!("stat {}", pb.display()))?;
        if file_kind(&ma) != file_kind(&mb) {
            out.modified.push(r);
        } else if ma.is_dir() {
            diff_rec(orig, modified, &r, out)?;
        } else if !same_content(&pa, &pb, &ma, &mb)? {
            out.modified.push(r);
        }
    }
    for name in nb.difference(&na) {
        out.added.push(rel.join(name));
    }
    Ok(())
}

pub fn diff(orig_etc: &Path, modified_etc: &Path) -> Result<EtcDiff> {
    let mut out = EtcDiff::default();
    diff_rec(orig_etc, modified_etc, Path::new(""), &mut out)?;
    Ok(out)
}

/// Creates the missing parents of `rel` in `new_etc` with the attributes they have in
/// `modified_etc` (ostree's `ensure_directory_from_template`).
fn ensure_parents(modified_etc: &Path, new_etc: &Path, rel: &Path) -> Result<()> {
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let target = new_etc.join(parent);
    if fs::symlink_metadata(&target).is_ok() {
        return Ok(());
    }
    ensure_parents(modified_etc, new_etc, parent)?;
    let src = modified_etc.join(parent);
    let md = fs::symlink_metadata(&src).with_context(|| format!("stat {}", src.display()))?;
    fs::create_dir(&target).with_context(|| format!("mkdir {}", target.display()))?;
    fsutil::copy_attrs(&src, &target, &md)
}

fn copy_modified(modified_etc: &Path, new_etc: &Path, rel: &Path) -> Result<()> {
    let src = modified_etc.join(rel);
    let dst = new_etc.join(rel);
    let ms = fs::symlink_metadata(&src)
        .with_context(|| format!("Reading modified config file {}", src.display()))?;
    ensure_parents(modified_etc, new_etc, rel)?;
    if let Ok(nd) = fs::symlink_metadata(&dst) {
        if nd.is_dir() {
            if !ms.is_dir() {
                bail!(
                    "Modified config file newly defaults to directory '{}', cannot merge",
                    rel.display()
                );
            }
            // The directory exists in the new /etc: its changed children are merged
            // one by one, since they appear in the diff themselves.
            return Ok(());
        }
        fs::remove_file(&dst).with_context(|| format!("removing {}", dst.display()))?;
    }
    if ms.is_dir() {
        fsutil::copy_dir(&src, &dst)
    } else {
        fsutil::copy_file(&src, &dst)
    }
}

/// Replays the admin's changes in `merge_deploy` onto `new_deploy/etc`.
pub fn merge(merge_deploy: &Path, new_deploy: &Path) -> Result<EtcDiff> {
    let orig = merge_deploy.join("usr/etc");
    let modified = merge_deploy.join("etc");
    let new_etc = new_deploy.join("etc");
    if !orig.is_dir() || !modified.is_dir() || !new_etc.is_dir() {
        // Nothing to carry over (a tree without /etc).
        return Ok(EtcDiff::default());
    }
    let d = diff(&orig, &modified).context("While computing configuration diff")?;
    for rel in &d.removed {
        fsutil::remove_tree(&new_etc.join(rel))?;
    }
    for rel in d.modified.iter().chain(&d.added) {
        copy_modified(&modified, &new_etc, rel)
            .with_context(|| format!("merging /etc/{}", rel.display()))?;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    #[test]
    fn three_way_merge() {
        let t = tempfile::tempdir().unwrap();
        let (old, new) = (t.path().join("old"), t.path().join("new"));
        for (f, c) in [
            ("motd", "hello\n"),
            ("keep", "x\n"),
            ("gone", "g\n"),
            ("d/a", "a\n"),
        ] {
            w(&old.join("usr/etc").join(f), c);
        }
        prepare_etc(&old).unwrap();
        w(&old.join("etc/motd"), "local\n");
        fs::remove_file(old.join("etc/gone")).unwrap();
        w(&old.join("etc/new/deep/file"), "n\n");
        std::os::unix::fs::symlink("motd", old.join("etc/link")).unwrap();
        for (f, c) in [
            ("motd", "hello2\n"),
            ("keep", "y\n"),
            ("gone", "g2\n"),
            ("shipped", "s\n"),
        ] {
            w(&new.join("usr/etc").join(f), c);
        }
        prepare_etc(&new).unwrap();
        let d = merge(&old, &new).unwrap();
        assert_eq!(d.modified, [PathBuf::from("motd")]);
        assert_eq!(d.removed, [PathBuf::from("gone")]);
        assert_eq!(d.added, [PathBuf::from("link"), PathBuf::from("new")]);
        let e = new.join("etc");
        assert_eq!(fs::read_to_string(e.join("motd")).unwrap(), "local\n");
        assert_eq!(fs::read_to_string(e.join("keep")).unwrap(), "y\n");
        assert!(!e.join("gone").exists());
        assert_eq!(fs::read_to_string(e.join("new/deep/file")).unwrap(), "n\n");
        assert_eq!(
            fs::read_link(e.join("link")).unwrap(),
            PathBuf::from("motd")
        );
        assert_eq!(fs::read_to_string(e.join("shipped")).unwrap(), "s\n");
        assert!(
            !e.join("d").exists(),
            "d/ was not in the new usr/etc and not changed locally"
        );
    }

    #[test]
    fn both_etc_and_usr_etc_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr/etc")).unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        assert!(
            prepare_etc(t.path())
                .unwrap_err()
                .to_string()
                .contains("both /etc and /usr/etc")
        );
    }
}
