//! GRUB's environment block (`grubenv`), the file `load_env`/`save_env` read and write in
//! place: the signature line `# GRUB Environment Block`, then `name=value` lines, then `#`
//! padding up to the block's fixed size (1024 bytes unless the file is larger). GRUB
//! escapes a backslash or a newline inside a value with a backslash (`grub-core/lib/envblk.c`).
//!
//! `save_env` overwrites the file's blocks without changing its size, so a rendered block
//! always keeps the size it was read with: GRUB and this code can take turns on one file.
//! The boot assessment of `units/grub/grub.cfg` keeps its counter here.

use std::path::{Path, PathBuf};

/// The first line of every environment block.
pub const SIGNATURE: &str = "# GRUB Environment Block\n";
/// The size GRUB's tools create (`DEFAULT_ENVBLK_SIZE`).
pub const DEFAULT_SIZE: usize = 1024;
/// Larger files are not environment blocks: refuse them before reading them whole.
pub const MAX_SIZE: usize = 64 * 1024;

/// Why an environment block was refused.
#[derive(Debug, thiserror::Error)]
pub enum GrubEnvError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a GRUB environment block: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{0}")]
    Bad(String),
}

/// A parsed environment block: variables in file order and the block's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrubEnv {
    vars: Vec<(String, String)>,
    size: usize,
}

impl Default for GrubEnv {
    fn default() -> Self {
        GrubEnv {
            vars: Vec::new(),
            size: DEFAULT_SIZE,
        }
    }
}

/// GRUB accepts any name without `=`; ours are shell-like so they can be used in grub.cfg.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl GrubEnv {
    /// Parses a block. `path` only names the file in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<GrubEnv, GrubEnvError> {
        let invalid = |msg: String| GrubEnvError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        if data.len() > MAX_SIZE {
            return Err(invalid(format!(
                "{} bytes, more than {MAX_SIZE}",
                data.len()
            )));
        }
        let body = data
            .strip_prefix(SIGNATURE.as_bytes())
            .ok_or_else(|| invalid("no '# GRUB Environment Block' signature".into()))?;
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut rest = body;
        let mut line_no = 1;
        while !rest.is_empty() {
            line_no += 1;
            // A line ends at a newline that is not escaped by a backslash.
            let mut end = 0;
            let mut value = Vec::new();
            let mut escaped = false;
            while end < rest.len() {
                let b = rest[end];
                end += 1;
                if escaped {
                    value.push(b);
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'\n' {
                    break;
                } else {
                    value.push(b);
                }
            }
            let line = &rest[..end];
            rest = &rest[end..];
            // Padding and comments.
            if line.first() == Some(&b'#') || line == b"\n" {
                continue;
            }
            if !line.ends_with(b"\n") {
                return Err(invalid(format!("line {line_no} is not terminated")));
            }
            let text = String::from_utf8(value)
                .map_err(|_| invalid(format!("line {line_no} is not UTF-8")))?;
            let (name, val) = text
                .split_once('=')
                .ok_or_else(|| invalid(format!("line {line_no} has no '='")))?;
            match vars.iter_mut().find(|(k, _)| k == name) {
                Some(pair) => pair.1 = val.to_string(),
                None => vars.push((name.to_string(), val.to_string())),
            }
        }
        Ok(GrubEnv {
            vars,
            size: data.len().max(DEFAULT_SIZE),
        })
    }

    /// Reads `path`; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<GrubEnv>, GrubEnvError> {
        let io = |source| GrubEnvError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_SIZE as u64 {
            return Err(GrubEnvError::Invalid {
                path: path.to_path_buf(),
                msg: format!("{} bytes, more than {MAX_SIZE}", meta.len()),
            });
        }
        let data = std::fs::read(path).map_err(io)?;
        GrubEnv::parse(&data, path).map(Some)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), GrubEnvError> {
        if !valid_name(name) {
            return Err(GrubEnvError::Bad(format!(
                "invalid GRUB variable name '{name}' (letters, digits and '_', not starting with a digit)"
            )));
        }
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn unset(&mut self, name: &str) -> bool {
        let before = self.vars.len();
        self.vars.retain(|(k, _)| k != name);
        before != self.vars.len()
    }

    /// The block as GRUB writes it, padded with `#` to the block's size.
    pub fn render(&self) -> Result<Vec<u8>, GrubEnvError> {
        let mut out = SIGNATURE.as_bytes().to_vec();
        for (k, v) in &self.vars {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            for b in v.bytes() {
                if b == b'\\' || b == b'\n' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'\n');
        }
        if out.len() > self.size {
            return Err(GrubEnvError::Bad(format!(
                "the variables need {} bytes, more than the block's {}",
                out.len(),
                self.size
            )));
        }
        out.resize(self.size, b'#');
        Ok(out)
    }
}

/// The variable `units/grub/grub.cfg` counts down: tries left for the default entry.
pub const TRIES_VAR: &str = "ostree_tries";
/// The most tries the string ladder of `units/grub/grub.cfg` counts down from.
pub const MAX_TRIES: u32 = 16;

/// What the success marker does once the booted system reached `boot-complete.target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// No counter: the default entry is not on trial.
    NotArmed,
    /// The default entry booted and is good: drop the counter.
    Bless,
    /// GRUB booted another entry (the fallback) or the booted entry is unknown: the
    /// counter stays, so that the failing default entry is not tried again.
    Keep { tries: String },
}

/// Decides from the environment, the booted `ostree=` target and the default entry's.
/// Only the deployment on trial is blessed: a fallback boot that succeeds says nothing
/// about the entry that failed.
pub fn assess(env: &GrubEnv, booted: Option<&str>, default: Option<&str>) -> Assessment {
    let Some(tries) = env.get(TRIES_VAR) else {
        return Assessment::NotArmed;
    };
    match (booted, default) {
        (Some(b), Some(d)) if b == d => Assessment::Bless,
        _ => Assessment::Keep {
            tries: tries.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("grubenv")
    }

    #[test]
    fn empty_block_round_trips() {
        let data = GrubEnv::default().render().unwrap();
        assert_eq!(data.len(), DEFAULT_SIZE);
        assert!(data.starts_with(SIGNATURE.as_bytes()));
        assert!(data[SIGNATURE.len()..].iter().all(|&b| b == b'#'));
        assert_eq!(GrubEnv::parse(&data, p()).unwrap(), GrubEnv::default());
    }

    #[test]
    fn grub_editenv_output_is_read() {
        // What `grub-editenv grubenv create; grub-editenv grubenv set a=1 saved_entry=x` writes.
        let mut data = b"# GRUB Environment Block\na=1\nsaved_entry=x\n".to_vec();
        data.resize(1024, b'#');
        let env = GrubEnv::parse(&data, p()).unwrap();
        assert_eq!(env.get("a"), Some("1"));
        assert_eq!(env.get("saved_entry"), Some("x"));
        assert_eq!(env.render().unwrap(), data);
    }

    #[test]
    fn escapes_round_trip() {
        let mut env = GrubEnv::default();
        env.set("v", "a\\b\nc").unwrap();
        let data = env.render().unwrap();
        assert!(data.starts_with(b"# GRUB Environment Block\nv=a\\\\b\\\nc\n#"));
        assert_eq!(
            GrubEnv::parse(&data, p()).unwrap().get("v"),
            Some("a\\b\nc")
        );
    }

    #[test]
    fn set_unset_keep_order_and_size() {
        let mut data = b"# GRUB Environment Block\nx=1\ny=2\n".to_vec();
        data.resize(2048, b'#');
        let mut env = GrubEnv::parse(&data, p()).unwrap();
        env.set("x", "3").unwrap();
        env.set("z", "4").unwrap();
        assert!(env.unset("y"));
        assert!(!env.unset("y"));
        let out = env.render().unwrap();
        assert_eq!(out.len(), 2048);
        assert!(out.starts_with(b"# GRUB Environment Block\nx=3\nz=4\n#"));
    }

    #[test]
    fn refusals() {
        for (data, want) in [
            (&b"not a block"[..], "signature"),
            (b"# GRUB Environment Block\nnoequals\n", "line 2 has no '='"),
            (b"# GRUB Environment Block\na=1", "line 2 is not terminated"),
            (b"# GRUB Environment Block\na=\xff\n", "not UTF-8"),
        ] {
            let e = GrubEnv::parse(data, p()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.starts_with("grubenv: "), "{e}");
        }
        let big = vec![b'#'; MAX_SIZE + 1];
        assert!(GrubEnv::parse(&big, p()).is_err());
        let mut env = GrubEnv::default();
        assert!(env.set("1x", "v").is_err());
        assert!(env.set("a=b", "v").is_err());
        assert!(env.set("", "v").is_err());
        env.set("big", &"v".repeat(DEFAULT_SIZE)).unwrap();
        assert!(env.render().unwrap_err().to_string().contains("more than"));
    }

    #[test]
    fn assessment() {
        let mut env = GrubEnv::default();
        assert_eq!(assess(&env, Some("/a"), Some("/a")), Assessment::NotArmed);
        env.set(TRIES_VAR, "2").unwrap();
        assert_eq!(assess(&env, Some("/a"), Some("/a")), Assessment::Bless);
        let keep = Assessment::Keep { tries: "2".into() };
        assert_eq!(assess(&env, Some("/b"), Some("/a")), keep);
        assert_eq!(assess(&env, None, Some("/a")), keep);
        assert_eq!(assess(&env, Some("/a"), None), keep);
    }

    #[test]
    fn parse_never_panics_on_truncations() {
        let mut env = GrubEnv::default();
        env.set("ostree_tries", "3").unwrap();
        env.set("e", "x\\y").unwrap();
        let data = env.render().unwrap();
        for n in 0..data.len() {
            let _ = GrubEnv::parse(&data[..n], p());
        }
    }
}
