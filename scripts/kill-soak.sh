#!/usr/bin/env bash
# Longer kill runs than `cargo test`'s: the kill harness (tests/kill.rs) with ROUNDS random SIGKILLs per
# working stop of its plan, once per seed. Add SDU_TEST_POSTGRES=postgres://… to play on PostgreSQL too.
#
#   scripts/kill-soak.sh [ROUNDS] [SEEDS]      # defaults: 20 kills per stop, seeds 1..3
#
# Each play prints one line: start-up time, starts, kills that hit a running process, kills after it had
# recorded steps, kills that fell between a write the mock accepted and its record, and the writes (each
# once). A failure names its seed and keeps its database; rerun that seed alone with
# `SDU_KILL_SEED=S SDU_KILL_ROUNDS=N cargo test -p sdu --test kill -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-20}"
seeds="${2:-3}"
case "$rounds$seeds" in
  *[!0-9]*) echo "usage: $0 [ROUNDS] [SEEDS]" >&2; exit 2 ;;
esac

cargo build -p mock-registries --bin mock-registries
cargo test -p sdu --test kill --no-run
for seed in $(seq 1 "$seeds"); do
  echo "kill-soak: seed $seed, $rounds kills per stop"
  SDU_KILL_SEED="$seed" SDU_KILL_ROUNDS="$rounds" \
    cargo test -p sdu --test kill -- --nocapture --test-threads 2 killed 2>&1 \
    | grep -E '^(kill |test |thread |error|  left|  right)|panicked|test result'
done
echo "kill-soak: $seeds seed(s) passed"
