//! `proto h2` servers: their requests are streams of one multiplexed HTTP/2 connection
//! per server per shard (the h2 crate's client over monoio's poll-io bridge, cleartext
//! with prior knowledge or TLS through tokio-rustls, `alpn h2`), opened on the first
//! request and again when it dies or the server sends GOAWAY. As HAProxy 2.6 does, a
//! connection whose streams reach the server's `SETTINGS_MAX_CONCURRENT_STREAMS` takes
//! no more: the next request opens another connection.
//!
//! Each stream holds the request's slot on the server (its `maxconn` counts streams,
//! as HAProxy's does); a stream is never pooled, its connection stays open for the
//! next ones. A connection task drives each connection (the h2 crate's `Connection`).
//!
//! A connection without a stream for the server's idle time (`pool-purge-delay`,
//! else `pool.idle_timeout`, as its idle HTTP/1 connections) is let go (`sweep`), and
//! all are let go when the shard stops or a reload retires them (`release`): the
//! h2 crate ends a connection nobody holds once its last stream ended, with
//! GOAWAY(NO_ERROR), so the streams in flight finish first.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use monoio::net::TcpStream;

use crate::h2map::frames::{FrameTally, Tallied};
use crate::h2map::upstream::Shared;
use crate::h2map::H2Upstream;
use crate::tls::{MaybeTls, ServerStream};

/// The stream's and the connection's initial receive windows: response bytes the
/// server may send ahead of the HTTP path's reads (h2's 64 KiB default would stall a
/// large response on window updates). Bytes are given back as the HTTP path reads
/// them, so a slow client still holds the server back.
const WINDOW: u32 = 1 << 20;

/// A server's HTTP/2 connections on one shard.
pub struct H2Conns {
    conns: RefCell<Vec<Live>>,
    /// One connection opens at a time: requests that come meanwhile wait for it and
    /// share it, rather than each opening its own.
    opening: local_sync::semaphore::Semaphore,
    /// `release` was called.
    released: Cell<bool>,
    /// Its connections' frame and error counters (shared with the generation that adopts
    /// them).
    tally: RefCell<Rc<FrameTally>>,
}

struct Live {
    conn: SendRequest<Bytes>,
    shared: Rc<Shared>,
    /// `shared.started` at the sweep's last look, and since when it has had no
    /// stream (unknown until a sweep finds it idle).
    seen: Cell<(u64, Option<Instant>)>,
}

impl Default for H2Conns {
    fn default() -> Self {
        H2Conns {
            conns: RefCell::default(),
            opening: local_sync::semaphore::Semaphore::new(1),
            released: Cell::new(false),
            tally: RefCell::default(),
        }
    }
}

impl H2Conns {
    /// A stream on a live connection that has room for one more, if there is one.
    pub fn stream(&self) -> Option<ServerStream> {
        let mut conns = self.conns.borrow_mut();
        conns.retain(|c| !c.shared.dead.get());
        let c = conns.iter().find(|c| {
            let max = c.conn.current_max_send_streams();
            c.shared.active.get() < max
        })?;
        Some(MaybeTls::H2(Box::new(H2Upstream::new(
            c.conn.clone(),
            c.shared.clone(),
        ))))
    }

    /// Waits while another request opens a connection (then `stream` may find room
    /// on it); the permit held lets this one open the next.
    pub async fn turn(&self) -> Option<local_sync::semaphore::SemaphorePermit<'_>> {
        self.opening.acquire().await.ok()
    }

    /// The HTTP/2 handshake over a new connection (`io`: a poll-io socket, or TLS over
    /// one); the connection is kept for the streams to come and its first is returned.
    /// `open` counts it while its task runs.
    pub async fn open<T>(&self, io: T, open: Rc<Cell<usize>>) -> std::io::Result<ServerStream>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(WINDOW)
            .initial_connection_window_size(WINDOW)
            .enable_push(false);
        let io = Tallied::new(io, self.tally.borrow().clone());
        let (conn, driver) = builder
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionReset, e))?;
        let shared = Rc::new(Shared::default());
        let done = shared.clone();
        open.set(open.get() + 1);
        monoio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "HTTP/2 server connection ended");
            }
            done.dead.set(true);
            open.set(open.get() - 1);
        });
        let stream = H2Upstream::new(conn.clone(), shared.clone());
        // Released connections take no more streams: this one closes after its own.
        if !self.released.get() {
            let seen = Cell::new((shared.started.get(), None));
            self.conns.borrow_mut().push(Live { conn, shared, seen });
        }
        Ok(MaybeTls::H2(Box::new(stream)))
    }

    /// Lets go of the connections that have had no stream for `idle` (`now`: the
    /// sweep's time, once a second) and of dead ones; says how many are left.
    pub fn sweep(&self, now: Instant, idle: Duration) -> usize {
        let mut conns = self.conns.borrow_mut();
        conns.retain(|c| {
            if c.shared.dead.get() {
                return false;
            }
            let started = c.shared.started.get();
            let since = match c.seen.get() {
                _ if c.shared.active.get() > 0 => None,
                (seen, Some(since)) if seen == started => Some(since),
                // Idle, with a stream since the last look: idle from about now.
                _ => Some(now),
            };
            c.seen.set((started, since));
            since.is_none_or(|s| now.saturating_duration_since(s) < idle)
        });
        conns.len()
    }

    /// Connections open, those of them without a stream (idle: `show stat` counts
    /// them as the server's idle connections, safe to reuse), and the frame and
    /// error counters (`FrameTally::figures`).
    pub fn figures(&self) -> (usize, usize, [u64; 9]) {
        let conns = self.conns.borrow();
        let live = conns.iter().filter(|c| !c.shared.dead.get());
        let open = live.clone().count();
        let idle = live.filter(|c| c.shared.active.get() == 0).count();
        (open, idle, self.tally.borrow().figures())
    }

    /// Lets go of the connections without a stream (the server takes no request:
    /// it keeps no idle connection, as its HTTP/1 pool does not).
    pub fn drop_idle(&self) {
        self.conns
            .borrow_mut()
            .retain(|c| !c.shared.dead.get() && c.shared.active.get() > 0);
    }

    /// Takes the connections of the same server in the generation a reload replaced;
    /// says how many.
    pub fn adopt(&self, old: &H2Conns) -> usize {
        *self.tally.borrow_mut() = old.tally.borrow().clone();
        let taken = std::mem::take(&mut *old.conns.borrow_mut());
        let mut conns = self.conns.borrow_mut();
        conns.extend(taken);
        conns.len()
    }

    /// Lets go of every connection (the shard stops, or a reload retired this
    /// server's generation): each ends with GOAWAY once its streams finished, and
    /// none is kept from now on.
    pub fn release(&self) {
        self.released.set(true);
        self.conns.borrow_mut().clear();
    }
}

/// The poll-io form of a new server socket, for the h2 crate.
pub fn poll_io(tcp: TcpStream) -> std::io::Result<monoio::net::tcp::stream_poll::TcpStreamPoll> {
    tcp.try_into_poll_io().map_err(|(e, _)| e)
}
