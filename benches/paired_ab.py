#!/usr/bin/env python3
"""Two ringlb binaries measured at the same time, so that the host's drift hits both
alike: A and B (1 shard each) share core 0, each loaded by its own wrk (core 1, at
the same time, same connections), both in front of the same nginx backend (core 1).
CPU per request of each = utime+stime over the run / requests wrk completed. The
ratio B/A per round, and its median over the rounds, is the figure: on this shared VM
the CPU of one proxy measured alone moves by ±15 % between runs, which hides a change
of a few percent; measured side by side, both see the same host.

Usage: python3 benches/paired_ab.py A_BINARY B_BINARY [--scenario ka4|ka16|ka64|ka256|close]
       [--rounds 5] [--duration 5] [--legacy | --legacy-b] [--tcp]
Needs: apt-get install nginx wrk
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

SCENARIOS = {
    "ka4": (4, False),
    "ka16": (16, False),
    "ka64": (64, False),
    "ka256": (256, False),
    "close": (64, True),
}


def start(binary, tmp, name, port, backend_port, legacy, mode):
    cfg = os.path.join(tmp, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(
            "global\n    nbthread 1\n    maxconn 4000\n"
            f"defaults\n    mode {mode}\n    timeout connect 5s\n    timeout client 30s\n"
            "    timeout server 30s\n"
            f"frontend bench\n    bind 127.0.0.1:{port}\n    default_backend app\n"
            f"backend app\n    server s1 127.0.0.1:{backend_port}\n"
        )
    env = dict(os.environ)
    if legacy:
        env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
    p = subprocess.Popen(
        ["taskset", "-c", B.PROXY_CORE, binary, "-f", cfg],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    B.wait_port(port, proc=p)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--scenario", default="ka64", choices=sorted(SCENARIOS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--legacy", action="store_true", help="both on the legacy (epoll) driver")
    ap.add_argument("--tcp", action="store_true", help="the proxies in mode tcp (L4)")
    ap.add_argument("--legacy-b", action="store_true", help="B alone on the legacy driver (A and B may then be one binary: io_uring against epoll)")
    args = ap.parse_args()
    conns, close = SCENARIOS[args.scenario]
    mode = "tcp" if args.tcp else "http"
    tmp = tempfile.mkdtemp()
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    bport = B.free_port()
    nginx = subprocess.Popen(
        ["taskset", "-c", B.LOAD_CORE, "nginx", "-c", B.backend_nginx_conf(tmp, bport, www), "-p", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = []
    try:
        B.wait_port(bport)
        ports = {"A": B.free_port(), "B": B.free_port()}
        procs = [
            start(args.a, tmp, "A", ports["A"], bport, args.legacy, mode),
            start(args.b, tmp, "B", ports["B"], bport, args.legacy or args.legacy_b, mode),
        ]
        pids = {"A": procs[0].pid, "B": procs[1].pid}
        # Warm up: the server connections open, the pools fill.
        for name in "AB":
            B.wrk(ports[name], 1, conns, close=close)
        ratios, per = [], {"A": [], "B": []}
        for r in range(args.rounds):
            before = {n: B.cpu_seconds([pids[n]]) for n in "AB"}
            results = {}

            def load(n):
                results[n] = B.wrk(ports[n], args.duration, conns, close=close)

            threads = [threading.Thread(target=load, args=(n,)) for n in "AB"]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cost = {}
            for n in "AB":
                res = results[n]
                if res["non2xx"] or res["sock"]:
                    raise RuntimeError(f"{n}: errors {res}")
                cost[n] = (B.cpu_seconds([pids[n]]) - before[n]) / res["reqs"] * 1e6
                per[n].append(cost[n])
            ratios.append(cost["B"] / cost["A"])
            print(
                f"round {r + 1}: A {cost['A']:.2f} µs/req ({results['A']['reqs']} req), "
                f"B {cost['B']:.2f} µs/req ({results['B']['reqs']} req), B/A {ratios[-1]:.3f}",
                flush=True,
            )
            time.sleep(0.5)
        print(
            f"{args.scenario}{' tcp' if args.tcp else ''}{' legacy' if args.legacy else ''}{' (B legacy)' if args.legacy_b else ''}: A median {statistics.median(per['A']):.2f}, "
            f"B median {statistics.median(per['B']):.2f} µs/req; B/A median {statistics.median(ratios):.3f} "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}, {args.rounds} rounds)"
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        nginx.terminate()
        nginx.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
