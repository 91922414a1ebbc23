//! Kernel command line: never panics, and on lines without quotes, tabs or newlines
//! the lookups agree with ostree's own space-splitting parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::{PrepareRootConfig, RootConfig};

/// ostree's `otcore_find_proc_cmdline_key`, transcribed as an oracle.
fn ostree_find(cmdline: &str, key: &str) -> Option<String> {
    let mut iter = Some(cmdline);
    while let Some(s) = iter {
        let next = s.find(' ');
        if let Some(rest) = s.strip_prefix(key)
            && let Some(v) = rest.strip_prefix('=')
        {
            return Some(match rest.find(' ') {
                Some(sp) => v[..sp - 1].to_string(),
                None => v.to_string(),
            });
        }
        iter = next.map(|n| s[n..].trim_start_matches(' '));
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = Cmdline::parse(&text);
    let _ = c.ostree_target();
    let _ = c.composefs_override();
    let _ = RootConfig::new(&PrepareRootConfig::default(), &c);
    for a in c.args() {
        let _ = c.has(a);
    }
    if !text.contains(['"', '\'', '\t', '\n', '\r']) {
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        assert_eq!(c.args(), words.as_slice());
        for key in [
            "ostree",
            "androidboot.slot_suffix",
            "ostree.prepare-root.composefs",
        ] {
            assert_eq!(
                c.get(key).map(str::to_string),
                ostree_find(&text, key),
                "{text:?} {key}"
            );
        }
    }
});
