//! prepare-root plans from core's `Facts::gather`: an image that exists but cannot be
//! examined (EACCES here; EIO alike) is an error that names it, not "no image" and a
//! quiet fallback to the legacy root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ostree_boot::cmdline::Cmdline;
use ostree_boot::deployment::{DeployName, ResolvedDeployment};
use ostree_boot_test_support::require;
use ostree_prepare_root::run;

const CHILD: &str = "PREPARE_ROOT_FACTS_CHILD";
const NAME: &str = "an_unreadable_image_is_an_error_not_no_image";

fn dep() -> ResolvedDeployment {
    let name = format!("{}.0", "ab".repeat(32));
    ResolvedDeployment {
        relpath: PathBuf::from("ostree/deploy/os/deploy").join(&name),
        stateroot: "os".into(),
        name: DeployName::parse(&name).unwrap(),
    }
}

fn gather(t: &Path) -> anyhow::Result<run::Inputs> {
    run::gather(
        &t.join("conf"),
        &t.join("sysroot"),
        &Cmdline::parse(""),
        Some(dep()),
    )
}

#[test]
fn an_unreadable_image_is_an_error_not_no_image() {
    if let Some(t) = std::env::var_os(CHILD) {
        // The child: root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so the
        // deployment directory's mode 000 applies to it.
        match gather(Path::new(&t)) {
            Ok(i) => panic!("gathered {:?} from an unsearchable deployment", i.facts),
            Err(e) => {
                let e = run::error_line(&e);
                assert!(
                    e.contains(".ostree.cfs") && e.contains("Permission denied"),
                    "{e}"
                );
            }
        }
        return;
    }
    if !require(
        rustix::process::geteuid().is_root(),
        "needs root (runs a child without the DAC capabilities)",
    ) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let deploy = t.path().join("sysroot").join(dep().relpath);
    std::fs::create_dir_all(&deploy).unwrap();
    std::fs::write(deploy.join(".ostree.cfs"), b"image").unwrap();

    // Readable: the image is seen; removed: it is not.
    assert!(gather(t.path()).unwrap().facts.has_composefs_image);
    std::fs::rename(deploy.join(".ostree.cfs"), t.path().join("cfs")).unwrap();
    assert!(!gather(t.path()).unwrap().facts.has_composefs_image);
    std::fs::rename(t.path().join("cfs"), deploy.join(".ostree.cfs")).unwrap();

    std::fs::set_permissions(&deploy, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-dac_override,-dac_read_search"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, t.path())
        .output();
    std::fs::set_permissions(&deploy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = out.expect("running setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
