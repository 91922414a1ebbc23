#!/bin/bash
# Runs VM cases, two at a time (each VM gets one vCPU; on 2 cores that is the best
# throughput), and prints a summary line "N passed, N failed".
#   tests/vm/run-all.sh [NAME...]     default: every tests/vm/cases/*.case
# OSTREE_VM_JOBS sets the parallelism.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    for f in "$VM_DIR"/cases/*.case; do
        n=${f##*/}
        cases+=("${n%.case}")
    done
fi
t=$(now)
# Every cached stage first, once: parallel cases must not race to build the same disk.
mapfile -t variants < <(for c in "${cases[@]}"; do sed -n 's/^VARIANT=\([a-z0-9]*\).*/\1/p' "$VM_DIR/cases/$c.case"; done | sort -u)
"$VM_DIR/prepare.sh" "${variants[@]}"
log "prepared in $(since "$t") s"

jobs=${OSTREE_VM_JOBS:-2}
smp=2
[ "$jobs" -gt 1 ] && smp=1
summary=$CACHE/summary.txt
: >"$summary"
t=$(now)
# shellcheck disable=SC2016 # the inner script gets its values as arguments
printf '%s\n' "${cases[@]}" | OSTREE_VM_SMP=$smp xargs -P "$jobs" -I{} \
    bash -c '"$1/run-case.sh" "$2" >>"$3.$2" 2>&1; cat "$3.$2"; cat "$3.$2" >>"$3"; rm -f "$3.$2"' _ "$VM_DIR" {} "$summary" || true
passed=$(grep -c '^PASS ' "$summary" || true)
failed=$(( ${#cases[@]} - passed ))
log "ran ${#cases[@]} cases in $(since "$t") s"
printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
