# ostree composefs boot, in Rust.
#   make demo      the main job: build, deploy and boot a verified composefs root
#   make check     the whole test suite (what CI runs)
#   make install   DESTDIR=… PREFIX=… installs binaries, units, generator, dracut module
SHELL := /bin/bash
PREFIX ?= /usr
DESTDIR ?=
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RELEASE_DIR := $(CARGO_TARGET_DIR)/release

.PHONY: all setup build release check lint test demo vm-test vm-clean bench fuzz clean

all: release

setup:
	bash scripts/setup.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck -x tests/vm/*.sh tests/vm/guest/*.sh tests/vm/*.case tests/vm/cases/*.case scripts/demo.sh

test:
	$(CARGO) test --workspace

# VM boot tests (tests/vm/README.md): boots the test OS under qemu, two VMs at a time.
# Build caches live in build/vm (OSTREE_VM_CACHE); `make vm-clean` drops them.
vm-test: release
	OSTREE_VM_TESTS=1 $(CARGO) test -p ostree-boot-tests --test vm -- --test-threads=2 --nocapture

vm-clean:
	bash -c '. tests/vm/lib.sh && rm_sysroot "$$CACHE"'

# README's test command: everything, from a fresh clone.
check: setup lint test vm-test

demo: setup release
	bash scripts/demo.sh

clean:
	$(CARGO) clean
