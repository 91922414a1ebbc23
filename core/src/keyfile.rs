//! A GKeyFile-compatible reader for the small INI files ostree reads at boot
//! (`prepare-root.conf`, `ostree/kernel-install.conf`, `repo/config`).
//!
//! ostree reads these with GLib's `GKeyFile` and treats every parse error as fatal, so a
//! file that GLib rejects must stop the boot here too, and a file GLib accepts must mean
//! the same thing. Two parsers look at every file:
//!
//! 1. A line pass that implements GKeyFile's grammar (GLib 2.74 `gkeyfile.c`): it rejects
//!    what GLib rejects (`;` comments, `:` delimiters, keys without `=`, keys before the
//!    first group, text after `]`, `[]`, bad key and group names, a foreign `Encoding`), and
//!    records each key's exact value and line. It is the source of truth for lookups,
//!    because GKeyFile keeps the trailing whitespace of a value (`enabled=signed ` is *not*
//!    `signed` to ostree) and keeps whitespace inside `[ group ]`, where configparser trims.
//! 2. `configparser`, configured as close to GKeyFile as it goes (case-sensitive, `=` only,
//!    `#` only, no inline comments, no multi-line values), parses the same text. Its map
//!    must agree with the line pass on every group, key and (trimmed) value; a
//!    disagreement fails closed instead of booting with a half-understood config.
//!    This cross-check runs on files up to [`CROSS_CHECK_MAX`] bytes (every real one):
//!    configparser alone takes most of a second on 200k groups, and a file written to
//!    stall the initrd must not. Larger files are read by the line pass only, which is
//!    linear (`cargo bench -p ostree-boot --bench keyfile`).
//!
//! Differences from GKeyFile that cannot change what ostree reads: translated keys
//! (`key[de]`) are kept as ordinary keys rather than filtered by locale.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use configparser::ini::{Ini, IniDefault};

/// An error reading or interpreting a key file. Every variant names the file; those
/// about a line name the line (1-based), those about a key name the group and key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: invalid UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: [{group}] {key}: invalid value '{value}' (expected {expected})", path.display())]
    InvalidValue {
        path: PathBuf,
        line: usize,
        group: String,
        key: String,
        value: String,
        expected: &'static str,
    },
    /// configparser and the GKeyFile line pass read the file differently. Never expected;
    /// the fuzz target hunts for it.
    #[error("{}: INI parsers disagree: {detail}", path.display())]
    Disagreement { path: PathBuf, detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    line: usize,
}

/// A parsed key file. Groups and keys are case-sensitive; a repeated key keeps its last
/// value, a repeated group continues the earlier one (as GKeyFile does).
#[derive(Debug, Clone)]
pub struct KeyFile {
    source: PathBuf,
    /// Group names in order of first appearance.
    groups: Vec<String>,
    /// Group → key → entry; every group has a map, possibly empty. Nested so that
    /// lookups by `&str` need no allocation and a file with many groups parses in linear
    /// time (it is read in the initrd).
    entries: HashMap<String, HashMap<String, Entry>>,
    /// `None` for a file over [`CROSS_CHECK_MAX`].
    ini: Option<Ini>,
}

/// Files up to this size are also parsed by configparser and compared.
pub const CROSS_CHECK_MAX: usize = 64 << 10;

/// GLib's `g_ascii_isspace`: space, `\t`, `\n`, `\f`, `\r`. Not `\v`: GLib 2.74 keeps
/// vertical tabs in key names and values (checked against libglib).
pub(crate) fn g_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0c}' | '\r')
}

/// `g_key_file_is_group_name`: non-empty, no `[`, `]` or ASCII control characters.
fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '[' || c == ']' || c.is_ascii_control())
}

/// `g_key_file_is_key_name`: non-empty, no `[`/`]` except one trailing `[locale]` made of
/// alphanumerics and `-_.@`, and no leading or trailing space.
fn valid_key_name(name: &str) -> bool {
    let base_end = name.find(['[', ']']).unwrap_or(name.len());
    let base = &name[..base_end];
    if base.is_empty() || base.starts_with(' ') || base.ends_with(' ') {
        return false;
    }
    let rest = &name[base_end..];
    if rest.is_empty() {
        return true;
    }
    let Some(locale) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    locale
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// What a line of a key file is, by GKeyFile's rules.
enum Line<'a> {
    Blank,
    Group(&'a str),
    Pair { key: &'a str, value: &'a str },
}

fn classify(raw: &str) -> Result<Line<'_>, String> {
    let line = raw.trim_start_matches(g_space);
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Blank);
    }
    if let Some(inner) = line.strip_prefix('[') {
        // GKeyFile: the first `]` closes the name; only spaces and tabs may follow it.
        if let Some(close) = inner.find(']') {
            let after = &inner[close + 1..];
            if after.chars().all(|c| c == ' ' || c == '\t') {
                let name = &inner[..close];
                if !valid_group_name(name) {
                    return Err(format!("invalid group name: {name}"));
                }
                return Ok(Line::Group(name));
            }
        }
    }
    match line.find('=') {
        Some(0) | None => Err(format!(
            "line '{line}' is not a key-value pair, group, or comment"
        )),
        Some(eq) => {
            let key = line[..eq].trim_end_matches(g_space);
            let value = line[eq + 1..].trim_start_matches(g_space);
            if !valid_key_name(key) {
                return Err(format!("invalid key name: {key}"));
            }
            Ok(Line::Pair { key, value })
        }
    }
}

/// configparser's settings closest to GKeyFile's grammar.
fn gkeyfile_like_ini() -> Ini {
    let mut d: IniDefault = Ini::new_cs().defaults();
    d.case_sensitive = true;
    d.comment_symbols = vec!['#'];
    d.inline_comment_symbols = Some(Vec::new());
    d.delimiters = vec!['='];
    d.multiline = false;
    d.enable_inline_comments = false;
    // Keys before the first group are rejected by the line pass; this name cannot be a
    // GKeyFile group (it contains `[`), so configparser's default section never collides.
    d.default_section = "[no group]".to_string();
    Ini::new_from_defaults(d)
}

type IniMap = HashMap<String, HashMap<String, Option<String>>>;

impl KeyFile {
    /// Parses `text` (the whole file) read from `source`, which is used in messages.
    pub fn parse(text: &str, source: &Path) -> Result<KeyFile, KeyFileError> {
        let perr = |line: usize, message: String| KeyFileError::Parse {
            path: source.to_path_buf(),
            line,
            message,
        };
        if let Some(pos) = text.find('\0') {
            // glnx_fd_readall_utf8 rejects embedded NULs as invalid UTF-8.
            return Err(KeyFileError::NotUtf8 {
                path: source.to_path_buf(),
                line: line_at(text.as_bytes(), pos),
            });
        }
        let mut groups: Vec<String> = Vec::new();
        let mut entries: HashMap<String, HashMap<String, Entry>> = HashMap::new();
        // The group being read owns its map, taken out of `entries` while its lines come
        // and put back when the next group (or the end) comes, so a key line always has
        // a map to go to without a lookup that could miss.
        let mut current: Option<(String, HashMap<String, Entry>)> = None;
        let mut first_group: Option<String> = None;
        // GKeyFile splits on `\n` and drops one `\r` before it; a final line without `\n`
        // still counts, and keeps its `\r` (GLib only strips it when the `\n` comes).
        let mut lines = text.split('\n').enumerate().peekable();
        while let Some((idx, raw)) = lines.next() {
            let lineno = idx + 1;
            let raw = if lines.peek().is_some() {
                raw.strip_suffix('\r').unwrap_or(raw)
            } else {
                raw
            };
            match classify(raw).map_err(|m| perr(lineno, m))? {
                Line::Blank => {}
                Line::Group(name) => {
                    if let Some((done, map)) = current.take() {
                        entries.insert(done, map);
                    }
                    // A repeated group continues the map of its first appearance.
                    let map = entries.remove(name).unwrap_or_else(|| {
                        groups.push(name.to_string());
                        HashMap::new()
                    });
                    if first_group.is_none() {
                        first_group = Some(name.to_string());
                    }
                    current = Some((name.to_string(), map));
                }
                Line::Pair { key, value } => {
                    let Some((group, map)) = current.as_mut() else {
                        return Err(perr(lineno, "key file does not start with a group".into()));
                    };
                    if key == "Encoding"
                        && first_group.as_deref() == Some(group.as_str())
                        && !value.eq_ignore_ascii_case("UTF-8")
                    {
                        return Err(perr(
                            lineno,
                            format!("key file contains unsupported encoding '{value}'"),
                        ));
                    }
                    map.insert(
                        key.to_string(),
                        Entry {
                            value: value.to_string(),
                            line: lineno,
                        },
                    );
                }
            }
        }
        if let Some((done, map)) = current {
            entries.insert(done, map);
        }

        let cross_check = text.len() <= CROSS_CHECK_MAX;
        let mut ini = gkeyfile_like_ini();
        let cp = if cross_check {
            Some(ini.read(text.to_string()))
        } else {
            None
        };
        let kf = KeyFile {
            source: source.to_path_buf(),
            groups,
            entries,
            ini: cross_check.then_some(ini),
        };
        // A line starting with non-ASCII whitespace makes configparser see a different
        // structure (a comment, a group or an empty key where GKeyFile sees a key): the
        // two readings cannot be compared then, and GKeyFile's is the one ostree uses.
        let comparable = text.split('\n').all(|raw| {
            !raw.trim_start_matches(g_space)
                .starts_with(char::is_whitespace)
        });
        if let Some(cp) = cp.filter(|_| comparable) {
            let detail = match cp {
                Err(e) => Some(format!(
                    "configparser rejected a file GKeyFile accepts: {e}"
                )),
                Ok(map) => kf.disagreement(&map),
            };
            if let Some(detail) = detail {
                return Err(KeyFileError::Disagreement {
                    path: source.to_path_buf(),
                    detail,
                });
            }
        }
        Ok(kf)
    }

    /// Compares configparser's reading with ours, modulo its trimming of names and
    /// values with Unicode whitespace (GKeyFile strips only ASCII whitespace at the line
    /// start, around `=` and at the key's end, and keeps a value's trailing whitespace).
    fn disagreement(&self, cp: &IniMap) -> Option<String> {
        if self.agrees_untrimmed(cp) {
            return None;
        }
        let mut ours: IniMap = HashMap::new();
        for g in &self.groups {
            ours.entry(g.trim().to_string()).or_default();
        }
        // Last line wins when trimmed names collide, as in configparser.
        let mut by_line: Vec<(&String, &String, &Entry)> = self
            .entries
            .iter()
            .flat_map(|(g, m)| m.iter().map(move |(k, e)| (g, k, e)))
            .collect();
        by_line.sort_by_key(|(_, _, e)| e.line);
        for (g, k, e) in by_line {
            ours.entry(g.trim().to_string())
                .or_default()
                .insert(k.trim().to_string(), Some(e.value.trim().to_string()));
        }
        if &ours == cp {
            None
        } else {
            Some(format!(
                "GKeyFile reading {ours:?}, configparser reading {cp:?}"
            ))
        }
    }

    /// The common case without allocating: no group, key or value that trimming would
    /// change, so both readings must match name for name. `false` means "compare the
    /// slow way", not "they disagree".
    fn agrees_untrimmed(&self, cp: &IniMap) -> bool {
        let untouched = |t: &str| t.trim().len() == t.len();
        if cp.len() != self.groups.len() || !self.groups.iter().all(|g| untouched(g)) {
            return false;
        }
        self.entries.iter().all(|(g, ours)| {
            cp.get(g).is_some_and(|theirs| {
                theirs.len() == ours.len()
                    && ours.iter().all(|(k, e)| {
                        untouched(k)
                            && untouched(&e.value)
                            && theirs
                                .get(k)
                                .is_some_and(|v| v.as_deref() == Some(&*e.value))
                    })
            })
        })
    }

    /// Reads and parses the first of `candidates` (paths relative to `root`) that exists.
    /// The others are not read at all: the first one wins wholesale, it never merges.
    #[cfg(feature = "writer")]
    pub fn load_first(root: &Path, candidates: &[&str]) -> Result<Option<KeyFile>, KeyFileError> {
        for rel in candidates {
            if let Some(kf) = Self::load_optional(&root.join(rel))? {
                return Ok(Some(kf));
            }
        }
        Ok(None)
    }

    /// ostree's own order (`otcore_load_config`): every existing file in `load_order` is
    /// parsed, an error in any of them is fatal, and each one replaces the previous
    /// wholesale, so the last existing file is the result.
    pub fn load_replacing(
        root: &Path,
        load_order: &[&str],
    ) -> Result<Option<KeyFile>, KeyFileError> {
        let mut result = None;
        for rel in load_order {
            if let Some(kf) = Self::load_optional(&root.join(rel))? {
                result = Some(kf);
            }
        }
        Ok(result)
    }

    /// Parses the file at `path`; a missing file is `Ok(None)`.
    pub fn load_optional(path: &Path) -> Result<Option<KeyFile>, KeyFileError> {
        let bytes = match crate::fsutil::read_regular(path, crate::fsutil::ReadKind::Config) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyFileError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                return Err(KeyFileError::NotUtf8 {
                    path: path.to_path_buf(),
                    line: line_at(&bytes, e.valid_up_to()),
                });
            }
        };
        Self::parse(text, path).map(Some)
    }

    /// The raw value, as `g_key_file_get_value`: leading whitespace dropped, trailing kept,
    /// escapes not interpreted.
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.entry(group, key).map(|e| e.value.as_str())
    }

    /// The 1-based line the value of `group.key` came from.
    pub fn line_of(&self, group: &str, key: &str) -> Option<usize> {
        self.entry(group, key).map(|e| e.line)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Group names in order of first appearance.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The keys of `group`, sorted.
    pub fn keys(&self, group: &str) -> Vec<&str> {
        let mut k: Vec<&str> = self
            .entries
            .get(group)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        k.sort_unstable();
        k
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.entries.contains_key(group)
    }

    /// The configparser view of the same file (trimmed names and values).
    pub fn ini(&self) -> Option<&Ini> {
        self.ini.as_ref()
    }

    /// A boolean as `g_key_file_get_boolean` reads it: exactly `true`, `false`, `1` or `0`
    /// (case-sensitive), trailing whitespace ignored. `Ok(None)` when the key is absent.
    pub fn get_bool(&self, group: &str, key: &str) -> Result<Option<bool>, KeyFileError> {
        let Some(e) = self.entry(group, key) else {
            return Ok(None);
        };
        match e.value.trim_end_matches(g_space) {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(self.invalid_value(group, key, "true, false, 1 or 0")),
        }
    }

    /// The error for a present key whose value a caller cannot accept.
    pub fn invalid_value(&self, group: &str, key: &str, expected: &'static str) -> KeyFileError {
        let (value, line) = self
            .entry(group, key)
            .map(|e| (e.value.clone(), e.line))
            .unwrap_or_default();
        KeyFileError::InvalidValue {
            path: self.source.clone(),
            line,
            group: group.to_string(),
            key: key.to_string(),
            value,
            expected,
        }
    }

    fn entry(&self, group: &str, key: &str) -> Option<&Entry> {
        self.entries.get(group)?.get(key)
    }
}

impl fmt::Display for KeyFile {
    /// A normalized rendering (groups in order, keys sorted), for diagnostics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for g in &self.groups {
            writeln!(f, "[{g}]")?;
            let mut keys: Vec<(&String, &Entry)> = self
                .entries
                .get(g)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            keys.sort();
            for (k, e) in keys {
                writeln!(f, "{k}={}", e.value)?;
            }
        }
        Ok(())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.line.cmp(&other.line)
    }
}

/// 1-based line number of byte offset `pos`.
fn line_at(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(..pos)
        .unwrap_or(bytes)
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<KeyFile, KeyFileError> {
        KeyFile::parse(text, Path::new("/etc/ostree/prepare-root.conf"))
    }

    fn perr(text: &str) -> String {
        match p(text) {
            Ok(kf) => panic!("accepted {text:?}: {kf}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn basic_groups_and_keys() {
        let kf = p("# c\n[composefs]\nenabled=yes\n\n[sysroot]\nreadonly = true\n").unwrap();
        assert_eq!(kf.get("composefs", "enabled"), Some("yes"));
        assert_eq!(kf.get("sysroot", "readonly"), Some("true"));
        assert_eq!(kf.line_of("sysroot", "readonly"), Some(6));
        assert_eq!(
            kf.groups(),
            &["composefs".to_string(), "sysroot".to_string()]
        );
        assert_eq!(kf.get("composefs", "missing"), None);
    }

    #[test]
    fn case_sensitive_groups_and_keys() {
        let kf = p("[Composefs]\nEnabled=yes\n").unwrap();
        assert_eq!(kf.get("composefs", "enabled"), None);
        assert_eq!(kf.get("Composefs", "Enabled"), Some("yes"));
    }

    #[test]
    fn padded_group_name_is_a_distinct_group() {
        let kf = p("[ composefs ]\nenabled=yes\n").unwrap();
        assert_eq!(kf.get("composefs", "enabled"), None);
        assert_eq!(kf.get(" composefs ", "enabled"), Some("yes"));
    }

    #[test]
    fn inline_hash_and_semicolon_are_part_of_value() {
        let kf = p("[composefs]\nkeypath=/k#1.pub\nenabled=yes # c\nx=a;b\n").unwrap();
        assert_eq!(kf.get("composefs", "keypath"), Some("/k#1.pub"));
        assert_eq!(kf.get("composefs", "enabled"), Some("yes # c"));
        assert_eq!(kf.get("composefs", "x"), Some("a;b"));
    }

    #[test]
    fn semicolon_comment_line_is_error() {
        let e = perr("[composefs]\n; comment\n");
        assert!(e.starts_with("/etc/ostree/prepare-root.conf:2: "), "{e}");
    }

    #[test]
    fn colon_delimiter_is_error_or_part_of_key() {
        perr("[composefs]\nenabled: yes\n");
        let kf = p("[g]\na:b=c\n").unwrap();
        assert_eq!(kf.get("g", "a:b"), Some("c"));
    }

    #[test]
    fn key_without_equals_is_error() {
        let e = perr("[composefs]\nenabled\n");
        assert!(e.contains(":2:"), "{e}");
        perr("[composefs]\nenabled=yes\n    continuation\n");
    }

    #[test]
    fn key_before_group_is_error() {
        let e = perr("enabled=yes\n[composefs]\n");
        assert!(
            e.contains(":1:") && e.contains("does not start with a group"),
            "{e}"
        );
    }

    #[test]
    fn junk_after_group_and_empty_group_are_errors() {
        perr("[g] junk\n");
        perr("[]\n");
        perr("[a[b]\n");
        perr("[a\n");
        perr("[a]b]\n");
        // Spaces and tabs after `]` are fine.
        assert!(p("[a] \t\nk=v\n").unwrap().get("a", "k").is_some());
    }

    #[test]
    fn bom_is_error() {
        perr("\u{feff}[composefs]\nenabled=yes\n");
    }

    #[test]
    fn value_whitespace_leading_stripped_trailing_kept() {
        let kf = p("[composefs]\nenabled=   signed  \n").unwrap();
        assert_eq!(kf.get("composefs", "enabled"), Some("signed  "));
    }

    #[test]
    fn escapes_stay_raw() {
        let kf = p("[g]\nk=a\\sb\\n\\t\\\\\n").unwrap();
        assert_eq!(kf.get("g", "k"), Some("a\\sb\\n\\t\\\\"));
    }

    #[test]
    fn locale_keys_are_separate() {
        let kf = p("[g]\nk=1\nk[de]=2\nk[en_US.UTF-8@x]=3\n").unwrap();
        assert_eq!(kf.get("g", "k"), Some("1"));
        assert_eq!(kf.get("g", "k[de]"), Some("2"));
        perr("[g]\nk[d e]=2\n");
        perr("[g]\nk]=2\n");
        perr("[g]\n[k]x=2\n");
    }

    #[test]
    fn duplicate_key_last_wins_duplicate_group_merges() {
        let kf = p("[a]\nk=1\n[b]\nz=0\n[a]\nk=2\nj=3\n").unwrap();
        assert_eq!(kf.get("a", "k"), Some("2"));
        assert_eq!(kf.line_of("a", "k"), Some(6));
        assert_eq!(kf.get("a", "j"), Some("3"));
        assert_eq!(kf.groups().len(), 2);
    }

    #[test]
    fn empty_key_is_error_empty_value_is_ok() {
        perr("[g]\n=v\n");
        perr("[g]\n   =v\n");
        assert_eq!(p("[g]\nk=\n").unwrap().get("g", "k"), Some(""));
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let kf = p("[g]\r\nk=v\r\nj=w").unwrap();
        assert_eq!(kf.get("g", "k"), Some("v"));
        assert_eq!(kf.get("g", "j"), Some("w"));
        // GLib strips `\r` only before a `\n`.
        let kf = p("[g]\nk=v\r").unwrap();
        assert_eq!(kf.get("g", "k"), Some("v\r"));
        let kf = p("[g]\nk=1\r").unwrap();
        assert_eq!(kf.get_bool("g", "k").unwrap(), Some(true));
        perr("[g]\r");
    }

    #[test]
    fn indented_comments_and_groups() {
        let kf = p("  # c\n\t[g]\n  k = v\n").unwrap();
        assert_eq!(kf.get("g", "k"), Some("v"));
    }

    #[test]
    fn vertical_tab_is_not_whitespace_to_glib() {
        // Found by comparing with libglib 2.74 on the fuzz corpus.
        let kf = p("[g]\nk= \u{b}v\u{b}\na\u{b}=1\n").unwrap();
        assert_eq!(kf.get("g", "k"), Some("\u{b}v\u{b}"));
        assert_eq!(kf.get("g", "a\u{b}"), Some("1"));
        assert!(kf.get_bool("g", "a\u{b}").unwrap().is_some());
        perr("\u{b}\n");
        let kf = p("[g]\n\u{b}k=v\n").unwrap();
        assert_eq!(kf.get("g", "\u{b}k"), Some("v"));
        let kf = p("[g]\nb=true\u{b}\nc=true\u{c}\n").unwrap();
        assert!(kf.get_bool("g", "b").is_err());
        assert_eq!(kf.get_bool("g", "c").unwrap(), Some(true));
    }

    #[test]
    fn foreign_encoding_in_first_group_is_error() {
        perr("[g]\nEncoding=latin1\n");
        assert!(p("[g]\nEncoding=utf-8\n").is_ok());
        assert!(p("[g]\n[h]\nEncoding=latin1\n").is_ok());
    }

    #[test]
    fn nul_is_error() {
        match p("[g]\nk=a\0b\n") {
            Err(KeyFileError::NotUtf8 { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_file_has_no_groups() {
        assert!(p("").unwrap().groups().is_empty());
        assert!(p("\n\n# only comments\n").unwrap().groups().is_empty());
    }

    #[test]
    fn get_bool_glib_rules() {
        let kf = p("[g]\na=true\nb=false\nc=1\nd=0\ne=true  \nf=yes\ng=True\nh=on\ni=\n").unwrap();
        assert_eq!(kf.get_bool("g", "a").unwrap(), Some(true));
        assert_eq!(kf.get_bool("g", "b").unwrap(), Some(false));
        assert_eq!(kf.get_bool("g", "c").unwrap(), Some(true));
        assert_eq!(kf.get_bool("g", "d").unwrap(), Some(false));
        assert_eq!(kf.get_bool("g", "e").unwrap(), Some(true));
        assert_eq!(kf.get_bool("g", "missing").unwrap(), None);
        assert_eq!(kf.get_bool("nogroup", "a").unwrap(), None);
        for k in ["f", "g", "h", "i"] {
            assert!(kf.get_bool("g", k).is_err(), "{k}");
        }
        let e = kf.get_bool("g", "f").unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/ostree/prepare-root.conf:7: [g] f: invalid value 'yes' (expected true, false, 1 or 0)"
        );
    }

    #[test]
    fn configparser_agrees_on_unicode_whitespace() {
        // Non-breaking spaces: configparser trims them, GKeyFile keeps them. The parse
        // must still succeed with GKeyFile's meaning.
        let kf = p("[g]\nk=v\u{a0}\n").unwrap();
        assert_eq!(kf.get("g", "k"), Some("v\u{a0}"));
        let kf = p("[g]\n\u{a0}#k=v\n").unwrap();
        assert_eq!(kf.get("g", "\u{a0}#k"), Some("v"));
        assert_eq!(kf.ini().unwrap().get("g", "k"), None);
        // Found by the fuzzer: a key made of a non-breaking space is a GKeyFile key,
        // and an empty key to configparser.
        let kf = p("[a]\n\u{a0}=1=z\n").unwrap();
        assert_eq!(kf.get("a", "\u{a0}"), Some("1=z"));
    }

    // tests/test-otcore.c /prepare-root-config
    #[test]
    fn otcore_config_groups() {
        let d = tempfile::tempdir().unwrap();
        let name = "ostree/someconfig.conf";
        let order = [
            "usr/lib/ostree/someconfig.conf",
            "etc/ostree/someconfig.conf",
        ];
        assert!(KeyFile::load_replacing(d.path(), &order).unwrap().is_none());
        std::fs::create_dir_all(d.path().join("usr/lib/ostree")).unwrap();
        std::fs::write(d.path().join("usr/lib").join(name), "[foo]\n").unwrap();
        let kf = KeyFile::load_replacing(d.path(), &order).unwrap().unwrap();
        assert_eq!(kf.groups(), &["foo".to_string()]);
        std::fs::write(d.path().join("usr/lib").join(name), "[test]\n").unwrap();
        let kf = KeyFile::load_replacing(d.path(), &order).unwrap().unwrap();
        assert_eq!(kf.groups(), &["test".to_string()]);
        // The case upstream meant to test: /etc replaces /usr/lib.
        std::fs::create_dir_all(d.path().join("etc/ostree")).unwrap();
        std::fs::write(d.path().join("etc").join(name), "[etc]\n").unwrap();
        let kf = KeyFile::load_replacing(d.path(), &order).unwrap().unwrap();
        assert_eq!(kf.groups(), &["etc".to_string()]);
    }

    #[test]
    fn load_first_and_replacing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/ostree")).unwrap();
        std::fs::create_dir_all(d.path().join("usr/lib/ostree")).unwrap();
        let etc = "etc/ostree/prepare-root.conf";
        let usr = "usr/lib/ostree/prepare-root.conf";
        assert!(
            KeyFile::load_first(d.path(), &[etc, usr])
                .unwrap()
                .is_none()
        );
        std::fs::write(
            d.path().join(usr),
            "[composefs]\nenabled=yes\n[sysroot]\nreadonly=true\n",
        )
        .unwrap();
        let kf = KeyFile::load_first(d.path(), &[etc, usr]).unwrap().unwrap();
        assert_eq!(kf.get("composefs", "enabled"), Some("yes"));
        std::fs::write(d.path().join(etc), "[etc]\ntransient=true\n").unwrap();
        for kf in [
            KeyFile::load_first(d.path(), &[etc, usr]).unwrap().unwrap(),
            KeyFile::load_replacing(d.path(), &[usr, etc])
                .unwrap()
                .unwrap(),
        ] {
            assert_eq!(kf.groups(), &["etc".to_string()]);
            assert_eq!(kf.get("composefs", "enabled"), None);
            assert!(kf.source().ends_with(etc));
        }
        std::fs::write(d.path().join(usr), [0xff, b'\n']).unwrap();
        assert!(KeyFile::load_first(d.path(), &[etc, usr]).is_ok());
        let e = KeyFile::load_replacing(d.path(), &[usr, etc]).unwrap_err();
        assert!(matches!(e, KeyFileError::NotUtf8 { line: 1, .. }), "{e}");
    }

    /// Over CROSS_CHECK_MAX only the (linear) line pass reads the file; its meaning
    /// is the same.
    #[test]
    fn large_file_is_read_by_the_line_pass() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("[g{i}]\nk=v{i}\n"));
        }
        text.push_str("[g7]\nk=last \n");
        assert!(text.len() > CROSS_CHECK_MAX);
        let kf = p(&text).unwrap();
        assert!(kf.ini().is_none());
        assert_eq!(kf.groups().len(), 20_000);
        assert_eq!(kf.get("g7", "k"), Some("last "));
        assert_eq!(kf.get("g19999", "k"), Some("v19999"));
        assert_eq!(kf.keys("g3"), vec!["k"]);
        assert!(p(&format!("{text}[bad\n")).is_err());
    }
}
