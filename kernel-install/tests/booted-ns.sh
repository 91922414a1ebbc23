#!/bin/sh
# Runs a script as on a booted ostree system, in a private mount namespace (the caller
# runs this under `unshare -m -p -f --propagation private`: ostree wants to read
# /proc/1/ns/mnt, which only a PID namespace of our own makes ours): DEPLOY (a deployment directory of
# SYSROOT) becomes the root of a chroot, with SYSROOT at /sysroot and its boot/ at /boot,
# a fresh /run holding /run/ostree-booted, and OUT (a host directory) at /tmp.
# The host's /usr is mounted at /run/hostusr, which the test tree's bin, sbin, lib and
# lib64 links point into, so the deployment's own /usr stays what was deployed and the
# host's programs (the real ostree CLI among them) run. In the script, $OURS is
# ostree-composefs.
#
# usage: booted-ns.sh SYSROOT DEPLOY BOOTED_FILE OUT BIN SCRIPT
set -eu
sysroot=$1 deploy=$2 booted=$3 out=$4 bin=$5 script=$6
mount -t tmpfs -o mode=0755 run "$deploy/run"
mount --bind "$sysroot" "$deploy/sysroot"
mount --bind "$sysroot/boot" "$deploy/boot"
mount --bind "$out" "$deploy/tmp"
mount -t proc proc "$deploy/proc"
# ostree's fsfreeze watchdog daemonizes, which opens /dev/null.
mount -t tmpfs -o mode=0755 dev "$deploy/dev"
mknod -m 0666 "$deploy/dev/null" c 1 3
mkdir -p "$deploy/run/hostusr" "$deploy/run/bin"
mount --bind -o ro /usr "$deploy/run/hostusr"
cp "$booted" "$deploy/run/ostree-booted"
# A journal socket the test listens on, when it made one.
if [ -d "$out/journal" ]; then
    mkdir -p "$deploy/run/systemd/journal"
    mount --bind "$out/journal" "$deploy/run/systemd/journal"
fi
cp "$bin" "$deploy/run/bin/ostree-composefs"
exec chroot "$deploy" /bin/env -i PATH=/bin:/sbin OURS=/run/bin/ostree-composefs \
    /bin/sh -euc "$script"
