#!/usr/bin/env bash
# User-space instructions per request (callgrind): a cost figure the shared VM's noise
# does not move, for comparing two builds of ringlb's request path. Kernel work is not
# counted (see benches/cost_split.py for that side).
#
# Usage: bash benches/instructions.sh [ka|close] [BINARY]   (default: ka, target/release/ringlb)
# Needs: apt-get install valgrind nginx wrk curl
# Runs the legacy (epoll) driver: valgrind does not follow io_uring's shared rings. The
# request path above the driver is the same code on both.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-ka}
BIN=${2:-$PWD/target/release/ringlb}
[ "${2:-}" ] || cargo build --release --quiet
wrk_extra=()
case $scenario in
    ka) ;;
    close) wrk_extra=(-H "Connection: close") ;;
    *) echo "unknown scenario $scenario (ka or close)" >&2; exit 2 ;;
esac
T=$(mktemp -d)
# Ports and the nginx backend's config from the Python benches' own helpers.
benchlib() { python3 -c "import sys; sys.path.insert(0, 'benches'); import benchlib as B; print($1)"; }
BP=$(benchlib 'B.free_port()'); P=$(benchlib 'B.free_port()')
BACKEND_CONF=$(benchlib "B.nginx_conf('$T', 'backend', $BP, '')")
printf '[runtime]\nshards = 1\n[frontend.bench]\nbind = "127.0.0.1:%s"\ndefault_backend = "app"\n[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:%s"\n' \
    "$P" "$BP" > "$T/ringlb.toml"
nginx -c "$BACKEND_CONF" -p "$T" > /dev/null 2>&1 &
NGINX=$!
MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$T/callgrind.out" "$BIN" -f "$T/ringlb.toml" > /dev/null 2> "$T/valgrind.err" &
RINGLB=$!
trap 'kill $RINGLB $NGINX 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$P/" && break
    sleep 0.2
done
# Warm up (pool filled, buffers grown), then count only the measured run.
wrk -t1 -c16 -d2s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > /dev/null
callgrind_control -i on $RINGLB > /dev/null
wrk -t1 -c16 -d4s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > "$T/wrk.out"
callgrind_control -i off $RINGLB > /dev/null
kill $RINGLB; wait $RINGLB 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' "$T/wrk.out")
total=$(callgrind_annotate "$T"/callgrind.out* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "scenario $scenario: $requests requests, $total instructions, $((total / requests)) per request"
if [ "${KEEP:-}" ]; then cp "$(ls "$T"/callgrind.out* | tail -1)" "$KEEP"; fi
