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

clean:
	$(CARGO) clean

# Benchmarks print ratios against references measured in the same run.
bench:
	$(CARGO) run --release -p ostree-composefs-bench

# Each fuzz target for FUZZ_SECONDS (cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= dump image
fuzz:
	for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done
