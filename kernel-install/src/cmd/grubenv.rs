//! `ostree-composefs grubenv` (read and edit GRUB's environment block, atomically) and
//! `ostree-composefs grub-bless` (the success marker of the GRUB boot assessment, run by
//! `ostree-grub-bless.service` once `boot-complete.target` is reached).

use anyhow::{Context, Result, bail};
use ostree_boot::cmdline::Cmdline;
use ostree_boot::fsutil::write_atomic;
use ostree_boot::grubenv::{Assessment, GrubEnv, MAX_TRIES, TRIES_VAR, assess};
use ostree_boot::layout::{BootEntry, Kargs, strverscmp};
use std::path::{Path, PathBuf};

/// Lists, sets or unsets variables of GRUB's environment block (grubenv). Writes replace
/// the file atomically and keep its size, as GRUB's save_env needs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The environment block.
    #[arg(long, default_value = "/boot/grub/grubenv")]
    file: PathBuf,
    #[command(subcommand)]
    op: Op,
}

#[derive(clap::Subcommand, Debug)]
enum Op {
    /// Prints NAME=VALUE lines.
    List,
    /// Sets variables; creates a 1024-byte block if the file does not exist.
    Set {
        #[arg(required = true, value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
    /// Removes variables (absent ones are no error).
    Unset {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Arms the boot assessment: the default entry gets TRIES boots to reach
    /// boot-complete.target before GRUB falls back to the next entry.
    Arm {
        #[arg(value_parser = clap::value_parser!(u32).range(1..=MAX_TRIES as i64))]
        tries: u32,
    },
}

pub fn run(a: Args) -> Result<()> {
    let existing = GrubEnv::read(&a.file)?;
    match a.op {
        Op::List => {
            let env = existing.with_context(|| format!("{}: no such file", a.file.display()))?;
            for (k, v) in env.vars() {
                println!("{k}={v}");
            }
            Ok(())
        }
        Op::Set { vars } => {
            let mut env = existing.unwrap_or_default();
            for kv in &vars {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("'{kv}': expected NAME=VALUE");
                };
                env.set(k, v)?;
            }
            write(&a.file, &env)
        }
        Op::Unset { names } => {
            let Some(mut env) = existing else {
                return Ok(());
            };
            let mut changed = false;
            for n in &names {
                changed |= env.unset(n);
            }
            if changed {
                write(&a.file, &env)
            } else {
                Ok(())
            }
        }
        Op::Arm { tries } => {
            let mut env = existing.unwrap_or_default();
            env.set(TRIES_VAR, &tries.to_string())?;
            write(&a.file, &env)?;
            eprintln!(
                "ostree-composefs: {}: the default entry has {tries} tries to reach boot-complete.target",
                a.file.display()
            );
            Ok(())
        }
    }
}

fn write(path: &Path, env: &GrubEnv) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let data = env.render().with_context(|| path.display().to_string())?;
    write_atomic(path, &data, 0o644)?;
    Ok(())
}

/// Marks the booted deployment good for GRUB's boot assessment: drops the tries counter
/// when the booted `ostree=` is the default entry's (the one on trial); leaves it when
/// GRUB fell back to another entry.
#[derive(clap::Args, Debug)]
pub struct BlessArgs {
    /// The boot directory holding grub/grubenv and loader/entries.
    #[arg(long, default_value = "/boot")]
    boot: PathBuf,
    /// The kernel command line to read ostree= from.
    #[arg(long, default_value = "/proc/cmdline")]
    cmdline: PathBuf,
}

pub fn run_bless(a: BlessArgs) -> Result<()> {
    let file = a.boot.join("grub/grubenv");
    let Some(mut env) = GrubEnv::read(&file)? else {
        eprintln!(
            "ostree-composefs: {}: no GRUB environment block, nothing to mark",
            file.display()
        );
        return Ok(());
    };
    let cmdline = Cmdline::from_file(&a.cmdline)
        .with_context(|| format!("reading {}", a.cmdline.display()))?;
    let booted = cmdline.get("ostree");
    let default = default_entry_ostree(&a.boot.join("loader/entries"))?;
    match assess(&env, booted, default.as_deref()) {
        Assessment::NotArmed => {
            eprintln!(
                "ostree-composefs: no boot counter in {}: nothing to mark",
                file.display()
            );
        }
        Assessment::Bless => {
            env.unset(TRIES_VAR);
            // /boot is read-only with a composefs root or sysroot.readonly.
            crate::deploy::writable::ensure_writable(file.parent().unwrap_or(&a.boot))?;
            write(&file, &env)?;
            eprintln!(
                "ostree-composefs: the default entry ({}) reached boot-complete.target: boot counter dropped",
                booted.unwrap_or_default()
            );
        }
        Assessment::Keep { tries } => {
            eprintln!(
                "ostree-composefs: booted ostree={} but the entry on trial is ostree={}: \
                 counter left at {TRIES_VAR}={tries} (GRUB fell back)",
                booted.unwrap_or("<none>"),
                default.as_deref().unwrap_or("<none>")
            );
        }
    }
    Ok(())
}

/// The `ostree=` of the entry GRUB boots by default: the highest `version` (GRUB's blscfg
/// and ostree both put it first).
fn default_entry_ostree(dir: &Path) -> Result<Option<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut best: Option<(String, String)> = None;
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", dir.display()))?;
        let path = ent.path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let entry = BootEntry::parse(&text);
        let version = entry.get("version").unwrap_or("").to_string();
        let Some(ostree) = entry
            .get("options")
            .and_then(|o| Kargs::parse(o).get("ostree").map(str::to_string))
        else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(v, _)| strverscmp(&version, v).is_gt())
        {
            best = Some((version, ostree));
        }
    }
    Ok(best.map(|(_, o)| o))
}
