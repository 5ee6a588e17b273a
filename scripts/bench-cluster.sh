#!/usr/bin/env bash
# Cluster benchmark (`make bench-cluster`, issue 11): the same load tool (examples/server_load.rs)
# against ONE sockline-server node in memory and against THREE nodes sharing one redis-server, in
# the same run, then one table. In the cluster run socket i connects to node i mod 3 and every
# fan-out is posted to the third node, so each event crosses Redis (one Lua script + one PUBLISH,
# one subscription per node) to reach two thirds of the sockets. Not part of `make test`.
#
# redis-server (scripts/setup.sh --redis) gets a free loopback port and no persistence
# (--save '' --appendonly no); everything listens on 127.0.0.1, every run is bounded by the load
# tool's own timeouts, and everything this script started is stopped when it exits (trap).
#
# Settings (environment):
#   CLUSTER_N=3000          sockets per run (one node: all of them; the cluster: N/3 per node)
#   CLUSTER_ROUNDS=5        measured fan-out rounds per run (after 1 warm-up)
#   CLUSTER_STORM=1         0 skips the disconnect/reconnect storm (sockets resume on their node)
#   CLUSTER_OUT=target/bench-cluster   reports, load-tool output and server logs
#   CLUSTER_LOAD_ARGS=""    extra server_load options, e.g. "--threads 1"
#   CLUSTER_LOG=warn        the nodes' RUST_LOG (their logs: $CLUSTER_OUT/*.err)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${CLUSTER_N:-3000}
ROUNDS=${CLUSTER_ROUNDS:-5}
STORM=${CLUSTER_STORM:-1}
OUT=${CLUSTER_OUT:-target/bench-cluster}
read -r -a LOAD_ARGS <<<"${CLUSTER_LOAD_ARGS:-}"

export SOCKLINE_JWT_SECRET="cluster-secret-$$-$RANDOM"
export SOCKLINE_SERVER_KEY="cluster-key-$$-$RANDOM"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v redis-server >/dev/null || { echo "bench-cluster: no redis-server (scripts/setup.sh --redis)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < N + 100 )); then
    echo "bench-cluster: RLIMIT_NOFILE is $(ulimit -n), N = $N needs $((N + 100)): raise the hard limit first" >&2
    exit 1
fi

echo "bench-cluster: building (release) ..." >&2
cargo build --quiet --release --features server --bin sockline-server --example server_load
BIN=target/release/sockline-server
LOAD=target/release/examples/server_load
rm -rf "$OUT"
mkdir -p "$OUT"

# Starts a node with logs under $1 and the remaining arguments as flags; sets NODE_PID, NODE_URL.
start_node() {
    local log=$1
    shift
    env RUST_LOG="${CLUSTER_LOG:-warn}" "$BIN" --addr 127.0.0.1:0 --max-unauthed-per-ip 0 "$@" >"$log.out" 2>"$log.err" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    NODE_URL=""
    for _ in $(seq 100); do
        NODE_URL=$(sed -n '1s/^listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$log.out")
        [[ -n $NODE_URL ]] && return 0
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-cluster: a node did not start; see $log.err" >&2
    cat "$log.err" >&2
    exit 1
}

# Runs the load tool: $1 label, then its --url/--server-pid/--notify-url arguments.
load() {
    local label=$1
    shift
    local storm=()
    [[ $STORM == 1 ]] && storm=(--storm)
    echo "bench-cluster: $label, N = $N ..." >&2
    if ! "$LOAD" --label "$label" "$@" -n "$N" --rounds "$ROUNDS" "${storm[@]}" \
        --json "$OUT/$label.json" "${LOAD_ARGS[@]}" >"$OUT/$label.txt" 2>&1; then
        echo "bench-cluster: the load tool failed on $label:" >&2
        cat "$OUT/$label.txt" >&2
        exit 1
    fi
    sed 's/^/    /' "$OUT/$label.txt" >&2
}

# 1. One node, in memory.
start_node "$OUT/one-node"
load one-node --url "$NODE_URL" --server-pid "$NODE_PID"
cleanup
sleep 1

# 2. Three nodes and one Redis on a free port, persistence off.
REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    >"$OUT/redis.out" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
done
urls=() pids=()
for id in A B C; do
    start_node "$OUT/node-$id" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id "$id"
    urls+=(--url "$NODE_URL")
    pids+=(--server-pid "$NODE_PID")
done
load 3-nodes-redis "${urls[@]}" --notify-url "$NODE_URL" "${pids[@]}"
REDIS_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$REDIS_PID/status")
cleanup

echo
echo "sockline cluster benchmark — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores shared by every node, Redis and the load tool"
echo "$(redis-server --version | cut -d' ' -f1-3); $ROUNDS rounds after 1 warm-up; redis-server RSS at the end: $((REDIS_RSS / 1024)) MiB"
echo
"$LOAD" --table "$OUT/one-node.json" "$OUT/3-nodes-redis.json"
echo
grep -h "RSS after, per server" "$OUT/3-nodes-redis.txt" | sed 's/^ */3 nodes: /' || true
echo "Per-run details: $OUT/*.txt (load tool), $OUT/*.err (node logs)."
