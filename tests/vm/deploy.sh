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
#   composefs  then our kernel-install plugin (`kernel-install add` with layout=ostree)
#              deploys the same commit again with `.ostree.cfs`; keep=1 drops the first.
#   verity     the same, signed with a throwaway key so that the commit carries its composefs
#              digest; the verity pass (stages.sh) enables fs-verity afterwards.
#   signed     the same, signing=transient: fresh key, public key appended to the initrd.
#   signed2    two transient-signed deploys (keep=2): the older initrd carries another key;
#              its initrd is kept as initrd-prev.img next to the disk.
#   verity2    like verity, then a second, different commit deployed the same way (keep=2),
#              with /etc/kernel/tries = $VERITY2_TRIES: the GRUB cases' update on trial.
#   signedkey  signing=key with a key made here (KEYDIR/deploy.secret); KEYDIR/other.* is a
#              second key. The initrd gets no key: cases add one (INITRD_KEY).
#   sdboot2    the host's deployment of generation 1 and generation 2 committed on
#              $SDBOOT_REF2; the ESP pass (sdboot.sh) then deploys both through
#              kernel-install in the guest onto the ESP (vfat-boot=), the second with tries.
#   peer       the same commit deployed again by upstream's `ostree admin deploy` (Debian
#              sid's 2026.x with composefs, the peer chroot of scripts/peer-sid.sh, run by
#              scripts/peer-run.sh), which writes the `.ostree.cfs` ("maybe" verity: no
#              object digests, the host has no fs-verity); the host's deployment is undeployed.
#   peerverity upstream's deployment in signed mode, signed with ours: a second commit adds
#              /usr/lib/ostree/prepare-root.conf with `enabled = signed`, our
#              `ostree-composefs commit-metadata` seals it and `ostree-composefs sign` signs it
#              with KEYDIR/deploy.secret (the initrd gets no key: cases add one with
#              INITRD_KEY); then upstream's `ostree admin deploy` as in peer. The tree's config makes upstream compute
#              every file's fs-verity digest itself (verity "yes": the host needs no
#              fs-verity) and refuse the deploy unless its image's digest is the one the
#              signed commit names; the verity pass enables fs-verity afterwards. Our
#              kernel-install plugin never runs.
# The plugin is the real thing as installed, driven by the host's kernel-install (systemd
# 252) with its configuration roots pointed at temporary files.

# Boots the second verity2 deployment gets to reach boot-complete.target (GRUB cases).
VERITY2_TRIES=2

vm_deploy() {
    local sysroot=$1 tree=$2 variant=$3 kargs=$4 keydir=${5:-} k
    local -a karg_opts=()
    for k in $kargs; do karg_opts+=("--karg=$k"); done
    rm_sysroot "$sysroot"
    mkdir -p "$sysroot"
    ostree admin init-fs "$sysroot" >&2
    ostree admin os-init "$STATEROOT" --sysroot="$sysroot" >&2
    # /boot is a directory of this root filesystem and GRUB (the grub-* cases) reads the
    # entries from there: their paths must carry /boot/ (ostree's sysroot.bootprefix; the
    # host's ostree 2022.7 ignores it, our deployer honours it).
    ostree config --repo="$sysroot/ostree/repo" set sysroot.bootprefix true
    # ostree's own notion of a commit: the real CLI checks the tree the same way it would
    # for any OS build.
    ostree --repo="$sysroot/ostree/repo" commit --branch="$OSTREE_REF" \
        --subject="ostree VM harness test OS" --tree=dir="$tree" >&2
    ostree admin deploy --sysroot="$sysroot" --os="$STATEROOT" "${karg_opts[@]}" "$OSTREE_REF" >&2
    case $variant in
        legacy) ;;
        composefs) plugin_deploy "$sysroot" "$tree" none 1 "$kargs" ;;
        verity)
            # The image records the objects' fs-verity digests only when the commit carries
            # its composefs digest (the host cannot measure: no fs-verity here), and the
            # deployer seals a commit when it signs it: sign with a throwaway key.
            [ -n "$keydir" ] || die "verity needs a key directory"
            gen_ed25519_key "$keydir" deploy
            plugin_deploy "$sysroot" "$tree" "key:$keydir/deploy.secret" 1 "$kargs"
            ;;
        signed) plugin_deploy "$sysroot" "$tree" transient 1 "$kargs" ;;
        signedkey)
            [ -n "$keydir" ] || die "signedkey needs a key directory"
            gen_ed25519_key "$keydir" deploy
            gen_ed25519_key "$keydir" other
            plugin_deploy "$sysroot" "$tree" "key:$keydir/deploy.secret" 1 "$kargs"
            ;;
        signed2)
            plugin_deploy "$sysroot" "$tree" transient 2 "$kargs"
            plugin_deploy "$sysroot" "$tree" transient 2 "$kargs"
            ;;
        verity2)
            # Two different commits (the second adds a file), both deployed with their
            # images: a case can give the newer one the older one's verity-enabled image.
            [ -n "$keydir" ] || die "verity2 needs a key directory"
            gen_ed25519_key "$keydir" deploy
            plugin_deploy "$sysroot" "$tree" "key:$keydir/deploy.secret" 2 "$kargs"
            commit_generation2 "$sysroot" "$tree" "$OSTREE_REF"
            plugin_deploy "$sysroot" "$tree" "key:$keydir/deploy.secret" 2 "$kargs" "$VERITY2_TRIES"
            ;;
        sdboot2)
            # systemd-boot (sdboot.sh): only the host's deployment and a second commit on
            # $SDBOOT_REF2 here; the host cannot mount the ESP, so both composefs
            # deployments are made by kernel-install in the guest (the ESP pass), with
            # this key. Fs-verity on the objects comes from the verity pass.
            [ -n "$keydir" ] || die "sdboot2 needs a key directory"
            gen_ed25519_key "$keydir" deploy
            commit_generation2 "$sysroot" "$tree" "$SDBOOT_REF2"
            ;;
        peer) peer_deploy "$sysroot" "${karg_opts[@]}" ;;
        peerverity)
            [ -n "$keydir" ] || die "peerverity needs a key directory"
            gen_ed25519_key "$keydir" deploy
            peer_signed_commit "$sysroot" "$tree" "$keydir/deploy.secret"
            peer_deploy "$sysroot" "${karg_opts[@]}"
            ;;
        *) die "unknown deploy variant '$variant'" ;;
    esac
}

# commit_generation2 SYSROOT TREE BRANCH: TREE plus /usr/lib/ostree-vm-test/generation
# (= 2, what the guest reports) committed on BRANCH.
commit_generation2() {
    local sysroot=$1 tree=$2 branch=$3
    mkdir -p "$sysroot.layer/usr/lib/ostree-vm-test"
    echo 2 >"$sysroot.layer/usr/lib/ostree-vm-test/generation"
    ostree --repo="$sysroot/ostree/repo" commit --branch="$branch" \
        --subject="ostree VM harness test OS, generation 2" \
        --tree=dir="$tree" --tree=dir="$sysroot.layer" >&2
    rm -rf "$sysroot.layer"
}

# peer_deploy SYSROOT KARG_OPTS...: upstream's `ostree admin deploy` of $OSTREE_REF (the
# peer chroot, SYSROOT bound at its own path), then its `undeploy` of the host's older
# deployment, so that the disk holds upstream's deployment only.
peer_deploy() {
    local sysroot=$1 a cmd
    shift
    cmd="ostree admin deploy --sysroot='$sysroot' --os='$STATEROOT'"
    for a in "$@"; do cmd+=" '$a'"; done
    cmd+=" '$OSTREE_REF' && ostree admin undeploy --sysroot='$sysroot' 1"
    bash "$REPO_ROOT/scripts/peer-run.sh" -b "$sysroot" -- "$cmd" >&2 ||
        die "upstream's ostree admin deploy (peer chroot) failed"
}

# peer_signed_commit SYSROOT TREE SECRET: a new commit of $OSTREE_REF that ships the
# prepare-root.conf of a signed composefs OS (upstream's deploy reads it from the tree),
# sealed and signed by our `ostree-composefs`. The repo gets no `ex-integrity.composefs`:
# the guest's ostree (trixie's, built without composefs) then refuses to open it ("composefs
# required, but libostree compiled without support"), and upstream's deploy needs only the
# tree's config; the verity pass enables fs-verity as `ostree admin post-copy` would.
peer_signed_commit() {
    local sysroot=$1 tree=$2 secret=$3 repo=$1/ostree/repo layer=$1.layer
    mkdir -p "$layer/usr/lib/ostree"
    printf '[composefs]\nenabled = signed\n' >"$layer/usr/lib/ostree/prepare-root.conf"
    ostree --repo="$repo" commit --branch="$OSTREE_REF" \
        --subject="ostree VM harness test OS, signed composefs" \
        --tree=dir="$tree" --tree=dir="$layer" >&2
    rm -rf "$layer"
    "$RELEASE_DIR/ostree-composefs" commit-metadata --repo="$repo" "$OSTREE_REF" >&2 ||
        die "ostree-composefs commit-metadata failed"
    "$RELEASE_DIR/ostree-composefs" sign --repo="$repo" --secret="$secret" "$OSTREE_REF" >&2 ||
        die "ostree-composefs sign failed"
}

# plugin_deploy SYSROOT TREE SIGNING KEEP KARGS: `kernel-install add` of the tree's kernel
# and initrd through our plugin, configured for SYSROOT.
plugin_deploy() {
    local sysroot=$1 tree=$2 signing=$3 keep=$4 kargs=$5 tries=${6:-} kv w
    deployer_supports composefs || die "the kernel-install plugin (units/kernel-install, issue 8) is not there yet"
    kv=$(kver)
    w=$(mktemp -d)
    mkdir -p "$w/kernel" "$w/ki/etc/ostree"
    cp "$REPO_ROOT/units/kernel-install/install.conf" "$w/kernel/install.conf"
    # Boot assessment (GRUB): the tries plugin arms the counter in boot/grub/grubenv.
    [ -z "$tries" ] || printf '%s\n' "$tries" >"$w/kernel/tries"
    {
        printf '[kernel-install]\nsysroot=%s\nstateroot=%s\nref=%s\nkargs=%s\nkeep=%s\n' \
            "$sysroot" "$STATEROOT" "$OSTREE_REF" "$kargs" "$keep"
        case $signing in
            key:*) printf 'signing=key\nsigning-key=%s\n' "${signing#key:}" ;;
            *) printf 'signing=%s\n' "$signing" ;;
        esac
    } >"$w/ki/etc/ostree/kernel-install.conf"
    KERNEL_INSTALL_CONF_ROOT=$w/kernel BOOT_ROOT=$sysroot/boot \
        MACHINE_ID=3e0484f3634a418b8e6a39e8828b03e3 \
        KERNEL_INSTALL_PLUGINS="$REPO_ROOT/units/kernel-install/87-ostree-grub-tries.install $REPO_ROOT/units/kernel-install/88-ostree-composefs.install" \
        OSTREE_COMPOSEFS=$RELEASE_DIR/ostree-composefs OSTREE_KERNEL_INSTALL_CONF_ROOT=$w/ki \
        kernel-install --verbose add "$kv" "$tree/usr/lib/modules/$kv/vmlinuz" \
        "$tree/usr/lib/modules/$kv/initramfs.img" >&2 ||
        { rm -rf "$w"; die "kernel-install add (our plugin, signing=$signing) failed"; }
    rm -rf "$w"
}

# gen_ed25519_key DIR NAME: DIR/NAME.secret in `ostree sign`'s format (base64 of the
# 32-byte seed and the 32-byte public key) and DIR/NAME.pub (base64 public key), made with
# openssl (the last 32 bytes of the DER encodings are the raw seed and key).
gen_ed25519_key() {
    local dir=$1 name=$2
    mkdir -p "$dir"
    rm -f "$dir/$name.secret"
    openssl genpkey -algorithm ed25519 -outform DER -out "$dir/$name.der" 2>/dev/null
    openssl pkey -inform DER -in "$dir/$name.der" -pubout -outform DER -out "$dir/$name.pub.der"
    # The signer refuses a secret key that group or others can read (ssh's rule): 0600.
    (umask 077 && { tail -c 32 "$dir/$name.der"; tail -c 32 "$dir/$name.pub.der"; } |
        base64 -w0 >"$dir/$name.secret")
    tail -c 32 "$dir/$name.pub.der" | base64 -w0 >"$dir/$name.pub"
    echo >>"$dir/$name.pub"
    rm -f "$dir/$name.der" "$dir/$name.pub.der"
}

# deployer_supports VARIANT: whether this checkout can make that variant.
deployer_supports() {
    case $1 in
        legacy) return 0 ;;
        *) [ -f "$REPO_ROOT/units/kernel-install/88-ostree-composefs.install" ] &&
            [ -x "$RELEASE_DIR/ostree-composefs" ] &&
            "$RELEASE_DIR/ostree-composefs" kernel-install --help >/dev/null 2>&1 ;;
    esac
}

# bls_entry SYSROOT [N]: prints KEY=VALUE lines (linux, initrd, options) of the default
# entry (the highest version, as bootloaders sort them), or the Nth from it.
bls_entry() {
    local sysroot=$1 nth=${2:-1} entry
    entry=$(grep -H '^version ' "$sysroot"/boot/loader/entries/*.conf 2>/dev/null |
        sort -t' ' -k2,2nr | sed -n "${nth}p" | cut -d: -f1)
    [ -n "$entry" ] || die "no BLS entry under $sysroot/boot/loader/entries"
    awk '$1 == "linux" || $1 == "initrd" || $1 == "options" {
            k = $1; $1 = ""; sub(/^ /, ""); print k "=" $0 }' "$entry"
}
