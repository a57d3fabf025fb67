#!/usr/bin/env bash
# Do feature columns help the LSTM? NASA's per-minute counts with two added columns, scored by
# `foresight forecast eval` (same seed, same split) at 5 and 15 minutes ahead:
#   cpu    - CPU seconds per second as a backend would export it: 0.05 + 4 ms per request,
#            10% noise (a function of the rate itself, like most resource metrics);
#   logins - a leading indicator: a tenth of the requests 10 minutes later, 20% noise (e.g.
#            sign-ins that precede the data-processing load).
# Usage: bench/forecast-features.sh [OUT_DIR]   (about 7 minutes on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/foresight-features}
trace=${TRACE:-$here/../shared/datasets/nasa-http-1995-per-minute.csv}
mkdir -p "$out"
cargo build --release -q --manifest-path "$here/Cargo.toml" -p foresight
bin=$here/target/release/foresight
python3 - "$trace" "$out" <<'PY'
import csv, datetime, random, sys
trace, out = sys.argv[1], sys.argv[2]
random.seed(7)
rows = list(csv.reader(open(trace)))[1:]
counts = {r[0]: float(r[1]) for r in rows}
fmt = '%Y-%m-%d %H:%M:%S'
def later(ts, m):
    return (datetime.datetime.strptime(ts, fmt) + datetime.timedelta(minutes=m)).strftime(fmt)
with open(f'{out}/rate.csv', 'w') as a, open(f'{out}/cpu.csv', 'w') as b, open(f'{out}/lead.csv', 'w') as c:
    a.write('timestamp,value\n'); b.write('timestamp,value,cpu\n'); c.write('timestamp,value,logins\n')
    for ts, v in counts.items():
        a.write(f'{ts},{v:g}\n')
        cpu = (0.05 + 0.004 * v) * random.gauss(1.0, 0.1)
        b.write(f'{ts},{v:g},{max(cpu, 0):.5f}\n')
        fut = counts.get(later(ts, 10))
        lead = '' if fut is None else f'{max(0.1 * fut * random.gauss(1, 0.2), 0):.3f}'
        c.write(f'{ts},{v:g},{lead}\n')
PY
for h in 5 15; do
  for f in rate cpu lead; do
    "$bin" forecast eval --trace "$out/$f.csv" --seed 1 --quiet --horizon "$h" \
      --json "$out/$f-h$h.json" > "$out/$f-h$h.txt"
    echo "horizon $h min, $f: $(grep -E '^lstm: ' "$out/$f-h$h.txt")"
    grep -E '^lstm ' "$out/$f-h$h.txt"
  done
done
