//! Differential test of `option prefer-last-server`: HAProxy 2.6 and ringlb run the
//! same haproxy.cfg (round robin over two servers) and one keep-alive client sends
//! several requests on one connection. With the option and `http-reuse never`, both
//! send them all to the server that answered the first; without the option, or with it
//! under another `http-reuse` (HAProxy 2.6 then returns the connection to the server's
//! shared idle list and balances the next request), both alternate; with a hash
//! balance, the option changes nothing; once the preferred server is in maintenance,
//! the next request goes to the other one.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;

use common::haproxy::{cli, render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::*;

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend prefer
    bind "${FE1}"
    default_backend sticky

frontend plain
    bind "${FE2}"
    default_backend alternating

frontend pooled
    bind "${FE3}"
    default_backend pooled

backend sticky
    option prefer-last-server
    http-reuse never
    server b1 "${B1}"
    server b2 "${B2}"

backend pooled
    option prefer-last-server
    server b1 "${B1}"
    server b2 "${B2}"

backend alternating
    server b1 "${B1}"
    server b2 "${B2}"
"#;

/// The backends (`backend=NAME` bodies) that answered `n` requests on one connection.
fn sequence(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut c = HttpClient::connect(addr);
    (0..n)
        .map(|_| {
            let r = c.get("/");
            assert_eq!(r.status, 200, "{r:?}");
            r.body_str()
        })
        .collect()
}

fn distinct(v: &[String]) -> usize {
    let mut s = v.to_vec();
    s.sort();
    s.dedup();
    s.len()
}

/// What one side shows: (with the option, without it, after `disable server` of the
/// preferred one on a connection that used it).
fn observe(fe: [SocketAddr; 3], sock: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let with = sequence(fe[0], 6);
    let mut without = sequence(fe[1], 6);
    let pooled = sequence(fe[2], 6);
    assert_eq!(
        distinct(&pooled),
        2,
        "the option without `http-reuse never`: {pooled:?}"
    );
    without.extend(pooled);
    let mut c = HttpClient::connect(fe[0]);
    let first = c.get("/").body_str();
    let name = first.trim_start_matches("backend=").to_string();
    cli(sock, &format!("disable server sticky/{name}"));
    let after = (0..3).map(|_| c.get("/").body_str()).collect::<Vec<_>>();
    cli(sock, &format!("enable server sticky/{name}"));
    let mut moved = vec![first];
    moved.extend(after);
    (with, without, moved)
}

#[test]
fn prefer_last_server_keeps_a_connection_on_its_server_as_haproxy() {
    let b1 = TestBackend::start("b1");
    let b2 = TestBackend::start("b2");
    let dir = tempfile::tempdir().unwrap();
    let hx_sock = dir.path().join("hx.sock");
    let lb_sock = dir.path().join("lb.sock");
    let vars = |sock: &Path, fe: [String; 3]| {
        vec![
            ("SOCK", sock.display().to_string()),
            ("FE1", fe[0].clone()),
            ("FE2", fe[1].clone()),
            ("FE3", fe[2].clone()),
            ("B1", b1.addr().to_string()),
            ("B2", b2.addr().to_string()),
        ]
    };
    let ports = [
        ReservedPort::new(),
        ReservedPort::new(),
        ReservedPort::new(),
    ];
    let hx_fe = [ports[0].addr(), ports[1].addr(), ports[2].addr()];
    let hx = HaProxy::start(
        &render(CONFIG, &vars(&hx_sock, hx_fe.map(|a| a.to_string()))),
        &hx_fe,
        Some(&hx_sock),
    );
    let zero = || "127.0.0.1:0".to_string();
    let lb = ringlb_cfg(&render(CONFIG, &vars(&lb_sock, [zero(), zero(), zero()])));
    let lb_fe = [lb.addr("prefer"), lb.addr("plain"), lb.addr("pooled")];

    for (side, fe, sock) in [("haproxy", hx_fe, &hx_sock), ("ringlb", lb_fe, &lb_sock)] {
        let (with, without, moved) = observe(fe, sock);
        assert_eq!(
            distinct(&with),
            1,
            "{side}: one server with the option: {with:?}"
        );
        assert_eq!(
            distinct(&without),
            2,
            "{side}: alternating without it: {without:?}"
        );
        for w in without[..6].windows(2) {
            assert_ne!(w[0], w[1], "{side}: round robin alternates: {without:?}");
        }
        assert!(
            moved[1..].iter().all(|m| m != &moved[0]),
            "{side}: a server in maintenance is not preferred: {moved:?}"
        );
        assert_eq!(
            distinct(&moved[1..]),
            1,
            "{side}: then the new one is: {moved:?}"
        );
    }
    drop(hx);
}

#[test]
fn prefer_last_server_leaves_hashing_alone_and_is_warned_in_a_frontend() {
    let b1 = TestBackend::start("b1");
    let b2 = TestBackend::start("b2");
    // `balance url_param k`: each request goes where its key hashes, option or not.
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\nfrontend fe\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    option prefer-last-server\n    http-reuse never\n    balance url_param k\n    server b1 {}\n    server b2 {}\n",
        b1.addr(),
        b2.addr()
    ));
    let alone = |k: usize| {
        HttpClient::connect(lb.addr("fe"))
            .get(&format!("/?k={k}"))
            .body_str()
    };
    let placed: Vec<String> = (0..8).map(alone).collect();
    assert_eq!(distinct(&placed), 2, "keys on both servers: {placed:?}");
    let mut c = HttpClient::connect(lb.addr("fe"));
    for (k, want) in placed.iter().enumerate() {
        assert_eq!(
            &c.get(&format!("/?k={k}")).body_str(),
            want,
            "key {k} on one connection"
        );
    }
    let cfg = common::haproxy::write_cfg(
        "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:0\n    option prefer-last-server\n",
    );
    let out = check_config_file(cfg.path().to_str().unwrap());
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains(":5: 'prefer-last-server' ignored because frontend"),
        "{out:?}"
    );
}
