# sockline build and test entry points. `make test` is what CI runs (via .ci/run): it installs
# whatever is missing (scripts/setup.sh, idempotent) and then runs every check and test.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
WASM_TARGET := wasm32-unknown-unknown

.DEFAULT_GOAL := help

# `test` runs its steps in the listed order, even under `make -j`.
.NOTPARALLEL:

.PHONY: help setup fmt-check lint test-native test-wasm doc test pkg size size-report test-browser test-types \
	www www-dev server demo test-e2e test-tabs docs-screenshot

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

# tests/cluster.rs starts its own redis-server (a free port, persistence off); without the binary
# it would skip, so SOCKLINE_REQUIRE_REDIS=1 makes a missing one a failure here.
test-native: ## Run every native test (unit, integration, doc), all features (tests/cluster.rs starts redis-server)
	scripts/setup.sh --redis
	SOCKLINE_REQUIRE_REDIS=1 $(CARGO) test --all-features

test-wasm: ## Run the core_* integration tests on wasm32 in Node (wasm-bindgen-test-runner)
	$(CARGO) test --target $(WASM_TARGET) --test 'core_*'

doc: ## Build the docs, rustdoc warnings as errors
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features

# The npm package, offline: a wasm32 build with the size profile (`[profile.wasm]` in Cargo.toml:
# opt-level "z", LTO, one codegen unit; the release profile is opt-level 3 for native code): the
# wasm core (src/wasm: two exports over linear memory, no imports, no wasm-bindgen), wasm-opt
# (names, producers and debug sections stripped), then js/src/ compiled by tsc into pkg/: the
# core's TypeScript driver (sockline.js, core/), the package entry with the tab-sharing client
# (index.js, client.js, tabs/) and the React bindings (react/); the .d.ts keep their doc
# comments, the .js are minified (esbuild); js/'s npm packages are installed once. Then
# package.json (scripts/pkg-json.mjs) and the size (`make size` checks it against the budget).
# wasm-pack is not used: it would try to download tools.
# scripts/wasm-trap-panics.mjs turns panics and allocation failures into an immediate trap (what
# they end in anyway on this target: std's message goes to a stderr wasm32 lacks), which leaves
# core::fmt out of the package; it uses binaryen's JS API (tools/).
# wasm-opt is binaryen's npm build (tools/, pinned; a JS/wasm program, nothing native is
# downloaded); Debian's binaryen 108 is older than the features rustc enables for wasm32
# (multivalue included); the target_features section is metadata only and is dropped.
WASM_OPT := tools/node_modules/.bin/wasm-opt
ESBUILD := tools/node_modules/.bin/esbuild
WASM_OPT_FLAGS := -Oz --converge --enable-reference-types --enable-bulk-memory \
	--enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
	--enable-multivalue --strip-target-features --strip-debug --strip-producers
pkg: ## Build the npm package in pkg/ (offline once js/ and tools/ have their npm packages; then `npm install ./pkg` or `npm pack ./pkg`)
	scripts/setup.sh --rust --js --tools
	$(CARGO) build --lib --profile wasm --target $(WASM_TARGET)
	rm -rf pkg
	mkdir pkg
	node scripts/wasm-trap-panics.mjs target/$(WASM_TARGET)/wasm/sockline.wasm target/$(WASM_TARGET)/wasm/sockline.trapping.wasm
	$(WASM_OPT) $(WASM_OPT_FLAGS) target/$(WASM_TARGET)/wasm/sockline.trapping.wasm -o pkg/sockline_bg.wasm
	cd js && node_modules/.bin/tsc -p tsconfig.json --emitDeclarationOnly && \
		node_modules/.bin/tsc -p tsconfig.json --declaration false --removeComments
	cd pkg && for f in $(PKG_JS); do \
		../$(ESBUILD) $$f --minify --format=esm --log-level=warning --outfile=$$f --allow-overwrite; done
	node scripts/pkg-json.mjs
	@$(MAKE) --no-print-directory size-report

# PKG_JS: every module tsc writes into pkg/ (minified one by one; apps bundle them).
PKG_JS := sockline.js $(addprefix core/,abi.js client.js options.js types.js util.js) index.js client.js \
	$(addprefix tabs/,emitter.js leader.js locks.js pending.js seen.js solo.js store.js wire.js) react/index.js
# The budget is for what a page loads to use `SocklineClient`'s connection: the .wasm and the JS
# of the wasm face (sockline.js with core/, as a bundler ships it: one chunk), each `gzip -9`.
# The tab-sharing client (what the package entry index.js adds: client.js, tabs/) is printed
# beside it: the entry's bundle less the face's. `make pkg` prints the size; `make size` (the
# last step of `make test`) also fails above the budget.
SIZE_BUDGET := 30720
BUNDLE = $(ESBUILD) $(1) --bundle --minify --format=esm --log-level=warning | gzip -9 | wc -c
SIZE_REPORT = wasm=$$(gzip -9 -c pkg/sockline_bg.wasm | wc -c); js=$$($(call BUNDLE,pkg/sockline.js)); \
	entry=$$($(call BUNDLE,pkg/index.js)); tabs=$$((entry - js)); total=$$((wasm + js)); \
	printf 'pkg size (gzip -9): sockline_bg.wasm %d B + sockline.js %d B = %d B (%.1f KiB); budget %d B, headroom %d B; tab-sharing client %d B more (%d B in all)\n' \
		$$wasm $$js $$total $$(awk "BEGIN { print $$total / 1024 }") $(SIZE_BUDGET) $$(($(SIZE_BUDGET) - total)) $$tabs $$((total + tabs))
size-report:
	@$(SIZE_REPORT)
size: ## Print the gzipped size of pkg/ (.wasm + JS glue, gzip -9); fails above the 30 KiB budget
	@$(SIZE_REPORT); \
		if [ $$total -gt $(SIZE_BUDGET) ]; then \
			echo "pkg size: $$total B is over the budget of $(SIZE_BUDGET) B (30 KiB)" >&2; exit 1; \
		fi

# Browser tests (tests/browser.mjs) of the built package's wasm face in headless Chromium
# (playwright-core, www/'s npm packages, drives Debian's /usr/bin/chromium) against the reference
# server. The harness starts the server, gives the tests a control URL (SOCKLINE_HARNESS: kill,
# restart, tokens, /notify) and stops everything when they end.
test-browser: pkg server ## Run the browser tests (tests/browser.mjs) in headless Chromium against the reference server
	scripts/setup.sh --www --browser
	timeout 300 node scripts/browser-harness.mjs --server $(SERVER_BIN) --timeout-s 280 -- \
		node tests/browser.mjs --pkg pkg

# The demo (www/: React + Vite, using pkg/ through file:../pkg) and its end-to-end tests.
PORT ?= 8080
SERVER_BIN := target/debug/sockline-server

www: pkg ## Build the demo into www/dist (installs www/'s npm packages once)
	scripts/setup.sh --www
	cd www && node_modules/.bin/vite build --logLevel warn

server: ## Build the reference server (debug)
	$(CARGO) build --features server --bin sockline-server

demo: www server ## Build everything and serve the demo on 127.0.0.1 (PORT=8080 by default)
	@echo
	@echo "sockline demo: open http://127.0.0.1:$(PORT)/?user=alice (and ?user=bob in another tab)"
	@echo
	exec $(SERVER_BIN) --dev --static-dir www/dist --addr 127.0.0.1:$(PORT)

# playwright-core drives Debian's /usr/bin/chromium (nothing is downloaded); every server listens
# on an OS-chosen 127.0.0.1 port; the runner stops everything itself (270 s overall deadline).
# www/dist-dev is a development build: React's StrictMode double mount only happens there.
E2E := timeout 330 node www/e2e/run.mjs --server $(SERVER_BIN) --dist www/dist --dist-dev www/dist-dev
www-dev: www
	cd www && NODE_ENV=development node_modules/.bin/vite build --mode development --outDir dist-dev --logLevel warn

test-types: ## Type-check js/types-test/ against pkg/'s generated .d.ts (misspelt events must not compile); needs `make pkg`
	cd js && node_modules/.bin/tsc -p tsconfig.types-test.json

test-e2e: www www-dev server ## Run the demo's end-to-end tests (www/e2e/run.mjs) in headless Chromium
	scripts/setup.sh --browser
	$(E2E)

docs-screenshot: www www-dev server ## Retake docs/demo.png (the e2e tests, with the demo screenshot)
	$(E2E) --docs-screenshot docs/demo.png

# Tab sharing and the durable outbox (issue 12), token refresh and expiry in the browser: several pages of one origin run the bare page
# www/e2e/tabs/ (pkg/ and the page are served by playwright's routing, so a reload works offline)
# against the reference server; www/e2e/tabs.mjs stops everything itself (180 s overall deadline).
test-tabs: pkg server ## Run the tab-sharing and durable-outbox tests (www/e2e/tabs.mjs) in headless Chromium
	scripts/setup.sh --www --browser
	timeout 240 node www/e2e/tabs.mjs --server $(SERVER_BIN) --pkg pkg

test: setup fmt-check lint doc test-native test-wasm pkg test-browser test-types test-tabs test-e2e test-next test-node soak test-python size ## Everything CI runs: setup, then all checks and tests, in order

# The Next.js example (examples/nextjs/: App Router, a server component rendering sockline/react's
# provider, client components with its hooks; pkg/ installed as a copy, as from a registry):
# `npm run build` (a copy of the .wasm into public/ for /public-wasm, then `next build`: Turbopack,
# with its type check; telemetry off), then examples/nextjs/e2e/run.mjs serves it with
# `next start` against the reference server and drives Chromium (90 s deadline).
NEXT_ENV := NEXT_TELEMETRY_DISABLED=1
.PHONY: test-next
test-next: pkg server ## Build the Next.js example and test it in headless Chromium against the reference server
	scripts/setup.sh --next --browser
	cd examples/nextjs && $(NEXT_ENV) timeout 300 npm run --silent build
	$(NEXT_ENV) timeout 120 node examples/nextjs/e2e/run.mjs --server $(SERVER_BIN)

# sockline in Node (examples/node/: pkg/ installed as a copy, `ws` as the WebSocket): node:test
# against the reference server, which the test starts, kills and restarts itself.
.PHONY: test-node
test-node: pkg server ## Run the Node test (examples/node: init(), ws, a /notify, reconnect after a server kill)
	scripts/setup.sh --node
	cd examples/node && SOCKLINE_SERVER_BIN=../../$(SERVER_BIN) timeout 120 node --test client.test.mjs

# The churn soak (examples/soak.rs), 60 s against the debug server it starts itself: clients
# connect, join, send, get /notify fan-out, are cut through FaultProxy and resume, and are
# replaced by new sessions. Fails on any lost, duplicated or reordered event, unacked send or
# missed fence, or a server RSS/fd drift over 100 % (lenient: in a run this short the first
# window is still the warm-up). The 10-minute run and its figures: see examples/soak.rs.
SOAK_ARGS ?= --duration 60s --max-drift-pct 100
.PHONY: soak
soak: ## Run the 60-second churn soak against the reference server (examples/soak.rs)
	$(CARGO) build --features server --bin sockline-server
	$(CARGO) build --all-features --example soak
	timeout 300 target/debug/examples/soak --server-bin $(SERVER_BIN) $(SOAK_ARGS)

# The outside client: pytest in tests/python speaks PROTOCOL.md (auth, rooms, send/ack, seq,
# ping/pong, resume after a cut) to the debug server, which each run starts with --dev on a
# free port. Tests of rules the server does not follow yet are strict xfails naming the rule.
.PHONY: test-python
test-python: ## Run the Python wire-protocol tests (tests/python, pytest in .venv) against the reference server
	scripts/setup.sh --python
	$(CARGO) build --features server --bin sockline-server
	SOCKLINE_SERVER_BIN=$(SERVER_BIN) timeout 300 .venv/bin/python -m pytest -q tests/python

# Fuzzing (fuzz/: cargo-fuzz + libFuzzer, nightly only): each target for FUZZ_SECONDS (600) s,
# one at a time; prints executions and crashes per target and fails on a crash. Without nightly
# it says so and exits 0. `make test` replays every corpus file and every crash ever found on
# stable (tests/fuzz_corpus.rs, part of `cargo test --all-features`). See fuzz/README.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= frame json core server
.PHONY: fuzz fuzz-merge
fuzz: ## Run every fuzz target for FUZZ_SECONDS (600) s each on nightly (fuzz/run.sh); skips, saying so, without nightly
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh run

fuzz-merge: ## Fold the inputs `make fuzz` found into fuzz/corpus/ (only those that add coverage)
	FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh merge

# Not part of `test`: a side-by-side load benchmark of the reference server against a bare
# tokio-tungstenite server, `ws` and socket.io (scripts/bench-server.sh says what it does and
# how to change N, the servers and the repeats).
.PHONY: bench-server
bench-server: ## Server load benchmark: sockline vs bare tokio-tungstenite, ws and socket.io at N = 1,000 and 10,000 (one table)
	scripts/bench-server.sh

# Not part of `test`: the load tool against one node in memory and against three nodes sharing one
# redis-server, in the same run, one table (scripts/bench-cluster.sh says how to change N).
.PHONY: bench-cluster
bench-cluster: ## Cluster load benchmark: 3,000 sockets on one node vs three nodes + Redis (fan-out p50/p99, RSS per node)
	scripts/setup.sh --redis
	scripts/bench-cluster.sh
