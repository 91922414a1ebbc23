//! The userspace fs-verity digest against Debian's `fsverity digest` (fsverity-utils)
//! on files of many sizes, including multi-level Merkle trees.

use ostree_boot::fsverity::digest::{FsVerityHasher, digest, digest_file, digest_files_parallel};
use std::process::Command;

/// A deterministic pseudo-random generator (xorshift), so failures reproduce.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn fsverity_tool(paths: &[std::path::PathBuf]) -> Vec<String> {
    let out = Command::new("fsverity")
        .arg("digest")
        .args(paths)
        .output()
        .expect("the fsverity tool (Debian package fsverity, installed by scripts/setup.sh) must be present");
    assert!(
        out.status.success(),
        "fsverity digest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect()
}

#[test]
fn known_vectors() {
    assert_eq!(
        hex::encode(digest(b"moo\n")),
        "ebaa23af194a798df610e5fe2bd10725c9c4a3a56a6b62d4d0ee551d4fc4be27"
    );
    assert_eq!(
        hex::encode(digest(b"")),
        "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
    );
}

#[test]
fn matches_fsverity_utils_on_random_files() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        4,
        4095,
        4096,
        4097,
        8191,
        8192,
        12345,
        128 * 4096 - 1,
        128 * 4096,
        128 * 4096 + 1,
        129 * 4096,
        1_000_003,
        128 * 128 * 4096 + 4096 * 3 + 7,
    ];
    let mut paths = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let p = dir.path().join(format!("f{i}"));
        std::fs::write(&p, bytes(i as u64 + 1, n)).unwrap();
        paths.push(p);
    }
    let want = fsverity_tool(&paths);
    let parallel = digest_files_parallel(&paths);
    for (i, p) in paths.iter().enumerate() {
        let data = std::fs::read(p).unwrap();
        assert_eq!(hex::encode(digest(&data)), want[i], "size {}", sizes[i]);
        assert_eq!(
            hex::encode(digest_file(p).unwrap()),
            want[i],
            "file of size {}",
            sizes[i]
        );
        assert_eq!(
            hex::encode(parallel[i].as_ref().unwrap()),
            want[i],
            "parallel, size {}",
            sizes[i]
        );
        let mut h = FsVerityHasher::new();
        for c in data.chunks(1000) {
            h.update(c);
        }
        assert_eq!(
            hex::encode(h.finalize()),
            want[i],
            "streamed, size {}",
            sizes[i]
        );
    }
}

#[test]
fn missing_file_error_names_it() {
    let e = digest_file("/nonexistent/file").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/file"), "{e}");
}
