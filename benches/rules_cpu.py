#!/usr/bin/env python3
"""Question: what do ten typical rules cost in CPU per request (user + kernel), the
figure the rule language's budget is set in (+15 %)? The same haproxy.cfg as
benches/rules.sh without rules and with ten (three set-header with %[...], a literal
one, an ACL on a map deciding a deny, a del-header, a set-var, a use_backend on a
condition, an HSTS http-response header and a del-header Server).

ringlb (1 shard, io_uring) is pinned to the proxy core, nginx and wrk to the load core
(benchlib's cores); runs alternate between the two configs; CPU per request is the
proxy's utime + stime over a wrk run divided by the requests it served; medians.

Usage: python3 benches/rules_cpu.py [--runs 5] [--duration 5] [--connections 16] [--no-build]
Needs: apt-get install nginx wrk
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    PROXY_CORE,
    Proc,
    commit,
    cpu_seconds,
    free_port,
    nginx_conf,
    ringlb_binary,
    wrk,
)

RULES = """    acl known_host req.hdr(host),field(1,:),lower,map_str({map}) -m found
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Request-Host %[req.hdr(host),lower]
    http-request set-header X-Path %[path]
    http-request set-header X-Forwarded-Proto http
    http-request deny if !known_host
    http-request del-header X-Debug
    http-request set-var(txn.host) req.hdr(host)
    use_backend app if {{ path_beg / }}
    http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    http-response del-header Server
"""


def config(port, backend_port, rules, tmp):
    body = RULES.format(map=os.path.join(tmp, "hosts.map")) if rules else ""
    return (
        "global\n    nbthread 1\n    cpu-map 1/1 " + PROXY_CORE + "\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
        f"frontend bench\n    bind 127.0.0.1:{port}\n{body}    default_backend app\n"
        f"backend app\n    server s1 127.0.0.1:{backend_port}\n"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    binary = ringlb_binary(None, build=not args.no_build)
    tmp = tempfile.mkdtemp(prefix="ringlb-rules-")
    with open(os.path.join(tmp, "hosts.map"), "w") as f:
        f.write("127.0.0.1 app\nexample.com app\n")
    bport = free_port()
    conf = nginx_conf(tmp, "backend", bport, "")
    backend = Proc("nginx", ["taskset", "-c", os.environ.get("LOAD_CORE", "1"), "nginx", "-c", conf, "-p", tmp], bport)
    procs = {}
    try:
        for name, rules in (("none", False), ("ten", True)):
            port = free_port()
            path = os.path.join(tmp, f"{name}.cfg")
            with open(path, "w") as f:
                f.write(config(port, bport, rules, tmp))
            procs[name] = Proc(f"ringlb-{name}", ["taskset", "-c", PROXY_CORE, binary, "-f", path], port)
        per = {"none": [], "ten": []}
        for n in range(args.runs):
            for name in ("none", "ten"):
                pr = procs[name]
                wrk(pr.port, 1, args.connections)  # warm-up
                before = cpu_seconds(pr.cpu_pids)
                r = wrk(pr.port, args.duration, args.connections)
                used = cpu_seconds(pr.cpu_pids) - before
                us = used / r["reqs"] * 1e6
                per[name].append(us)
                print(f"run {n + 1} {name:4s}: {r['reqs']} requests, {us:.2f} µs CPU per request", flush=True)
        a, b = statistics.median(per["none"]), statistics.median(per["ten"])
        print(
            f"median CPU per keep-alive request: no rules {a:.2f} µs, ten rules {b:.2f} µs, ratio {b / a:.3f}"
            f" ({args.runs} interleaved runs of {args.duration}s, {args.connections} connections, commit {commit()})"
        )
    finally:
        for pr in procs.values():
            pr.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
