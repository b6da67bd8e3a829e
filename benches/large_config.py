#!/usr/bin/env python3
"""Question: what does a large config cost, per shard and per reload, beside HAProxy 2.6?

Generates the config of issue 24 in haproxy.cfg syntax, so that ringlb and HAProxy run
the same file: 2,000 backends of 5 servers each (10,000 servers, `check` off, on
loopback addresses that need not exist), routed by 2,000
`use_backend beN if { hdr(host) -i hostN.example }` lines. The first and the last
host's backends point at a real nginx backend, for the CPU figures.

Reports, ringlb and HAProxy in the same run:
- `-c` time (medians of --checks runs);
- start to first answer, and RSS, at 1, 2, 4 and 8 shards (HAProxy: nbthread, one
  process without master): medians of --starts starts, ringlb and HAProxy in turn;
- RSS after one request to each of the 2,000 hosts (2 shards; every server then points
  at the nginx backend, so that each request gets an answer): what backends that served
  traffic cost;
- RSS after 10 reloads (2 shards), against the fresh start: ringlb takes SIGUSR2;
  HAProxy runs master-worker (-W) and takes SIGUSR2 (a new worker, the old one leaves);
  its figure is the proportional set size (PSS) of the master and its worker summed, so
  that pages they share are counted once;
- CPU per request for the first and the last host: the proxy on core 0 with one
  shard/thread, wrk -t1 -c64 keep-alive and nginx on core 1; runs interleaved (ringlb
  first host, ringlb last host, HAProxy first, HAProxy last, ...), medians.

Usage: python3 benches/large_config.py [--runs 5] [--duration 5] [--binary PATH]
       [--backends 2000] [--servers 5] [--shards 1,2,4,8] [--starts 5] [--checks 5]
       [--reloads 10] [--skip-cpu]
       [--skip-mem] [--skip-warm] [--skip-haproxy] [--ringlb-env KEY=VALUE] [--out FILE]
Needs: haproxy, nginx, wrk. Every process it starts is stopped by its PID.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def host(i):
    return f"host{i}.example"


def server_addr(k):
    """The k-th server's address: 127.1.0.1 and on, port 8080 (nothing listens)."""
    k += 1
    return f"127.1.{k // 256}.{k % 256}:8080"


def write_config(path, threads, port, real, backends, servers, all_real=False):
    """haproxy.cfg for both proxies. `real`: the nginx backend's address, used by the
    first and last backends (and by every server with `all_real`)."""
    out = [
        "global",
        f"    nbthread {threads}",
        "    maxconn 4000",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    retries 0",
        "frontend web",
        f"    bind 127.0.0.1:{port}",
    ]
    out += [f"    use_backend be{i} if {{ hdr(host) -i {host(i)} }}" for i in range(backends)]
    for i in range(backends):
        out.append(f"backend be{i}")
        for j in range(servers):
            live = all_real or i in (0, backends - 1)
            addr = real if live else server_addr(i * servers + j)
            out.append(f"    server s{j} {addr}")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def status_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def get(port, hostname, timeout=1.0):
    """One request on a new connection: the status code, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            return int(parts[1]) if len(parts) > 1 else None
    except (OSError, ValueError):
        return None


class Server:
    """A proxy started from `argv`; `ready()` polls until the first host answers 200."""

    def __init__(self, name, argv, port, log, env=None):
        self.name = name
        self.port = port
        self.log = log
        self.out = log + ".out"
        self.started = time.monotonic()
        with open(log, "wb") as err, open(self.out, "wb") as out:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, env=env)

    def ready(self, deadline=60.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}): {self.tail()}")
            if get(self.port, host(0), timeout=0.5) == 200:
                return time.monotonic() - self.started
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: no answer within {deadline}s: {self.tail()}")

    def tail(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-1500:]

    def stdout(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.p.poll() is not None:
            return
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def ringlb_env():
    """The environment ringlb runs with: ours plus each --ringlb-env KEY=VALUE (to
    measure allocator settings such as MALLOC_ARENA_MAX), or None when there are none."""
    if not ARGS.ringlb_env:
        return None
    env = dict(os.environ)
    for kv in ARGS.ringlb_env:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def ringlb_argv(binary, cfg, core=None):
    argv = [binary, "-f", cfg]
    return ["taskset", "-c", core] + argv if core else argv


def haproxy_argv(cfg, core=None, master=False):
    argv = ["haproxy", "-db", "-f", cfg] + (["-W"] if master else [])
    return ["taskset", "-c", core] + argv if core else argv


def settle():
    """Lets freed memory go back and old workers leave before a reading."""
    time.sleep(1.0)


def check_times(binary, cfg, n):
    def one(argv):
        t = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError(f"{argv}: {r.stderr.decode(errors='replace')[-800:]}")
        return dt

    rl, hp = [], []
    for _ in range(n):
        rl.append(one([binary, "-c", "-f", cfg]))
        if not ARGS.skip_haproxy:
            hp.append(one(["haproxy", "-c", "-q", "-f", cfg]))
    return statistics.median(rl), (statistics.median(hp) if hp else None)


def rss_at(binary, tmp, threads, real, a):
    """(startup s, RSS KiB) of ringlb and of HAProxy with `threads` shards/threads:
    medians of `a.starts` starts, the two proxies in turn."""
    runs = {}
    names = ["ringlb"] + ([] if a.skip_haproxy else ["haproxy"])
    for _ in range(a.starts):
        for name in names:
            port = B.free_port()
            cfg = os.path.join(tmp, f"{name}-{threads}.cfg")
            write_config(cfg, threads, port, real, a.backends, a.servers)
            argv = ringlb_argv(binary, cfg) if name == "ringlb" else haproxy_argv(cfg)
            env = ringlb_env() if name == "ringlb" else None
            s = Server(name, argv, port, os.path.join(tmp, f"{name}-{threads}.log"), env)
            try:
                startup = s.ready()
                settle()
                runs.setdefault(name, []).append((startup, status_kb(s.p.pid)))
            finally:
                s.stop()
    return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for name, rs in runs.items()}


def rss_warm(binary, tmp, real, a):
    """RSS (KiB) of each proxy at 2 shards after one request to every host."""
    out = {}
    for name in ["ringlb"] + ([] if a.skip_haproxy else ["haproxy"]):
        port = B.free_port()
        cfg = os.path.join(tmp, f"{name}-warm.cfg")
        write_config(cfg, 2, port, real, a.backends, a.servers, all_real=True)
        argv = ringlb_argv(binary, cfg) if name == "ringlb" else haproxy_argv(cfg)
        s = Server(name, argv, port, os.path.join(tmp, f"{name}-warm.log"))
        try:
            s.ready()
            settle()
            cold = status_kb(s.p.pid)
            bad = sum(get(port, host(i), timeout=5.0) != 200 for i in range(a.backends))
            if bad:
                raise RuntimeError(f"{name}: {bad} of {a.backends} warm-up requests failed")
            settle()
            out[name] = (cold, status_kb(s.p.pid))
        finally:
            s.stop()
    return out


def children(pid):
    return B.children(pid)


def reloads_ringlb(binary, tmp, real, a):
    port = B.free_port()
    cfg = os.path.join(tmp, "ringlb-reload.cfg")
    write_config(cfg, 2, port, real, a.backends, a.servers)
    s = Server("ringlb", ringlb_argv(binary, cfg), port, os.path.join(tmp, "ringlb-reload.log"),
               ringlb_env())
    try:
        s.ready()
        settle()
        fresh = status_kb(s.p.pid)
        after = []
        for i in range(1, a.reloads + 1):
            s.p.send_signal(signal.SIGUSR2)
            end = time.monotonic() + 60
            while s.stdout().count("reloaded") < i:
                if time.monotonic() > end or s.p.poll() is not None:
                    raise RuntimeError(f"ringlb: reload {i} not confirmed: {s.tail()}")
                time.sleep(0.02)
            if get(s.port, host(0), timeout=5.0) != 200:
                raise RuntimeError(f"ringlb: no answer after reload {i}")
            settle()
            after.append(status_kb(s.p.pid))
        return fresh, after
    finally:
        s.stop()


def reloads_haproxy(tmp, real, a):
    """Master-worker HAProxy: PSS of master + worker, fresh and after each reload."""
    port = B.free_port()
    cfg = os.path.join(tmp, "haproxy-reload.cfg")
    write_config(cfg, 2, port, real, a.backends, a.servers)
    s = Server("haproxy", haproxy_argv(cfg, master=True), port, os.path.join(tmp, "haproxy-reload.log"))

    def worker(old=None, deadline=60.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            kids = children(s.p.pid)
            if len(kids) == 1 and kids[0] != old and get(port, host(0), timeout=2.0) == 200:
                return kids[0]
            time.sleep(0.05)
        raise RuntimeError(f"haproxy: no single new worker: {s.tail()}")

    def total(w):
        return pss_kb(s.p.pid) + pss_kb(w)

    try:
        s.ready()
        w = worker()
        settle()
        fresh = (total(w), status_kb(w))
        after = []
        for _ in range(a.reloads):
            s.p.send_signal(signal.SIGUSR2)
            w = worker(old=w)
            settle()
            after.append((total(w), status_kb(w)))
        return fresh, after
    finally:
        s.stop()


def cpu_runs(binary, tmp, real, a):
    """CPU µs per request: {(proxy, 'first'|'last'): [runs]}."""
    results = {}
    names = ["ringlb"] + ([] if a.skip_haproxy else ["haproxy"])
    procs = {}
    try:
        for name in names:
            port = B.free_port()
            cfg = os.path.join(tmp, f"{name}-cpu.cfg")
            write_config(cfg, 1, port, real, a.backends, a.servers)
            argv = ringlb_argv(binary, cfg, B.PROXY_CORE) if name == "ringlb" else haproxy_argv(cfg, B.PROXY_CORE)
            s = Server(name, argv, port, os.path.join(tmp, f"{name}-cpu.log"))
            s.ready()
            procs[name] = s
        for name, s in procs.items():
            for h in (host(0), host(a.backends - 1)):
                wrk(s.port, 1, h)  # warm-up: pools filled
        for _ in range(a.runs):
            for name, s in procs.items():
                for which, h in (("first", host(0)), ("last", host(a.backends - 1))):
                    before = B.cpu_seconds([s.p.pid])
                    reqs = wrk(s.port, a.duration, h)
                    used = B.cpu_seconds([s.p.pid]) - before
                    results.setdefault((name, which), []).append(used / reqs * 1e6)
    finally:
        for s in procs.values():
            s.stop()
    return results


def wrk(port, duration, hostname):
    """Requests answered in a keep-alive run for `hostname` (wrk's timeout is 10 s: a
    slow proxy is measured, not failed)."""
    argv = ["taskset", "-c", B.LOAD_CORE, "wrk", "-t1", "-c64", f"-d{duration}s", "--timeout", "10s",
            "-H", f"Host: {hostname}", f"http://127.0.0.1:{port}/"]
    out = subprocess.check_output(argv, text=True)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors for {hostname}:\n{out}")
    return reqs


def memory(binary, tmp, real, a, say):
    """`-c`, startup and RSS at each shard count, warm, reloads."""
    cfg = os.path.join(tmp, "check.cfg")
    write_config(cfg, 2, B.free_port(), real, a.backends, a.servers)
    rl, hp = check_times(binary, cfg, a.checks)
    say("| figure | ringlb | HAProxy |")
    say("| --- | --- | --- |")
    say(f"| `-c` (s, median of {a.checks}) | {rl:.3f} | {hp if hp is None else f'{hp:.3f}'} |")
    base = None
    for n in [int(x) for x in a.shards.split(",")]:
        r = rss_at(binary, tmp, n, real, a)
        rs, rr = r["ringlb"]
        hs, hr = r.get("haproxy", (None, None))
        base = base or (n, rr)
        per = f" ({mb((rr - base[1]) / (n - base[0]))} MB per added shard)" if n > base[0] else ""
        say(f"| start to first answer, {n} shard(s) (s, median of {a.starts}) | {rs:.2f} | {'-' if hs is None else f'{hs:.2f}'} |")
        say(f"| RSS, {n} shard(s) (MB, median of {a.starts}) | {mb(rr)}{per} | {'-' if hr is None else mb(hr)} |")
    if not a.skip_warm:
        w = rss_warm(binary, tmp, real, a)
        c, h = w["ringlb"]
        hc, hh = w.get("haproxy", (None, None))
        say(f"| RSS, 2 shards, all servers live, before / after one request per host (MB) "
            f"| {mb(c)} / {mb(h)} | {'-' if hc is None else f'{mb(hc)} / {mb(hh)}'} |")
    fresh, after = reloads_ringlb(binary, tmp, real, a)
    row = (f"| RSS, 2 shards, fresh / after {a.reloads} reloads (MB) | {mb(fresh)} / {mb(after[-1])} "
           f"({after[-1] / fresh:.2f} x) | ")
    if a.skip_haproxy:
        say(row + "- |")
    else:
        hf, ha = reloads_haproxy(tmp, real, a)
        say(row + f"{mb(hf[0])} / {mb(ha[-1][0])} ({ha[-1][0] / hf[0]:.2f} x; "
            f"master + worker PSS; worker RSS {mb(hf[1])} / {mb(ha[-1][1])}) |")
    say()
    say("ringlb RSS after each reload (MB): " + ", ".join(mb(x) for x in after))
    if not a.skip_haproxy:
        say("HAProxy master + worker PSS after each reload (MB): " + ", ".join(mb(x[0]) for x in ha))


def mb(kb):
    return f"{kb / 1024:.1f}"


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--checks", type=int, default=5)
    ap.add_argument("--starts", type=int, default=5, help="starts per shard count (medians)")
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--backends", type=int, default=2000)
    ap.add_argument("--servers", type=int, default=5)
    ap.add_argument("--shards", default="1,2,4,8")
    ap.add_argument("--binary")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-haproxy", action="store_true")
    ap.add_argument("--skip-warm", action="store_true")
    ap.add_argument("--skip-mem", action="store_true", help="only the CPU figures")
    ap.add_argument("--out", help="also write the report to this file")
    ap.add_argument("--ringlb-env", action="append", default=[], metavar="KEY=VALUE",
                    help="run ringlb with this in its environment (repeatable)")
    a = ap.parse_args()
    ARGS = a
    binary = B.ringlb_binary(a.binary)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    hv = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    say(f"# Large config: {a.backends} backends x {a.servers} servers, {a.backends} host rules")
    say()
    say(f"ringlb commit {B.commit()} ({binary}); {hv}; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} at the start")
    say()
    with tempfile.TemporaryDirectory(prefix="large-config-") as tmp:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        nginx_port = B.free_port()
        conf = B.backend_nginx_conf(tmp, nginx_port, www)
        nginx = B.Proc("nginx", ["taskset", "-c", B.LOAD_CORE, "nginx", "-c", conf], nginx_port,
                       cpu_pids=B.nginx_worker_pids)
        real = f"127.0.0.1:{nginx_port}"
        try:
            if not a.skip_mem:
                memory(binary, tmp, real, a, say)
            if not a.skip_cpu:
                res = cpu_runs(binary, tmp, real, a)
                say()
                say(f"CPU per request (µs; proxy on core {B.PROXY_CORE}, 1 shard/thread; wrk -t1 -c64 "
                    f"{a.duration}s and nginx on core {B.LOAD_CORE}; medians of {a.runs} interleaved runs):")
                say()
                say("| proxy | first host | last host | last / first | runs (first; last) |")
                say("| --- | --- | --- | --- | --- |")
                for name in ["ringlb", "haproxy"]:
                    if (name, "first") not in res:
                        continue
                    f, l = res[(name, "first")], res[(name, "last")]
                    mf, ml = statistics.median(f), statistics.median(l)
                    runs = ", ".join(f"{x:.1f}" for x in f) + "; " + ", ".join(f"{x:.1f}" for x in l)
                    say(f"| {name} | {mf:.2f} | {ml:.2f} | {ml / mf:.3f} | {runs} |")
        finally:
            nginx.stop()
    say()
    say(f"load average {os.getloadavg()[0]:.1f} at the end")
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
