#!/usr/bin/env bash
# The paper's load tool for real: Apache JMeter 5.5, non-GUI, runs bench/jmeter/shop.jmx
# (low, medium, high and burst thread groups over /auth, /process, /external) against
# examples/shop behind `foresight serve`, writes its JTL and reads it with
# `foresight report` (the summary loadgen prints, per route and per load level, and plots). Usage: bench/jmeter.sh [PHASE_SECONDS] (default 30; the run takes 3.25
# phases). Needs java; JMeter is laid out by bench/jmeter/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
phase=${1:-30}
[[ "$phase" =~ ^[0-9]+$ ]] && [ "$phase" -ge 2 ] && [ "$phase" -le 3600 ] \
  || { echo "jmeter.sh: PHASE_SECONDS must be 2..3600, not \`$phase\`" >&2; exit 64; }
jar=$(bench/jmeter/install.sh)
cargo build --release --quiet -p foresight
bin=target/release/foresight
out=target/jmeter-run
rm -rf "$out" && mkdir -p "$out"
"$bin" serve --config examples/shop/foresight.toml >"$out/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs -o /dev/null http://127.0.0.1:8380/auth && break
  sleep 0.2
done
java -jar "$jar" -n -t bench/jmeter/shop.jmx -l "$out/shop.jtl" -j "$out/jmeter.log" \
  -Jhost=127.0.0.1 -Jport=8380 -Jphase="$phase" -Jtwophases=$((2 * phase)) \
  -Jthreephases=$((3 * phase)) -Jburst=$(((phase + 3) / 4)) \
  -Jjmeter.save.saveservice.output_format=csv
# The summary loadgen prints, from JMeter's JTL: by route, overall, by thread group (the load
# level), the statuses; and its plots.
"$bin" report --jtl "$out/shop.jtl" --plots "$out/plots" --json "$out/report.json"
