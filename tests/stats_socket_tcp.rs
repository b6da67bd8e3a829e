//! `stats socket` on TCP addresses (`ipv4@127.0.0.1:0 level admin`, `*:PORT`), beside
//! unix ones (several lines): the same runtime API answers a TCP client (`show info`, `show stat`,
//! `disable server` / `enable server` in force for the traffic), each TCP socket's
//! address is announced (`listening stats addr=IP:PORT`), and a TCP socket without
//! `level admin` is refused with its line (ringlb's API has no lower levels).

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::haproxy::{cli, ringlb_cfg, ringlb_check, write_cfg};
use common::{HttpClient, TestBackend};

/// One command over TCP, the whole answer (the API closes after it).
fn tcp_cli(addr: SocketAddr, line: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn status(fe: SocketAddr) -> u16 {
    HttpClient::connect(fe)
        .request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .status
}

#[test]
fn the_runtime_api_answers_on_tcp_stats_sockets() {
    let s1 = TestBackend::start("s1");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let sock2 = dir.path().join("second.sock");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n    stats socket {} mode 600 level admin\n    stats socket {}\n    stats socket ipv4@127.0.0.1:0 level admin\n    stats socket 127.0.0.1:0 level admin expose-fd listeners\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {}\n",
        sock.display(),
        sock2.display(),
        s1.addr()
    ));
    let stats: Vec<SocketAddr> = lb
        .stdout_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("listening stats addr="))
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(stats.len(), 2, "{:?}", lb.stdout_lines());
    assert!(stats.iter().all(|a| a.port() != 0));
    let fe = lb.addr("web");
    // Several unix sockets, each the same API.
    assert_eq!(
        cli(&sock2, "show servers state app").lines().count(),
        cli(&sock, "show servers state app").lines().count()
    );
    for &tcp in &stats {
        assert!(tcp_cli(tcp, "show info").contains("Name: "));
        let stat = tcp_cli(tcp, "show stat");
        assert!(stat.lines().any(|l| l.starts_with("app,s1,")), "{stat}");
        // The unix and TCP sockets are the same API.
        assert_eq!(
            tcp_cli(tcp, "show servers state app").lines().count(),
            cli(&sock, "show servers state app").lines().count()
        );
        assert_eq!(status(fe), 200);
        tcp_cli(tcp, "disable server app/s1");
        assert_eq!(status(fe), 503);
        tcp_cli(tcp, "enable server app/s1");
        assert_eq!(status(fe), 200);
    }
}

#[test]
fn tcp_stats_sockets_need_level_admin() {
    for (line, ok) in [
        ("stats socket 127.0.0.1:9999", false),
        ("stats socket *:1999 level operator", false),
        ("stats socket abns@x level admin", false),
        ("stats socket *:1999 level admin", true),
        ("stats socket ipv4@127.0.0.1:9999 level admin", true),
        ("stats socket ipv6@:::9999 level admin", true),
    ] {
        let text = format!(
            "global\n    {line}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend f\n    bind 127.0.0.1:0\n    default_backend b\nbackend b\n    server s1 127.0.0.1:80\n"
        );
        let cfg = write_cfg(&text);
        let out = ringlb_check(cfg.path(), &[]);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.status.success(), ok, "{line}: {said}");
        if !ok {
            assert!(said.contains(":2:"), "{line}: no line 2 in {said}");
        }
    }
}
