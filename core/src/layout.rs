//! The sysroot layout as ostree reads and writes it: deployments listed through the
//! Boot Loader Spec entries of the active `boot/loader.N` and the bootlinks they name,
//! entry files in ostree's format and key order, bootcsums, bootserials, origin files.
//!
//! Entry file names follow what ostree ≥ 2024.5 writes by default, `ostree-<n>.conf`
//! ([`EntryNaming::V2`]); Debian 12's ostree (2022.7) wrote `ostree-<n>-<stateroot>.conf`
//! ("bootloader-naming-1", still selectable). Both are read.

use std::cmp::Ordering;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::deployment::{Bootlink, DeployName};
use crate::keyfile::{KeyFile, KeyFileError};

/// Why the layout could not be read or an input was refused.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Contained(#[from] crate::beneath::BeneathError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

type Result<T> = std::result::Result<T, LayoutError>;

/// A Boot Loader Spec entry as ostree's bootconfig parser sees it: `key value` lines,
/// keys split at the first space or tab, lines not starting with a letter ignored, a
/// repeated `initrd` kept as an overlay initrd, other repeated keys last-wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootEntry {
    pairs: Vec<(String, String)>,
    overlay_initrds: Vec<String>,
}

/// Keys ostree writes first, in this order (`ostree-bootconfig-parser.c`).
const KEY_ORDER: [&str; 6] = [
    "title",
    "version",
    "options",
    "devicetree",
    "linux",
    "initrd",
];

impl BootEntry {
    pub fn parse(text: &str) -> Self {
        let mut entry = BootEntry::default();
        for line in text.lines() {
            if !line.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                continue;
            }
            let Some(at) = line.find([' ', '\t']) else {
                continue;
            };
            let (key, value) = (&line[..at], &line[at + 1..]);
            if key == "initrd" && entry.get("initrd").is_some() {
                entry.overlay_initrds.push(value.to_string());
            } else {
                entry.set(key, value);
            }
        }
        entry
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
    }

    pub fn overlay_initrds(&self) -> &[String] {
        &self.overlay_initrds
    }

    /// The `initrd` lines after the first (ostree's overlay initrds).
    pub fn set_overlay_initrds(&mut self, paths: Vec<String>) {
        self.overlay_initrds = paths;
    }

    /// The entry in ostree's serialisation: known keys first in ostree's order, overlay
    /// initrds right after them, then any other key in the order ostree's hash table of
    /// the keys (filled in the order they were set) iterates them.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for key in KEY_ORDER {
            if let Some(v) = self.get(key) {
                out.push_str(&format!("{key} {v}\n"));
            }
        }
        for initrd in &self.overlay_initrds {
            out.push_str(&format!("initrd {initrd}\n"));
        }
        let keys: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        for i in crate::glib_hash::iteration_order(&keys) {
            let (k, v) = &self.pairs[i];
            if !KEY_ORDER.contains(&k.as_str()) {
                out.push_str(&format!("{k} {v}\n"));
            }
        }
        out
    }
}

/// The `options` line of a BLS entry, for editing it as ostree's `OstreeKernelArgs` does:
/// split on spaces only, order, duplicates and quotes kept verbatim so that rendering
/// gives back what was read, and `replace`/`remove_key` with ostree's rules.
///
/// Not for reading the running kernel's command line: that is [`crate::cmdline::Cmdline`],
/// which splits and unquotes as systemd does and takes the first `key=` as ostree-prepare-root
/// does. The two split differently on purpose (quotes, tabs, newlines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kargs(Vec<String>);

impl Kargs {
    pub fn parse(s: &str) -> Self {
        Kargs(
            s.split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }
    pub fn key(arg: &str) -> &str {
        arg.split_once('=').map_or(arg, |(k, _)| k)
    }
    pub fn args(&self) -> &[String] {
        &self.0
    }
    /// The value of the first `key=value` argument.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| Self::key(a) == key)
            .map(|a| a.split_once('=').map_or("", |(_, v)| v))
    }
    /// ostree's `replace`: the first argument with the same key takes the new value and
    /// further ones are dropped; a new key is appended.
    pub fn replace(&mut self, arg: &str) {
        let key = Self::key(arg);
        match self.0.iter().position(|a| Self::key(a) == key) {
            Some(first) => {
                self.0[first] = arg.to_string();
                let mut i = 0;
                self.0.retain(|a| {
                    let keep = i <= first || Self::key(a) != key;
                    i += 1;
                    keep
                });
            }
            None => self.0.push(arg.to_string()),
        }
    }
    pub fn remove_key(&mut self, key: &str) {
        self.0.retain(|a| Self::key(a) != key);
    }
}

impl fmt::Display for Kargs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

pub fn is_hex_csum(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Stateroot names become path components; refuse anything that could escape.
pub fn validate_stateroot(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\0'])
        || name.len() > 200
    {
        return Err(LayoutError::Bad(format!("invalid stateroot name {name:?}")));
    }
    Ok(())
}

/// One deployment as the bootloader configuration describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub stateroot: String,
    pub csum: String,
    pub deployserial: u32,
    pub bootcsum: String,
    pub bootserial: u32,
    /// The entry it was read from, or the one to write.
    pub entry: BootEntry,
}

impl Deployment {
    pub fn name(&self) -> String {
        format!("{}.{}", self.csum, self.deployserial)
    }
    /// Relative to the sysroot.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "ostree/deploy/{}/deploy/{}",
            self.stateroot,
            self.name()
        ))
    }
    pub fn origin_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "ostree/deploy/{}/deploy/{}.origin",
            self.stateroot,
            self.name()
        ))
    }
    /// The kernel arguments without `ostree=`.
    pub fn kargs(&self) -> Kargs {
        let mut k = Kargs::parse(self.entry.get("options").unwrap_or(""));
        k.remove_key("ostree");
        k
    }
    pub fn same(&self, other: &Deployment) -> bool {
        self.stateroot == other.stateroot
            && self.csum == other.csum
            && self.deployserial == other.deployserial
    }
    /// ostree's `deployment_bootconfigs_equal`: same bootcsum and same kargs apart
    /// from `ostree=`; if all pairs are equal only the bootlinks are swapped.
    pub fn bootconfig_equal(&self, other: &Deployment) -> bool {
        self.bootcsum == other.bootcsum && self.kargs() == other.kargs()
    }
}

/// ostree's `assign_bootserials`: the index among deployments sharing a bootcsum.
pub fn assign_bootserials(deployments: &mut [Deployment]) {
    let mut counts: std::collections::HashMap<String, u32> = Default::default();
    for d in deployments {
        let n = counts.entry(d.bootcsum.clone()).or_insert(0);
        d.bootserial = *n;
        *n += 1;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryNaming {
    /// `ostree-<n>-<stateroot>.conf`, written by ostree ≤ 2024.4 (Debian 12), and by later
    /// ones with `OSTREE_SYSROOT_OPTS=bootloader-naming-1`.
    V1,
    /// `ostree-<n>.conf`, the default of ostree ≥ 2024.5.
    #[default]
    V2,
}

impl EntryNaming {
    /// The naming upstream picks from `OSTREE_SYSROOT_OPTS` (a GLib debug string: words
    /// separated by `:;, \t`, case-insensitive, `-` and `_` alike, `all` sets every flag):
    /// `bootloader-naming-1` selects [`EntryNaming::V1`], anything else the default.
    pub fn from_sysroot_opts(opts: Option<&str>) -> EntryNaming {
        let norm = |w: &str| w.to_ascii_lowercase().replace('_', "-");
        let v1 = opts.is_some_and(|o| {
            o.split([':', ';', ',', ' ', '\t'])
                .map(norm)
                .any(|w| w == "bootloader-naming-1" || w == "all")
        });
        if v1 { EntryNaming::V1 } else { EntryNaming::V2 }
    }

    /// [`EntryNaming::from_sysroot_opts`] of this process's environment.
    pub fn from_env() -> EntryNaming {
        Self::from_sysroot_opts(std::env::var("OSTREE_SYSROOT_OPTS").ok().as_deref())
    }
}

/// The entry file name for the deployment at `index` of `count`.
pub fn entry_filename(naming: EntryNaming, index: usize, count: usize, stateroot: &str) -> String {
    let n = count - index;
    match naming {
        EntryNaming::V1 => format!("ostree-{n}-{stateroot}.conf"),
        EntryNaming::V2 => format!("ostree-{n}.conf"),
    }
}

/// The entry title: `PRETTY_NAME[ <version>] (ostree[:<stateroot>]:<index>)`.
pub fn entry_title(
    pretty: &str,
    version: Option<&str>,
    show_stateroot: Option<&str>,
    index: usize,
) -> String {
    let mut t = pretty.to_string();
    if let Some(v) = version.filter(|v| !v.is_empty() && !pretty.contains(v)) {
        t.push(' ');
        t.push_str(v);
    }
    t.push_str(" (ostree");
    if let Some(sr) = show_stateroot {
        t.push(':');
        t.push_str(sr);
    }
    t.push_str(&format!(":{index})"));
    t
}

/// `PRETTY_NAME`, else `ID`, from os-release text (shell-style quoting removed).
pub fn os_release_title(text: &str) -> Option<String> {
    let mut pretty = None;
    let mut id = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unquote_os_release(v.trim());
        match k.trim() {
            "PRETTY_NAME" => pretty = Some(v),
            "ID" => id = Some(v),
            _ => {}
        }
    }
    pretty.or(id)
}

fn unquote_os_release(v: &str) -> String {
    let inner = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let mut out = String::new();
    let mut esc = false;
    for c in inner.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// glibc `strverscmp`, which ostree uses to order entries by `version`.
pub fn strverscmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (na, nb) = (&a[si..i], &b[sj..j]);
            let fa = na.first() == Some(&b'0');
            let fb = nb.first() == Some(&b'0');
            let ord = if fa || fb {
                // glibc reads a run with leading zeros as a fraction: more zeros sort
                // first, then the digits compare as strings.
                let za = na.iter().take_while(|&&c| c == b'0').count();
                let zb = nb.iter().take_while(|&&c| c == b'0').count();
                zb.cmp(&za).then_with(|| na[za..].cmp(&nb[zb..]))
            } else {
                na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
            };
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// The current boot configuration of a sysroot.
#[derive(Clone, Debug, Default)]
pub struct SysrootState {
    pub bootversion: u8,
    pub subbootversion: u8,
    /// Newest first, as ostree orders them.
    pub deployments: Vec<Deployment>,
}

fn read_link_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_link(path) {
        Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayoutError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// `boot/loader -> loader.N`; no link means bootversion 0.
pub fn read_bootversion(sysroot: &Path) -> Result<u8> {
    let p = sysroot.join("boot/loader");
    match read_link_opt(&p)? {
        None => {
            if p.is_dir() {
                return Err(LayoutError::Invalid {
                    path: p,
                    msg: "is a directory, expected a symlink to loader.0 or loader.1".into(),
                });
            }
            Ok(0)
        }
        Some(t) if t == "loader.0" => Ok(0),
        Some(t) if t == "loader.1" => Ok(1),
        Some(t) => Err(LayoutError::Invalid {
            path: p,
            msg: format!("unexpected target {t:?}"),
        }),
    }
}

/// `ostree/boot.N -> boot.N.M`; no link means 0.
pub fn read_subbootversion(sysroot: &Path, bootversion: u8) -> Result<u8> {
    let p = sysroot.join(format!("ostree/boot.{bootversion}"));
    Ok(match read_link_opt(&p)? {
        Some(t) if t.ends_with(".1") => 1,
        _ => 0,
    })
}

impl SysrootState {
    /// Reads the deployments the way libostree does: every `*.conf` in
    /// `boot/loader.N/entries`, ordered by `version` descending, each resolved through
    /// its `ostree=` bootlink.
    pub fn read(sysroot: &Path) -> Result<Self> {
        if !sysroot.join("ostree").is_dir() {
            return Err(LayoutError::Invalid {
                path: sysroot.to_path_buf(),
                msg: "not an ostree sysroot (no ostree/ directory)".into(),
            });
        }
        let bootversion = read_bootversion(sysroot)?;
        let subbootversion = read_subbootversion(sysroot, bootversion)?;
        let dir = sysroot.join(format!("boot/loader.{bootversion}/entries"));
        let mut entries: Vec<(String, BootEntry)> = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for ent in rd {
                    let ent = ent.map_err(io_err(&dir))?;
                    let name = ent.file_name().to_string_lossy().into_owned();
                    if !name.ends_with(".conf") || !ent.file_type().map_err(io_err(&dir))?.is_file()
                    {
                        continue;
                    }
                    let p = ent.path();
                    let bytes = crate::fsutil::read_regular(&p, crate::fsutil::ReadKind::Config)
                        .map_err(io_err(&p))?;
                    let text = String::from_utf8(bytes).map_err(|e| {
                        io_err(&p)(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e.utf8_error(),
                        ))
                    })?;
                    entries.push((name, BootEntry::parse(&text)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(LayoutError::Io {
                    path: dir,
                    source: e,
                });
            }
        }
        entries.sort_by(
            |(na, a), (nb, b)| match (a.get("version"), b.get("version")) {
                (Some(va), Some(vb)) => strverscmp(vb, va),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => nb.cmp(na),
            },
        );
        let mut deployments = Vec::new();
        for (name, entry) in entries {
            let path = dir.join(&name);
            let options = Kargs::parse(entry.get("options").unwrap_or(""));
            let Some(link) = options.get("ostree") else {
                return Err(LayoutError::Invalid {
                    path,
                    msg: "No ostree= kernel argument found".into(),
                });
            };
            let bl = Bootlink::parse(link).map_err(|e| LayoutError::Invalid {
                path: path.clone(),
                msg: e.to_string(),
            })?;
            let linkpath = sysroot.join(link.trim_start_matches('/'));
            let target = std::fs::read_link(&linkpath).map_err(io_err(&linkpath))?;
            let base = target
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = DeployName::parse(&base).map_err(|_| LayoutError::Invalid {
                path: linkpath.clone(),
                msg: format!("bootlink target {target:?} is not <csum>.<serial>"),
            })?;
            deployments.push(Deployment {
                stateroot: bl.stateroot,
                csum: name.checksum,
                deployserial: name.serial,
                bootcsum: bl.bootcsum,
                bootserial: bl.treeserial,
                entry,
            });
        }
        Ok(SysrootState {
            bootversion,
            subbootversion,
            deployments,
        })
    }

    /// The deployment `/run/ostree-booted`'s (dev, ino) names, if any.
    pub fn find_by_dev_ino(&self, sysroot: &Path, dev: u64, ino: u64) -> Option<usize> {
        use std::os::unix::fs::MetadataExt;
        self.deployments.iter().position(|d| {
            std::fs::metadata(sysroot.join(d.dir())).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        })
    }
}

/// The stateroots that exist: directories under `ostree/deploy`.
pub fn list_stateroots(sysroot: &Path) -> Result<Vec<String>> {
    let dir = sysroot.join("ostree/deploy");
    let mut out = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(io_err(&dir))?;
                if e.file_type().map_err(io_err(&dir))?.is_dir() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(LayoutError::Io {
                path: dir,
                source: e,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// An origin file as `g_key_file_to_data` writes ostree's: `[origin]\nrefspec=…\n`.
pub fn render_origin(refspec: &str) -> String {
    format!("[origin]\nrefspec={}\n", escape_keyfile_value(refspec))
}

/// GKeyFile value escaping for what a refspec can hold.
fn escape_keyfile_value(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        match c {
            ' ' if i == 0 => out.push_str("\\s"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

/// `refspec` (or, failing that, `baserefspec`) of the `[origin]` group of an origin file,
/// read with GKeyFile's rules as libostree reads it; `source` names the file in errors.
pub fn origin_refspec(
    text: &str,
    source: &Path,
) -> std::result::Result<Option<String>, KeyFileError> {
    let kf = KeyFile::parse(text, source)?;
    Ok(kf
        .get("origin", "refspec")
        .or_else(|| kf.get("origin", "baserefspec"))
        .map(str::to_string))
}

fn hash_file(h: &mut Sha256, path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// The bootcsum: sha256 over the kernel, then the initramfs, then the devicetree.
pub fn bootcsum(
    vmlinuz: &Path,
    initramfs: Option<&Path>,
    devicetree: Option<&Path>,
) -> Result<String> {
    let mut h = Sha256::new();
    hash_file(&mut h, vmlinuz)?;
    if let Some(p) = initramfs {
        hash_file(&mut h, p)?;
    }
    if let Some(p) = devicetree {
        hash_file(&mut h, p)?;
    }
    Ok(hex::encode(h.finalize()))
}

/// The largest kernel, initramfs or devicetree hashed from a tree (a link to
/// `/dev/zero` cannot be one: links are not followed, but a huge file could be).
pub const MAX_BOOT_FILE: u64 = 4 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_in_ostree_order() {
        let text = "linux /ostree/a/vmlinuz\nversion 2\n# comment\n  indented ignored\ntitle Test OS 2.0 (ostree:0)\ninitrd /a.img\ninitrd /overlay.img\noptions root=x ostree=/ostree/boot.0/os/c/0\nfoo bar\n";
        let e = BootEntry::parse(text);
        assert_eq!(e.get("title"), Some("Test OS 2.0 (ostree:0)"));
        assert_eq!(e.overlay_initrds(), ["/overlay.img"]);
        assert_eq!(
            e.render(),
            "title Test OS 2.0 (ostree:0)\nversion 2\noptions root=x ostree=/ostree/boot.0/os/c/0\nlinux /ostree/a/vmlinuz\ninitrd /a.img\ninitrd /overlay.img\nfoo bar\n"
        );
        // ostree splits at the first blank: padding becomes part of the value.
        assert_eq!(BootEntry::parse("title   X\n").get("title"), Some("  X"));
    }

    #[test]
    fn bootlinks() {
        let b = Bootlink::parse("/ostree/boot.1/testos/7bd0/12").unwrap();
        assert_eq!(
            b,
            Bootlink {
                bootversion: 1,
                stateroot: "testos".into(),
                bootcsum: "7bd0".into(),
                treeserial: 12
            }
        );
        assert_eq!(b.to_string(), "/ostree/boot.1/testos/7bd0/12");
        for bad in [
            "/ostree/boot.2/a/b/0",
            "/ostree/boot.0/a/b",
            "/ostree/boot.0/a/b/x",
            "/boot/ostree.0",
            "/ostree/boot.0/a/b/0/",
        ] {
            assert!(Bootlink::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kargs_replace_like_ostree() {
        let mut k = Kargs::parse("root=LABEL=MOO  quiet console=tty0 console=ttyS0 ostree=/x");
        k.replace("console=hvc0");
        k.replace("rw");
        k.remove_key("ostree");
        assert_eq!(k.to_string(), "root=LABEL=MOO quiet console=hvc0 rw");
        assert_eq!(k.get("root"), Some("LABEL=MOO"));
    }

    #[test]
    fn serials_titles_names() {
        let d = |c: &str, b: &str| Deployment {
            stateroot: "os".into(),
            csum: c.into(),
            deployserial: 0,
            bootcsum: b.into(),
            bootserial: 9,
            entry: BootEntry::default(),
        };
        let mut ds = vec![d("a", "k1"), d("b", "k2"), d("c", "k1")];
        assign_bootserials(&mut ds);
        assert_eq!(
            ds.iter().map(|d| d.bootserial).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        assert_eq!(
            entry_filename(EntryNaming::V1, 0, 3, "os"),
            "ostree-3-os.conf"
        );
        assert_eq!(entry_filename(EntryNaming::V2, 2, 3, "os"), "ostree-1.conf");
        assert_eq!(EntryNaming::default(), EntryNaming::V2);
        for (opts, want) in [
            (None, EntryNaming::V2),
            (Some(""), EntryNaming::V2),
            (Some("bootloader-naming-1"), EntryNaming::V1),
            (Some("early-prune,Bootloader_Naming_1"), EntryNaming::V1),
            (Some("all"), EntryNaming::V1),
            (Some("bootloader-naming-10"), EntryNaming::V2),
        ] {
            assert_eq!(EntryNaming::from_sysroot_opts(opts), want, "{opts:?}");
        }
        assert_eq!(
            entry_title("Test OS", Some("1.0"), None, 0),
            "Test OS 1.0 (ostree:0)"
        );
        assert_eq!(
            entry_title("Test OS 1.0", Some("1.0"), Some("b"), 1),
            "Test OS 1.0 (ostree:b:1)"
        );
        assert_eq!(
            os_release_title("ID=x\nPRETTY_NAME=\"Debian \\\"12\\\"\"\n").as_deref(),
            Some("Debian \"12\"")
        );
        assert_eq!(
            DeployName::parse("abc0.12")
                .ok()
                .map(|n| (n.checksum, n.serial)),
            Some(("abc0".into(), 12))
        );
        assert_eq!(
            DeployName::parse("abc.x")
                .ok()
                .map(|n| (n.checksum, n.serial)),
            None
        );
    }

    #[test]
    fn version_sort() {
        assert_eq!(strverscmp("10", "9"), Ordering::Greater);
        assert_eq!(strverscmp("2", "2"), Ordering::Equal);
        assert_eq!(strverscmp("1", "10"), Ordering::Less);
    }

    #[test]
    fn origin() {
        assert_eq!(
            render_origin("testos/stable"),
            "[origin]\nrefspec=testos/stable\n"
        );
        assert_eq!(
            origin_refspec(
                "[origin]\nrefspec=r:a/b\n[x]\nrefspec=no\n",
                Path::new("x.origin")
            )
            .unwrap()
            .as_deref(),
            Some("r:a/b")
        );
    }
}
