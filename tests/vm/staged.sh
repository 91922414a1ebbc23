# shellcheck shell=bash
# Shared by the staged-* cases (sourced from their case file): boot 1 stages an update
# (the case's stage_script), the admin edits /etc afterwards and the guest runs a real
# `systemctl reboot`; the shutdown recorder (vm-guest.sh --at-shutdown, stopped after
# ostree-composefs-finalize-staged.service, /boot still mounted) records what the
# finalization left, including the new default entry that boot 2 takes (NEXT_ENTRY).
# Boot 2 reads boot 1's persistent journal (journalctl -b -1).

# staged_guest_script: the whole guest script; stage_script prints the staging commands.
staged_guest_script() {
    printf 'ref=%s\n' "$OSTREE_REF"
    cat <<'GUEST'
probe() { if touch "$1/.vmtest-probe" 2>/dev/null; then rm -f "$1/.vmtest-probe"; echo writable; else echo read-only; fi; }
if [ "$(cat "$IN/boot")" = 1 ]; then
    # A persistent journal (Storage=auto), so that boot 2 sees what boot 1's shutdown logged.
    mkdir -p /var/log/journal
    journalctl --flush
GUEST
    stage_script
    cat <<'GUEST'
    ostree admin status >"$OUT/status-staged" 2>&1
    systemctl is-active ostree-composefs-finalize-staged.service >"$OUT/finalize-active"
    ls /boot/loader/entries | wc -l >"$OUT/entries-staged"
    echo edited-after-staging >/etc/vmtest-staged
    cat >"$IN/at-shutdown.sh" <<'SHUTDOWN'
probe() { if touch "$1/.vmtest-probe" 2>/dev/null; then rm -f "$1/.vmtest-probe"; echo writable; else echo read-only; fi; }
if [ -e /run/ostree/staged-deployment ]; then echo present; else echo absent; fi >"$OUT/shutdown-staged-file"
if mountpoint -q /boot || [ -d /boot/loader ]; then echo mounted; else echo gone; fi >"$OUT/shutdown-boot"
probe /boot >"$OUT/shutdown-boot-access"
systemctl show -p ActiveState --value ostree-composefs-finalize-staged.service >"$OUT/shutdown-finalize-state"
journalctl -b -u ostree-composefs-finalize-staged.service -o cat >"$OUT/finalize-journal" 2>&1
journalctl -b MESSAGE_ID=e8646cd63dff4625b77909a8e7a40994 -o cat >"$OUT/finalizing-msg" 2>&1
ostree admin status >"$OUT/status-final" 2>&1
# The default entry (highest version), as a BLS bootloader picks it.
e=$(grep -H "^version " /boot/loader/entries/*.conf | sort -t" " -k2,2nr | head -n1 | cut -d: -f1)
sed -n 's/^options //p' "$e" >"$OUT/next-options"
sha256sum <"/boot$(sed -n 's/^linux //p' "$e")" | cut -d' ' -f1 >"$OUT/next-linux-sha256"
sha256sum <"/boot$(sed -n 's/^initrd //p' "$e")" | cut -d' ' -f1 >"$OUT/next-initrd-sha256"
SHUTDOWN
    touch "$IN/reboot"
else
    cat /etc/vmtest-staged >"$OUT/etc-staged" 2>&1
    tr ' ' '\n' </proc/cmdline | sed -n 's/^ostree=//p' >"$OUT/cmdline-ostree"
    e=$(grep -H "^version " /boot/loader/entries/*.conf | sort -t" " -k2,2nr | head -n1 | cut -d: -f1)
    sed -n 's/^options .*ostree=\([^ ]*\).*/\1/p' "$e" >"$OUT/default-entry-ostree"
    journalctl -b -1 MESSAGE_ID=e8646cd63dff4625b77909a8e7a40994 -o cat >"$OUT/prev-finalizing-msg" 2>&1
    journalctl -b -1 -u ostree-composefs-finalize-staged.service -o cat >"$OUT/prev-finalize-journal" 2>&1
    journalctl -b -1 -o short-monotonic --no-pager >"$OUT/prev-journal" 2>&1
GUEST
    after_boot_script
    cat <<'GUEST'
fi
ostree admin status >"$OUT/status" 2>&1
GUEST
}

# Hooks a case may redefine.
stage_script() {
    cat <<'GUEST'
    ostree-composefs deploy --stage "$ref" >"$OUT/stage.out" 2>&1
    echo $? >"$OUT/stage-rc"
GUEST
}
after_boot_script() { :; }

# staged_check_boot1: staged, finalize unit running, no entry yet; a real reboot whose
# shutdown ran the recorder after the finalization.
staged_check_boot1() {
    expect_fact stage-rc 0
    expect_fact_match status-staged '\(staged\)'
    expect_fact finalize-active active
    expect_fact entries-staged 1
    expect_fact recorder-rc 0
    expect_console 'OSTREE-VM-RESULT: at-shutdown=done'
    expect_console 'reboot: Restarting system'
    expect_fact at-shutdown-rc 0
    expect_fact shutdown-boot mounted
}

# staged_check_finalized: the recorder saw the finalization done (boot 1, at shutdown) and
# boot 2 runs the staged deployment, serial 2 (the variant's plugin deployment is serial 1),
# from the new default entry, with the /etc edit made after staging.
staged_check_finalized() {
    if [ "$BOOT" = 1 ]; then
        expect_fact shutdown-staged-file absent
        expect_fact shutdown-finalize-state inactive
        expect_fact_match finalizing-msg 'Finalizing staged deployment'
        expect_fact_match finalize-journal 'Finalized deployment'
        expect_fact_match status-final ' debian [0-9a-f]+\.2 \(pending\)'
        expect_fact_match status-final '\* debian [0-9a-f]+\.1'
        expect_fact_match next-options 'ostree=/ostree/boot\.'
    else
        expect_fact_match status '\* debian [0-9a-f]+\.2'
        expect_fact etc-staged edited-after-staging
        expect_fact_match cmdline-ostree '^/ostree/boot\.'
        expect_fact default-entry-ostree "$(fact cmdline-ostree)"
        # Boot 1's journal on disk holds the finalization: it ran before the journal left
        # /var (systemd-journal-flush.service's stop), i.e. before /var was unmounted.
        expect_fact_match prev-finalizing-msg 'Finalizing staged deployment'
        expect_fact_match prev-finalize-journal 'Finalized deployment'
        # The shutdown order in that journal: the finalize unit stopped (its ExecStop ran
        # to the end) before the recorder, which needs /boot and /sysroot, was stopped.
        local order
        order=$(grep -aoE 'Stopping ostree-composefs-finalize-staged\.service|Finalized deployment|Stopping ostree-vm-test-shutdown\.service' \
            "$RES/prev-journal" | tr '\n' ' ')
        [ "$order" = "Stopping ostree-composefs-finalize-staged.service Finalized deployment Stopping ostree-vm-test-shutdown.service " ] ||
            fail "boot 1's shutdown order is '$order'"
    fi
}

# expect_no_fact_match NAME REGEX: the fact does not match.
expect_no_fact_match() {
    local v
    v=$(fact "$1")
    [[ ! $v =~ $2 ]] || fail "$1 is '$v', expected not to match /$2/"
}
