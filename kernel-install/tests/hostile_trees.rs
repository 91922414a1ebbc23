//! A corpus of hostile commits (issue #12): made with the real `ostree commit`, each puts
//! a symbolic link (absolute, relative climbing out, dangling, to `/dev/zero`, to a FIFO)
//! at one path the deployer reads or writes. Deploying it onto a sysroot whose current
//! deployment has local /etc changes must either succeed with nothing outside the
//! sysroot touched and no host file copied in, or fail with a clear error; never hang.
//!
//! With `OSTREE_COMPOSEFS_COMPARE_UPSTREAM=1` the same commits also go through Debian's
//! `ostree admin deploy` (memory- and time-limited), and a table of what upstream did is
//! printed; upstream's behaviour is recorded, not asserted.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KVER: &str = "6.1.0";
/// What every file of the sentinel directory holds: found anywhere in a sysroot, it
/// means a host file was copied in through a link.
const MARKER: &str = "HOST-SENTINEL-7f3a";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Outcome {
    code: Option<i32>,
    timed_out: bool,
    stderr: String,
}

/// Runs `cmd` with its output in files, killing it after `limit`.
fn run_limited(mut cmd: Command, dir: &Path, limit: Duration) -> Outcome {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (code, timed_out) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (st.code(), false);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Outcome {
        code,
        timed_out,
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

fn mkfifo(p: &Path) {
    run(Command::new("mkfifo").arg(p));
}

/// The directory outside the sysroot that links point at: files a followed link would
/// find where the deployer looks (a kernel, an os-release, a conf.d), and a FIFO.
fn make_sentinel(s: &Path) {
    for f in [
        "secret",
        "vmlinuz",
        "initramfs.img",
        "conf.d/a.conf",
        "6.1.0/vmlinuz",
        "6.1.0/initramfs.img",
        "lib/foo/state",
    ] {
        write(&s.join(f), &format!("{MARKER}\n"));
    }
    write(
        &s.join("os-release"),
        &format!("PRETTY_NAME=\"{MARKER}\"\nID=host\n"),
    );
    mkfifo(&s.join("fifo"));
}

/// Paths of regular files below `root` (repo objects aside) that contain the marker.
fn marker_copies(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                if !p.ends_with("ostree/repo/objects") {
                    todo.push(p);
                }
            } else if md.is_file()
                && fs::read(&p)
                    .unwrap()
                    .windows(MARKER.len())
                    .any(|w| w == MARKER.as_bytes())
            {
                out.push(p);
            }
        }
    }
    out
}

fn entries(sysroot: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(sysroot.join("boot/loader/entries")) {
        for e in rd {
            let e = e.unwrap();
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            );
        }
    }
    m
}

/// Where a link goes in the tree, and the sentinel path a followed link would use.
const LOCATIONS: &[(&str, &str)] = &[
    ("usr/etc/conf.d", "conf.d"),
    ("usr/etc/motd", "secret"),
    ("usr/etc", ""),
    ("etc", ""),
    ("var", ""),
    ("var/lib/foo", "lib/foo"),
    ("usr/lib/modules", ""),
    ("usr/lib/modules/6.1.0", "6.1.0"),
    ("usr/lib/modules/6.1.0/vmlinuz", "vmlinuz"),
    ("usr/lib/modules/6.1.0/initramfs.img", "initramfs.img"),
    ("usr/lib/os-release", "os-release"),
    ("usr/lib/ostree-boot", ""),
    ("boot", ""),
    ("usr/lib/ostree/prepare-root.conf", "secret"),
];

const TARGETS: &[&str] = &["absolute", "relative", "dangling", "dev-zero", "fifo"];

fn target(kind: &str, sentinel: &Path, natural: &str) -> PathBuf {
    let n = if natural.is_empty() {
        sentinel.to_path_buf()
    } else {
        sentinel.join(natural)
    };
    match kind {
        "absolute" => n,
        // Enough `..` to reach / from any depth, then down to the sentinel.
        "relative" => PathBuf::from("../".repeat(24)).join(n.strip_prefix("/").unwrap()),
        "dangling" => PathBuf::from("/nonexistent-7f3a/x"),
        "dev-zero" => PathBuf::from("/dev/zero"),
        "fifo" => sentinel.join("fifo"),
        _ => unreachable!(),
    }
}

/// Replaces `rel` of `tree` (whatever it is) by a link to `to`.
fn plant(tree: &Path, rel: &str, to: &Path) {
    let p = tree.join(rel);
    if rel == "etc" {
        // A tree ships /etc or /usr/etc, not both.
        fs::remove_dir_all(tree.join("usr/etc")).unwrap();
    }
    match fs::symlink_metadata(&p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(&p).unwrap(),
        Ok(_) => fs::remove_file(&p).unwrap(),
        Err(_) => fs::create_dir_all(p.parent().unwrap()).unwrap(),
    }
    std::os::unix::fs::symlink(to, &p).unwrap();
}

struct Base {
    t: Scratch,
    sentinel: PathBuf,
    tree: PathBuf,
    sysroot: PathBuf,
}

/// A sysroot with one deployment (by `ostree admin deploy`) of a plain tree, the admin's
/// changes in its /etc (an edited, an added and a removed file, some under conf.d),
/// and an empty stateroot /var, so that the next deploy merges /etc and seeds /var.
fn base() -> Option<Base> {
    if !have_ostree() {
        eprintln!("skipped: needs ostree");
        return None;
    }
    let t = Scratch::new();
    let sentinel = t.path().join("sentinel");
    make_sentinel(&sentinel);
    let tree = t.path().join("tree");
    make_tree(&tree, KVER, "a kernel\n");
    let sysroot = t.path().join("base");
    make_sysroot(&sysroot, &tree, "1.0");
    theirs(&sysroot, &["--os=testos", "testos/stable"]);
    let dep = deployment_dirs(&sysroot).remove(0);
    write(&dep.join("etc/motd"), "local\n");
    write(&dep.join("etc/conf.d/a.conf"), "a=2\n");
    write(&dep.join("etc/conf.d/new.conf"), "n=1\n");
    fs::remove_file(dep.join("etc/keep")).unwrap();
    let var = sysroot.join("ostree/deploy/testos/var");
    for e in fs::read_dir(&var).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    Some(Base {
        t,
        sentinel,
        tree,
        sysroot,
    })
}

/// A copy of the base sysroot with a commit of the base tree changed by `change`.
fn case_sysroot(b: &Base, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let s = b.t.path().join(format!("case-{name}"));
    let tree = b.t.path().join(format!("tree-{name}"));
    remove_sysroot(&s);
    let _ = fs::remove_dir_all(&tree);
    copy_tree(&b.sysroot, &s);
    copy_tree(&b.tree, &tree);
    change(&tree);
    commit(&s, &tree, "2.0");
    fs::remove_dir_all(&tree).unwrap();
    s
}

/// Deploys with `cmd` on `s` and checks the invariants; returns a one-line summary.
fn deploy_contained(b: &Base, s: &Path, what: &str, cmd: Command) -> Result<String, String> {
    let before = snapshot(&b.sentinel);
    let entries_before = entries(s);
    let o = run_limited(cmd, b.t.path(), TIMEOUT);
    let mut problems = Vec::new();
    if o.timed_out {
        problems.push(format!("hung (killed after {TIMEOUT:?})"));
    }
    if snapshot(&b.sentinel) != before {
        problems.push("changed the sentinel directory outside the sysroot".into());
    }
    let copies = marker_copies(s);
    if !copies.is_empty() {
        problems.push(format!("copied host files into the sysroot: {copies:?}"));
    }
    let summary = match o.code {
        Some(0) | Some(77) => "deployed".to_string(),
        _ => {
            let last = o.stderr.lines().last().unwrap_or_default().to_string();
            if o.stderr.contains("panicked") || !last.starts_with("ostree-composefs: ") {
                problems.push(format!("no clear error: {:?}", o.stderr));
            }
            if entries(s) != entries_before {
                problems.push("failed but changed the boot entries".into());
            }
            format!("refused: {last}")
        }
    };
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{what}: {} ({summary})", problems.join("; ")))
    }
}

fn ours_cmd(s: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["deploy", "--sysroot"])
        .arg(s)
        .args(["--stateroot=testos", "testos/stable"]);
    c
}

/// Debian's `ostree admin deploy`, with 1 GiB of address space and a time limit, and
/// what it did: the same checks as ours, reported rather than asserted.
fn upstream(b: &Base, s: &Path) -> String {
    let before = snapshot(&b.sentinel);
    let mut c = Command::new("prlimit");
    c.args(["--as=1073741824", "--", "ostree", "admin", "deploy"])
        .arg(format!("--sysroot={}", s.display()))
        .args(["--os=testos", "testos/stable"]);
    let o = run_limited(c, b.t.path(), Duration::from_secs(30));
    let mut notes = Vec::new();
    if o.timed_out {
        notes.push("HANGS".to_string());
    }
    if snapshot(&b.sentinel) != before {
        notes.push("WRITES OUTSIDE the sysroot".into());
    }
    let copies = marker_copies(s);
    if !copies.is_empty() {
        let rel: Vec<String> = copies
            .iter()
            .map(|p| p.strip_prefix(s).unwrap().display().to_string())
            .collect();
        notes.push(format!("COPIES HOST FILES IN: {rel:?}"));
    }
    let result = match o.code {
        Some(0) => "deployed".to_string(),
        None if o.timed_out => "killed".to_string(),
        None => "killed by a signal (memory limit?)".to_string(),
        Some(c) => format!(
            "refused ({c}): {}",
            o.stderr.lines().last().unwrap_or_default()
        ),
    };
    notes.push(result);
    notes.join("; ")
}

#[test]
fn hostile_links_never_escape_hang_or_copy_host_files() {
    let Some(b) = base() else { return };
    let compare = std::env::var_os("OSTREE_COMPOSEFS_COMPARE_UPSTREAM").is_some();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for (i, (loc, natural)) in LOCATIONS.iter().enumerate() {
        for (j, kind) in TARGETS.iter().enumerate() {
            let what = format!("link at {loc} -> {kind}");
            let to = target(kind, &b.sentinel, natural);
            let s = case_sysroot(&b, &format!("{i}-{j}"), |tree| plant(tree, loc, &to));
            let ours_said = match deploy_contained(&b, &s, &what, ours_cmd(&s)) {
                Ok(summary) => summary,
                Err(e) => {
                    failures.push(e.clone());
                    e
                }
            };
            remove_sysroot(&s);
            if compare {
                let s = case_sysroot(&b, &format!("{i}-{j}-upstream"), |tree| {
                    plant(tree, loc, &to)
                });
                table.push(format!(
                    "{what}\n  ours:     {ours_said}\n  upstream: {}",
                    upstream(&b, &s)
                ));
                remove_sysroot(&s);
            } else {
                table.push(format!("{what}\n  ours:     {ours_said}"));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} hostile commits escaped:\n{}",
        failures.len(),
        LOCATIONS.len() * TARGETS.len(),
        failures.join("\n")
    );
}

/// The reproduction: the admin edited, added and removed files under
/// `/etc/conf.d`; the new commit ships `usr/etc/conf.d` as a link out of the sysroot.
/// Old code replayed those edits through the link (writing, creating and deleting
/// files in the sentinel directory).
#[test]
fn etc_merge_through_a_shipped_link_is_refused_by_name() {
    let Some(b) = base() else { return };
    let to = b.sentinel.join("conf.d");
    let s = case_sysroot(&b, "conf.d", |tree| plant(tree, "usr/etc/conf.d", &to));
    let summary = deploy_contained(&b, &s, "usr/etc/conf.d", ours_cmd(&s)).unwrap();
    assert!(
        summary.contains("/etc/conf.d") && summary.contains("symbolic link"),
        "{summary}"
    );
    remove_sysroot(&s);
}

/// Names with a newline, control characters, a tab and a carriage return, in the
/// commit (/usr/etc, /var) and in the admin's /etc, are carried byte for byte.
#[test]
fn control_characters_in_names_are_data() {
    let Some(b) = base() else { return };
    let names = ["new\nline", "ctl\x01x", "tab\tname", "cr\rname"];
    let s = case_sysroot(&b, "names", |tree| {
        for n in names {
            write(&tree.join("usr/etc").join(n), "shipped\n");
            write(&tree.join("var/lib").join(n), "var\n");
            fs::create_dir_all(tree.join("usr/lib/modules").join(n)).unwrap();
        }
    });
    let old = deployment_dirs(&s).remove(0);
    for n in names {
        write(&old.join("etc").join(format!("admin-{n}")), "admin\n");
    }
    deploy_contained(&b, &s, "names", ours_cmd(&s)).unwrap();
    let new = deployment_dirs(&s).remove(0);
    assert_ne!(new, old);
    for n in names {
        assert_eq!(
            fs::read_to_string(new.join("etc").join(n)).unwrap(),
            "shipped\n"
        );
        assert_eq!(
            fs::read_to_string(new.join("etc").join(format!("admin-{n}"))).unwrap(),
            "admin\n"
        );
        assert_eq!(
            fs::read_to_string(s.join("ostree/deploy/testos/var/lib").join(n)).unwrap(),
            "var\n"
        );
    }
    remove_sysroot(&s);
}

/// A few of the corpus through the real `kernel-install add` and the plugin.
#[test]
fn hostile_commits_through_kernel_install() {
    let Some(b) = base() else { return };
    if !require(
        have_command("kernel-install"),
        "needs systemd's kernel-install",
    ) {
        return;
    }
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../units/kernel-install/88-ostree-composefs.install");
    let kernel = b.t.path().join("vmlinuz-ki");
    fs::write(&kernel, "a kernel\n").unwrap();
    let mut failures = Vec::new();
    for (i, (loc, to)) in [
        ("usr/etc/conf.d", b.sentinel.join("conf.d")),
        ("usr/lib/os-release", PathBuf::from("/dev/zero")),
        ("var", b.sentinel.join("fifo")),
        ("usr/lib/ostree/prepare-root.conf", b.sentinel.join("fifo")),
    ]
    .into_iter()
    .enumerate()
    {
        let s = case_sysroot(&b, &format!("ki-{i}"), |tree| plant(tree, loc, &to));
        let conf = b.t.path().join(format!("ki-conf-{i}"));
        write(&conf.join("install.conf"), "layout=ostree\n");
        write(&conf.join("cmdline"), "root=LABEL=ROOT rw\n");
        let kiroot = b.t.path().join(format!("ki-root-{i}"));
        write(
            &kiroot.join("etc/ostree/kernel-install.conf"),
            &format!("[kernel-install]\nsysroot={}\n", s.display()),
        );
        let mut c = Command::new("kernel-install");
        c.args(["add", "6.1.0-ki"])
            .arg(&kernel)
            .env("KERNEL_INSTALL_CONF_ROOT", &conf)
            .env("BOOT_ROOT", s.join("boot"))
            .env("MACHINE_ID", "3e0484f3634a418b8e6a39e8828b03e3")
            .env("KERNEL_INSTALL_PLUGINS", &plugin)
            .env("OSTREE_COMPOSEFS", BIN)
            .env("OSTREE_KERNEL_INSTALL_CONF_ROOT", &kiroot)
            // Its staging directory (mktemp -t) goes with the scratch directory even if
            // it has to be killed, which skips its cleanup trap.
            .env("TMPDIR", b.t.path());
        let what = format!("kernel-install add, link at {loc} -> {}", to.display());
        // kernel-install prints the plugin's error, then its own; check the plugin's.
        let before = snapshot(&b.sentinel);
        let o = run_limited(c, b.t.path(), TIMEOUT);
        if o.timed_out {
            failures.push(format!("{what}: hung"));
        }
        if snapshot(&b.sentinel) != before {
            failures.push(format!("{what}: changed the sentinel"));
        }
        let copies = marker_copies(&s);
        if !copies.is_empty() {
            failures.push(format!("{what}: copied host files in: {copies:?}"));
        }
        if o.code != Some(0)
            && (!o.stderr.contains("ostree-composefs: ") || o.stderr.contains("panicked"))
        {
            failures.push(format!("{what}: no clear error: {:?}", o.stderr));
        }
        eprintln!("{what}: exit {:?} {}", o.code, o.stderr.trim());
        remove_sysroot(&s);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
