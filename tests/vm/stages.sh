# Build stages of the VM harness, each cached under $CACHE with a stamp that holds the hash
# of its inputs; a stage rebuilds when its stamp differs. Sourced by prepare.sh.
# shellcheck shell=bash
# shellcheck source=tests/vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Packages of the guest OS. ostree is there for `ostree admin status` in the guest.
BASE_PACKAGES=systemd,systemd-sysv,udev,dracut,kmod,e2fsprogs,fsverity,ostree,util-linux,tar

# --- host packages -------------------------------------------------------------------
stage_host() {
    bash "$REPO_ROOT/scripts/setup.sh" >&2
}

# --- kernel: newest linux-image-6.12.*-<flavour>-amd64 in trixie, extracted, depmod'ed ---
# Serialised between cases: two cases starting together would otherwise refresh and read
# the same apt lists at once (apt-cache then finds no packages) and race on kernel/kver.
stage_kernel() {
    mkdir -p "$CACHE"
    (
        flock 9
        stage_kernel_locked
    ) 9>"$CACHE/kernel.lock" || die "the kernel stage failed"
}
stage_kernel_locked() {
    local t dep kv deb dir
    t=$(now)
    apt_trixie_update
    # The flavour metapackage names the current point release; no version is hardcoded.
    dep=$(apt_trixie_cache depends "linux-image-$KFLAVOR-amd64" |
        awk '/Depends: linux-image-6\.12\.[^ ]*-'"$KFLAVOR"'-amd64/ { print $2; exit }')
    [ -n "$dep" ] || die "no linux-image-6.12.*-$KFLAVOR-amd64 in the $SUITE package lists"
    kv=${dep#linux-image-}
    dir=$CACHE/kernel/$kv
    if stamp_ok "kernel-$kv" "$kv" && [ -f "$dir/vmlinuz" ]; then
        printf '%s\n' "$kv" >"$CACHE/kernel/kver"
        return 0
    fi
    log "kernel: fetching $dep"
    rm -rf "$dir"
    mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt_trixie download "$dep/$SUITE" >&2)
    deb=$(find "$dir/deb" -name "*.deb" | head -n1)
    dpkg -x "$deb" "$dir/root"
    # The package ships no modules.dep (its postinst runs depmod).
    depmod -b "$dir/root/usr" "$kv"
    ln -f "$dir/root/boot/vmlinuz-$kv" "$dir/vmlinuz"
    printf '%s\n' "$kv" >"$CACHE/kernel/kver"
    stamp_set "kernel-$kv" "$kv"
    log "kernel: $kv ready in $(since "$t") s"
}
apt_trixie_cache() {
    apt-cache -oDir::Etc::SourceList=/dev/null \
        "-oDir::Etc::SourceParts=$APT_TRIXIE_DIR/parts" \
        "-oDir::State::Lists=$APT_TRIXIE_DIR/lists" \
        "-oDir::Cache=$APT_TRIXIE_DIR/cache" -oAPT::Architecture=amd64 "$@"
}

# --- base: debootstrap'ed trixie minbase with systemd, dracut and ostree ---------------
base_key() { hash_inputs "$BASE_PACKAGES" "$SUITE" "stages.sh:stage_base:v1"; }
stage_base() {
    local key t
    key=$(base_key)
    if stamp_ok base "$key" && [ -d "$CACHE/base/usr" ]; then return 0; fi
    t=$(now)
    log "base: debootstrap $SUITE ($BASE_PACKAGES)"
    rm -rf "$CACHE/base.tmp"
    mkdir -p "$CACHE/debs"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" --cache-dir="$CACHE/debs" \
        "$SUITE" "$CACHE/base.tmp" "$DEBIAN_MIRROR" >"$LOGS/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $LOGS/debootstrap.log"
    chroot "$CACHE/base.tmp" apt-get clean
    rm -rf "$CACHE/base"
    mv "$CACHE/base.tmp" "$CACHE/base"
    stamp_set base "$key"
    log "base: ready in $(since "$t") s"
}

# --- upstream: Debian's ostree-boot (the C prepare-root, generator, dracut module) -----
# Used only with OSTREE_VM_IMPL=upstream, as the reference to compare against.
stage_upstream() {
    local dir=$CACHE/upstream-ostree-boot deb
    if [ -d "$dir/root/usr" ]; then return 0; fi
    apt_trixie_update
    rm -rf "$dir"
    mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt_trixie download "ostree-boot/$SUITE" >&2)
    deb=$(find "$dir/deb" -name "*.deb" | head -n1)
    dpkg -x "$deb" "$dir/root"
}

# --- which boot implementation goes into the test OS -----------------------------------
# ours: this repo's binaries, units and dracut module (`make install DESTDIR=`).
# upstream: Debian's ostree-boot (C), the reference; auto: ours once its dracut module exists.
vm_impl() {
    local impl=${OSTREE_VM_IMPL:-auto}
    if [ "$impl" = auto ]; then
        if [ -d "$REPO_ROOT/units/dracut" ] && [ -x "$RELEASE_DIR/ostree-prepare-root" ]; then
            impl=ours
        else
            impl=upstream
        fi
    fi
    case $impl in ours | upstream) echo "$impl" ;; *) die "OSTREE_VM_IMPL=$impl: expected ours, upstream or auto" ;; esac
}

# What our install puts into the tree: the key of the tree stage for impl=ours.
ours_inputs() {
    local b
    for b in ostree-prepare-root ostree-system-generator ostree-remount ostree-composefs; do
        [ -f "$RELEASE_DIR/$b" ] && echo "$RELEASE_DIR/$b"
    done
    # units/grub is left out: the guest never reads its copy of grub.cfg (the GRUB cases
    # write units/grub/grub.cfg onto each boot's disk), so editing it rebuilds no tree.
    [ -d "$REPO_ROOT/units" ] && find "$REPO_ROOT/units" -mindepth 1 -maxdepth 1 ! -name grub | LC_ALL=C sort
    echo "$REPO_ROOT/Makefile"
}

install_ours() {
    local root=$1
    [ -x "$RELEASE_DIR/ostree-prepare-root" ] || die "no $RELEASE_DIR/ostree-prepare-root: run make release"
    if make -s -C "$REPO_ROOT" -n install >/dev/null 2>&1; then
        # The same install a distribution package would do.
        make -s -C "$REPO_ROOT" install DESTDIR="$root" PREFIX=/usr CARGO_TARGET_DIR="$CARGO_TARGET_DIR" >&2
        # What a distribution package's postinst does (dh_installsystemd): enable the units
        # that have an [Install] section.
        local u
        for u in "$REPO_ROOT"/units/*.service; do
            if grep -q '^\[Install\]' "$u"; then
                systemctl --root="$root" enable "${u##*/}" >&2
            fi
        done
    else
        # Until the Makefile has an install target: the upstream paths, by hand.
        install -Dm755 "$RELEASE_DIR/ostree-prepare-root" "$root/usr/lib/ostree/ostree-prepare-root"
        install -Dm755 "$RELEASE_DIR/ostree-system-generator" \
            "$root/usr/lib/systemd/system-generators/ostree-system-generator"
        [ -f "$RELEASE_DIR/ostree-remount" ] &&
            install -Dm755 "$RELEASE_DIR/ostree-remount" "$root/usr/lib/ostree/ostree-remount"
        [ -f "$RELEASE_DIR/ostree-composefs" ] &&
            install -Dm755 "$RELEASE_DIR/ostree-composefs" "$root/usr/bin/ostree-composefs"
        local u
        for u in "$REPO_ROOT"/units/*.service "$REPO_ROOT"/units/*.target; do
            [ -f "$u" ] && install -Dm644 "$u" "$root/usr/lib/systemd/system/${u##*/}"
        done
        if [ -d "$REPO_ROOT/units/dracut" ]; then
            mkdir -p "$root/usr/lib/dracut/modules.d"
            cp -a "$REPO_ROOT/units/dracut/." "$root/usr/lib/dracut/modules.d/"
        fi
    fi
}

install_upstream() {
    local root=$1
    stage_upstream
    cp -a "$CACHE/upstream-ostree-boot/root/." "$root/"
}

# Test hooks in the guest OS: the results collector and its unit, enabled from /usr so that
# it is part of the (verified) commit and survives the /etc merge untouched.
install_guest_hooks() {
    local root=$1
    install -Dm755 "$VM_DIR/guest/vm-guest.sh" "$root/usr/lib/ostree-vm-test/vm-guest.sh"
    install -Dm644 "$VM_DIR/guest/ostree-vm-test.service" "$root/usr/lib/systemd/system/ostree-vm-test.service"
    mkdir -p "$root/usr/lib/systemd/system/multi-user.target.wants"
    ln -sf ../ostree-vm-test.service "$root/usr/lib/systemd/system/multi-user.target.wants/ostree-vm-test.service"
    install -Dm644 "$VM_DIR/guest/ostree-vm-health.service" "$root/usr/lib/systemd/system/ostree-vm-health.service"
    mkdir -p "$root/usr/lib/systemd/system/boot-complete.target.requires"
    ln -sf ../ostree-vm-health.service "$root/usr/lib/systemd/system/boot-complete.target.requires/ostree-vm-health.service"
    # A file the guest reads back: tamper cases corrupt its object and expect EIO.
    seq -f 'ostree-vm-canary %05g' 1 4096 >"$root/usr/lib/ostree-vm-test/canary"
    echo ostree-vm >"$root/etc/hostname"
    # Empty machine-id: systemd makes a transient one on each boot (first-boot semantics off).
    : >"$root/etc/machine-id"
    printf '# managed by the ostree VM harness\n' >"$root/etc/fstab"
    # Units that cost seconds under TCG and have nothing to do with the boot under test:
    # gettys, first-boot catalog/ldconfig updates, maintenance timers, and dracut's
    # shutdown hook (it would unpack the initrd again when powering off).
    local u
    for u in serial-getty@ttyS0.service getty@tty1.service getty-static.service \
        ldconfig.service systemd-journal-catalog-update.service systemd-update-done.service \
        dracut-shutdown.service e2scrub_reap.service e2scrub_all.timer fstrim.timer \
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer; do
        ln -sf /dev/null "$root/etc/systemd/system/$u"
    done
}

DRACUT_MODULES="systemd systemd-initrd dracut-systemd systemd-udevd systemd-journald systemd-tmpfiles systemd-modules-load udev-rules base rootfs-block fs-lib shutdown ostree"
DRACUT_DRIVERS="virtio_blk virtio_pci ext4 loop erofs overlay"

# --- tree: base + kernel + boot implementation + hooks + initrd, in ostree's shape -------
tree_key() {
    local impl=$1 extra
    if [ "$impl" = ours ]; then
        mapfile -t extra < <(ours_inputs)
    else
        extra=(upstream)
    fi
    # The functions that shape the tree, not all of stages.sh: editing the boot or disk
    # steps must not rebuild the tree.
    hash_inputs "$(base_key)" "$(kver)" "$impl" "$VM_DIR/guest" "$DRACUT_MODULES $DRACUT_DRIVERS" \
        "$(declare -f stage_tree install_ours install_upstream install_guest_hooks ostreeify_tree install_sdboot_tools)" \
        "$(sdboot_version)" "${extra[@]}"
}
stage_tree() {
    local impl=$1 key kv t dest
    key=$(tree_key "$impl")
    dest=$CACHE/tree-$impl
    if stamp_ok "tree-$impl" "$key" && [ -d "$dest/usr" ]; then return 0; fi
    t=$(now)
    kv=$(kver)
    log "tree: building the $impl OS tree for $kv"
    rm -rf "$dest.tmp"
    cp -a --reflink=auto "$CACHE/base" "$dest.tmp"
    local r=$dest.tmp
    mkdir -p "$r/usr/lib/modules"
    cp -a "$CACHE/kernel/$kv/root/usr/lib/modules/$kv" "$r/usr/lib/modules/"
    # ostree finds the kernel and initrd of a commit in /usr/lib/modules/<kver>/.
    cp "$CACHE/kernel/$kv/vmlinuz" "$r/usr/lib/modules/$kv/vmlinuz"
    "install_$impl" "$r"
    install_guest_hooks "$r"
    install_sdboot_tools "$r"
    in_chroot "$r" depmod "$kv"
    in_chroot "$r" dracut --quiet --force --no-hostonly --no-hostonly-cmdline --kver "$kv" \
        -m "$DRACUT_MODULES" --add-drivers "$DRACUT_DRIVERS" --no-compress \
        "/usr/lib/modules/$kv/initramfs.img" >"$LOGS/dracut-$impl.log" 2>&1 ||
        die "dracut failed, see $LOGS/dracut-$impl.log"
    ostreeify_tree "$r"
    rm -rf "$dest"
    mv "$r" "$dest"
    stamp_set "tree-$impl" "$key"
    log "tree: ready in $(since "$t") s"
}

# The layout ostree wants in a commit: /etc as /usr/etc, empty API mount points, the
# /sysroot mount point and /ostree pointing into it.
ostreeify_tree() {
    local r=$1 d
    rm -rf "$r/usr/etc"
    mv "$r/etc" "$r/usr/etc"
    for d in dev proc sys run tmp boot; do
        rm -rf "${r:?}/$d"
        mkdir -p "$r/$d"
    done
    chmod 1777 "$r/tmp"
    mkdir -p "$r/sysroot"
    ln -sfn sysroot/ostree "$r/ostree"
    # ostree never deploys a commit's /var (the stateroot's /var is shared by deployments
    # and filled by systemd-tmpfiles); an empty one keeps `admin deploy` quiet about it.
    rm -rf "${r:?}/var"
    mkdir -p "$r/var"
}

# shellcheck source=tests/vm/deploy.sh
. "$VM_DIR/deploy.sh"

# Kernel arguments of every deployment: the disk, mounted rw because ostree's /var and
# the /etc of the legacy path live on it (sysroot.readonly makes /sysroot ro later).
BASE_KARGS="root=/dev/vda rw"

# shellcheck source=tests/vm/sdboot.sh
. "$VM_DIR/sdboot.sh"

# Which paths get fs-verity in the verity pass, per variant (empty: no pass).
verity_paths() {
    case $1 in
        legacy | composefs | peer) echo "" ;;
        # The images are made later, in the guest, which enables their fs-verity itself.
        sdboot*) echo "/mnt/ostree/repo/objects" ;;
        *) echo "/mnt/ostree/repo/objects /mnt/ostree/deploy/$STATEROOT/deploy/*/.ostree.cfs" ;;
    esac
}

# --- disk: deploy into a sysroot dir, make the ext4 image, enable verity ----------------
# Produces $CACHE/disk-<impl>-<variant>/{root.ext4,vmlinuz,initrd.img,options}.
stage_disk() {
    local impl=$1 variant=$2 key d t
    key=$(hash_inputs "$(tree_key "$impl")" "$variant" "$VM_DIR/deploy.sh" "$VM_DIR/verity-helper/src" "$BASE_KARGS" \
        "$(declare -f stage_disk verity_pass mk_busybox_initramfs verity_paths)")
    case $variant in sdboot*) key=$(hash_inputs "$key" "$(sdboot_disk_key)") ;; esac
    d=$CACHE/disk-$impl-$variant
    if stamp_ok "disk-$impl-$variant" "$key" && [ -f "$d/root.ext4" ]; then return 0; fi
    t=$(now)
    log "disk: deploying $variant ($impl) and making the disk"
    rm_sysroot "$d"
    mkdir -p "$d"
    local s=$d/sysroot
    vm_deploy "$s" "$CACHE/tree-$impl" "$variant" "$BASE_KARGS" "$d/keys"
    bls_entry "$s" >"$d/entry"
    local linux initrd options
    linux=$(sed -n 's/^linux=//p' "$d/entry")
    initrd=$(sed -n 's/^initrd=//p' "$d/entry")
    options=$(sed -n 's/^options=//p' "$d/entry")
    # Entries name files relative to the boot partition; here /boot is a directory of /.
    resolve() { if [ -f "$s$1" ]; then echo "$s$1"; else echo "$s/boot$1"; fi; }
    cp "$(resolve "$linux")" "$d/vmlinuz"
    cp "$(resolve "$initrd")" "$d/initrd.img"
    printf '%s\n' "$options" >"$d/options"
    if [ "$variant" = signed2 ]; then
        # The older deployment's initrd: it carries the previous transient key.
        local prev
        prev=$(bls_entry "$s" 2 | sed -n 's/^initrd=//p')
        [ -n "$prev" ] || die "signed2: no second boot entry"
        cp "$(resolve "$prev")" "$d/initrd-prev.img"
    fi
    # A few GiB sparse: mkfs.ext4 -d copies the tree (hardlinks and xattrs kept), no mount.
    # 4 KiB blocks: fs-verity's Merkle tree blocks must match the page-sized fs block.
    truncate -s 4G "$d/root.ext4"
    mkfs.ext4 -q -F -O verity -b 4096 -L ostree-root -d "$s" "$d/root.ext4"
    local vp
    vp=$(verity_paths "$variant")
    if [ -n "$vp" ]; then
        verity_pass "$d/root.ext4" "$vp"
    fi
    # systemd-boot variants: the ESP, filled by kernel-install in the guest (sdboot.sh).
    case $variant in sdboot*) sdboot_esp_pass "$d" ;; esac
    # The sysroot dir stays for inspection and for tamper cases that need object names.
    stamp_set "disk-$impl-$variant" "$key"
    log "disk: $variant ready in $(since "$t") s"
}

# --- verity pass: boot the kernel with a busybox initramfs that enables fs-verity ------
VERITY_HELPER=$CACHE/verity-helper/x86_64-unknown-linux-gnu/release/vm-verity-enable
build_verity_helper() {
    CARGO_TARGET_DIR=$CACHE/verity-helper RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build -q --release --target x86_64-unknown-linux-gnu \
        --manifest-path "$VM_DIR/verity-helper/Cargo.toml" >&2
}

# mk_busybox_initramfs OUT SCRIPT: busybox-static, virtio_blk (decompressed: busybox insmod
# cannot read .ko.xz), the verity helper, and an /init that runs SCRIPT then powers off.
mk_busybox_initramfs() {
    local out=$1 script=$2 kv w ko
    kv=$(kver)
    w=$(mktemp -d)
    mkdir -p "$w"/{bin,dev,proc,sys,mnt,lib/modules}
    cp /bin/busybox "$w/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do [ -e "$w/bin/$a" ] || ln -s busybox "$w/bin/$a"; done
    : >"$w/lib/modules/load.list"
    modprobe -d "$CACHE/kernel/$kv/root/usr" -S "$kv" --show-depends virtio_blk |
        awk '$1 == "insmod" { print $2 }' | while read -r ko; do
        case $ko in
            *.xz) xz -dc "$ko" >"$w/lib/modules/$(basename "$ko" .xz)" ;;
            *) cp "$ko" "$w/lib/modules/" ;;
        esac
        basename "$ko" .xz >>"$w/lib/modules/load.list"
    done
    cp "$VERITY_HELPER" "$w/bin/vm-verity-enable"
    cat >"$w/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load.list); do insmod "/lib/modules/$m"; done
if sh /job.sh; then echo "OSTREE-VM-RESULT: job=ok"; else echo "OSTREE-VM-RESULT: job=failed"; fi
sync
poweroff -f
INIT
    chmod +x "$w/init"
    cp "$script" "$w/job.sh"
    (cd "$w" && find . | cpio -o -H newc --quiet) >"$out"
    rm -rf "$w"
}

verity_pass() {
    local disk=$1 paths=$2 t job
    t=$(now)
    build_verity_helper
    job=$(mktemp)
    cat >"$job" <<JOB
set -e
# The disk may take a moment to appear after the module load.
i=0; while [ ! -b /dev/vda ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i+1)); done
mount -t ext4 /dev/vda /mnt
vm-verity-enable $paths
umount /mnt
JOB
    # Per disk: passes for several variants may run side by side.
    local cpio=$disk.verity-initramfs.cpio logf=$disk.verity-pass.log
    mk_busybox_initramfs "$cpio" "$job"
    rm -f "$job"
    # One vCPU: the helper enables verity file after file, the hashing runs in its thread.
    OSTREE_VM_SMP=1 vm_boot "$logf" "$CACHE/kernel/$(kver)/vmlinuz" "$cpio" "" \
        -drive "file=$disk,format=raw,if=virtio" || true
    rm -f "$cpio"
    grep -q 'OSTREE-VM-RESULT: job=ok' "$logf" || die "verity pass failed, see $logf"
    log "verity: $(grep -ao 'vm-verity-enable:.*' "$logf" | tr -d '\r') ($(since "$t") s wall)"
}
