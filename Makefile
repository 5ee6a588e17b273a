# sockline build and test entry points. `make test` is what CI runs (via .ci/run): it installs
# whatever is missing (scripts/setup.sh, idempotent) and then runs every check and test.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
WASM_TARGET := wasm32-unknown-unknown

.DEFAULT_GOAL := help

# `test` runs its steps in the listed order, even under `make -j`.
.NOTPARALLEL:

.PHONY: help setup fmt-check lint test-native test-wasm doc test

help: ## List the targets
	@echo "Targets:"
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-12s %s\n", $$1, $$2 }'

setup: ## Install the toolchain pieces the tests need (skips what is already there)
	scripts/setup.sh

fmt-check: ## Check formatting (cargo fmt --check)
	$(CARGO) fmt --all -- --check

lint: ## Clippy, warnings as errors: natively (all targets and features) and on wasm32
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	$(CARGO) clippy --lib --tests --target $(WASM_TARGET) -- -D warnings

test-native: ## Run every native test (unit, integration, doc), all features
	$(CARGO) test --all-features

test-wasm: ## Run the core_* integration tests on wasm32 in Node (wasm-bindgen-test-runner)
	$(CARGO) test --target $(WASM_TARGET) --test 'core_*'

doc: ## Build the docs, rustdoc warnings as errors
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features

# Later steps (browser tests, end-to-end tests) get their own targets and are appended to the
# prerequisites of `test` here, after test-wasm. Browser tests should depend on
# `scripts/setup.sh --browser` (chromium, chromedriver, wasm-opt).
test: setup fmt-check lint doc test-native test-wasm ## Everything CI runs: setup, then all checks and tests, in order
