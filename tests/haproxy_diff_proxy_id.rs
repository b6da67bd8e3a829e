//! Differential test of proxy `id N` and server `id N`: HAProxy 2.6 and ringlb run the
//! same haproxy.cfg, where some proxies and servers have ids and others are numbered
//! around them, and give the same `iid` and `sid` in `show stat` and the same
//! `fe_id`/`be_id`/`srv_id` to the rules. Also: the errors HAProxy gives for a
//! duplicate id, an id in `defaults` and an id that is no positive number.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use common::haproxy::{cli, haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::twins::stat_rows;
use common::*;

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend fe
    bind "${FE}"
    http-response set-header x-ids "%[fe_id]/%[be_id]/%[srv_id]"
    default_backend be

backend be
    server s1 "${B}"
    server s2 "${B}" id 5
    server s3 "${B}"

backend be2
    id 3
    server a "${B}" id 2
    server b "${B}"

listen ls
    bind "${LS}"
    http-response set-header x-ids "%[fe_id]/%[be_id]/%[srv_id]"
    server x "${B}" id 7

frontend fe9
    id 6
    bind "${FE9}"
    http-response set-header x-ids "%[fe_id]/%[be_id]/%[srv_id]"
    default_backend be2
"#;

/// `(pxname, svname, iid, sid)` of every `show stat` row.
fn ids(sock: &Path) -> BTreeSet<(String, String, String, String)> {
    stat_rows(&cli(sock, "show stat"))
        .into_iter()
        .map(|r| {
            (
                r["pxname"].clone(),
                r["svname"].clone(),
                r["iid"].clone(),
                r["sid"].clone(),
            )
        })
        .collect()
}

/// The `x-ids` headers of four requests to `addr` (each on its own connection).
fn fetched(addr: SocketAddr) -> BTreeSet<String> {
    (0..4)
        .map(|_| {
            let r = HttpClient::connect(addr).get("/");
            assert_eq!(r.status, 200, "{r:?}");
            r.header("x-ids").expect("x-ids").to_string()
        })
        .collect()
}

#[test]
fn proxy_and_server_ids_number_as_haproxys() {
    let backend = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let hx_sock = dir.path().join("hx.sock");
    let lb_sock = dir.path().join("lb.sock");
    let ports: Vec<ReservedPort> = (0..3).map(|_| ReservedPort::new()).collect();
    let vars = |sock: &Path, p: [String; 3]| {
        vec![
            ("SOCK", sock.display().to_string()),
            ("B", backend.addr().to_string()),
            ("FE", p[0].clone()),
            ("LS", p[1].clone()),
            ("FE9", p[2].clone()),
        ]
    };
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| p.addr()).collect();
    let named: [String; 3] = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let hx_cfg = render(CONFIG, &vars(&hx_sock, named));
    let hx = HaProxy::start(&hx_cfg, &addrs, Some(&hx_sock));
    drop(ports);
    let zero = || "127.0.0.1:0".to_string();
    let lb = ringlb_cfg(&render(CONFIG, &vars(&lb_sock, [zero(), zero(), zero()])));

    let theirs = ids(&hx_sock);
    let ours = ids(&lb_sock);
    assert_eq!(ours, theirs, "iid and sid of every row ({})", hx.output());
    // Numbered around the explicit ones: fe 2 (after the CLI proxy), be 4 (3 is be2's),
    // ls 7 (6 is fe9's); s3 is 3 (s2 took a number even with its own id).
    assert!(theirs.contains(&("be".into(), "s3".into(), "4".into(), "3".into())));
    assert!(theirs.contains(&("ls".into(), "FRONTEND".into(), "7".into(), "0".into())));

    for (name, i) in [("fe", 0), ("ls", 1), ("fe9", 2)] {
        assert_eq!(
            fetched(lb.addr(name)),
            fetched(addrs[i]),
            "fe_id/be_id/srv_id via {name}"
        );
    }
}

#[test]
fn bad_proxy_ids_are_refused_on_their_line_as_haproxy_refuses_them() {
    let base = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n";
    for (text, line, says) in [
        (
            format!("{base}    id 5\nfrontend fe\n    bind 127.0.0.1:0\n"),
            6,
            "'id' not allowed in 'defaults' section",
        ),
        (
            format!("{base}frontend fe\n    bind 127.0.0.1:0\n    id 0\n"),
            8,
            "custom id has to be > 0",
        ),
        (
            format!("{base}frontend fe\n    bind 127.0.0.1:0\n    id x\n"),
            8,
            "custom id has to be > 0",
        ),
        (
            format!("{base}frontend fe\n    id 4\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    id 4\n    server s 127.0.0.1:1\n"),
            11,
            "backend be reuses same custom id as frontend fe",
        ),
    ] {
        let cfg = write_cfg(&text);
        let ours = ringlb_check(cfg.path(), &[]);
        assert_eq!(ours.code(), Some(1), "{text}\n{ours:?}");
        assert!(ours.stderr.contains(&format!(":{line}: {says}")), "{text}\n{ours:?}");
        let theirs = haproxy_check(cfg.path(), &[]);
        assert_eq!(theirs.code(), Some(1), "HAProxy: {text}\n{theirs:?}");
        assert!(theirs.stderr.contains(says), "HAProxy: {text}\n{theirs:?}");
    }
}
