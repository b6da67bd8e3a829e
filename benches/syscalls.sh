#!/usr/bin/env bash
# Syscalls and io_uring submissions per request (issue 20): what each proxy asks of the
# kernel for one request, counted with perf tracepoints over a 2 s wrk run (64
# connections). ringlb (1 shard, io_uring and the legacy driver) and HAProxy
# (nbthread 1) on core 0; the nginx backend and wrk on core 1.
#
# Usage: bash benches/syscalls.sh [ka|close|l4|l4close]   (default: l4close)
# Needs: apt-get install linux-perf nginx wrk haproxy linux-libc-dev
# Prints, per proxy, each syscall (by name) and ring opcode with its count per request.
set -euo pipefail
cd "$(dirname "$0")/.."
s=${1:-l4close}
cargo build --release --quiet
BIN=$PWD/target/release/ringlb
source benches/backend.sh
scenario "$s"
printf 'global\n    nbthread 1\n    maxconn 4000\ndefaults\n    mode %s\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\nfrontend bench\n    bind 127.0.0.1:%s\n    default_backend app\nbackend app\n    server s1 127.0.0.1:%s\n' \
    "$mode" "$P" "$BP" > "$T/haproxy.cfg"
# Syscall numbers to names, from the kernel's header.
NAMES=/usr/include/x86_64-linux-gnu/asm/unistd_64.h
for proxy in ringlb ringlb-legacy haproxy; do
    case $proxy in
        ringlb) taskset -c 0 "$BIN" -f "$T/haproxy.cfg" > "$T/out" 2>&1 & ;;
        ringlb-legacy) MONOIO_FORCE_LEGACY_DRIVER=1 taskset -c 0 "$BIN" -f "$T/haproxy.cfg" > "$T/out" 2>&1 & ;;
        haproxy) taskset -c 0 haproxy -f "$T/haproxy.cfg" > "$T/out" 2>&1 & ;;
    esac
    PID=$!
    sleep 1
    taskset -c 1 wrk -t1 -c64 -d1s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > /dev/null
    perf record -q -e 'io_uring:io_uring_submit_req,raw_syscalls:sys_enter' -p "$PID" -o "$T/perf.data" 2>/dev/null &
    REC=$!
    sleep 0.3
    taskset -c 1 wrk -t1 -c64 -d2s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > "$T/wrk.out"
    kill -INT "$REC"; wait "$REC" || true
    kill "$PID"; wait "$PID" 2>/dev/null || true
    REQ=$(grep -oP '^\s+\K\d+(?= requests in)' "$T/wrk.out")
    echo "== $proxy, $s: $REQ requests"
    perf script -i "$T/perf.data" 2>/dev/null | grep -oP 'opcode \K\S+|NR \K\d+' | tr -d , | sort | uniq -c |
        python3 -c "
import re, sys
names = {int(n): m for m, n in re.findall(r'#define __NR_(\w+) (\d+)', open('$NAMES').read())}
rows = []
for line in sys.stdin:
    count, what = line.split()
    label = 'syscall ' + names.get(int(what), what) if what.isdigit() else 'ring    ' + what
    rows.append((int(count) / $REQ, label))
for per, label in sorted(rows, reverse=True):
    if per >= 0.01:
        print(f'{per:8.3f}  {label}')
"
done
