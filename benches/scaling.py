#!/usr/bin/env python3
"""Scaling: does a second shard add throughput, and what does it cost per request?

ringlb with 1 shard (core 0) and with 2 shards (cores 0 and 1), keep-alive GETs of a
small body through an nginx backend (1 worker), wrk with 2 threads and 128 connections.
On this 2-core machine the load generator and the backend share the cores with the
shards, so the question answered is "how much more does the same box serve", not the
shards' own ceiling: with 1 shard, core 1 is left to wrk and the backend; with 2, all
four compete. Reported: requests/s and ringlb's CPU per request (utime+stime / requests),
medians of interleaved runs.

Usage: python3 benches/scaling.py [--runs 3] [--duration 5] [--ringlb PATH]
Writes benches/results/scaling-<date>.md.
"""

import argparse
import datetime
import os
import statistics
import tempfile

import benchlib as B


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=128)
    ap.add_argument("--ringlb", default=None, help="binary (default: build in release)")
    args = ap.parse_args()
    ringlb = B.ringlb_binary(args.ringlb)
    tmp = tempfile.mkdtemp(prefix="ringlb-scaling-")
    procs = []
    try:
        bport = B.free_port()
        backend = B.Proc(
            "backend",
            ["nginx", "-c", B.nginx_conf(tmp, "backend", bport, ""), "-p", tmp],
            bport,
            B.nginx_worker_pids,
        )
        procs.append(backend)
        variants = {}
        for shards, cpus in ((1, "[0]"), (2, "[0, 1]")):
            port = B.free_port()
            cfg = os.path.join(tmp, f"ringlb-{shards}.toml")
            with open(cfg, "w") as f:
                f.write(
                    f'[runtime]\nshards = {shards}\ncpus = {cpus}\n[frontend.bench]\nbind = "127.0.0.1:{port}"\n'
                    f'default_backend = "app"\n[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:{bport}"\n'
                )
            p = B.Proc(f"{shards} shard(s)", [ringlb, "-f", cfg], port)
            procs.append(p)
            variants[shards] = (p, port)
        results = {s: [] for s in variants}
        for _ in range(args.runs):
            for s, (p, port) in variants.items():
                c0 = B.cpu_seconds(p.cpu_pids)
                # Two threads, not pinned: with 2 shards every core serves.
                reqs = B.wrk(port, args.duration, args.connections, threads=2, pinned=False)["reqs"]
                c1 = B.cpu_seconds(p.cpu_pids)
                results[s].append((reqs / args.duration, (c1 - c0) / reqs * 1e6))
        rows = []
        base = statistics.median(r[0] for r in results[1])
        for s, v in results.items():
            rps = statistics.median(r[0] for r in v)
            cpu = statistics.median(r[1] for r in v)
            rows.append(f"| {s} | {rps:,.0f} | {rps / base:.2f} | {cpu:.2f} |")
        cmd = "python3 benches/scaling.py " + " ".join(
            f"--{k} {v}" for k, v in (("runs", args.runs), ("duration", args.duration), ("connections", args.connections))
        )
        text = "\n".join(
            [
                "# Scaling: 1 vs 2 shards",
                "",
                f"Command: `{cmd}` (commit {B.commit()}, kernel {os.uname().release}, {os.cpu_count()} cores; "
                "wrk -t2 and the nginx backend share the cores with the shards).",
                "",
                "| shards | req/s | vs 1 shard | ringlb CPU µs/req |",
                "| --- | --- | --- | --- |",
                *rows,
                "",
            ]
        )
        print(text)
        out = os.path.join(B.ROOT, "benches", "results", f"scaling-{datetime.date.today()}.md")
        with open(out, "w") as f:
            f.write(text)
        print(f"written to {out}")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
