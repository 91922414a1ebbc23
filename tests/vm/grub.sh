# GRUB 2.14 in the loop: the VM boots through a real bootloader that reads our
# /boot/loader/entries (blscfg), instead of qemu -kernel. Sourced by run-case.sh.
# shellcheck shell=bash
#
#   grub-efi   OVMF (Debian's ovmf) runs \EFI\BOOT\BOOTX64.EFI from a small FAT disk
#              (qemu's vvfat of $CACHE/grub/esp); GRUB finds the root disk by its label.
#   grub-bios  SeaBIOS boots a raw disk: GRUB's boot.img in sector 0, core.img from
#              sector 1 (the place grub-install embeds it; boot.img's defaults point there).
# Both images are made by sid's grub-mkimage (Debian's older GRUBs have no blscfg) in
# the peer chroot (scripts/peer-sid.sh), with every module built in and an embedded
# config that only sets $root and $prefix; GRUB then loads /boot/grub/grub.cfg from the
# root disk, which is units/grub/grub.cfg as shipped. The kernel, initrd and command line
# come from the entries on the disk. What the harness needs on that command line (serial
# console, rd.emergency=...) is appended to the entries' options on the case's disk copy,
# as `ostree admin kargs edit-in-place` would.

PEER_SID=${OSTREE_PEER_SID:-$REPO_ROOT/build/peer-sid}
GRUB_DIR=$CACHE/grub
OVMF_CODE=${OSTREE_VM_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OSTREE_VM_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
# blsuki: blscfg; loadenv: the boot counter; the rest reads ext4 and boots Linux.
GRUB_MODULES="normal configfile linux blsuki ext2 part_gpt part_msdos fat loadenv test echo
 search search_label search_fs_uuid serial terminal sleep reboot halt cat ls"

grub_key() {
    hash_inputs "$VM_DIR/grub.sh" "$(cat "$PEER_SID/.peer-sid-packages" 2>/dev/null)" "$GRUB_MODULES" \
        "$(declare -f stage_grub grub_early_cfg)"
}

# grub_early_cfg PLATFORM: the embedded config. It runs in GRUB's rescue parser (no if):
# find the root disk by its label, point $prefix at its /boot/grub; normal mode then
# reads $prefix/grub.cfg. BIOS GRUB writes to the VGA console, which -nographic drops:
# the serial terminal makes it visible in the log.
grub_early_cfg() {
    if [ "$1" = i386-pc ]; then
        printf 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n'
    fi
    # shellcheck disable=SC2016 # $root is GRUB's
    printf 'search --no-floppy --label ostree-root --set=root\nset prefix=($root)/boot/grub\n'
}

stage_grub() {
    local key t w lock
    key=$(grub_key)
    grub_ready() { stamp_ok grub "$key" && [ -f "$GRUB_DIR/esp/EFI/BOOT/BOOTX64.EFI" ] && [ -f "$GRUB_DIR/bios.img" ]; }
    grub_ready && return 0
    # Cases running side by side may both get here: one builds, the other waits.
    exec {lock}>"$CACHE/grub.lock"
    flock "$lock"
    if grub_ready; then
        exec {lock}>&-
        return 0
    fi
    t=$(now)
    [ -f "$PEER_SID/.peer-sid-packages" ] || bash "$REPO_ROOT/scripts/peer-sid.sh" "$PEER_SID" >&2
    [ -f "$OVMF_CODE" ] || die "no $OVMF_CODE: install Debian's ovmf (scripts/setup.sh)"
    rm -rf "$GRUB_DIR.tmp"
    mkdir -p "$GRUB_DIR.tmp/esp/EFI/BOOT"
    # The work dir lives inside the chroot: grub-mkimage runs there.
    w=$(mktemp -d "$PEER_SID/tmp/ostree-vm-grub.XXXXXX")
    local p
    for p in x86_64-efi i386-pc; do grub_early_cfg "$p" >"$w/early-$p.cfg"; done
    # shellcheck disable=SC2086 # GRUB_MODULES is a word list
    unshare --mount --propagation private chroot "$PEER_SID" grub-mkimage -O x86_64-efi \
        -p /boot/grub -c "/tmp/${w##*/}/early-x86_64-efi.cfg" -o "/tmp/${w##*/}/BOOTX64.EFI" \
        $GRUB_MODULES >&2 || { rm -rf "$w"; die "grub-mkimage x86_64-efi failed"; }
    # shellcheck disable=SC2086
    unshare --mount --propagation private chroot "$PEER_SID" grub-mkimage -O i386-pc \
        -p /boot/grub -c "/tmp/${w##*/}/early-i386-pc.cfg" -o "/tmp/${w##*/}/core.img" \
        biosdisk $GRUB_MODULES >&2 || { rm -rf "$w"; die "grub-mkimage i386-pc failed"; }
    # boot.img loads core.img's first sector from LBA 1 (its default kernel_sector) and
    # that sector loads the rest from LBA 2 on (diskboot's default blocklist, whose length
    # grub-mkimage filled in): the layout grub-install makes in the MBR gap.
    { cp "$w/BOOTX64.EFI" "$GRUB_DIR.tmp/esp/EFI/BOOT/BOOTX64.EFI" &&
        cat "$PEER_SID/usr/lib/grub/i386-pc/boot.img" "$w/core.img" >"$GRUB_DIR.tmp/bios.img" &&
        truncate -s 4M "$GRUB_DIR.tmp/bios.img"; } || { rm -rf "$w"; die "assembling the GRUB images failed"; }
    rm -rf "$w" "$GRUB_DIR"
    mv "$GRUB_DIR.tmp" "$GRUB_DIR"
    stamp_set grub "$key"
    exec {lock}>&-
    log "grub: BOOTX64.EFI $(stat -c %s "$GRUB_DIR/esp/EFI/BOOT/BOOTX64.EFI") bytes, bios.img ready in $(since "$t") s"
}

# grub_entry_files: the BLS entries of $SYSROOT as paths inside the disk (the loader link
# resolved: debugfs does not follow it), default entry first (GRUB's order: file name,
# newest version first).
grub_entry_files() {
    local dir
    dir=$(realpath -e "$SYSROOT/boot/loader/entries") || die "no boot/loader/entries in $SYSROOT"
    find "$dir" -maxdepth 1 -name '*.conf' -printf '%f\n' | sort -rV | while read -r f; do
        printf '%s/%s\n' "${dir#"$SYSROOT"}" "$f"
    done
}

# grub_prepare_disk ARGS: writes units/grub/grub.cfg as /boot/grub/grub.cfg onto $DISK
# (raw, offline, debugfs) and appends ARGS to the options of every entry, and
# ENTRY_KARGS_1 to the default entry's. The case's initrd changes (tamper_initrd, appended
# prepare-root.conf or key) go into the initrd file the entries name.
grub_prepare_disk() {
    local args=$1 f n=0 tmp opts
    tmp=$(mktemp -d)
    debugfs -w -R "mkdir /boot/grub" "$DISK" >/dev/null 2>&1 || true
    cp "$REPO_ROOT/units/grub/grub.cfg" "$tmp/grub.cfg"
    if debugfs -R "stat /boot/grub/grub.cfg" "$DISK" 2>/dev/null | grep -q Inode:; then disk_rm /boot/grub/grub.cfg; fi
    debugfs -w -f - "$DISK" >/dev/null 2>&1 <<DEBUGFS || die "debugfs cannot write /boot/grub/grub.cfg"
cd /boot/grub
write $tmp/grub.cfg grub.cfg
DEBUGFS
    local initrds=()
    while read -r f; do
        n=$((n + 1))
        local a words=()
        # shellcheck disable=SC2013 # the options line is split into words on purpose
        for a in $(sed -n 's/^options //p' "$SYSROOT$f"); do
            if [ -n "$KARGS_DROP" ] && [[ $a =~ $KARGS_DROP ]]; then continue; fi
            words+=("$a")
        done
        # shellcheck disable=SC2206 # these hold several words each
        words+=($KARGS_ADD $args)
        # shellcheck disable=SC2206
        [ "$n" != 1 ] || words+=($ENTRY_KARGS_1)
        # Single spaces, none at the end: GRUB 2.14 i386-pc garbled the entry's next
        # command ("can't find command `@?_initrd'") when the options line ended in a
        # space, as ours never does.
        opts="${words[*]}"
        awk -v o="$opts" '$1 == "options" { print "options " o; next } { print }' "$SYSROOT$f" >"$tmp/entry"
        disk_replace "$f" "$tmp/entry"
        initrds+=("$(sed -n 's/^initrd //p' "$SYSROOT$f")")
    done < <(grub_entry_files)
    [ "$n" -gt 0 ] || die "no BLS entry in $SYSROOT"
    if ! cmp -s "$INITRD" "$D/initrd.img"; then
        local i
        for i in $(printf '%s\n' "${initrds[@]}" | sort -u); do
            # Entry paths are relative to the boot partition; here /boot is a directory.
            if [ -f "$SYSROOT$i" ]; then disk_replace "$i" "$INITRD"; else disk_replace "/boot$i" "$INITRD"; fi
        done
    fi
    rm -rf "$tmp"
}

# Runs qemu (argv[2:]) with its serial console on stdout and writes that console to
# argv[1], each line prefixed with the seconds since the start. A GRUB prompt means GRUB
# found nothing to boot and waits for a human: qemu is stopped at once (status 125)
# instead of at the timeout.
GRUB_CONSOLE_PY='
import os, signal, subprocess, sys, time
out = open(sys.argv[1], "wb")
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, start_new_session=True)
t0 = time.time()
bol, tail, stuck = True, b"", False
while True:
    chunk = os.read(p.stdout.fileno(), 4096)
    if not chunk:
        break
    for line in chunk.splitlines(keepends=True):
        if bol:
            out.write(b"[%7.2f] " % (time.time() - t0))
        out.write(line)
        bol = line.endswith(b"\n")
    out.flush()
    tail = (tail + chunk)[-64:]
    # An error in a menu entry (no kernel, a bad path) leaves GRUB waiting for a key
    # that never comes: as good as its prompt, and not worth the whole timeout.
    if b"grub> " in tail or b"grub rescue> " in tail or b"Press any key to continue" in tail:
        stuck = True
        out.write(b"\n[harness] GRUB stopped at its prompt or an error: qemu killed\n")
        os.killpg(p.pid, signal.SIGKILL)
        break
rc = p.wait()
sys.exit(125 if stuck else rc)
'

# vm_boot_grub MODE LOG [qemu args...]: boots through GRUB (MODE grub-efi or grub-bios).
# The console is timestamped (seconds since qemu started) for the timelines; qemu stops
# at once when GRUB falls to its prompt or waits on an error. With
# GRUB_REBOOT=1 the guest may reboot (no -no-reboot): a rollback happens in one run.
vm_boot_grub() {
    local mode=$1 logf=$2 rc=0
    shift 2
    local -a fw=()
    case $mode in
        grub-efi)
            cp "$OVMF_VARS" "$logf.vars"
            # shellcheck disable=SC2054 # commas separate qemu's suboptions
            fw=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
                -drive "if=pflash,format=raw,file=$logf.vars"
                -drive "file=fat:$GRUB_DIR/esp,format=raw,if=none,id=esp,readonly=on"
                -device virtio-blk-pci,drive=esp,addr=0x7,bootindex=0)
            ;;
        grub-bios)
            # shellcheck disable=SC2054
            fw=(-drive "file=$GRUB_DIR/bios.img,format=raw,if=none,id=gboot,readonly=on"
                -device virtio-blk-pci,drive=gboot,addr=0x7,bootindex=0)
            ;;
        *) die "BOOT_VIA=$mode: expected direct, grub-efi or grub-bios" ;;
    esac
    local reboot=-no-reboot
    [ "${GRUB_REBOOT:-0}" != 1 ] || reboot=
    # shellcheck disable=SC2046,SC2086 # the accelerator string is several words; $reboot may be empty
    python3 -c "$GRUB_CONSOLE_PY" "$logf" timeout --kill-after=10 "$BOOT_TIMEOUT" qemu-system-x86_64 $(qemu_accel) \
        -m "${OSTREE_VM_MEM:-1536}" -smp "${OSTREE_VM_SMP:-2}" \
        -nodefaults -nographic $reboot -serial stdio -monitor none \
        "${fw[@]}" "$@" </dev/null 2>"$logf.qemu-stderr" || rc=$?
    rm -f "$logf.vars"
    return "$rc"
}

# grub_timeline LOG: the moments that matter in a GRUB boot log, one line each: the
# firmware hands over, GRUB's decisions and the entry it boots, refusals, reboots, the
# collector's results.
grub_timeline() {
    tr -d '\r' <"$1" | awk '
        match($0, /^\[ *[0-9.]+\] /) {
            t = substr($0, 2, RLENGTH - 3) + 0; rest = substr($0, RLENGTH + 1)
            # The guest reports its uptime: the kernel started that long before.
            if (match(rest, /OSTREE-VM-RESULT: uptime=[0-9.]+/)) {
                split(substr(rest, RSTART, RLENGTH), u, "=")
                printf "%.2fs kernel started (from the guest uptime %ss)\n", t - u[2], u[2]
            }
            if (match(rest, /BdsDxe: starting|Booting from Hard Disk|ostree: [a-z][^:(]*|Booting `[^'"'"']*|ostree-prepare-root: error|Reached target.*Boot Completion|Failed to start ostree-vm-health|OSTREE-VM-RESULT: (done=1|generation=[0-9]+)|reboot: (Restarting system|Power down)/))
                printf "%.2fs %s\n", t, substr(rest, RSTART, RLENGTH)
        }' | sort -n -s
}

# grub_guest_script: guest-side facts of a GRUB boot, for a case's guest_script(): the
# command line GRUB passed (BOOT_IMAGE= is GRUB's), firmware kind, which generation of
# the OS booted (verity2's second commit has /usr/lib/ostree-vm-test/generation), the
# grubenv variables and what the success marker did.
grub_guest_script() {
    cat <<'GUEST'
cat /proc/cmdline >"$OUT/cmdline"
if [ -d /sys/firmware/efi ]; then echo yes; else echo no; fi >"$OUT/efi"
cat /usr/lib/ostree-vm-test/generation 2>/dev/null >"$OUT/generation" || echo 1 >"$OUT/generation"
echo "OSTREE-VM-RESULT: generation=$(cat "$OUT/generation")" >/dev/console
grep -av '^#' /boot/grub/grubenv >"$OUT/grubenv" 2>&1 || true
systemctl is-active ostree-grub-bless.service >"$OUT/bless" 2>&1 || true
systemctl is-active boot-complete.target >"$OUT/boot-complete" 2>&1 || true
journalctl -b -o cat -u ostree-grub-bless.service >"$OUT/bless.log" 2>&1 || true
GUEST
}

# expect_grub_boot MODE: GRUB booted the default entry (its ostree= on the command line,
# with GRUB's BOOT_IMAGE=) in the firmware MODE says.
expect_grub_boot() {
    local want_ostree
    want_ostree=$(bls_entry "$SYSROOT" "${2:-1}" | sed -n 's/^options=.*\(ostree=[^ ]*\).*/\1/p')
    expect_fact_match cmdline "^BOOT_IMAGE=[^ ]*/vmlinuz"
    expect_fact_match cmdline " $want_ostree( |$)"
    case $1 in
        grub-efi) expect_fact efi yes ;;
        grub-bios) expect_fact efi no ;;
    esac
}
