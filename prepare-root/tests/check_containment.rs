//! `--check DEPLOYMENT` stays in the sysroot (issue #12): a stateroot that is a symbolic
//! link out of the sysroot names no deployment, whatever lies at the link's target.

mod common;

use std::fs;
use std::process::Command;

use common::Sysroot;

#[test]
fn check_refuses_a_stateroot_linked_out_of_the_sysroot() {
    if !common::privileged() {
        return;
    }
    let _g = common::serial();
    let sr = Sysroot::build(&[]);
    sr.write_cfs();
    let conf = tempfile::tempdir_in("/var/tmp").unwrap();
    let outside = tempfile::tempdir_in("/var/tmp").unwrap();
    let srdir = sr.path.join("ostree/deploy/default");
    let moved = outside.path().join("default");
    fs::rename(&srdir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &srdir).unwrap();
    let check = |dep: &str| {
        let o = Command::new(common::prepare_root_bin())
            .arg("--check")
            .arg("--sysroot")
            .arg(&sr.path)
            .arg("--config-root")
            .arg(conf.path())
            .args(["--cmdline", "quiet"])
            .arg(dep)
            .output()
            .unwrap();
        (o.status.code(), common::stdout(&o), common::stderr(&o))
    };
    let results: Vec<_> = [
        sr.deploy_rel.clone(),
        sr.deploy.display().to_string(),
        sr.karg.clone(),
    ]
    .into_iter()
    .map(|d| (d.clone(), check(&d)))
    .collect();
    // Put the deployment back before asserting, so that the fixture can unseal it.
    fs::remove_file(&srdir).unwrap();
    fs::rename(&moved, &srdir).unwrap();
    for (dep, (code, out, err)) in results {
        assert_eq!(code, Some(1), "{dep}: {out}{err}");
        assert!(out.contains("would boot: no"), "{dep}: {out}");
        assert!(
            err.contains("symbolic link") || err.contains("symlink"),
            "{dep}: {err}"
        );
    }
    // And back in place, the same deployment checks out.
    let (code, out, err) = check(&sr.deploy_rel);
    assert!(out.contains("ok: deployment"), "{out}{err}");
    assert_ne!(code, None);
}
