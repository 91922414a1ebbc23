#!/bin/bash
# Builds a real initrd with Debian's dracut and our module, then checks with lsinitrd
# that everything the module promises is inside.
#
# usage: dracut-initrd.sh REPO BIN_DIR WORK [KMODDIR]
#   BIN_DIR  holds ostree-prepare-root, ostree-remount, ostree-system-generator,
#            ostree-composefs (what `make install` takes from the release dir)
#   KMODDIR  a kernel module tree (.../lib/modules/<kver>) with erofs, overlay, loop;
#            without it the initrd is built with --no-kernel and the module list is
#            checked by calling the module's installkernel() with a recording instmods.
#
# Nothing on the host changes: the install goes to a staging tree on a tmpfs, which a
# private mount namespace overlays onto /usr and /etc while dracut runs.
set -euo pipefail
REPO=$1 BINS=$2 WORK=$3 KMODDIR=${4-}
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$WORK/stage"
make -s -C "$REPO" install DESTDIR="$WORK/stage" PREFIX=/usr RELEASE_DIR="$BINS" INSTALL_DRACUT_CONF=no >/dev/null

# Both configs; the /etc one (which wins) names a custom key, which must be the one
# copied. A decoy default key checks that the keypath from the config is honoured.
mkdir -p "$WORK/stage/etc/ostree" "$WORK/stage/usr/lib/ostree"
printf '[composefs]\nenabled = yes\n' >"$WORK/stage/usr/lib/ostree/prepare-root.conf"
printf '# site config\n[sysroot]\nreadonly = true\n[composefs]\nenabled = signed\nkeypath = /etc/ostree/site-binding.key\n' \
    >"$WORK/stage/etc/ostree/prepare-root.conf"
echo 'c2l0ZSBrZXkgZm9yIHRoZSB0ZXN0IG9ubHkgIDMyIGJ5dGVzIQ==' >"$WORK/stage/etc/ostree/site-binding.key"
echo 'ZGVjb3kgZGVmYXVsdCBrZXkgbm90IHRvIGJlIGNvcGllZCEhISE=' >"$WORK/stage/etc/ostree/initramfs-root-binding.key"

kver_args=(--no-kernel)
if [[ -n $KMODDIR ]]; then
    kver=$(basename "$KMODDIR")
    mkdir -p "$WORK/stage/usr/lib/modules"
    cp -a "$KMODDIR" "$WORK/stage/usr/lib/modules/"
    kver_args=(--kver "$kver")
fi

out=$WORK/initrd.img
unshare -m --propagation private bash -euo pipefail -c '
    WORK=$1; out=$2; shift 2
    # overlayfs refuses layers nested in one another: keep the stage off the root fs.
    mkdir -p "$WORK/t"
    mount -t tmpfs tmpfs "$WORK/t"
    cp -a "$WORK/stage" "$WORK/t/stage"
    mount -t overlay overlay -o "lowerdir=$WORK/t/stage/usr:/usr" /usr
    mount -t overlay overlay -o "lowerdir=$WORK/t/stage/etc:/etc" /etc
    mkdir -p "$WORK/t/no-confdir"
    dracut --quiet --force --no-hostonly --no-hostonly-cmdline --no-compress \
        --conf /dev/null --confdir "$WORK/t/no-confdir" -m "systemd systemd-initrd base ostree" \
        --tmpdir "$WORK/t" "$@" "$out"
' _ "$WORK" "$out" "${kver_args[@]}" >"$WORK/dracut.log" 2>&1 || { cat "$WORK/dracut.log" >&2; fail "dracut failed"; }

listing=$(lsinitrd "$out")
have() {
    grep -Eq "[[:space:]]$1( |\$)" <<<"$listing" || fail "not in the initrd: $1"
    echo "ok: $1"
}
have usr/lib/ostree/ostree-prepare-root
have usr/lib/systemd/system-generators/ostree-system-generator
have usr/lib/systemd/system/ostree-prepare-root.service
have 'usr/lib/systemd/system/initrd-root-fs.target.wants/ostree-prepare-root.service -> [./a-z/-]*ostree-prepare-root.service'
have 'usr/lib/systemd/system/modprobe@.service'
have usr/lib/ostree/prepare-root.conf
have etc/ostree/prepare-root.conf
have etc/ostree/site-binding.key
grep -q 'etc/ostree/initramfs-root-binding.key' <<<"$listing" && fail "the default key was copied although keypath names another"
echo "ok: default key left out"

# Contents survive byte for byte.
for f in etc/ostree/prepare-root.conf etc/ostree/site-binding.key usr/lib/systemd/system/ostree-prepare-root.service; do
    lsinitrd -f "$f" "$out" | cmp - "$WORK/stage/$f" || fail "$f differs inside the initrd"
done
echo "ok: contents identical"

# The generator as installed in the initrd (dracut strips it), run on the initrd's
# own files: /etc/initrd-release makes it the initrd side, and the signed config
# from /etc/ostree must give the composefs module drop-in.
mkdir -p "$WORK/unpacked" "$WORK/gen-out"
(cd "$WORK/unpacked" && lsinitrd --unpack "$out")
[[ -e $WORK/unpacked/etc/initrd-release ]] || fail "no /etc/initrd-release in the initrd"
env -i OSTREE_GENERATOR_ROOT="$WORK/unpacked" SYSTEMD_LOG_TARGET=console \
    SYSTEMD_PROC_CMDLINE="root=LABEL=root ostree=/ostree/boot.1/os/abc/0" \
    "$WORK/unpacked/usr/lib/systemd/system-generators/ostree-system-generator" "$WORK/gen-out" \
    || fail "the generator from the initrd failed"
[[ -L $WORK/gen-out/initrd-root-fs.target.requires/ostree-prepare-root.service ]] || fail "generator did not pull in prepare-root"
grep -q "^Wants=modprobe@erofs.service modprobe@overlay.service modprobe@loop.service$" \
    "$WORK/gen-out/ostree-prepare-root.service.d/ostree-composefs-modules.conf" || fail "no composefs module drop-in"
grep -q "composefs mode 'signed'" "$WORK/gen-out/ostree-prepare-root.service.d/ostree-composefs-modules.conf" \
    || fail "generator did not read the initrd's /etc/ostree/prepare-root.conf"
echo "ok: the initrd's generator, run on the initrd's files, writes the composefs wiring"

if [[ -n $KMODDIR ]]; then
    for m in fs/erofs/erofs fs/overlayfs/overlay drivers/block/loop; do
        grep -Eq "usr/lib/modules/[^/]+/kernel/$m\.ko(\.xz|\.zst|\.gz)?\$" <<<"$listing" || fail "module $m not in the initrd"
        echo "ok: module $m"
    done
else
    echo "note: no kernel module tree given; built with --no-kernel, checking installkernel() alone"
    calls=$(bash -c 'instmods() { echo "$@"; }; . "$1"; installkernel' _ "$REPO/units/dracut/50ostree/module-setup.sh")
    for m in erofs overlay loop; do
        grep -qw "$m" <<<"$calls" || fail "installkernel does not install $m"
    done
    echo "ok: installkernel asks for: $calls"
fi
echo PASS
