#!/usr/bin/env bash
# Odradek benchmark driver. See docs/BENCHMARKS.md for what each scenario
# measures and the targets.
#
#   scripts/bench.sh                 # full run (1,000,000 records per scenario)
#   QUICK=1 scripts/bench.sh         # smoke run, 10x fewer records
#   scripts/bench.sh --limits-only   # only the machine limits (no broker)
#   scripts/bench.sh --help
#
# Results: bench-results/<timestamp>/ (machine.json, broker.json,
# scenarios/NN-name.json = loadgen's last JSON line plus scenario metadata,
# logs/), and summary.md, the markdown that is also printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/scripts/bench

usage() {
    cat <<'EOF'
Usage: scripts/bench.sh [options]

Builds the broker (release) and the librdkafka load generator if needed,
measures the machine's limits (loopback TCP, disk, page cache, fdatasync),
starts a broker on a free port with an empty data dir, runs the scenarios
and prints markdown tables for docs/BENCHMARKS.md.

Options:
  --quick           10x fewer records (same as QUICK=1)
  --limits-only     measure the machine limits only; no build, no broker
  --no-limits       skip the machine limits
  --no-build        do not run cargo build for the broker (binary must exist)
  --only REGEX      run only scenarios whose name matches REGEX (bash =~);
                    a consume scenario also runs its produce, lat-* its peak
  --list            list scenario names and exit
  --out DIR         results directory (default bench-results/<timestamp>)
  --keep-data       keep the broker's data dir and the disk-test dir
  -h, --help        this text

Environment:
  QUICK=1               as --quick
  CARGO_TARGET_DIR      where the broker (and, by default, loadgen) is built
  BROKER_BIN            broker binary to use (skips the broker build). Not ODRADEK_*:
                        the broker reads every ODRADEK_* variable as a config
  LOADGEN               loadgen binary (default: $CARGO_TARGET_DIR/loadgen/release/loadgen,
                        built from LOADGEN_SRC if missing)
  LOADGEN_SRC           loadgen sources (default: <repo>/../shared/bench/loadgen)
  BOOTSTRAP=host:port   benchmark an already running broker instead of starting one
                        (startup time and RSS are then not measured)
  BROKER_ARGS           extra broker arguments, e.g. "--override num.io.threads=2"
  BENCH_TMPDIR          parent of the data dir and disk-test files (default ${TMPDIR:-/tmp});
                        the disk limits are measured on this filesystem
  N                     records per produce/consume scenario (default 1000000, QUICK 100000)
  DD_MIB                size of the dd disk tests in MiB (default 2048, QUICK 1024)
  IPERF_SECS            iperf3 duration (default 5)
  SCENARIO_TIMEOUT      hard limit per loadgen run in seconds (default 1800)
EOF
}

# ---------------------------------------------------------------- arguments
QUICK=${QUICK:-0}
LIMITS=1
SCENARIOS=1
BUILD=1
ONLY=""
LIST=0
OUT=""
KEEP_DATA=${KEEP_DATA:-0}
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --limits-only) SCENARIOS=0; BUILD=0 ;;
        --no-limits) LIMITS=0 ;;
        --no-build) BUILD=0 ;;
        --only) [[ $# -ge 2 ]] || { echo "bench.sh: --only needs a REGEX" >&2; exit 2; }
                ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --list) LIST=1 ;;
        --out) [[ $# -ge 2 ]] || { echo "bench.sh: --out needs a DIR" >&2; exit 2; }
               OUT=$2; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --keep-data) KEEP_DATA=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $LIMITS == 0 && $SCENARIOS == 0 ]]; then
    echo "bench.sh: --limits-only and --no-limits together leave nothing to do" >&2
    exit 2
fi
case $QUICK in 0|1) ;; *) echo "bench.sh: QUICK must be 0 or 1" >&2; exit 2 ;; esac

if [[ $QUICK == 1 ]]; then
    N=${N:-100000}; DD_MIB=${DD_MIB:-1024}
else
    N=${N:-1000000}; DD_MIB=${DD_MIB:-2048}
fi
[[ $N =~ ^[0-9]+$ && $N -ge 10 ]] || { echo "bench.sh: N must be an integer >= 10" >&2; exit 2; }
[[ $DD_MIB =~ ^[0-9]+$ && $DD_MIB -ge 1 ]] || { echo "bench.sh: DD_MIB must be a positive integer" >&2; exit 2; }
E2E_N=$((N / 10))          # e2e at 10,000 records/s: 10 s (1 s in quick mode)
SINGLE_N=$((N / 10))       # single-record produce requests
FLUSH_N=$((N / 100))       # flush.messages=1: every record is fsynced
IPERF_SECS=${IPERF_SECS:-5}
SCENARIO_TIMEOUT=${SCENARIO_TIMEOUT:-1800}
DSYNC_COUNT=200

ALL_SCENARIOS=()
for s in 100 1k; do for a in 1 all; do for p in 1 6; do
    ALL_SCENARIOS+=("p$s-a$a-p$p" "c$s-a$a-p$p")
done; done; done
ALL_SCENARIOS+=(peak-l0 lat-a1 lat-aall e2e-10k e2e-10k-l0 single-max single-10k flush1-prod1 flush1-prod8)
MATCHED=()
for s in "${ALL_SCENARIOS[@]}"; do
    if [[ -z $ONLY || $s =~ $ONLY ]]; then MATCHED+=("$s"); fi
done
if [[ ${#MATCHED[@]} == 0 ]]; then
    echo "bench.sh: --only '$ONLY' matches no scenario (see --list)" >&2
    exit 2
fi
if [[ $LIST == 1 ]]; then
    printf '%s\n' "${MATCHED[@]}"
    exit 0
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wanted() { [[ -z $ONLY || $1 =~ $ONLY ]]; }

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is required"
command -v jq >/dev/null || die "jq is required (apt-get install -y jq)"
if [[ $LIMITS == 1 ]]; then
    command -v iperf3 >/dev/null || die "iperf3 is required (apt-get install -y iperf3), or pass --no-limits"
fi
probe() { python3 "$HELPERS/probe.py" "$@"; }

TS=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench-results/$TS}
mkdir -p "$OUT/logs"
[[ $SCENARIOS == 1 ]] && mkdir -p "$OUT/scenarios"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/odradek-bench.XXXXXX")

BROKER_PID=""
IPERF_PID=""
LG_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $LG_PID ]] && kill -0 "$LG_PID" 2>/dev/null; then
        kill "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
    fi
    if [[ -n $IPERF_PID ]] && kill -0 "$IPERF_PID" 2>/dev/null; then
        kill "$IPERF_PID" 2>/dev/null || true
        wait "$IPERF_PID" 2>/dev/null || true
    fi
    stop_broker
    if [[ $KEEP_DATA == 1 ]]; then
        log "kept data in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
stop_broker() {
    [[ -n $BROKER_PID ]] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker did not exit 5 s after SIGTERM; SIGKILL"
            kill -KILL "$BROKER_PID" 2>/dev/null || true
        fi
    fi
    BROKER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR

if [[ $SCENARIOS == 1 ]]; then
    if [[ -z ${BOOTSTRAP:-} ]]; then
        if [[ -n ${BROKER_BIN:-} ]]; then
            BIN=$BROKER_BIN
        else
            BIN=$TARGET_DIR/release/odradek
            if [[ $BUILD == 1 ]]; then
                log "building the broker: cargo build --release -p odradek"
                (cd "$ROOT" && cargo build --release -p odradek) >&2 || die "broker build failed"
            fi
        fi
        [[ -x $BIN ]] || die "broker binary $BIN not found (build it or set BROKER_BIN)"
    fi
    if [[ -n ${LOADGEN:-} ]]; then
        [[ -x $LOADGEN ]] || die "LOADGEN=$LOADGEN is not an executable"
    else
        LOADGEN=$TARGET_DIR/loadgen/release/loadgen
        if [[ ! -x $LOADGEN ]]; then
            LOADGEN_SRC=${LOADGEN_SRC:-$ROOT/../shared/bench/loadgen}
            [[ -f $LOADGEN_SRC/Cargo.toml ]] || die "loadgen sources not found at $LOADGEN_SRC (set LOADGEN_SRC or LOADGEN)"
            log "building loadgen from $LOADGEN_SRC into $TARGET_DIR/loadgen (takes a while: bundled librdkafka)"
            CARGO_TARGET_DIR=$TARGET_DIR/loadgen cargo build --release \
                --manifest-path "$LOADGEN_SRC/Cargo.toml" >&2 || die "loadgen build failed (see ../shared/bench/README.md for the apt packages)"
        fi
    fi
fi

# ---------------------------------------------------------------- machine
num() { # print $1 if it is a number, else null (for jq --argjson)
    if [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then echo "$1"; else echo null; fi
}
# MB/s (10^6 bytes) from dd's "N bytes (...) copied, S s, ..." line on stdin
dd_mb_s() { LC_ALL=C awk '/copied/ { if ($(NF-3) > 0) printf "%.1f\n", $1 / $(NF-3) / 1e6 }'; }
dd_secs() { LC_ALL=C awk '/copied/ { print $(NF-3) }'; }

machine_facts() {
    NPROC=$(nproc)
    CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
    MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
    KERNEL=$(uname -r)
    LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
    DATA_FS_TYPE=$(df --output=fstype "$WORK" | tail -1 | tr -d ' ')
    DATA_FS_DEV=$(df --output=source "$WORK" | tail -1 | tr -d ' ')
    GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
    if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -1) ]]; then GIT_REV="$GIT_REV+dirty"; fi
    # CPU busy over one second (load average is not reliable in this VM: it
    # sits near 1 when idle)
    local a b
    a=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
    CPU_BUSY=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        t = (y[1] - x[1]) + (y[2] - x[2]); printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }')
    if [[ $CPU_BUSY -gt 10 ]]; then
        log "WARNING: the CPUs are ${CPU_BUSY}% busy before the benchmark: something else is running; numbers will be low"
    fi
}

IPERF_GBIT=""; IPERF_ERR=""; DISK_MB_S=""; DISK_DIRECT_MB_S=""; PC_WRITE_MB_S=""; PC_WRITE2_MB_S=""; PC_READ_MB_S=""; DSYNC_MS=""; FSYNC_JSON=null
measure_limits() {
    log "machine limits: iperf3 loopback (${IPERF_SECS} s)"
    local port
    port=$(probe free-port)
    # No probe connection here: iperf3's server would take it for a client.
    iperf3 -s -B 127.0.0.1 -p "$port" >"$OUT/logs/iperf3-server.log" 2>&1 &
    IPERF_PID=$!
    probe wait-listen "$port" 10 || true
    if iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECS" -J >"$OUT/iperf3.json" 2>"$OUT/logs/iperf3-client.err"; then
        IPERF_GBIT=$(jq '.end.sum_received.bits_per_second // empty | . / 1e9 | . * 100 | round / 100' "$OUT/iperf3.json" || true)
    fi
    if [[ -z $IPERF_GBIT ]]; then
        IPERF_ERR="iperf3 failed: $(jq -r '.error // empty' "$OUT/iperf3.json" 2>/dev/null || true)"
        log "$IPERF_ERR (see $OUT/iperf3.json, logs/iperf3-*)"
    fi
    kill "$IPERF_PID" 2>/dev/null || true
    wait "$IPERF_PID" 2>/dev/null || true
    IPERF_PID=""

    local d=$WORK/disk f out
    mkdir -p "$d"
    f=$d/dd.bin
    # Page-cache writes first: on this VM a write into memory that has not
    # been used recently is several times slower than one into pages that
    # were just freed (the second write below), and the broker's produce
    # scenarios mostly write into fresh memory.
    sync
    log "machine limits: page-cache write ${DD_MIB} MiB (no fsync), first write"
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$DD_MIB" 2>&1) || die "dd failed: $out"
    PC_WRITE_MB_S=$(dd_mb_s <<<"$out")
    rm -f "$f"
    log "machine limits: page-cache write ${DD_MIB} MiB (no fsync), again into the pages just freed"
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$DD_MIB" 2>&1) || die "dd failed: $out"
    PC_WRITE2_MB_S=$(dd_mb_s <<<"$out")
    log "machine limits: page-cache read ${DD_MIB} MiB (file just written, still cached)"
    out=$(LC_ALL=C dd if="$f" of=/dev/null bs=1M 2>&1) || die "dd failed: $out"
    PC_READ_MB_S=$(dd_mb_s <<<"$out")
    rm -f "$f"
    sync
    log "machine limits: sequential write ${DD_MIB} MiB through the page cache + fdatasync on $DATA_FS_TYPE ($DATA_FS_DEV)"
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$DD_MIB" conv=fdatasync 2>&1) || die "dd failed: $out"
    DISK_MB_S=$(dd_mb_s <<<"$out")
    rm -f "$f"
    sync
    log "machine limits: sequential write ${DD_MIB} MiB with O_DIRECT (the device itself)"
    if out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$DD_MIB" oflag=direct conv=fdatasync 2>&1); then
        DISK_DIRECT_MB_S=$(dd_mb_s <<<"$out")
    else
        log "O_DIRECT not supported here: $out"
    fi
    rm -f "$f"
    log "machine limits: fdatasync latency, ${DSYNC_COUNT} x 4 KiB appends"
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=4k count="$DSYNC_COUNT" oflag=dsync 2>&1) || die "dd failed: $out"
    DSYNC_MS=$(dd_secs <<<"$out" | awk -v n="$DSYNC_COUNT" '{ printf "%.3f\n", $1 * 1000 / n }')
    rm -f "$f"
    FSYNC_JSON=$(probe fsync-lat "$d" "$DSYNC_COUNT") || FSYNC_JSON=null
}

write_machine_json() {
    jq -n \
        --arg ts "$TS" --argjson quick "$QUICK" --arg git "$GIT_REV" \
        --argjson nproc "$NPROC" --arg cpu "$CPU_MODEL" --argjson mem "$(num "$MEM_GIB")" \
        --arg kernel "$KERNEL" --arg loadavg "$LOADAVG" --argjson busy "$CPU_BUSY" \
        --arg fstype "$DATA_FS_TYPE" --arg fsdev "$DATA_FS_DEV" \
        --argjson limits "$LIMITS" \
        --argjson iperf "$(num "$IPERF_GBIT")" --arg iperf_err "$IPERF_ERR" --argjson iperf_secs "$IPERF_SECS" \
        --argjson dd_mib "$DD_MIB" --argjson disk "$(num "$DISK_MB_S")" \
        --argjson pcw "$(num "$PC_WRITE_MB_S")" --argjson pcw2 "$(num "$PC_WRITE2_MB_S")" --argjson pcr "$(num "$PC_READ_MB_S")" \
        --argjson direct "$(num "$DISK_DIRECT_MB_S")" \
        --argjson dsync "$(num "$DSYNC_MS")" --argjson dsync_n "$DSYNC_COUNT" --argjson fsync "$FSYNC_JSON" \
        --argjson n "$N" \
        '{timestamp: $ts, quick: ($quick == 1), git_rev: $git, records_per_scenario: $n,
          nproc: $nproc, cpu_model: $cpu, mem_gib: $mem, kernel: $kernel, loadavg: $loadavg, cpu_busy_pct_before: $busy,
          data_fs_type: $fstype, data_fs_dev: $fsdev}
         + (if $limits == 1 then
             {iperf3_gbit_s: $iperf, iperf3_secs: $iperf_secs,
              dd_mib: $dd_mib, disk_seq_write_mb_s: $disk, disk_direct_write_mb_s: $direct,
              page_cache_write_mb_s: $pcw, page_cache_rewrite_mb_s: $pcw2,
              page_cache_read_mb_s: $pcr, dsync_4k_avg_ms: $dsync, dsync_count: $dsync_n, fsync: $fsync}
             + (if $iperf_err != "" then {iperf3_error: $iperf_err} else {} end)
           else {} end)' >"$OUT/machine.json"
}

machine_facts
if [[ $LIMITS == 1 ]]; then measure_limits; fi
write_machine_json

# ---------------------------------------------------------------- broker
broker_alive() { [[ -z $BROKER_PID ]] || kill -0 "$BROKER_PID" 2>/dev/null; }
# broker user+system CPU in clock ticks (empty for an external or dead broker)
broker_ticks() {
    if [[ -n $BROKER_PID ]]; then
        sed 's/^.*) //' "/proc/$BROKER_PID/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true
    fi
}
rss_mb() { awk -v k="$2:" '$1 == k { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true; }

start_broker() {
    local port data startup
    port=$(probe free-port)
    data=$WORK/data
    mkdir -p "$data"
    local -a args=(serve --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data")
    # shellcheck disable=SC2206  # word splitting of BROKER_ARGS is intended
    [[ -n ${BROKER_ARGS:-} ]] && args+=($BROKER_ARGS)
    log "starting broker: $BIN ${args[*]}"
    # NO_COLOR: plain broker log (tracing-subscriber honours it)
    if ! startup=$(NO_COLOR=1 probe launch --port "$port" --timeout 30 --log "$OUT/logs/broker.log" \
        --pidfile "$WORK/broker.pid" -- "$BIN" "${args[@]}"); then
        BROKER_PID=$(cat "$WORK/broker.pid" 2>/dev/null || true)
        log "broker did not start; last lines of its log:"
        tail -20 "$OUT/logs/broker.log" >&2 || true
        jq -n '{error: "broker did not start"}' >"$OUT/broker.json"
        die "broker did not start"
    fi
    BROKER_PID=$(cat "$WORK/broker.pid")
    BOOT=127.0.0.1:$port
    STARTUP_MS=$startup
    log "broker pid $BROKER_PID accepting connections on $BOOT after $STARTUP_MS ms"
    sleep 2   # idle
    IDLE_RSS_MB=$(rss_mb "$BROKER_PID" VmRSS)
    log "idle RSS: ${IDLE_RSS_MB:-?} MB"
    jq -n --argjson s "$(num "$STARTUP_MS")" --argjson r "$(num "$IDLE_RSS_MB")" \
        '{startup_ms: $s, idle_rss_mb: $r}' >"$OUT/broker.json"
}

# ---------------------------------------------------------------- scenarios
SEQ=0
FAILED=0
# run_lg NAME DESC TARGET_JSON SUBCOMMAND [loadgen args...]
# Writes scenarios/NN-NAME.json and logs/NN-NAME.{out,err}; never fails.
run_lg() {
    local name=$1 desc=$2 target=$3 sub=$4
    shift 4
    SEQ=$((SEQ + 1))
    local id
    id=$(printf '%02d-%s' "$SEQ" "$name")
    local json=$OUT/scenarios/$id.json lo=$OUT/logs/$id.out le=$OUT/logs/$id.err
    if ! broker_alive; then
        FAILED=$((FAILED + 1))
        log "$name: skipped (broker is not running)"
        jq -n --arg s "$name" --arg d "$desc" --argjson t "$target" \
            '{scenario: $s, desc: $d, target: $t, status: "skipped", reason: "broker not running"}' >"$json"
        return 0
    fi
    # start every scenario without a backlog of dirty pages from the last one
    [[ -n $BROKER_PID ]] && sync
    log "$name: $desc"
    local c0 c1 t0 t1 rc=0
    c0=$(broker_ticks)
    t0=$(date +%s.%N)
    echo "$LOADGEN $sub -b $BOOT $*" >"$le"
    # In the background so that a signal to this script is handled at once
    # (the EXIT trap stops loadgen and the broker).
    timeout --kill-after=10 "$SCENARIO_TIMEOUT" \
        "$LOADGEN" "$sub" -b "$BOOT" "$@" >"$lo" 2>>"$le" &
    LG_PID=$!
    wait "$LG_PID" || rc=$?
    LG_PID=""
    t1=$(date +%s.%N)
    c1=$(broker_ticks)
    local last
    last=$(tail -n1 "$lo" 2>/dev/null || true)
    if ! jq -e 'type == "object"' >/dev/null 2>&1 <<<"$last"; then
        last='{"status": "failed"}'
    fi
    local cpu
    cpu=null
    if [[ -n $c0 && -n $c1 ]]; then
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    fi
    jq -c --arg s "$name" --arg d "$desc" --argjson t "$target" --argjson rc "$rc" \
        --argjson cpu "$cpu" --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        '. + {scenario: $s, desc: $d, target: $t, exit_code: $rc, broker_cpu_s: $cpu, wall_s: $wall}' \
        <<<"$last" >"$json"
    if [[ $rc != 0 ]]; then
        FAILED=$((FAILED + 1))
        log "$name: loadgen exit code $rc; last stderr lines:"
        tail -5 "$le" >&2 || true
        if ! broker_alive; then
            log "$name: the broker died; last lines of its log:"
            tail -20 "$OUT/logs/broker.log" >&2 || true
        fi
    fi
    jq -r '"    -> status \(.status // "?")"
        + (if .records_per_sec then ", \(.records_per_sec | floor) rec/s" else "" end)
        + (if .achieved_rate then ", \(.achieved_rate | floor) rec/s" else "" end)
        + (if .mb_per_sec then ", \(.mb_per_sec * 10 | round / 10) MB/s" else "" end)
        + (if .latency_ms.p99 then ", p99 \(.latency_ms.p99) ms" else "" end)
        + (if .e2e_latency_ms.p99 then ", e2e p99 \(.e2e_latency_ms.p99) ms" else "" end)
        + (if .broker_cpu_s then ", broker CPU \(.broker_cpu_s) s" else "" end)' "$json" >&2
    return "$rc"
}

# skip_scenario NAME DESC TARGET REASON
skip_scenario() {
    SEQ=$((SEQ + 1))
    FAILED=$((FAILED + 1))
    local reason=$4
    broker_alive || reason="broker not running"
    log "$1: skipped ($reason)"
    jq -n --arg s "$1" --arg d "$2" --argjson t "$3" --arg r "$reason" \
        '{scenario: $s, desc: $d, target: $t, status: "skipped", reason: $r}' \
        >"$OUT/scenarios/$(printf '%02d-%s' "$SEQ" "$1").json"
}

# create_topic TOPIC PARTITIONS [--topic-config k=v]...
create_topic() {
    local t=$1 p=$2
    shift 2
    broker_alive || return 1
    "$LOADGEN" topic-create -b "$BOOT" -t "$t" --partitions "$p" --replication-factor 1 \
        --if-not-exists "$@" >>"$OUT/logs/topics.log" 2>&1 || {
        log "topic-create $t failed; see logs/topics.log:"
        tail -5 "$OUT/logs/topics.log" >&2
        return 1
    }
}

T_1GB='{"metric": "mb_per_sec", "op": ">=", "value": 1000, "label": "≥ 1 GB/s"}'
T_1M='{"metric": "records_per_sec", "op": ">=", "value": 1000000, "label": "≥ 1,000,000 rec/s"}'
T_CONS='{"metric": "mb_per_sec", "op": ">=", "value": 2000, "label": "≥ 2 GB/s"}'
T_LAT='{"metric": "latency_ms.p99", "op": "<", "value": 1, "label": "p99 < 1 ms"}'
T_E2E='{"metric": "e2e_latency_ms.p99", "op": "<", "value": 5, "label": "p99 < 5 ms"}'
T_10K='{"metric": "records_per_sec", "op": ">=", "value": 10000, "label": "≥ 10,000 req/s"}'
T_10K_LAT='{"metric": "latency_ms.p99", "op": "<", "value": 1, "label": "p99 < 1 ms (sub-ms acks)"}'
TOPIC_SUFFIX=""
[[ -n ${BOOTSTRAP:-} ]] && TOPIC_SUFFIX="-$TS"

run_scenarios() {
    local size sz acks parts name tgt ctgt topic
    # -- throughput matrix: produce N records, then consume them back
    for sz in 100 1k; do
        [[ $sz == 100 ]] && size=100 || size=1024
        for acks in 1 all; do
            for parts in 1 6; do
                name=p$sz-a$acks-p$parts
                local cname=c$sz-a$acks-p$parts
                wanted "$name" || wanted "$cname" || continue
                tgt=null; ctgt=null
                if [[ $acks == 1 && $sz == 100 ]]; then tgt=$T_1M; fi
                if [[ $acks == 1 && $sz == 1k ]]; then tgt=$T_1GB; ctgt=$T_CONS; fi
                topic=bench-$name$TOPIC_SUFFIX
                local pdesc="$parts partitions"
                [[ $parts == 1 ]] && pdesc="1 partition"
                local d_p="produce $N × $size B, acks=$acks, $pdesc, linger.ms default (5)"
                local d_c="consume the $N × $size B back (no group, $pdesc, fetch.queue.backoff.ms=10)"
                if ! create_topic "$topic" "$parts"; then
                    skip_scenario "$name" "$d_p" "$tgt" "topic-create failed"
                    skip_scenario "$cname" "$d_c" "$ctgt" "topic-create failed"
                    continue
                fi
                run_lg "$name" "$d_p" "$tgt" produce -t "$topic" -n "$N" -s "$size" --acks "$acks" || true
                # librdkafka 2.x stops fetching for fetch.queue.backoff.ms (1000 ms)
                # whenever its local queue holds queued.min.messages (100,000):
                # with 100 B records that capped consume near 290k rec/s
                # whatever the broker did
                run_lg "$cname" "$d_c" "$ctgt" consume -t "$topic" -n "$N" -X fetch.queue.backoff.ms=10 || true
            done
        done
    done

    # -- produce latency at half the peak rate, linger.ms=0
    if wanted peak-l0 || wanted lat-a1 || wanted lat-aall; then
        topic=bench-lat$TOPIC_SUFFIX
        local peak=""
        if create_topic "$topic" 1; then
            if run_lg peak-l0 "peak: produce $N × 100 B, acks=1, 1 partition, linger.ms=0 (sets the rate for lat-*)" null \
                produce -t "$topic" -n "$N" -s 100 --acks 1 --linger-ms 0; then
                peak=$(jq -r '.records_per_sec // empty' "$OUT/scenarios/$(printf '%02d' "$SEQ")-peak-l0.json")
            fi
            local half=""
            [[ -n $peak ]] && half=$(awk -v p="$peak" 'BEGIN { printf "%d", p / 2 }')
            for acks in 1 all; do
                name=lat-a$acks
                wanted "$name" || continue
                tgt=null
                [[ $acks == 1 ]] && tgt=$T_LAT
                if [[ -z $half || $half -lt 1 ]]; then
                    skip_scenario "$name" "produce latency at half peak" "$tgt" "no peak rate (peak-l0 failed)"
                    continue
                fi
                run_lg "$name" "produce latency: $N × 100 B at $half rec/s (half of peak-l0), acks=$acks, linger.ms=0" "$tgt" \
                    produce -t "$topic" -n "$N" -s 100 --acks "$acks" --linger-ms 0 --throughput "$half" || true
            done
        else
            for name in peak-l0 lat-a1 lat-aall; do
                wanted "$name" && skip_scenario "$name" "produce latency" null "topic-create failed"
            done
        fi
    fi

    # -- end-to-end latency at 10,000 records/s with librdkafka defaults
    # (e2e-10k-l0: the same with linger.ms=0, for reference: with the default
    # linger.ms=5 a record can wait up to 5 ms in the producer before it is sent)
    if wanted e2e-10k || wanted e2e-10k-l0; then
        topic=bench-e2e$TOPIC_SUFFIX
        if create_topic "$topic" 1; then
            if wanted e2e-10k; then
                run_lg e2e-10k "e2e latency: $E2E_N × 100 B at 10,000 rec/s, librdkafka defaults (linger.ms=5, fetch.wait.max.ms=500)" "$T_E2E" \
                    e2e -t "$topic" -n "$E2E_N" -s 100 --rate 10000 || true
            fi
            if wanted e2e-10k-l0; then
                run_lg e2e-10k-l0 "e2e latency: $E2E_N × 100 B at 10,000 rec/s, linger.ms=0 (reference)" null \
                    e2e -t "$topic" -n "$E2E_N" -s 100 --rate 10000 --linger-ms 0 || true
            fi
        else
            wanted e2e-10k && skip_scenario e2e-10k "e2e latency" "$T_E2E" "topic-create failed"
            wanted e2e-10k-l0 && skip_scenario e2e-10k-l0 "e2e latency, linger.ms=0" null "topic-create failed"
        fi
    fi

    # -- single-record produce requests: one record per ProduceRequest
    if wanted single-max || wanted single-10k; then
        topic=bench-single$TOPIC_SUFFIX
        if create_topic "$topic" 1; then
            local single=(-t "$topic" -s 100 --acks 1 --linger-ms 0 --producers 4 -X batch.num.messages=1)
            wanted single-max && { run_lg single-max "single-record requests: $SINGLE_N × 100 B, 4 producers, linger.ms=0, batch.num.messages=1, unthrottled" "$T_10K" \
                produce -n "$SINGLE_N" "${single[@]}" || true; }
            wanted single-10k && { run_lg single-10k "single-record requests at 10,000 req/s total: $SINGLE_N × 100 B, 4 producers, linger.ms=0, batch.num.messages=1" "$T_10K_LAT" \
                produce -n "$SINGLE_N" --throughput 10000 "${single[@]}" || true; }
        else
            wanted single-max && skip_scenario single-max "single-record requests" "$T_10K" "topic-create failed"
            wanted single-10k && skip_scenario single-10k "single-record requests" "$T_10K_LAT" "topic-create failed"
        fi
    fi

    # -- flush.messages=1: every record durable before the ack; group commit
    if wanted flush1-prod1 || wanted flush1-prod8; then
        topic=bench-flush1$TOPIC_SUFFIX
        if create_topic "$topic" 1 --topic-config flush.messages=1; then
            local flush=(-t "$topic" -n "$FLUSH_N" -s 100 --acks all --linger-ms 0
                -X batch.num.messages=1 -X max.in.flight.requests.per.connection=1)
            local np
            for np in 1 8; do
                wanted "flush1-prod$np" || continue
                run_lg "flush1-prod$np" "flush.messages=1: $FLUSH_N × 100 B, acks=all, $np producer(s), 1 record per request, 1 request in flight each" null \
                    produce --producers "$np" "${flush[@]}" || true
            done
        else
            for np in 1 8; do
                wanted "flush1-prod$np" && skip_scenario "flush1-prod$np" "flush.messages=1" null "topic-create failed"
            done
        fi
    fi
    return 0
}

if [[ $SCENARIOS == 1 ]]; then
    if [[ -n ${BOOTSTRAP:-} ]]; then
        BOOT=$BOOTSTRAP
        log "using the running broker at $BOOT (startup time and RSS not measured)"
    else
        start_broker
    fi
    log "loadgen: $LOADGEN; $N records per throughput scenario"
    if "$LOADGEN" topic-create -b "$BOOT" -t "bench-ready$TOPIC_SUFFIX" --partitions 1 --if-not-exists \
        --timeout-secs 10 >>"$OUT/logs/topics.log" 2>&1; then
        run_scenarios
    else
        log "the broker does not answer Kafka requests (topic-create failed; see $OUT/logs/topics.log); no scenarios run"
        tail -5 "$OUT/logs/topics.log" >&2 || true
        if [[ -n $BROKER_PID ]] && ! broker_alive; then
            log "the broker exited; last lines of its log:"
            tail -20 "$OUT/logs/broker.log" >&2 || true
        fi
        FAILED=$((FAILED + 1))
        jq '. + {error: "broker does not answer Kafka requests (topic-create failed)"}' "$OUT/broker.json" \
            >"$OUT/broker.json.tmp" && mv "$OUT/broker.json.tmp" "$OUT/broker.json"
    fi
    if [[ -n $BROKER_PID ]] && broker_alive; then
        jq --argjson r "$(num "$(rss_mb "$BROKER_PID" VmRSS)")" --argjson h "$(num "$(rss_mb "$BROKER_PID" VmHWM)")" \
            '. + {rss_end_mb: $r, hwm_end_mb: $h}' "$OUT/broker.json" >"$OUT/broker.json.tmp" &&
            mv "$OUT/broker.json.tmp" "$OUT/broker.json"
    elif [[ -n $BROKER_PID ]]; then
        log "WARNING: the broker is no longer running; see $OUT/logs/broker.log"
    fi
    stop_broker
fi

python3 "$HELPERS/report.py" "$OUT" >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
if [[ ${FAILED:-0} -gt 0 ]]; then
    log "$FAILED scenario(s) failed or were skipped"
fi
# shellcheck disable=SC2012  # plain names, for a human
log "results in $OUT: $(cd "$OUT" && ls -p | tr '\n' ' ')"
[[ ${FAILED:-0} -eq 0 ]] || exit 1
