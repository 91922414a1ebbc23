//! `ostree-composefs deploy`: check out a commit as a new default deployment.

use std::path::PathBuf;

use anyhow::Result;
use ostree_boot::layout::EntryNaming;

use crate::deploy::{self, DeployOptions, KargsSpec, KernelArg};

/// Deploy REV as the new default boot entry, laid out as `ostree admin deploy` does.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The physical root holding ostree/ and boot/.
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// Stateroot (default: the booted one, or the only one).
    #[arg(long = "stateroot", visible_alias = "os")]
    stateroot: Option<String>,
    /// Kernel argument; replaces arguments with the same key taken from the current
    /// default deployment, or is appended.
    #[arg(long = "karg", value_name = "ARG")]
    kargs: Vec<String>,
    /// Deployments of the stateroot to keep, the new one included (default: the new
    /// one, the booted one and one rollback).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep: Option<u32>,
    /// Boot this kernel instead of usr/lib/modules/<kver>/vmlinuz of the tree.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initrd to boot with --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel version for the file names under /boot (default: from the tree).
    #[arg(long, value_name = "KVER", requires = "kernel")]
    kver: Option<String>,
    /// Entry file names of ostree <= 2024.4, ostree-N-STATEROOT.conf, instead of
    /// ostree-N.conf (also chosen by OSTREE_SYSROOT_OPTS=bootloader-naming-1, as upstream).
    #[arg(long, conflicts_with = "bootloader_naming_2")]
    bootloader_naming_1: bool,
    /// ostree-N.conf entry names: the default, kept for scripts that ask for it.
    #[arg(long, hide = true)]
    bootloader_naming_2: bool,
    /// Complete the deployment at shutdown (/etc merge, boot entries), as `ostree admin
    /// deploy --stage`: ostree-composefs-finalize-staged.service runs `finalize-staged`.
    #[arg(long, conflicts_with = "keep")]
    stage: bool,
    /// Stage, and do not finalize at shutdown until unlocked (implies --stage).
    #[arg(long, conflicts_with = "keep")]
    lock_finalization: bool,
    /// Also write the entries and kernels onto this vfat partition (ESP or XBOOTLDR) for
    /// systemd-boot, switched atomically; boot counting from /etc/kernel/tries (or
    /// $KERNEL_INSTALL_CONF_ROOT/tries).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["stage", "lock_finalization"])]
    vfat_boot: Option<PathBuf>,
    /// Commit checksum or ref.
    rev: String,
}

pub fn run(a: Args) -> Result<i32> {
    let vfat = vfat_mirror(a.vfat_boot.as_deref(), &a.sysroot)?;
    let opts = DeployOptions {
        sysroot: a.sysroot,
        stateroot: a.stateroot,
        rev: a.rev,
        kargs: KargsSpec::Merge(a.kargs),
        keep: a.keep.map(|n| n as usize),
        kernel: a.kernel.map(|kernel| KernelArg {
            kernel,
            initrd: a.initrd,
            kver: a.kver,
        }),
        origin_refspec: None,
        naming: entry_naming(a.bootloader_naming_1, a.bootloader_naming_2),
        vfat,
    };
    if a.stage || a.lock_finalization {
        let r = deploy::staged::stage(&opts, a.lock_finalization)?;
        if let Some(p) = &r.replaced {
            println!("Replaced staged deployment {p}");
        }
        println!(
            "Staged {}/{} (bootcsum {}){}",
            r.target.osname,
            r.target.name(),
            r.target.bootcsum,
            if r.locked {
                "; finalization locked"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    let r = deploy::deploy(&opts)?;
    if let Some((m, rm, ad)) = r.etc_changes {
        println!("Copying /etc changes: {m} modified, {rm} removed, {ad} added");
    }
    for d in &r.removed {
        println!("Removed deployment {d}");
    }
    println!(
        "Deployed {}/{}.{} (bootcsum {})",
        r.stateroot, r.csum, r.deployserial, r.bootcsum
    );
    Ok(0)
}

/// The mirror `--vfat-boot PATH` asks for: PATH must be a vfat mount other than the
/// sysroot's boot/; the tries from kernel-install's tries file, as the plugin.
pub fn vfat_mirror(
    path: Option<&std::path::Path>,
    sysroot: &std::path::Path,
) -> Result<Option<deploy::vfat::Mirror>> {
    let Some(p) = path else { return Ok(None) };
    let setting = deploy::vfat::VfatSetting::Path(std::path::absolute(p)?);
    let Some(root) = deploy::vfat::resolve(&setting, sysroot, None)? else {
        return Ok(None);
    };
    Ok(Some(deploy::vfat::Mirror {
        root,
        tries: deploy::vfat::read_tries()?,
    }))
}

/// The entry naming from the flags, else from `OSTREE_SYSROOT_OPTS` as upstream.
pub fn entry_naming(v1: bool, v2: bool) -> EntryNaming {
    if v1 {
        EntryNaming::V1
    } else if v2 {
        EntryNaming::V2
    } else {
        EntryNaming::from_env()
    }
}
