//! prepare-root.conf / GKeyFile parser: never panics, the GKeyFile line pass and
//! configparser never disagree, and what parses re-parses to the same thing.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::{PrepareRootConfig, RootConfig};
use ostree_boot::keyfile::{KeyFile, KeyFileError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let src = Path::new("/etc/ostree/prepare-root.conf");
    let kf = match KeyFile::parse(text, src) {
        Ok(kf) => kf,
        Err(KeyFileError::Disagreement { detail, .. }) => {
            panic!("parsers disagree on {text:?}: {detail}")
        }
        Err(e) => {
            // Every error names the file.
            assert!(e.to_string().starts_with("/etc/ostree/prepare-root.conf"));
            return;
        }
    };
    for g in kf.groups() {
        for k in [
            "enabled",
            "keypath",
            "readonly",
            "transient",
            "transient-ro",
        ] {
            if let Some(v) = kf.get(g, k) {
                assert!(kf.line_of(g, k).is_some());
                assert!(!v.contains('\n'));
            }
            let _ = kf.get_bool(g, k);
        }
    }
    if let Ok(cfg) = PrepareRootConfig::from_keyfile(Some(&kf)) {
        for karg in [
            "",
            "ostree.prepare-root.composefs=signed",
            "ostree.prepare-root.composefs=0",
        ] {
            if let Ok(rc) = RootConfig::new(&cfg, &Cmdline::parse(karg)) {
                assert_eq!(rc.print().lines().count(), 6);
            }
        }
    }
    // The normalized rendering parses back to the same groups and values, unless a
    // value ends in the `\r` GLib keeps only on a final line without `\n`.
    let rendered = kf.to_string();
    if !rendered.contains("\r\n") {
        let again = KeyFile::parse(&rendered, src).expect("rendering re-parses");
        assert_eq!(again.groups(), kf.groups());
        assert_eq!(again.to_string(), rendered);
    }
});
