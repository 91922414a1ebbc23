#!/bin/bash
# Installs everything the build, the tests and the demo need on a Debian 12 machine.
# Idempotent: a second run only checks. Called by `make setup`, which the README's two
# commands run first. Needs root (apt).
set -euo pipefail

# Host packages. qemu-system-x86 comes from bookworm-backports because this machine kind
# ships qemu-utils 10.0 from there, and bookworm's qemu-system-x86 7.2 would remove it.
PKGS_MAIN=(ostree python3-nacl ovmf erofs-utils fsverity e2fsprogs util-linux cpio kmod xz-utils zstd libssl-dev
           busybox-static debootstrap dracut-core systemd openssl go-md2man pkg-config
           python3 bc file shellcheck attr gzip btrfs-progs dosfstools systemd-boot
           mtools fdisk)
PKGS_BPO=(qemu-system-x86 qemu-utils)

STATE=${SETUP_STATE_DIR:-/var/cache/ostree-composefs-setup}
mkdir -p "$STATE"

missing=()
for p in "${PKGS_MAIN[@]}" "${PKGS_BPO[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A private sources dir adds bookworm-backports without touching /etc/apt.
    A=$STATE/apt
    mkdir -p "$A/parts" "$A/lists/partial"
    cp /etc/apt/sources.list.d/debian.sources "$A/parts/" 2>/dev/null || true
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$A/parts/base.list" 2>/dev/null || true
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$A/parts/bpo.sources"
    O=(-oDir::Etc::SourceList=/dev/null "-oDir::Etc::SourceParts=$A/parts" "-oDir::State::Lists=$A/lists")
    apt-get "${O[@]}" update -qq
    apt-get "${O[@]}" install -y -qq --no-install-recommends "${PKGS_MAIN[@]}"
    apt-get "${O[@]}" install -y -qq --no-install-recommends -t bookworm-backports "${PKGS_BPO[@]}"
fi

# dracut-core on Debian 12 ships no 50-dracut.install plugin, and dracut's own
# /etc/kernel/postinst.d hook is not installed with dracut-core: nothing here runs
# dracut behind our back.

# Rust tooling: rustfmt and clippy come with the toolchain here; make sure.
if command -v rustup >/dev/null; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
if [ "${SETUP_FUZZ:-0}" = 1 ] && ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi
echo "setup: ok"
