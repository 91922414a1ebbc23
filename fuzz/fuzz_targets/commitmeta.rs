//! `.commitmeta` / `a{sv}` parsing, signature lookup and `/run/ostree-booted` reading:
//! never panic; dictionaries round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ostree_boot::ostree::booted::OstreeBooted;
use ostree_boot::ostree::objects::VarDict;

fuzz_target!(|data: &[u8]| {
    let d = VarDict::parse(data);
    let _ = ostree_boot::sign::signatures(&d);
    let _ = ostree_boot::sign::verify_commit(data, &d, &[]);
    for (_, v) in &d.entries {
        let _ = (v.as_bool(), v.as_str(), v.as_bytes(), v.as_byte_arrays(), v.as_u64_pair());
    }
    let bytes = d.to_bytes().expect("parsed keys hold no NUL");
    assert_eq!(VarDict::parse(&bytes), d);
    if let Ok(b) = OstreeBooted::from_bytes(data) {
        let again = OstreeBooted::from_bytes(&b.to_bytes().expect("no NUL")).expect("our own bytes parse");
        assert_eq!(again, b);
    }
});
