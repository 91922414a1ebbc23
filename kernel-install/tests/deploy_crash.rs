//! Crash safety: the deploy is killed with SIGKILL at every checkpoint (fault
//! injection) and at random moments; after each kill `ostree admin status` works, the
//! default entry is either the previous one, intact and resolving to its intact
//! deployment, or the complete new one; and a rerun completes.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

struct Base {
    _t: Scratch,
    template: std::path::PathBuf,
    old_entries: Vec<(String, String)>,
    old_default: std::collections::BTreeMap<String, String>,
}

fn entries(sysroot: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(sysroot.join("boot/loader/entries"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A sysroot with one deployment (made by ostree) with local /etc changes and a second
/// commit to deploy.
fn base() -> Option<Base> {
    if !have_ostree() {
        return None;
    }
    let t = Scratch::new();
    let tree = t.path().join("tree");
    make_tree(&tree, "6.1.0-test", "a kernel\n");
    let s = t.path().join("template");
    make_sysroot(&s, &tree, "1.0");
    theirs(
        &s,
        &["--os=testos", "--karg=root=LABEL=MOO", "testos/stable"],
    );
    fs::write(deployment_dirs(&s)[0].join("etc/motd"), "local\n").unwrap();
    // A new kernel, so that the switch rewrites entries and installs boot files.
    fs::write(
        tree.join("usr/lib/modules/6.1.0-test/vmlinuz"),
        "a new kernel\n",
    )
    .unwrap();
    commit(&s, &tree, "2.0");
    let old_entries = entries(&s);
    let old_default = snapshot_content(&deployment_dirs(&s)[0]);
    Some(Base {
        _t: t,
        template: s,
        old_entries,
        old_default,
    })
}

fn fresh(b: &Base, name: &str) -> std::path::PathBuf {
    let d = b.template.parent().unwrap().join(name);
    remove_sysroot(&d);
    copy_tree(&b.template, &d);
    d
}

/// The invariants after a kill.
fn check_after_kill(b: &Base, s: &Path, what: &str) {
    let st = status(s);
    let now = entries(s);
    let dirs = deployment_dirs(s);
    if now == b.old_entries {
        // Not switched: the previous default resolves to its unchanged deployment.
        assert_eq!(
            snapshot_content(&dirs[0]),
            b.old_default,
            "{what}: previous default deployment changed"
        );
        assert!(st.contains("Version: 1.0"), "{what}: {st}");
    } else {
        // Switched: the new configuration is complete and consistent.
        assert_eq!(dirs.len(), 2, "{what}: {st}");
        assert!(
            st.lines()
                .nth(1)
                .is_some_and(|l| l.contains("Version: 2.0")),
            "{what}: {st}"
        );
        assert_eq!(
            snapshot_content(&dirs[1]),
            b.old_default,
            "{what}: rollback deployment changed"
        );
        assert_eq!(
            fs::read_to_string(dirs[0].join("etc/motd")).unwrap(),
            "local\n",
            "{what}"
        );
    }
    for d in &dirs {
        assert!(
            d.join("usr/lib/os-release").is_file(),
            "{what}: {} incomplete",
            d.display()
        );
    }
    // Every entry's kernel and initrd exist.
    for (_, e) in &now {
        for l in e
            .lines()
            .filter(|l| l.starts_with("linux ") || l.starts_with("initrd "))
        {
            let p = s
                .join("boot")
                .join(l.split_once(' ').unwrap().1.trim_start_matches('/'));
            assert!(p.is_file(), "{what}: {} missing", p.display());
        }
    }
}

fn rerun_completes(s: &Path, what: &str) {
    let out = Command::new(BIN)
        .args(["deploy", "--sysroot"])
        .arg(s)
        .arg("testos/stable")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = status(s);
    assert!(
        st.lines()
            .nth(1)
            .is_some_and(|l| l.contains("Version: 2.0")),
        "{what}: {st}"
    );
    assert!(
        !s.join("ostree/deploy/testos/.staging").exists(),
        "{what}: staging left"
    );
    let dirs = deployment_dirs(s);
    assert_eq!(
        fs::read_to_string(dirs[0].join("etc/motd")).unwrap(),
        "local\n",
        "{what}"
    );
    // Nothing unreferenced stays in deploy/.
    let on_disk = fs::read_dir(s.join("ostree/deploy/testos/deploy"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 2 * dirs.len(), "{what}: stray files in deploy/");
}

#[test]
fn killed_at_every_checkpoint() {
    let Some(b) = base() else { return };
    // Which checkpoints a complete run passes, and how often.
    let s = fresh(&b, "trace");
    let out = Command::new(BIN)
        .args(["deploy", "--sysroot"])
        .arg(&s)
        .arg("testos/stable")
        .env("OSTREE_COMPOSEFS_FAULT_TRACE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut points: Vec<(String, u32)> = Vec::new();
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(name) = l
            .strip_prefix("checkpoint ")
            .and_then(|r| r.split(' ').next())
        {
            let n = points.iter().filter(|(p, _)| p == name).count() as u32 + 1;
            points.push((name.to_string(), n));
        }
    }
    assert!(points.len() >= 10, "too few checkpoints: {points:?}");
    for (name, n) in &points {
        let what = format!("killed at {name}:{n}");
        let s = fresh(&b, "run");
        let st = Command::new(BIN)
            .args(["deploy", "--sysroot"])
            .arg(&s)
            .arg("testos/stable")
            .env("OSTREE_COMPOSEFS_FAULT", format!("{name}:{n}"))
            .status()
            .unwrap();
        assert_eq!(st.signal(), Some(9), "{what}: not killed ({st})");
        check_after_kill(&b, &s, &what);
        rerun_completes(&s, &what);
    }
}

#[test]
fn killed_at_random_moments() {
    let Some(b) = base() else { return };
    // How long an uninterrupted deploy takes here: the fastest of three, since the first
    // run warms caches and a loaded machine makes single samples long; kill delays are
    // drawn below 90% of it so that most runs really are interrupted.
    let full = (0..3)
        .map(|i| {
            let s = fresh(&b, &format!("timing{i}"));
            let t0 = Instant::now();
            run(Command::new(BIN)
                .args(["deploy", "--sysroot"])
                .arg(&s)
                .arg("testos/stable"));
            t0.elapsed()
        })
        .min()
        .unwrap_or_default()
        .mul_f64(0.9);
    let runs: u64 = std::env::var("CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut killed = 0;
    for i in 0..runs {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 + 1));
        let s = fresh(&b, "rand");
        let mut child = Command::new(BIN)
            .args(["deploy", "--sysroot"])
            .arg(&s)
            .arg("testos/stable")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let st = child.wait().unwrap();
        if st.signal() == Some(9) {
            killed += 1;
        }
        let what = format!("run {i}, killed after {delay:?} ({st})");
        check_after_kill(&b, &s, &what);
        rerun_completes(&s, &what);
    }
    eprintln!("{killed} of {runs} runs killed mid-way (full deploy {full:?})");
    assert!(
        killed * 2 >= runs,
        "too few runs were actually interrupted: {killed}/{runs}"
    );
}
