#!/bin/sh
# fuzz.sh BUILD_DIR SECONDS -- run every libFuzzer target in BUILD_DIR/fuzz for SECONDS seconds each,
# seeded with a temporary copy of fuzz/corpus/<name> (the repository is never modified) and
# fuzz/<name>.dict (fuzz/mqtt.dict when there is none). Exits non-zero when a target crashes,
# leaks or fails an assertion; the crashing input is kept in the work directory and its path printed.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
secs=$2
root=$(cd "$(dirname "$0")/.." && pwd)
targets=$(ls "$build"/fuzz/fuzz_* 2>/dev/null | while read -r f; do [ -x "$f" ] && echo "$f"; done || true)
if [ -z "$targets" ]; then
    echo "fuzz.sh: no fuzz targets in $build/fuzz (configure with CC=clang -DTOMBO_FUZZ=ON)" >&2
    exit 1
fi
work=$(mktemp -d /tmp/tombo-fuzz.XXXXXX)
status=0
for t in $targets; do
    name=$(basename "$t")
    short=${name#fuzz_}
    mkdir -p "$work/$short/corpus" "$work/$short/artifacts"
    if [ -d "$root/fuzz/corpus/$short" ]; then
        cp -R "$root/fuzz/corpus/$short/." "$work/$short/corpus/"
    fi
    dict="$root/fuzz/$short.dict"
    [ -f "$dict" ] || dict="$root/fuzz/mqtt.dict"
    echo "fuzz.sh: $name for ${secs}s"
    if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -dict="$dict" -artifact_prefix="$work/$short/artifacts/" -print_final_stats=1 \
        "$work/$short/corpus" >"$work/$short/log" 2>&1; then
        tail -n 40 "$work/$short/log" >&2
        echo "fuzz.sh: $name FAILED; crashing input and log kept in $work/$short" >&2
        status=1
    else
        grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$work/$short/log" | sed "s/^/  /" || true
    fi
done
if [ $status -eq 0 ]; then
    rm -rf "$work"
    echo "fuzz.sh: all targets passed"
fi
exit $status
