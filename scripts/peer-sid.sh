#!/bin/bash
# Builds, once, a Debian sid chroot holding the upstream peers this project is compared
# with and boots through: ostree 2026.x built with libcomposefs and its ostree-boot
# (ostree-prepare-root, ostree-remount, the generator and units) and GRUB 2.14 with blscfg
# (grub-mkimage needs sid's glibc, so it runs in this chroot). libsodium, the Ed25519
# reference, comes from the host's python3-nacl (scripts/setup.sh): sid's fails to
# configure under debootstrap.
#
# usage: scripts/peer-sid.sh [DIR]
#   DIR defaults to $OSTREE_PEER_SID, else build/peer-sid. Prints DIR when it is ready.
# Idempotent: a stamp names the package set; a changed set rebuilds. The build happens in
# DIR.tmp and is renamed into place, so an interrupted run never leaves a half chroot.
# debootstrap runs in a private mount namespace: whatever it mounts in the chroot (proc,
# sys) is gone when it exits, even when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${OSTREE_PEER_SID:-$PWD/build/peer-sid}}
mirror=${OSTREE_PEER_MIRROR:-http://deb.debian.org/debian}
pkgs=ostree,ostree-boot,grub-common,grub-efi-amd64-bin,grub-pc-bin
stamp=$dir/.peer-sid-packages

if [[ -f $stamp && $(<"$stamp") == "$pkgs" ]]; then
    echo "$dir"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "peer-sid: building the sid chroot needs root (debootstrap)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "peer-sid: debootstrap is missing (scripts/setup.sh installs it)" >&2
    exit 1
}

start=$SECONDS
mkdir -p "$(dirname "$dir")"
rm -rf "$dir.tmp"
echo "peer-sid: debootstrap sid into $dir.tmp ($pkgs)" >&2
if ! unshare --mount --propagation private \
    debootstrap --variant=minbase --include="$pkgs" sid "$dir.tmp" "$mirror" >"$dir.log" 2>&1; then
    tail -n 30 "$dir.log" >&2
    echo "peer-sid: debootstrap failed; full log: $dir.log" >&2
    rm -rf "$dir.tmp"
    exit 1
fi
# Package caches are a third of the chroot and never read again.
rm -rf "$dir.tmp"/var/cache/apt/archives/*.deb "$dir.tmp"/var/lib/apt/lists/*
ver=$(chroot "$dir.tmp" ostree --version | sed -n "s/^ Version: '\(.*\)'/\1/p")
echo "$pkgs" >"$dir.tmp/.peer-sid-packages"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "peer-sid: ready in $((SECONDS - start)) s: ostree $ver, $(du -sm "$dir" | cut -f1) MB" >&2
echo "$dir"
