#!/usr/bin/env python3
"""Side-by-side: ringlb (1 shard) against HAProxy (nbthread 1) and nginx (1 worker).

Question: on keep-alive GETs with a small body, how many requests/s does each proxy
serve, and how much CPU does the proxy spend per request?

Setup (2-core machine): the proxy under test is pinned to core 0; the backend (nginx,
one worker) and wrk (one thread) are pinned to core 1. Proxy CPU per request is the
proxy process's utime+stime from /proc before and after the run, divided by the
requests wrk completed. Runs are interleaved (round-robin over proxies) and repeated;
medians are reported with the spread, and ratios against HAProxy.

Usage: python3 benches/compare.py [--runs 5] [--duration 8] [--connections 64]
Needs: apt-get install haproxy nginx wrk; writes benches/results/compare-<date>.md
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CORE = "0"
LOAD_CORE = "1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def children(pid):
    try:
        out = subprocess.check_output(["pgrep", "-P", str(pid)], text=True)
        return [int(p) for p in out.split()]
    except subprocess.CalledProcessError:
        return []


class Proc:
    def __init__(self, name, argv, port, cpu_pids=None):
        self.name = name
        self.port = port
        self.p = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False
        )
        wait_port(port)
        self.cpu_pids = cpu_pids(self.p.pid) if cpu_pids else [self.p.pid]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def nginx_conf(tmp, name, listen, body_block):
    path = os.path.join(tmp, f"{name}.conf")
    if "upstream" in body_block:
        location = 'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    else:
        location = "location / { return 200 'hello from the backend\\n'; }"
    with open(path, "w") as f:
        f.write(
            f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/{name}-body;
    proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fcgi;
    uwsgi_temp_path {tmp}/{name}-uwsgi;
    scgi_temp_path {tmp}/{name}-scgi;
    {body_block}
    server {{
        listen 127.0.0.1:{listen} reuseport;
        {location}
    }}
}}
"""
        )
    return path


def nginx_worker_pids(master_pid):
    deadline = time.time() + 5
    while time.time() < deadline:
        kids = children(master_pid)
        if kids:
            return kids
        time.sleep(0.05)
    return [master_pid]


def run_wrk(port, duration, connections):
    out = subprocess.check_output(
        [
            "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
            "--latency", f"http://127.0.0.1:{port}/",
        ],
        text=True,
    )
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())

    def lat(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return reqs, errors, lat("50"), lat("99")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    for tool in ("haproxy", "nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install haproxy nginx wrk")
    if not args.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    ringlb = os.path.join(ROOT, "target", "release", "ringlb")

    tmp = tempfile.mkdtemp(prefix="ringlb-bench-")
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

        ports = {}
        ports["ringlb"] = free_port()
        with open(os.path.join(tmp, "ringlb.toml"), "w") as f:
            f.write(
                f"""
[runtime]
shards = 1
cpus = [{PROXY_CORE}]
[frontend.bench]
bind = "127.0.0.1:{ports['ringlb']}"
default_backend = "app"
[backend.app]
[[backend.app.server]]
addr = "127.0.0.1:{backend_port}"
"""
            )
        ports["haproxy"] = free_port()
        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write(
                f"""
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend bench
    bind 127.0.0.1:{ports['haproxy']}
    default_backend app
backend app
    server s1 127.0.0.1:{backend_port}
"""
            )
        ports["nginx"] = free_port()
        nginx_proxy_conf = nginx_conf(
            tmp, "proxy", ports["nginx"], f"upstream up {{ server 127.0.0.1:{backend_port}; keepalive 256; }}"
        )

        def start(name):
            if name == "ringlb":
                return Proc(name, ["taskset", "-c", PROXY_CORE, ringlb, "-f", os.path.join(tmp, "ringlb.toml")], ports[name])
            if name == "haproxy":
                return Proc(name, ["taskset", "-c", PROXY_CORE, "haproxy", "-f", os.path.join(tmp, "haproxy.cfg")], ports[name])
            return Proc(name, ["taskset", "-c", PROXY_CORE, "nginx", "-c", nginx_proxy_conf, "-p", tmp], ports[name], nginx_worker_pids)

        names = ["ringlb", "haproxy", "nginx"]
        running = {}
        for n in names:
            running[n] = start(n)
            procs.append(running[n])
        samples = {n: [] for n in names + ["direct"]}
        # Warm-up: fill pools and caches.
        for n in names:
            run_wrk(ports[n], 2, args.connections)
        for r in range(args.runs):
            for n in names + ["direct"]:
                port = backend_port if n == "direct" else ports[n]
                pids = backend.cpu_pids if n == "direct" else running[n].cpu_pids
                before = cpu_seconds(pids)
                reqs, errors, p50, p99 = run_wrk(port, args.duration, args.connections)
                cpu = cpu_seconds(pids) - before
                samples[n].append(
                    {"rps": reqs / args.duration, "cpu_us": cpu / max(reqs, 1) * 1e6, "p50": p50, "p99": p99, "errors": errors}
                )
                print(f"run {r + 1} {n:8} {reqs / args.duration:10.0f} req/s  {cpu / max(reqs, 1) * 1e6:6.2f} us CPU/req  p99 {p99:.2f} ms  errors {errors}", flush=True)
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(n, k):
        return statistics.median(s[k] for s in samples[n])

    def spread(n, k):
        vals = [s[k] for s in samples[n]]
        return (max(vals) - min(vals)) / 2

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    kernel = os.uname().release
    lines = [
        f"# Keep-alive GET, small body, {args.connections} connections",
        "",
        f"commit {commit}, kernel {kernel}, {os.cpu_count()} cores, ringlb 1 shard (driver: {'legacy' if os.environ.get('MONOIO_FORCE_LEGACY_DRIVER') else 'io_uring'}), "
        f"HAProxy nbthread 1, nginx 1 worker; proxy on core {PROXY_CORE}, wrk + nginx backend on core {LOAD_CORE}; "
        f"{args.runs} interleaved runs of {args.duration}s, medians (± half the range).",
        "",
        "Command: `python3 benches/compare.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| proxy | req/s | proxy CPU µs/req | p50 ms | p99 ms | errors | req/s vs HAProxy | CPU/req vs HAProxy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in names + ["direct"]:
        label = "direct to backend (ceiling)" if n == "direct" else n
        lines.append(
            f"| {label} | {med(n, 'rps'):.0f} ± {spread(n, 'rps'):.0f} | {med(n, 'cpu_us'):.2f} ± {spread(n, 'cpu_us'):.2f} "
            f"| {med(n, 'p50'):.2f} | {med(n, 'p99'):.2f} | {sum(s['errors'] for s in samples[n])} "
            f"| {med(n, 'rps') / med('haproxy', 'rps'):.2f} | {med(n, 'cpu_us') / med('haproxy', 'cpu_us'):.2f} |"
        )
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    os.makedirs(os.path.join(ROOT, "benches", "results"), exist_ok=True)
    out = os.path.join(ROOT, "benches", "results", f"compare-{datetime.date.today().isoformat()}.md")
    with open(out, "w") as f:
        f.write(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
