//! `.dirmeta` (and `user.ostreemeta`) parsing: never panics; round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ostree_boot::ostree::objects::{DirMeta, parse_xattrs_bytes, xattrs_to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = DirMeta::parse(data) {
        assert_eq!(DirMeta::parse(&m.to_bytes()).expect("our own bytes parse"), m);
    }
    let x = parse_xattrs_bytes(data);
    assert_eq!(parse_xattrs_bytes(&xattrs_to_bytes(&x)), x);
});
