//! systemd-boot's Automatic Boot Assessment as it shows in entry file names, and the
//! pieces of the vfat mirror (see ostree-kernel-install.conf(5)) that are plain data.
//!
//! An entry `NAME+LEFT[-DONE].conf` has LEFT tries left and DONE done; systemd-boot
//! renames it at each boot (`+3` → `+2-1` → … → `+0-3`) and sorts `+0` entries last;
//! `systemd-bless-boot` renames it to `NAME.conf` once the boot is good. A name whose
//! suffix is not exactly that (no digits, a sign, trailing text) has no counter, as
//! systemd-boot reads it.

use std::fmt;

use thiserror::Error;

/// Entries of the mirror are ours when their name starts with this (and ends in `.conf`);
/// every other entry on the partition belongs to someone else and is carried over.
pub const ENTRY_PREFIX: &str = "ostree-";

/// The comment line a mirror entry starts with, naming the deployment it boots: the
/// counter in the file name follows the deployment, not the position N (which shifts).
/// Boot Loader Specification readers skip `#` lines.
pub const IDENTITY_PREFIX: &str = "# ostree-deployment: ";

/// A boot counter: tries left, and tries done when systemd-boot has counted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub left: u32,
    pub done: Option<u32>,
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.left)?;
        if let Some(d) = self.done {
            write!(f, "-{d}")?;
        }
        Ok(())
    }
}

/// A decimal number of at least one digit, nothing else (no sign, no space).
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits an entry file name into its name without counter and `.conf`, and its counter.
/// `None` when the name does not end in `.conf` (not an entry).
pub fn split_entry_name(file: &str) -> Option<(&str, Option<Counter>)> {
    let stem = file.strip_suffix(".conf")?;
    let Some((base, suffix)) = stem.rsplit_once('+') else {
        return Some((stem, None));
    };
    let (left, done) = match suffix.split_once('-') {
        Some((l, d)) => (l, Some(d)),
        None => (suffix, None),
    };
    let counter = match (digits(left), done.map(digits)) {
        (Some(left), None) => Some(Counter { left, done: None }),
        (Some(left), Some(Some(d))) => Some(Counter {
            left,
            done: Some(d),
        }),
        _ => None,
    };
    match counter {
        Some(c) => Some((base, Some(c))),
        None => Some((stem, None)),
    }
}

/// The file name for `base` (without `.conf`) with `counter`.
pub fn entry_name(base: &str, counter: Option<Counter>) -> String {
    match counter {
        Some(c) => format!("{base}{c}.conf"),
        None => format!("{base}.conf"),
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TriesError {
    #[error("{path}: empty; expected the number of boot tries (1 to 16)")]
    Empty { path: String },
    #[error("{path}: line 1: {value:?} is not a number of boot tries (1 to 16)")]
    Invalid { path: String, value: String },
}

/// The largest tries value taken: the same range as the GRUB plugin
/// (`87-ostree-grub-tries.install`, `grubenv arm`), which reads the same file.
pub const MAX_TRIES: u32 = 16;

/// Reads kernel-install's `tries` file: its first line, surrounding blanks ignored (as
/// the shell's `read` does), a whole number from 1 to [`MAX_TRIES`]. kernel-install
/// itself also takes 0, which would write an entry systemd-boot already counts as bad:
/// refused here.
pub fn parse_tries(text: &str, path: &str) -> Result<u32, TriesError> {
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return Err(TriesError::Empty { path: path.into() });
    }
    match digits(first) {
        Some(n) if (1..=MAX_TRIES).contains(&n) => Ok(n),
        _ => Err(TriesError::Invalid {
            path: path.into(),
            value: first.chars().take(64).collect(),
        }),
    }
}

/// The identity line for a deployment: `<stateroot>/<csum>.<serial>`.
pub fn identity_line(stateroot: &str, deploy_name: &str) -> String {
    format!("{IDENTITY_PREFIX}{stateroot}/{deploy_name}")
}

/// The deployment a mirror entry's text names in its identity line, if it has one.
pub fn read_identity(text: &str) -> Option<&str> {
    text.lines()
        .next()?
        .strip_prefix(IDENTITY_PREFIX)
        .map(str::trim_end)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(left: u32, done: Option<u32>) -> Option<Counter> {
        Some(Counter { left, done })
    }

    #[test]
    fn entry_names() {
        for (file, want) in [
            ("ostree-1.conf", Some(("ostree-1", None))),
            ("ostree-1+3.conf", Some(("ostree-1", c(3, None)))),
            ("ostree-1+2-1.conf", Some(("ostree-1", c(2, Some(1))))),
            ("ostree-1+0-3.conf", Some(("ostree-1", c(0, Some(3))))),
            ("ostree-2-os+0.conf", Some(("ostree-2-os", c(0, None)))),
            ("a+b+3.conf", Some(("a+b", c(3, None)))),
            ("+3.conf", Some(("", c(3, None)))),
            // Not counters: the whole stem is the name.
            ("ostree-1+.conf", Some(("ostree-1+", None))),
            ("ostree-1+-1.conf", Some(("ostree-1+-1", None))),
            ("ostree-1+3-.conf", Some(("ostree-1+3-", None))),
            ("ostree-1+3-1-1.conf", Some(("ostree-1+3-1-1", None))),
            ("ostree-1++3.conf", Some(("ostree-1+", c(3, None)))),
            ("ostree-1+ 3.conf", Some(("ostree-1+ 3", None))),
            ("ostree-1+3x.conf", Some(("ostree-1+3x", None))),
            ("ostree-1+-3.conf", Some(("ostree-1+-3", None))),
            (
                "ostree-1+99999999999.conf",
                Some(("ostree-1+99999999999", None)),
            ),
            ("ostree-1+3", None),
            ("ostree-1+3.conf.tmp", None),
            ("", None),
        ] {
            assert_eq!(split_entry_name(file), want, "{file:?}");
        }
    }

    #[test]
    fn names_roundtrip() {
        for base in ["ostree-1", "ostree-12-debian", "x"] {
            for counter in [None, c(0, None), c(3, None), c(2, Some(1)), c(0, Some(7))] {
                let n = entry_name(base, counter);
                assert_eq!(split_entry_name(&n), Some((base, counter)), "{n}");
            }
        }
        assert_eq!(entry_name("ostree-3", c(2, Some(1))), "ostree-3+2-1.conf");
        assert_eq!(entry_name("ostree-3", None), "ostree-3.conf");
    }

    /// Every name of up to four characters from the alphabet that matters, before
    /// `.conf`: never a panic, a name without counter is itself, and formatting what was
    /// read reads back the same (leading zeros of a counter are not kept).
    #[test]
    fn entry_names_exhaustive() {
        let alphabet = ['+', '-', '0', '1', '9', 'a', ' '];
        let mut names = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for n in &names {
                for ch in alphabet {
                    next.push(format!("{n}{ch}"));
                }
            }
            names.extend(next);
            names.sort();
            names.dedup();
        }
        for n in names {
            let file = format!("{n}.conf");
            let (base, counter) = split_entry_name(&file).unwrap();
            let again = entry_name(base, counter);
            assert_eq!(split_entry_name(&again), Some((base, counter)), "{file:?}");
            match counter {
                None => assert_eq!(again, file),
                Some(_) => assert!(file.starts_with(base) && file.contains('+')),
            }
        }
    }

    #[test]
    fn tries() {
        assert_eq!(parse_tries("3\n", "/etc/kernel/tries"), Ok(3));
        assert_eq!(parse_tries("  5  \nignored\n", "t"), Ok(5));
        assert_eq!(parse_tries("16", "t"), Ok(16));
        for bad in [
            "0",
            "-1",
            "+3",
            "3 4",
            "three",
            "1001",
            "99999999999999",
            "0x3",
        ] {
            let e = parse_tries(bad, "/etc/kernel/tries").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("/etc/kernel/tries: line 1:"),
                "{bad}: {msg}"
            );
        }
        for empty in ["", "\n", "  \nx\n"] {
            assert_eq!(
                parse_tries(empty, "t"),
                Err(TriesError::Empty { path: "t".into() })
            );
        }
    }

    #[test]
    fn identity() {
        let l = identity_line("os", "abc.0");
        assert_eq!(l, "# ostree-deployment: os/abc.0");
        assert_eq!(read_identity(&format!("{l}\ntitle x\n")), Some("os/abc.0"));
        assert_eq!(
            read_identity("title x\n# ostree-deployment: os/a.0\n"),
            None
        );
        assert_eq!(read_identity("# ostree-deployment: \n"), None);
        assert_eq!(read_identity(""), None);
    }
}
