#!/usr/bin/env bash
# Runs every shell and configuration block of README.md and docs/*.md as written, against a
# release build and real processes, and checks what each page says its examples show (see
# bench/docs-examples.py for the conventions). Without --all, blocks marked slow (the results'
# experiments, the benchmarks) are listed but not run; blocks that need what this machine cannot
# provide (a Kubernetes cluster) are listed with the reason.
#
# Usage: bench/docs-examples.sh [--all] [--page docs/live.md]...
# Needs: python3 (3.11+), curl, jq; the datasets in ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
[ -d ../shared/datasets ] || { echo "error: ../shared/datasets not found (the traces)" >&2; exit 1; }
cargo build --release --quiet
exec python3 bench/docs-examples.py "$@" . ../shared
