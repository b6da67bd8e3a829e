#!/usr/bin/env bash
# Question: what do ten typical rules cost per request? User-space instructions per
# keep-alive request (callgrind, the figure the shared VM's noise does not move) for
# the same haproxy.cfg without rules and with ten: three `set-header` with `%[...]`,
# a literal one, an ACL on a map deciding a `deny`, a `del-header`, a `set-var`, a
# `use_backend` on a condition, and an HSTS `http-response set-header` with a
# `del-header Server`. The budget (README) is +15 %.
#
# Usage: bash benches/rules.sh [BINARY]   (default: target/release/ringlb)
#        KEEP=/tmp/cg bash benches/rules.sh   also keeps /tmp/cg-0 and /tmp/cg-1 (callgrind)
# Needs: apt-get install valgrind nginx wrk curl
# Runs the legacy (epoll) driver, as benches/instructions.sh (valgrind does not follow
# io_uring's shared rings); the rules run above the driver, the same on both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$PWD/target/release/ringlb}
[ "${1:-}" ] || cargo build --release --quiet
T=$(mktemp -d)
benchlib() { python3 -c "import sys; sys.path.insert(0, 'benches'); import benchlib as B; print($1)"; }
BP=$(benchlib 'B.free_port()')
BACKEND_CONF=$(benchlib "B.nginx_conf('$T', 'backend', $BP, '')")
nginx -c "$BACKEND_CONF" -p "$T" > /dev/null 2>&1 &
NGINX=$!
RINGLB=
trap 'kill $RINGLB $NGINX 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
printf '127.0.0.1 app\nexample.com app\n' > "$T/hosts.map"

config() { # $1: port, $2: with rules (1) or not (0)
    cat <<EOF
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:$1
EOF
    if [ "$2" = 1 ]; then cat <<EOF
    acl known_host req.hdr(host),field(1,:),lower,map_str($T/hosts.map) -m found
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Request-Host %[req.hdr(host),lower]
    http-request set-header X-Path %[path]
    http-request set-header X-Forwarded-Proto http
    http-request deny if !known_host
    http-request del-header X-Debug
    http-request set-var(txn.host) req.hdr(host)
    use_backend app if { path_beg / }
    http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    http-response del-header Server
EOF
    fi
    cat <<EOF
    default_backend app
backend app
    server s1 127.0.0.1:$BP
EOF
}

measure() { # $1: with rules (1) or not (0); prints instructions per request
    local P
    P=$(benchlib 'B.free_port()')
    config "$P" "$1" > "$T/ringlb-$1.cfg"
    MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$T/callgrind-$1.out" "$BIN" -f "$T/ringlb-$1.cfg" > /dev/null 2> "$T/valgrind-$1.err" &
    RINGLB=$!
    for _ in $(seq 1 150); do
        curl -s -o /dev/null "http://127.0.0.1:$P/" && break
        sleep 0.2
    done
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/")" = 200 ] || { echo "no 200 from ringlb" >&2; exit 1; }
    wrk -t1 -c16 -d2s "http://127.0.0.1:$P/" > /dev/null
    callgrind_control -i on $RINGLB > /dev/null
    wrk -t1 -c16 -d4s "http://127.0.0.1:$P/" > "$T/wrk-$1.out"
    callgrind_control -i off $RINGLB > /dev/null
    kill $RINGLB; wait $RINGLB 2>/dev/null || true
    RINGLB=
    local requests total
    if [ "${KEEP:-}" ]; then cp "$(ls "$T"/callgrind-$1.out* | tail -1)" "$KEEP-$1"; fi
    requests=$(awk '/requests in/ {print $1}' "$T/wrk-$1.out")
    total=$(callgrind_annotate "$T"/callgrind-$1.out* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo $((total / requests))
}

none=$(measure 0)
ten=$(measure 1)
echo "instructions per keep-alive request: no rules $none, ten rules $ten, ratio $(python3 -c "print(f'{$ten / $none:.3f}')")"
echo "commit $(git rev-parse --short HEAD), $(uname -r), legacy driver, 1 shard"
