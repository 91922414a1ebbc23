//! `glib_hash::iteration_order` against libglib itself: random insertion sequences
//! (repeats, growth past several resizes, non-ASCII bytes) run through a GHashTable by
//! `tests/data/ghash-ref.c`, built here against the host's libglib-2.0.so.0.

use std::process::Command;

use ostree_boot::glib_hash::iteration_order;

#[test]
fn random_sequences_match_libglib() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("ghash-ref");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ghash-ref.c");
    let built = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(src)
        .arg("-l:libglib-2.0.so.0")
        .output();
    if !ostree_boot_test_support::require(
        built.as_ref().is_ok_and(|o| o.status.success()),
        format!("needs cc and libglib-2.0.so.0 to build the reference: {built:?}"),
    ) {
        return;
    }
    let words = [
        "title",
        "version",
        "options",
        "linux",
        "initrd",
        "devicetree",
        "fdtdir",
        "aboot",
        "abootcfg",
        "x-options-source-tuned",
        "grub_users",
        "grub_arg",
        "grub_class",
        "id",
        "machine-id",
        "sort-key",
        "efi",
        "architecture",
        "\u{e9}t\u{e9}",
        "a",
        "b",
        "c",
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..300 {
        let len = 1 + next(60);
        let keys: Vec<String> = (0..len)
            .map(|i| {
                let w = words[next(words.len())];
                // Beyond the fixed words, generated ones make large tables.
                if next(3) == 0 {
                    format!("{w}{}", next(40) + i % 3)
                } else {
                    w.to_string()
                }
            })
            .collect();
        let o = Command::new(&exe).args(&keys).output().unwrap();
        let theirs: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let ours: Vec<String> = iteration_order(&refs)
            .into_iter()
            .map(|i| keys[i].clone())
            .collect();
        assert_eq!(ours, theirs, "round {round}: {keys:?}");
    }
}
