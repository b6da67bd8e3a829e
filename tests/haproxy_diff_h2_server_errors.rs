//! Differential test of a `proto h2` server's protocol errors in `show stat`: Debian's
//! HAProxy 2.6 and ringlb run the same haproxy.cfg, each in front of its own Python h2
//! server (tests/fixtures/h2/seen_server.py) that answers one request with a malformed
//! header block (a stream error: the proxy resets the stream with PROTOCOL_ERROR) and
//! another with a DATA frame on stream 0 (a connection error: GOAWAY(PROTOCOL_ERROR)).
//! The clients' statuses and the backend's error columns (retries, protocol errors
//! detected, RST_STREAM and GOAWAY sent on errors) must be the same.

use crate::common;

use std::time::Duration;

use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::seen::SeenServer;
use common::tcp::ReservedPort;
use common::twins::stat_rows;
use common::{cli, http_get, wait_for};

const CFG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind "127.0.0.1:${H1}"
    default_backend be

backend be
    server s1 "${SRV}" proto h2
"#;

const COLUMNS: [&str; 7] = [
    // An invalid response is not retried. (HAProxy 2.6 counts it twice in `eresp`.)
    "wretr",
    "h2_detected_conn_protocol_errors",
    "h2_detected_strm_protocol_errors",
    "h2_rst_stream_resp",
    "h2_goaway_resp",
    "h2_rst_stream_rcvd",
    "h2_goaway_rcvd",
];

/// The backend's error columns.
fn errors(sock: &std::path::Path) -> Vec<(String, String)> {
    let rows = stat_rows(&cli(sock, "show stat"));
    let be = rows
        .iter()
        .find(|r| r["pxname"] == "be" && r["svname"] == "BACKEND")
        .expect("the backend's row");
    COLUMNS
        .iter()
        .map(|c| (c.to_string(), be[*c].clone()))
        .collect()
}

#[test]
fn proto_h2_server_errors_are_counted_as_by_haproxy() {
    let [Some(hx_srv), Some(lb_srv)] = [SeenServer::start(None), SeenServer::start(None)] else {
        eprintln!("python3 with the h2 package missing; scripts/test-all installs it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hx_sock, lb_sock) = (dir.path().join("hx.sock"), dir.path().join("lb.sock"));
    let port = ReservedPort::new();
    let hx_text = render(
        CFG,
        &[
            ("SOCK", hx_sock.display().to_string()),
            ("H1", port.port().to_string()),
            ("SRV", hx_srv.addr.to_string()),
        ],
    );
    let lb_text = render(
        CFG,
        &[
            ("SOCK", lb_sock.display().to_string()),
            ("H1", "0".into()),
            ("SRV", lb_srv.addr.to_string()),
        ],
    );
    let _haproxy = HaProxy::start(&hx_text, &[port.addr()], Some(&hx_sock));
    let ringlb = ringlb_cfg(&lb_text);
    let sides = [
        (port.addr(), &hx_sock, &hx_srv),
        (ringlb.addrs("web")[0], &lb_sock, &lb_srv),
    ];
    let [a, b] = sides.map(|(addr, sock, srv)| {
        let statuses: Vec<u16> = ["/ok", "/bad-header", "/bad-conn"]
            .iter()
            .map(|p| http_get(addr, p).status)
            .collect();
        // The connection error ended the server's connection.
        wait_for("the GOAWAY at the server", Duration::from_secs(10), || {
            srv.events().iter().any(|e| e.starts_with("goaway"))
        });
        (statuses, errors(sock), srv.events())
    });
    eprintln!("haproxy: {a:?}\nringlb: {b:?}");
    assert_eq!(a.0, [200, 502, 502], "HAProxy's answers");
    assert_eq!((a.0, a.1), (b.0, b.1), "haproxy, then ringlb");
}
