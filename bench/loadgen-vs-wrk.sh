#!/usr/bin/env bash
# `foresight loadgen` against wrk, side by side on this machine, and its rate accuracy.
#
# Target: one NGINX worker answering `return 200` pinned to CPU 0. The load tool runs alone on
# CPU 1 with one runtime thread (wrk: one thread), 50 connections. Rounds alternate between the
# tools; the medians are reported. Then open-loop accuracy: `--rate R` for several R, the rate
# actually sent (requests / duration) and answered against R.
#
# Usage: bench/loadgen-vs-wrk.sh [ROUNDS=5] [SECONDS=10]
# Needs: wrk, nginx (apt-get install -y wrk nginx-light), python3, a release build.
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-10}
CONNS=${CONNS:-50}
cd "$(dirname "$0")/.."
for tool in wrk nginx taskset python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
cargo build --release --quiet
BIN=$PWD/target/release/foresight
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=18201
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$PORT; location / { return 200 "ok\n"; } }
}
CONF
taskset -c 0 nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" & PIDS+=($!)
sleep 0.5
URL=http://127.0.0.1:$PORT

wrk_rps=(); fs_rps=()
for r in $(seq "$ROUNDS"); do
  w=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$URL/" | awk '/Requests\/sec/ {print $2}')
  taskset -c 1 "$BIN" loadgen --target "$URL" --max-rate --connections "$CONNS" --duration "${SECS}s" \
    --workers 1 --quiet --json "$WORK/fs.json" >/dev/null
  f=$(python3 -c "import json;print(round(json.load(open('$WORK/fs.json'))['achieved_rps']))")
  echo "round $r: wrk $w req/s, foresight loadgen $f req/s"
  wrk_rps+=("$w"); fs_rps+=("$f")
done
python3 - "${wrk_rps[*]}" "${fs_rps[*]}" <<'PY'
import statistics, sys
w = [float(x) for x in sys.argv[1].split()]
f = [float(x) for x in sys.argv[2].split()]
mw, mf = statistics.median(w), statistics.median(f)
ratios = sorted(b / a for a, b in zip(w, f))
print(f"| max rate | wrk {mw:,.0f} req/s | foresight loadgen {mf:,.0f} req/s | ratio of medians {mf/mw:.3f} | per-round ratios {', '.join(f'{r:.3f}' for r in ratios)} |")
PY

echo "rate accuracy (open loop, ${SECS}s each):"
for rate in 100 1000 5000 10000; do
  taskset -c 1 "$BIN" loadgen --target "$URL" --rate "$rate" --duration "${SECS}s" --workers 1 --quiet \
    --json "$WORK/acc.json" >/dev/null
  python3 - "$rate" "$WORK/acc.json" <<'PY'
import json, sys
rate = float(sys.argv[1]); j = json.load(open(sys.argv[2]))
print(f"| {rate:,.0f} | sent {j['send_rps']:,.1f} ({(j['send_rps']/rate-1)*100:+.2f}%) | answered {j['achieved_rps']:,.1f} ({(j['achieved_rps']/rate-1)*100:+.2f}%) | p99 {j['p99_ms']:.2f} ms | max send lag {j['max_send_lag_ms']:.1f} ms | failures {j['failures']} |")
PY
done
