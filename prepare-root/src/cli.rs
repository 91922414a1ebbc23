//! Command line of `ostree-prepare-root`.
//!
//! `ostree-prepare-root SYSROOT [KERNEL_CMDLINE]` is upstream's interface (the second
//! argument replaces `/proc/cmdline`, for tests). `--print-config [--config-root DIR]
//! [--cmdline STRING]` prints the effective configuration and exits. `--check [--sysroot
//! DIR] [--config-root DIR] [--cmdline STRING] [DEPLOYMENT]` says whether a deployment
//! would boot, without mounting anything.

use std::ffi::OsString;
use std::path::PathBuf;

use ostree_boot::cmdline::Cmdline;
use ostree_boot::config::RootConfig;

pub const USAGE: &str = "usage: ostree-prepare-root SYSROOT [KERNEL_CMDLINE]\n       ostree-prepare-root --print-config [--config-root DIR] [--cmdline STRING]\n       ostree-prepare-root --check [--sysroot DIR] [--config-root DIR] [--cmdline STRING] [DEPLOYMENT]";

/// What `--help` prints (on stdout, exit 0): the usage and what each form does.
pub const HELP: &str = "Sets up an ostree deployment as the root filesystem, in the initrd.

usage: ostree-prepare-root SYSROOT [KERNEL_CMDLINE]
       ostree-prepare-root --print-config [--config-root DIR] [--cmdline STRING]
       ostree-prepare-root --check [--sysroot DIR] [--config-root DIR] [--cmdline STRING] [DEPLOYMENT]
       ostree-prepare-root --help

  SYSROOT KERNEL_CMDLINE  mount the deployment that ostree= names (KERNEL_CMDLINE replaces
                          /proc/cmdline) as the root under SYSROOT
  --print-config          print the effective prepare-root.conf and kernel arguments
  --check                 say whether DEPLOYMENT (default: the ostree= one) would boot,
                          without mounting anything
  --config-root DIR       read etc/ and usr/lib/ostree/prepare-root.conf under DIR (default /)
  --sysroot DIR           the sysroot for --check (default /sysroot)
  --cmdline STRING        use STRING as the kernel command line
  -h, --help              print this help and exit

See ostree-prepare-root(8).
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--help`: print [`HELP`] and exit successfully.
    Help,
    /// Print the effective configuration: `config_root` is where `etc/` and `usr/lib/`
    /// are read (default `/`), `cmdline` replaces `/proc/cmdline`.
    PrintConfig {
        config_root: PathBuf,
        cmdline: Option<String>,
    },
    /// Say whether `deployment` (default: the one the command line names) under
    /// `sysroot` (default `/sysroot`) would boot with the configuration under
    /// `config_root`.
    Check {
        sysroot: PathBuf,
        config_root: PathBuf,
        cmdline: Option<String>,
        deployment: Option<String>,
    },
    /// Set up the deployment named on the command line as the root under `sysroot`.
    Prepare {
        sysroot: PathBuf,
        cmdline: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}\n{USAGE}")]
pub struct UsageError(pub String);

fn utf8(arg: OsString, what: &str) -> Result<String, UsageError> {
    arg.into_string().map_err(|a| {
        UsageError(format!(
            "{what} is not valid UTF-8: {}",
            a.to_string_lossy()
        ))
    })
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    let mode = match args.peek() {
        Some(a) if a == "--print-config" || a == "--check" => a.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    if !mode.is_empty() {
        args.next();
        let check = mode == "--check";
        let mut config_root = PathBuf::from("/");
        let mut sysroot = PathBuf::from("/sysroot");
        let mut cmdline = None;
        let mut deployment = None;
        while let Some(a) = args.next() {
            let a = utf8(a, "argument")?;
            let (opt, inline) = match a.split_once('=') {
                Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, UsageError> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => args
                        .next()
                        .ok_or_else(|| UsageError(format!("{name} needs a value")))
                        .and_then(|v| utf8(v, name)),
                }
            };
            match opt.as_str() {
                "--help" | "-h" => return Ok(Command::Help),
                "--config-root" => config_root = PathBuf::from(value("--config-root")?),
                "--cmdline" => cmdline = Some(value("--cmdline")?),
                "--sysroot" if check => sysroot = PathBuf::from(value("--sysroot")?),
                o if check && !o.starts_with('-') && deployment.is_none() => deployment = Some(a),
                _ => return Err(UsageError(format!("unknown argument '{a}'"))),
            }
        }
        return Ok(if check {
            Command::Check {
                sysroot,
                config_root,
                cmdline,
                deployment,
            }
        } else {
            Command::PrintConfig {
                config_root,
                cmdline,
            }
        });
    }
    let sysroot = args
        .next()
        .ok_or_else(|| UsageError("missing SYSROOT".into()))?;
    if sysroot.to_string_lossy().starts_with("--") {
        return Err(UsageError(format!(
            "unknown option '{}'",
            sysroot.to_string_lossy()
        )));
    }
    let cmdline = args.next().map(|c| utf8(c, "KERNEL_CMDLINE")).transpose()?;
    if let Some(extra) = args.next() {
        return Err(UsageError(format!(
            "unexpected argument '{}'",
            extra.to_string_lossy()
        )));
    }
    Ok(Command::Prepare {
        sysroot: PathBuf::from(sysroot),
        cmdline,
    })
}

/// The kernel command line: the given string, or `/proc/cmdline`.
pub fn kernel_cmdline(given: Option<&str>) -> Result<Cmdline, String> {
    match given {
        Some(s) => Ok(Cmdline::parse(s)),
        None => Cmdline::from_proc().map_err(|e| format!("reading /proc/cmdline: {e}")),
    }
}

/// `--print-config`: the lines on success, the message for stderr otherwise.
pub fn print_config(
    config_root: &std::path::Path,
    cmdline: Option<&str>,
) -> Result<String, String> {
    let cmdline = kernel_cmdline(cmdline)?;
    RootConfig::load(config_root, &cmdline)
        .map(|c| c.print())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn print_config_args() {
        assert_eq!(
            parse(&["--print-config"]),
            Ok(Command::PrintConfig {
                config_root: "/".into(),
                cmdline: None
            })
        );
        assert_eq!(
            parse(&[
                "--print-config",
                "--config-root",
                "/r",
                "--cmdline",
                "a=\"b c\""
            ]),
            Ok(Command::PrintConfig {
                config_root: "/r".into(),
                cmdline: Some("a=\"b c\"".into())
            })
        );
        assert_eq!(
            parse(&["--print-config", "--cmdline=ostree=/x", "--config-root=/r"]),
            Ok(Command::PrintConfig {
                config_root: "/r".into(),
                cmdline: Some("ostree=/x".into())
            })
        );
        assert!(parse(&["--print-config", "--config-root"]).is_err());
        assert!(parse(&["--print-config", "--bogus"]).is_err());
        assert!(parse(&["--print-config", "extra"]).is_err());
    }

    #[test]
    fn check_args() {
        assert_eq!(
            parse(&["--check"]),
            Ok(Command::Check {
                sysroot: "/sysroot".into(),
                config_root: "/".into(),
                cmdline: None,
                deployment: None
            })
        );
        assert_eq!(
            parse(&[
                "--check",
                "--sysroot",
                "/s",
                "--config-root=/r",
                "--cmdline",
                "ostree=/x",
                "ostree/deploy/os/deploy/abc.0"
            ]),
            Ok(Command::Check {
                sysroot: "/s".into(),
                config_root: "/r".into(),
                cmdline: Some("ostree=/x".into()),
                deployment: Some("ostree/deploy/os/deploy/abc.0".into())
            })
        );
        assert!(parse(&["--check", "a", "b"]).is_err());
        assert!(parse(&["--check", "--bogus"]).is_err());
        assert!(parse(&["--check", "--sysroot"]).is_err());
        assert!(parse(&["--print-config", "--sysroot", "/s"]).is_err());
    }

    #[test]
    fn upstream_args() {
        assert_eq!(
            parse(&["/sysroot"]),
            Ok(Command::Prepare {
                sysroot: "/sysroot".into(),
                cmdline: None
            })
        );
        assert_eq!(
            parse(&["/sysroot", "ostree=/x"]),
            Ok(Command::Prepare {
                sysroot: "/sysroot".into(),
                cmdline: Some("ostree=/x".into())
            })
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["/sysroot", "a", "b"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn help_args() {
        for args in [
            &["--help"][..],
            &["-h"],
            &["--help", "extra"],
            &["--check", "--help"],
            &["--print-config", "--cmdline", "x", "-h"],
        ] {
            assert_eq!(parse(args), Ok(Command::Help), "{args:?}");
        }
        assert!(HELP.contains(USAGE.trim_start_matches("usage: ").lines().next().unwrap()));
    }
}
