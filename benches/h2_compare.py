#!/usr/bin/env python3
"""HTTP/2 to clients side by side: ringlb (1 shard) against HAProxy 2.6 (nbthread 1),
both on the same haproxy.cfg, in the same run (issue 19's benchmarks).

Scenarios:

  h2tls   h2load -c 16 -m 10, small responses, over TLS with `alpn h2,http/1.1`
  h2c     the same in cleartext, prior knowledge (`bind ... proto h2`)
  idleh2  --idle HTTP/2 connections over TLS, preface and SETTINGS exchanged, no
          stream: the proxy's resident memory per connection
  idleh2c the same in cleartext (`bind ... proto h2`)

Setup (2-core machine): the proxy pinned to core 0; the backend (nginx, HTTP/1.1, one
worker) and h2load (one thread) on core 1. CPU per request: the proxy's utime+stime
from /proc before and after a measured h2load run (after a warm-up run), divided by
the requests h2load saw succeed, also split into its user part (the proxy's own code
and libraries) and its kernel part (the sockets). Runs are interleaved (for each run: each scenario:
each proxy); medians with half the range, and the ratio ringlb / HAProxy.

Usage: python3 benches/h2_compare.py [--runs 5] [--duration 8] [--scenarios h2tls,h2c,idleh2,idleh2c]
       [--idle 2000] [--ringlb BINARY] [--no-build]
Needs: apt-get install haproxy nginx nghttp2-client openssl. Every process it starts
is stopped by its PID.
"""

import argparse
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CORE,
    PROXY_CORE,
    Proc,
    backend_nginx_conf,
    commit,
    cpu_split,
    free_port,
    nginx_worker_pids,
    med,
    ringlb_binary,
    rss_kib,
    self_signed_pem,
    spread,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def config(tmp, name, tls_port, h2c_port, cert, backend_port, maxconn):
    path = os.path.join(tmp, f"{name}.cfg")
    with open(path, "w") as f:
        f.write(
            f"""global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-request 120s
    timeout http-keep-alive 120s
frontend fe
    bind 127.0.0.1:{tls_port} ssl crt {cert} alpn h2,http/1.1
    bind 127.0.0.1:{h2c_port} proto h2
    default_backend app
backend app
    http-reuse always
    server s1 127.0.0.1:{backend_port}
"""
        )
    return path


def h2load(url, duration, warm=False):
    """h2load -c 16 -m 10 on the load core; (succeeded requests, errored, p99 ms)."""
    argv = ["taskset", "-c", LOAD_CORE, "h2load", "-c", "16", "-m", "10", "-t", "1",
            "-D", str(1 if warm else duration), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out)
    if not m:
        raise RuntimeError(f"h2load printed no request counts:\n{out}")
    return int(m.group(4)), int(m.group(5)) + int(m.group(6))


def open_idle_h2(port, n, tls=True):
    """`n` HTTP/2 connections over TLS (ALPN h2), or cleartext with prior knowledge,
    preface and SETTINGS sent and the server's SETTINGS read: established, no stream."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            s = ctx.wrap_socket(s, server_hostname="bench.test")
            if s.selected_alpn_protocol() != "h2":
                raise RuntimeError(f"ALPN chose {s.selected_alpn_protocol()!r}, not h2")
        s.sendall(PREFACE + SETTINGS)
        head = s.recv(9)
        if len(head) < 9 or head[3] != 4:
            raise RuntimeError(f"no SETTINGS frame first: {head!r}")
        held.append(s)
    return held


class Bench:
    def __init__(self, args, ringlb, tmp):
        self.args, self.ringlb, self.tmp = args, ringlb, tmp
        self.cert = self_signed_pem(tmp)
        os.chmod(tmp, 0o755)
        www = os.path.join(tmp, "www")
        os.makedirs(www, mode=0o755)
        self.backend_port = free_port()
        conf = backend_nginx_conf(tmp, self.backend_port, www)
        self.backend = Proc("backend", ["taskset", "-c", LOAD_CORE, "nginx", "-c", conf, "-p", tmp],
                            self.backend_port, nginx_worker_pids)
        self.running, self.ports = {}, {}

    def start(self, proxy):
        tls_port, h2c_port = free_port(), free_port()
        cfg = config(self.tmp, proxy, tls_port, h2c_port, self.cert, self.backend_port, self.args.idle + 500)
        env = dict(os.environ)
        env.pop("MONOIO_FORCE_LEGACY_DRIVER", None)
        if proxy == "haproxy":
            argv = ["taskset", "-c", PROXY_CORE, "haproxy", "-db", "-f", cfg]
        else:
            argv = ["taskset", "-c", PROXY_CORE, self.ringlb, "-f", cfg]
        self.running[proxy] = Proc(proxy, argv, [tls_port, h2c_port], env=env,
                                   log=os.path.join(self.tmp, f"{proxy}.log"))
        self.ports[proxy] = (tls_port, h2c_port)

    def stop(self, proxy):
        p = self.running.pop(proxy, None)
        if p:
            p.stop()

    def measure_load(self, scenario, proxy):
        tls_port, h2c_port = self.ports[proxy]
        url = f"https://127.0.0.1:{tls_port}/" if scenario == "h2tls" else f"http://127.0.0.1:{h2c_port}/"
        p = self.running[proxy]
        h2load(url, self.args.duration, warm=True)
        u0, s0 = cpu_split(p.cpu_pids)
        ok, errors = h2load(url, self.args.duration)
        u1, s1 = cpu_split(p.cpu_pids)
        if not p.alive():
            raise RuntimeError(f"{proxy} died during {scenario}")
        per = 1e6 / max(ok, 1)
        return {"us_per_req": (u1 - u0 + s1 - s0) * per, "user_us": (u1 - u0) * per,
                "kernel_us": (s1 - s0) * per, "rps": ok / self.args.duration, "errors": errors}

    def measure_idle(self, proxy, tls=True):
        """A fresh proxy: a warm-up h2load run, then `idle` connections held."""
        self.stop(proxy)
        self.start(proxy)
        p = self.running[proxy]
        tls_port, h2c_port = self.ports[proxy]
        url = f"https://127.0.0.1:{tls_port}/" if tls else f"http://127.0.0.1:{h2c_port}/"
        h2load(url, 1, warm=True)
        time.sleep(0.5)
        before = sum(rss_kib(pid) for pid in p.cpu_pids)
        held = open_idle_h2(tls_port if tls else h2c_port, self.args.idle, tls)
        time.sleep(1.0)
        after = sum(rss_kib(pid) for pid in p.cpu_pids)
        for s in held:
            s.close()
        if not p.alive():
            raise RuntimeError(f"{proxy} died holding idle connections")
        return {"kib_per_conn": (after - before) / self.args.idle}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--scenarios", default="h2tls,h2c,idleh2,idleh2c")
    ap.add_argument("--proxies", default="ringlb,haproxy")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--ringlb", help="the ringlb binary (default: target/release/ringlb, built first)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    scenarios = args.scenarios.split(",")
    proxies = args.proxies.split(",")
    ringlb = ringlb_binary(args.ringlb, build=not args.no_build)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(args, ringlb, tmp)
        try:
            for proxy in proxies:
                b.start(proxy)
            for run in range(args.runs):
                for sc in scenarios:
                    for proxy in proxies:
                        if sc.startswith("idleh2"):
                            r = b.measure_idle(proxy, tls=sc == "idleh2")
                        else:
                            r = b.measure_load(sc, proxy)
                        results.setdefault((sc, proxy), []).append(r)
                        print(f"run {run} {sc} {proxy}: {r}", file=sys.stderr, flush=True)
        finally:
            for proxy in list(b.running):
                b.stop(proxy)
            b.backend.stop()
    print(f"Commit {commit()}, {args.runs} runs, {args.duration} s each, medians (± half the range)\n")
    print("| scenario | proxy | proxy CPU µs/request | of which user | of which kernel | requests/s | errors | ringlb / HAProxy |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for sc in scenarios:
        key = "kib_per_conn" if sc.startswith("idleh2") else "us_per_req"
        base = med([r[key] for r in results.get((sc, "haproxy"), [])])
        for proxy in proxies:
            rs = results[(sc, proxy)]
            v = [r[key] for r in rs]
            ratio = f"{med(v) / base:.2f} ×" if proxy != "haproxy" and base == base else ""
            if sc.startswith("idleh2"):
                print(f"| {sc} ({args.idle} conns, KiB each) | {proxy} | {med(v):.1f} ± {spread(v):.1f} | — | — | — | — | {ratio} |")
            else:
                user = [r["user_us"] for r in rs]
                kernel = [r["kernel_us"] for r in rs]
                print(f"| {sc} | {proxy} | {med(v):.1f} ± {spread(v):.1f} | {med(user):.1f} ± {spread(user):.1f} | "
                      f"{med(kernel):.1f} ± {spread(kernel):.1f} | {med([r['rps'] for r in rs]):.0f} | "
                      f"{sum(r['errors'] for r in rs)} | {ratio} |")


if __name__ == "__main__":
    main()
