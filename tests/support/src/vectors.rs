//! The third-party test vectors vendored in `core/tests/data` (origin and licence in its
//! README.md). Paths are inside this repository: a clone alone runs every test.

use std::io::Read;
use std::path::PathBuf;

/// `core/tests/data`, located from this crate's place in the workspace at build time.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../core/tests/data")
}

/// The composefs dump/image vectors.
pub fn composefs_dir() -> PathBuf {
    data_dir().join("composefs")
}

/// The bytes of composefs vector `name`, gunzipped when it ends in `.gz`.
pub fn load_composefs(name: &str) -> Vec<u8> {
    let p = composefs_dir().join(name);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if !name.ends_with(".gz") {
        return raw;
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: gunzip: {e}", p.display()));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn vendored_vectors_are_present() {
        let d = super::composefs_dir();
        assert!(d.join("special.dump").is_file(), "{}", d.display());
        assert!(
            super::data_dir()
                .join("ed25519/speccheck-cases.json")
                .is_file()
        );
        assert_eq!(&super::load_composefs("config.dump.gz")[..2], b"/ ");
    }
}
