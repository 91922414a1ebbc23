#!/bin/bash
# `make demo`: from nothing, build a small Debian OS, deploy it as a signed composefs root
# (transient key in the initrd), boot it under qemu and show what was verified.
# BOOTLOADER=direct (default, the fastest: qemu loads the entry's kernel and initrd),
# grub (GRUB 2.14 under OVMF reads the BLS entry from the disk), grub-bios (SeaBIOS) or
# systemd-boot (under OVMF, from a FAT ESP that kernel-install filled through our plugin;
# the update on trial is counted and blessed).
# Each stage prints one progress line; the build stages are cached in build/vm, so a second
# run only boots. The VM harness (tests/vm/) does the work; see tests/vm/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/vm/stages.sh
. tests/vm/stages.sh
# shellcheck source=tests/vm/grub.sh
. tests/vm/grub.sh

case ${BOOTLOADER:-direct} in
    "" | direct) boot_via=direct ;;
    grub | grub-efi) boot_via=grub-efi ;;
    grub-bios) boot_via=grub-bios ;;
    systemd-boot | sdboot) boot_via=systemd-boot ;;
    *) die "BOOTLOADER=$BOOTLOADER: expected direct, grub, grub-bios or systemd-boot" ;;
esac

STAGES=6
n=0
T0=$(now)
stage() {
    n=$((n + 1))
    printf '\n==> [%d/%d] %s\n' "$n" "$STAGES" "$*"
    STAGE_T=$(now)
}
done_stage() { printf '    done in %s s%s\n' "$(since "$STAGE_T")" "${1:+: $1}"; }

stage "host packages (scripts/setup.sh)"
OSTREE_VM_SKIP_SETUP=${OSTREE_VM_SKIP_SETUP:-0}
[ "$OSTREE_VM_SKIP_SETUP" = 1 ] || stage_host >/dev/null
done_stage

stage "Debian trixie kernel"
stage_kernel
done_stage "$(kver)"

stage "build the OS: debootstrap trixie + systemd + our boot half + dracut initrd"
impl=$(vm_impl)
[ "$impl" = ours ] || printf '    note: booting Debian ostree-boot (C), not ours (OSTREE_VM_IMPL, or not built)\n'
stage_base
stage_tree "$impl"
case $boot_via in grub-*) stage_grub ;; esac
done_stage "implementation: $impl$(case $boot_via in grub-*) echo ", GRUB 2.14 images (sid's grub-mkimage)" ;; systemd-boot) echo ", systemd-boot $(sdboot_version) (trixie)" ;; esac)"

variant=signed
if ! deployer_supports signed; then
    variant=legacy
    printf '    note: the kernel-install plugin is not there yet: deploying the legacy (non-composefs) way\n'
fi
if [ "$boot_via" = systemd-boot ]; then
    # Two deployments that kernel-install writes onto the ESP in the guest (the host has
    # no vfat), the newer one with boot tries: the demo boots, counts and blesses it.
    variant=sdboot2
    deployer_supports sdboot2 || die "BOOTLOADER=systemd-boot needs the kernel-install plugin"
fi
case $variant in
    signed) what="composefs image, signed with a transient key, ext4+verity disk" ;;
    sdboot2) what="ext4+verity disk, then in the guest two composefs deployments by kernel-install onto a FAT ESP, the newer with $SDBOOT_TRIES boot tries" ;;
    *) what="ext4+verity disk" ;;
esac
stage "deploy ($variant): ostree commit, $what"
stage_disk "$impl" "$variant"
done_stage "$CACHE/disk-$impl-$variant/root.ext4"

case $boot_via in
    direct) how="kernel" ;;
    grub-efi) how="OVMF, GRUB 2.14 reading the BLS entry, kernel" ;;
    grub-bios) how="SeaBIOS, GRUB 2.14 reading the BLS entry, kernel" ;;
    systemd-boot) how="OVMF, systemd-boot reading the plugin's entries on the ESP, kernel" ;;
esac
stage "boot under qemu (TCG): $how, systemd initrd, ostree-prepare-root, systemd"
t=$(now)
if ! OSTREE_VM_DEMO_VARIANT=$variant OSTREE_VM_DEMO_BOOT=$boot_via bash tests/vm/run-case.sh tests/vm/demo.case >"$LOGS/demo.out" 2>&1; then
    cat "$LOGS/demo.out"
    die "the demo boot failed; console log: $LOGS/demo.log"
fi
boot_wall=$(since "$t")
done_stage "VM wall time ${boot_wall} s"

stage "what was verified"
RES=$CACHE/run/demo/results.1
if [ "$variant" = signed ]; then
    # The deployment's initrd as the deployer wrote it (the key is an appended cpio member).
    key=$(initrd_member "$CACHE/disk-$impl-$variant/initrd.img" etc/ostree/initramfs-root-binding.key || true)
    printf '    public key in the initrd: %s\n' "${key:-<not found>}"
fi
sed 's/^/    /' "$RES/demo.txt"
if [ -s "$CACHE/run/demo/timeline.1" ]; then
    printf '    console timeline (s since qemu started):\n'
    sed 's/^/      /' "$CACHE/run/demo/timeline.1"
fi
printf '    qemu wall time for the boot: %s s; whole demo: %s s\n' "$boot_wall" "$(since "$T0")"
