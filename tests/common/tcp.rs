//! Plain TCP peers: an echo server that passes a half-close on, and a reserved port
//! (an address where nothing listens, or where a child such as HAProxy may listen).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

struct Shared {
    stop: AtomicBool,
    accepts: AtomicUsize,
    conns: Mutex<Vec<TcpStream>>,
}

/// Echoes every byte back; on read EOF it shuts down its write side after echoing
/// everything.
pub struct EchoServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepts: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name("echo-acceptor".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = conn else { continue };
                    sh.accepts.fetch_add(1, Ordering::SeqCst);
                    if let Ok(c) = stream.try_clone() {
                        sh.conns.lock().unwrap().push(c);
                    }
                    let _ = thread::Builder::new()
                        .name("echo-conn".into())
                        .spawn(move || echo(stream));
                }
            })
            .expect("spawn echo acceptor");
        EchoServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn accepts(&self) -> usize {
        self.shared.accepts.load(Ordering::SeqCst)
    }
}

fn echo(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                let _ = s.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A port on 127.0.0.1 that is ours for as long as this value lives, with nothing
/// listening on it: a socket bound there (with SO_REUSEADDR) that never listens.
///
/// - Connecting to it is refused (the kernel answers a SYN to a bound but not listening
///   port with a reset), so it is the address of a dead server.
/// - No other test can take the port meanwhile: `bind(:0)` never hands out a port that
///   a socket holds on the same (or the wildcard) address, and an outgoing connection
///   never picks an explicitly bound port as its source port. (Binding a listener, reading
///   its port and closing it, then using the port, races with both.)
/// - A child process that binds the port itself with SO_REUSEADDR, as HAProxy and
///   redis-server do, can still listen there (Linux lets SO_REUSEADDR sockets share a
///   port while at most one of them listens): that is how a program that cannot bind
///   port 0 and print what it got gets a port without a race. When it exits, the port
///   is refused again, still held, and the child can be started again on it.
pub struct ReservedPort {
    addr: SocketAddr,
    _sock: Socket,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .expect("socket for a reserved port");
        sock.set_reuse_address(true)
            .expect("SO_REUSEADDR on a reserved port");
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind a reserved port");
        let addr = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("local address of a reserved port");
        ReservedPort { addr, _sock: sock }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}
