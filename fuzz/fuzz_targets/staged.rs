//! `/run/ostree/staged-deployment`: never panics, and whatever parses writes back to
//! bytes that parse to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::ostree::staged::Staged;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(s)) = Staged::from_bytes(data)
        && let Ok(bytes) = s.to_bytes()
    {
        assert_eq!(Staged::from_bytes(&bytes).unwrap(), Some(s));
    }
});
