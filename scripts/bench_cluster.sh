#!/usr/bin/env bash
# Replication cost on a local 3-node cluster, measured with the librdkafka
# load generator: RF=1 acks=1 against RF=3 acks=all (min.insync.replicas=2),
# throughput and send->ack latency. Prints one JSON line per scenario and a
# markdown table. Failover time is scripts/bench_failover.py.
#
#   scripts/bench_cluster.sh            # N=1000000 records per scenario
#   N=200000 scripts/bench_cluster.sh   # shorter
#
# Environment: BROKER_BIN (default: release build), LOADGEN (default
# $CARGO_TARGET_DIR/loadgen/release/loadgen), BENCH_TMPDIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
N=${N:-1000000}
if [[ -z ${BROKER_BIN:-} ]]; then
    cargo build --release -p odradek --manifest-path "$ROOT/Cargo.toml" >&2
    BROKER_BIN=$TARGET/release/odradek
fi
LOADGEN=${LOADGEN:-$TARGET/loadgen/release/loadgen}
[[ -x $LOADGEN ]] || { echo "loadgen not found at $LOADGEN (set LOADGEN)" >&2; exit 2; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/odradek-bench-cluster.XXXXXX")
CLUSTER=""
trap '[[ -n $CLUSTER ]] && kill $CLUSTER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
# The cluster needs six consecutive free ports from BASE; `dev cluster`
# exits at once when one is taken, and another range is tried.
for attempt in 1 2 3 4 5; do
    BASE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (( BASE < 65000 )) || continue
    "$BROKER_BIN" dev cluster --nodes 3 --base-port "$BASE" --dir "$WORK/cluster-$attempt" >"$WORK/dev.log" 2>&1 &
    CLUSTER=$!
    sleep 3
    kill -0 $CLUSTER 2>/dev/null && break
    CLUSTER=""
done
[[ -n $CLUSTER ]] || { echo "could not start a dev cluster: $(cat "$WORK/dev.log")" >&2; exit 1; }
BOOT=127.0.0.1:$BASE,127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 4))
for _ in $(seq 1 100); do
    "$LOADGEN" topic-create -b "$BOOT" -t probe --if-not-exists >/dev/null 2>&1 && break
    sleep 0.2
done

run() { # name, topic, rf, acks, size, extra loadgen args...
    local name=$1 topic=$2 rf=$3 acks=$4 size=$5; shift 5
    local extra=(--topic-config min.insync.replicas=$(( rf >= 3 ? 2 : 1 )))
    "$LOADGEN" topic-create -b "$BOOT" -t "$topic" -p 3 -r "$rf" "${extra[@]}" --if-not-exists >/dev/null
    local out
    out=$("$LOADGEN" produce -b "$BOOT" -t "$topic" -n "$N" -s "$size" --acks "$acks" --report-interval 0 "$@" 2>"$WORK/$name.err" | tail -1)
    echo "{\"scenario\":\"$name\",\"rf\":$rf,\"acks\":\"$acks\",\"record_size\":$size,\"result\":$out}"
}

run rf1-acks1-100B rf1a 1 1 100
run rf3-acksall-100B rf3a 3 all 100
run rf1-acks1-1KiB rf1b 1 1 1024
run rf3-acksall-1KiB rf3b 3 all 1024
# Latency at a fixed, moderate rate with linger 0: what replication adds
# to each acknowledgement.
run rf1-acks1-lat rf1c 1 1 100 --linger-ms 0 --throughput 20000
run rf3-acksall-lat rf3c 3 all 100 --linger-ms 0 --throughput 20000
