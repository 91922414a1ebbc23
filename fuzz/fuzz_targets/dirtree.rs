//! `.dirtree` parsing: never panics; what parses serialises and parses back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ostree_boot::ostree::objects::DirTree;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = DirTree::parse(data) {
        let bytes = t.to_bytes().expect("parsed names hold no NUL");
        assert_eq!(DirTree::parse(&bytes).expect("our own bytes parse"), t);
    }
});
