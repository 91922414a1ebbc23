# systemd-boot in the loop (BOOT_VIA=systemd-boot): OVMF runs systemd-boot from a real,
# writable FAT ESP whose loader/entries, kernels and initrds were written by our
# kernel-install plugin (the vfat mirror, `vfat-boot=`), and systemd-boot counts boots by
# renaming the entries there. Sourced by stages.sh.
# shellcheck shell=bash
#
# The host kernel of this machine kind has no vfat: nothing on the host can mount the ESP.
# So the deployments that fill it are made in the guest, by the guest's own kernel-install
# (systemd 257) and our plugin as installed in the test OS, on the ESP mounted by the
# guest's kernel at /efi: the "ESP pass" (sdboot_esp_pass), one boot of the disk's first
# deployment, cached with the disk. The host only makes the empty FAT (sfdisk, mkfs.vfat
# --offset) with \EFI\BOOT\BOOTX64.EFI (mtools) and, per case, edits the entries offline
# with mtools, as grub.sh does with debugfs on the ext4 root.

SDBOOT_DIR=$CACHE/sdboot
# The systemd-boot binary and the pieces the test OS needs to bless a boot
# (systemd-bless-boot and its generator: package systemd-boot; bootctl: systemd-boot-tools).
SDBOOT_PACKAGES="systemd-boot-efi systemd-boot systemd-boot-tools"
# Partition label of the ESP: the guest mounts it at /efi by this name.
SDBOOT_ESP_LABEL=ostree-esp
# mtools address of the FAT inside the GPT image (the partition starts at 1 MiB).
SDBOOT_FAT_OFFSET=1048576
# The second generation of sdboot2 is committed on its own ref: the ESP pass deploys the
# first ref (no tries) and then this one (with tries), both through kernel-install.
SDBOOT_REF2=$OSTREE_REF-gen2
# Boots the newest deployment of sdboot2 gets (/etc/kernel/tries of its deploy).
SDBOOT_TRIES=2
# Where the guest mounts the ESP; systemd-bless-boot looks there (and at /boot, /boot/efi).
SDBOOT_MOUNT_ARG="systemd.mount-extra=/dev/disk/by-partlabel/$SDBOOT_ESP_LABEL:/efi:vfat:umask=0077"
# The kernel arguments of the deployments on the ESP: the harness's serial console and the
# ESP mount are the deployments' own (as an admin's kargs would be), so that entries the
# plugin rewrites later (sdboot-killed deploys in the guest) keep them; a case appends
# the rest to its copy of the entries.
SDBOOT_DEPLOY_KARGS="$BASE_KARGS console=ttyS0 panic=-1 loglevel=4 $SDBOOT_MOUNT_ARG"

# The trixie version of systemd the base tree has: systemd-boot's binaries link against
# its libsystemd-shared-257.so and must be the same build.
sdboot_version() {
    awk '/^Package: /{p=$2} p=="systemd" && /^Version: /{print $2; exit}' "$CACHE/base/var/lib/dpkg/status"
}

stage_sdboot() {
    local ver lock t p
    ver=$(sdboot_version)
    [ -n "$ver" ] || die "no systemd in $CACHE/base (stage_base first)"
    sdboot_ready() { stamp_ok sdboot "$ver" && [ -f "$SDBOOT_DIR/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ]; }
    sdboot_ready && return 0
    exec {lock}>"$CACHE/sdboot.lock"
    flock "$lock"
    if sdboot_ready; then
        exec {lock}>&-
        return 0
    fi
    t=$(now)
    apt_trixie_update
    rm -rf "$SDBOOT_DIR.tmp"
    mkdir -p "$SDBOOT_DIR.tmp/deb"
    for p in $SDBOOT_PACKAGES; do
        (cd "$SDBOOT_DIR.tmp/deb" && apt_trixie download "$p=$ver" >&2) || die "cannot download $p $ver from $SUITE"
    done
    for p in "$SDBOOT_DIR.tmp"/deb/*.deb; do dpkg -x "$p" "$SDBOOT_DIR.tmp/root"; done
    rm -rf "$SDBOOT_DIR"
    mv "$SDBOOT_DIR.tmp" "$SDBOOT_DIR"
    stamp_set sdboot "$ver"
    exec {lock}>&-
    log "sdboot: systemd-boot $ver ready in $(since "$t") s"
}

# install_sdboot_tools ROOT: what a test OS needs for boot assessment with systemd-boot:
# systemd-bless-boot, its generator and unit, bootctl. Unpacked, not installed with dpkg:
# the package's postinst and its /etc/kernel hooks (bootctl install/update on an ESP, a
# kernel-install on every kernel update) have nothing to do here. /efi is the mount point.
install_sdboot_tools() {
    local root=$1
    stage_sdboot
    cp -a "$SDBOOT_DIR/root/usr/." "$root/usr/"
    mkdir -p "$root/efi"
}

# sdboot_mkesp IMAGE: an empty ESP: GPT, one EFI System partition labelled
# $SDBOOT_ESP_LABEL, FAT32, \EFI\BOOT\BOOTX64.EFI = systemd-bootx64.efi. Nothing else:
# loader/ and the entries are the plugin's.
sdboot_mkesp() {
    local img=$1 m SDBOOT_IMG=$1
    m=$SDBOOT_DIR/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi
    [ -f "$m" ] || die "no $m (stage_sdboot)"
    rm -f "$img"
    truncate -s 256M "$img"
    printf 'label: gpt\nstart=2048, size=250MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="%s"\n' \
        "$SDBOOT_ESP_LABEL" | sfdisk -q "$img" >&2 || die "sfdisk cannot partition $img"
    # 250 MiB in 1 KiB blocks, at sector 2048.
    mkfs.vfat -F 32 -n OSTREE-ESP --offset=2048 "$img" $((250 * 1024)) >&2 || die "mkfs.vfat failed on $img"
    sdboot_mtools mmd ::/EFI ::/EFI/BOOT
    sdboot_mtools mcopy "$m" ::/EFI/BOOT/BOOTX64.EFI
}

# sdboot_mtools CMD ARGS...: an mtools command on the FAT inside the image $SDBOOT_IMG.
sdboot_mtools() {
    local cmd=$1
    shift
    MTOOLS_SKIP_CHECK=1 "$cmd" -i "$SDBOOT_IMG@@$SDBOOT_FAT_OFFSET" "$@"
}

# sdboot_pass_script KARGS: the ESP pass's guest script. Mounts the ESP at /efi and runs
# kernel-install add twice, as an admin would, with only our plugin
# (KERNEL_INSTALL_PLUGINS: dracut's would rebuild the initrd, minutes under TCG) and its
# configuration in private roots: $OSTREE_REF without tries, then $SDBOOT_REF2 with
# /etc/kernel/tries = SDBOOT_TRIES (KERNEL_INSTALL_CONF_ROOT). Then fs-verity on the new
# images (the host cannot) and the facts the cases need: the deployments, each entry's
# deployment directory, the ESP's content.
sdboot_pass_script() {
    printf 'ref1=%q\nref2=%q\nkargs=%q\ntries=%q\nstateroot=%q\n' "$OSTREE_REF" "$SDBOOT_REF2" "$1" "$SDBOOT_TRIES" "$STATEROOT"
    cat <<'GUEST'
set -x
exec 2>"$OUT/pass.log"
mount -t vfat -o umask=0077 /dev/disk/by-partlabel/ostree-esp /efi || { echo 10 >"$OUT/pass-rc"; exit 1; }
kv=$(ls /usr/lib/modules)
c=/run/sdboot-pass
mkdir -p "$c/kernel" "$c/ki/etc/ostree"
echo layout=ostree >"$c/kernel/install.conf"
deploy() {
    printf '[kernel-install]\nsysroot=/sysroot\nstateroot=%s\nref=%s\nkargs=%s\nkeep=2\nsigning=key\nsigning-key=%s\nvfat-boot=/efi\n' \
        "$stateroot" "$1" "$kargs" "$IN/deploy.secret" >"$c/ki/etc/ostree/kernel-install.conf"
    if [ -n "$2" ]; then echo "$2" >"$c/kernel/tries"; else rm -f "$c/kernel/tries"; fi
    KERNEL_INSTALL_CONF_ROOT=$c/kernel OSTREE_KERNEL_INSTALL_CONF_ROOT=$c/ki \
        KERNEL_INSTALL_PLUGINS=/usr/lib/kernel/install.d/88-ostree-composefs.install \
        MACHINE_ID=3e0484f3634a418b8e6a39e8828b03e3 \
        kernel-install --verbose add "$kv" "/usr/lib/modules/$kv/vmlinuz" "/usr/lib/modules/$kv/initramfs.img"
}
rc=0
deploy "$ref1" "" >"$OUT/deploy1.log" 2>&1 || rc=1
deploy "$ref2" "$tries" >"$OUT/deploy2.log" 2>&1 || rc=$((rc + 2))
# prepare-root in verity mode wants fs-verity on the images; the repo's objects got it
# in the host's verity pass.
for f in /sysroot/ostree/deploy/"$stateroot"/deploy/*/.ostree.cfs; do
    fsverity measure "$f" >/dev/null 2>&1 || fsverity enable "$f" || rc=$((rc + 4))
done
ostree admin status >"$OUT/pass-status" 2>&1
# One line per sysroot entry: version, then the deployment directory its ostree= names.
for e in /boot/loader/entries/*.conf; do
    v=$(sed -n 's/^version //p' "$e")
    l=$(sed -n 's/^options .*ostree=\([^ ]*\).*/\1/p' "$e")
    printf '%s %s\n' "$v" "$(realpath -e "/sysroot$l" | sed 's|^/sysroot||')"
done | sort -nr >"$OUT/pass-deployments"
(cd /efi && find . -type f | sort) >"$OUT/pass-esp"
for e in /efi/loader/entries/*.conf; do echo "== ${e##*/}"; cat "$e"; done >"$OUT/pass-esp-entries"
sync
umount /efi || rc=$((rc + 8))
echo "$rc" >"$OUT/pass-rc"
GUEST
}

# sdboot_esp_pass DISKDIR: makes DISKDIR/esp.img and fills it (and the root disk) by
# booting the disk's only deployment directly and running sdboot_pass_script there.
# Leaves DISKDIR/sdboot/ (the pass's facts: pass-deployments, pass-esp, ...).
sdboot_esp_pass() {
    local d=$1 w t rc=0
    t=$(now)
    stage_sdboot
    sdboot_mkesp "$d/esp.img"
    w=$(mktemp -d)
    mkdir -p "$w/in" "$w/res"
    cp "$d/keys/deploy.secret" "$w/in/deploy.secret"
    sdboot_pass_script "$SDBOOT_DEPLOY_KARGS" >"$w/in/guest.sh"
    echo 1 >"$w/in/boot"
    tar -cf "$w/in.tar" -C "$w/in" .
    truncate -s 16M "$w/out.img"
    # shellcheck disable=SC2054 # commas separate qemu's suboptions
    vm_boot "$d/esp-pass.log" "$d/vmlinuz" "$d/initrd.img" "$(cat "$d/options") rd.shell=0 rd.emergency=poweroff" \
        -drive "file=$d/root.ext4,format=raw,if=none,id=root" \
        -device virtio-blk-pci,drive=root,addr=0x4,serial=ostree-root \
        -drive "file=$w/in.tar,format=raw,if=none,id=in,readonly=on" \
        -device virtio-blk-pci,drive=in,addr=0x5,serial=vmtest-in \
        -drive "file=$w/out.img,format=raw,if=none,id=out" \
        -device virtio-blk-pci,drive=out,addr=0x6,serial=vmtest-out \
        -drive "file=$d/esp.img,format=raw,if=none,id=esp" \
        -device virtio-blk-pci,drive=esp,addr=0x7,serial=ostree-esp || rc=$?
    tar -xf "$w/out.img" -C "$w/res" 2>/dev/null || true
    rm -rf "$d/sdboot"
    mv "$w/res" "$d/sdboot"
    rm -rf "$w"
    [ "$(cat "$d/sdboot/pass-rc" 2>/dev/null)" = 0 ] ||
        die "the ESP pass failed (qemu rc=$rc, pass-rc=$(cat "$d/sdboot/pass-rc" 2>/dev/null)): see $d/esp-pass.log and $d/sdboot/"
    SDBOOT_IMG=$d/esp.img sdboot_entry_files >"$d/sdboot/pass-esp-entries.names"
    log "sdboot: ESP filled by kernel-install in the guest in $(since "$t") s: $(grep -c '\.conf$' "$d/sdboot/pass-esp") entries"
}

# What the ESP pass adds to the cache key of an sdboot* disk (not the per-case helpers).
sdboot_disk_key() {
    hash_inputs "$(declare -f sdboot_esp_pass sdboot_pass_script sdboot_mkesp sdboot_mtools sdboot_entry_files)" \
        "$SDBOOT_ESP_LABEL $SDBOOT_FAT_OFFSET $SDBOOT_REF2 $SDBOOT_TRIES $SDBOOT_DEPLOY_KARGS" "$(sdboot_version)"
}

# --- per case (run-case.sh) ---

# sdboot_entry_files: the plugin's entries on $SDBOOT_IMG, default first (systemd-boot's
# order without sort-key: by id, newest ostree-N first; entries with no try left last).
sdboot_entry_files() {
    sdboot_mtools mdir -b ::/loader/entries | sed 's|.*/||' | grep '^ostree-.*\.conf$' |
        awk '{ n = $0; sub(/^ostree-/, "", n); sub(/[+.].*/, "", n); zero = ($0 ~ /\+0(-[0-9]+)?\.conf$/)
               printf "%d %010d %s\n", zero, 1000000000 - n, $0 }' | sort | cut -d' ' -f3
}

# sdboot_prepare_esp ESP ARGS: the case's copy of the ESP: ARGS (+ KARGS_ADD, minus
# KARGS_DROP) appended to every entry's options, ENTRY_KARGS_1 to the default entry's
# (what `ostree admin kargs edit-in-place` would do), and a changed initrd (the case's
# appended prepare-root.conf) written over the initrd files the entries name.
sdboot_prepare_esp() {
    local args=$1 f n=0 tmp a opts
    SDBOOT_IMG=$ESP
    tmp=$(mktemp -d)
    local initrds=()
    while read -r f; do
        n=$((n + 1))
        sdboot_mtools mtype "::/loader/entries/$f" | tr -d '\r' >"$tmp/entry"
        opts=""
        # shellcheck disable=SC2013 # the options line is split into words on purpose
        for a in $(sed -n 's/^options //p' "$tmp/entry"); do
            if [ -n "$KARGS_DROP" ] && [[ $a =~ $KARGS_DROP ]]; then continue; fi
            opts+="$a "
        done
        opts+="$KARGS_ADD $args"
        [ "$n" != 1 ] || opts+=" $ENTRY_KARGS_1"
        awk -v o="$opts" '$1 == "options" { print "options " o; next } { print }' "$tmp/entry" >"$tmp/entry.new"
        sdboot_mtools mcopy -o "$tmp/entry.new" "::/loader/entries/$f"
        initrds+=("$(sed -n 's/^initrd //p' "$tmp/entry")")
    done < <(sdboot_entry_files)
    [ "$n" -gt 0 ] || die "no ostree-*.conf entry on the ESP $ESP"
    if ! cmp -s "$INITRD" "$D/initrd.img"; then
        local i
        for i in $(printf '%s\n' "${initrds[@]}" | sort -u); do
            sdboot_mtools mcopy -o "$INITRD" "::$i"
        done
    fi
    rm -rf "$tmp"
}

# sdboot_esp_listing ESP: the entries on an ESP image, one name a line, sorted.
sdboot_esp_listing() {
    SDBOOT_IMG=$1 sdboot_mtools mdir -b ::/loader/entries | sed 's|.*/||' | grep '\.conf$' | sort
}

# sdboot_deployed PATH [N]: the path on the root disk of PATH in the deployment of the
# sysroot entry with the Nth highest version (1: the newest), as the ESP pass recorded.
sdboot_deployed() {
    local dep
    dep=$(sed -n "${2:-1}p" "$D/sdboot/pass-deployments" | cut -d' ' -f2)
    [ -n "$dep" ] || die "no deployment ${2:-1} in $D/sdboot/pass-deployments"
    printf '%s/%s\n' "$dep" "${1#/}"
}

# vm_boot_sdboot LOG [qemu args...]: OVMF with the case's VARS copy ($W/ovmf-vars.fd,
# kept across the case's boots: LoaderBootCountPath and friends live there), the case's
# ESP writable at bootindex 0. Console timestamped; GRUB_REBOOT=1 lets the guest reboot.
vm_boot_sdboot() {
    local logf=$1 rc=0
    shift
    [ -f "$W/ovmf-vars.fd" ] || cp "$OVMF_VARS" "$W/ovmf-vars.fd"
    local reboot=-no-reboot
    [ "${GRUB_REBOOT:-0}" != 1 ] || reboot=
    # shellcheck disable=SC2046,SC2086,SC2054 # accelerator words; $reboot may be empty; qemu commas
    python3 -c "$GRUB_CONSOLE_PY" "$logf" timeout --kill-after=10 "$BOOT_TIMEOUT" qemu-system-x86_64 $(qemu_accel) \
        -m "${OSTREE_VM_MEM:-1536}" -smp "${OSTREE_VM_SMP:-2}" \
        -nodefaults -nographic $reboot -serial stdio -monitor none \
        -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" \
        -drive "if=pflash,format=raw,file=$W/ovmf-vars.fd" \
        -drive "file=$ESP,format=raw,if=none,id=esp" \
        -device virtio-blk-pci,drive=esp,addr=0x7,serial=ostree-esp,bootindex=0 \
        "$@" </dev/null 2>"$logf.qemu-stderr" || rc=$?
    return "$rc"
}

# sdboot_guest_script: guest-side facts of a systemd-boot boot, for a case's
# guest_script(): the command line, which generation booted, the ESP's entries after the
# boot (blessed or not), the loader's EFI variables, bootctl's view, the blessing.
sdboot_guest_script() {
    cat <<'GUEST'
cat /proc/cmdline >"$OUT/cmdline"
if [ -d /sys/firmware/efi ]; then echo yes; else echo no; fi >"$OUT/efi"
cat /usr/lib/ostree-vm-test/generation 2>/dev/null >"$OUT/generation" || echo 1 >"$OUT/generation"
echo "OSTREE-VM-RESULT: generation=$(cat "$OUT/generation")" >/dev/console
efivar() { # NAME: a systemd-boot variable (UTF-16 string after 4 bytes of attributes)
    f=/sys/firmware/efi/efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
    # efivarfs files cannot seek: read them whole.
    [ -f "$f" ] && cat "$f" | tail -c +5 | iconv -f UTF-16LE -t UTF-8 2>/dev/null | tr -d '\0'
}
efivar LoaderBootCountPath >"$OUT/boot-count-path"
efivar LoaderEntrySelected >"$OUT/entry-selected"
efivar LoaderInfo >"$OUT/loader-info"
# systemd-bless-boot runs after boot-complete.target: wait for it to settle.
for _ in $(seq 1 100); do
    s=$(systemctl show -p ActiveState --value systemd-bless-boot.service)
    [ "$s" = activating ] || break
    sleep 0.2
done
systemctl is-active systemd-bless-boot.service >"$OUT/bless" 2>&1 || true
systemctl is-active boot-complete.target >"$OUT/boot-complete" 2>&1 || true
journalctl -b -o cat -u systemd-bless-boot.service >"$OUT/bless.log" 2>&1 || true
/usr/lib/systemd/systemd-bless-boot status >"$OUT/bless-status" 2>&1 || true
findmnt -no SOURCE,FSTYPE /efi >"$OUT/efi-mount" 2>&1 || true
ls /efi/loader/entries >"$OUT/esp-entries" 2>&1 || true
echo "OSTREE-VM-RESULT: esp-entries=$(tr '\n' ' ' <"$OUT/esp-entries")" >/dev/console
bootctl status --no-pager >"$OUT/bootctl-status" 2>&1 || true
bootctl list --no-pager >"$OUT/bootctl-list" 2>&1 || true
GUEST
}

# sdboot_timeline LOG: the moments of a systemd-boot run: the firmware starts the loader
# (each try), the kernel starts (each try), refusals, health failures, blessing, reboots.
# (systemd-boot's menu and the EFI stub share one console line with the firmware's last
# message, so the line stamps cannot time them.)
sdboot_timeline() {
    tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;]*m//g' | awk '
        match($0, /^\[ *[0-9.]+\] /) {
            t = substr($0, 2, RLENGTH - 3) + 0; rest = substr($0, RLENGTH + 1)
            # The first kernel message after the loader started tells when the kernel
            # did: its printk time is the uptime.
            if (loader && match(rest, /^\[ *[0-9]+\.[0-9]+\] /)) {
                k = substr(rest, 2, RLENGTH - 3) + 0
                printf "%.2fs kernel started (its first console message at uptime %.2fs)\n", t - k, k
                loader = 0
            }
            if (rest ~ /BdsDxe: starting/) loader = 1
            if (match(rest, /BdsDxe: starting[^\r]*|ostree-prepare-root: error|Reached target.*Boot Completion|FAILED\] Failed to start ostree-vm-health[^\r]*|Finished systemd-bless-boot[^\r]*|OSTREE-VM-RESULT: (done=1|generation=[0-9]+|esp-entries=.*)|reboot: (Restarting system|Power down)/))
                printf "%.2fs %s\n", t, substr(rest, RSTART, RLENGTH)
        }' | sort -n -s
}

# sdboot_pass_entries NAME: the ESP pass's entry names with the first (the update on
# trial) renamed to NAME, sorted as `ls` in the guest lists them.
sdboot_pass_entries() {
    { printf '%s\n' "$1"; sed 1d "$D/sdboot/pass-esp-entries.names"; } | LC_ALL=C sort
}

# expect_sdboot_boot: systemd-boot booted us (EFI, its LoaderInfo), /efi is the ESP.
expect_sdboot_boot() {
    expect_fact efi yes
    expect_fact_match loader-info '^systemd-boot '
    expect_fact_match efi-mount 'vfat'
}
