#!/bin/bash
# Builds (or checks the cache of) everything the VM cases need, stage by stage, with a
# timing line per stage:  tests/vm/prepare.sh [VARIANT...]   (default: every variant the
# cases use). Running it before run-all.sh keeps parallel cases from building the same thing.
# shellcheck source=tests/vm/stages.sh
. "$(dirname "$0")/stages.sh"
# shellcheck source=tests/vm/grub.sh
. "$(dirname "$0")/grub.sh"

variants=("$@")
if [ ${#variants[@]} -eq 0 ]; then
    mapfile -t variants < <(sed -n 's/^VARIANT=\([a-z0-9]*\).*/\1/p' "$VM_DIR"/cases/*.case | sort -u)
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
build_verity_helper
# The GRUB images of the grub-* cases (the sid peer chroot first, once).
[ "${OSTREE_VM_GRUB:-1}" = 0 ] || timed stage_grub
# Two disks at a time: a disk that needs a verity pass spends most of its time in a
# one-vCPU VM, so two of them fill the 2 cores.
pids=()
for v in "${variants[@]}"; do
    timed stage_disk "$impl" "$v" &
    pids+=($!)
    if [ ${#pids[@]} -ge "${OSTREE_VM_JOBS:-2}" ]; then
        wait "${pids[0]}" || die "building the $impl disks failed"
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || die "building the $impl disks failed"; done
