#!/usr/bin/env bash
# Runs every shell and configuration block of README.md and docs/*.md as written, against a
# release build and real processes, and checks what each page says its examples show (see
# bench/docs-examples.py for the conventions). Without --all, blocks marked slow (the results'
# experiments, the benchmarks) are listed but not run; blocks that need what this machine cannot
# provide (a Kubernetes cluster) are listed with the reason.
#
# --debug runs them against the debug build instead: the binary `cargo test --workspace` builds
# (after the tests that is a no-op; `cargo build` would rebuild several crates, its features
# unified without the dev-dependencies). CI uses it to save the ~10-minute release build; the
# simulator's and forecaster's crates are optimised in the dev profile too, so the examples take
# about as long (the NASA forecast evaluation: 97 s against 90).
#
# --no-build runs them against the build as it is, without asking cargo (which would wait for
# a build running beside them: CI builds the features' tests meanwhile).
#
# Usage: bench/docs-examples.sh [--all] [--debug] [--no-build] [--page docs/live.md]...
# Needs: python3 (3.11+), curl, jq; the datasets in ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
[ -d ../shared/datasets ] || { echo "error: ../shared/datasets not found (the traces)" >&2; exit 1; }
profile=release
build=yes
args=()
for a in "$@"; do
  case "$a" in
    --debug) profile=debug ;;
    --no-build) build=no ;;
    *) args+=("$a") ;;
  esac
done
if [ "$build" = no ]; then :
elif [ "$profile" = debug ]; then cargo test --workspace --locked --no-run --quiet
else cargo build --release --locked --quiet; fi
exec python3 bench/docs-examples.py --profile "$profile" "${args[@]}" . ../shared
