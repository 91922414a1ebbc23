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

.PHONY: all setup build release check lint test demo vm-test bench fuzz clean

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

test:
	$(CARGO) test --workspace

# README's test command: everything, from a fresh clone.
check: setup lint test

demo: setup release
	bash scripts/demo.sh

# Fuzzing (cargo-fuzz, stable toolchain through RUSTC_BOOTSTRAP). New inputs go to a
# scratch corpus; the committed seeds in fuzz/corpus/<target> are only read.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= keyfile cmdline
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
