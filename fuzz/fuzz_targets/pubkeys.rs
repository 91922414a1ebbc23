//! Ed25519 key files and signature checks on arbitrary bytes: never panic; a parsed key
//! file re-encodes to keys that parse back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ostree_boot::sign::{SecretKey, parse_public_keys, verify_raw};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(keys) = parse_public_keys(&text) {
        let again: String = keys.iter().map(|k| k.to_base64() + "\n").collect();
        assert_eq!(parse_public_keys(&again).expect("re-encoded keys parse"), keys);
    }
    let _ = SecretKey::from_base64(&text);
    if data.len() >= 96 {
        let _ = verify_raw(&data[..32], &data[96..], &data[32..96]);
    }
});
