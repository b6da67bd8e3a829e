//! Differential test of `option abortonclose` against HAProxy 2.6: a client that
//! closes (fully, or only its sending side) while its connection waits in a server
//! queue (`maxconn 1`, the slot held by another client), or while its server is being
//! connected (TCP mode: dropped at once, `CC`, with the option). In TCP mode HAProxy serves
//! it later without the option (the server gets its bytes, a half-closed client its
//! answer) and drops it at once with it (the server never sees it, the client gets a
//! close). In HTTP mode HAProxy 2.6 does not see the close of a client whose request
//! is whole until the response, so the request is served either way; ringlb does the
//! same.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::haproxy::{ringlb_cfg, HaProxy};
use common::raw::RawServer;
use common::tcp::ReservedPort;

/// A server that reads one message (a line, or an HTTP head), notes its tag (the
/// line, or the request's path), answers and closes. `A` is held: over HTTP the
/// answer takes a second, over TCP the connection lasts until A closes. A connection
/// that sends nothing is closed at once.
struct Server {
    raw: RawServer,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let raw = RawServer::start(move |mut s| {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            let done = |g: &[u8]| {
                if g.starts_with(b"GET ") {
                    g.ends_with(b"\r\n\r\n")
                } else {
                    g.ends_with(b"\n")
                }
            };
            while !done(&got) {
                match s.read(&mut byte) {
                    Ok(1) => got.push(byte[0]),
                    _ => return,
                }
            }
            let text = String::from_utf8_lossy(&got).to_string();
            let http = text.starts_with("GET ");
            let tag = if http {
                text.split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .trim_start_matches('/')
                    .to_string()
            } else {
                text.trim().to_string()
            };
            log.lock().unwrap().push(tag.clone());
            if tag == "A" && http {
                std::thread::sleep(Duration::from_secs(1));
            } else if tag == "A" {
                // Held until A leaves (its close passed on by the proxy).
                let _ = s.read_to_end(&mut got);
                return;
            }
            let answer = if http {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string()
            } else {
                format!("got {tag}\n")
            };
            let _ = s.write_all(answer.as_bytes());
            let _ = s.shutdown(Shutdown::Both);
        });
        Server { raw, seen }
    }

    fn saw(&self, tag: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == tag)
            .count()
    }
}

/// One proxy under test with its own servers.
struct Proxy {
    frontends: Vec<SocketAddr>,
    servers: Vec<Server>,
    _held: Vec<ReservedPort>,
    _haproxy: Option<HaProxy>,
    _ringlb: Option<common::RingLb>,
}

const NAMES: [&str; 3] = ["tcp_keep", "tcp_drop", "http_drop"];

fn start(haproxy: bool) -> Proxy {
    let servers: Vec<Server> = (0..3).map(|_| Server::start()).collect();
    let mut held = Vec::new();
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            if haproxy {
                let r = ReservedPort::new();
                let p = r.port();
                held.push(r);
                p
            } else {
                0
            }
        })
        .collect();
    let mut cfg = String::from(
        "global\n    nbthread 1\n    log stdout format raw local0\n\ndefaults\n    log global\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    timeout queue 5s\n",
    );
    for (i, name) in NAMES.iter().enumerate() {
        let (mode, log) = if name.starts_with("tcp") {
            ("tcp", "tcplog")
        } else {
            ("http", "httplog")
        };
        let opt = if name.ends_with("drop") {
            "    option abortonclose\n"
        } else {
            ""
        };
        cfg += &format!(
            "\nfrontend fe_{name}\n    mode {mode}\n    option {log}\n    bind 127.0.0.1:{}\n    default_backend {name}\n\nbackend {name}\n    mode {mode}\n{opt}    server s 127.0.0.1:{} maxconn 1\n",
            ports[i],
            servers[i].raw.addr().port()
        );
    }
    if haproxy {
        let frontends: Vec<SocketAddr> = ports
            .iter()
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let hx = HaProxy::start(&cfg, &frontends, None);
        Proxy {
            frontends,
            servers,
            _held: held,
            _haproxy: Some(hx),
            _ringlb: None,
        }
    } else {
        let lb = ringlb_cfg(&cfg);
        let frontends = NAMES.iter().map(|n| lb.addr(&format!("fe_{n}"))).collect();
        Proxy {
            frontends,
            servers,
            _held: held,
            _haproxy: None,
            _ringlb: Some(lb),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Seen {
    /// What the leaving client got (a half-closed one reads on).
    b_answer: String,
    /// The server got the leaving client's message.
    b_reached_server: usize,
    /// The next client in the queue was answered.
    c_answer: String,
}

fn message(tag: &str, http: bool) -> String {
    if http {
        format!("GET /{tag} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    } else {
        format!("{tag}\n")
    }
}

fn first_line(got: &[u8]) -> String {
    String::from_utf8_lossy(got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A holds the server's only slot (see `Server`), B queues behind it and leaves
/// (`half`: shuts its sending side and reads on), A is answered (HTTP) or leaves
/// (TCP), then C comes.
fn run(p: &Proxy, i: usize, half: bool) -> Seen {
    let http = NAMES[i].starts_with("http");
    let server = &p.servers[i];
    let before = server.saw("B");
    let connect = || {
        let c = TcpStream::connect(p.frontends[i]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };
    let mut a = connect();
    a.write_all(message("A", http).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut b = connect();
    b.write_all(message("B", http).as_bytes()).unwrap();
    // Give the proxy a moment to queue B before it leaves.
    std::thread::sleep(Duration::from_millis(300));
    b.shutdown(if half {
        Shutdown::Write
    } else {
        Shutdown::Both
    })
    .unwrap();
    if http {
        let mut a_got = Vec::new();
        let _ = a.read_to_end(&mut a_got);
        assert!(!a_got.is_empty(), "A was not answered ({})", NAMES[i]);
    }
    drop(a);
    let mut b_got = Vec::new();
    if half {
        let _ = b.read_to_end(&mut b_got);
    }
    drop(b);
    let mut c = connect();
    c.write_all(message("C", http).as_bytes()).unwrap();
    let mut c_got = Vec::new();
    let _ = c.read_to_end(&mut c_got);
    Seen {
        b_answer: first_line(&b_got),
        b_reached_server: server.saw("B") - before,
        c_answer: first_line(&c_got),
    }
}

#[test]
fn a_client_that_leaves_a_server_queue_is_dropped_as_haproxy_drops_it() {
    let hx = start(true);
    let lb = start(false);
    let mut diffs = Vec::new();
    let mut seen = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        for half in [false, true] {
            let (h, l) = (run(&hx, i, half), run(&lb, i, half));
            if h != l {
                diffs.push(format!(
                    "{name} half-close={half}\n  haproxy: {h:?}\n  ringlb:  {l:?}"
                ));
            }
            seen.push((*name, half, l));
        }
    }
    assert!(
        diffs.is_empty(),
        "ringlb differs from HAProxy 2.6:\n{}\n--- haproxy ---\n{}\n--- ringlb ---\n{}",
        diffs.join("\n"),
        hx._haproxy.as_ref().unwrap().output(),
        lb._ringlb.as_ref().unwrap().stdout_lines().join("\n")
    );
    // The two settings differ in TCP mode (the comparison above is not vacuous): kept
    // and served without the option, dropped with it; the queue goes on either way.
    for (name, half, s) in &seen {
        let dropped = *name == "tcp_drop";
        assert_eq!(
            s.b_reached_server,
            usize::from(!dropped),
            "{name} {half} {s:?}"
        );
        assert!(!s.c_answer.is_empty(), "{name} {half} {s:?}");
    }
}

/// A listener whose accept queue is full (it never accepts): a connect to it hangs
/// until the proxy's `timeout connect`. Kept with the connections that fill it.
fn stuck_server() -> (SocketAddr, Vec<socket2::Socket>, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let fill = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
        .collect();
    (addr, vec![l], fill)
}

/// The log line's backend/server, connect time and termination state for the
/// connection from `client`.
fn tcp_line(lines: &str, client: SocketAddr) -> Option<(String, String, String)> {
    let from = client.to_string();
    lines.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 7 && f[0] == from).then(|| {
            let tc = f[4].split('/').nth(1).unwrap_or("").to_string();
            (f[3].to_string(), tc, f[6].to_string())
        })
    })
}

/// Runs a TCP-mode proxy (HAProxy, else ringlb) in front of `server` that never
/// accepts, with `timeout connect` `connect` and `backend` lines; `client` plays one
/// connection and says how it ended. Gives that connection's (backend/server, Tc,
/// term) from the log, and what `client` said.
fn stuck_connect(
    haproxy: bool,
    server: SocketAddr,
    connect: &str,
    backend: &str,
    client: impl Fn(&mut TcpStream) -> String,
) -> ((String, String, String), String) {
    let held = ReservedPort::new();
    let port = if haproxy { held.port() } else { 0 };
    let cfg = format!(
        "global\n    nbthread 1\n    log stdout format raw local0\n\ndefaults\n    log global\n    mode tcp\n    option tcplog\n    timeout connect {connect}\n    timeout client 10s\n    timeout server 10s\n    retries 0\n\nfrontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\nbackend be\n{backend}    server s {server}\n"
    );
    let (hx, lb, addr) = if haproxy {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        (Some(HaProxy::start(&cfg, &[addr], None)), None, addr)
    } else {
        let lb = ringlb_cfg(&cfg);
        let addr = lb.addr("fe");
        (None, Some(lb), addr)
    };
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = c.local_addr().unwrap();
    let end = client(&mut c);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = match (&hx, &lb) {
            (Some(h), _) => h.output(),
            (_, Some(l)) => l.stdout_lines().join("\n"),
            _ => unreachable!(),
        };
        if let Some(line) = tcp_line(&out, me) {
            return (line, end);
        }
        assert!(std::time::Instant::now() < deadline, "no log line:\n{out}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_leaves_while_its_server_is_being_connected_is_dropped_as_haproxy_drops_it() {
    let (server, _l, _fill) = stuck_server();
    // (HAProxy's readiness probe also waits on the connect: it left too.)
    let leave = |c: &mut TcpStream| {
        c.write_all(b"B\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(got.is_empty(), "{got:?}");
        String::new()
    };
    let hx = stuck_connect(true, server, "3s", "    option abortonclose\n", leave).0;
    let lb = stuck_connect(false, server, "3s", "    option abortonclose\n", leave).0;
    assert_eq!(hx, lb, "(backend/server, Tc, term): HAProxy vs ringlb");
    assert_eq!(lb, ("be/s".into(), "-1".into(), "CC".into()));
}

/// Without the option, a client that waits while its server's connect runs out of
/// `timeout connect` is closed with a FIN (what it sent was read), not reset, and the
/// log says `sC` (a connect timeout), not `SC`, as HAProxy does.
#[test]
fn a_connect_that_times_out_is_logged_sc_and_closed_cleanly_as_haproxy() {
    let (server, _l, _fill) = stuck_server();
    let wait = |c: &mut TcpStream| {
        c.write_all(b"B\n").unwrap();
        let mut got = Vec::new();
        match c.read_to_end(&mut got) {
            Ok(0) => "closed".to_string(),
            Ok(n) => format!("{n} bytes"),
            Err(e) => format!("{:?}", e.kind()),
        }
    };
    let hx = stuck_connect(true, server, "1s", "", wait);
    let lb = stuck_connect(false, server, "1s", "", wait);
    assert_eq!(
        hx, lb,
        "((backend/server, Tc, term), client's end): HAProxy vs ringlb"
    );
    assert_eq!(lb.0 .2, "sC");
    assert_eq!(lb.1, "closed");
}
