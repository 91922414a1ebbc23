# The deploy step of the harness, in one place so that the deployer can be switched.
# shellcheck shell=bash
#
# vm_deploy SYSROOT TREE VARIANT KARGS
#   Makes SYSROOT (a directory that becomes the root of the disk) an ostree sysroot with
#   stateroot $STATEROOT, commits TREE into its repo as $OSTREE_REF and deploys it with the
#   kernel and initrd found in TREE/usr/lib/modules/<kver>/.
#
# Variants:
#   legacy     the host's `ostree` CLI (Debian 12, 2022.7): no composefs image.
#   composefs  our `ostree-composefs deploy` writes the deployment with `.ostree.cfs`.
#   signed     the same, signed with a transient key added to the initrd.
# The composefs variants need the kernel-install plugin (issue 8); until it is on main they
# fail with a message saying so.

vm_deploy() {
    local sysroot=$1 tree=$2 variant=$3 kargs=$4 k
    local -a karg_opts=()
    for k in $kargs; do karg_opts+=("--karg=$k"); done
    rm_sysroot "$sysroot"
    mkdir -p "$sysroot"
    ostree admin init-fs "$sysroot" >&2
    ostree admin os-init "$STATEROOT" --sysroot="$sysroot" >&2
    # ostree's own notion of a commit: the real CLI checks the tree the same way it would
    # for any OS build.
    ostree --repo="$sysroot/ostree/repo" commit --branch="$OSTREE_REF" \
        --subject="ostree VM harness test OS" --tree=dir="$tree" >&2
    case $variant in
        legacy)
            ostree admin deploy --sysroot="$sysroot" --os="$STATEROOT" "${karg_opts[@]}" "$OSTREE_REF" >&2
            ;;
        composefs | verity | signed)
            deployer_supports "$variant" ||
                die "variant $variant needs \`ostree-composefs deploy\` (kernel-install plugin, issue 8), not built yet"
            local cli=$RELEASE_DIR/ostree-composefs
            # Interface to settle with issue 8: deploy the ref into the sysroot, composefs
            # image written, signed with a transient key when asked.
            local sign=()
            [ "$variant" = signed ] && sign=(--sign=transient)
            "$cli" deploy --sysroot="$sysroot" --os="$STATEROOT" "${karg_opts[@]}" "${sign[@]}" "$OSTREE_REF" >&2
            ;;
        *) die "unknown deploy variant '$variant'" ;;
    esac
}

# deployer_supports VARIANT: whether this checkout can make that variant.
deployer_supports() {
    case $1 in
        legacy) return 0 ;;
        *) [ -x "$RELEASE_DIR/ostree-composefs" ] && "$RELEASE_DIR/ostree-composefs" deploy --help >/dev/null 2>&1 ;;
    esac
}

# bls_entry SYSROOT: prints KEY=VALUE lines (linux, initrd, options) of the default entry.
bls_entry() {
    local sysroot=$1 entry
    entry=$(find "$sysroot/boot/loader/entries/" -name '*.conf' | LC_ALL=C sort | tail -n1)
    [ -n "$entry" ] || die "no BLS entry under $sysroot/boot/loader/entries"
    awk '$1 == "linux" || $1 == "initrd" || $1 == "options" {
            k = $1; $1 = ""; sub(/^ /, ""); print k "=" $0 }' "$entry"
}
