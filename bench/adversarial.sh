#!/usr/bin/env bash
# Replays the adversarial probes of issue #23 against a release build of `foresight serve` and
# prints one line per probe: pass/fail and its figures. Not part of CI (it takes ~2 minutes and
# opens thousands of sockets); its output goes into docs/benchmarks.md.
#
# Usage: bench/adversarial.sh
# Needs: python3 (standard library), curl.
#
# Probes, each as the issue found it and what must hold now:
#   slow headers   200 clients trickle a header line a second       all get 408 within the header timeout
#   big headers    500 clients send a 420 KB header slowly          all get 431; RSS stays small
#   slow conns     2000 connections with half-sent heads            RSS measured (the issue's figure)
#   fd pressure    1100 idle connections, max_connections = 1000   the rest get 503; admin API answers
#   slow POSTs     100 clients stall their bodies                   all get 408; no instance ejected
#   hanging        an instance answers /ready, hangs on requests   < 1% of requests fail
#   churn          2000 add/remove cycles through the admin API     /metrics does not grow
#   uploads        3 x 10 MB to an instance that ignores bodies     all 200
#   flags          --peak-rps 1e12, NaN; loadgen --rate 1e12        exit 64 at once
#   h2 floods      CONTINUATION flood, HPACK bomb, rapid reset,      RSS grows < 32-48 MB; nothing
#                  SETTINGS/PING floods, 1000 streams (h2_probes.rs)  left in flight; others served
#   tls hostile    500 half-open handshakes, TLS 1.0/1.1, odd SNI    RSS grows < 32 MB; admin < 1 s
#   keyed limits   10 s of requests, each with a new x-user key      RSS grows < 128 MB
#   alert storm, hostile DNS, full disk, bad metrics: their tests in crates/cli/tests, one each
set -uo pipefail
cd "$(dirname "$0")/.."
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
cargo build --release --quiet || exit 1
BIN=$PWD/target/release/foresight
PY="python3 bench/adversarial.py"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# The probes themselves need descriptors too.
ulimit -n "$(ulimit -Hn)"

FAILED=0
# report NAME PASS(0/1) FIGURES
report() {
  local verdict=pass
  [ "$2" = 0 ] || { verdict=FAIL; FAILED=1; }
  printf '| %-12s | %-4s | %s |\n' "$1" "$verdict" "$3"
}
# json FILE KEY: a top-level value of a JSON line.
json() { python3 -c "import json,sys; print(json.load(open('$1'))$2)"; }

# start NAME ARGS...: runs foresight ARGS, waits for its address line, sets ${NAME}_PID and
# ${NAME}_LINE.
start() {
  local name=$1; shift
  "$BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do [ -s "$WORK/$name.out" ] && break; sleep 0.05; done
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_LINE" '%s' "$(head -1 "$WORK/$name.out")"
}
field() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"; }

start A backend --listen 127.0.0.1:0 --name a --distribution constant \
  --route /auth=5ms --route /process=20ms --route /work=5ms
A=http://$(field "$A_LINE" listen)
start B backend --listen 127.0.0.1:0 --name hang --distribution constant \
  --route /work=1h --route /auth=5ms --workers 2000 --queue 10000
B=http://$(field "$B_LINE" listen)

cat >"$WORK/proxy.toml" <<TOML
[timeouts]
request = "1s"
client_header = "3s"
[outlier]
consecutive_errors = 3
base_ejection_time = "30s"
TOML
start P serve --config "$WORK/proxy.toml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --backend "$A"
PROXY=$(field "$P_LINE" proxy); ADMIN=$(field "$P_LINE" admin)
HOST=${PROXY%:*}; PORT=${PROXY##*:}; APORT=${ADMIN##*:}

echo "| probe        | result | figures |"
echo "|---|---|---|"

$PY slow-headers "$HOST" "$PORT" 200 1 >"$WORK/r"
n=$(json "$WORK/r" '["got_408"]'); t=$(json "$WORK/r" '["max_s"]')
report "slow headers" "$([ "$n" = 200 ] && python3 -c "exit(0 if $t < 6 else 1)"; echo $?)" \
  "$n of 200 got 408; the last after $t s (client_header = 3s, checked every 0.75 s)"

$PY big-headers "$HOST" "$PORT" 500 430080 "$P_PID" >"$WORK/r"
n=$(json "$WORK/r" '["got_431"]'); rss=$(json "$WORK/r" '["peak_rss_mb"]')
report "big headers" "$([ "$n" = 500 ] && python3 -c "exit(0 if $rss < 150 else 1)"; echo $?)" \
  "$n of 500 got 431; proxy RSS peaked at $rss MB (was 296 MB)"

$PY idle "$HOST" "$PORT" 2000 "$APORT" "$P_PID" partial >"$WORK/r"
rss=$(json "$WORK/r" '["rss_mb"]'); adm=$(json "$WORK/r" '["admin_status"]')
report "slow conns" "$([ "$adm" = 200 ]; echo $?)" \
  "2000 connections, each half a request head: proxy RSS $rss MB (peak $(json "$WORK/r" '["peak_rss_mb"]') MB over the whole run); admin /healthz $adm in $(json "$WORK/r" '["admin_ms"]') ms"

cat >"$WORK/limit.toml" <<TOML
[limits]
max_connections = 1000
TOML
start L serve --config "$WORK/limit.toml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --backend "$A"
LPROXY=$(field "$L_LINE" proxy); LADMIN=$(field "$L_LINE" admin)
$PY idle "${LPROXY%:*}" "${LPROXY##*:}" 1100 "${LADMIN##*:}" "$L_PID" >"$WORK/r"
r503=$(json "$WORK/r" '["answered_503"]'); adm=$(json "$WORK/r" '["admin_status"]'); ams=$(json "$WORK/r" '["admin_ms"]')
report "fd pressure" "$([ "$adm" = 200 ] && [ "$r503" -ge 90 ] && python3 -c "exit(0 if $ams < 1000 else 1)"; echo $?)" \
  "1100 idle connections, max 1000: $r503 answered 503 at once; admin /healthz $adm in $ams ms (was blocked ~58 s); $(grep -c 'Too many open files' "$WORK/L.err") 'Too many open files' log lines"

$PY slow-posts "$HOST" "$PORT" 100 1000 >"$WORK/r"
errs=$(json "$WORK/r" '["server_errors"]')
ejected=$(curl -s "http://$ADMIN/backends" | python3 -c "import json,sys; print(sum(b['ejected'] for b in json.load(sys.stdin)))")
report "slow POSTs" "$([ "$errs" = 0 ] && [ "$ejected" = 0 ]; echo $?)" \
  "100 clients send 10 of 1000 body bytes and stall: statuses $(json "$WORK/r" '["statuses"]') (the instance answers without reading bodies, so 200; a reading one gives 408, tested in hardening.rs); instances ejected: $ejected (was: both)"

curl -s -X POST -H 'content-type: application/json' "http://$ADMIN/backends" \
  -d "{\"address\":\"$B\",\"start_healthy\":true}" >/dev/null
$PY steady "$HOST" "$PORT" /work 50 20 >"$WORK/r"
pct=$(json "$WORK/r" '["failed_percent"]')
report "hanging" "$(python3 -c "exit(0 if $pct < 1 else 1)"; echo $?)" \
  "50 req/s for 20 s over a good and a hanging instance: $pct% failed $(json "$WORK/r" '["statuses"]') (was 3.7-16.7%)"
curl -s -X DELETE -H 'x-foresight-admin: 1' "http://$ADMIN/backends?address=$B" >/dev/null

before=$(curl -s "http://$ADMIN/metrics" | wc -c)
for i in $(seq 2000); do
  port=$((20000 + i % 500))
  curl -s -X POST -H 'content-type: application/json' "http://$ADMIN/backends" \
    -d "{\"address\":\"http://127.0.0.1:$port\"}" >/dev/null
  curl -s -X DELETE -H 'x-foresight-admin: 1' "http://$ADMIN/backends?address=http://127.0.0.1:$port" >/dev/null
done
after=$(curl -s "http://$ADMIN/metrics" | wc -c)
report "churn" "$([ "$after" -lt $((before * 2)) ]; echo $?)" \
  "2000 add/remove cycles: /metrics $before -> $after bytes (was 8.5 KB -> 3.3 MB)"

head -c 10485760 /dev/zero >"$WORK/10mb"
codes=""
for _ in 1 2 3; do
  codes+="$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$WORK/10mb" "http://$LPROXY/process?ms=2000") "
done
report "uploads" "$([ "$codes" = "200 200 200 " ]; echo $?)" \
  "3 x 10 MB to /process?ms=2000 of an instance that ignores bodies (default timeouts): $codes(was 502 502 502)"

flags=""; ok=0
for args in "experiment --peak-rps 1e12" "experiment --peak-rps NaN" "loadgen --target http://$PROXY --rate 1e12 --duration 1s"; do
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  timeout 20 "$BIN" $args >/dev/null 2>&1; code=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  flags+="'$args' -> $code in $ms ms; "
  [ "$code" = 64 ] || ok=1
done
report "flags" "$ok" "$flags"

# Rate limits keyed by a header (issue #36): wrk sends a fresh x-user value with every request
# for 10 s against a proxy limiting per key; its memory must stay bounded.
if command -v wrk >/dev/null; then
  cat >"$WORK/keyed.toml" <<TOML
[rate_limit]
rate = 5.0
burst = 5
key = "header:x-user"
TOML
  # An instance fast enough that the proxy, not the instance, sets the pace (~25k req/s).
  start F backend --listen 127.0.0.1:0 --name fast --distribution constant --route /auth=0ms \
    --workers 256 --queue 10000
  start K serve --config "$WORK/keyed.toml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --backend "http://$(field "$F_LINE" listen)"
  KPROXY=$(field "$K_LINE" proxy)
  cat >"$WORK/keys.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/auth", { ["x-user"] = "user-" .. counter .. "-" .. math.random(1000000000) })
end
LUA
  before=$(awk '/VmRSS/ {print $2}' "/proc/$K_PID/status")
  out=$(wrk -t2 -c50 -d10s -s "$WORK/keys.lua" "http://$KPROXY/" 2>&1)
  sent=$(awk '/requests in/ {print $1}' <<<"$out")
  after=$(awk '/VmRSS/ {print $2}' "/proc/$K_PID/status")
  sleep 12  # past the 10-s sweep of idle keys
  later=$(awk '/VmRSS/ {print $2}' "/proc/$K_PID/status")
  grown=$(( (after - before) / 1024 ))
  report "keyed limits" "$([ "$grown" -lt 128 ]; echo $?)" \
    "$sent requests in 10 s, each with a new x-user value: proxy RSS $((before / 1024)) -> $((after / 1024)) MB (+$grown MB), $((later / 1024)) MB 12 s later"
else
  report "keyed limits" 1 "wrk not found"
fi

# HTTP/2 attack classes (issue #36), as raw frames by the test suite's probes against the same
# release binary; their figures are the lines the tests print.
h2=$(cargo test --release -p foresight --test h2_probes -- --nocapture --test-threads 1 2>&1)
code=$?
figures=$(printf '%s\n' "$h2" | grep -oE '(CONTINUATION flood|HPACK bomb|rapid reset|SETTINGS/PING floods|floods|1,000 streams): .*' | sed 's/$/;/' | tr '\n' ' ')
report "h2 floods" "$code" "$figures"

tls=$(cargo test --release -p foresight --test tls half_open -- --nocapture 2>&1)
code=$?
figures=$(printf '%s\n' "$tls" | grep -oE '500 half-open handshakes: .*')
report "tls hostile" "$code" "$figures; closed after client_header; TLS 1.0/1.1 refused with a fatal alert; no or unknown SNI get the first certificate (tests/tls.rs)"

# Surfaces whose probes live in the test suite (issue #36), run against the same release build:
# NAME:TEST FILE:TEST NAME (exactly one test must run and pass).
for probe in "alert storm:alerts:alerts_that_do_not_apply_are_answered_with_the_reason" \
  "hostile DNS:discovery:a_hostile_zone_cannot_point_the_proxy_at_itself_or_the_metadata_service" \
  "full disk:access_log:a_full_disk_loses_lines_not_requests_and_counts_them" \
  "bad metrics:prometheus:broken_rates_are_refused_and_the_loop_holds"; do
  IFS=: read -r name file test <<<"$probe"
  out=$(cargo test --release -p foresight --test "$file" "$test" -- --exact 2>&1)
  code=$?
  grep -q '^test result: ok. 1 passed' <<<"$out" || code=1
  report "$name" "$code" "tests/$file.rs, $test: $(grep -oE 'test result: [^;]*; [0-9]+ failed' <<<"$out" | head -1)"
done

exit $FAILED
