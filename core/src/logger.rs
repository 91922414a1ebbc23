//! A small `log` backend for the boot binaries.
//!
//! Generators and the initrd write to `/dev/kmsg` (generators must not use the journal:
//! it may not run yet, and it is not theirs to start), services attached to the journal
//! use its native protocol, everything else writes to stderr. The kernel rate-limits
//! userspace kmsg writes, so callers keep messages terse.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use libsystemd::logging::Priority;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// `/dev/kmsg` as `<PRI>name[pid]: msg`; stderr if it cannot be opened.
    Kmsg,
    /// The journal's native protocol; stderr if journald does not answer.
    Journal,
    Stderr,
    /// Kmsg in the initrd or under a generator, the journal when stderr is connected to
    /// it (`JOURNAL_STREAM`), stderr otherwise.
    Auto,
}

/// syslog facility `LOG_DAEMON`, as systemd's own components use.
const LOG_DAEMON: u8 = 3 << 3;

fn syslog_level(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

fn priority(l: Level) -> Priority {
    match l {
        Level::Error => Priority::Error,
        Level::Warn => Priority::Warning,
        Level::Info => Priority::Info,
        Level::Debug | Level::Trace => Priority::Debug,
    }
}

/// The kmsg line for one record (without the trailing newline the kernel adds).
pub fn kmsg_line(name: &str, pid: u32, level: Level, msg: &str) -> String {
    // One record per write: embedded newlines would otherwise look like continuation.
    let msg = msg.replace('\n', " ");
    format!("<{}>{name}[{pid}]: {msg}", LOG_DAEMON | syslog_level(level))
}

/// Decides what [`LogTarget::Auto`] means here, from the environment given.
pub fn resolve_auto(
    in_initrd_env: Option<&str>,
    initrd_release_exists: bool,
    is_generator: bool,
    connected_to_journal: bool,
) -> LogTarget {
    if in_initrd_env == Some("1") || initrd_release_exists || is_generator {
        LogTarget::Kmsg
    } else if connected_to_journal {
        LogTarget::Journal
    } else {
        LogTarget::Stderr
    }
}

/// systemd runs generators with three output directories as arguments and, since v251,
/// `SYSTEMD_SCOPE` in the environment.
fn looks_like_generator() -> bool {
    std::env::var_os("SYSTEMD_SCOPE").is_some() && std::env::args_os().count() == 4
}

/// `SYSTEMD_LOG_LEVEL` (a syslog level name or number), default info.
fn level_from_env() -> LevelFilter {
    match std::env::var("SYSTEMD_LOG_LEVEL").as_deref() {
        Ok("debug" | "7") => LevelFilter::Debug,
        Ok("info" | "6" | "notice" | "5") => LevelFilter::Info,
        Ok("warning" | "4") => LevelFilter::Warn,
        Ok("err" | "3" | "crit" | "2" | "alert" | "1" | "emerg" | "0") => LevelFilter::Error,
        _ => LevelFilter::Info,
    }
}

struct Logger {
    name: &'static str,
    target: LogTarget,
    kmsg: Option<Mutex<std::fs::File>>,
}

impl Logger {
    fn stderr(&self, level: Level, msg: &str) {
        let prefix = match level {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            _ => "",
        };
        let _ = writeln!(std::io::stderr().lock(), "{}: {prefix}{msg}", self.name);
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        match self.target {
            LogTarget::Kmsg => {
                if let Some(k) = &self.kmsg {
                    let mut line = kmsg_line(self.name, std::process::id(), record.level(), &msg);
                    // Without the newline the kernel keeps the record open for a
                    // continuation: /dev/kmsg readers do not see it until the next one.
                    line.push('\n');
                    if let Ok(mut f) = k.lock()
                        && f.write_all(line.as_bytes()).is_ok()
                    {
                        return;
                    }
                }
                self.stderr(record.level(), &msg);
            }
            LogTarget::Journal => {
                let fields = [("SYSLOG_IDENTIFIER", self.name)];
                if libsystemd::logging::journal_send(
                    priority(record.level()),
                    &msg,
                    fields.into_iter(),
                )
                .is_err()
                {
                    self.stderr(record.level(), &msg);
                }
            }
            LogTarget::Stderr | LogTarget::Auto => self.stderr(record.level(), &msg),
        }
    }

    fn flush(&self) {}
}

static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Installs the logger for the process. A second call is ignored.
pub fn init(name: &'static str, target: LogTarget) {
    let target = match target {
        LogTarget::Auto => resolve_auto(
            std::env::var("SYSTEMD_IN_INITRD").ok().as_deref(),
            Path::new("/etc/initrd-release").exists(),
            looks_like_generator(),
            libsystemd::logging::connected_to_journal(),
        ),
        t => t,
    };
    let kmsg = (target == LogTarget::Kmsg)
        .then(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok()
        })
        .flatten()
        .map(Mutex::new);
    let logger = Logger { name, target, kmsg };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level_from_env());
        let _ = NAME.set(name);
    }
}

/// Sends a structured message (`MESSAGE_ID=…` and other fields) to the journal when
/// journald is listening; otherwise logs `msg` as a plain info line.
pub fn journal_send(msg: &str, fields: &[(&str, &str)]) {
    let ident = [(
        "SYSLOG_IDENTIFIER",
        NAME.get().copied().unwrap_or("ostree-boot"),
    )];
    let all = fields.iter().copied().chain(ident);
    if !Path::new("/run/systemd/journal/socket").exists()
        || libsystemd::logging::journal_send(Priority::Info, msg, all).is_err()
    {
        log::info!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_format() {
        assert_eq!(
            kmsg_line("ostree-system-generator", 42, Level::Error, "bad\nthing"),
            "<27>ostree-system-generator[42]: bad thing"
        );
        assert_eq!(kmsg_line("x", 1, Level::Info, "hi"), "<30>x[1]: hi");
        assert_eq!(kmsg_line("x", 1, Level::Debug, "hi"), "<31>x[1]: hi");
        assert_eq!(kmsg_line("x", 1, Level::Warn, "hi"), "<28>x[1]: hi");
    }

    #[test]
    fn auto_target() {
        assert_eq!(resolve_auto(Some("1"), false, false, true), LogTarget::Kmsg);
        assert_eq!(resolve_auto(None, true, false, true), LogTarget::Kmsg);
        assert_eq!(resolve_auto(None, false, true, true), LogTarget::Kmsg);
        assert_eq!(
            resolve_auto(Some("0"), false, false, true),
            LogTarget::Journal
        );
        assert_eq!(resolve_auto(None, false, false, false), LogTarget::Stderr);
    }
}
