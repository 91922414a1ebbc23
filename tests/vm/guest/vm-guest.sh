#!/bin/bash
# Runs in the booted test VM (ostree-vm-test.service). Writes facts under $OUT, one file
# per fact, prints the important ones as "OSTREE-VM-RESULT: key=value" lines on the
# console, runs the case's guest script if the input disk carries one, then writes $OUT as
# a tar onto the output disk and powers off. Nothing here decides pass or fail: the host
# does, from these facts.
set -u
IN=/run/ostree-vm-test/in
OUT=/run/ostree-vm-test/out
mkdir -p "$IN" "$OUT"
result() { printf '%s\n' "$2" >"$OUT/$1"; printf 'OSTREE-VM-RESULT: %s=%s\n' "$1" "$2" >/dev/console; }
info() { printf 'OSTREE-VM-INFO: [%s] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*" >/dev/console; }
out_dev=/dev/disk/by-id/virtio-vmtest-out

# --at-shutdown: the ExecStop of the shutdown recorder (see the end of this script), run
# during a real shutdown after the finalize unit has stopped, while /boot and /sysroot are
# still mounted: runs the case's $IN/at-shutdown.sh and writes the results again, so that
# the harness sees what the shutdown did (and the new default entry, for the next boot).
if [ "${1:-}" = --at-shutdown ]; then
    export OUT IN
    if [ -f "$IN/at-shutdown.sh" ]; then
        bash "$IN/at-shutdown.sh" >"$OUT/at-shutdown.log" 2>&1
        result at-shutdown-rc $?
    fi
    [ -b "$out_dev" ] && tar -cf "$out_dev" -C "$OUT" . && sync
    printf 'OSTREE-VM-RESULT: at-shutdown=done\n' >/dev/console
    exit 0
fi

# Wait until systemd says the boot is finished, so the timings are complete.
for _ in $(seq 1 600); do
    systemd-analyze time >"$OUT/analyze-time" 2>/dev/null && break
    sleep 0.2
done
result boot-finished "$(tr -d '\n' <"$OUT/analyze-time")"
result uptime "$(cut -d' ' -f1 /proc/uptime)"

result root "$(findmnt -no SOURCE,FSTYPE /)"
findmnt -no OPTIONS / >"$OUT/root-options"
findmnt -l -o TARGET,SOURCE,FSTYPE,OPTIONS >"$OUT/findmnt"
cat /proc/self/mountinfo >"$OUT/mountinfo"
info 'findmnt /'
findmnt / >/dev/console

if [ -e /run/ostree-booted ]; then
    od -An -v -tx1 /run/ostree-booted | tr -s ' \n' ' ' | sed 's/^ //; s/ $//' >"$OUT/ostree-booted.hex"
    result ostree-booted "$(cat "$OUT/ostree-booted.hex")"
else
    result ostree-booted missing
fi
[ -e /run/ostree ] && ls -la /run/ostree >"$OUT/run-ostree" 2>&1

# Units the harness checks: one systemctl call (each costs ~0.3 s under TCG).
units=(var.mount sysroot.mount boot.mount etc.mount ostree-remount.service ostree-prepare-root.service)
mapfile -t states < <(systemctl is-active "${units[@]}" 2>/dev/null)
for i in "${!units[@]}"; do
    result "active.${units[$i]}" "${states[$i]:-unknown}"
done
systemctl list-units --all --no-legend --plain 'ostree*' '*.mount' >"$OUT/units" 2>&1
systemctl --failed --no-legend --plain >"$OUT/failed" 2>&1
result failed-units "$(awk '{print $1}' "$OUT/failed" | tr '\n' ' ')"

# Writability of the places the design cares about; each probe is removed right away.
# Fact names: writable.root for /, writable.usr for /usr, ...
for d in / /usr /etc /var /sysroot; do
    name=${d#/}
    if (: >"${d%/}/.ostree-vm-probe.$$") 2>/dev/null; then
        rm -f "${d%/}/.ostree-vm-probe.$$"
        result "writable.${name:-root}" yes
    else
        result "writable.${name:-root}" no
    fi
done

# The canary's content: its sha256, or the read error (EIO when its object was tampered).
if h=$(sha256sum /usr/lib/ostree-vm-test/canary 2>"$OUT/canary.err"); then
    result canary "${h%% *}"
else
    result canary "error: $(cat "$OUT/canary.err")"
fi

ostree admin status >"$OUT/ostree-admin-status" 2>&1
result ostree-admin-status-rc $?
info 'ostree admin status'
cat "$OUT/ostree-admin-status" >/dev/console

info 'journal'
# The initrd's journal is kept in the real root's: mount and prepare-root timestamps.
journalctl -b -o short-monotonic --no-pager >"$OUT/journal" 2>&1
# Kernel messages: fs-verity and overlayfs errors land here.
dmesg >"$OUT/dmesg" 2>&1

# The case's own checks, shipped on the input disk (a tar, see tests/vm/run-case.sh).
in_dev=/dev/disk/by-id/virtio-vmtest-in
if [ -b "$in_dev" ] && tar -xf "$in_dev" -C "$IN" 2>"$OUT/in-tar.err"; then
    if [ -f "$IN/guest.sh" ]; then
        export OUT IN
        bash "$IN/guest.sh" >"$OUT/guest.log" 2>&1
        result guest-rc $?
        sed 's/^/OSTREE-VM-GUEST: /' "$OUT/guest.log" >/dev/console
    fi
fi

info 'writing results'
if [ -b "$out_dev" ]; then
    tar -cf "$out_dev" -C "$OUT" . && result results-written yes
fi
printf 'OSTREE-VM-RESULT: done=1\n' >/dev/console
# A case whose guest script made $IN/reboot gets a real `systemctl reboot` (qemu runs with
# -no-reboot, so it exits and the harness starts the next boot from the same disk). The
# recorder is stopped after ostree-composefs-finalize-staged.service (stop order is the
# reverse of Before=) and before /boot, /sysroot or the output disk go away.
if [ -e "$IN/reboot" ]; then
    systemd-run --quiet --unit=ostree-vm-test-shutdown --service-type=oneshot --remain-after-exit \
        -p DefaultDependencies=no -p Conflicts=final.target -p Before=final.target \
        -p Before=ostree-composefs-finalize-staged.service -p "RequiresMountsFor=/sysroot /boot" \
        -p StandardOutput=journal+console -p StandardError=journal+console \
        -p "ExecStop=/bin/bash /usr/lib/ostree-vm-test/vm-guest.sh --at-shutdown" /bin/true
    result recorder-rc $?
    sync
    systemctl reboot
    exit 0
fi
# Power off at once: a clean systemd shutdown costs ~15 s under TCG and tests nothing
# here. sync first, so that what the guest wrote (for a second boot) is on the disk.
sync
echo o >/proc/sysrq-trigger
