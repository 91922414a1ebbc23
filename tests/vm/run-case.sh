#!/bin/bash
# Runs one VM test case: tests/vm/run-case.sh NAME (a file tests/vm/cases/NAME.case).
# Prepares what the case needs (cached), boots it once or more, checks the outcome and
# prints one line "PASS NAME ..." or "FAIL NAME: reason ..."; exit status 0 on PASS.
# The console log of a failed case stays in build/vm/logs/NAME.log (and NAME.bootN.log).
# See tests/vm/README.md for the case format.
# shellcheck source=tests/vm/stages.sh
. "$(dirname "$0")/stages.sh"
# shellcheck source=tests/vm/grub.sh
. "$(dirname "$0")/grub.sh"

# NAME, or a path to a case file elsewhere (the demo's lives in tests/vm/demo.case).
if [ -f "${1:?usage: run-case.sh NAME|FILE.case}" ]; then
    CASE_FILE=$(realpath "$1")
    NAME=$(basename "$1" .case)
else
    NAME=$1
    CASE_FILE=$VM_DIR/cases/$NAME.case
fi
[ -f "$CASE_FILE" ] || die "no case file $CASE_FILE"

# --- case defaults, overridden by the case file ---
DESCRIPTION=""
VARIANT=legacy     # deployment variant: legacy | composefs | verity | signed
REQUIRE_IMPL=""    # ours | upstream: the case only makes sense with that implementation
KARGS_ADD=""       # appended to the deployment's kernel arguments
KARGS_DROP=""      # regex; matching kernel arguments of the entry are removed
PREPARE_ROOT_CONF="" # if set: /etc/ostree/prepare-root.conf in the initrd (appended cpio)
INITRD_KEY=""      # signedkey variant: deploy | other: that public key goes into the initrd
                   # at /etc/ostree/initramfs-root-binding.key (appended cpio)
BOOTS=1            # boots in a row on the same disk (writes persist between them)
NEXT_ENTRY=0       # 1: boot N>1 takes the options the guest left in next-options (the new
                   # default entry after an update), the same kernel and initrd checked by
                   # the sha256 in next-linux-sha256 and next-initrd-sha256
EXPECT=boot        # boot: reaches the test service; refused: ends before the real root
REFUSE_MESSAGE=""  # refused: regex the console must show (the reason of the refusal)
tamper() { :; }          # called with DISK (raw copy, writable), SYSROOT (the deployed dir)
tamper_initrd() { :; }   # alters INITRD (a copy of the deployment's), before the appended files
guest_script() { :; }    # prints a script run in the guest (gets BOOT, OUT, IN)
check() { :; }           # host-side checks after boot $BOOT, with the helpers below
TAMPERS=0          # set to 1 by cases that define tamper(): the disk is copied, not overlaid
BOOT_VIA=direct    # direct: qemu -kernel/-initrd/-append from the entry | grub-efi | grub-bios:
                   # GRUB 2.14 reads the entries on the disk (tests/vm/grub.sh) | systemd-boot:
                   # systemd-boot reads the plugin's entries on a FAT ESP (tests/vm/sdboot.sh)
ENTRY_KARGS_1=""   # grub-*, systemd-boot: appended to the default entry's options only
GRUB_REBOOT=0      # grub-*, systemd-boot: 1 lets the guest reboot within one qemu run (rollbacks);
                   # an initrd failure then reboots (rd.emergency=reboot) instead of powering off

# --- helpers for tamper(): edit the raw disk image offline (debugfs, dd), no mount ---
# deployed PATH [N]: the path on the disk of PATH inside the deployment that boot entry N
# (default 1: the default entry) boots, found through its ostree= bootlink.
deployed() {
    local link dep
    link=$(bls_entry "$SYSROOT" "${2:-1}" | sed -n 's/^options=.*ostree=\([^ ]*\).*/\1/p')
    [ -n "$link" ] || die "no ostree= in boot entry ${2:-1} of $SYSROOT"
    dep=$(realpath -e "$SYSROOT$link") || die "bootlink $link does not resolve in $SYSROOT"
    printf '%s/%s\n' "${dep#"$SYSROOT"}" "${1#/}"
}
# object_of PATH: the repo object (path on the disk) that a deployed file is a hardlink of.
object_of() {
    local f obj
    f=$SYSROOT$(deployed "$1")
    obj=$(find "$SYSROOT/ostree/repo/objects" -samefile "$f" | head -n1)
    [ -n "$obj" ] || die "no repo object shares the inode of $f"
    printf '%s\n' "${obj#"$SYSROOT"}"
}
# disk_corrupt FSPATH [OFFSET]: overwrites bytes of a file's first data block in place,
# under the filesystem's feet (what an offline attacker does to the disk).
disk_corrupt() {
    local blk
    blk=$(debugfs -R "bmap $1 0" "$DISK" 2>/dev/null)
    if ! [[ $blk =~ ^[0-9]+$ ]] || [ "$blk" -eq 0 ]; then die "debugfs found no data block for $1"; fi
    printf 'TAMPERED BY THE OSTREE VM HARNESS' |
        dd of="$DISK" bs=1 seek=$((blk * 4096 + ${2:-0})) conv=notrunc status=none
}
# disk_link FSPATH_FROM FSPATH_TO: FSPATH_TO becomes another name of FSPATH_FROM's inode
# (fs-verity and all); the inode it named before is dropped.
disk_link() {
    disk_rm "$2"
    local ino
    ino=$(debugfs -R "stat $1" "$DISK" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
    [ -n "$ino" ] || die "debugfs: no inode for $1"
    debugfs -w -f - "$DISK" >/dev/null 2>&1 <<DEBUGFS || die "debugfs cannot link $2"
ln <$ino> $2
sif <$ino> links_count 2
DEBUGFS
}
disk_rm() { debugfs -w -R "rm $1" "$DISK" >/dev/null 2>&1 || die "debugfs cannot remove $1"; }
# disk_replace FSPATH HOSTFILE: a new inode with HOSTFILE's bytes (and no fs-verity).
disk_replace() {
    disk_rm "$1"
    debugfs -w -f - "$DISK" >/dev/null 2>&1 <<DEBUGFS || die "debugfs cannot write $1"
cd $(dirname "$1")
write $2 $(basename "$1")
DEBUGFS
    debugfs -R "stat $1" "$DISK" 2>/dev/null | grep -q 'Inode:' || die "debugfs wrote no $1"
}

# --- helper for tamper_initrd() ---
# initrd_upstream_prepare_root: appends to INITRD an archive that replaces
# /usr/lib/ostree/ostree-prepare-root with upstream's (Debian sid's ostree-boot, 2026.x,
# from the peer chroot of scripts/peer-sid.sh). Its loader and libraries come along in
# /usr/lib/ostree-sid (they are sid's, newer than the trixie initrd's), and the installed
# path becomes a two-line wrapper that runs it through that loader: our unit, generator
# and dracut module stay, only the program that sets up the root is upstream's.
initrd_upstream_prepare_root() {
    local peer w lib
    peer=${OSTREE_PEER_SID:-$REPO_ROOT/build/peer-sid}
    [ -f "$peer/.peer-sid-packages" ] || die "no peer chroot in $peer: run scripts/peer-sid.sh"
    w=$(mktemp -d)
    mkdir -p "$w/usr/lib/ostree-sid" "$w/usr/lib/ostree"
    cp "$peer/usr/lib/ostree/ostree-prepare-root" "$w/usr/lib/ostree-sid/"
    # The libraries as sid's own loader resolves them (ldd only reads, in the chroot).
    while read -r lib; do
        cp -L "$peer$lib" "$w/usr/lib/ostree-sid/"
    done < <(chroot "$peer" ldd /usr/lib/ostree/ostree-prepare-root |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }')
    [ -f "$w/usr/lib/ostree-sid/ld-linux-x86-64.so.2" ] || die "no loader among upstream prepare-root's libraries"
    printf '#!/bin/sh\nexec /usr/lib/ostree-sid/ld-linux-x86-64.so.2 --library-path /usr/lib/ostree-sid /usr/lib/ostree-sid/ostree-prepare-root "$@"\n' \
        >"$w/usr/lib/ostree/ostree-prepare-root"
    chmod 755 "$w/usr/lib/ostree/ostree-prepare-root"
    (cd "$w" && find . | cpio -o -H newc --quiet) >>"$INITRD"
    rm -rf "$w"
}

# shellcheck source=/dev/null
. "$CASE_FILE"

IMPL=$(vm_impl)
if [ -n "$REQUIRE_IMPL" ] && [ "$REQUIRE_IMPL" != "$IMPL" ]; then
    die "case $NAME needs OSTREE_VM_IMPL=$REQUIRE_IMPL (have $IMPL)"
fi

# --- helpers for check() ---
FAILURES=()
RES=""     # results dir of the current boot
CONSOLE="" # console log of the current boot
fail() { FAILURES+=("boot $BOOT: $*"); }
fact() { if [ -f "$RES/$1" ]; then cat "$RES/$1"; else echo "<missing>"; fi; }
expect_fact() {
    local v
    v=$(fact "$1")
    [ "$v" = "$2" ] || fail "$1 is '$v', expected '$2'"
}
expect_fact_match() {
    local v
    v=$(fact "$1")
    [[ $v =~ $2 ]] || fail "$1 is '$v', expected to match /$2/"
}
expect_console() { grep -aqE "$1" "$CONSOLE" || fail "console lacks /$1/"; }
expect_no_console() { ! grep -aqE "$1" "$CONSOLE" || fail "console shows /$1/"; }
# The standard facts of an ostree boot: the generator's /var, /run/ostree-booted, the
# booted deployment in `ostree admin status`, no failed units.
expect_ostree_boot() {
    expect_fact ostree-admin-status-rc 0
    grep -q '^\* ' "$RES/ostree-admin-status" 2>/dev/null || fail "ostree admin status shows no booted deployment"
    [ "$(fact ostree-booted)" != missing ] || fail "/run/ostree-booted missing"
    expect_fact active.var.mount active
    expect_fact failed-units ""
    expect_fact writable.var yes
    expect_fact writable.etc yes
    expect_fact canary "$CANARY_SHA256"
}
# sha256 of /usr/lib/ostree-vm-test/canary (stages.sh: install_guest_hooks).
CANARY_SHA256=d1f32d6ff498d110bbc022b1a44b5e56254959768bda6dea3d8758b38d3c8c05

# --- prepare (cached) ---
t_prep=$(now)
stage_kernel
stage_base
stage_tree "$IMPL"
stage_disk "$IMPL" "$VARIANT"
case $BOOT_VIA in grub-*) stage_grub ;; esac
D=$CACHE/disk-$IMPL-$VARIANT
W=$CACHE/run/$NAME
rm -rf "$W"
mkdir -p "$W"
SYSROOT=$D/sysroot

# GRUB boots edit the entries on the disk: they need a raw copy too.
if [ "$TAMPERS" = 1 ] || [[ $BOOT_VIA == grub-* ]]; then
    DISK=$W/root.ext4
    cp --sparse=always --reflink=auto "$D/root.ext4" "$DISK"
    tamper
    DISK_OPTS="file=$DISK,format=raw"
else
    # Writes go to an overlay that lives as long as the case: the base disk stays pristine
    # and a second boot sees what the first wrote.
    DISK=$W/root.qcow2
    qemu-img create -q -f qcow2 -b "$D/root.ext4" -F raw "$DISK"
    DISK_OPTS="file=$DISK,format=qcow2"
fi

INITRD=$W/initrd.img
cp "$D/initrd.img" "$INITRD"
tamper_initrd
# The kernel unpacks concatenated cpio archives in order and a later member wins: files
# appended here replace the initrd's own without rebuilding it.
if [ -n "$PREPARE_ROOT_CONF" ]; then
    mkdir -p "$W/overlay/etc/ostree"
    printf '%s\n' "$PREPARE_ROOT_CONF" >"$W/overlay/etc/ostree/prepare-root.conf"
fi
if [ -n "$INITRD_KEY" ]; then
    [ -f "$D/keys/$INITRD_KEY.pub" ] || die "INITRD_KEY=$INITRD_KEY: no $D/keys/$INITRD_KEY.pub (variant signedkey makes them)"
    mkdir -p "$W/overlay/etc/ostree"
    cp "$D/keys/$INITRD_KEY.pub" "$W/overlay/etc/ostree/initramfs-root-binding.key"
fi
if [ -d "$W/overlay" ]; then
    (cd "$W/overlay" && find . | cpio -o -H newc --quiet) >>"$INITRD"
fi

# make_append OPTIONS_FILE: the kernel command line of a boot, from an entry's options.
make_append() {
    local a
    OPTIONS=""
    read -ra entry_options <"$1"
    for a in "${entry_options[@]}"; do
        if [ -n "$KARGS_DROP" ] && [[ $a =~ $KARGS_DROP ]]; then continue; fi
        OPTIONS+="$a "
    done
    # rd.shell=0 rd.emergency=poweroff: an initrd failure powers the VM off instead of
    # waiting at an emergency shell until the timeout (GRUB cases reboot instead, so that
    # GRUB's counter sees the failed try).
    # systemd.crash_*: if PID 1 cannot exec the real root's init (EIO on a verity failure,
    # for one) it would freeze until the timeout; rebooting ends the VM (-no-reboot) at once.
    local emergency=poweroff
    [ "$GRUB_REBOOT" != 1 ] || emergency=reboot
    HARNESS_ARGS="rd.shell=0 rd.emergency=$emergency systemd.show_status=auto"
    HARNESS_ARGS+=" systemd.crash_reboot=1 systemd.crash_action=reboot"
    # A refusal happens in the initrd, whose journal is lost: show it on the console
    # instead, so that the reason (prepare-root's message) is in the log the case checks.
    if [ "$EXPECT" = refused ] || [ "$GRUB_REBOOT" = 1 ]; then
        HARNESS_ARGS+=" systemd.journald.forward_to_console=1"
    fi
    APPEND="$OPTIONS$KARGS_ADD $HARNESS_ARGS"
}
make_append "$D/options"
case $BOOT_VIA in
    grub-*)
        # What vm_boot adds to -append, here written into the entries GRUB reads.
        grub_prepare_disk "console=ttyS0 panic=-1 loglevel=4 $HARNESS_ARGS"
        ;;
    systemd-boot)
        # The case's copy of the ESP the plugin filled (the ESP pass), written by
        # systemd-boot's counting and by systemd-bless-boot.
        [ -f "$D/esp.img" ] || die "BOOT_VIA=systemd-boot needs an sdboot* variant (no $D/esp.img)"
        ESP=$W/esp.img
        cp --sparse=always --reflink=auto "$D/esp.img" "$ESP"
        # (console=ttyS0 and the ESP mount are in the deployments' own arguments.)
        sdboot_prepare_esp "$HARNESS_ARGS"
        ;;
esac
prep_s=$(since "$t_prep")

# --- boot(s) ---
# OVMF connects only the devices in qemu's boot order: GRUB finds the root disk if it is
# in that order too (after GRUB's own disk).
ROOT_BOOTINDEX=""
[[ $BOOT_VIA != grub-* ]] || ROOT_BOOTINDEX=,bootindex=1
# Disks at fixed PCI slots so that the root is always /dev/vda (the deployment's root=);
# the harness's input and output disks are found by serial in the guest.
LOG=$LOGS/$NAME.log
: >"$LOG"
TIMES=""
for BOOT in $(seq 1 "$BOOTS"); do
    RES=$W/results.$BOOT
    CONSOLE=$W/console.$BOOT.log
    mkdir -p "$RES" "$W/in.$BOOT"
    guest_script >"$W/in.$BOOT/guest.sh"
    printf '%s\n' "$BOOT" >"$W/in.$BOOT/boot"
    tar -cf "$W/in.$BOOT.tar" -C "$W/in.$BOOT" .
    truncate -s 16M "$W/out.$BOOT.img"
    if [ "$NEXT_ENTRY" = 1 ] && [ "$BOOT" -gt 1 ]; then
        prev=$W/results.$((BOOT - 1))
        if [ ! -s "$prev/next-options" ]; then
            fail "boot $((BOOT - 1)) left no next-options"
            break
        fi
        if [ "$(cat "$prev/next-linux-sha256" 2>/dev/null)" != "$(sha256sum <"$D/vmlinuz" | cut -d' ' -f1)" ] ||
            [ "$(cat "$prev/next-initrd-sha256" 2>/dev/null)" != "$(sha256sum <"$D/initrd.img" | cut -d' ' -f1)" ]; then
            fail "the new entry boots another kernel or initrd than the harness has"
            break
        fi
        make_append "$prev/next-options"
    fi
    t=$(now)
    rc=0
    # shellcheck disable=SC2054 # commas separate qemu's suboptions
    disks=(-drive "$DISK_OPTS,if=none,id=root"
        -device "virtio-blk-pci,drive=root,addr=0x4,serial=ostree-root$ROOT_BOOTINDEX"
        -drive "file=$W/in.$BOOT.tar,format=raw,if=none,id=in,readonly=on"
        -device virtio-blk-pci,drive=in,addr=0x5,serial=vmtest-in
        -drive "file=$W/out.$BOOT.img,format=raw,if=none,id=out"
        -device virtio-blk-pci,drive=out,addr=0x6,serial=vmtest-out)
    if [ "$BOOT_VIA" = direct ]; then
        vm_boot "$CONSOLE" "$D/vmlinuz" "$INITRD" "$APPEND" "${disks[@]}" || rc=$?
    elif [ "$BOOT_VIA" = systemd-boot ]; then
        vm_boot_sdboot "$CONSOLE" "${disks[@]}" || rc=$?
        sdboot_timeline "$CONSOLE" >"$W/timeline.$BOOT"
        sdboot_esp_listing "$ESP" >"$W/esp-entries.$BOOT"
    else
        vm_boot_grub "$BOOT_VIA" "$CONSOLE" "${disks[@]}" || rc=$?
        grub_timeline "$CONSOLE" >"$W/timeline.$BOOT"
    fi
    wall=$(since "$t")
    TIMES+="boot$BOOT=${wall}s "
    { echo "===== $NAME boot $BOOT (qemu rc=$rc, ${wall}s)"; cat "$CONSOLE"; } >>"$LOG"
    tar -xf "$W/out.$BOOT.img" -C "$RES" 2>/dev/null || true
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        fail "timed out after ${BOOT_TIMEOUT}s"
    fi
    case $EXPECT in
        boot)
            grep -aq 'OSTREE-VM-RESULT: done=1' "$CONSOLE" || fail "the test service did not finish"
            [ -f "$RES/root" ] || fail "no results on the output disk"
            ;;
        refused)
            ! grep -aq 'OSTREE-VM-RESULT: root=' "$CONSOLE" || fail "booted into the real root, expected a refusal"
            [ -z "$REFUSE_MESSAGE" ] || expect_console "$REFUSE_MESSAGE"
            grep -aqE 'reboot: Power down|Powering off' "$CONSOLE" || fail "the VM did not power off"
            ;;
        *) die "$CASE_FILE: EXPECT=$EXPECT (boot or refused)" ;;
    esac
    check
    boot_metrics "$RES" >"$W/metrics.$BOOT" 2>/dev/null || true
done

metrics=$(tr '\n' ' ' <"$W/metrics.$BOOTS" 2>/dev/null || true)
if [ ${#FAILURES[@]} -eq 0 ]; then
    printf 'PASS %s (impl=%s variant=%s via=%s prep=%ss %s%s)\n' "$NAME" "$IMPL" "$VARIANT" "$BOOT_VIA" "$prep_s" "$TIMES" "$metrics"
    for b in $(seq 1 "$BOOTS"); do
        [ ! -s "$W/timeline.$b" ] || { echo "  timeline of boot $b:"; sed 's/^/    /' "$W/timeline.$b"; }
    done
    rm -f "$LOG" "$W"/*.img "$W"/root.* "$W"/ovmf-vars.fd
    exit 0
fi
printf 'FAIL %s (impl=%s variant=%s via=%s %s) console: %s\n' "$NAME" "$IMPL" "$VARIANT" "$BOOT_VIA" "$TIMES" "$LOG"
printf '  - %s\n' "${FAILURES[@]}"
exit 1
