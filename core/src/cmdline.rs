//! The kernel command line: `ostree=`, Android boot slots, and the composefs override.
//!
//! Lookup rules are ostree's (`otcore_find_proc_cmdline_key`, `otcore_get_ostree_target`):
//! the **first** `key=value` wins, a key only matches when followed by `=`, values are
//! compared case-sensitively.
//!
//! Splitting is systemd's (`proc_cmdline_parse`: `extract_first_word` with unquoting,
//! relaxed and escape-retaining): words are separated by runs of space, tab, CR or LF;
//! single and double quotes group text (`foo="a b"` is the one word `foo=a b`; the quote
//! characters are removed wherever they are); an unterminated quote runs to the end;
//! backslashes are ordinary characters. ostree's own parser splits on spaces only and
//! knows no quotes: the two agree on every command line without quotes, tabs or newlines
//! inside words, and ours never crashes on the ones upstream crashed on
//! (ostreedev/ostree#3544).

use crate::mode::ComposefsMode;

/// The kernel argument overriding `composefs.enabled`.
pub const COMPOSEFS_KARG: &str = "ostree.prepare-root.composefs";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("androidboot.slot_suffix invalid: {0}")]
    InvalidSlotSuffix(String),
    #[error("handling karg ostree.prepare-root.composefs: Invalid tri-state value: {0}")]
    InvalidComposefs(String),
    /// An `ostree=` value that [`check_ostree_path`] refuses.
    #[error("ostree={value:?} refused: {reason}")]
    UnsafeTarget { value: String, reason: &'static str },
}

/// The rule for an `ostree=` value, before anything looks it up or writes it anywhere
/// (a unit file, a log line): an absolute path whose components are neither empty,
/// `.` nor `..`, without control characters. ostree itself only ever writes
/// `/ostree/boot.N/<stateroot>/<bootcsum>/<serial>`; anything else is a hand-edited or
/// hostile command line (a CR would start a new directive in a unit file, a `..`
/// would lead out of the sysroot).
pub fn check_ostree_path(value: &str) -> Result<(), CmdlineError> {
    let bad = |reason| {
        Err(CmdlineError::UnsafeTarget {
            value: value.to_string(),
            reason,
        })
    };
    if value.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    let Some(rest) = value.strip_prefix('/') else {
        return bad("it is not an absolute path");
    };
    for c in rest.split('/') {
        match c {
            "" => return bad("it has an empty path component"),
            "." | ".." => return bad("it has a '.' or '..' path component"),
            _ => {}
        }
    }
    Ok(())
}

/// Where the deployment to boot is named: a path under the sysroot that must be a
/// symlink to the deployment directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OstreeTarget {
    /// As given (`/ostree/boot.1/<stateroot>/<bootcsum>/0`) or `/ostree/root.a|b` (aboot).
    pub path: String,
    /// Chosen by the Android boot rules; the stateroot then comes from the link target.
    pub is_aboot: bool,
}

/// A parsed kernel command line, for looking arguments up (read-only). Editing the
/// `options` of a boot entry, which must round-trip verbatim, is `layout::Kargs` (feature `writer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    args: Vec<String>,
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl Cmdline {
    /// Splits a command line into words as systemd does. Total: any string is accepted.
    pub fn parse(s: &str) -> Cmdline {
        let mut args = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quote: Option<char> = None;
        for c in s.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    in_word = true;
                }
                None if is_separator(c) => {
                    if in_word {
                        args.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                None => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            args.push(word);
        }
        Cmdline { args }
    }

    /// `/proc/cmdline`, its first line, the trailing newline stripped.
    pub fn from_proc() -> std::io::Result<Cmdline> {
        Self::from_file(std::path::Path::new("/proc/cmdline"))
    }

    /// Like [`Cmdline::from_proc`] for another file (tests, or a saved command line).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Cmdline> {
        let bytes = crate::fsutil::read_regular(path, crate::fsutil::ReadKind::Small)?;
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        Ok(Self::parse(&String::from_utf8_lossy(first)))
    }

    /// The value of the first `key=value` word. A bare `key` does not match.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    /// A bare `key` or any `key=…` (systemd's `ConditionKernelCommandLine=key`).
    pub fn has(&self, key: &str) -> bool {
        self.args.iter().any(|a| {
            a.strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The deployment to boot: `androidboot.slot_suffix=_a|_b`, then any `androidboot.*`
    /// word (non-A/B Android boot, slot a), then `ostree=`. `Ok(None)` if none is given.
    pub fn ostree_target(&self) -> Result<Option<OstreeTarget>, CmdlineError> {
        let aboot = |path: &str| {
            Ok(Some(OstreeTarget {
                path: path.to_string(),
                is_aboot: true,
            }))
        };
        if let Some(suffix) = self.get("androidboot.slot_suffix") {
            return match suffix {
                "_a" => aboot("/ostree/root.a"),
                "_b" => aboot("/ostree/root.b"),
                other => Err(CmdlineError::InvalidSlotSuffix(other.to_string())),
            };
        }
        if self.args.iter().any(|a| a.starts_with("androidboot.")) {
            return aboot("/ostree/root.a");
        }
        let Some(p) = self.get("ostree") else {
            return Ok(None);
        };
        check_ostree_path(p)?;
        Ok(Some(OstreeTarget {
            path: p.to_string(),
            is_aboot: false,
        }))
    }

    /// `ostree.prepare-root.composefs=`: `signed`, `verity` (accepted here, rejected by
    /// upstream) or a tristate word (`yes|true|1`, `no|false|0`, `maybe`).
    pub fn composefs_override(&self) -> Result<Option<ComposefsMode>, CmdlineError> {
        let Some(v) = self.get(COMPOSEFS_KARG) else {
            return Ok(None);
        };
        match v {
            "signed" => Ok(Some(ComposefsMode::Signed)),
            "verity" => Ok(Some(ComposefsMode::Verity)),
            _ => ComposefsMode::parse_tristate(v)
                .map(Some)
                .ok_or_else(|| CmdlineError::InvalidComposefs(v.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> Result<Option<OstreeTarget>, CmdlineError> {
        Cmdline::parse(s).ostree_target()
    }

    fn path(s: &str) -> Option<String> {
        target(s).unwrap().map(|t| t.path)
    }

    #[test]
    fn ostree_path_rule() {
        for ok in [
            "/ostree/boot.1/os/abc/0",
            "/x",
            "/ostree/root.a",
            "/a b/%c/é",
        ] {
            assert_eq!(check_ostree_path(ok), Ok(()), "{ok:?}");
        }
        let cases = [
            ("/ostree/boot.1/a\rType=oneshot/c/0", "control character"),
            ("/ostree/boot.1/a\n/c/0", "control character"),
            ("/ostree/boot.1/a\u{7f}/c/0", "control character"),
            ("/ostree/boot.1/a\u{85}/c/0", "control character"),
            ("/ostree/boot.1/../abc/0", "'..'"),
            ("/ostree/./boot.1/os/abc/0", "'.'"),
            ("/ostree//boot.1/os/abc/0", "empty path component"),
            ("/ostree/boot.1/os/abc/0/", "empty path component"),
            ("/", "empty path component"),
            ("", "not an absolute path"),
            ("ostree/boot.1/os/abc/0", "not an absolute path"),
        ];
        for (value, why) in cases {
            let e = check_ostree_path(value).unwrap_err().to_string();
            assert!(e.contains(why), "{value:?}: {e}");
            let quoted = format!("ostree=\"{value}\"");
            assert!(target(&quoted).is_err(), "{quoted:?}");
        }
        assert_eq!(
            target("ostree=\"/ostree/boot.1/a\rType=x/b/0\"")
                .unwrap_err()
                .to_string(),
            "ostree=\"/ostree/boot.1/a\\rType=x/b/0\" refused: it contains a control character"
        );
    }

    // tests/test-otcore.c /prepare-root-cmdline
    #[test]
    fn otcore_not_found() {
        for s in [
            "",
            "foo",
            "foo=bar baz  sometest",
            "xostree foo",
            "xostree=blah bar",
        ] {
            assert_eq!(target(s).unwrap(), None, "{s:?}");
        }
    }

    #[test]
    fn otcore_found() {
        assert_eq!(
            target("blah baz=blah ostree=/foo/bar somearg").unwrap(),
            Some(OstreeTarget {
                path: "/foo/bar".into(),
                is_aboot: false
            })
        );
    }

    #[test]
    fn otcore_aboot() {
        let t = target("androidboot.slot_suffix=_b").unwrap().unwrap();
        assert_eq!((t.path.as_str(), t.is_aboot), ("/ostree/root.b", true));
        let t = target("androidboot.slot_suffix=_a").unwrap().unwrap();
        assert_eq!((t.path.as_str(), t.is_aboot), ("/ostree/root.a", true));
        assert_eq!(
            target("androidboot.slot_suffix=_c"),
            Err(CmdlineError::InvalidSlotSuffix("_c".into()))
        );
        let t = target("androidboot.somethingelse").unwrap().unwrap();
        assert_eq!((t.path.as_str(), t.is_aboot), ("/ostree/root.a", true));
    }

    #[test]
    fn aboot_beats_ostree_and_error_message() {
        assert_eq!(
            path("ostree=/x androidboot.slot_suffix=_b").as_deref(),
            Some("/ostree/root.b")
        );
        assert_eq!(
            path("ostree=/x androidboot.foo=1").as_deref(),
            Some("/ostree/root.a")
        );
        assert_eq!(
            target("androidboot.slot_suffix=").unwrap_err().to_string(),
            "androidboot.slot_suffix invalid: "
        );
        // A bare slot_suffix has no value: it falls to the prefix rule.
        assert_eq!(
            path("androidboot.slot_suffix").as_deref(),
            Some("/ostree/root.a")
        );
        // Only a word *starting* with androidboot. counts.
        assert_eq!(path("xandroidboot.foo ostree=/y").as_deref(), Some("/y"));
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(path("ostree=/a ostree=/b").as_deref(), Some("/a"));
        let c = Cmdline::parse("ostree ostree=/b");
        assert_eq!(c.get("ostree"), Some("/b"));
        assert!(c.has("ostree"));
    }

    #[test]
    fn has_matches_bare_and_valued() {
        let c = Cmdline::parse("quiet ostree=/x ro");
        assert!(c.has("quiet") && c.has("ostree") && c.has("ro"));
        assert!(!c.has("ostre") && !c.has("quie"));
        assert!(Cmdline::parse("ostree").has("ostree"));
        assert_eq!(Cmdline::parse("ostree").get("ostree"), None);
    }

    #[test]
    fn whitespace_runs() {
        let c = Cmdline::parse("  a   b\tc\nd \r e  ");
        assert_eq!(c.args(), &["a", "b", "c", "d", "e"]);
        assert!(Cmdline::parse("").args().is_empty());
        assert!(Cmdline::parse("   \t ").args().is_empty());
    }

    #[test]
    fn quotes_as_systemd() {
        let c = Cmdline::parse("foo=\"a b\" ostree=/x 'single q' x=\"\" \"\"");
        assert_eq!(c.args(), &["foo=a b", "ostree=/x", "single q", "x=", ""]);
        assert_eq!(c.get("foo"), Some("a b"));
        // Quotes anywhere in the word, mixed.
        let c = Cmdline::parse("a\"b c\"d 'it\"s' \"it's\"");
        assert_eq!(c.args(), &["ab cd", "it\"s", "it's"]);
        // Unterminated quote runs to the end; backslashes are kept.
        let c = Cmdline::parse("x=\"unterminated y z");
        assert_eq!(c.args(), &["x=unterminated y z"]);
        let c = Cmdline::parse("a\\ b \"c\\\"d\"");
        assert_eq!(c.args(), &["a\\", "b", "c\\d"]);
        // The crash case of ostree#3544: a quoted argument before ostree=.
        let c = Cmdline::parse("root=UUID=x rd.foo=\"a b c\" ostree=/ostree/boot.1/d/abc/0");
        assert_eq!(c.get("ostree"), Some("/ostree/boot.1/d/abc/0"));
    }

    #[test]
    fn composefs_override_values() {
        let o = |s: &str| {
            Cmdline::parse(&format!("ostree.prepare-root.composefs={s}")).composefs_override()
        };
        assert_eq!(o("signed"), Ok(Some(ComposefsMode::Signed)));
        assert_eq!(o("verity"), Ok(Some(ComposefsMode::Verity)));
        for y in ["yes", "true", "1"] {
            assert_eq!(o(y), Ok(Some(ComposefsMode::Yes)));
        }
        for n in ["no", "false", "0"] {
            assert_eq!(o(n), Ok(Some(ComposefsMode::No)));
        }
        assert_eq!(o("maybe"), Ok(Some(ComposefsMode::Maybe)));
        for bad in ["", "Yes", "on", "signed,verity"] {
            assert_eq!(o(bad), Err(CmdlineError::InvalidComposefs(bad.into())));
        }
        assert_eq!(Cmdline::parse("ostree=/x").composefs_override(), Ok(None));
        // A bare key is not a value.
        assert_eq!(
            Cmdline::parse("ostree.prepare-root.composefs").composefs_override(),
            Ok(None)
        );
    }

    #[test]
    fn from_file_first_line_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cmdline");
        std::fs::write(&p, "ostree=/a quiet\nostree=/b\n").unwrap();
        let c = Cmdline::from_file(&p).unwrap();
        assert_eq!(c.args(), &["ostree=/a", "quiet"]);
    }
}
