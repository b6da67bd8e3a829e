#!/usr/bin/env python3
"""Question: what does a process-wide server maxconn cost on the request path?

CPU per request of ringlb (1 shard, pinned to one core; wrk -c64 keep-alive and an
nginx backend on the other) with `maxconn 64` on every server, against the same config
without a limit. Two servers (both the same nginx). Runs alternate (unlimited, limited,
...) so that the VM's drift hits both alike; the medians and their ratio are printed.

Usage: python3 benches/limits.py [--runs 5] [--duration 5] [--binary PATH]
Needs: nginx, wrk.
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def config(port, backend, maxconn):
    limit = f"maxconn = {maxconn}\n" if maxconn else ""
    servers = "".join(
        f'[[backend.app.server]]\nname = "s{i}"\naddr = "127.0.0.1:{backend}"\ncheck = false\n{limit}'
        for i in (1, 2)
    )
    return (
        f'[runtime]\nshards = 1\ncpus = [{B.PROXY_CORE}]\n'
        f'[frontend.bench]\nbind = "127.0.0.1:{port}"\ndefault_backend = "app"\n'
        f"[backend.app]\n{servers}"
    )


def one_run(binary, tmp, backend_port, maxconn, duration):
    port = B.free_port()
    path = os.path.join(tmp, f"ringlb-{maxconn or 0}.toml")
    with open(path, "w") as f:
        f.write(config(port, backend_port, maxconn))
    p = B.Proc("ringlb", ["taskset", "-c", B.PROXY_CORE, binary, "-f", path], port,
               log=os.path.join(tmp, "ringlb.err"))
    try:
        B.wrk(port, 1, 64)  # warm-up: pools filled
        before = B.cpu_seconds(p.cpu_pids)
        r = B.wrk(port, duration, 64)
        used = B.cpu_seconds(p.cpu_pids) - before
    finally:
        p.stop()
    if r["non2xx"] or r["sock"]:
        raise RuntimeError(f"errors during the run: {r}")
    return used / r["reqs"] * 1e6, r["reqs"] / duration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--binary")
    a = ap.parse_args()
    binary = B.ringlb_binary(a.binary)
    with tempfile.TemporaryDirectory() as tmp:
        bport = B.free_port()
        conf = B.nginx_conf(tmp, "backend", bport, "")
        nginx = B.Proc("nginx", ["taskset", "-c", B.LOAD_CORE, "nginx", "-c", conf, "-p", tmp],
                       bport, cpu_pids=B.nginx_worker_pids)
        try:
            got = {0: [], 64: []}
            for _ in range(a.runs):
                for m in (0, 64):
                    us, rps = one_run(binary, tmp, bport, m, a.duration)
                    got[m].append(us)
                    print(f"maxconn {m or 'none':>4}: {us:6.2f} us/request, {rps:9.0f} req/s", flush=True)
        finally:
            nginx.stop()
    free, limited = statistics.median(got[0]), statistics.median(got[64])
    print(f"\ncommit {B.commit()}, {a.runs} runs x {a.duration} s, medians:")
    print(f"  no limit:    {free:.2f} us of ringlb CPU per request")
    print(f"  maxconn 64:  {limited:.2f} us ({(limited / free - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
