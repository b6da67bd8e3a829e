#!/usr/bin/env bash
# Syscalls and io_uring submissions per request (issue 20): what each proxy asks of the
# kernel for one request, counted with perf tracepoints over a 2 s wrk run (64
# connections). ringlb (1 shard, io_uring and the legacy driver) and HAProxy
# (nbthread 1) on core 0; the nginx backend and wrk on core 1.
#
# Usage: bash benches/syscalls.sh [ka|close|l4|l4close]   (default: l4close)
#        RINGLB=path/to/ringlb bash benches/syscalls.sh ka   (that binary, no build)
# Needs: apt-get install linux-perf nginx wrk haproxy linux-libc-dev
# Prints, per proxy, each syscall (by name), ring submission (by opcode) and poll the
# kernel armed for a ring operation (by opcode) with its count per request.
set -euo pipefail
cd "$(dirname "$0")/.."
s=${1:-l4close}
if [ -n "${RINGLB:-}" ]; then
    BIN=$RINGLB
else
    cargo build --release --quiet
    BIN=$PWD/target/release/ringlb
fi
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
    perf record -q -e 'io_uring:io_uring_submit_req,io_uring:io_uring_poll_arm,raw_syscalls:sys_enter' -p "$PID" -o "$T/perf.data" 2>/dev/null &
    REC=$!
    sleep 0.3
    taskset -c 1 wrk -t1 -c64 -d2s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > "$T/wrk.out"
    kill -INT "$REC"; wait "$REC" || true
    kill "$PID"; wait "$PID" 2>/dev/null || true
    REQ=$(grep -oP '^\s+\K\d+(?= requests in)' "$T/wrk.out")
    echo "== $proxy, $s: $REQ requests"
    # Per event: a ring submission (its opcode), a poll the kernel armed for an
    # operation that found nothing to do yet (its opcode), or a syscall (its name).
    perf script -i "$T/perf.data" 2>/dev/null |
        python3 -c "
import re, sys, collections
names = {int(n): m for m, n in re.findall(r'#define __NR_(\w+) (\d+)', open('$NAMES').read())}
counts = collections.Counter()
for line in sys.stdin:
    op = re.search(r'opcode (\w+)', line)
    nr = re.search(r'NR (\d+)', line)
    if 'io_uring_poll_arm' in line and op:
        counts['poll    ' + op.group(1)] += 1
    elif 'io_uring_submit_req' in line and op:
        counts['ring    ' + op.group(1)] += 1
    elif nr:
        counts['syscall ' + names.get(int(nr.group(1)), nr.group(1))] += 1
for label, n in sorted(counts.items(), key=lambda kv: -kv[1]):
    if n / $REQ >= 0.01:
        print(f'{n / $REQ:8.3f}  {label}')
"
done
