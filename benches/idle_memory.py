#!/usr/bin/env python3
"""Memory per idle client connection, and memory after bursts of connections.

Question: how much resident memory does the balancer hold per idle keep-alive client
connection, and does it give memory back once a burst of connections has closed?

For each proxy (ringlb on the io_uring driver, ringlb on the legacy epoll driver,
HAProxy 2.6 when installed), in front of one nginx backend on loopback, each scenario in
a fresh process (2 shards / threads by default), after 50 warm-up requests:

1. `keep-alive`: N client connections are opened and each sends one keep-alive request
   and reads its answer, then all stay open and silent. RSS per connection is
   (RSS with the N open - RSS before) / N, RSS read from /proc/PID/status (VmRSS) once
   it stops moving, 2.5 s after the last connection was accepted (ringlb gives a quiet
   connection's buffers back after 100 ms, and memory to the system on a 1 s tick).
   Then all are closed, and RSS is read again (same wait) against the level before.
   `fresh`: the same with N connections that never send a byte.
2. `bursts`: ten times, B connections are opened, each sends one request, and all are
   closed. RSS before the first burst and after each burst (once the proxy has seen
   every close, same wait) are printed, with the highest and the last against the first.

Usage: python3 benches/idle_memory.py [--idle 8000] [--burst 5000] [--bursts 10]
           [--shards 2] [--bin PATH] [--only ringlb-uring,ringlb-legacy,haproxy]
Open files are capped at 20,000 per process here: the client's sockets count for the
client process, the proxy's for the proxy.
"""

import argparse
import os
import resource
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_response(s):
    """Reads one response with a Content-Length body (the backend's small answer)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed mid-body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer {head[:40]!r}")


def open_conns(port, n, request):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        if request:
            s.sendall(REQUEST)
            read_response(s)
    return socks


def wait_fds(pid, target, slack, deadline=30.0):
    """Waits until the proxy holds at most `target + slack` descriptors (it saw the
    closes) or at least `target - slack` (it accepted), whichever way it is going."""
    end = time.time() + deadline
    while time.time() < end:
        n = fd_count(pid)
        if abs(n - target) <= slack:
            return
        time.sleep(0.05)
    raise RuntimeError(f"proxy holds {fd_count(pid)} descriptors, expected about {target}")


def settle(pid, seconds=1.0, at_least=0.0):
    """RSS once it stops moving (the proxy may free lazily), at most a few seconds, and
    not before `at_least` seconds."""
    time.sleep(at_least)
    last = rss_kib(pid)
    end = time.time() + seconds * 4
    while time.time() < end:
        time.sleep(seconds / 4)
        now = rss_kib(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def warm_up(port):
    """The backend pool and the first buffers, before the baseline is read."""
    for s in open_conns(port, 50, True):
        s.close()
    time.sleep(0.5)


def idle(name, proc, port, args, request):
    pid = proc.p.pid
    warm_up(port)
    base_fds = fd_count(pid)
    before = settle(pid)
    socks = open_conns(port, args.idle, request)
    wait_fds(pid, base_fds + args.idle, slack=50)
    # Idle: the last request was a while ago (ringlb gives back a quiet connection's
    # buffers after 100 ms, and memory on a 1 s tick).
    with_open = settle(pid, at_least=2.5)
    for s in socks:
        s.close()
    wait_fds(pid, base_fds, slack=50)
    # Memory is given back on a periodic tick (ringlb: once a second): wait for two.
    after = settle(pid, at_least=2.5)
    per = (with_open - before) * 1024 / args.idle
    label = "keep-alive" if request else "fresh"
    print(
        f"{name:14} {label:10} {args.idle} open: RSS {before/1024:6.1f} -> {with_open/1024:6.1f} MiB,"
        f" {per:6.0f} B per connection; all closed: {after/1024:6.1f} MiB"
        f" ({(after - before) * 100.0 / before:+.0f} %)",
        flush=True,
    )


def bursts(name, proc, port, args):
    pid = proc.p.pid
    warm_up(port)
    base_fds = fd_count(pid)
    first = settle(pid)
    series = []
    for _ in range(args.bursts):
        socks = open_conns(port, args.burst, True)
        for s in socks:
            s.close()
        wait_fds(pid, base_fds, slack=50)
        series.append(settle(pid, at_least=2.5))
    print(
        f"{name:14} bursts {args.bursts} x {args.burst}: RSS before {first/1024:.1f} MiB, after each: "
        + " ".join(f"{r/1024:.1f}" for r in series)
        + f" MiB; highest {(max(series) - first) * 100.0 / first:+.0f} %,"
        + f" last {(series[-1] - first) * 100.0 / first:+.0f} %",
        flush=True,
    )


def ringlb_conf(tmp, port, backend_port, shards, maxconn):
    path = os.path.join(tmp, "ringlb.toml")
    with open(path, "w") as f:
        f.write(
            # The same connection limit as HAProxy's below: without one, ringlb derives
            # it from the open-file limit (7,984 at 20,000 descriptors and 2 shards),
            # and connections past it wait in the backlog, as in HAProxy.
            f'[runtime]\nshards = {shards}\nmaxconn = {maxconn}\n[frontend.bench]\nbind = "127.0.0.1:{port}"\n'
            f'default_backend = "app"\n[timeout]\nclient = "10m"\nhttp_request = "10m"\nhttp_keep_alive = "10m"\n'
            f'[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:{backend_port}"\n'
        )
    return path


def haproxy_conf(tmp, port, backend_port, shards, maxconn):
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(
            f"global\n    nbthread {shards}\n    maxconn {maxconn}\n"
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 10m\n"
            "    timeout server 10m\n    timeout http-request 10m\n    timeout http-keep-alive 10m\n"
            f"frontend bench\n    bind 127.0.0.1:{port}\n    default_backend app\n"
            f"backend app\n    server s1 127.0.0.1:{backend_port}\n"
        )
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=int, default=8000)
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--bursts", type=int, default=10)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--bin", help="ringlb binary (default: build target/release/ringlb)")
    ap.add_argument("--only", default="ringlb-uring,ringlb-legacy,haproxy")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.idle, args.burst) + 200
    if hard < need:
        sys.exit(f"open files limited to {hard}: need {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass

    # Room for every connection the bench holds at once, for both proxies.
    maxconn = max(9000, args.idle + 500, args.burst + 500)
    only = args.only.split(",")
    binary = B.ringlb_binary(args.bin, build=any(o.startswith("ringlb") for o in only))
    print(f"commit {B.commit()}, {args.shards} shards/threads, binary {binary}", flush=True)
    tmp = tempfile.mkdtemp(prefix="idle-memory-")
    backend_port = B.free_port()
    backend = B.Proc(
        "nginx",
        ["nginx", "-c", B.nginx_conf(tmp, "backend", backend_port, ""), "-p", tmp],
        backend_port,
    )
    try:
        for which in only:
            port = B.free_port()
            env = dict(os.environ)
            if which == "haproxy":
                if not shutil.which("haproxy"):
                    print("haproxy not installed: skipped")
                    continue
                argv = ["haproxy", "-db", "-f", haproxy_conf(tmp, port, backend_port, args.shards, maxconn)]
            else:
                argv = [binary, "-f", ringlb_conf(tmp, port, backend_port, args.shards, maxconn)]
                if which == "ringlb-legacy":
                    env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
                else:
                    env.pop("MONOIO_FORCE_LEGACY_DRIVER", None)
            # A fresh process per scenario: each starts from its own baseline.
            for scenario in (
                lambda p: idle(which, p, port, args, False),
                lambda p: idle(which, p, port, args, True),
                lambda p: bursts(which, p, port, args),
            ):
                proc = B.Proc(which, argv, port, env=env, log=os.path.join(tmp, f"{which}.log"))
                try:
                    scenario(proc)
                finally:
                    proc.stop()
    finally:
        backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
