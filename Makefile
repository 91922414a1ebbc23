# ostree composefs boot, in Rust.
#   make demo      the main job: build, deploy and boot a verified composefs root
#                  (BOOTLOADER=grub or grub-bios: through GRUB 2.14 reading the BLS entry)
#   make check     the whole test suite (what CI runs)
#   make install   DESTDIR=… PREFIX=… installs binaries, units, generator, dracut module
SHELL := /bin/bash
PREFIX ?= /usr
DESTDIR ?=
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RELEASE_DIR := $(CARGO_TARGET_DIR)/release

.PHONY: all setup build release check lint test demo vm-test vm-clean bench fuzz clean \
	install uninstall man bench-generator peer

all: release

setup:
	bash scripts/setup.sh

build:
	$(CARGO) build --workspace

# The shipped binaries only: the bench crate (composefs-rs, tokio, OpenSSL) is built by
# `make bench`, not for every release build. Two builds, because cargo unifies features
# across the packages of one: the initrd binaries get ostree-boot without `writer`.
release:
	$(CARGO) build --release -p ostree-prepare-root -p ostree-system-generator
	$(CARGO) build --release -p ostree-composefs

# ostree-prepare-root as a static-pie executable (static glibc): nothing for the initrd's
# loader to resolve. --target keeps crt-static away from build scripts and proc-macros.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
.PHONY: initrd-static
initrd-static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST_TRIPLE) -p ostree-prepare-root

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ostree-prepare-root -p ostree-system-generator -- -D warnings
	bash scripts/check-initrd-features.sh
	shellcheck -x tests/vm/*.sh tests/vm/guest/*.sh tests/vm/*.case tests/vm/cases/*.case scripts/demo.sh \
		scripts/peer-sid.sh scripts/peer-run.sh scripts/check-initrd-features.sh

test:
	$(CARGO) test --workspace --exclude ostree-boot-tests

# VM boot tests (tests/vm/README.md): boots the test OS under qemu, two VMs at a time.
# Build caches live in build/vm (OSTREE_VM_CACHE); `make vm-clean` drops them.
vm-test: release
	OSTREE_VM_TESTS=1 $(CARGO) test -p ostree-boot-tests --test vm -- --test-threads=2 --nocapture

vm-clean:
	bash -c '. tests/vm/lib.sh && rm_sysroot "$$CACHE"'

# The upstream peer the differential tests compare with (Debian sid's ostree 2026.x with
# composefs): built once under build/peer-sid, a no-op when its stamp is current.
peer:
	bash scripts/peer-sid.sh

# README's test command: everything, from a fresh clone.
check: setup lint peer test vm-test

demo: setup release
	BOOTLOADER="$(BOOTLOADER)" bash scripts/demo.sh

# Fuzzing (cargo-fuzz, stable toolchain through RUSTC_BOOTSTRAP). New inputs go to a
# scratch corpus; the committed seeds in fuzz/corpus/<target> are only read.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= keyfile cmdline dump image commit commitmeta dirtree dirmeta pubkeys staged units sdboot
FUZZ_WORK ?= $(CARGO_TARGET_DIR)/fuzz-corpus
fuzz:
	SETUP_FUZZ=1 bash scripts/setup.sh
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/$$t && \
		(cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t $(FUZZ_WORK)/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

clean:
	$(CARGO) clean

# Benchmarks print ratios against references measured in the same run.
bench:
	$(CARGO) run --release -p ostree-composefs-bench
	$(CARGO) build --release -p ostree-composefs
	bash scripts/bench-deploy.sh

# ---------------------------------------------------------------------------------------
# Installation.
#
# Everything lands under $(PREFIX) (default /usr), inside $(DESTDIR). The systemd
# directories come from systemd.pc with its prefixes redefined to $(PREFIX): Debian 12's
# systemd.pc has rootprefix="" and would otherwise send units to /lib/systemd/system while
# the binaries go to /usr/lib. With merged /usr both are the same place, and /usr/lib is
# the path ostree's units, dracut and the generator's dependency links use. Without
# pkg-config the same paths are spelled out. dracut only reads modules from
# /usr/lib/dracut/modules.d, so PREFIX=/usr is the one that boots.
#
# Binaries are taken from $(RELEASE_DIR) (run `make release` first); install never
# builds, so it can run as root on a tree built by a user.
sysconfdir ?= /etc
PKG_CONFIG ?= pkg-config
sd_var = $(shell $(PKG_CONFIG) --define-variable=prefix=$(PREFIX) \
	--define-variable=rootprefix=$(PREFIX) --define-variable=root_prefix=$(PREFIX) \
	--variable=$(1) systemd 2>/dev/null)
systemdsystemunitdir ?= $(or $(call sd_var,systemdsystemunitdir),$(PREFIX)/lib/systemd/system)
systemdsystemgeneratordir ?= $(or $(call sd_var,systemdsystemgeneratordir),$(PREFIX)/lib/systemd/system-generators)
tmpfilesdir ?= $(or $(call sd_var,tmpfilesdir),$(PREFIX)/lib/tmpfiles.d)
bindir ?= $(PREFIX)/bin
libostreedir ?= $(PREFIX)/lib/ostree
dracutmoduledir ?= $(PREFIX)/lib/dracut/modules.d/50ostree
dracutconfdir ?= $(sysconfdir)/dracut.conf.d
kernelinstalldir ?= $(PREFIX)/lib/kernel
mandir ?= $(PREFIX)/share/man
# ostree's --with-dracut=yesbutnoconf: set to no to leave /etc/dracut.conf.d alone.
INSTALL_DRACUT_CONF ?= yes

MAN_SRC := $(wildcard man/*.[0-9].md)
MAN_OUT := $(patsubst man/%.md,build/man/%,$(MAN_SRC))
KERNEL_INSTALL_PLUGINS := $(wildcard units/kernel-install/*.install)
UNITS := ostree-prepare-root.service ostree-remount.service ostree-grub-bless.service \
	ostree-composefs-finalize-staged.service ostree-composefs-finalize-staged-hold.service \
	ostree-composefs-finalize-staged.path

# 'dest|mode|source', one per installed file; uninstall removes exactly these.
entry = '$(1)|$(2)|$(3)'
INSTALL_FILES := \
	$(call entry,$(libostreedir)/ostree-prepare-root,755,$(RELEASE_DIR)/ostree-prepare-root) \
	$(call entry,$(libostreedir)/ostree-remount,755,$(RELEASE_DIR)/ostree-remount) \
	$(call entry,$(systemdsystemgeneratordir)/ostree-system-generator,755,$(RELEASE_DIR)/ostree-system-generator) \
	$(call entry,$(bindir)/ostree-composefs,755,$(RELEASE_DIR)/ostree-composefs) \
	$(foreach u,$(UNITS),$(call entry,$(systemdsystemunitdir)/$(u),644,units/$(u))) \
	$(call entry,$(tmpfilesdir)/ostree-tmpfiles.conf,644,units/tmpfiles.d/ostree-tmpfiles.conf) \
	$(call entry,$(dracutmoduledir)/module-setup.sh,755,units/dracut/50ostree/module-setup.sh) \
	$(call entry,$(libostreedir)/grub.cfg,644,units/grub/grub.cfg) \
	$(foreach p,$(KERNEL_INSTALL_PLUGINS),$(call entry,$(kernelinstalldir)/install.d/$(notdir $(p)),755,$(p))) \
	$(foreach m,$(MAN_OUT),$(call entry,$(mandir)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)),644,$(m))) \
	$(if $(filter yes,$(INSTALL_DRACUT_CONF)),$(call entry,$(dracutconfdir)/ostree.conf,644,units/dracut/ostree.conf))

# Files another package may own: installed only where absent, uninstalled only while
# they still hold our content. /usr/lib/kernel/install.conf is systemd's or rpm-ostree's
# on many machines; ours only sets layout=ostree where nothing else says anything.
INSTALL_KEEP := \
	$(call entry,$(kernelinstalldir)/install.conf,644,units/kernel/install.conf)

# Directories that belong to us alone: uninstall removes them once empty.
OWN_DIRS := $(dracutmoduledir) $(libostreedir)

man: $(MAN_OUT)

build/man/%: man/%.md
	@mkdir -p build/man
	go-md2man -in $< -out $@

install: man
	@set -e; for e in $(INSTALL_FILES); do \
		IFS='|' read -r dest mode src <<<"$$e"; \
		[ -f "$$src" ] || { echo "install: $$src is missing (run 'make release' first)" >&2; exit 1; }; \
		echo "  INSTALL $(DESTDIR)$$dest"; \
		install -D -m "$$mode" "$$src" "$(DESTDIR)$$dest"; \
	done; \
	for e in $(INSTALL_KEEP); do \
		IFS='|' read -r dest mode src <<<"$$e"; \
		if [ -e "$(DESTDIR)$$dest" ] || [ -L "$(DESTDIR)$$dest" ]; then \
			echo "  KEEP    $(DESTDIR)$$dest (exists; ours is $$src)"; continue; fi; \
		echo "  INSTALL $(DESTDIR)$$dest"; \
		install -D -m "$$mode" "$$src" "$(DESTDIR)$$dest"; \
	done

uninstall:
	@set -e; for e in $(INSTALL_FILES); do \
		IFS='|' read -r dest mode src <<<"$$e"; \
		if [ -e "$(DESTDIR)$$dest" ] || [ -L "$(DESTDIR)$$dest" ]; then \
			echo "  RM      $(DESTDIR)$$dest"; rm -f "$(DESTDIR)$$dest"; fi; \
	done; \
	for e in $(INSTALL_KEEP); do \
		IFS='|' read -r dest mode src <<<"$$e"; \
		if cmp -s "$$src" "$(DESTDIR)$$dest"; then \
			echo "  RM      $(DESTDIR)$$dest"; rm -f "$(DESTDIR)$$dest"; fi; \
	done; \
	for d in $(OWN_DIRS); do [ ! -d "$(DESTDIR)$$d" ] || rmdir --ignore-fail-on-non-empty "$(DESTDIR)$$d"; done

# The generator's median run time on a composefs real-root input, against `true`.
bench-generator:
	$(CARGO) bench -p ostree-system-generator --bench generator
