#!/usr/bin/env bash
# Lossless-rate benchmark: the highest NetFlow v9 rate (flows/s) that
# `flowerd serve` stores without losing a flow, and the same for nfdump's
# `nfcapd`, on loopback, with `flowerd generate` as the exporter.
#
# For each rate, each collector gets a fresh process and data directory, then
# STEP_SECS seconds of traffic from EXPORTERS exporters. Sent is what
# `flowerd generate` reports; stored is flower_flows_stored_total (flowerd,
# after its pipeline has drained) or the flow count of nfcapd's files (after
# its socket has drained and it exited).
#
# A rate passes when nothing was lost AND the collector caught up within
# DRAIN_MAX_SECS of the generator's end: backlog is what buffers (the socket
# buffer, flowerd's channel of up to 2 M flows) absorbed, and a collector
# that only keeps up thanks to them would lose flows in a longer run. The
# backlog time is in the table ("caught up after"). A collector's lossless
# rate is the highest rate that it and every lower rate passed; it stops
# being tested after two failed rates in a row. The two collectors take
# turns going first.
#
# The rate reported is the one `flowerd generate` achieved (it can fall short
# of the one asked for when the CPUs are saturated).
#
# Both collectors share the machine with the generator (about half a core at
# 1.5 M flows/s): run it on an otherwise idle machine, or the numbers are
# lower and noisy (the script measures how busy the CPUs are before it starts
# and warns).
#
# Usage: scripts/bench-lossless.sh            (not run in CI; about 15 minutes)
# Environment:
#   RATES="100000 250000 ..."   flows/s to try, rising
#   STEP_SECS=30                seconds of traffic per rate
#   DRAIN_MAX_SECS=2            most seconds a collector may take to catch up
#   EXPORTERS=4                 simulated exporters
#   RECV_BUFFER=67108864        socket receive buffer for both collectors (bytes)
#   NFCAPD_PORT=29996           UDP port for nfcapd
#   SKIP_NFCAPD=1               benchmark flowerd only
#   FLOWERD=path/to/flowerd     use this binary instead of building target/release/flowerd
#
# Output: a markdown table, then one line
#   flowerd_lossless_fps=N nfcapd_lossless_fps=M ratio=R
set -euo pipefail

RATES=${RATES:-"100000 250000 500000 750000 1000000 1250000 1500000 2000000 2500000 3000000 4000000 5000000"}
STEP_SECS=${STEP_SECS:-30}
DRAIN_MAX_SECS=${DRAIN_MAX_SECS:-2}
EXPORTERS=${EXPORTERS:-4}
RECV_BUFFER=${RECV_BUFFER:-67108864}
NFCAPD_PORT=${NFCAPD_PORT:-29996}
SKIP_NFCAPD=${SKIP_NFCAPD:-0}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FLOWERD:-$ROOT/target/release/flowerd}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-lossless.XXXXXX")
DAEMON_PID=
ORIG_RMEM_MAX=

log() { echo "bench: $*" >&2; }

cleanup() {
    if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n $ORIG_RMEM_MAX ]]; then
        sysctl -qw net.core.rmem_max="$ORIG_RMEM_MAX" >/dev/null 2>&1 &&
            log "restored net.core.rmem_max=$ORIG_RMEM_MAX"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup

command -v curl >/dev/null || { log "curl is required"; exit 1; }
if [[ $SKIP_NFCAPD != 1 ]] && ! command -v nfcapd >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing nfdump (nfcapd)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nfdump >/dev/null
    else
        log "nfcapd not found (apt-get install nfdump), or set SKIP_NFCAPD=1"
        exit 1
    fi
fi

if [[ -z ${FLOWERD:-} ]]; then
    log "building flowerd (release)"
    (cd "$ROOT" && cargo build --release -q -p flowerd)
fi

rmem_max=$(cat /proc/sys/net/core/rmem_max)
if ((rmem_max < RECV_BUFFER)); then
    if [[ $(id -u) == 0 ]] && sysctl -qw net.core.rmem_max="$RECV_BUFFER" 2>/dev/null; then
        ORIG_RMEM_MAX=$rmem_max
        log "raised net.core.rmem_max from $rmem_max to $RECV_BUFFER (restored at exit)"
    else
        log "net.core.rmem_max is $rmem_max: receive buffers are clamped to it" \
            "(run as root, or sysctl -w net.core.rmem_max=$RECV_BUFFER)"
    fi
fi

# "rx_queue drops" of the UDP sockets bound to 127.0.0.1:PORT (/proc/net/udp).
udp_stat() {
    local addr rx=0 drops=0 queues d
    addr=$(printf '0100007F:%04X' "$1")
    while read -r queues d; do
        rx=$((rx + 16#${queues#*:})) drops=$((drops + d))
    done < <(awk -v a="$addr" '$2 == a { print $5, $NF }' /proc/net/udp)
    echo "$rx $drops"
}

# Waits until the socket on PORT has nothing queued (at most 60 s).
wait_socket_drained() {
    local i
    for ((i = 0; i < 600; i++)); do
        read -r rx _ < <(udp_stat "$1")
        ((rx == 0)) && return 0
        sleep 0.1
    done
    log "socket on port $1 still has $rx bytes queued"
}

# Seconds since START_NS (from `date +%s%N`), one decimal.
since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f\n", (b - a) / 1e9 }'; }

# Runs `flowerd generate` at RATE flows/s to ADDR; sets SENT (flows) and FPS
# (flows/s achieved).
generate() {
    local out
    out=$("$BIN" generate --to "$2" --flows-per-sec "$1" --duration "${STEP_SECS}s" \
        --exporters "$EXPORTERS")
    echo "$out" >>"$TMP/generate.log"
    SENT=$(sed -n 's/.* flows=\([0-9]*\) .*/\1/p' <<<"$out")
    FPS=$(sed -n 's/.* flows_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
}

# ---------------------------------------------------------------- flowerd

HTTP=
NETFLOW=
metrics() { curl -sf "http://$HTTP/metrics"; }
# Sum of a metric over its label sets.
metric() { metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'; }

start_flowerd() {
    local dir=$TMP/flowerd i
    rm -rf "$dir" && mkdir -p "$dir"
    cat >"$dir/flowerd.toml" <<EOF
[http]
listen = "127.0.0.1:0"
metrics_public = true

[[netflow]]
listen = "127.0.0.1:0"
recv_buffer = $RECV_BUFFER

[log]
level = "warn"
EOF
    "$BIN" serve --config "$dir/flowerd.toml" --data "$dir/data" >"$dir/out" 2>"$dir/log" &
    DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        if grep -qs '^flowerd: ready ' "$dir/out"; then
            HTTP=$(sed -n 's/^flowerd: ready http=\([^ ]*\) .*/\1/p' "$dir/out")
            NETFLOW=$(sed -n 's/^flowerd: ready .*netflow=\([^ ,]*\).*/\1/p' "$dir/out")
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
        sleep 0.1
    done
    log "flowerd did not start"; exit 1
}

stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || log "collector exited with status $?"
    DAEMON_PID=
}

# One flowerd step; sets SENT FPS STORED KDROPS CDROPS DRAIN.
flowerd_step() {
    local rate=$1 stored=0 received dropped i end
    start_flowerd
    generate "$rate" "$NETFLOW"
    end=$(date +%s%N)
    wait_socket_drained "${NETFLOW##*:}"
    # Caught up: every received flow stored or dropped.
    for ((i = 0; i < 1200; i++)); do
        received=$(metric flower_flows_received_total)
        dropped=$(metric flower_channel_dropped_flows_total)
        stored=$(metric flower_flows_stored_total)
        ((stored + dropped >= received)) && break
        sleep 0.1
    done
    DRAIN=$(since "$end")
    STORED=$stored KDROPS=$(metric flower_kernel_drops_total) CDROPS=$dropped
    stop_daemon
}

# ---------------------------------------------------------------- nfcapd

# One nfcapd step; sets SENT FPS STORED KDROPS DRAIN.
nfcapd_step() {
    local rate=$1 dir=$TMP/nfcapd drops stored i
    rm -rf "$dir" && mkdir -p "$dir"
    nfcapd -w "$dir" -p "$NFCAPD_PORT" -b 127.0.0.1 -B "$RECV_BUFFER" -t 3600 \
        >"$TMP/nfcapd.log" 2>&1 &
    DAEMON_PID=$!
    for ((i = 0; i < 100; i++)); do
        ss -Hlun "sport = :$NFCAPD_PORT" | grep -q . && break
        sleep 0.1
    done
    generate "$rate" "127.0.0.1:$NFCAPD_PORT"
    local end
    end=$(date +%s%N)
    wait_socket_drained "$NFCAPD_PORT"
    DRAIN=$(since "$end")
    read -r _ drops < <(udp_stat "$NFCAPD_PORT")
    stop_daemon
    stored=$(nfdump -R "$dir" -I | awk '$1 == "Flows:" { print $2 }')
    STORED=${stored:-0} KDROPS=$drops
}

# ---------------------------------------------------------------- run

declare -A ROW
SENT=0 FPS=0 STORED=0 KDROPS=0 CDROPS=0 DRAIN=0
flowerd_best=0 nfcapd_best=0 flowerd_lossy=0 nfcapd_lossy=0 flowerd_lost_once=0 nfcapd_lost_once=0
# Percentage of CPU time used by others over one second (/proc/stat).
cpu_busy() {
    local a b
    a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        busy = y[1] - x[1]; idle = y[2] - x[2];
        total = busy + idle; if (total < 1) total = 1;
        printf "%.0f\n", 100 * busy / total }'
}
BUSY_BEFORE=$(cpu_busy)
if ((BUSY_BEFORE > 10)); then
    log "the CPUs are ${BUSY_BEFORE}% busy before starting: rates will be lower and noisy"
fi
# Whether a step passed: nothing lost, caught up in time.
passed() { (($1 == 0)) && awk -v d="$2" -v m="$DRAIN_MAX_SECS" 'BEGIN { exit !(d <= m) }'; }
run_flowerd() {
    log "flowerd at $rate flows/s"
    flowerd_step "$rate"
    lost=$((SENT - STORED))
    f="| $FPS | $SENT | $STORED | $lost | $KDROPS | $CDROPS | $DRAIN"
    if passed "$lost" "$DRAIN"; then
        ((flowerd_lossy + flowerd_lost_once == 0)) && flowerd_best=$FPS
        flowerd_lossy=0
    else
        flowerd_lossy=$((flowerd_lossy + 1)) flowerd_lost_once=1
    fi
}
run_nfcapd() {
    log "nfcapd at $rate flows/s"
    nfcapd_step "$rate"
    lost=$((SENT - STORED))
    n="| $FPS | $SENT | $STORED | $lost | $KDROPS | $DRAIN"
    if passed "$lost" "$DRAIN"; then
        ((nfcapd_lossy + nfcapd_lost_once == 0)) && nfcapd_best=$FPS
        nfcapd_lossy=0
    else
        nfcapd_lossy=$((nfcapd_lossy + 1)) nfcapd_lost_once=1
    fi
}
turn=0
for rate in $RATES; do
    f="skipped" n="skipped"
    want_f=0 want_n=0
    ((flowerd_lossy < 2)) && want_f=1
    [[ $SKIP_NFCAPD != 1 ]] && ((nfcapd_lossy < 2)) && want_n=1
    if ((turn % 2 == 0)); then
        ((want_f)) && run_flowerd
        ((want_n)) && run_nfcapd
    else
        ((want_n)) && run_nfcapd
        ((want_f)) && run_flowerd
    fi
    turn=$((turn + 1))
    [[ $f == skipped ]] && f="| – | – | – | – | – | – | –"
    [[ $n == skipped ]] && n="| – | – | – | – | – | –"
    ROW[$rate]="| $rate $f $n |"
done

echo
echo "Lossless NetFlow v9 ingest on loopback: $EXPORTERS exporters, ${STEP_SECS} s per rate (passed: nothing lost, caught up within ${DRAIN_MAX_SECS} s)," \
    "receive buffer $RECV_BUFFER bytes (net.core.rmem_max=$(cat /proc/sys/net/core/rmem_max)), $(nproc) CPUs," \
    "CPUs ${BUSY_BEFORE}% busy with other work before the run, $(cpu_busy)% after."
echo
echo "| asked (flows/s) | flowerd achieved (flows/s) | flowerd sent | flowerd stored | flowerd lost | flowerd kernel drops (datagrams) | flowerd channel drops (flows) | flowerd caught up after (s) | nfcapd achieved (flows/s) | nfcapd sent | nfcapd stored | nfcapd lost | nfcapd kernel drops (datagrams) | nfcapd caught up after (s) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in $RATES; do echo "${ROW[$rate]}"; done
echo
ratio=$(awk -v a="$flowerd_best" -v b="$nfcapd_best" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "flowerd_lossless_fps=$flowerd_best nfcapd_lossless_fps=$nfcapd_best ratio=$ratio"
