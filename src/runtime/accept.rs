//! Accept loops, one per listening socket, and each connection's start: room under
//! the connection limits, the PROXY header on `accept-proxy` binds, the TLS handshake
//! on `ssl` binds, then the frontend's protocol (HTTP or TCP) in a task of its own.
//! A TLS listener also stops accepting while the process is at its `maxsslrate`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Duration;

use futures_util::FutureExt;
use monoio::net::{TcpListener, TcpStream};

use super::rescue::ClientFd;
use super::{panic_text, Current};
use crate::config::{BindRef, Mode};
use crate::shard::{Permits, Shard};
use crate::stats::Counters;

/// One listening socket's accept loop, and how to stop it.
pub(super) struct AcceptLoop {
    pub(super) addr: SocketAddr,
    /// The bind it serves; a reload may renumber frontends and binds.
    pub(super) at: Rc<Cell<BindRef>>,
    /// Dropping it ends the loop, which closes the listener.
    pub(super) stop: local_sync::oneshot::Sender<()>,
    pub(super) handle: monoio::task::JoinHandle<()>,
    /// The same socket, outside the runtime: should the runtime die, the next one
    /// accepts from it.
    pub(super) keep: std::net::TcpListener,
}

pub(super) fn start_accept(
    current: &Current,
    at: BindRef,
    listener: std::net::TcpListener,
) -> std::io::Result<AcceptLoop> {
    let addr = listener.local_addr()?;
    // Accepted sockets inherit it: one setsockopt per listener, not per connection.
    socket2::SockRef::from(&listener).set_nodelay(true)?;
    listener_keepalive(current, at, &listener);
    let keep = listener.try_clone()?;
    let listener = TcpListener::from_std(listener)?;
    let (stop, stop_rx) = local_sync::oneshot::channel::<()>();
    let at = Rc::new(Cell::new(at));
    let handle = monoio::spawn(accept_loop(current.clone(), at.clone(), listener, stop_rx));
    Ok(AcceptLoop {
        addr,
        at,
        stop,
        handle,
        keep,
    })
}

/// `option clitcpka` of the bind's frontend, on the listener: accepted sockets inherit
/// it (Linux copies SO_KEEPALIVE and the TCP_KEEP* values), so nothing per connection.
/// A reload applies the new config's to listeners it keeps.
pub(super) fn listener_keepalive(
    current: &Current,
    at: BindRef,
    listener: &impl std::os::fd::AsFd,
) {
    let shard = current.borrow();
    let ka = shard
        .config
        .frontends
        .get(at.frontend)
        .and_then(|f| f.tcpka);
    if let Err(e) =
        crate::config::TcpKeepalive::apply(ka.as_ref(), socket2::SockRef::from(listener))
    {
        tracing::warn!(error = %e, "cannot set TCP keep-alive on a listener");
    }
}

pub(super) async fn accept_loop(
    current: Current,
    at: Rc<Cell<BindRef>>,
    listener: TcpListener,
    mut stop: local_sync::oneshot::Receiver<()>,
) {
    let listening = listener.local_addr().unwrap_or(UNKNOWN_LISTENER);
    loop {
        // `maxsslrate`: a TLS listener waits (its clients in the backlog) until the
        // process's rate of TLS connections allows one more.
        let ssl_rate = tls_rate_limit(&current, at.get());
        if let Some(wait) = ssl_rate.and_then(|limit| crate::tls::gate::SSL_RATE.wait(limit)) {
            monoio::select! {
                _ = &mut stop => break,
                _ = monoio::time::sleep(wait) => continue,
            }
        }
        // A cancelable accept: when stopping, an accept the kernel already completed
        // still hands its connection over instead of losing it with the dropped op.
        let canceller = monoio::io::Canceller::new();
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let accepted = monoio::select! {
            _ = &mut stop => {
                let _canceller = canceller.cancel();
                if let Ok((stream, peer)) = accept.await {
                    let permits = current.borrow().clone().room_now(at.get().frontend);
                    if let Some(permits) = permits {
                        spawn_serve(&current, at.get(), listening, stream, peer, permits);
                    }
                }
                // Refuse new connections now: on io_uring the close of the socket is
                // itself a submission, which may wait for the ring's next entry.
                tracing::debug!(frontend = at.get().frontend, "listener closed");
                break;
            }
            accepted = &mut accept => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(current.borrow().id, &e);
                // Out of fds or memory: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if ssl_rate.is_some() {
            crate::tls::gate::SSL_RATE.add();
        }
        // Room under the process's and the frontend's maxconn. Taken after the accept:
        // each shard has its own backlog (SO_REUSEPORT), and a slot held by one shard
        // waiting for a connection must not strand those queued on another. While it
        // waits, this shard accepts nothing more (the rest stay in its backlog).
        let waiting = current.borrow().clone();
        let frontend = at.get().frontend;
        let permits = match waiting.room_now(frontend) {
            Some(p) => p,
            None => monoio::select! {
                _ = &mut stop => break,
                p = waiting.room(frontend) => p,
            },
        };
        spawn_serve(&current, at.get(), listening, stream, peer, permits);
    }
}

/// The `maxsslrate` a TLS listener obeys (`None`: not TLS, or no limit).
fn tls_rate_limit(current: &Current, at: BindRef) -> Option<u32> {
    let shard = current.borrow();
    let limit = shard.config.runtime.maxsslrate?;
    let bind = shard
        .config
        .frontends
        .get(at.frontend)?
        .binds
        .get(at.bind)?;
    bind.tls.as_ref().map(|_| limit)
}

thread_local! {
    /// This shard's accept failures: when the last one was logged, and how many
    /// happened since.
    static ACCEPT_ERRORS: (Cell<Option<std::time::Instant>>, Cell<u64>) =
        const { (Cell::new(None), Cell::new(0)) };
}

/// Logs a failed accept (out of fds or memory) at most once a second per shard, with
/// the number of failures since the previous line: a shard retries every 10 ms, and a
/// line per attempt would flood the log.
fn accept_failed(shard: usize, e: &std::io::Error) {
    ACCEPT_ERRORS.with(|(last, failures)| {
        let now = std::time::Instant::now();
        failures.set(failures.get() + 1);
        if last
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        last.set(Some(now));
        tracing::warn!(shard, error = %e, failures = failures.replace(0), "accept failed");
    });
}

/// A listener address not known: the wildcard, so each connection asks its own socket.
pub(super) const UNKNOWN_LISTENER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// The task owns the connection from here on: accept never waits for a server. It
/// keeps the config generation it started with.
/// `listening` is the listener's address: the connection's own local address unless
/// the listener is bound to a wildcard address.
pub(super) fn spawn_serve(
    current: &Current,
    at: BindRef,
    listening: SocketAddr,
    stream: TcpStream,
    peer: SocketAddr,
    permits: Permits,
) {
    let shard = current.borrow().clone();
    let conf = &shard.config.frontends[at.frontend];
    let mode = conf.mode;
    let plain = conf
        .binds
        .get(at.bind)
        .is_some_and(|b| !b.accept_proxy && b.tls.is_none() && !b.h2);
    if mode == Mode::Http && plain {
        serve_plain_http(shard, at.frontend, listening, stream, peer, permits);
    } else {
        monoio::spawn(serve(shard, at, mode, listening, stream, peer, permits));
    }
}

/// A plain HTTP connection (no PROXY header, no TLS): its `tcp-request connection`
/// and `session` rules run here (both see the socket's addresses), then its handler
/// sits in its task in place, wrapped by `Caught` and nothing else, so that an idle
/// keep-alive connection costs little more than its `Conn` (see `http::serve`). An
/// `async` wrapper would keep the handler's arguments and the handler itself side by
/// side (what a generator moves into an inner future keeps its own slot), which had
/// made every connection's task 3.5 KiB.
fn serve_plain_http(
    shard: Rc<Shard>,
    frontend: usize,
    listening: SocketAddr,
    stream: TcpStream,
    peer: SocketAddr,
    permits: Permits,
) {
    // TCP_NODELAY comes from the listener (Linux copies it to accepted sockets).
    let mut guard = ConnGuard::new(&shard, frontend, peer, &stream, permits);
    let local = if listening.ip().is_unspecified() {
        stream.local_addr().unwrap_or(listening)
    } else {
        listening
    };
    let mut txn = crate::rules::Txn::default();
    txn.begin_session(shard.config.txn_scope(frontend));
    for session in [false, true] {
        let at_accept = crate::tcp_rules::at_accept;
        let allowed = at_accept(&shard, frontend, &stream, peer, local, &mut txn, session);
        // Counters the connection tracks stop when it ends, however it ends.
        guard.tracked = txn
            .sess_track
            .iter()
            .any(Option::is_some)
            .then(|| Box::new(txn.sess_track));
        if !allowed {
            return;
        }
    }
    let handler = crate::http::serve(shard, frontend, stream, peer, local, Vec::new(), txn);
    monoio::spawn(Caught {
        handler,
        guard: Some(guard),
    });
}

/// A connection's handler, once its prelude is done (boxed: handlers differ in kind
/// and size, and none should size every connection's task).
type Handler<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// What a connection keeps while its handler runs: the handler and the guards that
/// must last as long as it does.
struct Serving<'a> {
    handler: Handler<'a>,
    /// In flight for the whole of an L4 connection (a stop waits for it); an HTTP
    /// connection leaves that to its requests.
    arriving: Option<crate::shard::InflightGuard>,
    /// Counters the connection tracks stop when it ends, however it ends.
    _tracked: crate::tcp_rules::SessionTrack<'a>,
    _tls_open: Option<crate::stats::Busy<'a>>,
}

async fn serve(
    shard: Rc<Shard>,
    at: BindRef,
    mode: Mode,
    listening: SocketAddr,
    stream: TcpStream,
    peer: SocketAddr,
    _permits: Permits,
) {
    // TCP_NODELAY comes from the listener (Linux copies it to accepted sockets).
    let accepted = monoio::time::Instant::now();
    let frontend = at.frontend;
    let _registered = ClientFd::register(&stream, frontend, peer);
    let fe = &shard.stats.frontends[frontend];
    fe.up(&fe.scur, &fe.smax);
    Counters::inc(&fe.stot);
    let now = shard.stats.ms(std::time::Instant::now());
    fe.rate.add(now, 1);
    shard.stats.process.conn_rate.add(now, 1);
    // Rules, PROXY header, TLS handshake: boxed, and freed once done, so that what the
    // connection keeps for its life is its handler's box and a few guards.
    let prelude = Box::pin(async {
        // In flight from the accept until the HTTP side counts its first request: a
        // stop (or an upgrade's soft stop) must not drop a client whose PROXY header,
        // TLS handshake or request is on its way.
        let arriving = shard.begin_request();
        let mut stream = stream;
        let local = if listening.ip().is_unspecified() {
            stream.local_addr().unwrap_or(listening)
        } else {
            listening
        };
        let conf = &shard.config.frontends[frontend];
        let accept_proxy = conf.binds.get(at.bind).is_some_and(|b| b.accept_proxy);
        // `tcp-request connection` rules see the socket's addresses, before any PROXY
        // header; `tcp-request session` rules see the client the header names.
        let mut txn = crate::rules::Txn::default();
        txn.begin_session(shard.config.txn_scope(frontend));
        let allowed =
            crate::tcp_rules::at_accept(&shard, frontend, &stream, peer, local, &mut txn, false);
        // Counters the connection tracks stop when it ends, however it ends.
        let mut tracked = crate::tcp_rules::SessionTrack::new(&shard, txn.sess_track);
        if !allowed {
            return None;
        }
        // Only a PROXY header needs a buffer here; the HTTP side takes its own from the
        // shard's pool, and L4 copies through its own.
        let buf = if accept_proxy {
            Vec::with_capacity(shard.config.limits.max_header_bytes)
        } else {
            Vec::new()
        };
        // On accept-proxy binds the client is whoever the PROXY header names (on a TLS
        // bind the header comes before the ClientHello).
        let (peer, local, buf) = if accept_proxy {
            let deadline = accepted + conf.timeouts.http_request;
            // Boxed: its timer would otherwise grow every connection's task.
            match Box::pin(crate::proxy_protocol::receive(&mut stream, buf, deadline)).await {
                Some((h, rest)) => {
                    let (p, l) = h.addrs.unwrap_or((peer, local));
                    (p, l, rest)
                }
                None => {
                    tracing::debug!(shard = shard.id, %peer, "missing or malformed PROXY header: closed");
                    return None;
                }
            }
        } else {
            (peer, local, buf)
        };
        // On a TLS bind the handshake comes next, within `timeout http-request` (HTTP)
        // or `timeout client` (TCP) counted from the accept; `tcp-request session`
        // rules run after it (they see the TLS facts), as in HAProxy.
        let tls_set = conf
            .binds
            .get(at.bind)
            .filter(|b| b.tls.is_some())
            .map(|_| shard.tls.set(at.frontend, at.bind));
        let Some(set) = tls_set else {
            let allowed =
                crate::tcp_rules::at_accept(&shard, frontend, &stream, peer, local, &mut txn, true);
            tracked.set(txn.sess_track);
            if !allowed {
                return None;
            }
            let h2 = conf.binds.get(at.bind).is_some_and(|b| b.h2);
            let (handler, arriving): (Handler<'_>, _) = match mode {
                Mode::Http if h2 => {
                    // An HTTP/2 connection counts its streams, not itself.
                    drop(arriving);
                    let h2 =
                        crate::h2::serve(shard.clone(), frontend, stream, peer, local, buf, txn);
                    (Box::pin(h2), None)
                }
                Mode::Http => {
                    let serving = Box::pin(crate::http::serve(
                        shard.clone(),
                        frontend,
                        stream,
                        peer,
                        local,
                        buf,
                        txn,
                    ));
                    drop(arriving);
                    let handler = async move {
                        if let Some(h2) = serving.await {
                            Box::pin(crate::h2::serve_preface(h2)).await
                        }
                    };
                    (Box::pin(handler), None)
                }
                Mode::Tcp => {
                    let l4 =
                        crate::l4::serve(shard.clone(), frontend, stream, peer, local, buf, txn);
                    (Box::pin(l4), Some(arriving))
                }
            };
            return Some(Serving {
                handler,
                arriving,
                _tracked: tracked,
                _tls_open: None,
            });
        };
        let set = set?;
        let deadline = accepted
            + match mode {
                Mode::Http => conf.timeouts.http_request,
                Mode::Tcp => conf.timeouts.client,
            };
        let bufs = crate::tls::Acceptor {
            rx: buf,
            tx: Vec::new(),
        };
        let h2 = match mode {
            Mode::Http if conf.binds.get(at.bind).is_some_and(|b| b.h2) => {
                crate::tls::H2Choice::Always
            }
            Mode::Http => crate::tls::H2Choice::ByAlpn,
            Mode::Tcp => crate::tls::H2Choice::Off,
        };
        // Boxed: the handshake's state (rustls' connection, its messages) inline
        // would stay in the task of every connection, long after the handshake.
        let accepted = match Box::pin(crate::tls::accept_h2(
            stream,
            &set,
            deadline,
            bufs,
            Some(&*shard.turns),
            h2,
        ))
        .await
        {
            Ok(a) => a,
            Err(e) => {
                Counters::inc(&shard.stats.frontends[frontend].tls_failed);
                tracing::debug!(shard = shard.id, %peer, error = %e, "TLS handshake failed");
                return None;
            }
        };
        let crate::tls::Accepted {
            stream,
            info,
            facts,
            h2,
        } = accepted;
        Counters::inc(&shard.stats.frontends[frontend].tls_done);
        let tls_open = crate::stats::Busy::new(&shard.stats.frontends[frontend].tls_cur);
        if info.resumed {
            Counters::inc(&shard.stats.frontends[frontend].tls_resumed);
        }
        drop((info, set));
        txn.tls = Some(facts);
        let allowed =
            crate::tcp_rules::at_accept(&shard, frontend, stream.io(), peer, local, &mut txn, true);
        tracked.set(txn.sess_track);
        if !allowed {
            return None;
        }
        let (handler, arriving): (Handler<'_>, _) = match mode {
            Mode::Http if h2 => {
                // An HTTP/2 connection counts its streams, not itself.
                drop(arriving);
                let h2 = crate::h2::serve_tls(shard.clone(), frontend, stream, peer, local, txn);
                (Box::pin(h2), None)
            }
            Mode::Http => {
                let serving = Box::pin(crate::http::serve(
                    shard.clone(),
                    frontend,
                    stream,
                    peer,
                    local,
                    Vec::new(),
                    txn,
                ));
                drop(arriving);
                // The HTTP/2 preface from a client that did not pick `h2` by ALPN:
                // served as HTTP/2 on the same keys, as HAProxy does.
                let handler = async move {
                    if let Some(h2) = serving.await {
                        Box::pin(crate::h2::serve_preface_tls(h2)).await
                    }
                };
                (Box::pin(handler), None)
            }
            Mode::Tcp => {
                let l4 = crate::l4::serve(
                    shard.clone(),
                    frontend,
                    stream,
                    peer,
                    local,
                    Vec::new(),
                    txn,
                );
                (Box::pin(l4), Some(arriving))
            }
        };
        Some(Serving {
            handler,
            arriving,
            _tracked: tracked,
            _tls_open: Some(tls_open),
        })
    });
    let handler = async move {
        let Some(Serving {
            handler,
            arriving,
            _tracked,
            _tls_open,
        }) = prelude.await
        else {
            return;
        };
        handler.await;
        drop(arriving);
    };
    // A bug that panics while serving one connection closes that connection only;
    // its guards (slots, in-flight count) are released as the stack unwinds.
    if let Err(panic) = AssertUnwindSafe(handler).catch_unwind().await {
        let what = panic_text(&*panic);
        tracing::error!(
            shard = shard.id,
            frontend = %shard.config.frontends[frontend].name,
            %peer,
            panic = %what,
            "connection handler panicked; that connection was closed"
        );
        Counters::inc(&shard.stats.frontends[frontend].panics);
    }
    Counters::down(&shard.stats.frontends[frontend].scur);
}

/// What a plain HTTP connection holds besides its handler: its registration (for a
/// dead runtime's orphans), its frontend's session count, its maxconn permits, the
/// counters its `tcp-request` rules track (stopped when it ends). Kept small: every
/// idle connection's task holds one (the client's address is in the registration,
/// the tracked counters boxed when there are any).
struct ConnGuard {
    registered: ClientFd,
    shard: Rc<Shard>,
    frontend: usize,
    _permits: Permits,
    tracked: Option<Box<[Option<crate::rules::Tracked>; 3]>>,
}

impl ConnGuard {
    /// Counts the connection in, as `serve` does.
    fn new(
        shard: &Rc<Shard>,
        frontend: usize,
        peer: SocketAddr,
        stream: &TcpStream,
        permits: Permits,
    ) -> ConnGuard {
        let registered = ClientFd::register(stream, frontend, peer);
        let fe = &shard.stats.frontends[frontend];
        fe.up(&fe.scur, &fe.smax);
        Counters::inc(&fe.stot);
        let now = shard.stats.ms(std::time::Instant::now());
        fe.rate.add(now, 1);
        shard.stats.process.conn_rate.add(now, 1);
        ConnGuard {
            registered,
            shard: shard.clone(),
            frontend,
            _permits: permits,
            tracked: None,
        }
    }
}

impl ConnGuard {
    /// The client's address (for a log line).
    fn peer(&self) -> SocketAddr {
        self.registered.peer().unwrap_or(UNKNOWN_LISTENER)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(tracked) = self.tracked.take() {
            drop(crate::tcp_rules::SessionTrack::new(&self.shard, *tracked));
        }
        Counters::down(&self.shard.stats.frontends[self.frontend].scur);
    }
}

/// A connection's task: polls its handler in place. A bug that panics while serving
/// one connection closes that connection only; its guards (slots, in-flight count)
/// are released when the handler is dropped, with the task.
struct Caught<F> {
    handler: F,
    /// Always `Some` until the handler hands the connection over to HTTP/2.
    guard: Option<ConnGuard>,
}

type Handed = Option<crate::http::H2Preface<TcpStream>>;

impl<F: std::future::Future<Output = Handed>> std::future::Future for Caught<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        // SAFETY: `handler` is pinned with `self` and never moved out of it (nor is
        // `self` given out unpinned); `guard` is never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let handler = unsafe { std::pin::Pin::new_unchecked(&mut this.handler) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(None)) => std::task::Poll::Ready(()),
            Ok(std::task::Poll::Ready(Some(h2))) => {
                // The HTTP/2 preface: the connection (and what counts it) moves to a
                // task of its own, boxed as the other protocols' handlers are.
                let guard = this.guard.take();
                monoio::spawn(async move {
                    // Its setup caught too (`serve_preface` builds the connection's
                    // future at once): a panic there closes this connection alone.
                    let setup = || Box::pin(crate::h2::serve_preface(h2));
                    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(setup)) {
                        Ok(served) => AssertUnwindSafe(served).catch_unwind().await,
                        Err(panic) => Err(panic),
                    };
                    if let Err(panic) = outcome {
                        if let Some(g) = &guard {
                            tracing::error!(
                                shard = g.shard.id,
                                peer = %g.peer(),
                                panic = %panic_text(&*panic),
                                "HTTP/2 connection handler panicked; that connection was closed"
                            );
                            Counters::inc(&g.shard.stats.frontends[g.frontend].panics);
                        }
                    }
                    drop(guard);
                });
                std::task::Poll::Ready(())
            }
            Err(panic) => {
                let Some(g) = &this.guard else {
                    return std::task::Poll::Ready(());
                };
                tracing::error!(
                    shard = g.shard.id,
                    frontend = %g.shard.config.frontends[g.frontend].name,
                    peer = %g.peer(),
                    panic = %panic_text(&*panic),
                    "connection handler panicked; that connection was closed"
                );
                Counters::inc(&g.shard.stats.frontends[g.frontend].panics);
                std::task::Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    /// The per-connection setsockopt was dropped on the strength of this: Linux copies
    /// TCP_NODELAY from a listener to the sockets it accepts.
    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l =
            crate::listen::reuseport_listener("127.0.0.1:0".parse().unwrap(), Default::default())
                .unwrap();
        socket2::SockRef::from(&l).set_nodelay(true).unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(b"x").unwrap();
        l.set_nonblocking(false).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(socket2::SockRef::from(&accepted).nodelay().unwrap());
    }
}
