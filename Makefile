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
# opt-level "z", LTO, one codegen unit; the release profile is opt-level 3 for native code), the
# installed wasm-bindgen CLI (--target web, --weak-refs so a dropped client is freed by the GC; the
# `name` section, function names for devtools stack traces, and the producers section are dropped:
# they were a third of the .wasm), wasm-opt, the JS glue minified, the package entry, the
# tab-sharing client and the React bindings (js/src/ compiled by tsc into pkg/: the .d.ts with
# their doc comments, the .js minified; js/'s npm packages are installed once), then package.json
# (scripts/pkg-json.mjs), and the size (`make size` checks it against the budget).
# wasm-pack is not used: it would try to download tools.
# wasm-opt is binaryen's npm build (tools/, pinned; a JS/wasm program, nothing native is
# downloaded), run AFTER wasm-bindgen. Not Debian's binaryen 108: it writes the
# `__wbindgen_externrefs` table export with index 0 (the funcref table) instead of 1, so init()
# throws "WebAssembly.Table.set(): ... function-typed object must be null". The features are the
# ones rustc enables for wasm32 (multivalue included: wasm-bindgen emits multi-value shims);
# the target_features section is metadata only and is dropped.
WASM_OPT := tools/node_modules/.bin/wasm-opt
# The JS glue is minified (esbuild, tools/): its doc comments are in sockline.d.ts, which is what
# editors and TypeScript read; what a page downloads is the code.
ESBUILD := tools/node_modules/.bin/esbuild
WASM_OPT_FLAGS := -Oz --converge --enable-reference-types --enable-bulk-memory \
	--enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
	--enable-multivalue --strip-target-features
pkg: ## Build the npm package in pkg/ (offline once js/ and tools/ have their npm packages; then `npm install ./pkg` or `npm pack ./pkg`)
	scripts/setup.sh --rust --js --tools
	$(CARGO) build --lib --profile wasm --target $(WASM_TARGET)
	rm -rf pkg
	wasm-bindgen --target web --weak-refs --remove-name-section --remove-producers-section \
		--out-dir pkg --out-name sockline target/$(WASM_TARGET)/wasm/sockline.wasm
	$(WASM_OPT) $(WASM_OPT_FLAGS) pkg/sockline_bg.wasm -o pkg/sockline_bg.wasm
	$(ESBUILD) pkg/sockline.js --minify --format=esm --log-level=warning \
		--banner:js='/* @ts-self-types="./sockline.d.ts" */' --outfile=pkg/sockline.js --allow-overwrite
	cd js && node_modules/.bin/tsc -p tsconfig.json --emitDeclarationOnly && \
		node_modules/.bin/tsc -p tsconfig.json --declaration false --removeComments
	cd pkg && for f in $(TABS_JS); do \
		../$(ESBUILD) $$f --minify --format=esm --log-level=warning --outfile=$$f --allow-overwrite; done
	node scripts/pkg-json.mjs
	@$(MAKE) --no-print-directory size-report

# TABS_JS: the entry and the tab-sharing client (js/src/index.ts, client.ts, tabs/), gzipped
# together as a bundler would ship them (one chunk).
TABS_JS := index.js client.js $(addprefix tabs/,emitter.js leader.js locks.js pending.js seen.js solo.js store.js wire.js)
# The budget for what a page loads: the .wasm plus its JS glue, each `gzip -9`; the tab-sharing
# client (TABS_JS) is printed beside it. `make pkg` prints the size; `make size` (the last step
# of `make test`) also fails above the budget.
SIZE_BUDGET := 30720
SIZE_REPORT = wasm=$$(gzip -9 -c pkg/sockline_bg.wasm | wc -c); js=$$(gzip -9 -c pkg/sockline.js | wc -c); \
	tabs=$$(cd pkg && cat $(TABS_JS) | gzip -9 | wc -c); total=$$((wasm + js)); \
	printf 'pkg size (gzip -9): sockline_bg.wasm %d B + sockline.js %d B = %d B (%.1f KiB); budget %d B, headroom %d B; tab-sharing client %d B more (%d B in all)\n' \
		$$wasm $$js $$total $$(awk "BEGIN { print $$total / 1024 }") $(SIZE_BUDGET) $$(($(SIZE_BUDGET) - total)) $$tabs $$((total + tabs))
size-report:
	@$(SIZE_REPORT)
size: ## Print the gzipped size of pkg/ (.wasm + JS glue, gzip -9); fails above the 30 KiB budget
	@$(SIZE_REPORT); \
		if [ $$total -gt $(SIZE_BUDGET) ]; then \
			echo "pkg size: $$total B is over the budget of $(SIZE_BUDGET) B (30 KiB)" >&2; exit 1; \
		fi

# Browser tests (tests/browser.rs) in headless Chromium through chromedriver; webdriver.json in
# the crate root gives chromium its flags. The harness starts the reference server, gives the
# tests a control URL at compile time (SOCKLINE_HARNESS) and stops everything when they end.
# The test binary is built once without the URL first, so the harness run recompiles only it.
BROWSER_TEST_ENV := CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=240
test-browser: ## Run the browser tests (tests/browser.rs) in headless Chromium against the reference server
	scripts/setup.sh --rust --browser
	$(CARGO) build --features server --bin sockline-server
	$(BROWSER_TEST_ENV) $(CARGO) test --target $(WASM_TARGET) --test browser --no-run
	timeout 600 node scripts/browser-harness.mjs --server target/debug/sockline-server --timeout-s 540 -- \
		env $(BROWSER_TEST_ENV) $(CARGO) test --target $(WASM_TARGET) --test browser

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

test: setup fmt-check lint doc test-native test-wasm test-browser pkg test-types test-tabs test-e2e test-next test-node soak test-python size ## Everything CI runs: setup, then all checks and tests, in order

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
