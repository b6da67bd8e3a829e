"""Shared pieces of the comparison benches: processes, CPU accounting, wrk, configs.

Used by compare.py (ringlb against HAProxy and nginx), cost_split.py, scaling.py,
observability.py, and for the backend config by flamegraph.sh and instructions.sh. Everything
listens on 127.0.0.1 on ports the kernel picks; every process started here is stopped
by its PID.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CORE = "0"
LOAD_CORE = "1"


def ringlb_binary(path=None, build=True):
    """The ringlb to measure: `path` as given, else target/release/ringlb, built first
    unless `build` is false."""
    if path:
        return os.path.abspath(path)
    if build:
        subprocess.check_call(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    return os.path.join(ROOT, "target", "release", "ringlb")


def commit():
    """The short commit measured, for the results files."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=10.0, proc=None):
    end = time.time() + deadline
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_split(pids):
    """(utime, stime) of the given processes (all their threads), in seconds: the
    time in their own code and libraries, and the time in the kernel for them."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids):
    """utime + stime of the given processes (all their threads), in seconds."""
    return sum(cpu_split(pids))


def children(pid):
    try:
        out = subprocess.check_output(["pgrep", "-P", str(pid)], text=True)
        return [int(p) for p in out.split()]
    except subprocess.CalledProcessError:
        return []


class Proc:
    """A process under test. `ports`: what it listens on (waited for); `cpu_pids`: a
    function from its PID to the PIDs whose CPU time is its cost (nginx: the workers).
    Its stderr goes to `log` (a path) when given, so a failed start can be explained."""

    def __init__(self, name, argv, port, cpu_pids=None, env=None, log=None):
        self.name = name
        self.port = port
        self.log = log
        err = open(log, "wb") if log else subprocess.DEVNULL
        try:
            self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        finally:
            if log:
                err.close()
        ports = port if isinstance(port, (list, tuple)) else [port]
        try:
            for p in ports:
                wait_port(p, proc=self.p)
        except RuntimeError as e:
            self.stop()
            detail = ""
            if log and os.path.exists(log):
                with open(log, errors="replace") as f:
                    detail = "\n" + f.read()[-2000:]
            raise RuntimeError(f"{name}: {e}{detail}") from None
        self.cpu_pids = cpu_pids(self.p.pid) if cpu_pids else [self.p.pid]

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is not None:
            return
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def nginx_worker_pids(master_pid):
    deadline = time.time() + 5
    while time.time() < deadline:
        kids = children(master_pid)
        if kids:
            return kids
        time.sleep(0.05)
    return [master_pid]


def nginx_conf(tmp, name, listen, body_block, locations=None, http_extra=""):
    """An nginx config, one worker, no access log, temp paths under `tmp`; without
    `locations`, `/` returns a small body."""
    path = os.path.join(tmp, f"{name}.conf")
    if locations is None:
        locations = "location / { return 200 'hello from the backend\\n'; }"
    with open(path, "w") as f:
        f.write(
            f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.err warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/{name}-body;
    proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fcgi;
    uwsgi_temp_path {tmp}/{name}-uwsgi;
    scgi_temp_path {tmp}/{name}-scgi;
    {http_extra}
    {body_block}
    server {{
        listen 127.0.0.1:{listen} reuseport backlog=4096;
        {locations}
    }}
}}
"""
        )
    return path


def backend_nginx_conf(tmp, listen, www):
    """The backend: small body on `/`, static files under `www` (sendfile), and
    stub_status on /nginx_status (its `accepts` counts the connections it was given)."""
    locations = (
        "location = / { return 200 'hello from the backend\\n'; }\n"
        "        location = /nginx_status { stub_status; }\n"
        f"        location / {{ root {www}; }}"
    )
    return nginx_conf(tmp, "backend", listen, "", locations, http_extra="sendfile on; tcp_nopush on;")


def nginx_accepts(port):
    """`accepts` of an nginx stub_status page on 127.0.0.1:port. The connection that
    asks is counted too (one per call)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx_status", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)", text)
    if not m:
        raise RuntimeError(f"unexpected stub_status page: {text!r}")
    return int(m.group(1))


def _latency_ms(out, label):
    m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(port, duration, connections, path="/", close=False, timeout=None, threads=1, pinned=True, scheme="http"):
    """One wrk run (pinned to the load core unless `pinned` is false; `scheme` "https"
    for a TLS listener). Returns a dict:
    reqs, non2xx (non-2xx/3xx responses), sock (connect+read+write+timeout socket
    errors), p50 and p99 (ms)."""
    argv = ["taskset", "-c", LOAD_CORE] if pinned else []
    argv += ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    if timeout:
        argv += ["--timeout", f"{timeout}s"]
    argv.append(f"{scheme}://127.0.0.1:{port}{path}")
    out = subprocess.check_output(argv, text=True)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        non2xx = int(m.group(1))
    sock = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        sock = sum(int(x) for x in m.groups())
    return {"reqs": reqs, "non2xx": non2xx, "sock": sock, "p50": _latency_ms(out, "50"), "p99": _latency_ms(out, "99")}


def run_wrk(port, duration, connections):
    """Keep-alive GET / : (requests, errors, p50 ms, p99 ms)."""
    r = wrk(port, duration, connections)
    return r["reqs"], r["non2xx"] + r["sock"], r["p50"], r["p99"]


def rss_kib(pid):
    """A process's resident set (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def med(v):
    return statistics.median(v) if v else float("nan")


def spread(v):
    """Half the range: the ± beside a median."""
    return (max(v) - min(v)) / 2 if v else float("nan")


def self_signed_pem(tmp, cn="bench.test"):
    """An ECDSA P-256 certificate and its key in one PEM file (HAProxy's `crt`), made
    with the openssl CLI in `tmp`; its path."""
    pem, key = os.path.join(tmp, "bench.pem"), os.path.join(tmp, "bench.key")
    subprocess.check_call(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", pem, "-days", "2", "-subj", f"/CN={cn}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pem, "a") as out, open(key) as k:
        out.write(k.read())
    return pem
