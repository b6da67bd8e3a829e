"""The targets of the performance issue, evaluated on one compare.py run.

Each target reads medians through `m(scenario, proxy, key)` (None when that pair did
not run or has no valid measurement) and returns a list of verdict strings. A figure a
target needs but the run lacks gives "not run (needs PROXY in SCENARIO)". Ratios are
ratios of medians of the same run.
"""


class Missing(Exception):
    pass


def _fmt(v):
    if v != 0 and abs(v) < 0.01:
        return f"{v:.5f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def at_most(label, value, limit):
    """`value ≤ limit`: met, or missed by how much (absolute and relative to the limit)."""
    if value <= limit:
        return f"{label} {_fmt(value)} ≤ {_fmt(limit)}: **met**"
    return f"{label} {_fmt(value)} > {_fmt(limit)}: **missed** by {_fmt(value - limit)} ({(value / limit - 1) * 100:.0f} %)"


def at_least(label, value, limit):
    if value >= limit:
        return f"{label} {_fmt(value)} ≥ {_fmt(limit)}: **met**"
    return f"{label} {_fmt(value)} < {_fmt(limit)}: **missed** by {_fmt(limit - value)} ({(1 - value / limit) * 100:.0f} %)"


def get(m, s, p, k):
    v = m(s, p, k)
    if v is None:
        raise Missing(f"{p} in {s}")
    return v


def ratio(m, s, a, b, k, s_b=None):
    """m(s, a, k) / m(s_b or s, b, k)."""
    den = get(m, s_b or s, b, k)
    if den == 0:
        raise Missing(f"a non-zero {k} for {b} in {s_b or s}")
    return get(m, s, a, k) / den


def each(*parts):
    """Evaluates each (label-producing) thunk; a missing figure reports itself in place."""
    out = []
    for part in parts:
        try:
            out.append(part())
        except Missing as e:
            out.append(f"not run (needs {e})")
    return out


def ka64(m, rl):
    return each(
        lambda: at_most("CPU/req vs HAProxy", ratio(m, "ka64", rl, "haproxy", "cpu"), 0.60),
        lambda: at_most("CPU/req vs nginx", ratio(m, "ka64", rl, "nginx", "cpu"), 0.65),
        lambda: at_least("req/s vs HAProxy", ratio(m, "ka64", rl, "haproxy", "rps"), 1.4),
        lambda: at_most("p99 vs HAProxy", ratio(m, "ka64", rl, "haproxy", "p99"), 1.0),
    )


def ka256(m, rl):
    def growth(p):
        return f"({p}: {ratio(m, 'ka256', p, p, 'cpu', 'ka16'):.3f})"

    out = each(lambda: at_most("CPU/req 256 vs 16 conns", ratio(m, "ka256", rl, rl, "cpu", "ka16"), 1.10))
    for p in ("haproxy", "nginx"):
        try:
            out.append(growth(p))
        except Missing:
            pass
    return out


def close(m, rl):
    return each(lambda: at_most("CPU/req vs HAProxy", ratio(m, "close", rl, "haproxy", "cpu"), 0.80))


def l4(m, rl):
    rl_tcp = rl.replace("ringlb", "ringlb-tcp")
    return each(lambda: at_most("CPU/req vs HAProxy tcp", ratio(m, "l4", rl_tcp, "haproxy-tcp", "cpu"), 0.70))


def mib(m, rl):
    return each(
        lambda: at_most("CPU/req vs HAProxy", ratio(m, "1m", rl, "haproxy", "cpu"), 0.50),
        lambda: at_most("proxy+backend CPU vs HAProxy's", ratio(m, "1m", rl, "haproxy", "total"), 1.0),
    )


def l4_mib(m, rl):
    rl_tcp = rl.replace("ringlb", "ringlb-tcp")
    return each(lambda: at_most("CPU/req vs HAProxy tcp", ratio(m, "l4-1m", rl_tcp, "haproxy-tcp", "cpu"), 0.50))


def allocations(m, rl):
    return ["not measured by this harness (a counting-allocator test or bench proves it)"]


def reuse(m, rl):
    def one(s):
        others = ", ".join(f"{p} {m(s, p, 'up'):.4f}" for p in ("haproxy", "nginx") if m(s, p, "up") is not None)
        return at_most(f"{s}: new upstream conns/req", get(m, s, rl, "up"), 0.001) + (f" ({others})" if others else "")

    return each(*(lambda s=s: one(s) for s in ("ka16", "ka64", "ka256")))


def drivers(m, rl):
    out = []
    for s in ("ka16", "ka64", "ka256", "close", "64k", "1m", "l4", "l4-1m", "l4close"):
        for uring, legacy in (("ringlb", "ringlb-legacy"), ("ringlb-tcp", "ringlb-tcp-legacy")):
            try:
                cpu = ratio(m, s, uring, legacy, "cpu")
                rps = ratio(m, s, uring, legacy, "rps")
            except Missing:
                continue
            out.append(at_most(f"{s} {uring} io_uring/legacy CPU/req", cpu, 1.0) + f" (req/s ratio {rps:.3f})")
    return out or ["not run (needs --driver both)"]


TARGETS = [
    ("L7 keep-alive, 64 conns", "proxy CPU/request ≤ 0.60 × HAProxy http, ≤ 0.65 × nginx; requests/s ≥ 1.4 × HAProxy http; p99 ≤ HAProxy's", ka64),
    ("L7 keep-alive, 256 conns", "CPU/request at most 10% above the 16-connection figure (HAProxy: +28%, nginx: +65%)", ka256),
    ("new connection per request", "proxy CPU/request ≤ 0.80 × HAProxy http", close),
    ("L4 keep-alive", "proxy CPU/request ≤ 0.70 × HAProxy tcp", l4),
    ("1 MiB responses", "proxy CPU/request ≤ 0.50 × HAProxy http, and proxy + backend CPU no higher than with HAProxy", mib),
    ("L4 1 MiB responses", "proxy CPU/request ≤ 0.50 × HAProxy tcp (issue 20)", l4_mib),
    ("steady keep-alive path", "zero heap allocations per request", allocations),
    ("upstream reuse", "new upstream connections per request ≤ 0.001 in steady keep-alive at 16, 64 and 256 client connections", reuse),
    ("io_uring vs legacy driver", "show both; io_uring must be the faster one (here: lower CPU/request)", drivers),
]


def table(m, ringlb_name):
    lines = ["| scenario | target | verdict |", "| --- | --- | --- |"]
    for name, text, fn in TARGETS:
        lines.append(f"| {name} | {text} | {'<br>'.join(fn(m, ringlb_name))} |")
    return lines
