//! Differential test of `timeout client-fin` and `timeout server-fin` in TCP mode:
//! HAProxy 2.6 and ringlb run the same haproxy.cfg (`timeout client` and `server` long,
//! the `-fin` ones short). A server that half-closes towards a client which never
//! closes: both end the session after `client-fin` (the server reads its end). A client
//! that half-closes towards a server which never closes: both end it after
//! `server-fin` (the client reads its end). Without them, neither ends it early.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;

const CONFIG: &str = r#"global
    nbthread 1

defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
${FIN}

listen half_server
    bind "${FE1}"
    server s "${S1}"

listen half_client
    bind "${FE2}"
    server s "${S2}"
"#;

const FIN: &str = "    timeout client-fin 300ms\n    timeout server-fin 300ms";

/// A server whose every connection that sends a byte: half-closes then, and reports
/// (over the channel) how long until it read the end of the connection. (Readiness
/// probes send nothing: no report.)
fn half_closing_server() -> (SocketAddr, mpsc::Receiver<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut b = [0u8; 64];
                if !matches!(c.read(&mut b), Ok(n) if n > 0) {
                    return;
                }
                let t = Instant::now();
                c.shutdown(Shutdown::Write).unwrap();
                while matches!(c.read(&mut b), Ok(n) if n > 0) {}
                let _ = tx.send(t.elapsed());
            });
        }
    });
    (addr, rx)
}

/// A server that answers `ok` to the first bytes, reads to the end and then holds its
/// connection open, silent.
fn silent_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                if matches!(c.read(&mut b), Ok(n) if n > 0) {
                    let _ = c.write_all(b"ok");
                }
                while matches!(c.read(&mut b), Ok(n) if n > 0) {}
                std::thread::sleep(Duration::from_secs(20));
                drop(c);
            });
        }
    });
    addr
}

/// Connects to `half_server` and never closes: how long until the server saw the
/// session end (`None`: not within `wait`).
fn client_stays(fe: SocketAddr, rx: &mpsc::Receiver<Duration>, wait: Duration) -> Option<Duration> {
    let mut c = TcpStream::connect(fe).unwrap();
    c.write_all(b"m").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    assert_eq!(
        c.read(&mut b).unwrap(),
        0,
        "the server's half-close passed on"
    );
    let got = rx.recv_timeout(wait).ok();
    drop(c);
    // Drain the report of a session the wait did not see end.
    if got.is_none() {
        let _ = rx.recv_timeout(Duration::from_secs(25));
    }
    got
}

/// Connects to `half_client`, sends a byte and half-closes: how long until the client
/// read the end (`None`: not within `wait`).
fn client_half_closes(fe: SocketAddr, wait: Duration) -> Option<Duration> {
    let mut c = TcpStream::connect(fe).unwrap();
    c.write_all(b"x").unwrap();
    // The session is established end to end before the half-close.
    let mut ok = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut ok).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let t = Instant::now();
    c.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 16];
    match c.read(&mut b) {
        Ok(0) => Some(t.elapsed()),
        Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(t.elapsed()),
        _ => None,
    }
}

#[test]
fn half_closed_sides_end_after_their_fin_timeouts_as_in_haproxy() {
    let (s1, rx) = half_closing_server();
    let s2 = silent_server();
    let ports = [ReservedPort::new(), ReservedPort::new()];
    let hx_fe = [ports[0].addr(), ports[1].addr()];
    let vars = |fe: [String; 2], fin: &str| {
        vec![
            ("FIN", fin.to_string()),
            ("FE1", fe[0].clone()),
            ("FE2", fe[1].clone()),
            ("S1", s1.to_string()),
            ("S2", s2.to_string()),
        ]
    };
    let hx = HaProxy::start(
        &render(CONFIG, &vars(hx_fe.map(|a| a.to_string()), FIN)),
        &hx_fe,
        None,
    );
    let zero = || "127.0.0.1:0".to_string();
    let lb = ringlb_cfg(&render(CONFIG, &vars([zero(), zero()], FIN)));
    let lb_fe = [lb.addr("half_server"), lb.addr("half_client")];
    let bound = Duration::from_secs(5);
    for (side, fe) in [("haproxy", hx_fe), ("ringlb", lb_fe)] {
        let ended = client_stays(fe[0], &rx, bound);
        assert!(ended.is_some(), "{side}: client-fin ended the session");
        assert!(
            ended.unwrap() >= Duration::from_millis(250),
            "{side}: {ended:?}"
        );
        let ended = client_half_closes(fe[1], bound);
        assert!(ended.is_some(), "{side}: server-fin ended the session");
        assert!(
            ended.unwrap() >= Duration::from_millis(250),
            "{side}: {ended:?}"
        );
    }
    drop(hx);
    drop(lb);

    // Without them, `timeout client` / `server` (30 s) hold: not over within 2 s.
    let lb = ringlb_cfg(&render(CONFIG, &vars([zero(), zero()], "")));
    let wait = Duration::from_secs(2);
    assert_eq!(client_stays(lb.addr("half_server"), &rx, wait), None);
    assert_eq!(client_half_closes(lb.addr("half_client"), wait), None);
}
