#!/usr/bin/env bash
# Foresight vs HAProxy vs NGINX as reverse proxies, side by side on this machine.
#
# Each proxy runs with ONE worker thread/process pinned to CPU 0, in front of the same two
# upstream servers (an NGINX `return 200` server with two ports, so the upstream is never the
# bottleneck), with keep-alive to the upstreams, round-robin, and the same header work that
# Foresight always does (Host kept, X-Forwarded-For appended, X-Forwarded-Proto set). wrk (1 thread, 50 connections) and the upstream
# share CPU 1. Rounds alternate between the proxies; the table reports the median of the rounds.
#
# Usage: [PROFILE=release-lto] [BASE=other/foresight] [ROUTED=1] bench/proxy-peers.sh [ROUNDS=3] [SECONDS=10]
# ROUTED=1 adds `routed`: the same build with three services and a three-route table whose
# last route (after two path prefixes that do not match) takes wrk's requests, to the same two
# upstreams; its per-round ratio to `foresight` is the cost of routing.
# TLS=1 terminates TLS in all three (one self-signed certificate made here with openssl, ECDSA
# P-256; TLS 1.3 with TLS_AES_256_GCM_SHA384 for each, the cipher rustls prefers; ALPN http/1.1)
# and wrk speaks https; the upstreams stay plain HTTP.
# LOGGED=1 adds `logged`: the same build writing a JSON access log line for every request to a
# file; its per-round ratio to `foresight` is the cost of access logs.
# DASHBOARDS=N adds `control` and `dashboards`: the same build with a control loop on its one
# service (hybrid, moving average, `actuator = "none"`: it decides and acts on nothing, so the
# pool stays the two upstreams), the second with N open /ui dashboards polling its admin
# listener as the page does (bench/dashboard-pollers.py, on CPU 1 through every round); the
# per-round ratio dashboards / control is what the open dashboards cost the request path.
# Needs: wrk, nginx, haproxy (apt-get install -y wrk nginx-light haproxy). Builds Foresight
# with the cargo profile PROFILE (default release-lto, whose link takes ~5 minutes).
# Reports req/s, p99, each proxy's CPU time per request (user + kernel, /proc/PID/stat) and the
# median of per-round ratios to HAProxy.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-10}
CONNS=${CONNS:-50}
cd "$(dirname "$0")/.."
for tool in wrk nginx haproxy taskset; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install -y wrk nginx-light haproxy)" >&2; exit 1; }
done
PROFILE=${PROFILE:-release-lto}   # the build to deploy (Cargo.toml); PROFILE=release for the plain one
cargo build --profile "$PROFILE" --quiet
BIN=$PWD/target/$PROFILE/foresight
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

UP1=18001; UP2=18002; P_FORESIGHT=18080; P_HAPROXY=18090; P_NGINX=18100
SCHEME=http; NGINX_SSL=""; NGINX_SSL_CONF=""; HAPROXY_SSL=""; HAPROXY_GLOBAL=""; FORESIGHT_TLS=()
if [ -n "${TLS:-}" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"
  printf '[tls]\ncertificates = [{ cert = "%s", key = "%s" }]\n' "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/tls.toml"
  SCHEME=https; NGINX_SSL=" ssl"; FORESIGHT_TLS=(--config "$WORK/tls.toml")
  NGINX_SSL_CONF="ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;"
  HAPROXY_SSL=" ssl crt $WORK/haproxy.pem alpn http/1.1"
  HAPROXY_GLOBAL="  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384"
fi

cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP1; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$UP2; location / { return 200 "ok\n"; } }
}
CONF
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream pool { server 127.0.0.1:$UP1; server 127.0.0.1:$UP2; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGINX$NGINX_SSL;
    $NGINX_SSL_CONF
    location / {
      proxy_pass http://pool; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
$HAPROXY_GLOBAL
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAPROXY$HAPROXY_SSL
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:$UP1
  server s2 127.0.0.1:$UP2
CONF

taskset -c 1 nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)
declare -A PROC  # the process that does the proxying, for its CPU time
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!); NGINX_MASTER=$!
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!); PROC[haproxy]=$!
RUST_LOG=warn taskset -c 0 "$BIN" serve "${FORESIGHT_TLS[@]}" --workers 1 --listen 127.0.0.1:$P_FORESIGHT --admin 127.0.0.1:18081 \
  --backend http://127.0.0.1:$UP1 --backend http://127.0.0.1:$UP2 --algorithm round-robin > /dev/null & PIDS+=($!)
PROC[foresight]=$!
# BASE=path/to/another/foresight adds it as a fourth contender (A/B of two builds).
NAMES="foresight haproxy nginx"; declare -A PORT=([foresight]=$P_FORESIGHT [haproxy]=$P_HAPROXY [nginx]=$P_NGINX)
if [ -n "${BASE:-}" ]; then
  RUST_LOG=warn taskset -c 0 "$BASE" serve --workers 1 --listen 127.0.0.1:18085 --admin 127.0.0.1:18086 \
    --backend http://127.0.0.1:$UP1 --backend http://127.0.0.1:$UP2 --algorithm round-robin > /dev/null & PIDS+=($!)
  PROC[base]=$!
  NAMES="foresight base haproxy nginx"; PORT[base]=18085
fi
if [ -n "${ROUTED:-}" ]; then
  cat > "$WORK/routed.toml" <<CONF
[[services]]
name = "auth"
backends = [{ address = "http://127.0.0.1:$UP1" }]
[[services]]
name = "data"
backends = [{ address = "http://127.0.0.1:$UP2" }]
[[services]]
name = "web"
backends = [{ address = "http://127.0.0.1:$UP1" }, { address = "http://127.0.0.1:$UP2" }]
[[routes]]
path_prefix = "/auth"
service = "auth"
[[routes]]
path_prefix = "/process"
service = "data"
[[routes]]
path_prefix = "/"
service = "web"
CONF
  RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routed.toml" --workers 1 --listen 127.0.0.1:18087 \
    --admin 127.0.0.1:18088 --algorithm round-robin > /dev/null & PIDS+=($!)
  PROC[routed]=$!
  NAMES="$NAMES routed"; PORT[routed]=18087
fi
if [ -n "${LOGGED:-}" ]; then
  printf '[access_log]\npath = "%s"\n' "$WORK/access.log" > "$WORK/logged.toml"
  RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/logged.toml" --workers 1 --listen 127.0.0.1:18089 \
    --admin 127.0.0.1:18083 --backend http://127.0.0.1:$UP1 --backend http://127.0.0.1:$UP2 \
    --algorithm round-robin > /dev/null & PIDS+=($!)
  PROC[logged]=$!
  NAMES="$NAMES logged"; PORT[logged]=18089
fi
if [ -n "${DASHBOARDS:-}" ]; then
  for v in control:18091:18092 dashboards:18093:18094; do
    IFS=: read -r name port admin <<<"$v"
    cat > "$WORK/$name.toml" <<CONF
[[services]]
name = "web"
backends = [{ address = "http://127.0.0.1:$UP1" }, { address = "http://127.0.0.1:$UP2" }]
[services.control]
interval = "1s"
step = "1s"
policy = "hybrid"
forecaster = "moving-average"
min = 2
max = 2
actuator = "none"
CONF
    RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/$name.toml" --workers 1 --listen 127.0.0.1:$port \
      --admin 127.0.0.1:$admin --algorithm round-robin > /dev/null & PIDS+=($!)
    PROC[$name]=$!
    NAMES="$NAMES $name"; PORT[$name]=$port
  done
  sleep 1
  taskset -c 1 python3 bench/dashboard-pollers.py "$DASHBOARDS" 127.0.0.1:18094 & PIDS+=($!)
fi
sleep 1
PROC[nginx]=$(pgrep -P "$NGINX_MASTER" | head -1)   # its one worker process
for port in "${PORT[@]}"; do
  curl -kfsS "$SCHEME://127.0.0.1:$port/" > /dev/null || { echo "error: nothing answers on $port" >&2; exit 1; }
done

declare -A RPS P99 USR SYS
CLK=$(getconf CLK_TCK)
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }   # utime stime, in clock ticks
run() { # name port round
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu "${PROC[$1]}")
  local out; out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$SCHEME://127.0.0.1:$2/")
  read -r u1 s1 < <(cpu "${PROC[$1]}")
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local p99; p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local n; n=$(awk '/requests in/ {print $1}' <<<"$out")
  # CPU time the proxy spent per request, in user space and in the kernel (microseconds).
  local us; us=$(awk -v t=$((u1 - u0)) -v c="$CLK" -v n="$n" 'BEGIN{printf "%.2f", t / c / n * 1e6}')
  local ks; ks=$(awk -v t=$((s1 - s0)) -v c="$CLK" -v n="$n" 'BEGIN{printf "%.2f", t / c / n * 1e6}')
  RPS[$1]+="$rps "; P99[$1]+="$p99 "; USR[$1]+="$us "; SYS[$1]+="$ks "
  echo "round $3 $1: $rps req/s, p99 $p99, CPU/request user $us us, kernel $ks us" >&2
}
to_ms() { # wrk prints 1.23ms / 456.00us / 1.2s
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f\n", v}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Warm up connection pools.
for port in "${PORT[@]}"; do taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$SCHEME://127.0.0.1:$port/" > /dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for name in $NAMES; do run "$name" "${PORT[$name]}" "$r"; done
done
H_RPS=$(echo "${RPS[haproxy]}" | median)
echo
cpu_total() { # name -> median over rounds of user + kernel CPU per request
  local u=(${USR[$1]}) k=(${SYS[$1]}) i
  for i in "${!u[@]}"; do awk -v a="${u[$i]}" -v b="${k[$i]}" 'BEGIN{print a+b}'; done | tr '\n' ' ' | median
}
H_CPU=$(cpu_total haproxy)
# Per-round ratios to HAProxy's round next to it: the machine drifts between slow and fast
# states for tens of seconds, which moves every contender's absolute numbers together.
paired() { # name -> median over rounds of (name's req/s / HAProxy's req/s in the same round)
  local a=(${RPS[$1]}) h=(${RPS[haproxy]}) i
  for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${h[$i]}" 'BEGIN{print x/y}'; done | tr '\n' ' ' | median
}
echo "| proxy (1 worker) | median req/s | ratio of medians to HAProxy | median of per-round ratios | median p99 ms | CPU µs/request: user + kernel = total | CPU ratio to HAProxy | req/s per round |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for name in $NAMES; do
  m=$(echo "${RPS[$name]}" | median)
  p=$(for v in ${P99[$name]}; do echo "$v" | to_ms; done | tr '\n' ' ' | median)
  u=$(echo "${USR[$name]}" | median); k=$(echo "${SYS[$name]}" | median)
  t=$(cpu_total "$name")
  printf "| %s | %.0f | %.2f | %.2f | %s | %s + %s = %s | %.2f | %s|\n" "$name" "$m" "$(awk -v a="$m" -v b="$H_RPS" 'BEGIN{print a/b}')" "$(paired "$name")" "$p" "$u" "$k" "$t" "$(awk -v a="$t" -v b="$H_CPU" 'BEGIN{print a/b}')" "${RPS[$name]}"
done
if [ -n "${ROUTED:-}" ]; then
  echo
  echo "routed / foresight, median of per-round ratios: $(a=(${RPS[routed]}) f=(${RPS[foresight]}); for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${f[$i]}" 'BEGIN{print x/y}'; done | tr '\n' ' ' | median)"
fi
if [ -n "${DASHBOARDS:-}" ]; then
  echo
  echo "dashboards / control ($DASHBOARDS open), median of per-round ratios: $(a=(${RPS[dashboards]}) f=(${RPS[control]}); for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${f[$i]}" 'BEGIN{print x/y}'; done | tr '\n' ' ' | median)"
  echo "dashboards / control, CPU per request: $(cpu_total dashboards) / $(cpu_total control) µs"
fi
if [ -n "${LOGGED:-}" ]; then
  echo
  echo "logged / foresight, median of per-round ratios: $(a=(${RPS[logged]}) f=(${RPS[foresight]}); for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${f[$i]}" 'BEGIN{print x/y}'; done | tr '\n' ' ' | median)"
  echo "access log: $(wc -l < "$WORK/access.log") lines, dropped: $(curl -s 127.0.0.1:18083/metrics | awk '/^foresight_access_log_dropped_total/ {print $2}')"
fi
echo
echo "versions: $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | head -1 | awk '{print $3}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'); rounds=$ROUNDS, ${SECS}s each, $CONNS connections"
