//! The "newc" cpio format (`070701`) the kernel unpacks initramfs archives from, enough
//! to append files to an existing initrd: the kernel unpacks concatenated archives one
//! after the other (compressed or not), later members overwriting earlier ones.
//!
//! Layout of a member: a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the
//! NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes. The archive
//! ends with a member named `TRAILER!!!`.

/// One member to write or one that was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive, without a leading `/`.
    pub name: String,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub data: Vec<u8>,
}

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpioError {
    #[error("member name {0:?} is empty, absolute or contains NUL")]
    BadName(String),
    #[error("{0} bytes of data do not fit a newc member")]
    TooLarge(usize),
    #[error("offset {offset}: {msg}")]
    Malformed { offset: usize, msg: String },
}

impl Member {
    pub fn dir(name: &str, perms: u32) -> Member {
        Member {
            name: name.into(),
            mode: S_IFDIR | (perms & 0o7777),
            uid: 0,
            gid: 0,
            mtime: 0,
            data: Vec::new(),
        }
    }
    pub fn file(name: &str, perms: u32, data: Vec<u8>) -> Member {
        Member {
            name: name.into(),
            mode: S_IFREG | (perms & 0o7777),
            uid: 0,
            gid: 0,
            mtime: 0,
            data,
        }
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(
    out: &mut Vec<u8>,
    ino: u32,
    m: &Member,
    nlink: u32,
    namesize: usize,
) -> Result<(), CpioError> {
    let size = u32::try_from(m.data.len()).map_err(|_| CpioError::TooLarge(m.data.len()))?;
    out.extend_from_slice(MAGIC);
    let namesize = namesize as u32;
    for v in [
        ino, m.mode, m.uid, m.gid, nlink, m.mtime, size, 0, 0, 0, 0, namesize, 0,
    ] {
        out.extend_from_slice(format!("{v:08x}").as_bytes());
    }
    Ok(())
}

/// A complete archive of `members` (in order) followed by the trailer. Inode numbers
/// are assigned from 1 so that no two members are taken for hardlinks.
pub fn write(members: &[Member]) -> Result<Vec<u8>, CpioError> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if m.name.is_empty()
            || m.name.starts_with('/')
            || m.name.contains('\0')
            || m.name == TRAILER
        {
            return Err(CpioError::BadName(m.name.clone()));
        }
        let nlink = if m.mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        header(&mut out, i as u32 + 1, m, nlink, m.name.len() + 1)?;
        out.extend_from_slice(m.name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(&m.data);
        pad4(&mut out);
    }
    let t = Member {
        name: TRAILER.into(),
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        data: Vec::new(),
    };
    header(&mut out, 0, &t, 1, TRAILER.len() + 1)?;
    out.extend_from_slice(TRAILER.as_bytes());
    out.push(0);
    pad4(&mut out);
    Ok(out)
}

/// The members and parent directories needed to place `data` at absolute `path`.
pub fn file_with_parents(path: &str, perms: u32, data: Vec<u8>) -> Result<Vec<Member>, CpioError> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(CpioError::BadName(path.to_string()));
    }
    let mut out = Vec::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 1..parts.len() {
        out.push(Member::dir(&parts[..i].join("/"), 0o755));
    }
    out.push(Member::file(rel, perms, data));
    Ok(out)
}

/// `existing` (any initrd, possibly compressed) padded with zeros to 4 bytes, then
/// `archive`: the kernel only looks for a cpio header at 4-byte aligned offsets and
/// skips the zeros between archives.
pub fn append(existing: &[u8], archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(existing.len() + 3 + archive.len());
    out.extend_from_slice(existing);
    pad4(&mut out);
    out.extend_from_slice(archive);
    out
}

fn hex_field(b: &[u8], at: usize, offset: usize) -> Result<u32, CpioError> {
    let f = b.get(at..at + 8).ok_or_else(|| CpioError::Malformed {
        offset,
        msg: "truncated header".into(),
    })?;
    let s = std::str::from_utf8(f).map_err(|_| CpioError::Malformed {
        offset,
        msg: "header field is not ASCII".into(),
    })?;
    u32::from_str_radix(s, 16).map_err(|_| CpioError::Malformed {
        offset,
        msg: format!("header field {s:?} is not hex"),
    })
}

/// Reads one uncompressed newc archive starting at `start`; returns its members and
/// the offset just after its trailer.
pub fn read(b: &[u8], start: usize) -> Result<(Vec<Member>, usize), CpioError> {
    let mut pos = start;
    let mut out = Vec::new();
    loop {
        let off = pos;
        if b.get(pos..pos + 6) != Some(MAGIC.as_slice()) {
            return Err(CpioError::Malformed {
                offset: off,
                msg: "no newc magic 070701".into(),
            });
        }
        let f = |i: usize| hex_field(b, pos + 6 + 8 * i, off);
        let (mode, uid, gid, mtime, size, namesize) =
            (f(1)?, f(2)?, f(3)?, f(5)?, f(6)? as usize, f(11)? as usize);
        let name_start = pos + HEADER_LEN;
        let name_bytes =
            b.get(name_start..name_start + namesize)
                .ok_or_else(|| CpioError::Malformed {
                    offset: off,
                    msg: "truncated name".into(),
                })?;
        let name = match name_bytes.split_last() {
            Some((0, n)) => String::from_utf8_lossy(n).into_owned(),
            _ => {
                return Err(CpioError::Malformed {
                    offset: off,
                    msg: "name is not NUL-terminated".into(),
                });
            }
        };
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = b
            .get(data_start..data_start + size)
            .ok_or_else(|| CpioError::Malformed {
                offset: off,
                msg: "truncated data".into(),
            })?;
        pos = (data_start + size).next_multiple_of(4);
        if name == TRAILER {
            return Ok((out, pos.min(b.len())));
        }
        out.push(Member {
            name,
            mode,
            uid,
            gid,
            mtime,
            data: data.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let members = file_with_parents("/etc/ostree/key", 0o644, b"abc\n".to_vec()).unwrap();
        assert_eq!(
            members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["etc", "etc/ostree", "etc/ostree/key"]
        );
        let a = write(&members).unwrap();
        assert_eq!(a.len() % 4, 0);
        assert_eq!(&a[..6], b"070701");
        let (back, end) = read(&a, 0).unwrap();
        assert_eq!(back, members);
        assert_eq!(end, a.len());
        // Appended after an odd-sized blob, the archive starts 4-aligned.
        let joined = append(b"xyzzy", &a);
        assert_eq!(&joined[8..14], b"070701");
        assert_eq!(read(&joined, 8).unwrap().0, members);
    }

    #[test]
    fn bad_input() {
        assert!(file_with_parents("/", 0o644, vec![]).is_err());
        assert!(file_with_parents("/a/../b", 0o644, vec![]).is_err());
        assert!(write(&[Member::file("/abs", 0o644, vec![])]).is_err());
        assert!(read(b"070701", 0).is_err());
        assert!(read(b"not a cpio archive at all, not at all, no", 0).is_err());
    }

    #[test]
    fn gnu_cpio_reads_it() {
        let Ok(status) = std::process::Command::new("cpio").arg("--version").output() else {
            return;
        };
        if !status.status.success() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let a = write(&file_with_parents("/etc/ostree/k.key", 0o600, b"KEY\n".to_vec()).unwrap())
            .unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet"])
            .current_dir(t.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&a).unwrap();
        assert!(child.wait().unwrap().success());
        let p = t.path().join("etc/ostree/k.key");
        assert_eq!(std::fs::read(&p).unwrap(), b"KEY\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
