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

.PHONY: all setup build release initrd-static check lint test demo vm-test bench fuzz clean

all: release

setup:
	bash scripts/setup.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

# ostree-prepare-root as a static-pie executable (static glibc): nothing for the initrd's
# loader to resolve. --target keeps crt-static away from build scripts and proc-macros.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
initrd-static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST_TRIPLE) -p ostree-prepare-root

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test:
	$(CARGO) test --workspace

# README's test command: everything, from a fresh clone.
check: setup lint test

demo: setup release
	bash scripts/demo.sh

clean:
	$(CARGO) clean
