#!/bin/bash
# dracut module "ostree": everything the initrd needs to boot an ostree deployment,
# including a verified composefs root.
#
# Into the initrd go:
#   /usr/lib/ostree/ostree-prepare-root            mounts the deployment on /sysroot
#   <generator dir>/ostree-system-generator         pulls the service in when ostree= is
#                                                   set, loads the composefs modules
#   ostree-prepare-root.service + the initrd-root-fs.target.wants link
#   /usr/lib/ostree/prepare-root.conf, /etc/ostree/prepare-root.conf (when present)
#   the composefs.keypath public key (when present)
#   the erofs, overlay and loop kernel modules
#
# The key file is found the way prepare-root reads the config: /etc/ostree/prepare-root.conf
# replaces /usr/lib/ostree/prepare-root.conf completely, and [composefs] keypath defaults
# to /etc/ostree/initramfs-root-binding.key.

# Only when asked for (add_dracutmodules+=" ostree ", see /etc/dracut.conf.d/ostree.conf).
check() {
    require_binaries "$systemdutildir"/systemd /usr/lib/ostree/ostree-prepare-root || return 1
    return 255
}

depends() {
    echo systemd
    return 0
}

installkernel() {
    hostonly='' instmods erofs overlay loop
}

# The first directory in which $1 exists, as a path inside the initrd-to-be.
_ostree_find() {
    local name=$1 dir
    shift
    for dir in "$@"; do
        if [[ -e ${dracutsysrootdir-}$dir/$name ]]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

# Value of [composefs] keypath in a GKeyFile; the last assignment wins, as in GLib.
_ostree_keypath_of() {
    awk '
        /^[ \t]*\[/ { group = $0; sub(/^[ \t]*\[/, "", group); sub(/\].*$/, "", group); next }
        group == "composefs" && /^[ \t]*keypath[ \t]*=/ {
            v = $0; sub(/^[^=]*=[ \t]*/, "", v); value = v; found = 1
        }
        END { if (found) print value }
    ' "$1"
}

install() {
    local conf="" f keypath unit generator

    dracut_install /usr/lib/ostree/ostree-prepare-root

    # Without the generator the initrd still boots (the .wants link below pulls in
    # prepare-root), but composefs then relies on the kernel autoloading its modules.
    if generator=$(_ostree_find ostree-system-generator \
        "$systemdutildir"/system-generators /usr/lib/systemd/system-generators \
        /lib/systemd/system-generators); then
        inst_simple "$generator" "$systemdutildir/system-generators/ostree-system-generator"
    else
        dwarn "ostree: ostree-system-generator not installed; leaving it out of the initrd"
    fi

    for f in /usr/lib/ostree/prepare-root.conf /etc/ostree/prepare-root.conf; do
        if [[ -f ${dracutsysrootdir-}$f ]]; then
            inst_simple "$f"
            conf=$f
        fi
    done

    keypath=/etc/ostree/initramfs-root-binding.key
    if [[ -n $conf ]]; then
        f=$(_ostree_keypath_of "${dracutsysrootdir-}$conf")
        [[ -n $f ]] && keypath=$f
    fi
    if [[ $keypath != /* ]]; then
        dwarn "ostree: composefs.keypath '$keypath' in $conf is not absolute; not installing it"
    elif [[ -f ${dracutsysrootdir-}$keypath ]]; then
        inst_simple "$keypath"
    fi

    unit=$(_ostree_find ostree-prepare-root.service \
        "$systemdsystemunitdir" /usr/lib/systemd/system /lib/systemd/system) \
        || { dfatal "ostree: ostree-prepare-root.service not found"; return 1; }
    inst_simple "$unit" "$systemdsystemunitdir/ostree-prepare-root.service"
    mkdir -p "${initdir}${systemdsystemunitdir}/initrd-root-fs.target.wants"
    ln_r "$systemdsystemunitdir/ostree-prepare-root.service" \
        "$systemdsystemunitdir/initrd-root-fs.target.wants/ostree-prepare-root.service"

    # The generator orders prepare-root after these when composefs is enabled.
    inst_multiple -o "$systemdsystemunitdir/modprobe@.service"
}
