#!/usr/bin/env bash
# Simulator speed: simulated requests per second of wall time (simulated_requests /
# wall_seconds from `foresight simulate --json`) on bench/sim-speed.toml (100 instances x 8
# workers, 70% load, 20 s simulated), for round-robin and least-connections, one core.
#
# Usage: bench/sim-speed.sh [ROUNDS=7]
#   BASE=path/to/an/older/foresight  also runs that binary, alternating with this build run
#                                    by run, so both see the same moments of a noisy machine.
# Prints every run and the median per algorithm and binary.
set -euo pipefail
ROUNDS=${1:-7}
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
cargo build --release --quiet
BINS=("$PWD/target/release/foresight")
if [ -n "${BASE:-}" ]; then BINS=("$BASE" "${BINS[@]}"); fi
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
rate() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"{d['simulated_requests'] / d['wall_seconds'] / 1e6:.2f}\")" "$1"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for alg in round-robin least-connections; do
  declare -A runs=()
  for _ in $(seq "$ROUNDS"); do
    for bin in "${BINS[@]}"; do
      taskset -c 0 "$bin" simulate --scenario bench/sim-speed.toml --algorithms "$alg" --json "$OUT" >/dev/null 2>&1
      runs[$bin]="${runs[$bin]:-} $(rate "$OUT")"
    done
  done
  for bin in "${BINS[@]}"; do
    printf '%-18s %-40s median %5s M/s  runs:%s\n' "$alg" "$bin" "$(echo "${runs[$bin]}" | median)" "${runs[$bin]}"
  done
  unset runs
done
