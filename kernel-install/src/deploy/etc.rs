//! `/etc` of a new deployment: a copy of `usr/etc`, then ostree's 3-way merge of the
//! local changes of the previous deployment (`merge_configuration_from`): the diff of
//! its `usr/etc` (what it shipped) against its `etc` (what the admin made of it) is
//! replayed onto the new `etc`; a locally changed file always wins.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree_boot::beneath::{self, BeneathError, Dir, Resolve};
use rustix::fs::{FileType, Stat};

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Creates `etc` from `usr/etc` (moving a commit's `/etc` to `usr/etc` first, as
/// upstream does for trees that ship it there). Every step is relative to the
/// deployment's descriptor and follows no link the commit ships: a `usr`, `usr/etc`
/// or `etc` that is a symlink is refused, links inside `usr/etc` are copied as links.
pub fn prepare_etc(deploy: &Path) -> Result<()> {
    let root = Dir::open(deploy)?;
    let has_usr_etc = root.metadata("usr/etc")?.is_some();
    let etc_st = root.metadata("etc")?;
    if has_usr_etc && etc_st.is_some() {
        bail!("Tree contains both /etc and /usr/etc");
    }
    if let Some(st) = etc_st {
        if kind(&st) != FileType::Directory {
            bail!(
                "{}: /etc is a {}, not a directory; refusing to deploy it",
                deploy.display(),
                beneath::kind_name(kind(&st))
            );
        }
        let usr = root.open_dir("usr").context("moving /etc to /usr/etc")?;
        root.rename(OsStr::new("etc"), &usr, OsStr::new("etc"))
            .context("moving /etc to /usr/etc")?;
    }
    let Some(st) = root.metadata("usr/etc")? else {
        return Ok(());
    };
    if kind(&st) != FileType::Directory {
        bail!(
            "{}: /usr/etc is a {}, not a directory; refusing to make /etc from it",
            deploy.display(),
            beneath::kind_name(kind(&st))
        );
    }
    let usr = root.open_dir("usr")?;
    beneath::copy_tree(&usr, OsStr::new("etc"), &root, OsStr::new("etc"))
        .context("copying /usr/etc to /etc")?;
    // ostree's finalize drops the systemd ConditionNeedsUpdate stamp.
    let etc = root.open_dir("etc")?;
    if etc.stat_child(OsStr::new(".updated"))?.is_some() {
        etc.remove_all(OsStr::new(".updated"))
            .context("removing etc/.updated")?;
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

fn names(dir: &Dir) -> Result<BTreeSet<OsString>> {
    Ok(dir.entries()?.into_iter().map(|(n, _)| n).collect())
}

fn same_content(a: &Dir, b: &Dir, name: &OsStr, ma: &Stat, mb: &Stat) -> Result<bool> {
    if ma.st_mode != mb.st_mode || ma.st_uid != mb.st_uid || ma.st_gid != mb.st_gid {
        return Ok(false);
    }
    match kind(ma) {
        FileType::Symlink => Ok(a.read_link(Path::new(name))? == b.read_link(Path::new(name))?),
        FileType::RegularFile => {
            if ma.st_size != mb.st_size {
                return Ok(false);
            }
            if (ma.st_dev, ma.st_ino) == (mb.st_dev, mb.st_ino) {
                return Ok(true);
            }
            let mut fa = a.open_file(Path::new(name), Resolve::NoSymlinks)?;
            let mut fb = b.open_file(Path::new(name), Resolve::NoSymlinks)?;
            beneath::same_bytes(&mut fa, &mut fb)
                .with_context(|| format!("comparing {}", b.path().join(name).display()))
        }
        _ => Ok(ma.st_rdev == mb.st_rdev),
    }
}

fn diff_rec(a: &Dir, b: &Dir, rel: &Path, out: &mut EtcDiff) -> Result<()> {
    let (na, nb) = (names(a)?, names(b)?);
    for name in &na {
        let r = rel.join(name);
        if !nb.contains(name) {
            out.removed.push(r);
            continue;
        }
        let ma = a.stat_child(name)?.context("vanished during the diff")?;
        let mb = b.stat_child(name)?.context("vanished during the diff")?;
        if kind(&ma) != kind(&mb) {
            out.modified.push(r);
        } else if kind(&ma) == FileType::Directory {
            let (sa, sb) = (a.open_dir(Path::new(name))?, b.open_dir(Path::new(name))?);
            diff_rec(&sa, &sb, &r, out)?;
        } else if !same_content(a, b, name, &ma, &mb)? {
            out.modified.push(r);
        }
    }
    for name in nb.difference(&na) {
        out.added.push(rel.join(name));
    }
    Ok(())
}

/// Why a local change cannot be replayed: the new commit put a link (or a file) where
/// the change's parent directory was. Writing there would follow what the commit ships.
fn refuse_through(rel: &Path, parent: &Path, e: BeneathError) -> anyhow::Error {
    if e.is_symlink() {
        anyhow::anyhow!(
            "/etc/{} was changed locally, but the new commit makes /etc/{} (or a directory above it) a symbolic link; refusing to write through it: resolve the local change first",
            rel.display(),
            parent.display()
        )
    } else {
        anyhow::Error::new(e).context(format!("merging /etc/{}", rel.display()))
    }
}

/// Opens (creating what is missing, with the attributes they have in `modified`) the
/// parent of `rel` in `new_etc`: ostree's `ensure_directory_from_template`, one real
/// directory at a time.
fn ensure_parents(modified: &Dir, new_etc: &Dir, rel: &Path) -> Result<Dir> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let mut dst = new_etc.open_dir("")?;
    let mut src = modified.open_dir("")?;
    let mut so_far = PathBuf::new();
    for c in parent.components() {
        let Component::Normal(name) = c else {
            bail!("/etc/{}: not a plain relative path", rel.display());
        };
        so_far.push(name);
        match dst.stat_child(name)? {
            None => {
                let st = src.stat_child(name)?.with_context(|| {
                    format!("/etc/{}: vanished during the merge", so_far.display())
                })?;
                let x = src.xattrs_child(name)?;
                dst.mkdir(name, 0o700)?;
                dst.copy_attrs_child(name, &st, &x)?;
            }
            Some(st) if kind(&st) == FileType::Directory => {}
            Some(st) if kind(&st) == FileType::Symlink => {
                return Err(refuse_through(
                    rel,
                    &so_far,
                    BeneathError::Symlink {
                        path: so_far.clone(),
                    },
                ));
            }
            Some(st) => bail!(
                "/etc/{} was changed locally, but the new commit makes /etc/{} a {}; cannot merge",
                rel.display(),
                so_far.display(),
                beneath::kind_name(kind(&st))
            ),
        }
        dst = dst.open_dir(Path::new(name))?;
        src = src.open_dir(Path::new(name))?;
    }
    Ok(dst)
}

fn copy_modified(modified: &Dir, new_etc: &Dir, rel: &Path) -> Result<()> {
    let name = rel.file_name().context("an empty path in the /etc diff")?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let src_dir = modified
        .open_dir(parent)
        .with_context(|| format!("Reading modified config file /etc/{}", rel.display()))?;
    let ms = src_dir
        .stat_child(name)?
        .with_context(|| format!("Reading modified config file /etc/{}", rel.display()))?;
    let dst_dir = ensure_parents(modified, new_etc, rel)?;
    if let Some(nd) = dst_dir.stat_child(name)? {
        if kind(&nd) == FileType::Directory {
            if kind(&ms) != FileType::Directory {
                bail!(
                    "Modified config file newly defaults to directory '{}', cannot merge",
                    rel.display()
                );
            }
            // The directory exists in the new /etc: its changed children are merged
            // one by one, since they appear in the diff themselves.
            return Ok(());
        }
        dst_dir.unlink(name)?;
    }
    beneath::copy_tree(&src_dir, name, &dst_dir, name)?;
    Ok(())
}

/// Opens `rel` of a deployment as a real directory; `None` when it is absent.
fn open_etc(deploy: &Dir, rel: &str) -> Result<Option<Dir>> {
    match deploy.metadata(rel)? {
        None => Ok(None),
        Some(st) if kind(&st) == FileType::Directory => Ok(Some(deploy.open_dir(rel)?)),
        Some(st) => bail!(
            "{}: /{rel} is a {}, not a directory; cannot merge /etc",
            deploy.path().display(),
            beneath::kind_name(kind(&st))
        ),
    }
}

/// Replays the admin's changes in `merge_deploy` onto `new_deploy/etc`. Both trees are
/// walked through descriptors; a link either of them holds is compared and copied as a
/// link, and nothing is ever read or written through one.
pub fn merge(merge_deploy: &Path, new_deploy: &Path) -> Result<EtcDiff> {
    let old = Dir::open(merge_deploy)?;
    let new = Dir::open(new_deploy)?;
    let (Some(orig), Some(modified), Some(new_etc)) = (
        open_etc(&old, "usr/etc")?,
        open_etc(&old, "etc")?,
        open_etc(&new, "etc")?,
    ) else {
        // Nothing to carry over (a tree without /etc).
        return Ok(EtcDiff::default());
    };
    let mut d = EtcDiff::default();
    diff_rec(&orig, &modified, Path::new(""), &mut d)
        .context("While computing configuration diff")?;
    for rel in &d.removed {
        let name = rel.file_name().context("an empty path in the /etc diff")?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = match new_etc.open_dir(parent) {
            Ok(dir) => dir,
            // Already gone from the new /etc: nothing to remove.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(refuse_through(rel, parent, e)),
        };
        dir.remove_all(name)
            .with_context(|| format!("removing /etc/{}", rel.display()))?;
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
    use std::fs;

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

    /// Issue #12: a new commit shipping `usr/etc/foo` as a link out of the sysroot
    /// made the merge replay the admin's `etc/foo/*` changes through it.
    #[test]
    fn local_changes_are_not_replayed_through_a_link_the_new_commit_ships() {
        let t = tempfile::tempdir().unwrap();
        let (old, new, outside) = (
            t.path().join("old"),
            t.path().join("new"),
            t.path().join("outside"),
        );
        w(&outside.join("victim"), "host\n");
        w(&outside.join("gone"), "host\n");
        for f in ["foo/victim", "foo/gone", "foo/keep"] {
            w(&old.join("usr/etc").join(f), "shipped\n");
        }
        prepare_etc(&old).unwrap();
        w(&old.join("etc/foo/victim"), "admin\n");
        w(&old.join("etc/foo/added"), "admin\n");
        fs::remove_file(old.join("etc/foo/gone")).unwrap();
        fs::create_dir_all(new.join("usr/etc")).unwrap();
        std::os::unix::fs::symlink(&outside, new.join("usr/etc/foo")).unwrap();
        prepare_etc(&new).unwrap();
        // The link itself was copied as a link, not followed.
        assert_eq!(fs::read_link(new.join("etc/foo")).unwrap(), outside);
        let e = format!("{:#}", merge(&old, &new).unwrap_err());
        assert!(e.contains("/etc/foo") && e.contains("symbolic link"), "{e}");
        assert_eq!(
            fs::read_to_string(outside.join("victim")).unwrap(),
            "host\n"
        );
        assert_eq!(fs::read_to_string(outside.join("gone")).unwrap(), "host\n");
        assert!(!outside.join("added").exists());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 2);
    }

    /// Links on the old side are compared and carried as links; a commit whose
    /// /usr/etc or /usr is a link is refused before anything is copied from it.
    #[test]
    fn links_on_either_side_are_data() {
        let t = tempfile::tempdir().unwrap();
        let (old, new, outside) = (
            t.path().join("old"),
            t.path().join("new"),
            t.path().join("outside"),
        );
        w(&outside.join("passwd"), "host\n");
        w(&old.join("usr/etc/x"), "x\n");
        prepare_etc(&old).unwrap();
        std::os::unix::fs::symlink(outside.join("passwd"), old.join("etc/admin-link")).unwrap();
        w(&new.join("usr/etc/x"), "x\n");
        prepare_etc(&new).unwrap();
        merge(&old, &new).unwrap();
        assert_eq!(
            fs::read_link(new.join("etc/admin-link")).unwrap(),
            outside.join("passwd")
        );
        assert_eq!(
            fs::read_to_string(outside.join("passwd")).unwrap(),
            "host\n"
        );

        fs::create_dir_all(outside.join("etc")).unwrap();
        for what in ["usr/etc", "usr"] {
            let d = t.path().join(format!("hostile-{}", what.replace('/', "-")));
            fs::create_dir_all(&d).unwrap();
            if what == "usr/etc" {
                fs::create_dir_all(d.join("usr")).unwrap();
                std::os::unix::fs::symlink("/etc", d.join("usr/etc")).unwrap();
            } else {
                std::os::unix::fs::symlink(&outside, d.join("usr")).unwrap();
            }
            let e = format!("{:#}", prepare_etc(&d).unwrap_err());
            assert!(e.contains("symbolic link"), "{what}: {e}");
            assert!(fs::symlink_metadata(d.join("etc")).is_err(), "{what}");
        }
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
