//! Metadata objects must hash to their names (issue #12): a commit object overwritten
//! with another commit's bytes is corruption, never "the commit" under the old name.

use std::fs;

mod common;
use common::run;
use ostree_boot::ostree::objects::{ObjectType, parse_checksum};
use ostree_boot::ostree::repo::Repo;

#[test]
fn a_commit_object_with_another_commits_bytes_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let src = t.path().join("src");
    fs::create_dir_all(src.join("usr")).unwrap();
    fs::write(src.join("usr/f"), "x\n").unwrap();
    let r = repo.to_str().unwrap();
    run(&["ostree", "init", "--repo", r, "--mode=bare-user-only"]);
    let tree = format!("--tree=dir={}", src.display());
    let commit = |subject: &str| {
        run(&[
            "ostree",
            "commit",
            "--repo",
            r,
            "--branch=b",
            "--subject",
            subject,
            &tree,
        ])
        .trim()
        .to_string()
    };
    let (a, b) = (commit("a"), commit("b"));
    let (a, b) = (parse_checksum(&a).unwrap(), parse_checksum(&b).unwrap());
    let rp = Repo::open(&repo).unwrap();
    rp.load_commit(&a).unwrap();
    // Swap in b's bytes under a's name, as a writer to the repo could.
    let (pa, pb) = (
        rp.object_path(&a, ObjectType::Commit),
        rp.object_path(&b, ObjectType::Commit),
    );
    fs::remove_file(&pa).unwrap();
    fs::copy(&pb, &pa).unwrap();
    let e = rp.load_commit(&a).unwrap_err().to_string();
    assert!(
        e.contains(&pa.display().to_string()) && e.contains("hashes to"),
        "{e}"
    );
    rp.load_commit(&b).unwrap();
}
