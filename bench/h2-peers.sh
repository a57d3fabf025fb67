#!/usr/bin/env bash
# HTTP/2 through Foresight and through HAProxy to the same h2c instances, side by side
# (issue #35 item 6): the gRPC path, one multiplexed connection per instance.
#
# Each proxy runs with ONE worker thread pinned to CPU 0, accepts h2c from the client (prior
# knowledge) and speaks h2c to two upstream servers (an NGINX `return 200` server with two
# `http2` ports, so the upstream is never the bottleneck), round-robin. h2load (one thread,
# 50 connections, 10 streams each) and the upstream share CPU 1. Rounds alternate between the
# proxies; the table reports medians of the rounds and of the per-round ratios to HAProxy.
#
# Usage: [PROFILE=release] [PROFILE_PERF=1] bench/h2-peers.sh [ROUNDS=5] [SECONDS=5]
# Needs: h2load (apt-get install -y nghttp2-client), nginx (with http_v2), haproxy.
# PROFILE_PERF=1 then profiles Foresight's worker under the same load (perf record, 4 s) and
# prints its samples grouped by crate or shared object (docs/benchmarks.md, "Where the time
# goes"); needs perf (apt-get install -y linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER=${2:-5}
PROFILE=${PROFILE:-release}
TOOLS="h2load nginx haproxy taskset"
[ "${PROFILE_PERF:-0}" = 1 ] && TOOLS="$TOOLS perf"
for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y nghttp2-client nginx-light haproxy linux-perf)" >&2; exit 1; }
done
cargo build --profile "$PROFILE" -p foresight --quiet
BIN=target/$PROFILE/foresight
WORK=$(mktemp -d /tmp/foresight-h2-peers.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; sleep 0.3; rm -rf "$WORK"' EXIT
UP1=18191; UP2=18192; P_FORESIGHT=18190; P_HAPROXY=18193

cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  http2_max_concurrent_streams 1024;
  server { listen 127.0.0.1:$UP1 http2; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$UP2 http2; location / { return 200 "ok\n"; } }
}
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAPROXY proto h2
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:$UP1 proto h2
  server s2 127.0.0.1:$UP2 proto h2
CONF
cat > "$WORK/foresight.toml" <<CONF
protocol = "h2c"
[balancer]
algorithm = "round-robin"
[health_check]
enabled = false
[[backends]]
address = "http://127.0.0.1:$UP1"
[[backends]]
address = "http://127.0.0.1:$UP2"
CONF

taskset -c 1 nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/foresight.toml" --workers 1 \
  --listen 127.0.0.1:$P_FORESIGHT --admin 127.0.0.1:18194 > /dev/null & PIDS+=($!)
FORESIGHT_PID=$!
sleep 1
declare -A PORT=([foresight]=$P_FORESIGHT [haproxy]=$P_HAPROXY)
for name in foresight haproxy; do
  # Warm up, and fail early when a proxy does not answer.
  taskset -c 1 h2load -n 200 -c 2 -m 2 "http://127.0.0.1:${PORT[$name]}/" | grep -q "200 succeeded\|succeeded, 0 failed" \
    || { echo "$name does not answer over h2c" >&2; exit 1; }
done
: > "$WORK/results"
for r in $(seq 1 "$ROUNDS"); do
  for name in foresight haproxy; do
    out=$(taskset -c 1 h2load -D "$SECONDS_PER" -c 50 -m 10 -t 1 --log-file="$WORK/$name.log" \
      "http://127.0.0.1:${PORT[$name]}/" 2>&1)
    rps=$(echo "$out" | awk '/^finished in/ {print $4}')
    failed=$(echo "$out" | awk '/^requests:/ {print $10}')
    p99=$(awk '{print $3}' "$WORK/$name.log" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]/1000}')
    echo "round $r $name: $rps req/s, p99 ${p99} ms, failed $failed"
    echo "$r $name $rps $p99 $failed" >> "$WORK/results"
  done
done
python3 - "$WORK/results" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, name, rps, p99, failed in rows:
    by.setdefault(name, {})[int(r)] = (float(rps), float(p99), int(failed))
print()
print("| proxy (1 worker, h2c both sides) | median req/s | median of per-round req/s ratios to HAProxy | median p99 ms | median of per-round p99 ratios | failed |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("foresight", "haproxy"):
    rounds = by[name]
    rr = [rounds[k][0] / by["haproxy"][k][0] for k in rounds]
    pr = [rounds[k][1] / by["haproxy"][k][1] for k in rounds]
    print(f"| {name} | {st.median(v[0] for v in rounds.values()):.0f} | {st.median(rr):.2f} | "
          f"{st.median(v[1] for v in rounds.values()):.2f} | {st.median(pr):.2f} | {sum(v[2] for v in rounds.values())} |")
PY
echo
echo "versions: $(haproxy -v | head -1), $(h2load --version | head -1), $(nginx -v 2>&1); rounds=$ROUNDS, ${SECONDS_PER}s each, 50 connections x 10 streams"
if [ "${PROFILE_PERF:-0}" = 1 ]; then
  taskset -c 1 h2load -D 7 -c 50 -m 10 -t 1 "http://127.0.0.1:$P_FORESIGHT/" > /dev/null 2>&1 &
  LOAD=$!
  sleep 1
  perf record -q -F 499 --call-graph dwarf -p "$FORESIGHT_PID" -o "$WORK/perf.data" -- sleep 4 2>/dev/null
  wait "$LOAD" || true
  echo
  echo "Foresight's worker under the same load (perf record -F 499 --call-graph dwarf, 4 s):"
  echo "self samples by crate (Rust symbols) or shared object (the rest), >= 0.5%"
  perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | python3 -c '
import re, sys, collections
groups = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    if kind == "k":
        key = "kernel"
    else:
        # A Rust symbol: its crate, the first path segment (of the type in <T as Trait>::f).
        c = re.match(r"<?&?(?:mut )?(?:dyn )?([a-z_][a-z0-9_]*)::", sym)
        key = c.group(1) if c else ("memcpy/memmove" if "memcpy" in sym or "memmove" in sym else dso + " (other symbols: allocator, C code)")
    groups[key] += pct
for key, pct in groups.most_common():
    if pct >= 0.5:
        print(f"  {pct:5.1f}%  {key}")
'
fi
