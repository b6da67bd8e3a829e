#!/usr/bin/env python3
"""Side by side: ringlb (1 shard) against HAProxy (nbthread 1) and nginx (1 worker).

One run covers every scenario of the performance issue:

  ka16, ka64, ka256  keep-alive GET /, small body, 16 / 64 / 256 connections
  close              a new connection per request (wrk sends `Connection: close`), 64 conns
  64k, 1m            keep-alive GET of a 64 KiB / 1 MiB static file, 64 connections
  l4                 keep-alive GET /, 64 connections, through the L4 (tcp mode) proxies
  l4-1m              keep-alive GET of a 1 MiB static file, 64 connections, L4 (tcp mode)
  l4close            (not in the default set) l4 with a new connection per request

Proxies: ringlb (L7 frontend; `ringlb-tcp`: its `mode = "tcp"` frontend), ringlb on the
legacy (epoll) driver (`ringlb-legacy`, `ringlb-tcp-legacy`: MONOIO_FORCE_LEGACY_DRIVER=1),
HAProxy http (`haproxy`), HAProxy `mode tcp` (`haproxy-tcp`), nginx (`nginx`), and
direct to the backend (`direct`, the ceiling). L7 scenarios run the L7 proxies, L4
scenarios the tcp ones; `direct` runs in every scenario.

Setup (2-core machine): the proxy under test is pinned to core 0; the backend (nginx,
one worker) and wrk (one thread) to core 1. Per measurement: a warm-up wrk run, then
the measured one. CPU per request is utime+stime (all threads) from /proc before and
after, divided by the requests wrk completed, for the proxy and for the backend. New
upstream connections per request = the backend's stub_status `accepts` delta divided
by the requests (the same measure for every proxy). Measurements are interleaved
(for each run: for each scenario: for each proxy), so drift hits every proxy alike;
medians are reported with the spread (half the range), with ratios against HAProxy
(http for L7 scenarios, tcp for L4), and the issue's targets get a verdict.

Usage: python3 benches/compare.py [--runs 5] [--duration 8] [--scenarios ka64,close]
       [--proxies ringlb,haproxy] [--driver io_uring|legacy|both] [--no-build]
Needs: apt-get install haproxy nginx wrk; writes benches/results/compare-<date>.md
"""

import argparse
import datetime
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402
from benchlib import (  # noqa: E402
    LOAD_CORE,
    PROXY_CORE,
    ROOT,
    Proc,
    backend_nginx_conf,
    commit,
    cpu_seconds,
    cpu_split,
    free_port,
    nginx_accepts,
    nginx_conf,
    nginx_worker_pids,
    ringlb_binary,
    wrk,
)

# name: (mode, connections, path, new connection per request, description)
SCENARIOS = {
    "ka16": ("http", 16, "/", False, "L7 keep-alive, small body, 16 connections"),
    "ka64": ("http", 64, "/", False, "L7 keep-alive, small body, 64 connections"),
    "ka256": ("http", 256, "/", False, "L7 keep-alive, small body, 256 connections"),
    "close": ("http", 64, "/", True, "L7, a new connection per request (Connection: close), small body, 64 connections"),
    "64k": ("http", 64, "/64k.bin", False, "L7 keep-alive, 64 KiB response, 64 connections"),
    "1m": ("http", 64, "/1m.bin", False, "L7 keep-alive, 1 MiB response, 64 connections"),
    "l4": ("tcp", 64, "/", False, "L4 (tcp mode) keep-alive, small body, 64 connections"),
    "l4-1m": ("tcp", 64, "/1m.bin", False, "L4 (tcp mode) keep-alive, 1 MiB response, 64 connections"),
    "l4close": ("tcp", 64, "/", True, "L4 (tcp mode), a new connection per request, small body, 64 connections"),
}
DEFAULT_SCENARIOS = ["ka16", "ka64", "ka256", "close", "64k", "1m", "l4", "l4-1m"]

# name: (mode, label)
PROXIES = {
    "ringlb": ("http", "ringlb (1 shard, io_uring)"),
    "ringlb-legacy": ("http", "ringlb (1 shard, legacy epoll driver)"),
    "haproxy": ("http", "HAProxy http (nbthread 1)"),
    "nginx": ("http", "nginx (1 worker)"),
    "ringlb-tcp": ("tcp", "ringlb tcp mode (1 shard, io_uring)"),
    "ringlb-tcp-legacy": ("tcp", "ringlb tcp mode (1 shard, legacy epoll driver)"),
    "haproxy-tcp": ("tcp", "HAProxy mode tcp (nbthread 1)"),
    "direct": (None, "direct to the backend (ceiling)"),
}
REFERENCE = {"http": "haproxy", "tcp": "haproxy-tcp"}


def csv(value, known, what):
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit(f"unknown {what}: {', '.join(bad)} (known: {', '.join(known)})")
    return names


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="interleaved repetitions of every measurement (default 5)")
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run (default 8)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each measured run (default 1; 0: none)")
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)} (default: {','.join(DEFAULT_SCENARIOS)})")
    ap.add_argument("--proxies", default="all", help=f"comma-separated, from {', '.join(PROXIES)} (default all); ringlb and ringlb-tcp run on the driver(s) --driver names")
    ap.add_argument("--driver", choices=["io_uring", "legacy", "both"], default="both", help="ringlb io driver(s) (default both: io_uring, and MONOIO_FORCE_LEGACY_DRIVER=1 as separate -legacy entries)")
    ap.add_argument("--ringlb-max-idle", type=int, help="ringlb pool.max_idle_per_server (default: ringlb's own default)")
    ap.add_argument("--ringlb", help="path of a ringlb binary to use (implies --no-build)")
    ap.add_argument("--no-build", action="store_true", help="don't run cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, proxy logs) and print its path")
    ap.add_argument("--out", help="markdown output path (default benches/results/compare-<date>.md)")
    args = ap.parse_args()
    args.scenarios = csv(args.scenarios, SCENARIOS, "scenario")
    named = [p for p in PROXIES if not p.endswith("-legacy")] if args.proxies == "all" else csv(args.proxies, PROXIES, "proxy")
    # A ringlb entry named without -legacy runs on the driver(s) --driver says.
    proxies = []
    for p in named:
        if p.startswith("ringlb") and not p.endswith("-legacy"):
            expanded = {"io_uring": [p], "legacy": [p + "-legacy"], "both": [p, p + "-legacy"]}[args.driver]
        else:
            expanded = [p]
        proxies += [x for x in expanded if x not in proxies]
    args.proxies = [p for p in PROXIES if p in proxies]  # the table order
    if args.runs < 1 or args.duration < 1:
        sys.exit("--runs and --duration must be at least 1")
    return args


def plan(args):
    """[(scenario, [proxies])] in run order."""
    out = []
    for s in args.scenarios:
        mode = SCENARIOS[s][0]
        ps = [p for p in args.proxies if PROXIES[p][0] in (mode, None)]
        if ps:
            out.append((s, ps))
    return out


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


class Bench:
    def __init__(self, args, ringlb, tmp):
        self.args = args
        self.ringlb = ringlb
        self.tmp = tmp
        self.procs = []
        self.configs = {}  # file name: text, quoted in the results
        # The nginx workers drop root to an unprivileged user: let them read the files.
        os.chmod(tmp, 0o755)
        www = os.path.join(tmp, "www")
        os.makedirs(www, mode=0o755)
        for name, size in (("64k.bin", 64 * 1024), ("1m.bin", 1024 * 1024)):
            with open(os.path.join(www, name), "wb") as f:
                f.write(os.urandom(size))
        self.backend_port = free_port()
        conf = backend_nginx_conf(tmp, self.backend_port, www)
        self.keep_config("backend nginx", conf)
        self.backend = self.start(
            "backend", ["taskset", "-c", LOAD_CORE, "nginx", "-c", conf, "-p", tmp], self.backend_port, nginx_worker_pids
        )
        self.ports = {"direct": self.backend_port}
        self.running = {}  # proxy name: Proc

    def keep_config(self, title, path):
        with open(path) as f:
            self.configs[title] = f.read().strip()

    def start(self, name, argv, ports, cpu_pids=None, env=None):
        p = Proc(name, argv, ports, cpu_pids, env=env, log=os.path.join(self.tmp, f"{name}.log"))
        self.procs.append(p)
        return p

    def start_ringlb(self, legacy, need_http, need_tcp):
        name = "ringlb-legacy" if legacy else "ringlb"
        http_port, tcp_port = free_port(), free_port()
        pool = f"[pool]\nmax_idle_per_server = {self.args.ringlb_max_idle}\n" if self.args.ringlb_max_idle is not None else ""
        cfg = os.path.join(self.tmp, f"{name}.toml")
        with open(cfg, "w") as f:
            f.write(
                f"""[runtime]
shards = 1
cpus = [{PROXY_CORE}]
driver = "{'auto' if legacy else 'io_uring'}"
{pool}
[frontend.http]
bind = "127.0.0.1:{http_port}"
default_backend = "app"

[frontend.tcp]
bind = "127.0.0.1:{tcp_port}"
mode = "tcp"
default_backend = "app"

[backend.app]
[[backend.app.server]]
addr = "127.0.0.1:{self.backend_port}"
check = false
"""
            )
        self.keep_config(f"{name}.toml" + (" (run with MONOIO_FORCE_LEGACY_DRIVER=1)" if legacy else ""), cfg)
        env = dict(os.environ)
        if legacy:
            env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
        else:
            env.pop("MONOIO_FORCE_LEGACY_DRIVER", None)
        p = self.start(name, ["taskset", "-c", PROXY_CORE, self.ringlb, "-f", cfg], [http_port, tcp_port], env=env)
        # ringlb logs `ringlb started shards=1 drivers=["io_uring"] ...`: check it got the driver asked for.
        want, got = ("legacy" if legacy else "io_uring"), None
        deadline = time.time() + 5
        while got is None and time.time() < deadline:
            with open(p.log, errors="replace") as f:
                m = re.search(r'ringlb started .*drivers=\[([^\]]*)\]', f.read())
            if m:
                got = m.group(1).replace('"', "")
            else:
                time.sleep(0.05)
        if got != want:
            raise RuntimeError(f"{name}: asked for the {want} driver, ringlb reports {got!r} (log: {p.log})")
        suffix = "-legacy" if legacy else ""
        if need_http:
            self.running[f"ringlb{suffix}"] = p
            self.ports[f"ringlb{suffix}"] = http_port
        if need_tcp:
            self.running[f"ringlb-tcp{suffix}"] = p
            self.ports[f"ringlb-tcp{suffix}"] = tcp_port

    def start_haproxy(self, mode):
        name = "haproxy" if mode == "http" else "haproxy-tcp"
        port = free_port()
        http = "    option http-keep-alive\n    http-reuse always\n" if mode == "http" else ""
        cfg = os.path.join(self.tmp, f"{name}.cfg")
        with open(cfg, "w") as f:
            f.write(
                f"""global
    nbthread 1
    maxconn 4000
defaults
    mode {mode}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
{http}frontend bench
    bind 127.0.0.1:{port}
    default_backend app
backend app
    server s1 127.0.0.1:{self.backend_port}
"""
            )
        self.keep_config(f"{name}.cfg", cfg)
        self.running[name] = self.start(name, ["taskset", "-c", PROXY_CORE, "haproxy", "-f", cfg], port)
        self.ports[name] = port

    def start_nginx(self):
        port = free_port()
        conf = nginx_conf(
            self.tmp,
            "proxy",
            port,
            f"upstream up {{ server 127.0.0.1:{self.backend_port}; keepalive 256; }}",
            'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; '
            "proxy_max_temp_file_size 0; }",
        )
        self.keep_config("proxy nginx", conf)
        self.running["nginx"] = self.start("nginx", ["taskset", "-c", PROXY_CORE, "nginx", "-c", conf, "-p", self.tmp], port, nginx_worker_pids)
        self.ports["nginx"] = port

    def start_proxies(self, proxies):
        for legacy in (False, True):
            suffix = "-legacy" if legacy else ""
            need_http, need_tcp = f"ringlb{suffix}" in proxies, f"ringlb-tcp{suffix}" in proxies
            if need_http or need_tcp:
                self.start_ringlb(legacy, need_http, need_tcp)
        if "haproxy" in proxies:
            self.start_haproxy("http")
        if "haproxy-tcp" in proxies:
            self.start_haproxy("tcp")
        if "nginx" in proxies:
            self.start_nginx()

    def check(self, scenario, proxy):
        """One GET through the proxy: 200 and the whole body, or the run stops here."""
        path = SCENARIOS[scenario][2]
        url = f"http://127.0.0.1:{self.ports[proxy]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                status, body = r.status, r.read()
        except (OSError, urllib.error.URLError) as e:
            raise RuntimeError(f"{proxy}: GET {path} failed: {e}") from None
        want = {"/64k.bin": 64 * 1024, "/1m.bin": 1024 * 1024}.get(path)
        if status != 200 or (want is not None and len(body) != want):
            raise RuntimeError(f"{proxy}: GET {path} answered {status} with {len(body)} bytes")

    def measure(self, scenario, proxy):
        _, conns, path, close, _ = SCENARIOS[scenario]
        port = self.ports[proxy]
        if self.args.warmup:
            wrk(port, self.args.warmup, conns, path, close)
        pids = self.running[proxy].cpu_pids if proxy != "direct" else []
        (u0, k0), be0, acc0 = cpu_split(pids), cpu_seconds(self.backend.cpu_pids), nginx_accepts(self.backend_port)
        r = wrk(port, self.args.duration, conns, path, close)
        (u1, k1), be1, acc1 = cpu_split(pids), cpu_seconds(self.backend.cpu_pids), nginx_accepts(self.backend_port)
        if r["reqs"] == 0:
            # Nothing completed (a stalled proxy, or a machine too busy to run the load):
            # no figure from this run; counted in the errors column.
            return {k: None for k in ("rps", "cpu", "user", "kernel", "be", "total", "up", "p50", "p99")} | {
                "non2xx": r["non2xx"], "sock": r["sock"], "empty": True}
        n = r["reqs"]
        proxied = proxy != "direct"
        cpu = (u1 - u0 + k1 - k0) / n * 1e6 if proxied else None
        be = (be1 - be0) / n * 1e6
        return {
            "rps": r["reqs"] / self.args.duration,
            "cpu": cpu,
            # The proxy's own code and libraries, and the kernel's work for it (its
            # sockets): what a proxy can cut is mostly the first.
            "user": (u1 - u0) / n * 1e6 if proxied else None,
            "kernel": (k1 - k0) / n * 1e6 if proxied else None,
            "be": be,
            "total": (cpu or 0.0) + be,
            "up": (acc1 - acc0 - 1) / n,  # minus the second stub_status request itself
            "p50": r["p50"],
            "p99": r["p99"],
            "non2xx": r["non2xx"],
            "sock": r["sock"],
            "empty": False,
        }

    def stop(self):
        for p in reversed(self.procs):
            p.stop()


def div(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=2, spread=None):
    if v is None:
        return "—"
    s = f"{v:,.{digits}f}"
    if spread is not None:
        s += f" ± {spread:,.{digits}f}"
    return s


def main():
    args = parse_args()
    for tool in ("haproxy", "nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install haproxy nginx wrk")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores: the proxy on core 0, wrk and the backend on core 1")
    order = plan(args)
    if not order:
        sys.exit("nothing to run: no selected proxy serves the selected scenarios")
    wanted = sorted({p for _, ps in order for p in ps})
    ringlb = ringlb_binary(args.ringlb, build=not args.no_build)
    if any(p.startswith("ringlb") for p in wanted) and not os.access(ringlb, os.X_OK):
        sys.exit(f"no ringlb binary at {ringlb}")

    per_run = sum(len(ps) for _, ps in order) * (args.duration + args.warmup + 0.3)
    print(f"{len(order)} scenarios, {sum(len(ps) for _, ps in order)} measurements per run, {args.runs} runs: "
          f"about {per_run * args.runs / 60:.1f} min", flush=True)

    tmp = tempfile.mkdtemp(prefix="ringlb-bench-")
    samples = {(s, p): [] for s, ps in order for p in ps}
    bench = None
    try:
        bench = Bench(args, ringlb, tmp)
        bench.start_proxies(wanted)
        for s, ps in order:
            for p in ps:
                bench.check(s, p)
        for r in range(args.runs):
            for s, ps in order:
                for p in ps:
                    x = bench.measure(s, p)
                    samples[(s, p)].append(x)
                    if x["empty"]:
                        print(f"run {r + 1} {s:7} {p:18} NO REQUEST COMPLETED (stalled proxy or busy machine); "
                              f"errors {x['non2xx']}/{x['sock']}", flush=True)
                        continue
                    print(
                        f"run {r + 1} {s:7} {p:18} {x['rps']:10,.0f} req/s  proxy {fmt(x['cpu']):>7} us/req "
                        f"(user {fmt(x['user'])}, kernel {fmt(x['kernel'])})  "
                        f"backend {x['be']:6.2f} us/req  up/req {x['up']:.4f}  p50 {x['p50']:.2f} ms  p99 {x['p99']:.2f} ms  "
                        f"errors {x['non2xx']}/{x['sock']}",
                        flush=True,
                    )
                    if p != "direct" and not bench.running[p].alive():
                        raise RuntimeError(f"{p} exited during the run (log: {bench.running[p].log})")
        configs = bench.configs
    finally:
        if bench:
            bench.stop()
        if args.keep:
            print(f"configs and logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    def med(s, p, k):
        xs = [x[k] for x in samples.get((s, p), []) if x[k] is not None]
        return statistics.median(xs) if xs else None

    def spread(s, p, k):
        xs = [x[k] for x in samples.get((s, p), []) if x[k] is not None]
        return (max(xs) - min(xs)) / 2 if xs else None

    measured = commit()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src", "Cargo.toml", "Cargo.lock"], cwd=ROOT).returncode != 0
    ran = {p for _, ps in order for p in ps if p.startswith("ringlb")}
    uring, legacy = any(not p.endswith("-legacy") for p in ran), any(p.endswith("-legacy") for p in ran)
    driver = {(True, True): "io_uring and legacy (MONOIO_FORCE_LEGACY_DRIVER=1), separate entries",
              (True, False): "io_uring (runtime.driver = \"io_uring\")",
              (False, True): "legacy (MONOIO_FORCE_LEGACY_DRIVER=1)",
              (False, False): "not run"}[(uring, legacy)]
    command = "python3 benches/compare.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"# ringlb against HAProxy and nginx ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {os.cpu_count()} cores (nproc), kernel {os.uname().release}",
        f"- ringlb commit {measured}{' with uncommitted changes' if dirty else ''}, 1 shard, driver: {driver}"
        + (f", pool.max_idle_per_server = {args.ringlb_max_idle}" if args.ringlb_max_idle is not None else ", default pool settings"),
        f"- {version(['haproxy', '-v'])}; {version(['nginx', '-v'])}; {version(['wrk', '--version'])}",
        f"- proxy under test pinned to core {PROXY_CORE}; wrk (1 thread) and the backend (nginx, 1 worker, sendfile) on core {LOAD_CORE}",
        f"- {args.runs} interleaved runs of {args.duration} s (each after a {args.warmup} s warm-up); medians ± half the range",
        f"- command: `{command}`",
        "",
        "Columns: req/s from wrk; p50/p99 latency from wrk --latency (ms); errors = non-2xx/3xx responses / socket errors "
        "(connect+read+write+timeout), summed over runs; proxy CPU = utime+stime of the proxy process (all threads; nginx: "
        "its worker) per completed request, in µs, also split into user (utime: the proxy's own code and libraries) and "
        "kernel (stime: its syscalls, ring submissions and, on loopback, the receiving side of its sends); kernel/req vs "
        "the reference's CPU/req is the floor of the CPU ratio if the proxy's own code cost nothing; backend CPU likewise for the backend nginx worker; new upstream "
        "conns/req = connections the backend accepted during the run / requests (for `direct` that is client connections; "
        "with large responses it includes the reconnections after the warm-up run's aborted transfers); "
        "ratios are of medians against HAProxy http (L7 scenarios) or HAProxy tcp (L4).",
        "",
    ]
    for s, ps in order:
        mode, conns, path, close, desc = SCENARIOS[s]
        ref = REFERENCE[mode]
        header = ' -H "Connection: close"' if close else ""
        lines += [
            f"## {s}: {desc}",
            "",
            f"`wrk -t1 -c{conns} --latency{header} http://127.0.0.1:PORT{path}`",
            "",
            f"| proxy | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req | of which user | of which kernel | backend CPU µs/req | proxy+backend µs/req | new upstream conns/req | req/s vs {ref} | CPU/req vs {ref} | kernel/req vs {ref}'s CPU/req |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in ps:
            xs = samples[(s, p)]
            rps, cpu = med(s, p, "rps"), med(s, p, "cpu")
            ref_rps, ref_cpu = med(s, ref, "rps"), med(s, ref, "cpu")
            empty = sum(x["empty"] for x in xs)
            errors = f"{sum(x['non2xx'] for x in xs)}/{sum(x['sock'] for x in xs)}" + (
                f" ({empty} run{'s' if empty > 1 else ''} without a request)" if empty else "")
            lines.append(
                f"| {PROXIES[p][1]} | {fmt(rps, 0, spread(s, p, 'rps'))} | {fmt(med(s, p, 'p50'))} | {fmt(med(s, p, 'p99'), 2, spread(s, p, 'p99'))} "
                f"| {errors} | {fmt(cpu, 2, spread(s, p, 'cpu'))} | {fmt(med(s, p, 'user'))} | {fmt(med(s, p, 'kernel'))} "
                f"| {fmt(med(s, p, 'be'))} | {fmt(med(s, p, 'total')) if cpu is not None else '—'} | {fmt(med(s, p, 'up'), 5)} "
                f"| {fmt(div(rps, ref_rps))} | {fmt(div(cpu, ref_cpu))} | {fmt(div(med(s, p, 'kernel'), ref_cpu))} |"
            )
        lines.append("")
    main_ringlb = "ringlb-legacy" if legacy and not uring else "ringlb"
    lines += [
        f"## Targets ({main_ringlb}; ratios of medians of this run)",
        "",
        *targets.table(med, main_ringlb),
        "",
        "<details><summary>Configurations (ports picked at run time)</summary>",
        "",
    ]
    for title, text in configs.items():
        lines += [f"{title}:", "", "```", text, "```", ""]
    lines += ["</details>", ""]
    report = "\n".join(lines)
    print()
    print(report)
    out = args.out or os.path.join(ROOT, "benches", "results", f"compare-{datetime.date.today().isoformat()}.md")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
