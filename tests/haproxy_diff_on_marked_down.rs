//! Differential test of `on-marked-down shutdown-sessions` and `on-marked-up
//! shutdown-backup-sessions`: HAProxy 2.6 and ringlb run the same haproxy.cfg in tcp
//! mode, each with long-lived sessions open through it to an echo server, and the
//! servers' health endpoints (a separate check port) are stopped or started. A session
//! on a server marked down with `shutdown-sessions` is closed by both; one on a server
//! without it stays open on both; a session on a backup is closed by both when a
//! primary with `shutdown-backup-sessions` comes up.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::haproxy::{cli, render, ringlb_cfg, HaProxy};
use common::tcp::{EchoServer, ReservedPort};
use common::twins::stat_rows;
use socket2::{Domain, Protocol, Socket, Type};

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 500ms
    default-server inter 100ms rise 1 fall 1

listen kill
    bind "${FE_KILL}"
    server s "${ECHO}" check port ${H_DOWN} on-marked-down shutdown-sessions

listen keep
    bind "${FE_KEEP}"
    server s "${ECHO}" check port ${H_DOWN}

listen failback
    bind "${FE_UP}"
    default-server on-marked-up shutdown-backup-sessions
    server primary "${ECHO}" check port ${H_UP}
    server spare "${ECHO}" backup check port ${H_DOWN_LATER}
"#;

/// A bound socket for a health endpoint: refused until `Endpoint::listen`.
fn endpoint() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    // No SO_REUSEADDR: with it, the kernel may hand the same free port to two bound
    // sockets that do not listen yet (then one endpoint listens for both).
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s
}

fn port(s: &Socket) -> u16 {
    s.local_addr().unwrap().as_socket().unwrap().port()
}

/// A listening health endpoint that accepts and closes each check; dropped, it stops
/// listening (checks are refused again).
struct Endpoint {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn listen(s: Socket) -> Endpoint {
        s.listen(64).unwrap();
        s.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match s.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Endpoint {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An echoed session through `fe`.
fn session(who: &str, fe: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(fe).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("{who}: no echo through {fe}: {e}"));
    assert_eq!(&buf, b"hello");
    c
}

/// Whether the proxy closed `c` within `within` (false: it still echoes).
fn closed(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            // Still open: it must still carry bytes.
            c.write_all(b"ping").is_err()
        }
        Err(_) => true,
    }
}

fn status(sock: &Path, px: &str, sv: &str) -> String {
    stat_rows(&cli(sock, "show stat"))
        .into_iter()
        .find(|r| r["pxname"] == px && r["svname"] == sv)
        .map(|r| r["status"].clone())
        .unwrap_or_default()
}

fn wait_status(socks: &[&Path], px: &str, sv: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while socks.iter().any(|s| status(s, px, sv) != want) {
        assert!(
            Instant::now() < deadline,
            "{px}/{sv} not {want}: {:?}",
            socks.iter().map(|s| status(s, px, sv)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sessions_end_with_their_server_as_in_haproxy() {
    let echo = EchoServer::start();
    let (h_down, h_up, h_down_later) = (endpoint(), endpoint(), endpoint());
    let ports = (port(&h_down), port(&h_up), port(&h_down_later));
    let h_down = Endpoint::listen(h_down);
    let h_down_later = Endpoint::listen(h_down_later);
    let dir = tempfile::tempdir().unwrap();
    let fes: Vec<ReservedPort> = (0..3).map(|_| ReservedPort::new()).collect();
    let vars = |sock: &Path, fe: [String; 3]| {
        let [kill, keep, up] = fe;
        vec![
            ("SOCK", sock.display().to_string()),
            ("FE_KILL", kill),
            ("FE_KEEP", keep),
            ("FE_UP", up),
            ("ECHO", echo.addr().to_string()),
            ("H_DOWN", ports.0.to_string()),
            ("H_UP", ports.1.to_string()),
            ("H_DOWN_LATER", ports.2.to_string()),
        ]
    };
    let hx_sock = dir.path().join("hx.sock");
    let lb_sock = dir.path().join("lb.sock");
    let hx_fe: Vec<SocketAddr> = fes.iter().map(|r| r.addr()).collect();
    let hx_cfg = render(
        CONFIG,
        &vars(
            &hx_sock,
            hx_fe
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
        ),
    );
    let zero = || "127.0.0.1:0".to_string();
    let lb_cfg = render(CONFIG, &vars(&lb_sock, [zero(), zero(), zero()]));
    let _hx = HaProxy::start(&hx_cfg, &hx_fe, Some(&hx_sock));
    let lb = ringlb_cfg(&lb_cfg);
    let sides = [
        ("haproxy", hx_fe[0], hx_fe[1], hx_fe[2]),
        (
            "ringlb",
            lb.addr("kill"),
            lb.addr("keep"),
            lb.addr("failback"),
        ),
    ];
    let socks = [hx_sock.as_path(), lb_sock.as_path()];

    // The primary of `failback` has no health endpoint yet: sessions go to the spare.
    wait_status(&socks, "failback", "primary", "DOWN");
    let mut on_spare: Vec<TcpStream> = sides.iter().map(|s| session(s.0, s.3)).collect();
    let mut killed: Vec<TcpStream> = sides.iter().map(|s| session(s.0, s.1)).collect();
    let mut kept: Vec<TcpStream> = sides.iter().map(|s| session(s.0, s.2)).collect();

    // The server of `kill` and `keep` loses its health endpoint.
    drop(h_down);
    wait_status(&socks, "kill", "s", "DOWN");
    wait_status(&socks, "keep", "s", "DOWN");
    for (i, side) in sides.iter().enumerate() {
        assert!(
            closed(&mut killed[i], Duration::from_secs(5)),
            "{}: the session on a server marked down with shutdown-sessions stays open",
            side.0
        );
        assert!(
            !closed(&mut kept[i], Duration::from_millis(300)),
            "{}: the session on a server marked down without shutdown-sessions was closed",
            side.0
        );
    }

    // The primary of `failback` comes up: the spare's session ends.
    let _h_up = Endpoint::listen(h_up);
    wait_status(&socks, "failback", "primary", "UP");
    for (i, side) in sides.iter().enumerate() {
        assert!(
            closed(&mut on_spare[i], Duration::from_secs(5)),
            "{}: a backup's session stays open after a primary with shutdown-backup-sessions came up",
            side.0
        );
    }
    drop(h_down_later);
}
