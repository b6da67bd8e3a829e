#!/usr/bin/env python3
"""Where a proxy's CPU per request goes: user space, the kernel's event and syscall
machinery, and the kernel's TCP/IP work (segments, ACKs, wake-ups of the peers).

The performance issue's targets ask ringlb to use 0.60-0.80 x HAProxy's CPU per
request. This script shows how much of that is within a proxy's reach: the TCP/IP work
is the same for every proxy that moves the same bytes over the same sockets, so
ringlb's own TCP/IP time divided by HAProxy's total is the lowest ratio any user-space
or event-loop change can reach (the "floor").

Same setup as compare.py (proxy on core 0, nginx backend and wrk on core 1), and for each
measurement `perf record -F 2999` samples the proxy's threads (timer sampling: no
hardware counters here) while wrk runs. Runs are interleaved; medians are reported.

Usage: python3 benches/cost_split.py [--runs 3] [--duration 5] [--scenarios ka64,close,l4]
       (also ka16, ka256: where the growth with the connection count goes)
       [--no-build]
Needs: apt-get install haproxy nginx wrk linux-perf; run as root (perf).
Writes benches/results/cost-split-<date>.md
"""

import argparse
import collections
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from benchlib import ROOT, commit, ringlb_binary, wrk  # noqa: E402

FREQ = 2999
# Kernel symbols that deliver events and enter or leave the kernel: io_uring's
# submission, completion, poll arming and task work, or epoll and the plain syscalls.
EVENT = re.compile(
    r"^(__?io_|io_|fget|fput|__fget|fdget|fdput|llist_reverse_order|tctx_task_work|task_work_run"
    r"|ep_|__ep_|do_epoll|__x64_sys|__sys_|do_syscall_64|entry_SYSCALL|syscall_exit|syscall_enter"
    r"|exit_to_user_mode|sock_poll|tcp_poll|__do_sys_io_uring_enter|import_ubuf|__import_iovec"
    r"|__check_object_size|_copy_from_user|rw_verify_area)"
)
# Going idle and coming back: the scheduler, not the request.
SCHED = re.compile(r"^(finish_task_switch|__schedule|schedule|pick_next|dequeue_|enqueue_|update_curr"
                   r"|psi_|__switch_to|do_idle|cpuidle|default_idle|io_cqring_wait|io_schedule)")

PAIRS = {
    "ka16": ("ringlb", "haproxy"),
    "ka64": ("ringlb", "haproxy"),
    "ka256": ("ringlb", "haproxy"),
    "close": ("ringlb", "haproxy"),
    "l4": ("ringlb-tcp", "haproxy-tcp"),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--scenarios", default="ka64,close,l4")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--ringlb", default=None, help="a ringlb binary (default: target/release/ringlb)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    a.scenarios = a.scenarios.split(",")
    for s in a.scenarios:
        if s not in PAIRS:
            sys.exit(f"unknown scenario {s} (known: {', '.join(PAIRS)})")
    # What compare.Bench reads from its arguments.
    a.ringlb_max_idle = None
    return a


def split(perf_data, requests):
    """µs per request: user, kernel event machinery, scheduler, kernel TCP/IP."""
    out = subprocess.run(
        ["perf", "report", "-i", perf_data, "--stdio", "--sort", "sym", "-n", "--percent-limit", "0"],
        capture_output=True, text=True, check=True,
    ).stdout
    cost = collections.Counter()
    top = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        samples, kind, sym = int(m.group(1)), m.group(2), m.group(3).strip()
        us = samples / FREQ / requests * 1e6
        if kind != "k":
            cost["user"] += us
        elif EVENT.match(sym):
            cost["event"] += us
        elif SCHED.match(sym):
            cost["sched"] += us
        else:
            cost["tcp"] += us
            top[sym] += us
    cost["total"] = sum(cost[k] for k in ("user", "event", "sched", "tcp"))
    return cost, top


def measure(bench, scenario, proxy, duration, tmp, n):
    _, conns, path, close, _ = compare.SCENARIOS[scenario]
    port = bench.ports[proxy]
    wrk(port, 2, conns, path, close)  # warm-up
    data = os.path.join(tmp, f"{scenario}-{proxy}-{n}.data")
    pid = bench.running[proxy].p.pid
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-F", str(FREQ), "-p", str(pid), "-o", data, "--", "sleep", str(duration)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    r = wrk(port, duration, conns, path, close)
    perf.wait()
    if not r["reqs"]:
        raise RuntimeError(f"{proxy}: no request completed in {scenario}")
    return split(data, r["reqs"])


def main():
    args = parse_args()
    ringlb = ringlb_binary(args.ringlb, build=not args.no_build)
    proxies = sorted({p for s in args.scenarios for p in PAIRS[s]})
    tmp = tempfile.mkdtemp(prefix="ringlb-split-")
    bench = compare.Bench(args, ringlb, tmp)
    results = collections.defaultdict(list)
    tops = collections.defaultdict(collections.Counter)
    try:
        bench.start_proxies(proxies)
        for n in range(args.runs):
            for s in args.scenarios:
                for p in PAIRS[s]:
                    cost, top = measure(bench, s, p, args.duration, tmp, n)
                    results[(s, p)].append(cost)
                    tops[(s, p)].update(top)
                    print(f"run {n + 1} {s:6s} {p:12s} " + " ".join(f"{k} {cost[k]:.2f}" for k in ("total", "user", "event", "sched", "tcp")), flush=True)
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the perf.data files

    def med(s, p, k):
        return statistics.median(c[k] for c in results[(s, p)])

    def span(s, p, k):
        v = [c[k] for c in results[(s, p)]]
        return f"{min(v):.1f}–{max(v):.1f}"

    date = datetime.date.today().isoformat()
    measured = commit()
    kernel = os.uname().release
    lines = [
        f"# Where the CPU per request goes ({date})",
        "",
        f"`python3 benches/cost_split.py --runs {args.runs} --duration {args.duration} --scenarios {','.join(args.scenarios)}`"
        f" — commit {measured}, kernel {kernel}, ringlb on io_uring, {args.runs} interleaved runs, medians;"
        f" `perf record -F {FREQ}` on the proxy (timer sampling), µs of CPU per request.",
        "",
        "- **user**: the proxy's own code and libc;",
        "- **event**: the kernel's event delivery and syscall entry (io_uring submission, completion,"
        " poll arming, task work, `fget`; or epoll, `recvfrom`/`sendto` entry, `fdget`, `sock_poll`);",
        "- **sched**: going idle and waking up;",
        "- **TCP/IP**: everything else in the kernel: segments, ACKs, the loopback device, waking the"
        " peer process — the same work for any proxy moving the same bytes.",
        "",
        "| scenario | proxy | total (range) | user | event | sched | TCP/IP (range) | ratio vs HAProxy | floor: ringlb TCP/IP ÷ HAProxy total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in args.scenarios:
        rl, ha = PAIRS[s]
        for p in (rl, ha):
            ratio = med(s, p, "total") / med(s, ha, "total")
            floor = med(s, rl, "tcp") / med(s, ha, "total") if p == rl else None
            lines.append(
                f"| {s} | {p} | {med(s, p, 'total'):.2f} ({span(s, p, 'total')}) | {med(s, p, 'user'):.2f} | "
                f"{med(s, p, 'event'):.2f} | {med(s, p, 'sched'):.2f} | {med(s, p, 'tcp'):.2f} ({span(s, p, 'tcp')}) | "
                f"{ratio:.2f} | {'' if floor is None else f'{floor:.2f}'} |"
            )
    lines += ["", "Largest TCP/IP costs (µs per request, summed over the runs then divided by them):", ""]
    for s in args.scenarios:
        for p in PAIRS[s]:
            t = tops[(s, p)].most_common(6)
            lines.append(f"- {s} {p}: " + ", ".join(f"`{k}` {v / args.runs:.2f}" for k, v in t))
    text = "\n".join(lines) + "\n"
    out = args.out or os.path.join(ROOT, "benches", "results", f"cost-split-{date}.md")
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
