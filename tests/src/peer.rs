//! The upstream peer: Debian sid's ostree 2026.x (built with libcomposefs) and its
//! `ostree-boot` (prepare-root, remount, generator), in the chroot `scripts/peer-sid.sh`
//! builds once under `build/peer-sid` (or where `OSTREE_PEER_SID` says).
//!
//! Every run goes through `scripts/peer-run.sh`: a private mount namespace of its own,
//! the chroot an overlay whose upper layer is a tmpfs (so the cached chroot is never
//! written, and a run may create files or mount points anywhere in it), proc, sys and a
//! small /dev mounted, the host paths under test bind-mounted at the same absolute paths.
//! All of it goes away with the namespace when the command exits; nothing outlives a run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The stamp `scripts/peer-sid.sh` writes last: its presence means a complete chroot.
const STAMP: &str = ".peer-sid-packages";

#[derive(Debug, Clone)]
pub struct Peer {
    pub root: PathBuf,
    /// `ostree --version`'s Version line, e.g. `2026.4`.
    pub version: String,
}

/// The workspace root (this crate is `tests/` in it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Where the peer chroot is looked for.
pub fn peer_dir() -> PathBuf {
    match std::env::var_os("OSTREE_PEER_SID") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace().join("build/peer-sid"),
    }
}

fn allow_skip() -> bool {
    std::env::var("OSTREE_TEST_ALLOW_SKIP").is_ok_and(|v| v == "1")
}

/// The peer, or `None` when it is missing and `OSTREE_TEST_ALLOW_SKIP=1`. Without that
/// variable a missing peer (or not being root, which chroot and mounts need) fails the
/// calling test with the reason: a differential test that silently passes proves nothing.
pub fn peer() -> Option<Peer> {
    static PEER: OnceLock<Result<Peer, String>> = OnceLock::new();
    match PEER.get_or_init(find) {
        Ok(p) => Some(p.clone()),
        Err(why) if allow_skip() => {
            eprintln!("skipped (OSTREE_TEST_ALLOW_SKIP=1): {why}");
            None
        }
        Err(why) => panic!("{why}"),
    }
}

fn find() -> Result<Peer, String> {
    let root = peer_dir();
    if !root.join(STAMP).is_file() {
        return Err(format!(
            "the upstream peer chroot {} is missing or incomplete (no {STAMP}); build it with \
             scripts/peer-sid.sh (or `make peer`), or point OSTREE_PEER_SID at one",
            root.display()
        ));
    }
    if !euid_is_root() {
        return Err("the peer tests need root (chroot, mount namespaces)".into());
    }
    let p = Peer {
        root,
        version: String::new(),
    };
    let out = p.run(&[], "ostree --version");
    if !out.status.success() {
        return Err(format!(
            "`ostree --version` in the peer {} failed: {}",
            p.root.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version: "))
        .map(|v| v.trim_matches('\'').to_string())
        .ok_or_else(|| format!("no version in the peer's `ostree --version`: {text}"))?;
    if !text.contains("- composefs") {
        return Err(format!(
            "the peer's ostree {version} is built without composefs; rebuild it with \
             scripts/peer-sid.sh"
        ));
    }
    Ok(Peer { version, ..p })
}

/// The effective uid from /proc/self/status (this crate has no libc binding).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Shell-quotes one word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Peer {
    /// Runs `script` with `sh -c` inside the peer chroot, `binds` bind-mounted at the same
    /// paths. Returns the output whatever the exit status.
    pub fn run(&self, binds: &[&Path], script: &str) -> Output {
        self.run_with(binds, "", script)
    }

    /// As [`Peer::run`]; `host_setup` runs on the host side of the namespace after the
    /// chroot is assembled in `$R` (e.g. to bind a file over `$R/proc/cmdline`).
    /// `scripts/peer-run.sh` does the work (the VM harness uses it too).
    pub fn run_with(&self, binds: &[&Path], host_setup: &str, script: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(workspace().join("scripts/peer-run.sh"));
        for b in binds {
            cmd.arg("-b").arg(b);
        }
        cmd.arg("-s")
            .arg(host_setup)
            .arg("--")
            .arg(script)
            .env("OSTREE_PEER_SID", &self.root)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("OSTREE_SYSROOT");
        cmd.output().expect("running scripts/peer-run.sh")
    }

    /// [`Peer::run`], asserting success; returns stdout.
    pub fn ok(&self, binds: &[&Path], script: &str) -> String {
        let out = self.run(binds, script);
        assert!(
            out.status.success(),
            "peer `{script}` failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ostree ARGS` of the peer with `binds` visible; asserts success, returns stdout.
    pub fn ostree(&self, binds: &[&Path], args: &[&str]) -> String {
        let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
        self.ok(binds, &format!("ostree {}", words.join(" ")))
    }
}
