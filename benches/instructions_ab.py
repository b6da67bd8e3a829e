#!/usr/bin/env python3
"""User-space instructions per request of two ringlb builds, interleaved.

    python3 benches/instructions_ab.py BINARY_A BINARY_B [--runs N] [--scenario ka|close]

Runs `benches/instructions.sh` N times for each binary, alternating A and B, and prints
for each: the median of instructions/requests over the runs, and the slope of a
least-squares line through (requests, instructions). Each callgrind run has a fixed
cost besides the requests (the timers, control ticks and wake-ups of a 4 s window);
on a loaded machine the request count of a run varies several-fold, and that fixed
cost divided by fewer requests moves the per-run figure by a few percent. The slope
is the cost of one more request, which that noise does not move.
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"(\d+) requests, (\d+) instructions")


def one(binary: str, scenario: str):
    out = subprocess.run(
        ["bash", str(ROOT / "benches/instructions.sh"), scenario, binary],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    m = LINE.search(out)
    if not m or int(m.group(1)) == 0:
        return None
    return int(m.group(1)), int(m.group(2))


def slope(points):
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return float("nan")
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenario", default="ka")
    args = ap.parse_args()
    got = {args.a: [], args.b: []}
    for i in range(args.runs):
        for binary in (args.a, args.b):
            r = one(binary, args.scenario)
            print(f"run {i + 1} {binary}: {r}", file=sys.stderr)
            if r:
                got[binary].append(r)
    summary = {}
    for binary, points in got.items():
        if len(points) < 2:
            sys.exit(f"{binary}: fewer than 2 usable runs")
        med = statistics.median(i / r for r, i in points)
        summary[binary] = (med, slope(points))
        print(f"{binary}: {len(points)} runs, median {med:,.0f} per request, "
              f"slope {summary[binary][1]:,.0f} per request")
    (ma, sa), (mb, sb) = summary[args.a], summary[args.b]
    print(f"B / A: median {mb / ma:.3f}, slope {sb / sa:.3f}")


if __name__ == "__main__":
    main()
