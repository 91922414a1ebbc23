//! What the vfat mirror reads back from the boot partition, which anyone with the disk
//! can write: entry file names with boot counters, the identity line of an entry, the
//! `tries` file. Never panics; a parsed name formats to a name that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::sdboot::{entry_name, parse_tries, read_identity, split_entry_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_tries(text, "tries");
    let _ = read_identity(text);
    if let Some((base, counter)) = split_entry_name(text) {
        let again = entry_name(base, counter);
        assert_eq!(split_entry_name(&again), Some((base, counter)));
    }
});
