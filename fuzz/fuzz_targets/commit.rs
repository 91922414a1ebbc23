//! `.commit` parsing: never panics; what parses serialises and parses back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ostree_boot::ostree::objects::Commit;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Commit::parse(data) {
        let _ = c.composefs_digest();
        let _ = ostree_boot::sign::bootc_base_commit(&c);
        let bytes = c.to_bytes().expect("parsed strings hold no NUL");
        assert_eq!(Commit::parse(&bytes).expect("our own bytes parse"), c);
    }
});
