# Sourced by the shell benches (flamegraph.sh, syscalls.sh): the nginx backend on core
# 1, from the Python benches' own helpers, and the ports. Sets T (a temporary
# directory, removed on exit), BP (the backend's port), P (a free port for the proxy)
# and NGINX (the backend's PID, ended on exit).
T=$(mktemp -d)
benchlib() { python3 -c "import sys; sys.path.insert(0, 'benches'); import benchlib as B; print($1)"; }
BP=$(benchlib 'B.free_port()'); P=$(benchlib 'B.free_port()')
BACKEND_CONF=$(benchlib "B.nginx_conf('$T', 'backend', $BP, '')")
taskset -c 1 nginx -c "$BACKEND_CONF" -p "$T" > /dev/null 2>&1 &
NGINX=$!
trap 'kill $NGINX 2>/dev/null; rm -rf "$T"' EXIT

# scenario NAME: sets mode (http or tcp) and wrk_extra (wrk's extra arguments).
scenario() {
    mode=http; wrk_extra=()
    case $1 in
        ka) ;;
        close) wrk_extra=(-H "Connection: close") ;;
        l4) mode=tcp ;;
        l4close) mode=tcp; wrk_extra=(-H "Connection: close") ;;
        *) echo "unknown scenario $1" >&2; exit 2 ;;
    esac
}
