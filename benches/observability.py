#!/usr/bin/env python3
"""What do a Prometheus scrape every second and access logging cost under full load?

ringlb (1 shard, core 0) in front of nginx (1 worker, core 1), wrk (1 thread, 64
keep-alive connections, core 1). Three variants in one run, interleaved: plain; with
`/metrics` scraped every second; with an httplog line per request written to a file.
Reports median req/s and proxy CPU µs per request, and each variant's cost against
plain.

Usage: python3 benches/observability.py [--runs 5] [--duration 6]
Needs: apt-get install nginx wrk
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CORE,
    PROXY_CORE,
    Proc,
    cpu_seconds,
    free_port,
    nginx_conf,
    nginx_worker_pids,
    ringlb_binary,
    run_wrk,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    ringlb = ringlb_binary(build=not args.no_build)
    tmp = tempfile.mkdtemp(prefix="ringlb-obs-")
    procs = []
    try:
        backend_port = free_port()
        backend = Proc(
            "backend",
            ["taskset", "-c", LOAD_CORE, "nginx", "-c", nginx_conf(tmp, "backend", backend_port, ""), "-p", tmp],
            backend_port,
            nginx_worker_pids,
        )
        procs.append(backend)
        variants = {}
        for name in ["plain", "scrape-1s", "access-log"]:
            port, admin = free_port(), free_port()
            extra = ""
            fe_extra = ""
            if name == "access-log":
                extra = f'[log]\ntarget = "file:{tmp}/access.log"\n'
                fe_extra = 'log = "http"\n'
            cfg = os.path.join(tmp, f"{name}.toml")
            with open(cfg, "w") as f:
                f.write(
                    f"[runtime]\nshards = 1\ncpus = [{PROXY_CORE}]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{extra}"
                    f"[frontend.bench]\nbind = \"127.0.0.1:{port}\"\ndefault_backend = \"app\"\n{fe_extra}"
                    f"[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:{backend_port}\"\n"
                )
            p = Proc(name, ["taskset", "-c", PROXY_CORE, ringlb, "-f", cfg], port)
            procs.append(p)
            variants[name] = (p, port, admin)
        samples = {n: [] for n in variants}
        for n, (_, port, _) in variants.items():
            run_wrk(port, 2, 64)
        for r in range(args.runs):
            for n, (p, port, admin) in variants.items():
                stop = threading.Event()
                scraper = None
                if n == "scrape-1s":
                    def scrape(admin=admin):
                        while not stop.is_set():
                            urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read()
                            stop.wait(1.0)
                    scraper = threading.Thread(target=scrape)
                    scraper.start()
                before = cpu_seconds(p.cpu_pids)
                reqs, errors, p50, p99 = run_wrk(port, args.duration, 64)
                cpu = cpu_seconds(p.cpu_pids) - before
                stop.set()
                if scraper:
                    scraper.join()
                samples[n].append((reqs / args.duration, cpu / max(reqs, 1) * 1e6))
                print(f"run {r + 1} {n:11} {reqs / args.duration:9.0f} req/s {cpu / max(reqs, 1) * 1e6:6.2f} us/req errors {errors}", flush=True)
    finally:
        for p in procs:
            p.stop()
    base_rps = statistics.median(s[0] for s in samples["plain"])
    base_cpu = statistics.median(s[1] for s in samples["plain"])
    print()
    print("| variant | req/s | CPU µs/req | req/s vs plain | CPU/req vs plain |")
    print("| --- | --- | --- | --- | --- |")
    for n, s in samples.items():
        rps = statistics.median(x[0] for x in s)
        cpu = statistics.median(x[1] for x in s)
        print(f"| {n} | {rps:.0f} | {cpu:.2f} | {rps / base_rps:.3f} | {cpu / base_cpu:.3f} |")


if __name__ == "__main__":
    main()
