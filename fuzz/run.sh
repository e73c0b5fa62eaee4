#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another:
#
#   fuzz/run.sh [SECONDS]
#
# Each target starts from its working corpus fuzz/corpus/<target> (ignored by
# git, kept between runs) and the committed seeds fuzz/seeds/<target>; new
# inputs go to the working corpus. Prints the executions of each target and
# exits 1 if any target crashed (the input is in fuzz/artifacts/<target>/).
# Needs a nightly toolchain and cargo-fuzz. Logs: fuzz/target/run-<target>.log.
set -u

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
mkdir -p fuzz/target

targets=(export_packet stream roundtrip filter store_block capture http_request)
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/target/run-$t.log"
    echo "== $t: ${secs}s" >&2
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    # libFuzzer's last words: "Done N runs in S second(s)", and with
    # -print_final_stats "stat::number_of_executed_units: N".
    runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)"
    fi
    took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    line="$t: ${runs:-?} executions"
    if [ -n "$runs" ] && [ -n "$took" ] && [ "$took" -gt 0 ]; then
        line="$line in ${took}s ($((runs / took))/s)"
    fi
    if [ "$rc" -ne 0 ]; then
        line="$line, CRASHED (exit $rc; see $log and fuzz/artifacts/$t/)"
        failed+=("$t")
        grep -m 3 -E '^(==[0-9]+==|thread .* panicked|artifact_prefix|Test unit written)' "$log" >&2
    fi
    summary+=("$line")
    echo "$line" >&2
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
