//! The composefs image vectors vendored in `core/tests/data/composefs` (from composefs
//! 1.0.8's test assets): every positive dump gives an image whose sha256 equals the one
//! upstream mkcomposefs wrote, every `should-fail-*` dump is rejected, and dumping the
//! image and writing that dump again gives the same image and the same dump.

use ostree_boot::composefs::{dump, reader, writer};
use sha2::{Digest, Sha256};

mod common;
use common::vectors::{composefs_dir as vectors_dir, load_composefs as load};

const LENIENT: [&str; 3] = [
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

fn positive() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sha256"))
        .map(|n| n.trim_end_matches(".sha256").to_string())
        .collect();
    v.sort();
    v
}

fn options(name: &str) -> writer::WriteOptions {
    match std::fs::read_to_string(vectors_dir().join(format!("{name}.version"))) {
        Ok(v) => {
            let v: u32 = v.trim().parse().unwrap();
            writer::WriteOptions {
                min_version: v,
                max_version: v,
            }
        }
        Err(_) => writer::WriteOptions::default(),
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn positive_vectors_are_byte_identical() {
    let names = positive();
    assert_eq!(
        names.len(),
        14,
        "expected 14 positive vectors, found {names:?}"
    );
    let mut failures = Vec::new();
    for name in &names {
        let text = load(name);
        let strict = !LENIENT.contains(&name.as_str());
        let tree = match dump::parse(&text, strict) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: parse: {e}"));
                continue;
            }
        };
        let img = match writer::write_image(&tree, &options(name)) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{name}: write: {e}"));
                continue;
            }
        };
        let want = std::fs::read_to_string(vectors_dir().join(format!("{name}.sha256"))).unwrap();
        let want = want
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if sha(&img) != want {
            failures.push(format!(
                "{name}: sha256 {} != {want} ({} bytes)",
                sha(&img),
                img.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn should_fail_vectors_are_rejected() {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("should-fail-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 14);
    for name in &names {
        let text = load(name);
        // Upstream's should-fail test runs mkcomposefs in its default (lenient) mode.
        let res = dump::parse(&text, false)
            .map_err(|e| e.to_string())
            .and_then(|t| writer::write_image(&t, &Default::default()).map_err(|e| e.to_string()));
        match res {
            Ok(_) => panic!("{name} was accepted"),
            Err(msg) => eprintln!("{name}: {msg}"),
        }
    }
}

#[test]
fn round_trip_through_image() {
    for name in positive() {
        let text = load(&name);
        let strict = !LENIENT.contains(&name.as_str());
        let opts = options(&name);
        let img = writer::write_image(&dump::parse(&text, strict).unwrap(), &opts).unwrap();
        let back = reader::read_image(&img).unwrap_or_else(|e| panic!("{name}: read: {e}"));
        let d1 = dump::write(&back);
        let img2 = writer::write_image(&dump::parse(&d1, true).unwrap(), &opts).unwrap();
        assert!(img == img2, "{name}: image -> dump -> image differs");
        let d2 = dump::write(&reader::read_image(&img2).unwrap());
        assert!(d1 == d2, "{name}: dump -> image -> dump differs");
    }
}
