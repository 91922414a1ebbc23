#!/bin/bash
# Benchmark: `ostree-composefs deploy` against `ostree admin deploy` (Debian's ostree) of
# the same commit, measured in the same run on identical copies of one sysroot.
# Prints both times and the ratio. Not a test: numbers depend on the machine.
#   scripts/bench-deploy.sh [NFILES] [ROUNDS]     (default 20000 files, 3 rounds)
# Needs root (ostree admin deploy sets immutable bits), ostree, and a release build:
#   cargo build --release -p ostree-composefs
set -euo pipefail
NFILES=${1:-20000}
ROUNDS=${2:-3}
BIN=${OSTREE_COMPOSEFS:-${CARGO_TARGET_DIR:-target}/release/ostree-composefs}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p ostree-composefs" >&2; exit 1; }

W=$(mktemp -d)
unseal() { find "$1" -path '*/ostree/deploy/*/deploy/*' -prune -type d -exec chattr -i {} + 2>/dev/null || true; }
cleanup() { unseal "$W"; rm -rf "$W"; }
trap cleanup EXIT

# A tree of NFILES small files of distinct content in 100-file directories, plus a
# kernel, an initramfs, os-release and /usr/etc.
T=$W/tree
mkdir -p "$T/usr/lib/modules/6.1.0-bench" "$T/usr/etc" "$T/usr/share/data"
head -c 4000000 /dev/urandom > "$T/usr/lib/modules/6.1.0-bench/vmlinuz"
head -c 8000000 /dev/urandom > "$T/usr/lib/modules/6.1.0-bench/initramfs.img"
printf 'PRETTY_NAME="Bench OS"\nID=bench\n' > "$T/usr/lib/os-release"
for i in $(seq 1 50); do echo "conf $i" > "$T/usr/etc/conf$i"; done
python3 - "$T/usr/share/data" "$NFILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "w") as f:
        f.write("file %d\n" % i * (1 + i % 7))
PY

S=$W/sysroot
mkdir -p "$S"
ostree admin init-fs "$S" >/dev/null
ostree admin os-init --sysroot="$S" bench >/dev/null
ostree --repo="$S/ostree/repo" commit -b bench/stable --tree=dir="$T" >/dev/null
echo "tree: $(find "$T" -type f | wc -l) files"

t_ostree=0; t_ours=0
for r in $(seq 1 "$ROUNDS"); do
    for who in ostree ours; do
        D=$W/$who.$r
        cp -a "$S" "$D"
        sync
        start=$(date +%s.%N)
        if [ $who = ostree ]; then
            ostree admin deploy --sysroot="$D" --os=bench bench/stable >/dev/null 2>&1
        else
            "$BIN" deploy --sysroot "$D" --stateroot bench bench/stable >/dev/null
        fi
        end=$(date +%s.%N)
        dt=$(echo "$end - $start" | bc)
        echo "round $r $who: ${dt}s"
        if [ $who = ostree ]; then t_ostree=$(echo "$t_ostree + $dt" | bc); else t_ours=$(echo "$t_ours + $dt" | bc); fi
        unseal "$D"; rm -rf "$D"
    done
done
echo "ostree admin deploy:      $(echo "scale=3; $t_ostree / $ROUNDS" | bc)s (mean of $ROUNDS)"
echo "ostree-composefs deploy:  $(echo "scale=3; $t_ours / $ROUNDS" | bc)s (mean of $ROUNDS, includes .ostree.cfs)"
echo "ratio ours/ostree: $(echo "scale=3; $t_ours / $t_ostree" | bc)"
