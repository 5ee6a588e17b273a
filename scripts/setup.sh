#!/usr/bin/env bash
# Install everything `make test` needs. Idempotent: each step checks first and is
# skipped when already satisfied, printing one short line either way.
#
# Usage: scripts/setup.sh [--all | --rust | --browser | --npm | --js | --www | --tools | --next | --node | --python | --redis]...
#   --rust     wasm32 target + wasm-bindgen-cli (version pinned by Cargo.lock)
#   --browser  Debian packages for browser tests: chromium, chromium-driver
#   --npm      npm dependencies of js/, www/, tools/ and the examples (when they exist)
#   --js, --www  only those of js/ (builds sockline/react) / www/ (the demo; needs pkg/ first)
#   --tools    only those of tools/: binaryen's wasm-opt and esbuild (npm builds) for `make pkg`
#   --next, --node  only those of examples/nextjs/ / examples/node/ (need pkg/ first)
#   --python   a virtualenv in .venv with tests/python/requirements.txt (websockets, pytest)
#   --redis    Debian's redis-server (the cluster tests, tests/cluster.rs, start their own)
#   --all      all of the above (the default when no flag is given)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'setup: %s\n' "$*"; }

# The version of the `wasm-bindgen` package pinned in Cargo.lock.
locked_wasm_bindgen_version() {
    awk '
        $0 == "name = \"wasm-bindgen\"" { found = 1; next }
        found && /^version = / { gsub(/"/, "", $3); print $3; exit }
        /^\[\[package\]\]/ { found = 0 }
    ' Cargo.lock
}

setup_wasm_target() {
    # Capture first: `grep -q` exiting early could SIGPIPE rustup and trip pipefail.
    local installed
    installed="$(rustup target list --installed)"
    if grep -qx 'wasm32-unknown-unknown' <<<"$installed"; then
        log "rust target wasm32-unknown-unknown: already installed"
    else
        log "rust target wasm32-unknown-unknown: installing"
        rustup target add wasm32-unknown-unknown
    fi
}

setup_wasm_bindgen_cli() {
    local want have
    want="$(locked_wasm_bindgen_version)"
    if [[ -z "$want" ]]; then
        echo "setup: could not find the wasm-bindgen version in Cargo.lock" >&2
        exit 1
    fi
    have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
    if [[ "$have" == "$want" ]]; then
        log "wasm-bindgen-cli $want: already installed"
    else
        log "wasm-bindgen-cli $want: installing (found: ${have:-none})"
        # No --locked: the CLI's own lockfile is not what pins it; the version is.
        cargo install wasm-bindgen-cli --version "$want"
    fi
}

# apt-get install "$@" (after an update), through sudo when not root.
apt_install() {
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

setup_browser_deps() {
    if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
        log "chromium, chromedriver: already installed"
        return
    fi
    log "chromium, chromium-driver: installing with apt-get"
    apt_install chromium chromium-driver
}

# Whether $1/node_modules/sockline is a copy of pkg/ (npm's install-links, as a registry install
# would be: the examples use it) that is missing or differs from pkg/. A symlink (www/) is never stale.
stale_pkg_copy() {
    local copy="$1/node_modules/sockline"
    [[ -L "$copy" ]] && return 1
    [[ ! -d "$copy" ]] || ! diff -rq pkg "$copy" >/dev/null
}

setup_npm_dir() {
    local dir="$1"
    if [[ ! -f "$dir/package.json" ]]; then
        log "npm $dir/: no package.json, skipping"
        return
    fi
    # www/ and the examples depend on the built package (file:../pkg, file:../../pkg): `make pkg`
    # first, then `setup.sh --www` (or --next, --node).
    local uses_pkg=0
    if grep -Eq '"file:(\.\./)+pkg"' "$dir/package.json"; then
        uses_pkg=1
        if [[ ! -f pkg/package.json ]]; then
            log "npm $dir/: pkg/ not built yet, skipping (make pkg installs it)"
            return
        fi
    fi
    if [[ -d "$dir/node_modules" && ( ! -f "$dir/package-lock.json" || "$dir/node_modules" -nt "$dir/package-lock.json" ) ]]; then
        if [[ $uses_pkg -eq 1 ]] && stale_pkg_copy "$dir"; then
            # npm takes a file: copy with an unchanged version for up to date: make it copy again.
            log "npm $dir/: node_modules up to date but its copy of pkg/ is not: reinstalling sockline"
            rm -rf "$dir/node_modules/sockline"
            (cd "$dir" && npm install --no-save --no-audit --no-fund)
            touch "$dir/node_modules"
            if stale_pkg_copy "$dir"; then
                echo "setup: $dir/node_modules/sockline still differs from pkg/ (a file pkg/package.json does not ship?):" >&2
                diff -rq pkg "$dir/node_modules/sockline" >&2 || true
                exit 1
            fi
        else
            log "npm $dir/: node_modules up to date"
        fi
        return
    fi
    if [[ -f "$dir/package-lock.json" ]]; then
        log "npm $dir/: npm ci"
        (cd "$dir" && npm ci --no-audit --no-fund)
    else
        log "npm $dir/: npm install"
        (cd "$dir" && npm install --no-audit --no-fund)
    fi
    # npm may leave node_modules older than the lockfile it just wrote (or not create it at all
    # when there are no dependencies): mark it fresh so the next run skips.
    mkdir -p "$dir/node_modules"
    touch "$dir/node_modules"
}

# .venv with the Python outside client's packages; reinstalls only when requirements.txt changed
# (its copy inside .venv is the stamp).
setup_python_venv() {
    local requirements=tests/python/requirements.txt stamp=.venv/requirements.installed
    if [[ -x .venv/bin/python ]] && cmp -s "$requirements" "$stamp"; then
        log "python .venv: up to date"
        return
    fi
    if [[ ! -x .venv/bin/python ]]; then
        log "python .venv: creating"
        if ! python3 -m venv .venv; then
            # Debian ships venv's ensurepip separately (python3-venv).
            rm -rf .venv
            log "python3-venv: installing with apt-get"
            apt_install python3-venv
            python3 -m venv .venv
        fi
    fi
    log "python .venv: installing $requirements"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
}

# The cluster tests start redis-server themselves (a free port, persistence off); only the
# binary is needed, not a running service.
setup_redis() {
    if command -v redis-server >/dev/null 2>&1; then
        log "redis-server: already installed"
        return
    fi
    log "redis-server: installing with apt-get"
    apt_install --no-install-recommends redis-server
}

main() {
    local rust=0 browser=0 js=0 www=0 tools=0 next=0 node=0 python=0 redis=0
    if [[ $# -eq 0 ]]; then
        set -- --all
    fi
    for arg in "$@"; do
        case "$arg" in
            --all) rust=1 browser=1 js=1 www=1 tools=1 next=1 node=1 python=1 redis=1 ;;
            --rust) rust=1 ;;
            --browser) browser=1 ;;
            --npm) js=1 www=1 tools=1 next=1 node=1 ;;
            --js) js=1 ;;
            --www) www=1 ;;
            --tools) tools=1 ;;
            --next) next=1 ;;
            --node) node=1 ;;
            --python) python=1 ;;
            --redis) redis=1 ;;
            -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) echo "setup: unknown option: $arg" >&2; exit 2 ;;
        esac
    done
    if [[ $rust -eq 1 ]]; then
        setup_wasm_target
        setup_wasm_bindgen_cli
    fi
    if [[ $browser -eq 1 ]]; then
        setup_browser_deps
    fi
    if [[ $js -eq 1 ]]; then
        setup_npm_dir js
    fi
    if [[ $www -eq 1 ]]; then
        setup_npm_dir www
    fi
    if [[ $tools -eq 1 ]]; then
        setup_npm_dir tools
    fi
    if [[ $next -eq 1 ]]; then
        setup_npm_dir examples/nextjs
    fi
    if [[ $node -eq 1 ]]; then
        setup_npm_dir examples/node
    fi
    if [[ $python -eq 1 ]]; then
        setup_python_venv
    fi
    if [[ $redis -eq 1 ]]; then
        setup_redis
    fi
}

main "$@"
