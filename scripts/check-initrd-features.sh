#!/bin/bash
# The initrd binaries build ostree-boot without its `writer` feature, so they link only
# what reads, verifies and mounts (core/src/lib.rs). Fails when a dependency change pulls
# the writer half, or a crate only it needs, back into their build.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
# Normal and build edges only: dev-dependencies (the test fixtures) may enable `writer`
# for the tests, which cargo resolves separately (resolver 2).
tree=$("$CARGO" tree -p ostree-prepare-root -p ostree-system-generator \
    -e normal,build,features --prefix none)
fail=0
if grep -q '^ostree-boot feature "writer"' <<<"$tree"; then
    echo "check-initrd-features: the initrd binaries enable ostree-boot's writer feature:" >&2
    "$CARGO" tree -p ostree-prepare-root -p ostree-system-generator \
        -e normal,build,features -i ostree-boot >&2
    fail=1
fi
# Crates only signing or key generation needs.
for c in zeroize getrandom; do
    if grep -q "^$c v" <<<"$tree"; then
        echo "check-initrd-features: the initrd binaries depend on $c (writer-only):" >&2
        "$CARGO" tree -p ostree-prepare-root -p ostree-system-generator \
            -e normal,build,features -i "$c" >&2
        fail=1
    fi
done
if ! grep -q '^ostree-boot v' <<<"$tree"; then
    echo "check-initrd-features: ostree-boot is not in the initrd binaries' tree at all?" >&2
    fail=1
fi
[ "$fail" = 0 ] && echo "check-initrd-features: initrd binaries build ostree-boot without writer"
exit "$fail"
