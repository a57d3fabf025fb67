#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: repeatable whatever else
# the machine does (wall-clock throughput here varies ±15% between runs), so it is the number
# to compare two versions of the proxy by. Kernel work (the TCP stack) is not counted.
#
# Usage: bench/instructions-per-request.sh [BINARY]   (default: target/release/foresight)
# Needs: valgrind, wrk, nginx, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/foresight}
[ -x "$BIN" ] || cargo build --release --quiet
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/upstream.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/up.pid; error_log $WORK/up-error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18201; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:18202; location / { return 200 "ok\n"; } } }
CONF
nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)
RUST_LOG=warn valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$WORK/cg.out" "$BIN" serve --workers 1 --listen 127.0.0.1:18280 \
  --admin 127.0.0.1:18281 --backend http://127.0.0.1:18201 --backend http://127.0.0.1:18202 \
  --algorithm round-robin > /dev/null 2> "$WORK/vg.err" & PIDS+=($!)
VG=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18280/ > /dev/null 2>&1 && break; sleep 0.2; done
count() { curl -s http://127.0.0.1:18281/backends | python3 -c 'import json,sys; print(sum(b["requests"] for b in json.load(sys.stdin)))'; }
wrk -t1 -c10 -d3s http://127.0.0.1:18280/ > /dev/null   # warm up pools and caches
N1=$(count)
callgrind_control -z "$VG" > /dev/null
wrk -t1 -c10 -d6s http://127.0.0.1:18280/ > /dev/null
callgrind_control -d "$VG" > /dev/null
N2=$(count)
IR=$(awk '/^summary:|^totals:/ {s+=$2} END {print s}' "$WORK"/cg.out.1)
echo "requests=$((N2 - N1)) instructions_per_request=$((IR / (N2 - N1)))"
# KEEP=FILE keeps the callgrind profile (read it with callgrind_annotate FILE).
if [ -n "${KEEP:-}" ]; then cp "$WORK"/cg.out.1 "$KEEP"; fi
