#!/bin/bash
# Runs a shell command inside the upstream peer chroot (scripts/peer-sid.sh: Debian sid's
# ostree 2026.x with composefs, and its ostree-boot), the one way the tests and the VM
# harness run upstream's binaries.
#
# usage: scripts/peer-run.sh [-b DIR]... [-s SETUP] [--] COMMAND
#   -b DIR    bind DIR (a directory or file of the host) at the same path in the chroot
#   -s SETUP  shell code run on the host side once the chroot is assembled in "$R"
#             (e.g. to bind a file over "$R/proc/cmdline" or copy files into it)
#   COMMAND   run with /bin/sh -c in the chroot; its exit status is this script's
# The chroot is $OSTREE_PEER_SID, else build/peer-sid.
#
# Everything happens in a private mount namespace of its own: the chroot is an overlay
# whose upper layer is a tmpfs (the cached chroot is never written, and a command may
# create files or mount points anywhere in it), with proc, sys, a /dev of a few nodes, and
# tmpfs on /run, /tmp and /var/tmp. All of it goes with the namespace when the command
# exits; only an empty scratch directory is made on the host, and removed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peer=${OSTREE_PEER_SID:-$here/build/peer-sid}

if [[ ${1:-} != --inner ]]; then
    [[ -f $peer/.peer-sid-packages ]] || {
        echo "peer-run: no peer chroot at $peer (no .peer-sid-packages): run scripts/peer-sid.sh" >&2
        exit 125
    }
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/peer-ns.XXXXXX")
    rc=0
    unshare -m --propagation private "$0" --inner "$scratch" "$@" || rc=$?
    rmdir "$scratch"
    exit "$rc"
fi

S=$2
shift 2
binds=()
setup=
while [[ $# -gt 0 ]]; do
    case $1 in
        -b) binds+=("$2"); shift 2 ;;
        -s) setup=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[[ $# -eq 1 ]] || { echo "peer-run: expected one COMMAND, got $#" >&2; exit 125; }

mount -t tmpfs tmpfs "$S"
mkdir "$S/upper" "$S/work" "$S/root"
mount -t overlay overlay -o "lowerdir=$peer,upperdir=$S/upper,workdir=$S/work" "$S/root"
R=$S/root
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys" 2>/dev/null || true
mount -t tmpfs -o mode=0755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    : >"$R/dev/$n"
    mount --bind "/dev/$n" "$R/dev/$n"
done
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=1777 tmpfs "$R/var/tmp"
for b in "${binds[@]}"; do
    if [[ -d $b ]]; then
        mkdir -p "$R$b"
    else
        mkdir -p "$(dirname "$R$b")"
        : >"$R$b"
    fi
    mount --bind "$b" "$R$b"
done
export R
eval "$setup"
exec chroot "$R" /bin/sh -c "$1"
