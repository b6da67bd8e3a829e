//! HTTP/2 to clients: one connection driven by the h2 crate on the shard, each of its
//! streams a local task that the HTTP/1 path serves as one request (`pipe::Pipe`: the
//! stream translated to HTTP/1.1 and back), so servers get HTTP/1.1 through the
//! shard's pool, as HAProxy does by default. Above the stream (plain TCP, or a TLS
//! stream whose client picked `h2` by ALPN: ringlb's record layer as a tokio stream,
//! `tls::PollTls`), below the HTTP path and the dispatch.
//!
//! The h2 crate needs tokio's I/O traits only, not its runtime: the socket goes
//! through monoio's poll-io bridge (`TcpStream::try_into_poll_io`, readiness by an
//! io_uring PollAdd, or epoll on the legacy driver). Its limits are set per
//! connection: `SETTINGS_MAX_CONCURRENT_STREAMS` (`tune.h2.max-concurrent-streams`,
//! 100 as in HAProxy), the header list size (`limits.max_header_bytes`), a bounded
//! send buffer per stream, and the crate's reset-flood limits (pending-accept resets,
//! locally-errored resets, CONTINUATION frames) at their defaults. Under the crate,
//! `flood::Guard` counts PING, SETTINGS, empty DATA, CONTINUATION and reset floods
//! per time window and ends an abusive connection with GOAWAY(ENHANCE_YOUR_CALM).
//!
//! A connection with no stream open holds no buffer: the h2 crate (patched:
//! patches/h2) frees its read, write and HPACK buffers whenever it waits with none
//! open and nothing to write, and takes them again with the next frame. What an idle
//! connection keeps is its TLS state, the crate's connection state and its future.

pub mod drain;
mod flood;
mod pipe;
mod prefixed;
mod request;
mod response;
mod tally;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::FutureExt;
use monoio::time::Instant;

use crate::rules::Txn;
use crate::shard::Shard;

/// Response bytes one stream may have queued beyond what the client's window lets
/// out: the HTTP path waits for the window past it (h2's default is 400 KiB).
const SEND_BUFFER: usize = 64 * 1024;
/// Streams the client opened and reset before ringlb accepted them, at most at once
/// (the Rapid Reset bound; the h2 crate's default).
const PENDING_RESETS: usize = 20;
/// Streams ringlb reset for the client's errors before the connection is closed with
/// `ENHANCE_YOUR_CALM` (MadeYouReset; the h2 crate's default).
const LOCAL_ERROR_RESETS: usize = 1024;

/// What every stream of a connection shares: where it came from, what the
/// connection's rules and handshake settled, and how many streams are open.
struct Session {
    shard: Rc<Shard>,
    frontend: usize,
    peer: SocketAddr,
    local: SocketAddr,
    /// `tcp-request session` tracked counters, copied into each stream.
    sess_track: [Option<crate::rules::Tracked>; 3],
    /// The TLS handshake's facts, copied into each stream.
    tls: Option<Box<crate::rules::TlsFacts>>,
    /// The `sess` variables every stream starts from and leaves its own in.
    vars: RefCell<crate::rules::SharedVars>,
    open: Cell<usize>,
    /// When the last stream ended (the idle timeout runs from there).
    last: Cell<Instant>,
}

/// Serves one HTTP/2 connection: `early` holds bytes already read from the client
/// (after a PROXY header), `txn` what its `tcp-request connection|session` rules did.
///
/// The entry points are plain functions that return the connection's future: an
/// `async fn` keeps its arguments (`txn` alone is 424 bytes) in the future for the
/// connection's whole life.
pub fn serve(
    shard: Rc<Shard>,
    frontend: usize,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    early: Vec<u8>,
    txn: Txn,
) -> impl Future<Output = ()> {
    let served = match stream.try_into_poll_io() {
        Ok(io) => {
            let io = prefixed::Prefixed::new(early, io);
            Some(serve_io(shard, frontend, io, peer, local, txn))
        }
        Err((e, _)) => {
            tracing::debug!(shard = shard.id, %peer, error = %e, "h2: no poll-io");
            None
        }
    };
    run_some(served)
}

/// Serves a plain connection whose first bytes were the HTTP/2 preface (on an HTTP
/// bind without `proto h2`: the HTTP/1 path handed it over, `http::H2Preface`).
pub fn serve_preface(
    h: crate::http::H2Preface<monoio::net::TcpStream>,
) -> impl Future<Output = ()> {
    serve(
        h.shard, h.frontend, h.client, h.peer, h.local, h.early, h.txn,
    )
}

/// Serves a TLS connection whose client picked `h2` by ALPN (or whose bind says
/// `proto h2`): its record layer, and what the handshake left unread (the preface
/// often comes with the client's Finished), as a tokio stream (`tls::PollTls`).
pub fn serve_tls(
    shard: Rc<Shard>,
    frontend: usize,
    stream: crate::tls::ServerTls<monoio::net::TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    txn: Txn,
) -> impl Future<Output = ()> {
    let served =
        poll_tls(&shard, peer, stream).map(|io| serve_io(shard, frontend, io, peer, local, txn));
    run_some(served)
}

/// Serves a TLS connection whose first bytes were the HTTP/2 preface though its
/// client did not pick `h2` by ALPN (HAProxy upgrades such a connection too): the
/// same keys and buffered bytes, the preface the HTTP/1 path read first.
pub fn serve_preface_tls(
    h: crate::http::H2Preface<crate::tls::ServerTls<monoio::net::TcpStream>>,
) -> impl Future<Output = ()> {
    let served = poll_tls(&h.shard, h.peer, h.client).map(|io| {
        let io = prefixed::Prefixed::new(h.early, io);
        serve_io(h.shard, h.frontend, io, h.peer, h.local, h.txn)
    });
    run_some(served)
}

/// The connection's future, if it could start (polled in place: an `async fn` would
/// hold it twice, as its argument and as what it awaits).
fn run_some(served: Option<impl Future<Output = ()>>) -> impl Future<Output = ()> {
    futures_util::future::OptionFuture::from(served).map(drop)
}

fn poll_tls(
    shard: &Shard,
    peer: SocketAddr,
    stream: crate::tls::ServerTls<monoio::net::TcpStream>,
) -> Option<crate::tls::PollTls<monoio::net::tcp::stream_poll::TcpStreamPoll>> {
    let (sock, parts) = stream.into_parts()?;
    match sock.try_into_poll_io() {
        Ok(io) => Some(crate::tls::PollTls::new(io, parts)),
        Err((e, _)) => {
            tracing::debug!(shard = shard.id, %peer, error = %e, "h2: no poll-io");
            None
        }
    }
}

/// Serves one HTTP/2 connection over `io`, a tokio stream (poll-io TCP, or TLS).
///
/// Not an `async fn`: one keeps its arguments for its whole life, so `io` (a TLS
/// stream is over a kilobyte) and `txn` would stay in every idle connection's future
/// beside the connection that took them. Here they move at once into the handshake
/// (boxed: it lives only until the connection is up) and the session.
pub fn serve_io<T>(
    shard: Rc<Shard>,
    frontend: usize,
    io: T,
    peer: SocketAddr,
    local: SocketAddr,
    mut txn: Txn,
) -> impl std::future::Future<Output = ()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Registered from the start: a stop during the handshake still waits for it.
    let registered = drain::Registration::new(&shard);
    let fe = &shard.config.frontends[frontend];
    let deadline = Instant::now() + fe.timeouts.http_request;
    let io = flood::Guard::new(io, shard.clone(), frontend);
    // With its timeout in the box: a monoio timer is 128-byte aligned, and would
    // align (and pad) the connection's future for its whole life.
    let handshake = builder(&shard.config.limits).handshake::<_, Bytes>(io);
    let handshake = Box::pin(monoio::time::timeout_at(deadline, handshake));
    let vars = RefCell::new(txn.take_shared_vars());
    let session = Rc::new(Session {
        shard,
        frontend,
        peer,
        local,
        sess_track: txn.sess_track,
        tls: txn.tls,
        vars,
        open: Cell::new(0),
        last: Cell::new(Instant::now()),
    });
    run(session, registered, handshake)
}

/// The h2 crate's settings for a connection: its limits, and what it announces.
fn builder(limits: &crate::config::Limits) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    // Announced only when not the protocol's default, as HAProxy does.
    if limits.h2_header_table_size != 4096 {
        builder.header_table_size(limits.h2_header_table_size);
    }
    if limits.h2_initial_window_size != 65_535 {
        builder.initial_window_size(limits.h2_initial_window_size);
    }
    // A frame fits the buffer: HAProxy caps the size it announces at `tune.bufsize`.
    let frame = limits.h2_max_frame_size.min(limits.max_header_bytes as u32);
    if frame > 16_384 {
        builder.max_frame_size(frame);
    }
    builder
}

/// The h2 crate's handshake within its timeout, boxed (it lives only until the
/// connection is up).
type Handshake<T> =
    std::pin::Pin<Box<monoio::time::Timeout<h2::server::Handshake<flood::Guard<T>, Bytes>>>>;

/// The connection once `handshake` is done (within its timeout): its streams, GOAWAY on a
/// stop or after the keep-alive timeout.
async fn run<T>(session: Rc<Session>, registered: drain::Registration, handshake: Handshake<T>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (shard, peer) = (&session.shard, session.peer);
    let idle = shard.config.frontends[session.frontend]
        .timeouts
        .http_keep_alive;
    let mut conn = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(shard = shard.id, %peer, error = %e, "h2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    session.last.set(Instant::now());
    let mut closing = false;
    let mut drained = false;
    loop {
        // Quiet (no stream open) for the keep-alive timeout: GOAWAY, then the
        // connection ends once the client saw it.
        let idle_at = session.last.get() + idle;
        let accepted = monoio::select! {
            a = conn.accept() => a,
            // The shard stops: GOAWAY now; open streams finish, then it closes.
            _ = registered.draining(), if !drained => {
                drained = true;
                if !closing {
                    conn.graceful_shutdown();
                    closing = true;
                }
                session.last.set(Instant::now());
                continue;
            }
            // On the shard's shared deadlines: a monoio timer here would be 640
            // bytes of every idle connection.
            _ = crate::http::idle::until(idle_at) => {
                // Stopping, and the client has not let the connection end (it did
                // not answer GOAWAY's PING) within the keep-alive timeout.
                if drained && session.open.get() == 0 {
                    break;
                }
                if !closing && session.open.get() == 0 && session.last.get() + idle <= Instant::now() {
                    conn.graceful_shutdown();
                    closing = true;
                }
                if closing {
                    session.last.set(Instant::now());
                }
                continue;
            }
        };
        match accepted {
            Some(Ok((req, respond))) => {
                session.open.set(session.open.get() + 1);
                let c = &session.shard.stats.frontends[session.frontend];
                crate::stats::Counters::inc(&c.h2_open_streams);
                monoio::spawn(serve_stream(session.clone(), req, respond));
            }
            Some(Err(e)) => {
                tracing::debug!(shard = shard.id, %peer, error = %e, "h2 connection error");
                break;
            }
            None => break,
        }
    }
}

/// One stream: refused at once if HTTP/1.1 cannot carry it, else served by the HTTP
/// path as one request.
async fn serve_stream(
    session: Rc<Session>,
    req: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
) {
    let _open = Open(session.clone());
    let (parts, body) = req.into_parts();
    let mut res = response::Responder::new(respond, parts.method == http::Method::HEAD);
    let mut head = Vec::with_capacity(512);
    let framing = match request::translate(&parts, body.is_end_stream(), &mut head) {
        Ok(f) => f,
        Err(refused) => {
            tracing::debug!(shard = session.shard.id, peer = %session.peer, ?refused, "h2 stream refused");
            res.status_only(refused.status());
            return;
        }
    };
    // A stream after a reload is served by the config in force, as an HTTP/1
    // request after a reload is; a frontend the reload removed takes no more.
    let Some((shard, frontend)) = in_force(&session) else {
        res.refuse();
        return;
    };
    let shard = &shard;
    let mut txn = Txn::default();
    txn.begin_session(shard.config.txn_scope(frontend));
    txn.sess_track = session.sess_track;
    txn.tls = session.tls.clone();
    txn.adopt_shared_vars(&session.vars.borrow());
    // A stream without `:scheme` is CONNECT, refused above.
    txn.h2 = Some(
        parts
            .uri
            .scheme()
            .cloned()
            .unwrap_or(http::uri::Scheme::HTTP),
    );
    let pipe = pipe::Pipe::new(head, framing, body, res, session.clone());
    let served = crate::http::serve(
        shard.clone(),
        frontend,
        pipe,
        session.peer,
        session.local,
        Vec::new(),
        txn,
    );
    // A bug that panics while serving one stream resets that stream only.
    if let Err(panic) = AssertUnwindSafe(served).catch_unwind().await {
        tracing::error!(
            shard = shard.id,
            peer = %session.peer,
            panic = panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(|s| s.as_str()))
                .unwrap_or("?"),
            "h2 stream handler panicked; that stream was reset"
        );
        crate::stats::Counters::inc(&shard.stats.frontends[frontend].panics);
    }
}

/// The shard generation in force and the connection's frontend in it (by name: a
/// reload may renumber frontends); `None` if the reload removed the frontend.
fn in_force(session: &Session) -> Option<(Rc<Shard>, usize)> {
    let Some(newer) = session.shard.newer() else {
        return Some((session.shard.clone(), session.frontend));
    };
    let name = &session.shard.config.frontends[session.frontend].name;
    let at = newer
        .config
        .frontends
        .iter()
        .position(|f| &f.name == name)?;
    Some((newer, at))
}

/// A stream counted open while its task lives.
struct Open(Rc<Session>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.last.set(Instant::now());
        let c = &self.0.shard.stats.frontends[self.0.frontend];
        crate::stats::Counters::down(&c.h2_open_streams);
    }
}
