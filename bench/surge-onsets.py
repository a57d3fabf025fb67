#!/usr/bin/env python3
"""The least a scaler that did not see a surge coming must lose on a trace's test part.

For every surge (a minute above 1.5x the fleet held before it, that fleet being the median of
the 30 minutes before over a 70% utilisation target), the requests of its first LEAD minutes
(the provisioning delay: an instance launched when it begins is ready only after them) above
that fleet. A policy that holds no more headroom than that and did not foresee the surge
cannot serve them within the objective; their share of the test part's requests, beside the
slack the goal leaves (the oracle's attainment less the goal: about 0.3 points with the
experiment's defaults), says whether the goal can be reached without standing headroom.
It is a floor only for surges no forecast can place (flash crowds): recurring bursts, which a
forecast can see coming, are counted too. docs/results.md ("Issue #34's targets") uses it.

Usage: bench/surge-onsets.py TRACE.csv [TRACE.csv ...] [--minutes N] [--lead M] [--target T]
  --minutes  the replayed test part: the last N minutes (default: the last 15%, as
             `foresight experiment` replays when the trace has no gap there)
  --lead     minutes lost per surge (default 3, `--provision-delay`)
  --target   the utilisation the fleet before the surge is held at (default 0.7)
"""
import argparse
import csv
import sys


def load(path):
    counts = []
    try:
        f = open(path, newline="")
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    with f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            value = (row.get("count") or "").strip()
            if value == "":
                continue  # a collection gap
            try:
                counts.append(float(value))
            except ValueError:
                sys.exit(f"{path}:{line}: `count` is not a number: {value!r}")
    if not counts:
        sys.exit(f"{path}: no `minute,count` rows")
    return counts


def surges(test, lead, target):
    i, found = 30, []
    while i < len(test) - lead:
        held = sorted(test[i - 30 : i])[15] / target
        if held > 0 and test[i] > 1.5 * held:
            lost = sum(max(0.0, test[j] - held) for j in range(i, i + lead))
            found.append((lost, i))
            i += 60  # one surge, not each of its minutes
        else:
            i += 1
    return found


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("traces", nargs="+")
    p.add_argument("--minutes", type=int)
    p.add_argument("--lead", type=int, default=3)
    p.add_argument("--target", type=float, default=0.7)
    a = p.parse_args()
    if not 1 <= a.lead <= 60:
        sys.exit("--lead must be 1-60 minutes")
    if not 0 < a.target <= 1:
        sys.exit("--target must be in (0, 1]")
    if a.minutes is not None and a.minutes < 120:
        sys.exit("--minutes must be at least 120")
    print("| trace | surges | lost in their first minutes (% of the test part's requests) | largest |")
    print("|---|---:|---:|---|")
    for path in a.traces:
        counts = load(path)
        n = a.minutes or round(0.15 * len(counts))
        test = counts[-n:]
        total = sum(test) or 1.0
        found = surges(test, a.lead, a.target)
        lost = sum(l for l, _ in found)
        top = sorted(found, reverse=True)[:3]
        largest = ", ".join(f"{100 * l / total:.3f}% at hour {i / 60:.1f}" for l, i in top)
        print(f"| {path} | {len(found)} | {100 * lost / total:.3f} | {largest or '—'} |")


if __name__ == "__main__":
    main()
