#!/usr/bin/env python3
"""TLS termination side by side: ringlb (1 shard) against HAProxy 2.6 `bind ssl`
(nbthread 1), both on the same haproxy.cfg, in the same run.

Scenarios (issue 16's table):

  ka64     keep-alive GET /, small body, 64 TLS connections (wrk, https)
  1m       keep-alive GET of a 1 MiB static file, 64 TLS connections
  ka64plain, 1mplain  the same on a plain bind of the same frontend (not by default)
  idle10k  9,000 TLS connections (--idle; 10,000 needs a descriptor limit above 21,000) opened (handshake done, HTTP/1.1 keep-alive, no
           request), then held: the proxy's resident memory per connection
  idleplain  the same on a plain bind of the same frontend (what the TLS layer adds
           is the difference)

Setup (2-core machine): the proxy is pinned to core 0 (taskset); the backend (nginx,
one worker, plain HTTP) and the load (wrk, one thread; or this script for idle10k) to
core 1. Per measurement a warm-up wrk run, then the measured one. CPU per request:
the proxy's utime+stime (all threads) from /proc before and after, divided by the
requests wrk completed. Memory: VmRSS after the connections are up minus VmRSS before
(the proxy having served a warm-up), divided by the connections. Measurements are
interleaved (for each run: for each scenario: for each proxy); medians with the
spread (half the range) and the ratio ringlb / HAProxy.

The certificate is ECDSA P-256 (openssl CLI, generated in a temp dir). Handshake
costs are measured by `cargo bench --bench tls_handshake`.

Usage: python3 benches/tls_compare.py [--runs 5] [--duration 8] [--scenarios ka64,1m,idle10k,idleplain]
       [--proxies ringlb,haproxy,ringlb-legacy] [--idle 10000] [--no-build]
Needs: apt-get install haproxy nginx wrk openssl; prints a markdown table.
"""

import argparse
import os
import socket
import ssl
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CORE,
    PROXY_CORE,
    Proc,
    backend_nginx_conf,
    commit,
    cpu_seconds,
    free_port,
    nginx_worker_pids,
    med,
    ringlb_binary,
    rss_kib,
    self_signed_pem,
    spread,
    wrk,
)

SCENARIOS = {
    # name: (connections, path, over TLS)
    "ka64": (64, "/", True),
    "1m": (64, "/1m.bin", True),
    # The same on the frontend's plain bind: what TLS adds is the difference.
    "ka64plain": (64, "/", False),
    "1mplain": (64, "/1m.bin", False),
}


def haproxy_cfg(tmp, name, port, cert, backend_port, maxconn, plain_port):
    """The one config both proxies run."""
    path = os.path.join(tmp, f"{name}.cfg")
    with open(path, "w") as f:
        f.write(
            f"""global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-request 120s
    timeout http-keep-alive 120s
frontend fe
    bind 127.0.0.1:{port} ssl crt {cert} alpn http/1.1
    bind 127.0.0.1:{plain_port}
    default_backend app
backend app
    http-reuse always
    server s1 127.0.0.1:{backend_port}
"""
        )
    return path


def open_idle(port, n):
    """`n` TLS connections with the handshake done (and the TLS 1.3 tickets read), held
    open without a request. Returns the sockets."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    held = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="bench.test")
        held.append(s)
    return held


class Bench:
    def __init__(self, args, ringlb, tmp):
        self.args, self.ringlb, self.tmp = args, ringlb, tmp
        self.cert = self_signed_pem(tmp)
        # nginx's worker (another user when run as root) reads the files.
        os.chmod(tmp, 0o755)
        www = os.path.join(tmp, "www")
        os.makedirs(www, mode=0o755)
        with open(os.path.join(www, "1m.bin"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        self.backend_port = free_port()
        conf = backend_nginx_conf(tmp, self.backend_port, www)
        self.backend = Proc("backend", ["taskset", "-c", LOAD_CORE, "nginx", "-c", conf, "-p", tmp],
                            self.backend_port, nginx_worker_pids)
        self.running, self.ports, self.plain_ports = {}, {}, {}

    def start(self, proxy):
        port, plain_port = free_port(), free_port()
        cfg = haproxy_cfg(self.tmp, proxy, port, self.cert, self.backend_port, self.args.idle + 500, plain_port)
        env = dict(os.environ)
        env.pop("MONOIO_FORCE_LEGACY_DRIVER", None)
        if proxy == "haproxy":
            argv = ["taskset", "-c", PROXY_CORE, "haproxy", "-db", "-f", cfg]
        else:
            argv = ["taskset", "-c", PROXY_CORE, self.ringlb, "-f", cfg]
            if proxy == "ringlb-legacy":
                env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
        self.running[proxy] = Proc(proxy, argv, port, env=env, log=os.path.join(self.tmp, f"{proxy}.log"))
        self.ports[proxy] = port
        self.plain_ports[proxy] = plain_port
        self.check(proxy)

    def check(self, proxy):
        """GET / and the 1 MiB file through the proxy over TLS: 200 and the whole body,
        or the run stops here."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for path, size in (("/", None), ("/1m.bin", 1024 * 1024)):
            try:
                with urllib.request.urlopen(self.url(proxy, path), timeout=5, context=ctx) as r:
                    status, body = r.status, r.read()
            except OSError as e:
                raise RuntimeError(f"{proxy}: GET {path} failed: {e}") from None
            if status != 200 or (size is not None and len(body) != size):
                raise RuntimeError(f"{proxy}: GET {path} answered {status} with {len(body)} bytes")

    def stop(self, proxy):
        p = self.running.pop(proxy, None)
        if p:
            p.stop()

    def url(self, proxy, path):
        return f"https://127.0.0.1:{self.ports[proxy]}{path}"

    def measure_wrk(self, scenario, proxy):
        conns, path, tls = SCENARIOS[scenario]
        p = self.running[proxy]
        port, scheme = (self.ports[proxy], "https") if tls else (self.plain_ports[proxy], "http")
        wrk(port, 2, conns, path=path, scheme=scheme)
        c0 = cpu_seconds(p.cpu_pids)
        r = wrk(port, self.args.duration, conns, path=path, scheme=scheme)
        cpu = cpu_seconds(p.cpu_pids) - c0
        if not p.alive():
            raise RuntimeError(f"{proxy} died during {scenario}")
        errors = r["non2xx"] + r["sock"]
        return {"us_per_req": cpu * 1e6 / max(r["reqs"], 1), "rps": r["reqs"] / self.args.duration,
                "errors": errors, "p99": r["p99"]}

    def measure_idle(self, proxy, plain=False):
        """A fresh proxy: one warm-up connection and request, then `idle` connections
        (TLS, or plain on the frontend's other bind)."""
        self.stop(proxy)
        self.start(proxy)
        p = self.running[proxy]
        wrk(self.ports[proxy], 1, 4, scheme="https")
        time.sleep(0.5)
        before = sum(rss_kib(pid) for pid in p.cpu_pids)
        t0 = time.time()
        if plain:
            held = [socket.create_connection(("127.0.0.1", self.plain_ports[proxy]), timeout=10)
                    for _ in range(self.args.idle)]
        else:
            held = open_idle(self.ports[proxy], self.args.idle)
        time.sleep(1.0)
        after = sum(rss_kib(pid) for pid in p.cpu_pids)
        for s in held:
            s.close()
        if not p.alive():
            raise RuntimeError(f"{proxy} died holding idle connections")
        return {"kib_per_conn": (after - before) / self.args.idle, "open_s": time.time() - t0,
                "rss_before_mib": before / 1024, "rss_after_mib": after / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--scenarios", default="ka64,1m,idle10k,idleplain")
    ap.add_argument("--proxies", default="ringlb,haproxy")
    # HAProxy wants 2 descriptors per maxconn (maxconn = idle + 500): 10,000 needs a hard
    # limit above 21,000; the default fits a 20,000 limit.
    ap.add_argument("--idle", type=int, default=9000)
    ap.add_argument("--ringlb", help="the ringlb binary (default: target/release/ringlb, built first)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    scenarios = args.scenarios.split(",")
    proxies = args.proxies.split(",")
    ringlb = ringlb_binary(args.ringlb, build=not args.no_build)
    # Each process inherits the limit: 10,000 idle connections need the descriptors.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if 2 * (args.idle + 500) + 100 > hard:
        sys.exit(f"--idle {args.idle} needs more descriptors than the hard limit {hard}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(args, ringlb, tmp)
        try:
            for proxy in proxies:
                b.start(proxy)
            for run in range(args.runs):
                for sc in scenarios:
                    for proxy in proxies:
                        if sc in ("idle10k", "idleplain"):
                            r = b.measure_idle(proxy, plain=sc == "idleplain")
                        else:
                            if proxy not in b.running:
                                b.start(proxy)
                            r = b.measure_wrk(sc, proxy)
                        results.setdefault((sc, proxy), []).append(r)
                        print(f"run {run} {sc} {proxy}: {r}", file=sys.stderr, flush=True)
        finally:
            for proxy in list(b.running):
                b.stop(proxy)
            b.backend.stop()
    print(f"Commit {commit()}, {args.runs} runs, {args.duration} s each, medians (± half the range)\n")
    print("| scenario | proxy | proxy CPU µs/request | requests/s | p99 ms | errors | ringlb / HAProxy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for sc in scenarios:
        if sc in ("idle10k", "idleplain"):
            continue
        base = med([r["us_per_req"] for r in results.get((sc, "haproxy"), [])])
        for proxy in proxies:
            rs = results[(sc, proxy)]
            cpu = [r["us_per_req"] for r in rs]
            ratio = f"{med(cpu) / base:.2f} ×" if proxy != "haproxy" and base == base else ""
            print(f"| {sc} | {proxy} | {med(cpu):.1f} ± {spread(cpu):.1f} | {med([r['rps'] for r in rs]):.0f} | "
                  f"{med([r['p99'] for r in rs]):.2f} | {sum(r['errors'] for r in rs)} | {ratio} |")
    idle = [sc for sc in scenarios if sc in ("idle10k", "idleplain")]
    if idle:
        print(f"\n| {args.idle} idle connections | proxy | KiB per connection | RSS before → after (MiB) | ringlb / HAProxy |")
        print("| --- | --- | --- | --- | --- |")
    for sc in idle:
        base = med([r["kib_per_conn"] for r in results.get((sc, "haproxy"), [])])
        for proxy in proxies:
            rs = results[(sc, proxy)]
            k = [r["kib_per_conn"] for r in rs]
            ratio = f"{med(k) / base:.2f} ×" if proxy != "haproxy" and base == base else ""
            what = "TLS" if sc == "idle10k" else "plain"
            print(f"| {what} | {proxy} | {med(k):.1f} ± {spread(k):.1f} | {med([r['rss_before_mib'] for r in rs]):.1f} → "
                  f"{med([r['rss_after_mib'] for r in rs]):.1f} | {ratio} |")


if __name__ == "__main__":
    main()
