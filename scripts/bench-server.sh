#!/usr/bin/env bash
# Side-by-side server benchmark (`make bench-server`): sockline-server, the bare tokio-tungstenite
# broadcast server (examples/bare_broadcast.rs, the near-the-limit reference), a bare `ws` server
# and a socket.io server (bench/peers/), all driven by the same load tool
# (examples/server_load.rs) at N = 1,000 and 10,000 idle sockets, then ONE table with ratios
# against the bare server. Not part of `make test`.
#
# Every run gets a fresh server process on a free port (port 0; the server prints it), so each
# starts from the same idle RSS and no earlier run's clean-up competes for the 2 cores; servers
# alternate within each N (the order rotates between repeats). Everything listens on 127.0.0.1,
# every run is bounded by the load tool's own timeouts, and everything this script started is
# stopped when it exits (trap).
#
# Settings (environment):
#   BENCH_NS="1000 10000"                    socket counts
#   BENCH_SERVERS="sockline bare ws socketio" servers, in the order of the first repeat
#   BENCH_REPEAT=1                           runs per (server, N); the table shows medians
#   BENCH_ROUNDS=5                           measured fan-out rounds per run (after 1 warm-up)
#   BENCH_STORM=1                            0 skips the disconnect/reconnect storm
#   BENCH_OPT_LEVEL=3                        opt-level of this build (empty: the release profile's)
#   BENCH_OUT=target/bench-server            reports, load-tool output and server logs
#   BENCH_LOAD_ARGS=""                       extra server_load options, e.g. "--threads 2"
#   BENCH_SOCKLINE_BIN=""                    another sockline-server binary to measure (e.g. a
#                                            branch's build) instead of this checkout's
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${BENCH_NS:-"1000 10000"}
SERVERS=${BENCH_SERVERS:-"sockline bare ws socketio"}
REPEAT=${BENCH_REPEAT:-1}
ROUNDS=${BENCH_ROUNDS:-5}
STORM=${BENCH_STORM:-1}
OPT_LEVEL=${BENCH_OPT_LEVEL-3}
OUT=${BENCH_OUT:-target/bench-server}
read -r -a LOAD_ARGS <<<"${BENCH_LOAD_ARGS:-}"

# The secrets of this benchmark's sockline-server; the load tool mints tokens with the same one.
export SOCKLINE_JWT_SECRET="bench-secret-$$-$RANDOM"
export SOCKLINE_SERVER_KEY="bench-key-$$-$RANDOM"

SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 sockets need 10,000 descriptors in the load tool and in each server.
max_n=0
for n in $NS; do (( n > max_n )) && max_n=$n; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < max_n + 100 )); then
    echo "bench-server: RLIMIT_NOFILE is $(ulimit -n), N = $max_n needs $((max_n + 100)): raise the hard limit first" >&2
    exit 1
fi

# Release builds in their own target dir, so the opt-level override does not rebuild target/release.
TARGET_DIR=target/bench
if [[ -n $OPT_LEVEL ]]; then export CARGO_PROFILE_RELEASE_OPT_LEVEL=$OPT_LEVEL; fi
echo "bench-server: building (release${OPT_LEVEL:+, opt-level $OPT_LEVEL}) into $TARGET_DIR ..." >&2
cargo build --quiet --release --target-dir "$TARGET_DIR" --features server \
    --bin sockline-server --example server_load --example bare_broadcast
BIN=$TARGET_DIR/release
LOAD=$BIN/examples/server_load
SOCKLINE_BIN=${BENCH_SOCKLINE_BIN:-$BIN/sockline-server}

if [[ $SERVERS == *ws* || $SERVERS == *socketio* ]]; then
    if [[ ! -d bench/peers/node_modules/socket.io || ! -d bench/peers/node_modules/ws ]]; then
        echo "bench-server: installing bench/peers npm packages (npm ci) ..." >&2
        (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

rm -rf "$OUT"
mkdir -p "$OUT"

# Every load socket comes from 127.0.0.1, as if all users sat behind one proxy: a server with a
# per-IP cap on unauthenticated connections gets it lifted, or the reconnect wave would be refused.
SOCKLINE_FLAGS=()
if "$SOCKLINE_BIN" --help | grep -q -- '--max-unauthed-per-ip'; then
    SOCKLINE_FLAGS+=(--max-unauthed-per-ip 0)
fi
# The probe listener (GET /health on its own thread), polled during the storm beside the main
# port; its port is the second line the server prints.
HAS_PROBE=0
if "$SOCKLINE_BIN" --help | grep -q -- '--health-addr'; then
    SOCKLINE_FLAGS+=(--health-addr 127.0.0.1:0)
    HAS_PROBE=1
fi

# Starts server $1 with logs under $2; sets SERVER_PID, SERVER_URL and (sockline) PROBE_URL.
start_server() {
    local name=$1 log=$2
    local -a cmd
    case $name in
        sockline) cmd=(env RUST_LOG=warn "$SOCKLINE_BIN" --addr 127.0.0.1:0 "${SOCKLINE_FLAGS[@]}") ;;
        bare) cmd=("$BIN/examples/bare_broadcast" 0) ;;
        ws) cmd=(node bench/peers/ws-server.mjs 0) ;;
        socketio) cmd=(node bench/peers/socketio-server.mjs 0) ;;
        *) echo "bench-server: unknown server '$name'" >&2; exit 2 ;;
    esac
    "${cmd[@]}" >"$log.out" 2>"$log.err" &
    SERVER_PID=$!
    SERVER_URL=""
    for _ in $(seq 100); do
        SERVER_URL=$(sed -n '1s/^listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$log.out")
        PROBE_URL=""
        if [[ $name == sockline && $HAS_PROBE == 1 ]]; then
            PROBE_URL=$(sed -n '2s/^health on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$log.out")
            [[ -z $PROBE_URL ]] && SERVER_URL=""
        fi
        [[ -n $SERVER_URL ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-server: $name did not start; see $log.err" >&2
    cat "$log.err" >&2
    exit 1
}

read -r -a server_list <<<"$SERVERS"
reports=()
for n in $NS; do
    for ((rep = 0; rep < REPEAT; rep++)); do
        count=${#server_list[@]}
        for ((k = 0; k < count; k++)); do
            name=${server_list[$(((k + rep) % count))]}
            base="$OUT/$name-$n-$rep"
            start_server "$name" "$base.server"
            storm=()
            [[ $STORM == 1 ]] && storm=(--storm)
            [[ $STORM == 1 && -n $PROBE_URL ]] && storm+=(--probe-url "$PROBE_URL")
            echo "bench-server: $name, N = $n (run $((rep + 1))/$REPEAT) on $SERVER_URL ..." >&2
            if ! "$LOAD" --proto "$name" --url "$SERVER_URL" --server-pid "$SERVER_PID" -n "$n" \
                --rounds "$ROUNDS" "${storm[@]}" --json "$base.json" "${LOAD_ARGS[@]}" \
                >"$base.txt" 2>&1; then
                echo "bench-server: the load tool failed on $name, N = $n:" >&2
                cat "$base.txt" >&2
                exit 1
            fi
            sed 's/^/    /' "$base.txt" >&2
            reports+=("$base.json")
            cleanup
            sleep 1
        done
    done
done

echo
echo "sockline server benchmark — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores shared by server and load tool"
echo "sockline-server: $SOCKLINE_BIN; release build${OPT_LEVEL:+ at opt-level $OPT_LEVEL}; node $(node --version 2>/dev/null || echo '?'); socket.io $(node -p 'require("./bench/peers/node_modules/socket.io/package.json").version' 2>/dev/null || echo '?'), ws $(node -p 'require("./bench/peers/node_modules/ws/package.json").version' 2>/dev/null || echo '?'); $ROUNDS rounds after 1 warm-up; runs per row: $REPEAT"
echo
"$LOAD" --table "${reports[@]}"
echo
echo "Per-run details: $OUT/*.txt (load tool), $OUT/*.server.err (server logs)."
