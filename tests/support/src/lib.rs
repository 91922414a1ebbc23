//! Fixtures shared by the tests of every crate of the workspace.
//!
//! The skip policy lives here, once: a test whose prerequisite is missing (root, mount
//! namespaces, the `ostree` CLI, a VM) **fails** with the reason, unless
//! `OSTREE_TEST_ALLOW_SKIP=1` is set, in which case it prints `SKIP: reason` and passes.
//! `make check` never sets the variable, so nothing is skipped there silently.

use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod deploy;
pub mod sysroot;
pub mod vectors;

/// The variable that turns a missing prerequisite from a failure into a skip.
pub const ALLOW_SKIP: &str = "OSTREE_TEST_ALLOW_SKIP";

fn skips_allowed() -> bool {
    std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1")
}

/// Whether the test may go on: true when `available`. Otherwise panics with `reason`,
/// or, with `OSTREE_TEST_ALLOW_SKIP=1`, prints `SKIP: reason` and returns false (the
/// caller then returns at once).
#[track_caller]
pub fn require(available: bool, reason: impl Display) -> bool {
    match decide(available, skips_allowed(), &reason) {
        Ok(go_on) => go_on,
        Err(msg) => panic!("{msg}"),
    }
}

/// The policy of [`require`] without the environment: Ok(go on?) or the failure.
fn decide(available: bool, allow_skip: bool, reason: &dyn Display) -> Result<bool, String> {
    if available {
        Ok(true)
    } else if allow_skip {
        eprintln!("SKIP: {reason}");
        Ok(false)
    } else {
        Err(format!(
            "prerequisite missing: {reason} (set {ALLOW_SKIP}=1 to skip this test instead of failing)"
        ))
    }
}

/// Root, and `unshare -m` works (the mount tests run in private mount namespaces).
#[track_caller]
pub fn privileged() -> bool {
    static CAN: OnceLock<Result<(), String>> = OnceLock::new();
    let can = CAN.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Err("needs root (mounts in a private mount namespace)".into());
        }
        match Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "`unshare -m` fails: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run unshare: {e}")),
        }
    });
    match can {
        Ok(()) => true,
        Err(reason) => require(false, reason),
    }
}

/// The real `ostree` CLI (`scripts/setup.sh` installs Debian's).
#[track_caller]
pub fn have_ostree() -> bool {
    require(have_command("ostree"), "needs the `ostree` CLI")
}

/// Whether `name --version` runs and succeeds. Only a probe: callers pass the answer to
/// [`require`].
pub fn have_command(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`; panics with its status, stdout and stderr unless it succeeds.
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run`], returning stdout as text.
#[track_caller]
pub fn run_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// Runs `args[0]` with the rest as arguments, as [`run`]; returns its stdout.
#[track_caller]
pub fn run_args(args: &[&str]) -> String {
    run_stdout(Command::new(args[0]).args(&args[1..]))
}

/// `sh -ec script`, as [`run`]; returns its stdout.
#[track_caller]
pub fn sh_out(script: &str) -> String {
    run_stdout(Command::new("sh").arg("-ec").arg(script))
}

pub fn output_stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn output_stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `s` to `p`, creating the parent directories.
pub fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// ostree's tests/test-composefs.sh tree (`setup_test_repository`'s test2 without
/// whiteouts) at `src`, with explicit modes so that the umask cannot change its digest.
pub fn composefs_sh_tree(src: &Path) {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dirs = ["baz/deeper", "baz/another", "baz/sub1", "baz/sub2"];
    for d in dirs {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    let files: &[(&str, &str, u32)] = &[
        ("firstfile", "first\n", 0o644),
        ("baz/cow", "moo\n", 0o644),
        ("baz/cowro", "mooro\n", 0o600),
        ("baz/saucer", "alien\n", 0o644),
        ("baz/deeper/ohyeah", "hi\n", 0o644),
        ("baz/deeper/ohyeahx", "hix\n", 0o755),
        ("baz/another/y", "x\n", 0o644),
        ("baz/sub1/duplicate_a", "SAME_CONTENT\n", 0o644),
        ("baz/sub1/duplicate_b", "SAME_CONTENT\n", 0o644),
        ("baz/sub2/duplicate_c", "SAME_CONTENT\n", 0o644),
    ];
    for (p, c, m) in files {
        fs::write(src.join(p), c).unwrap();
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(*m)).unwrap();
    }
    symlink("nosuchfile", src.join("somelink")).unwrap();
    symlink("nonexistent", src.join("baz/alink")).unwrap();
    for d in ["", "baz"].into_iter().chain(dirs) {
        fs::set_permissions(src.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_fails_unless_skips_are_allowed() {
        assert_eq!(decide(true, false, &"x"), Ok(true));
        assert_eq!(decide(true, true, &"x"), Ok(true));
        assert_eq!(decide(false, true, &"x"), Ok(false));
        let msg = decide(false, false, &"needs the thing").unwrap_err();
        assert!(
            msg.contains("needs the thing") && msg.contains(ALLOW_SKIP),
            "{msg}"
        );
    }
}

/// The bytes of a GVariant `ay`/`aay` as `ostree show` prints them (`g_variant_print`),
/// in order: each array is either `[byte 0x.., 0x..]` or, when it happens to be a
/// NUL-terminated string, a `b'...'` literal with C escapes (its NUL included).
pub fn printed_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'b' && b.get(i + 1) == Some(&b'\'') {
            i += 2;
            while b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                    if b[i].is_ascii_digit() {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 3 && b[i].is_ascii_digit() {
                            v = v * 8 + (b[i] - b'0') as u32;
                            i += 1;
                            n += 1;
                        }
                        out.push(v as u8);
                        continue;
                    }
                    out.push(match b[i] {
                        b'a' => 7,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => 10,
                        b'r' => 13,
                        b't' => 9,
                        b'v' => 11,
                        c => c,
                    });
                } else {
                    out.push(b[i]);
                }
                i += 1;
            }
            out.push(0);
            i += 1;
        } else if b[i] == b'0' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod printed_bytes_tests {
    use super::printed_bytes;

    #[test]
    fn glib_printed_bytes() {
        assert_eq!(printed_bytes("[byte 0x01, 0xff]"), vec![1, 0xff]);
        assert_eq!(
            printed_bytes("[b'\\b\\262a\\'', [0x00]]"),
            vec![8, 0o262, b'a', b'\'', 0, 0]
        );
    }
}
