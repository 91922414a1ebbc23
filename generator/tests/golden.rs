//! Golden-directory tests, in the style of systemd's and zram-generator's: each
//! `tests/cases/NN-name/` holds
//!
//! * `root/`     the file system the generator sees (passed as OSTREE_GENERATOR_ROOT);
//! * `env`       `KEY=VALUE` lines for the generator's environment (the value runs
//!   to the end of the line, quotes included);
//! * `booted`    optional `key=value` lines turned into `root/run/ostree-booted`
//!   with the core's writer (`hex=…` writes raw bytes instead);
//! * `expected/` the exact output tree: paths, contents, symlink targets;
//! * `status`    optional exit status (default 0);
//! * `stderr`    optional lines that must each appear in the generator's log;
//! * `stderr-absent` optional lines that must not appear in it.
//!
//! Every generated tree is then checked with `systemd-analyze verify` (see `verify`).
//! `UPDATE_GOLDEN=1` rewrites `expected/` from the actual output, for review in git.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ostree_boot::ostree::booted::OstreeBooted;

const BIN: &str = env!("CARGO_BIN_EXE_ostree-system-generator");

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(String),
    Link(String),
}

/// Every path below `dir` (relative), with what it is.
fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            out.insert(
                rel,
                Entry::Link(fs::read_link(&p).unwrap().to_string_lossy().into_owned()),
            );
        } else if ft.is_dir() {
            out.insert(rel, Entry::Dir);
            walk(base, &p, out);
        } else {
            out.insert(rel, Entry::File(fs::read_to_string(&p).unwrap()));
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn parse_bool(case: &str, key: &str, v: &str) -> bool {
    match v {
        "true" => true,
        "false" => false,
        _ => panic!("{case}: booted: {key}={v} is not true/false"),
    }
}

/// `root/run/ostree-booted` from the case's `booted` description.
fn booted_bytes(case: &str, text: &str) -> Vec<u8> {
    let mut b = OstreeBooted {
        backing_root_device_inode: ((253 << 8) | 1, 1234567),
        ..Default::default()
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{case}: booted: bad line {line:?}"));
        match k {
            "hex" => return hex::decode(v).unwrap_or_else(|e| panic!("{case}: booted: hex: {e}")),
            "root.transient" => b.root_transient = parse_bool(case, k, v),
            "root.transient-ro" => b.root_transient_ro = parse_bool(case, k, v),
            "composefs.signed" => b.composefs_signed = Some(v.to_owned()),
            "composefs" => b.composefs = Some(parse_bool(case, k, v)),
            "composefs.verity" => b.composefs_verity = Some(parse_bool(case, k, v)),
            "sysroot-ro" => b.sysroot_ro = parse_bool(case, k, v),
            "transient-etc" => b.transient_etc = Some(v.to_owned()),
            _ => panic!("{case}: booted: unknown key {k}"),
        }
    }
    b.to_bytes().unwrap()
}

struct Run {
    out: PathBuf,
    status: i32,
    stderr: String,
}

fn run_case(case_dir: &Path, work: &Path) -> Run {
    let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
    let root = work.join("root");
    if case_dir.join("root").is_dir() {
        copy_tree(&case_dir.join("root"), &root);
    } else {
        fs::create_dir_all(&root).unwrap();
    }
    if let Ok(text) = fs::read_to_string(case_dir.join("booted")) {
        fs::create_dir_all(root.join("run")).unwrap();
        fs::write(root.join("run/ostree-booted"), booted_bytes(&name, &text)).unwrap();
    }
    let (out, early, late) = (work.join("normal"), work.join("early"), work.join("late"));
    for d in [&out, &early, &late] {
        fs::create_dir_all(d).unwrap();
    }
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OSTREE_GENERATOR_ROOT", &root)
        .env("SYSTEMD_LOG_TARGET", "console")
        .args([&out, &early, &late]);
    if let Ok(env) = fs::read_to_string(case_dir.join("env")) {
        for line in env
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}: env: bad line {line:?}"));
            cmd.env(k, v);
        }
    }
    let o = cmd.output().unwrap();
    assert!(
        tree(&early).is_empty() && tree(&late).is_empty(),
        "{name}: wrote into the early or late dir"
    );
    Run {
        out,
        status: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn describe(t: &BTreeMap<String, Entry>) -> String {
    let mut s = String::new();
    for (p, e) in t {
        match e {
            Entry::Dir => s.push_str(&format!("  {p}/\n")),
            Entry::Link(l) => s.push_str(&format!("  {p} -> {l}\n")),
            Entry::File(c) => s.push_str(&format!(
                "  {p}:\n{}\n",
                c.lines()
                    .map(|l| format!("      | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }
    s
}

fn case_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = case_dirs();
    assert!(cases.len() >= 15, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let run = run_case(case, work.path());
        let actual = tree(&run.out);
        let expected_dir = case.join("expected");
        if update {
            let _ = fs::remove_dir_all(&expected_dir);
            if !actual.is_empty() {
                copy_tree(&run.out, &expected_dir);
            }
        }
        let expected = tree(&expected_dir);
        let mut problems = Vec::new();
        if actual != expected {
            problems.push(format!(
                "output differs\n expected:\n{}\n actual:\n{}",
                describe(&expected),
                describe(&actual)
            ));
        }
        for (p, e) in &actual {
            if let Entry::File(_) = e {
                let mode = fs::metadata(run.out.join(p)).unwrap().permissions().mode() & 0o7777;
                if mode != 0o644 {
                    problems.push(format!("{p} has mode {mode:o}, not 644"));
                }
            }
        }
        let want_status: i32 = fs::read_to_string(case.join("status"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0);
        if run.status != want_status {
            problems.push(format!("exit status {} (wanted {want_status})", run.status));
        }
        if let Ok(unwanted) = fs::read_to_string(case.join("stderr-absent")) {
            for line in unwanted.lines().filter(|l| !l.is_empty()) {
                if run.stderr.contains(line) {
                    problems.push(format!("log has {line:?}"));
                }
            }
        }
        if let Ok(want) = fs::read_to_string(case.join("stderr")) {
            for line in want.lines().filter(|l| !l.is_empty()) {
                if !run.stderr.contains(line) {
                    problems.push(format!("log lacks {line:?}"));
                }
            }
        }
        if !actual.is_empty()
            && let Err(e) = verify(&run.out, &work.path().join("root"), work.path())
        {
            problems.push(format!("systemd-analyze verify: {e}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "== {name}\n{}\n log:\n{}",
                problems.join("\n"),
                run.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `systemd-analyze verify` over a generated tree, the way PID 1 would load it: a
/// staged root with the host's vendor units, our static units, stub binaries for
/// their ExecStart=, stand-ins for the mounts systemd synthesizes at runtime
/// (sysroot.mount, etc.mount), and the output in /run/systemd/generator. Every unit
/// the tree writes, extends with a drop-in or links into a target is verified.
pub fn verify(out: &Path, root: &Path, work: &Path) -> Result<(), String> {
    let stage = work.join("stage");
    let unit_dir = stage.join("usr/lib/systemd/system");
    copy_tree(Path::new("/lib/systemd/system"), &unit_dir);
    for u in ["ostree-prepare-root.service", "ostree-remount.service"] {
        fs::copy(repo_dir().join("units").join(u), unit_dir.join(u)).unwrap();
    }
    let bin = stage.join("usr/lib/ostree");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(stage.join("usr/bin")).unwrap();
    for b in [
        "lib/ostree/ostree-prepare-root",
        "lib/ostree/ostree-remount",
        "bin/ostree",
    ] {
        let b = stage.join("usr").join(b);
        fs::write(&b, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&b, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let etc = stage.join("etc/systemd/system");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("sysroot.mount"),
        "[Mount]\nWhat=/dev/disk/by-label/root\nWhere=/sysroot\n",
    )
    .unwrap();
    fs::write(
        etc.join("etc.mount"),
        "[Mount]\nWhat=/sysroot/ostree/deploy/os/deploy/0.0/etc\nWhere=/etc\nOptions=bind\n",
    )
    .unwrap();
    // With --root, systemd-analyze does not search the generator directories; the
    // admin directory takes the same unit files, drop-ins and dependency links.
    copy_tree(out, &etc);
    // Vendor units the case's root provides (ostree's boot-complete unit).
    let case_units = root.join("usr/lib/systemd/system");
    if case_units.is_dir() {
        copy_tree(&case_units, &unit_dir);
    }

    let mut units = Vec::new();
    for e in fs::read_dir(out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let unit = name
            .strip_suffix(".d")
            .or_else(|| name.strip_suffix(".requires"))
            .or_else(|| name.strip_suffix(".wants"))
            .unwrap_or(&name);
        if !units.iter().any(|u| u == unit) {
            units.push(unit.to_owned());
        }
        // The units a target pulls in through our links.
        if name.ends_with(".requires") || name.ends_with(".wants") {
            for l in fs::read_dir(out.join(&name)).unwrap() {
                let dep = l.unwrap().file_name().to_string_lossy().into_owned();
                if !units.contains(&dep) {
                    units.push(dep);
                }
            }
        }
    }
    units.sort();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", stage.display()))
        .args(&units)
        .output()
        .map_err(|e| format!("running systemd-analyze: {e}"))?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Host units may produce notices about themselves; anything naming our units fails.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ostree") || units.iter().any(|u| l.contains(u.as_str())))
        .collect();
    if !o.status.success() || !ours.is_empty() {
        return Err(format!(
            "units {units:?}: rc {:?}\n{stderr}",
            o.status.code()
        ));
    }
    Ok(())
}

#[test]
fn argument_count() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    fs::create_dir_all(&out).unwrap();
    for args in [vec![], vec![out.clone(), out.clone()], vec![out.clone(); 4]] {
        let o = Command::new(BIN)
            .env("SYSTEMD_LOG_TARGET", "console")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{} args", args.len());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("expected 1 or 3 arguments"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // One argument: the test form systemd.generator(7) documents.
    let o = Command::new(BIN)
        .env("OSTREE_GENERATOR_ROOT", work.path())
        .env("SYSTEMD_IN_INITRD", "1")
        .env("SYSTEMD_PROC_CMDLINE", "ostree=/ostree/boot.1/os/abc/0")
        .env("SYSTEMD_LOG_TARGET", "console")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.join("initrd-root-fs.target.requires/ostree-prepare-root.service")
            .is_symlink()
    );
}

#[test]
fn missing_output_dir_fails_cleanly() {
    let o = Command::new(BIN)
        .env("SYSTEMD_LOG_TARGET", "console")
        .arg("/nonexistent/out")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/out"));
}

/// A unit another generator already wrote is reported and kept; the rest is written.
#[test]
fn existing_unit_is_not_replaced() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir_all(root.join("run/ostree")).unwrap();
    let out = work.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("var.mount"), "# someone else's\n").unwrap();
    let o = Command::new(BIN)
        .env("OSTREE_GENERATOR_ROOT", &root)
        .env("SYSTEMD_IN_INITRD", "0")
        .env("SYSTEMD_PROC_CMDLINE", "ostree=/ostree/boot.1/os/abc/0")
        .env("SYSTEMD_LOG_TARGET", "console")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("var.mount already exists"), "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("var.mount")).unwrap(),
        "# someone else's\n"
    );
    assert!(out.join("sysroot.mount.d/ostree-softreboot.conf").is_file());
    assert!(
        out.join("local-fs.target.requires/ostree-remount.service")
            .is_symlink()
    );
}

/// Without SYSTEMD_LOG_TARGET, records go to /dev/kmsg as `<PRI>name[pid]: msg`, not
/// to stderr (generators must not use the journal). Needs root, as the whole suite.
#[test]
fn logs_to_kmsg() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let child = Command::new(BIN)
        .env_clear()
        .env("OSTREE_GENERATOR_ROOT", work.path())
        .env("SYSTEMD_IN_INITRD", "1")
        .env("SYSTEMD_PROC_CMDLINE", "androidboot.slot_suffix=_z")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(1));
    assert!(
        done.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    // The whole ring buffer, oldest first, one record per read; EAGAIN at the end,
    // EPIPE when records were overwritten under us (reading then moves on).
    let mut kmsg = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg (run the tests as root)");
    let tag = format!("ostree-system-generator[{pid}]: ");
    let mut buf = vec![0u8; 8192];
    let mut found = None;
    loop {
        match kmsg.read(&mut buf) {
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                if rec.contains(&tag) {
                    found = Some(rec);
                }
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("reading /dev/kmsg: {e}"),
        }
    }
    let line = found.unwrap_or_else(|| panic!("no record from pid {pid} in /dev/kmsg"));
    assert!(
        line.contains("androidboot.slot_suffix invalid: _z"),
        "{line}"
    );
    // kmsg records: "<prio>,<seq>,<ts>,<flags>;<text>"; daemon (3) and err (3): 3*8+3 = 27.
    assert!(line.starts_with("27,"), "{line}");
}

/// Upstream's generator (ostree 2026.x, `tests/src/peer.rs`) over every case's root: the
/// files under the case root are copied into the peer chroot (its /proc/cmdline bound
/// over the chroot's), its output dirs bound at the same paths.
fn run_upstream(peer: &ostree_boot_tests::peer::Peer, case_dir: &Path, work: &Path) -> Run {
    // run_case made work/root (with run/ostree-booted) already.
    let root = work.join("root");
    let (out, early, late) = (
        work.join("u-normal"),
        work.join("u-early"),
        work.join("u-late"),
    );
    for d in [&out, &early, &late] {
        fs::create_dir_all(d).unwrap();
    }
    let q = |p: &Path| ostree_boot_tests::peer::quote(&p.display().to_string());
    // Upstream reads only /proc/cmdline and /etc/fstab: the environment overrides a case
    // gives ours become those files for it.
    let env = fs::read_to_string(case_dir.join("env")).unwrap_or_default();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let mut cmdline = root.join("proc/cmdline");
    if let Some(c) = var("SYSTEMD_PROC_CMDLINE") {
        cmdline = work.join("env-cmdline");
        fs::write(&cmdline, format!("{c}\n")).unwrap();
    }
    if let Some(f) = var("SYSTEMD_FSTAB") {
        let src = if Path::new(&f).is_absolute() {
            PathBuf::from(&f)
        } else {
            case_dir.join(&f)
        };
        fs::create_dir_all(root.join("etc")).unwrap();
        let _ = fs::copy(src, root.join("etc/fstab"));
    }
    let setup = format!(
        "tar -C {r} --exclude=./proc -cf - . | tar -C \"$R\" -xf -\n{bind}",
        r = q(&root),
        bind = if cmdline.is_file() {
            format!("mount --bind {} \"$R/proc/cmdline\"", q(&cmdline))
        } else {
            // No command line in the case: an empty one, not the host's.
            format!(
                ": > {w}/empty-cmdline; mount --bind {w}/empty-cmdline \"$R/proc/cmdline\"",
                w = q(work)
            )
        }
    );
    let o = peer.run_with(
        &[work],
        &setup,
        &format!(
            "/usr/lib/systemd/system-generators/ostree-system-generator {} {} {}",
            q(&out),
            q(&early),
            q(&late)
        ),
    );
    Run {
        out,
        status: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Why a difference from upstream's output is expected (docs/differences.md), or None.
fn documented(
    case: &Path,
    work: &Path,
    ours: &Run,
    theirs: &Run,
    diff: &Diff,
) -> Option<&'static str> {
    let env = fs::read_to_string(case.join("env")).unwrap_or_default();
    let root = work.join("root");
    let in_initrd = env.lines().any(|l| l == "SYSTEMD_IN_INITRD=1");
    let fstab = fs::read_to_string(root.join("etc/fstab")).unwrap_or_default();
    let path = match diff {
        Diff::OnlyOurs(p) | Diff::OnlyUpstream(p) | Diff::Differs(p) => p.as_str(),
        Diff::Exit => "",
    };
    if theirs.status != 0 && theirs.stderr.contains("Invalid ostree= argument '\"") {
        return Some("a quoted ostree= is unquoted as systemd does; upstream refuses it");
    }
    if ours.status != 0 && case.join("status").is_file() {
        // Cases 38-42: a karg lowering the initrd's composefs mode, and ostree= targets
        // with control characters or `..`, are refused before any unit is written.
        return Some(
            "input we refuse (karg downgrade, unsafe ostree= target) fails with a message and no units; upstream writes units",
        );
    }
    if !root.join("run/ostree").is_dir() {
        return Some(
            "/run/ostree-booted alone (older initrds) is enough for us; upstream wants /run/ostree",
        );
    }
    match diff {
        Diff::OnlyOurs(_)
            if in_initrd
                && (path.starts_with("initrd-root-fs.target.requires")
                    || path.starts_with("ostree-prepare-root.service.d")) =>
        {
            Some(
                "initrd wiring of prepare-root from the generator (upstream: static unit + dracut)",
            )
        }
        Diff::OnlyOurs(_) if path.starts_with("etc.mount.d") => {
            Some("soft-reboot drop-in for etc.mount as for sysroot.mount (addition)")
        }
        Diff::OnlyUpstream(_)
            if path.starts_with("multi-user.target.wants")
                && !root
                    .join("usr/lib/systemd/system/ostree-boot-complete.service")
                    .exists() =>
        {
            Some("no wants link to an ostree-boot-complete.service that is not installed")
        }
        Diff::OnlyUpstream(_)
            if (path == "boot.mount" || path == "local-fs.target.requires/boot.mount")
                && fstab
                    .lines()
                    .any(|l| l.split_whitespace().nth(1) == Some("/boot")) =>
        {
            Some(
                "/boot in fstab is left to systemd-fstab-generator (two boot.mount units conflict)",
            )
        }
        Diff::Exit if ours.status != 0 && case.join("status").is_file() => {
            Some("broken input fails the generator with a message; upstream ignores it")
        }
        _ => None,
    }
}

#[derive(Debug)]
enum Diff {
    OnlyOurs(String),
    OnlyUpstream(String),
    Differs(String),
    Exit,
}

/// Same case roots, same command lines and fstabs, `/run/ostree-booted` contents, initrd
/// and real root: upstream's output tree and ours are identical, file for file and byte
/// for byte, but for the documented differences.
#[test]
fn upstream_2026_generator_agrees() {
    let Some(peer) = ostree_boot_tests::peer::peer() else {
        return;
    };
    let mut report = Vec::new();
    let mut compared = 0;
    for case in &case_dirs() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let ours = run_case(case, work.path());
        let theirs = run_upstream(&peer, case, work.path());
        let (a, b) = (tree(&theirs.out), tree(&ours.out));
        let mut diffs = Vec::new();
        for (p, e) in &a {
            match b.get(p) {
                None => diffs.push(Diff::OnlyUpstream(p.clone())),
                Some(x) if x != e => diffs.push(Diff::Differs(p.clone())),
                Some(_) => compared += 1,
            }
        }
        diffs.extend(
            b.keys()
                .filter(|p| !a.contains_key(*p))
                .map(|p| Diff::OnlyOurs(p.clone())),
        );
        if (theirs.status == 0) != (ours.status == 0) {
            diffs.push(Diff::Exit);
        }
        for d in diffs {
            if documented(case, work.path(), &ours, &theirs, &d).is_none() {
                let detail = match &d {
                    Diff::Differs(p) => format!("\n upstream: {:?}\n ours: {:?}", a[p], b[p]),
                    Diff::Exit => format!(
                        " upstream {} ours {}: {}{}",
                        theirs.status, ours.status, theirs.stderr, ours.stderr
                    ),
                    _ => String::new(),
                };
                report.push(format!("{name}: {d:?}{detail}"));
            }
        }
    }
    assert!(
        report.is_empty(),
        "undocumented differences from upstream:\n{}",
        report.join("\n")
    );
    assert!(
        compared >= 40,
        "only {compared} identical files: is the peer generating at all?"
    );
}
