#!/usr/bin/env bash
# Flamegraphs of ringlb at full load (issue 6): L7 keep-alive, L7 with a new connection
# per request, L4, and L4 with a new connection per request (issue 20). ringlb (1 shard, frame pointers, release) on core 0; the nginx
# backend and wrk on core 1; perf samples ringlb at 999 Hz for 5 s of an 8 s wrk run.
#
# Usage: bash benches/flamegraph.sh [ka|close|l4|l4close ...]   (default: all four)
# Needs: apt-get install linux-perf nginx wrk; cargo install inferno
# Writes: flamegraphs/<scenario>.svg and <scenario>-top.txt (the top self costs)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(ka close l4 l4close)

RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/fp cargo build --release --quiet
BIN=$PWD/target/fp/release/ringlb
source benches/backend.sh
for s in "${scenarios[@]}"; do
    scenario "$s"
    printf '[runtime]\nshards = 1\ncpus = [0]\n[frontend.bench]\nbind = "127.0.0.1:%s"\nmode = "%s"\ndefault_backend = "app"\n[backend.app]\n[[backend.app.server]]\naddr = "127.0.0.1:%s"\n' \
        "$P" "$mode" "$BP" > "$T/ringlb.toml"
    taskset -c 0 "$BIN" -f "$T/ringlb.toml" > "$T/ringlb.out" 2>&1 &
    RINGLB=$!
    for _ in $(seq 50); do grep -q '^ready' "$T/ringlb.out" && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c64 -d8s "${wrk_extra[@]}" "http://127.0.0.1:$P/" > "$T/wrk.out" &
    WRK=$!
    sleep 1.5
    perf record -F 999 -g -p "$RINGLB" -o "$T/perf.data" -- sleep 5 > /dev/null 2>&1
    wait "$WRK"
    kill "$RINGLB"; wait "$RINGLB" 2>/dev/null || true
    perf script -i "$T/perf.data" 2>/dev/null | inferno-collapse-perf > "$T/$s.folded"
    # The top self costs beside the picture, for reading it.
    {
        grep 'Requests/sec' "$T/wrk.out"
        perf report -i "$T/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -5 || true
        perf report -i "$T/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep '%' | head -30 || true
    } > "flamegraphs/$s-top.txt"
    inferno-flamegraph --title "ringlb $s ($(grep -o 'Requests/sec: *[0-9.]*' "$T/wrk.out"))" \
        < "$T/$s.folded" > "flamegraphs/$s.svg"
    echo "flamegraphs/$s.svg: $(grep 'Requests/sec' "$T/wrk.out")"
done
