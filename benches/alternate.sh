#!/usr/bin/env bash
# Runs two builds of sdu-bench alternately (old, new, old, new, …) on the same database and prints, per run
# and as medians, the CPU per case, the CPU time, the orchestrator's time, calls/s, system share and peak
# RSS, read from `--json`. The CPU per case of a build whose report lacks `cpu_per_case_ms` (before
# issue 15) is its `cpu_s / cases`.
#
#   benches/alternate.sh OLD_DIR NEW_DIR PAIRS -- SDU-BENCH ARGS…
#   benches/alternate.sh /work/bench-old target/release 3 -- --database sqlite:///tmp/b.db --n 100000
#
# OLD_DIR and NEW_DIR each hold sdu-bench with its mock-registries beside it. Needs jq.
set -euo pipefail
old=$1 new=$2 pairs=$3
shift 3
[ "${1:-}" = "--" ] && shift
out=${ALTERNATE_OUT:-/tmp/alternate.$$}
mkdir -p "$out"
echo "# runs in $out" >&2
row() { # label file
    jq -r --arg l "$1" '[$l, (.cpu_per_case_ms // (.cpu_s * 1000 / .cases)), .cpu_s, (.cpu_sys_s // "-"),
        .orchestrator_s, .calls_per_s, ((.fraction_of_capacity // 0) * 100), .peak_rss_mib]
        | map(if type == "number" then (. * 1000 | round / 1000) else . end) | @tsv' "$2"
}
printf 'run\tCPU/case ms\tCPU s\tsys s\torch s\tcalls/s\t%% of wrk\tRSS MiB\n'
for i in $(seq 1 "$pairs"); do
    for side in old new; do
        dir=$old
        [ $side = new ] && dir=$new
        "$dir/sdu-bench" --json "$@" > "$out/$side-$i.json"
        row "$side-$i" "$out/$side-$i.json"
    done
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for side in old new; do
    m=$(for f in "$out"/$side-*.json; do row x "$f"; done | cut -f2 | median)
    c=$(for f in "$out"/$side-*.json; do row x "$f"; done | cut -f3 | median)
    r=$(for f in "$out"/$side-*.json; do row x "$f"; done | cut -f8 | median)
    echo "median $side: CPU per case $m ms, CPU $c s, peak RSS $r MiB"
    eval "med_$side=$m"
done
awk -v o="$med_old" -v n="$med_new" 'BEGIN {printf "new / old CPU per case: %.3f\n", n / o}'
