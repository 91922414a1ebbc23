//! VM boot tests (tier 4): each case of `tests/vm/cases/` boots the test OS under qemu.
//!
//! They take minutes, so they boot only with `OSTREE_VM_TESTS=1` (`make vm-test` and
//! `make check` set it); without it each case fails, or is reported as `SKIP` with
//! `OSTREE_TEST_ALLOW_SKIP=1`. `make test` leaves this crate to `make vm-test`. The cached build stages run
//! once (`tests/vm/prepare.sh`) before the first case; cases then run on the test harness's
//! threads, so `--test-threads=2` boots two VMs at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn enabled() -> bool {
    std::env::var("OSTREE_VM_TESTS").is_ok_and(|v| v == "1")
}

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// Runs the cached build stages once for all cases; the error text is shared.
fn prepared() -> Result<(), String> {
    static PREPARED: OnceLock<Result<(), String>> = OnceLock::new();
    PREPARED
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(vm_dir().join("prepare.sh"))
                .status()
                .map_err(|e| format!("cannot run tests/vm/prepare.sh: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("tests/vm/prepare.sh failed: {status}"))
            }
        })
        .clone()
}

fn run_case(name: &str) {
    if !ostree_boot_test_support::require(
        enabled(),
        format!("vm case {name} boots qemu only with OSTREE_VM_TESTS=1 (`make vm-test`)"),
    ) {
        return;
    }
    if let Err(e) = prepared() {
        panic!("vm case {name}: {e}");
    }
    let out = Command::new("bash")
        .arg(vm_dir().join("run-case.sh"))
        .arg(name)
        // One vCPU per VM: two VMs side by side beat one with two vCPUs on 2 cores.
        .env("OSTREE_VM_SMP", "1")
        .output()
        .unwrap_or_else(|e| panic!("vm case {name}: cannot run tests/vm/run-case.sh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The PASS/FAIL line and its reasons, shown with --nocapture and on failure.
    print!("{stdout}");
    assert!(
        out.status.success(),
        "vm case {name} failed:\n{stdout}\n{stderr}"
    );
}

macro_rules! vm_cases {
    ($($fn_name:ident => $case:literal),* $(,)?) => {
        $(
            #[test]
            fn $fn_name() {
                run_case($case);
            }
        )*

        const CASES: &[&str] = &[$($case),*];
    };
}

vm_cases! {
    bad_bootlink => "bad-bootlink",
    composefs_karg_downgrade => "composefs-karg-downgrade",
    composefs_karg_off => "composefs-karg-off",
    composefs_maybe_image => "composefs-maybe-image",
    composefs_maybe_noimage => "composefs-maybe-noimage",
    composefs_signed => "composefs-signed",
    composefs_verity => "composefs-verity",
    composefs_yes => "composefs-yes",
    etc_transient => "etc-transient",
    grub_bios_rollback_initrd => "grub-bios-rollback-initrd",
    grub_bios_verity => "grub-bios-verity",
    grub_efi_rollback_initrd => "grub-efi-rollback-initrd",
    grub_efi_rollback_userspace => "grub-efi-rollback-userspace",
    grub_efi_signed => "grub-efi-signed",
    grub_efi_tamper_image => "grub-efi-tamper-image",
    grub_efi_update => "grub-efi-update",
    grub_efi_verity => "grub-efi-verity",
    image_swapped => "image-swapped",
    image_without_verity => "image-without-verity",
    old_transient_key => "old-transient-key",
    root_transient => "root-transient",
    sdboot_killed => "sdboot-killed",
    sdboot_rollback_initrd => "sdboot-rollback-initrd",
    sdboot_rollback_userspace => "sdboot-rollback-userspace",
    sdboot_update => "sdboot-update",
    signed_key => "signed-key",
    signed_other_key => "signed-other-key",
    smoke => "smoke",
    staged_killed_finalize => "staged-killed-finalize",
    staged_kinstall => "staged-kinstall",
    staged_readonly_boot => "staged-readonly-boot",
    staged_update => "staged-update",
    sysroot_readonly => "sysroot-readonly",
    tamper_control_legacy => "tamper-control-legacy",
    tamper_image => "tamper-image",
    tamper_object => "tamper-object",
    unsigned_commit => "unsigned-commit",
    upstream_deploy_signed => "upstream-deploy-signed",
    upstream_deploy_signed_tamper => "upstream-deploy-signed-tamper",
    upstream_deploy_tamper => "upstream-deploy-tamper",
    upstream_deploy_yes => "upstream-deploy-yes",
    upstream_prepare_root_signed => "upstream-prepare-root-signed",
    upstream_prepare_root_tamper => "upstream-prepare-root-tamper",
    upstream_prepare_root_yes => "upstream-prepare-root-yes",
}

/// Every case file has a test here, so that a new case cannot be silently left out.
#[test]
fn every_case_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(vm_dir().join("cases"))
        .expect("tests/vm/cases is readable")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".case")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "tests/vm/cases/*.case and the vm_cases! list differ"
    );
}
