#!/usr/bin/env python3
"""Proxy CPU per compressed MiB: ringlb against HAProxy 2.6 (nbthread 1), both with
`compression algo gzip` at their default level, on the same text body.

Setup: an nginx backend (one worker) serves a 1 MiB text file (log-like lines,
compressing about 5:1) without compression; each proxy runs on core 0 (taskset), nginx
and wrk on core 1. wrk asks for the file with `Accept-Encoding: gzip` over 4
keep-alive connections for DURATION seconds; the figure is the proxy's CPU time
(utime + stime from /proc) divided by the MiB of uncompressed body it took in.
Runs alternate between the proxies; the medians are reported, and their ratio.
Before measuring, one request through each proxy checks that the answer is gzip and
decompresses to the file.

Usage: python3 benches/compression.py [--runs 5] [--duration 5] [--no-build]
Needs: apt-get install haproxy nginx wrk; writes benches/results/compression-<date>.md
"""

import argparse
import datetime
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CORE, PROXY_CORE, ROOT, Proc, commit, cpu_seconds, free_port, nginx_conf,
    nginx_worker_pids, ringlb_binary,
)

SIZE = 1024 * 1024


def body():
    """1 MiB of access-log-like text: repetitive like HTML or JSON, not trivially so."""
    lines, i = [], 0
    total = 0
    while total < SIZE:
        line = (f"10.{i % 7}.{i % 251}.{(i * 7) % 253} - - [05/Dec/2026:10:{i % 60:02d}:{(i * 13) % 60:02d}] "
                f"\"GET /api/v1/items/{(i * 7919) % 100000}?page={i % 17} HTTP/1.1\" {200 + (i % 3)} {(i * 37) % 9000} "
                f"\"-\" \"client/{i % 11}.{i % 5}\"\n")
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines).encode()[:SIZE]


def config(port, backend_port):
    return f"""global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend bench
    bind 127.0.0.1:{port}
    compression algo gzip
    compression type text/plain
    default_backend app
backend app
    server s1 127.0.0.1:{backend_port}
"""


def check(port, want):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/big.txt", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        enc, data = r.headers.get("Content-Encoding"), r.read()
    if enc != "gzip" or gzip.decompress(data) != want:
        raise RuntimeError(f"port {port}: not a gzip answer of the file (Content-Encoding {enc!r})")
    return len(data)


def load(port, duration):
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c4", f"-d{duration}s",
            "-H", "Accept-Encoding: gzip", f"http://127.0.0.1:{port}/big.txt"]
    out = subprocess.check_output(argv, text=True)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return reqs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    binary = ringlb_binary(build=not args.no_build)
    data = body()
    with tempfile.TemporaryDirectory() as tmp:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "big.txt"), "wb") as f:
            f.write(data)
        # nginx's worker (nobody, when started as root) reads the file.
        for path in (tmp, www):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(www, "big.txt"), 0o644)
        bport = free_port()
        conf = nginx_conf(tmp, "backend", bport, "", f"location / {{ root {www}; }}",
                          http_extra="sendfile on; gzip off; default_type text/plain;")
        procs = {}
        backend = Proc("nginx", ["taskset", "-c", LOAD_CORE, "nginx", "-c", conf, "-p", tmp], bport, nginx_worker_pids)
        try:
            ports = {}
            for name, argv in (("haproxy", ["haproxy", "-f"]), ("ringlb", [binary, "-f"])):
                port = free_port()
                cfg = os.path.join(tmp, f"{name}.cfg")
                with open(cfg, "w") as f:
                    f.write(config(port, bport))
                procs[name] = Proc(name, ["taskset", "-c", PROXY_CORE] + argv + [cfg], port,
                                   log=os.path.join(tmp, f"{name}.log"))
                ports[name] = port
            sizes = {n: check(p, data) for n, p in ports.items()}
            per_mib = {n: [] for n in procs}
            for run in range(args.runs):
                for name, p in procs.items():
                    before = cpu_seconds(p.cpu_pids)
                    reqs = load(ports[name], args.duration)
                    cpu = cpu_seconds(p.cpu_pids) - before
                    per_mib[name].append(1000 * cpu / (reqs * SIZE / (1 << 20)))
                    print(f"run {run + 1} {name}: {reqs} responses, {cpu:.2f} s CPU, "
                          f"{per_mib[name][-1]:.2f} ms/MiB", flush=True)
        finally:
            for p in procs.values():
                p.stop()
            backend.stop()
    med = {n: statistics.median(v) for n, v in per_mib.items()}
    ratio = med["ringlb"] / med["haproxy"]
    lines = [
        f"# Proxy CPU per compressed MiB ({datetime.date.today()}, commit {commit()})",
        "",
        f"`python3 benches/compression.py --runs {args.runs} --duration {args.duration}`: proxy on core "
        f"{PROXY_CORE}, nginx + wrk (-c4, keep-alive, `Accept-Encoding: gzip`) on core {LOAD_CORE}; "
        f"1 MiB text body, `compression algo gzip` at each proxy's default level.",
        "",
        "| proxy | CPU ms per MiB in (median) | runs | gzip body |",
        "| --- | --- | --- | --- |",
    ]
    for n in procs:
        runs = ", ".join(f"{x:.2f}" for x in per_mib[n])
        lines.append(f"| {n} | {med[n]:.2f} | {runs} | {sizes[n]} bytes |")
    lines += ["", f"ringlb / HAProxy: **{ratio:.2f}**", ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "benches", "results"), exist_ok=True)
    out = os.path.join(ROOT, "benches", "results", f"compression-{datetime.date.today()}.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
