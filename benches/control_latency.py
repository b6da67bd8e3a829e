#!/usr/bin/env python3
"""Questions: how soon is a health flip in force on every shard, and how often does an
idle shard wake up?

1. ringlb (2 shards) checks one server every millisecond (rise 1, fall 1) while the
   server's health answer flips every 3 ms, for `--duration` seconds: hundreds of
   flips, each sent to both shards. ringlb measures, for every control message, the
   time from its sending (health thread) to its application (shard), and exports the
   quantiles in /metrics (`ringlb_control_apply_seconds`). Printed: messages, p50,
   p99, p99.9 and the maximum.
2. The same process left idle (no traffic, no checks) for 10 s: wake-ups of the shards'
   control loops per second (`ringlb_control_wakeups_total`; each scrape itself wakes
   every shard once).

Usage: python3 benches/control_latency.py [--duration 5] [--binary PATH]
"""

import argparse
import http.server
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b"ok"
        self.send_response(Health.status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def metric(text, series):
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def scrape(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        return r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--binary")
    a = ap.parse_args()
    binary = B.ringlb_binary(a.binary)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sport = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        port, admin = B.free_port(), B.free_port()
        path = os.path.join(tmp, "ringlb.toml")
        with open(path, "w") as f:
            f.write(
                f'[runtime]\nshards = 2\n[admin]\nlisten = "127.0.0.1:{admin}"\n'
                f'[frontend.web]\nbind = "127.0.0.1:{port}"\ndefault_backend = "app"\n'
                f'[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:{sport}"\n'
                f'[backend.app.health]\ntype = "http"\ninterval = "1ms"\nrise = 1\nfall = 1\n'
            )
        p = B.Proc("ringlb", [binary, "-f", path], [port, admin], log=os.path.join(tmp, "err"))
        try:
            start = metric(scrape(admin), "ringlb_control_messages_total{}")
            end = time.time() + a.duration
            while time.time() < end:
                Health.status = 503 if Health.status == 200 else 200
                time.sleep(0.003)
            Health.status = 200
            m = scrape(admin)
            n = metric(m, "ringlb_control_messages_total{}") - start
            q = {k: metric(m, f'ringlb_control_apply_seconds{{quantile="{k}"}}') * 1e3
                 for k in ("0.5", "0.99", "0.999", "1")}
        finally:
            p.stop()
        # Idle: a process without checks or traffic.
        path = os.path.join(tmp, "idle.toml")
        with open(path, "w") as f:
            f.write(
                f'[runtime]\nshards = 2\n[admin]\nlisten = "127.0.0.1:{admin}"\n'
                f'[frontend.web]\nbind = "127.0.0.1:{port}"\ndefault_backend = "app"\n'
                f'[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:{sport}"\ncheck = false\n'
            )
        p = B.Proc("ringlb", [binary, "-f", path], [port, admin], log=os.path.join(tmp, "err"))
        try:
            w0 = metric(scrape(admin), "ringlb_control_wakeups_total{}")
            time.sleep(10)
            w1 = metric(scrape(admin), "ringlb_control_wakeups_total{}")
        finally:
            p.stop()
    server.shutdown()
    print(f"commit {B.commit()}: {n:.0f} control messages applied over {a.duration} s of health flips")
    print(f"  apply latency: p50 {q['0.5']:.3f} ms, p99 {q['0.99']:.3f} ms, "
          f"p99.9 {q['0.999']:.3f} ms, max {q['1']:.3f} ms")
    # The second scrape's snapshot wakes both shards once.
    print(f"  idle: {(w1 - w0 - 2) / 10:.2f} wake-ups per second (2 shards, 10 s, scrapes excluded)")


if __name__ == "__main__":
    main()
