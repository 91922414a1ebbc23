//! Deployments: which directory `ostree=` names, and what its path says.
//!
//! prepare-root must find the deployment from an untrusted path on an untrusted disk, so
//! resolution never leaves the sysroot: it walks the path one component at a time,
//! relative to a directory fd of the sysroot, reading each symlink itself. A `..` above
//! the sysroot, an absolute symlink, a loop, or a result that is not
//! `ostree/deploy/<stateroot>/deploy/<checksum>.<serial>` is an error, never followed.
//! ostree itself uses `realpath`, which follows absolute links into the initramfs; ostree
//! only ever writes relative links, so nothing it writes is refused here.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::cmdline::OstreeTarget;

/// Symlinks followed before giving up, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error(
        "Invalid ostree= argument '{0}', expected ostree=/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL"
    )]
    InvalidBootlink(String),
    #[error(
        "Invalid aboot symlink in /ostree, expected symlink to resolve to deploy/OSNAME/... instead it resolves to '{0}'"
    )]
    InvalidAbootLink(String),
    #[error("invalid deployment name '{0}', expected CHECKSUM.SERIAL")]
    InvalidDeployName(String),
    #[error("Couldn't find specified OSTree root '{}'", .0.display())]
    NotFound(PathBuf),
    #[error("OSTree target is not a symbolic link: {}", .0.display())]
    NotSymlink(PathBuf),
    #[error("OSTree target {}: '{component}' is not a directory", path.display())]
    NotADirectory { path: PathBuf, component: String },
    #[error("OSTree target {}: symlink '{link}' -> '{target}' is absolute; only links relative to the sysroot are followed", path.display())]
    AbsoluteLink {
        path: PathBuf,
        link: String,
        target: String,
    },
    #[error("OSTree target {}: '..' leads out of the sysroot", .0.display())]
    Escapes(PathBuf),
    #[error("OSTree target {}: too many levels of symbolic links", .0.display())]
    Loop(PathBuf),
    #[error(
        "OSTree target {} resolves to '{}', which is not a deployment (ostree/deploy/STATEROOT/deploy/CHECKSUM.SERIAL)", path.display(), resolved.display()
    )]
    NotADeployment { path: PathBuf, resolved: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The parts of a canonical `ostree=` value, `/ostree/boot.N/<stateroot>/<bootcsum>/<serial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootlink {
    pub bootversion: u8,
    pub stateroot: String,
    pub bootcsum: String,
    pub treeserial: u32,
}

impl Bootlink {
    /// ostree's `_ostree_sysroot_parse_bootlink` regex
    /// `^/ostree/boot.([01])/([^/]+)/([^/]+)/([0-9]+)$`, including its unescaped `.`
    /// (any character but a newline). A serial beyond `u32` is refused.
    pub fn parse(karg: &str) -> Result<Bootlink, DeploymentError> {
        let bad = || DeploymentError::InvalidBootlink(karg.to_string());
        let rest = karg.strip_prefix("/ostree/boot").ok_or_else(bad)?;
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if c != '\n' => {}
            _ => return Err(bad()),
        }
        let rest = chars.as_str();
        let bootversion = match rest.as_bytes().first() {
            Some(b'0') => 0,
            Some(b'1') => 1,
            _ => return Err(bad()),
        };
        let rest = rest
            .get(1..)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [stateroot, bootcsum, serial] = parts.as_slice() else {
            return Err(bad());
        };
        if stateroot.is_empty()
            || bootcsum.is_empty()
            || serial.is_empty()
            || !serial.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(Bootlink {
            bootversion,
            stateroot: stateroot.to_string(),
            bootcsum: bootcsum.to_string(),
            treeserial: serial.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Bootlink {
    /// The canonical `ostree=` value, as ostree writes it into a BLS entry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "/ostree/boot.{}/{}/{}/{}",
            self.bootversion, self.stateroot, self.bootcsum, self.treeserial
        )
    }
}

/// A deployment directory name, `<checksum>.<serial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployName {
    pub checksum: String,
    pub serial: u32,
}

impl DeployName {
    /// libostree's `^([0-9a-f]+)\.([0-9]+)$`.
    pub fn parse(s: &str) -> Result<DeployName, DeploymentError> {
        let bad = || DeploymentError::InvalidDeployName(s.to_string());
        let (csum, serial) = s.split_once('.').ok_or_else(bad)?;
        if csum.is_empty()
            || !csum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || serial.is_empty()
            || !serial.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(DeployName {
            checksum: csum.to_string(),
            serial: serial.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for DeployName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.checksum, self.serial)
    }
}

/// A deployment found from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDeployment {
    /// `ostree/deploy/<stateroot>/deploy/<name>`, relative to the sysroot.
    pub relpath: PathBuf,
    pub stateroot: String,
    pub name: DeployName,
}

impl ResolvedDeployment {
    /// `ostree/deploy/<stateroot>/var`, relative to the sysroot.
    pub fn stateroot_var(&self) -> PathBuf {
        Path::new("ostree/deploy").join(&self.stateroot).join("var")
    }
}

/// The stateroot an aboot link (`/ostree/root.a|b`) points into: `^deploy/([^/]+)/`.
pub fn aboot_stateroot(link_target: &str) -> Result<String, DeploymentError> {
    let bad = || DeploymentError::InvalidAbootLink(link_target.to_string());
    let rest = link_target.strip_prefix("deploy/").ok_or_else(bad)?;
    match rest.split_once('/') {
        Some((sr, _)) if !sr.is_empty() => Ok(sr.to_string()),
        _ => Err(bad()),
    }
}

/// Resolves `target` under the sysroot directory `sysroot`; see the module docs.
pub fn resolve(
    sysroot: &Path,
    target: &OstreeTarget,
) -> Result<ResolvedDeployment, DeploymentError> {
    let dirfd = rustix::fs::open(
        sysroot,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| DeploymentError::Io {
        path: sysroot.to_path_buf(),
        source: e.into(),
    })?;
    resolve_at(dirfd.as_fd(), target)
}

/// [`resolve`] relative to an already open sysroot directory.
pub fn resolve_at(
    sysroot: BorrowedFd<'_>,
    target: &OstreeTarget,
) -> Result<ResolvedDeployment, DeploymentError> {
    let tpath = PathBuf::from(&target.path);
    let mut walk = Walk {
        dirfd: sysroot,
        target: &tpath,
        resolved: Vec::new(),
        links: 0,
    };
    let comps: Vec<&str> = target.path.split('/').collect();
    let (last, parent) = comps.split_last().unwrap_or((&"", &[]));
    walk.follow(parent.iter().map(|s| s.to_string()).collect())?;
    // The last component must itself be a symlink (ostree: lstat + S_ISLNK).
    let last = *last;
    if matches!(last, "" | "." | "..") {
        return Err(DeploymentError::NotSymlink(tpath));
    }
    let link_rel = walk.join(last);
    match walk.stat(&link_rel) {
        Ok(FileType::Symlink) => {}
        Ok(_) => return Err(DeploymentError::NotSymlink(tpath)),
        Err(Errno::NOENT) => return Err(DeploymentError::NotFound(tpath)),
        Err(e) => return Err(walk.io(&link_rel, e)),
    }
    walk.follow(vec![last.to_string()])?;

    let resolved = PathBuf::from(walk.resolved.join("/"));
    let not_deployment = || DeploymentError::NotADeployment {
        path: tpath.clone(),
        resolved: resolved.clone(),
    };
    let [o, d, stateroot, d2, name] = walk.resolved.as_slice() else {
        return Err(not_deployment());
    };
    if o != "ostree" || d != "deploy" || d2 != "deploy" {
        return Err(not_deployment());
    }
    let name = DeployName::parse(name).map_err(|_| not_deployment())?;
    // The walk saw only directories, but check it as the kernel sees it, with no
    // symlinks at all and nothing above the sysroot, before anyone mounts from it.
    match rustix::fs::openat2(
        sysroot,
        &resolved,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(_) => {}
        // Kernels before 5.6 have no openat2; the walk already checked every step.
        Err(Errno::NOSYS) => {}
        Err(Errno::NOTDIR) => return Err(not_deployment()),
        Err(e) => return Err(walk.io(&resolved.display().to_string(), e)),
    }
    Ok(ResolvedDeployment {
        relpath: resolved,
        stateroot: stateroot.clone(),
        name,
    })
}

struct Walk<'a> {
    dirfd: BorrowedFd<'a>,
    target: &'a Path,
    /// Components below the sysroot, every one a real directory (never a symlink).
    resolved: Vec<String>,
    links: usize,
}

impl Walk<'_> {
    fn join(&self, c: &str) -> String {
        let mut p = self.resolved.join("/");
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(c);
        p
    }

    fn stat(&self, rel: &str) -> Result<FileType, Errno> {
        let st = rustix::fs::statat(self.dirfd, rel, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(FileType::from_raw_mode(st.st_mode))
    }

    fn io(&self, rel: &str, e: Errno) -> DeploymentError {
        DeploymentError::Io {
            path: PathBuf::from(rel),
            source: e.into(),
        }
    }

    /// Follows `pending` components from the current position.
    fn follow(&mut self, pending: Vec<String>) -> Result<(), DeploymentError> {
        let mut pending: std::collections::VecDeque<String> = pending.into();
        while let Some(c) = pending.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    if self.resolved.pop().is_none() {
                        return Err(DeploymentError::Escapes(self.target.to_path_buf()));
                    }
                    continue;
                }
                _ => {}
            }
            let rel = self.join(&c);
            match self.stat(&rel) {
                Ok(FileType::Symlink) => {
                    self.links += 1;
                    if self.links > MAX_SYMLINKS {
                        return Err(DeploymentError::Loop(self.target.to_path_buf()));
                    }
                    let t = rustix::fs::readlinkat(self.dirfd, rel.as_str(), Vec::new())
                        .map_err(|e| self.io(&rel, e))?;
                    let t = t.to_string_lossy().into_owned();
                    if t.starts_with('/') {
                        return Err(DeploymentError::AbsoluteLink {
                            path: self.target.to_path_buf(),
                            link: rel,
                            target: t,
                        });
                    }
                    for (i, part) in t.split('/').enumerate() {
                        pending.insert(i, part.to_string());
                    }
                }
                Ok(FileType::Directory) => self.resolved.push(c),
                // The final component may be anything; the caller checks what it is.
                Ok(_) if pending.is_empty() => self.resolved.push(c),
                Ok(_) => {
                    return Err(DeploymentError::NotADirectory {
                        path: self.target.to_path_buf(),
                        component: rel,
                    });
                }
                Err(Errno::NOENT) => {
                    return Err(DeploymentError::NotFound(self.target.to_path_buf()));
                }
                Err(e) => return Err(self.io(&rel, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const CSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn bootlink_parse() {
        let b = Bootlink::parse(&format!("/ostree/boot.1/fedora/{CSUM}/0")).unwrap();
        assert_eq!(
            b,
            Bootlink {
                bootversion: 1,
                stateroot: "fedora".into(),
                bootcsum: CSUM.into(),
                treeserial: 0
            }
        );
        assert_eq!(
            Bootlink::parse("/ostree/boot.0/a/b/17").unwrap().treeserial,
            17
        );
        // The regex's unescaped '.' matches any character.
        assert_eq!(
            Bootlink::parse("/ostree/bootX1/a/b/0").unwrap().bootversion,
            1
        );
    }

    #[test]
    fn bootlink_rejects() {
        for s in [
            "",
            "/boot/ostree.0",
            "/ostree/boot.2/a/b/0",
            "/ostree/boot.1/a/b",
            "/ostree/boot.1/a/b/c/0",
            "/ostree/boot.1//b/0",
            "/ostree/boot.1/a//0",
            "/ostree/boot.1/a/b/",
            "/ostree/boot.1/a/b/x",
            "/ostree/boot.1/a/b/0/",
            "ostree/boot.1/a/b/0",
            "/ostree/boot.10/a/b/0",
            "/ostree/boot\n1/a/b/0",
            "/ostree/boot.1/a/b/99999999999",
        ] {
            let e = Bootlink::parse(s).unwrap_err();
            assert!(
                e.to_string().starts_with("Invalid ostree= argument"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn deploy_name_parse() {
        let n = DeployName::parse(&format!("{CSUM}.3")).unwrap();
        assert_eq!((n.checksum.as_str(), n.serial), (CSUM, 3));
        assert_eq!(n.to_string(), format!("{CSUM}.3"));
        for s in [
            "", "1234", "abc.", ".0", "ABC.0", "abc.0.1", "abg.0", "abc.-1", "abc. 0",
        ] {
            assert!(DeployName::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn aboot_stateroot_parse() {
        assert_eq!(
            aboot_stateroot(&format!("deploy/os/deploy/{CSUM}.0")).unwrap(),
            "os"
        );
        for s in [
            "deploy/os",
            "deploy//x",
            "/deploy/os/x",
            "../deploy/os/x",
            "x/deploy/os/",
        ] {
            assert!(aboot_stateroot(s).is_err(), "{s:?}");
        }
    }

    /// A sysroot with one deployment and ostree's bootlinks to it.
    fn sysroot() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let dep = r.join(format!("ostree/deploy/os/deploy/{CSUM}.0"));
        std::fs::create_dir_all(dep.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("ostree/boot.1.1/os/bcsum")).unwrap();
        symlink("boot.1.1", r.join("ostree/boot.1")).unwrap();
        symlink(
            format!("../../../deploy/os/deploy/{CSUM}.0"),
            r.join("ostree/boot.1.1/os/bcsum/0"),
        )
        .unwrap();
        d
    }

    fn t(p: &str) -> OstreeTarget {
        OstreeTarget {
            path: p.into(),
            is_aboot: false,
        }
    }

    #[test]
    fn resolve_bootlink_chain() {
        let d = sysroot();
        let r = resolve(d.path(), &t("/ostree/boot.1/os/bcsum/0")).unwrap();
        assert_eq!(
            r.relpath,
            PathBuf::from(format!("ostree/deploy/os/deploy/{CSUM}.0"))
        );
        assert_eq!(r.stateroot, "os");
        assert_eq!(r.name.serial, 0);
        assert_eq!(r.stateroot_var(), PathBuf::from("ostree/deploy/os/var"));
    }

    #[test]
    fn resolve_aboot_link() {
        let d = sysroot();
        symlink(
            format!("deploy/os/deploy/{CSUM}.0"),
            d.path().join("ostree/root.b"),
        )
        .unwrap();
        let target = OstreeTarget {
            path: "/ostree/root.b".into(),
            is_aboot: true,
        };
        let r = resolve(d.path(), &target).unwrap();
        assert_eq!(r.stateroot, "os");
        let link = std::fs::read_link(d.path().join("ostree/root.b")).unwrap();
        assert_eq!(aboot_stateroot(link.to_str().unwrap()).unwrap(), "os");
    }

    #[test]
    fn resolve_missing_and_not_symlink() {
        let d = sysroot();
        assert!(matches!(
            resolve(d.path(), &t("/ostree/boot.0/os/bcsum/0")),
            Err(DeploymentError::NotFound(_))
        ));
        assert!(matches!(
            resolve(d.path(), &t("/ostree/boot.1/os/bcsum/9")),
            Err(DeploymentError::NotFound(_))
        ));
        let e = resolve(d.path(), &t(&format!("/ostree/deploy/os/deploy/{CSUM}.0"))).unwrap_err();
        assert!(matches!(e, DeploymentError::NotSymlink(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!("OSTree target is not a symbolic link: /ostree/deploy/os/deploy/{CSUM}.0")
        );
        for p in ["", "/", "/ostree/", "/ostree/.."] {
            assert!(
                matches!(
                    resolve(d.path(), &t(p)),
                    Err(DeploymentError::NotSymlink(_))
                ),
                "{p:?}"
            );
        }
    }

    #[test]
    fn resolve_dotdot_escape() {
        let d = sysroot();
        symlink(
            "../../../../../etc",
            d.path().join("ostree/boot.1.1/os/bcsum/1"),
        )
        .unwrap();
        assert!(matches!(
            resolve(d.path(), &t("/ostree/boot.1/os/bcsum/1")),
            Err(DeploymentError::Escapes(_))
        ));
        // `..` in the karg itself.
        assert!(matches!(
            resolve(d.path(), &t("/../../ostree/boot.1/os/bcsum/0")),
            Err(DeploymentError::Escapes(_))
        ));
    }

    #[test]
    fn resolve_dotdot_out_and_back_in_is_still_refused() {
        // Going above the sysroot is refused even when the name would lead back in.
        let d = sysroot();
        let name = d.path().file_name().unwrap().to_str().unwrap().to_string();
        symlink(
            format!("../../../../../{name}/ostree/deploy/os/deploy/{CSUM}.0"),
            d.path().join("ostree/boot.1.1/os/bcsum/2"),
        )
        .unwrap();
        assert!(matches!(
            resolve(d.path(), &t("/ostree/boot.1/os/bcsum/2")),
            Err(DeploymentError::Escapes(_))
        ));
    }

    #[test]
    fn resolve_absolute_link_out() {
        let d = sysroot();
        let abs = d.path().join(format!("ostree/deploy/os/deploy/{CSUM}.0"));
        symlink(&abs, d.path().join("ostree/boot.1.1/os/bcsum/3")).unwrap();
        let e = resolve(d.path(), &t("/ostree/boot.1/os/bcsum/3")).unwrap_err();
        assert!(matches!(e, DeploymentError::AbsoluteLink { .. }), "{e}");
        // An absolute intermediate link too.
        std::fs::remove_file(d.path().join("ostree/boot.1")).unwrap();
        symlink(
            d.path().join("ostree/boot.1.1"),
            d.path().join("ostree/boot.1"),
        )
        .unwrap();
        let e = resolve(d.path(), &t("/ostree/boot.1/os/bcsum/0")).unwrap_err();
        assert!(matches!(e, DeploymentError::AbsoluteLink { .. }), "{e}");
    }

    #[test]
    fn resolve_loops() {
        let d = sysroot();
        let b = d.path().join("ostree/boot.1.1/os/bcsum");
        symlink("4", b.join("4")).unwrap();
        symlink("6", b.join("5")).unwrap();
        symlink("5", b.join("6")).unwrap();
        for p in ["/ostree/boot.1/os/bcsum/4", "/ostree/boot.1/os/bcsum/5"] {
            assert!(
                matches!(resolve(d.path(), &t(p)), Err(DeploymentError::Loop(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn resolve_target_not_a_deployment() {
        let d = sysroot();
        let b = d.path().join("ostree/boot.1.1/os/bcsum");
        // A directory that is not a deployment.
        symlink("../../../deploy/os", b.join("7")).unwrap();
        // A deployment-shaped path that is a file.
        std::fs::create_dir_all(d.path().join("ostree/deploy/os/deploy")).unwrap();
        std::fs::write(
            d.path().join(format!("ostree/deploy/os/deploy/{CSUM}.1")),
            "",
        )
        .unwrap();
        symlink(format!("../../../deploy/os/deploy/{CSUM}.1"), b.join("8")).unwrap();
        // A directory with a bad name.
        std::fs::create_dir_all(d.path().join("ostree/deploy/os/deploy/1234")).unwrap();
        symlink("../../../deploy/os/deploy/1234", b.join("9")).unwrap();
        // A dangling link.
        symlink("../../../deploy/os/deploy/nothere.0", b.join("10")).unwrap();
        // A path inside a deployment.
        symlink(
            format!("../../../deploy/os/deploy/{CSUM}.0/etc"),
            b.join("11"),
        )
        .unwrap();
        let r = |n: &str| resolve(d.path(), &t(&format!("/ostree/boot.1/os/bcsum/{n}")));
        assert!(matches!(
            r("7"),
            Err(DeploymentError::NotADeployment { .. })
        ));
        assert!(matches!(
            r("8"),
            Err(DeploymentError::NotADeployment { .. })
        ));
        assert!(matches!(
            r("9"),
            Err(DeploymentError::NotADeployment { .. })
        ));
        assert!(matches!(r("10"), Err(DeploymentError::NotFound(_))));
        assert!(matches!(
            r("11"),
            Err(DeploymentError::NotADeployment { .. })
        ));
    }

    #[test]
    fn resolve_through_file_component() {
        let d = sysroot();
        std::fs::write(d.path().join("ostree/afile"), "").unwrap();
        symlink(
            "../../../afile/x",
            d.path().join("ostree/boot.1.1/os/bcsum/12"),
        )
        .unwrap();
        assert!(matches!(
            resolve(d.path(), &t("/ostree/boot.1/os/bcsum/12")),
            Err(DeploymentError::NotADirectory { .. })
        ));
    }
}
