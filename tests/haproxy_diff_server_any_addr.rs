//! A server without a host (`0.0.0.0:P`, `*:P`, `:P`, or an address made of an
//! environment variable that is not set) is, for HAProxy 2.6, the address the client
//! connected to: HAProxy and ringlb run the same haproxy.cfg with frontends on
//! 127.0.0.1 and 127.0.0.2 and test servers on both addresses at one port, and each
//! request must reach the server on the address its client connected to, kept-alive
//! server connections included. Addresses expand environment variables quoted or not,
//! as HAProxy's `env_expand`; one that expands to nothing is refused on its line.

use crate::common;

use std::net::SocketAddr;

use common::haproxy::{haproxy_check, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::traffic::backend_of;
use common::*;

/// Never set: expands to nothing.
const UNSET: &str = "RINGLB_TEST_NEVER_SET_VARIABLE";

fn config(ports: [u16; 2], b: u16) -> String {
    let [p1, p2] = ports;
    format!(
        r#"defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend any
    bind 127.0.0.1:{p1}
    bind 127.0.0.2:{p1}
    default_backend any

frontend forms
    bind 127.0.0.2:{p2}
    use_backend star if {{ path /star }}
    use_backend colon if {{ path /colon }}
    use_backend env if {{ path /env }}
    default_backend quoted

backend any
    http-reuse always
    server s1 0.0.0.0:{b}

backend star
    server s1 *:{b}

backend colon
    server s1 :{b}

backend env
    server s1 ${{{UNSET}}}:{b}

backend quoted
    server s1 '${{{UNSET}}}:{b}'
"#
    )
}

/// Where each request went: clients on both addresses in turn (a connection each,
/// so that `http-reuse always` offers each the idle server connection the other left),
/// then keep-alive ones, then the forms of the host-less address on 127.0.0.2.
fn walk(any: [SocketAddr; 2], forms: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..4 {
        out.push(backend_of(&http_get(any[0], "/")));
        out.push(backend_of(&http_get(any[1], "/")));
    }
    let mut a = HttpClient::connect(any[0]);
    let mut b = HttpClient::connect(any[1]);
    for _ in 0..2 {
        out.push(backend_of(&a.request(get_request("/"))));
        out.push(backend_of(&b.request(get_request("/"))));
    }
    for path in ["/star", "/colon", "/env", "/quoted"] {
        out.push(format!("{path} {}", backend_of(&http_get(forms, path))));
    }
    out
}

#[test]
fn a_server_without_a_host_is_the_clients_destination_as_in_haproxy() {
    let servers = TestBackend::start_on_one_port(&["b1", "b2"], &["127.0.0.1", "127.0.0.2"]);
    let b = servers[0].addr().port();

    let (r1, r2) = (ReservedPort::new(), ReservedPort::new());
    let hx_ports = [r1.port(), r2.port()];
    drop((r1, r2));
    let hx = HaProxy::start(
        &config(hx_ports, b),
        &[
            SocketAddr::from(([127, 0, 0, 1], hx_ports[0])),
            SocketAddr::from(([127, 0, 0, 2], hx_ports[1])),
        ],
        None,
    );
    let hx_any = [
        SocketAddr::from(([127, 0, 0, 1], hx_ports[0])),
        SocketAddr::from(([127, 0, 0, 2], hx_ports[0])),
    ];
    let hx_seen = walk(hx_any, SocketAddr::from(([127, 0, 0, 2], hx_ports[1])));

    let lb = ringlb_cfg(&config([0, 0], b));
    let mut lb_any = lb.addrs("any");
    lb_any.sort();
    let lb_seen = walk([lb_any[0], lb_any[1]], lb.addr("forms"));
    drop(hx);

    let want: Vec<String> = ["b1", "b2"]
        .repeat(6)
        .iter()
        .map(|s| s.to_string())
        .chain(["/star b2", "/colon b2", "/env b2", "/quoted b2"].map(String::from))
        .collect();
    assert_eq!(hx_seen, want, "HAProxy");
    assert_eq!(lb_seen, want, "ringlb");
}

/// `${HOST}:${PORT} check` with neither set is `:`: accepted by both (checked at
/// 0.0.0.0:0, which fails), where an address with a host and no port needs a check
/// port.
#[test]
fn a_checked_server_without_a_host_needs_no_port() {
    let cfg = |addr: &str| {
        format!("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:80\n    default_backend app\n\nbackend app\n    server s1 {addr} check\n")
    };
    for (addr, ok) in [
        (format!("${{{UNSET}}}:${{{UNSET}}}"), true),
        ("0.0.0.0".to_string(), true),
        ("127.0.0.1".to_string(), false),
    ] {
        let f = write_cfg(&cfg(&addr));
        let hx = haproxy_check(f.path(), &[]).status.success();
        let lb = ringlb_check(f.path(), &[]).status.success();
        assert_eq!((hx, lb), (ok, ok), "{addr}: (HAProxy, ringlb) accepted");
    }
}

/// An address that is nothing but an unset variable is refused by both, on its line.
#[test]
fn an_address_that_expands_to_nothing_is_refused() {
    let text = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nbackend app\n    server s1 ${{{UNSET}}}\n"
    );
    let f = write_cfg(&text);
    let hx = haproxy_check(f.path(), &[]);
    assert!(!hx.status.success(), "HAProxy accepted it");
    let lb = ringlb_check(f.path(), &[]);
    assert!(!lb.status.success(), "ringlb accepted it");
    let err = &lb.stderr;
    assert!(
        err.contains(
            ":8: 'server app/s1': '${RINGLB_TEST_NEVER_SET_VARIABLE}' resolves to an empty address"
        ),
        "{err}"
    );
}
