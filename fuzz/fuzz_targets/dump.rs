//! The composefs dump parser on arbitrary bytes, lenient and strict; whatever it
//! accepts must write an image (or be refused with an error) that reads back, and its
//! dump must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::composefs::{dump, reader, writer};

fuzz_target!(|data: &[u8]| {
    let strict = dump::parse(data, true);
    let Ok(tree) = dump::parse(data, false) else {
        assert!(strict.is_err(), "strict accepted what lenient refused");
        return;
    };
    let text = dump::write(&tree);
    let again = dump::parse(&text, false).expect("a written dump parses");
    assert_eq!(dump::write(&again), text, "dump text is stable");
    for max_version in [0, 1] {
        let opts = writer::WriteOptions { min_version: 0, max_version };
        if let Ok(img) = writer::write_image(&tree, &opts) {
            let back = reader::read_image(&img).expect("a written image reads back");
            let _ = dump::write(&back);
        }
    }
});
