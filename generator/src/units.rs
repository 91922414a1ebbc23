//! The text of every unit and drop-in the generator writes.
//!
//! The real-root units match ostree's generator line for line (ostree.md 2.3), so
//! a system moving between ostree's C generator and this one sees the same units.
//! All of them keep `DefaultDependencies=no` and stay out of `umount.target`: with
//! the default dependencies systemd would unmount them on soft-reboot, and a
//! `Conflicts=umount.target` on `var.mount` deadlocks with ostree-remount.service
//! at soft-reboot shutdown.

use crate::escape::specifier_escape;
use crate::unit_file::{UnitFile, UnitValueError};

/// Where distributions install vendor units; dependency links to them point here.
pub const SYSTEM_UNIT_DIR: &str = "/usr/lib/systemd/system";

pub const PREPARE_ROOT_SERVICE: &str = "ostree-prepare-root.service";
pub const REMOUNT_SERVICE: &str = "ostree-remount.service";
pub const BOOT_COMPLETE_SERVICE: &str = "ostree-boot-complete.service";

/// Kernel modules a composefs root needs before prepare-root mounts it.
pub const COMPOSEFS_MODULES: [&str; 3] = ["erofs", "overlay", "loop"];

/// The `[Unit]` settings every mount the generator writes or touches shares.
fn mount_ordering(u: &mut UnitFile, after: &str) -> Result<(), UnitValueError> {
    u.set("DefaultDependencies", "no")?
        .set("After", after)?
        .set("Before", "local-fs.target")?;
    Ok(())
}

/// Drop-in for a mount the initrd made, so it survives soft-reboot.
pub fn softreboot_dropin(path: &str) -> Result<String, UnitValueError> {
    let mut u = UnitFile::new(Some(&format!(
        "Preserve {} across soft-reboot",
        specifier_escape(path)
    )))?;
    u.section("Unit");
    mount_ordering(&mut u, "local-fs-pre.target")?;
    Ok(u.finish())
}

/// `boot.mount`: /boot bound from the physical root when both share a partition.
pub fn boot_mount() -> Result<String, UnitValueError> {
    let mut u = UnitFile::new(Some("Bind mount /boot from /sysroot/boot (same partition)"))?;
    u.section("Unit").set("Documentation", "man:ostree(1)")?;
    mount_ordering(&mut u, "local-fs-pre.target sysroot.mount")?;
    u.section("Mount")
        .set("Where", "/boot")?
        .set("What", "/sysroot/boot")?
        .set("Options", "bind")?;
    Ok(u.finish())
}

/// `var.mount`: the stateroot's shared /var. `slave,shared` keeps mounts made
/// under /var from propagating back into /sysroot (ostree issue 2086). A stateroot
/// that is not one plain path component (empty, `.`, `..`, a `/`) is refused here
/// as well, whatever the caller checked.
pub fn var_mount(stateroot: &str) -> Result<String, UnitValueError> {
    let what = format!("/sysroot/ostree/deploy/{stateroot}/var");
    if matches!(stateroot, "" | "." | "..") || stateroot.contains('/') {
        return Err(UnitValueError {
            key: "What".into(),
            value: what,
            reason: "the stateroot is not a single path component",
        });
    }
    let mut u = UnitFile::new(None)?;
    u.section("Unit")
        .set("Documentation", "man:ostree(1)")?
        .set("DefaultDependencies", "no")?
        .set("ConditionKernelCommandLine", "!systemd.volatile")?
        .set("After", "local-fs-pre.target sysroot.mount")?
        .set("Before", "local-fs.target")?;
    u.section("Mount")
        .set("Where", "/var")?
        .set("What", &what)?
        .set("Options", "bind,slave,shared")?;
    Ok(u.finish())
}

/// Drop-in for ostree-prepare-root.service: a composefs root needs erofs, overlay
/// and loop before the mount, and the initrd may not autoload them in time.
pub fn composefs_modules_dropin(mode: &str) -> Result<String, UnitValueError> {
    let mut u = UnitFile::new(Some(&format!(
        "composefs mode '{mode}': load erofs, overlay and loop first"
    )))?;
    let units: Vec<String> = COMPOSEFS_MODULES
        .iter()
        .map(|m| format!("modprobe@{m}.service"))
        .collect();
    let list = units.join(" ");
    u.section("Unit").set("Wants", &list)?.set("After", &list)?;
    Ok(u.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_mount_escapes_percent() {
        let u = var_mount("a%b").unwrap();
        assert!(u.contains("What=/sysroot/ostree/deploy/a%%b/var\n"), "{u}");
    }

    #[test]
    fn modules_dropin_lists_all_three() {
        let d = composefs_modules_dropin("signed").unwrap();
        assert!(d.contains(
            "Wants=modprobe@erofs.service modprobe@overlay.service modprobe@loop.service\n"
        ));
        assert!(d.contains(
            "After=modprobe@erofs.service modprobe@overlay.service modprobe@loop.service\n"
        ));
    }

    #[test]
    fn var_mount_refuses_what_it_cannot_write() {
        for sr in ["..", ".", "", "a/b", "a\rType=oneshot", "a\nb"] {
            assert!(var_mount(sr).is_err(), "{sr:?}");
        }
    }
}
