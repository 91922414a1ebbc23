//! Files the initrd reads are read only if they are regular files, and within a size
//! cap: a FIFO, a device or a huge file at a path prepare-root reads is a clear error
//! at once, never a hang or an exhausted initrd.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sysroot;

/// Runs `--check` on `sr`, killing it (and failing) if it does not finish in time.
fn check_with_timeout(sr: &Sysroot, config_root: &Path) -> (i32, String) {
    let mut child = Command::new(common::prepare_root_bin())
        .arg("--check")
        .arg("--sysroot")
        .arg(&sr.path)
        .arg("--config-root")
        .arg(config_root)
        .arg("--cmdline")
        .arg(format!("root=UUID=cafebabe ostree={}", sr.karg))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ostree-prepare-root --check hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", common::stdout(&o), common::stderr(&o)),
    )
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn fifo_repo_config_fails_fast() {
    if !common::privileged() {
        return;
    }
    let _g = common::serial();
    let sr = Sysroot::build(&[]);
    let config = sr.repo.join("config");
    fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let root = tempfile::tempdir().unwrap();
    let (code, text) = check_with_timeout(&sr, root.path());
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "{}: is a FIFO, expected a regular file",
            config.display()
        )),
        "{text}"
    );
}

#[test]
fn fifo_or_device_prepare_root_conf_fails_fast() {
    if !common::privileged() {
        return;
    }
    let _g = common::serial();
    let sr = Sysroot::build(&[]);
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("etc/ostree/prepare-root.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    mkfifo(&conf);
    let (code, text) = check_with_timeout(&sr, root.path());
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("prepare-root.conf: is a FIFO"), "{text}");
    fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &conf).unwrap();
    let (code, text) = check_with_timeout(&sr, root.path());
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("prepare-root.conf: is a character device"),
        "{text}"
    );
}
