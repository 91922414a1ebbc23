//! What the generator writes, in the initrd and in the real root.
//!
//! Real root (after switch-root, on every daemon-reload and after soft-reboot): the
//! units ostree's own generator writes (ostree.md 2.3), with two differences. An
//! fstab entry for `/boot` suppresses `boot.mount` as one for `/var` suppresses
//! `var.mount` (ostree failed there and then never wrote `var.mount`), and the mounts
//! prepare-root made for `/etc` get the same soft-reboot drop-in as `/sysroot`,
//! judged from `/run/ostree-booted`, i.e. from what prepare-root did rather than from a
//! config file that may have changed since boot. That config file is only checked, for
//! the next initrd's sake (warnings, no effect on the units).
//!
//! Initrd: ostree's generator does not run there; ours pulls in
//! ostree-prepare-root.service for an ostree boot and makes the kernel modules a
//! composefs root needs load before it.
//!
//! One failing step does not stop the others: systemd uses whatever a generator
//! leaves behind even when it fails, so the generator writes every unit it can and
//! then reports the failure through its exit status.

use std::io;
use std::path::Path;

use ostree_boot::cmdline::{Cmdline, CmdlineError, OstreeTarget};
use ostree_boot::config::{ComposefsMode, PrepareRootConfig, RootConfig};
use ostree_boot::deployment::{Bootlink, aboot_stateroot};
use ostree_boot::fsutil::{ReadKind, read_regular};
use ostree_boot::ostree::booted::OstreeBooted;

use crate::context::Context;
use crate::escape::unit_name_from_path;
use crate::fstab;
use crate::output::{OutputDir, OutputError};
use crate::unit_file::UnitValueError;
use crate::units::{
    self, BOOT_COMPLETE_SERVICE, PREPARE_ROOT_SERVICE, REMOUNT_SERVICE, SYSTEM_UNIT_DIR,
};

/// How a run went; failures have been logged already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub failures: u32,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.failures == 0
    }

    fn fail(&mut self, msg: std::fmt::Arguments<'_>) {
        log::error!("{msg}");
        self.failures += 1;
    }

    fn check(&mut self, r: Result<(), OutputError>) {
        if let Err(e) = r {
            self.fail(format_args!("{e}"));
        }
    }

    /// Writes a unit the writer could render; one it refused is a failure instead.
    fn write_unit(&mut self, out: &OutputDir, name: &str, text: Result<String, UnitValueError>) {
        match text {
            Ok(t) => self.check(out.write_file(name, &t)),
            Err(e) => self.fail(format_args!("{name}: {e}")),
        }
    }
}

/// Runs the generator for `ctx`, writing into `out`.
pub fn run(ctx: &Context, out: &OutputDir) -> Outcome {
    let mut outcome = Outcome::default();
    let cmdline = match read_cmdline(ctx) {
        Ok(c) => c,
        Err(e) => {
            outcome.fail(format_args!("Failed to read /proc/cmdline: {e}"));
            return outcome;
        }
    };
    if ctx.in_initrd {
        initrd(ctx, &cmdline, out, &mut outcome);
    } else {
        real_root(ctx, &cmdline, out, &mut outcome);
    }
    outcome
}

fn read_cmdline(ctx: &Context) -> io::Result<Cmdline> {
    match &ctx.cmdline_override {
        Some(c) => Ok(Cmdline::parse(c)),
        None => Cmdline::from_file(&ctx.path("/proc/cmdline")),
    }
}

fn vendor_unit(name: &str) -> String {
    format!("{SYSTEM_UNIT_DIR}/{name}")
}

/// The ostree target, or `None` (after logging why) when this is not an ostree boot.
fn target(cmdline: &Cmdline, outcome: &mut Outcome) -> Option<OstreeTarget> {
    match cmdline.ostree_target() {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            log::debug!("no ostree= (or androidboot.) kernel argument, nothing to do");
            None
        }
        Err(e) => {
            outcome.fail(format_args!(
                "Invalid ostree target on the kernel command line: {e}"
            ));
            None
        }
    }
}

fn initrd(ctx: &Context, cmdline: &Cmdline, out: &OutputDir, outcome: &mut Outcome) {
    let Some(target) = target(cmdline, outcome) else {
        return;
    };
    outcome.check(out.symlink(
        &format!("initrd-root-fs.target.requires/{PREPARE_ROOT_SERVICE}"),
        &vendor_unit(PREPARE_ROOT_SERVICE),
    ));
    if target.is_aboot && !cmdline.has("ostree") {
        log::warn!(
            "{} has ConditionKernelCommandLine=ostree: add 'ostree' to the kernel command line of this Android boot",
            PREPARE_ROOT_SERVICE
        );
    }

    let config = match PrepareRootConfig::load(ctx.root()) {
        Ok(c) => c,
        Err(e) => {
            outcome.fail(format_args!("{e}"));
            return;
        }
    };
    let root_config = match RootConfig::new(&config, cmdline) {
        Ok(r) => r,
        Err(e) => {
            outcome.fail(format_args!("{e}"));
            return;
        }
    };
    let mode = root_config.composefs;
    if mode != ComposefsMode::No {
        let name = format!("{PREPARE_ROOT_SERVICE}.d/ostree-composefs-modules.conf");
        outcome.write_unit(out, &name, units::composefs_modules_dropin(mode.as_str()));
    }
}

fn real_root(ctx: &Context, cmdline: &Cmdline, out: &OutputDir, outcome: &mut Outcome) {
    // ostree's marker for "the initrd mounted /var". ostree unlinks it here; a
    // generator may not (since systemd 253 it runs in a read-only sandbox), and
    // leaving it makes every daemon-reload agree with the first run.
    if ctx.path("/run/ostree/initramfs-mount-var").exists() {
        log::info!(
            "/run/ostree/initramfs-mount-var exists: the initrd mounted /var, nothing to do"
        );
        return;
    }
    let booted_path = ctx.path("/run/ostree-booted");
    if !ctx.path("/run/ostree").is_dir() && !booted_path.exists() {
        log::debug!("neither /run/ostree nor /run/ostree-booted exists: not an ostree boot");
        return;
    }
    let target = match cmdline.ostree_target() {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            log::debug!("no ostree= (or androidboot.) kernel argument, nothing to do");
            return;
        }
        Err(e @ CmdlineError::UnsafeTarget { .. }) => {
            // Not an ostree= value ostree writes: nothing derived from it, nor anything
            // else, is worth wiring up on this command line.
            outcome.fail(format_args!(
                "Invalid ostree target on the kernel command line: {e}; not writing any unit"
            ));
            return;
        }
        Err(e) => {
            outcome.fail(format_args!(
                "Invalid ostree target on the kernel command line: {e}"
            ));
            None
        }
    };

    outcome.check(out.symlink(
        &format!("local-fs.target.requires/{REMOUNT_SERVICE}"),
        &vendor_unit(REMOUNT_SERVICE),
    ));
    // ostree links this unconditionally; we ship no boot-complete unit (it runs
    // `ostree admin boot-complete`), so link it only where ostree installed one.
    if unit_installed(ctx, BOOT_COMPLETE_SERVICE) {
        outcome.check(out.symlink(
            &format!("multi-user.target.wants/{BOOT_COMPLETE_SERVICE}"),
            &vendor_unit(BOOT_COMPLETE_SERVICE),
        ));
    }

    softreboot_dropin(out, "/sysroot", outcome);
    let booted = read_booted(&booted_path);
    check_next_initrd_config(ctx, cmdline, booted.as_ref().ok().and_then(|b| b.as_ref()));
    match booted {
        Ok(Some(b)) => {
            // Where prepare-root mounted /etc on its own, its etc.mount would carry the
            // default Conflicts=umount.target without the drop-in and be unmounted by a
            // soft-reboot.
            if ostree_boot::plan::booted_etc_is_mount(&b) {
                softreboot_dropin(out, "/etc", outcome);
            }
        }
        Ok(None) => {
            log::info!("/run/ostree-booted is missing; assuming /etc is not a separate mount")
        }
        Err(e) => outcome.fail(format_args!(
            "Failed to read /run/ostree-booted: {e}; still setting up /boot and /var"
        )),
    }

    let fstab = match read_fstab(ctx) {
        Ok(f) => f,
        Err(e) => {
            outcome.fail(format_args!(
                "Reading {}: {e}; not writing boot.mount and var.mount",
                ctx.fstab_path().display()
            ));
            return;
        }
    };
    let fstab_points = fstab::mount_points(&fstab);
    boot_mount(ctx, out, &fstab_points, outcome);

    if fstab_points.iter().any(|p| p == "/var") {
        log::debug!("/etc/fstab mounts /var, not writing var.mount");
        return;
    }
    let Some(target) = target else { return };
    match stateroot(ctx, &target) {
        Ok(stateroot) => match units::var_mount(&stateroot) {
            Ok(text) => {
                outcome.check(out.write_file("var.mount", &text));
                outcome.check(out.symlink("local-fs.target.requires/var.mount", "../var.mount"));
            }
            Err(e) => outcome.fail(format_args!("var.mount: {e}")),
        },
        Err(e) => outcome.fail(format_args!("Parsing stateroot: {e}")),
    }
}

/// The real root does not act on prepare-root.conf (what this boot did is in
/// /run/ostree-booted), but the next initrd is built from it: say so now if it cannot
/// be read, or if this boot did not get the composefs root it asks for (an initrd
/// that was not rebuilt after the change). Warnings only; this boot is fine.
fn check_next_initrd_config(ctx: &Context, cmdline: &Cmdline, booted: Option<&OstreeBooted>) {
    let config = match PrepareRootConfig::load(ctx.root()) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("{e}; an initrd built with this configuration will not boot");
            return;
        }
    };
    let (Some(b), Ok(effective)) = (booted, RootConfig::new(&config, cmdline)) else {
        return;
    };
    let mode = effective.composefs;
    let missing = if mode.is_required() && b.composefs != Some(true) {
        Some("composefs")
    } else if mode == ComposefsMode::Signed && b.composefs_signed.is_none() {
        Some("signature-verified")
    } else {
        None
    };
    if let Some(what) = missing {
        let source = config
            .source
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        log::warn!(
            "{source} asks for composefs '{}', but this boot was not {what}; rebuild the initrd to apply it",
            mode.as_str()
        );
    }
}

fn softreboot_dropin(out: &OutputDir, path: &str, outcome: &mut Outcome) {
    match unit_name_from_path(path, "mount") {
        Ok(unit) => outcome.write_unit(
            out,
            &format!("{unit}.d/ostree-softreboot.conf"),
            units::softreboot_dropin(path),
        ),
        Err(e) => outcome.fail(format_args!("{e}")),
    }
}

fn boot_mount(ctx: &Context, out: &OutputDir, fstab_points: &[String], outcome: &mut Outcome) {
    // /sysroot/boot/loader is a symlink exactly when /boot lives on the root partition.
    let loader_is_link = std::fs::symlink_metadata(ctx.path("/sysroot/boot/loader"))
        .is_ok_and(|m| m.file_type().is_symlink());
    if !loader_is_link {
        return;
    }
    if !ctx.path("/boot").is_dir() {
        return;
    }
    if fstab_points.iter().any(|p| p == "/boot") {
        log::debug!("/etc/fstab mounts /boot, not writing boot.mount");
        return;
    }
    outcome.write_unit(out, "boot.mount", units::boot_mount());
    outcome.check(out.symlink("local-fs.target.requires/boot.mount", "../boot.mount"));
}

fn read_booted(path: &Path) -> Result<Option<OstreeBooted>, String> {
    match read_regular(path, ReadKind::Small) {
        Ok(bytes) => OstreeBooted::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn read_fstab(ctx: &Context) -> io::Result<String> {
    match read_regular(&ctx.fstab_path(), ReadKind::Small) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// The stateroot whose /var this boot uses.
fn stateroot(ctx: &Context, target: &OstreeTarget) -> Result<String, String> {
    if target.is_aboot {
        // The deployment's /ostree is a symlink into /sysroot/ostree, so the aboot
        // slot link resolves from the real root.
        let link_path = ctx.path(&target.path);
        let link =
            std::fs::read_link(&link_path).map_err(|e| format!("reading {}: {e}", target.path))?;
        let link = link.to_string_lossy();
        aboot_stateroot(&link)
            .map(|s| s.to_owned())
            .map_err(|e| e.to_string())
    } else {
        Bootlink::parse(&target.path)
            .map(|b| b.stateroot.to_string())
            .map_err(|e| e.to_string())
    }
}

/// Whether a unit file of that name is installed where systemd looks for vendor and
/// admin units.
fn unit_installed(ctx: &Context, name: &str) -> bool {
    [
        "/etc/systemd/system",
        "/usr/local/lib/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ]
    .iter()
    .any(|d| ctx.path(&format!("{d}/{name}")).exists())
}
