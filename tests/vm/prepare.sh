#!/bin/bash
# Builds (or checks the cache of) everything the VM cases need, stage by stage, with a
# timing line per stage:  tests/vm/prepare.sh [VARIANT...]   (default: every variant the
# cases use). Running it before run-all.sh keeps parallel cases from building the same thing.
# shellcheck source=tests/vm/stages.sh
. "$(dirname "$0")/stages.sh"

variants=("$@")
if [ ${#variants[@]} -eq 0 ]; then
    mapfile -t variants < <(sed -n 's/^VARIANT=\([a-z]*\).*/\1/p' "$VM_DIR"/cases/*.case | sort -u)
fi
timed() {
    local t
    t=$(now)
    "$@"
    log "stage $1 ${2:-} ${3:-}: $(since "$t") s"
}
[ "${OSTREE_VM_SKIP_SETUP:-0}" = 1 ] || timed stage_host
timed stage_kernel
timed stage_base
impl=$(vm_impl)
log "implementation under test: $impl"
timed stage_tree "$impl"
for v in "${variants[@]}"; do
    timed stage_disk "$impl" "$v"
done
