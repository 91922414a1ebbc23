//! The EROFS composefs image reader on arbitrary bytes: errors, never a panic, a hang
//! or an outsized allocation; what it reads dumps and writes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::composefs::{dump, reader, writer};

fuzz_target!(|data: &[u8]| {
    let _ = reader::read_header(data);
    if let Ok(tree) = reader::read_image(data) {
        let text = dump::write(&tree);
        let _ = dump::parse(&text, false);
        let _ = writer::write_image(&tree, &writer::WriteOptions::default());
    }
});
