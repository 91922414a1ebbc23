# Common settings and helpers for the VM harness. Sourced by every script in tests/vm/.
# shellcheck shell=bash
set -eEuo pipefail
# set -e alone exits without a word; say which command failed where.
trap 'printf "[vm] error: \"%s\" failed (status %s) at %s:%s\n" "$BASH_COMMAND" "$?" "${BASH_SOURCE[0]}" "$LINENO" >&2' ERR

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$VM_DIR/../.." && pwd)
# Everything built or downloaded lives here; safe to delete, rebuilt on demand.
CACHE=${OSTREE_VM_CACHE:-$REPO_ROOT/build/vm}
LOGS=$CACHE/logs
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
RELEASE_DIR=$CARGO_TARGET_DIR/release
# The kernel flavour: "cloud" has ext4 built in, virtio, fs-verity, erofs/overlay as modules.
KFLAVOR=${OSTREE_VM_KFLAVOR:-cloud}
DEBIAN_MIRROR=${OSTREE_VM_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
STATEROOT=debian
OSTREE_REF=debian/trixie/x86_64/vmtest
# Per-boot limit. A systemd boot under TCG takes ~35-60 s on an idle 2-core machine, but
# several times that when the cores are shared; a hung guest must still not hang CI.
BOOT_TIMEOUT=${OSTREE_VM_BOOT_TIMEOUT:-480}

mkdir -p "$CACHE" "$LOGS"

log() { printf '[vm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[vm] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
# Seconds since $1 (a `now` value), one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Content hash of files and strings: the cache key of a stage. Directories are hashed by
# their listing and file contents, so editing a guest script rebuilds what depends on it.
hash_inputs() {
    local a
    for a in "$@"; do
        if [ -d "$a" ]; then
            (cd "$a" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
        elif [ -f "$a" ]; then
            # The name without its directory: a checkout elsewhere (a CI clone, a
            # worktree with a copy of build/vm) must find the same keys.
            printf '%s %s\n' "$(sha256sum <"$a" | cut -c1-64)" "${a##*/}"
        else
            printf '%s\n' "$a"
        fi
    done | sha256sum | cut -c1-16
}

# stamp_ok NAME KEY: true when stage NAME was last built with KEY.
stamp_ok() { [ -f "$CACHE/stamps/$1" ] && [ "$(cat "$CACHE/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$CACHE/stamps"; printf '%s\n' "$2" >"$CACHE/stamps/$1.tmp"; mv "$CACHE/stamps/$1.tmp" "$CACHE/stamps/$1"; }
stamp_clear() { rm -f "$CACHE/stamps/$1"; }

# apt against trixie through a private sources/lists dir: the host's apt config is untouched.
APT_TRIXIE_DIR=$CACHE/apt-trixie
apt_trixie() {
    apt-get -q -oDir::Etc::SourceList=/dev/null \
        "-oDir::Etc::SourceParts=$APT_TRIXIE_DIR/parts" \
        "-oDir::State::Lists=$APT_TRIXIE_DIR/lists" \
        "-oDir::Cache=$APT_TRIXIE_DIR/cache" \
        -oAPT::Architecture=amd64 -oAPT::Sandbox::User=root "$@"
}
apt_trixie_update() {
    mkdir -p "$APT_TRIXIE_DIR/parts" "$APT_TRIXIE_DIR/lists/partial" "$APT_TRIXIE_DIR/cache/archives/partial"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$DEBIAN_MIRROR" "$SUITE" >"$APT_TRIXIE_DIR/parts/trixie.sources"
    # Refresh at most every 6 hours: the lists say which kernel point release exists.
    if [ -z "$(find "$APT_TRIXIE_DIR/lists" -maxdepth 1 -name '*_Packages*' -mmin -360 2>/dev/null)" ]; then
        apt_trixie update -qq
    fi
}

# Bind-mount the API filesystems into a chroot for the duration of a command.
in_chroot() {
    local root=$1 m rc=0
    shift
    for m in proc sys dev; do mount --bind "/$m" "$root/$m"; done
    chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@" || rc=$?
    for m in dev sys proc; do umount -l "$root/$m"; done
    return $rc
}

# rm_sysroot DIR: removes an ostree sysroot directory. `ostree admin deploy` makes each
# deployment's root directory immutable (chattr +i), which plain rm cannot remove.
rm_sysroot() {
    [ -e "$1" ] || return 0
    find "$1" -mindepth 1 -maxdepth 8 -type d -path '*/ostree/deploy/*/deploy/*' -prune \
        -exec chattr -i {} + 2>/dev/null || true
    rm -rf "$1"
}

# The kernel the harness uses, as recorded by the kernel stage.
kver() { cat "$CACHE/kernel/kver" 2>/dev/null || die "kernel not fetched (run tests/vm/prepare.sh)"; }

# qemu accelerator: TCG unless the host has real VMX/SVM and OSTREE_VM_KVM=1 (see
# reference: this machine kind's /dev/kvm is a nested PVM that cannot run a stock kernel).
qemu_accel() {
    if [ "${OSTREE_VM_KVM:-0}" = 1 ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then
        echo "-enable-kvm -cpu host"
    else
        echo "-accel tcg,thread=multi -cpu max"
    fi
}

# vm_boot LOG KERNEL INITRD APPEND [qemu args...]: boots with the serial console written to
# LOG, returns qemu's status (124 on timeout). Never waits longer than BOOT_TIMEOUT.
vm_boot() {
    local logf=$1 kernel=$2 initrd=$3 append=$4 rc=0
    shift 4
    # shellcheck disable=SC2046 # the accelerator string is several words on purpose
    timeout --kill-after=10 "$BOOT_TIMEOUT" qemu-system-x86_64 $(qemu_accel) \
        -m "${OSTREE_VM_MEM:-1536}" -smp "${OSTREE_VM_SMP:-2}" \
        -nodefaults -nographic -no-reboot -serial "file:$logf" -monitor none \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 loglevel=4 $append" "$@" </dev/null || rc=$?
    return $rc
}

# boot_metrics RESULTS_DIR: prints key=value timings from the guest's journal
# (short-monotonic, seconds since kernel start) and `systemd-analyze time`:
#   startup            systemd-analyze's line (kernel + initrd + userspace)
#   sysroot_mounted    sysroot.mount done in the initrd
#   prepare_root       ostree-prepare-root.service start -> finished, ms
#   sysroot_to_prepared sysroot.mount done -> ostree-prepare-root.service finished, ms
#   ostree_units_ms    sum of every ostree-*.service span (initrd and real root), ms
boot_metrics() {
    local res=$1
    [ -f "$res/journal" ] || return 1
    awk '
        function ts(line) { return substr(line, 2, index(line, "]") - 2) + 0 }
        / systemd\[1\]: Mounted sysroot\.mount/ && !m { m = ts($0) }
        / systemd\[1\]: Starting (ostree-[^ ]*\.service)/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^ostree-.*\.service$/) { s[$i] = ts($0); break } }
        / systemd\[1\]: (Finished|Started) (ostree-[^ ]*\.service)/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^ostree-.*\.service$/ && ($i in s)) {
                d = ts($0) - s[$i]; total += d; if ($i == "ostree-prepare-root.service") { pr = d; pf = ts($0) }
                delete s[$i]; break } }
        END {
            if (m) printf "sysroot_mounted=%.2fs\n", m
            if (pf) printf "prepare_root=%dms\nsysroot_to_prepared=%dms\n", pr * 1000, (pf - m) * 1000
            printf "ostree_units_ms=%d\n", total * 1000
        }' "$res/journal"
    if [ -f "$res/analyze-time" ]; then
        sed -n 's/^Startup finished in \(.*\)$/startup="\1"/p' "$res/analyze-time" | head -n1
    fi
}

# initrd_member INITRD PATH: prints the content of PATH from the uncompressed newc cpio
# archives of INITRD (the last one wins, as when the kernel unpacks them). Compressed
# segments are skipped: a key appended by the deployer is an uncompressed archive.
initrd_member() {
    python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
want = sys.argv[2].lstrip("/").encode()
found = None
pos = data.find(b"070701")
while 0 <= pos and pos + 110 <= len(data):
    hdr = data[pos:pos + 110]
    try:
        filesize = int(hdr[54:62], 16)
        namesize = int(hdr[94:102], 16)
    except ValueError:
        pos = data.find(b"070701", pos + 6)
        continue
    name_end = pos + 110 + namesize
    name = data[pos + 110:name_end - 1]
    start = (name_end + 3) & ~3
    if name.lstrip(b"./") == want:
        found = data[start:start + filesize]
    nxt = (start + filesize + 3) & ~3
    pos = data.find(b"070701", nxt) if name == b"TRAILER!!!" else nxt
    if pos >= 0 and data[pos:pos + 6] != b"070701":
        pos = data.find(b"070701", pos)
if found is None:
    sys.exit(1)
sys.stdout.write(found.decode(errors="replace"))
PY
}
