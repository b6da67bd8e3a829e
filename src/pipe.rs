//! The one copy-both-ways loop: TCP mode connections and tunnels (WebSocket after a
//! 101, CONNECT after a 2xx). Bytes go both ways until both directions ended, each EOF
//! passed on as a half-close; a direction that moves bulk data between two plain
//! sockets switches to splice (the bytes stay in the kernel). Inactivity ends it, with
//! HAProxy's timeouts: without `timeout tunnel`, each side has its own (`timeout
//! client`, `timeout server`), refreshed by a read from or a write to that side (HAProxy
//! without `option independent-streams`); with it, one timeout for both. Once a side
//! was passed a half-close, its own limit becomes `timeout client-fin` /
//! `server-fin` when set (counted from that moment, as HAProxy's `hcto`).
//!
//! Owns: the two streams until the end, their byte counts. May not touch: servers'
//! slots or counters (the caller holds and accounts them).

use std::cell::Cell;
use std::time::Duration;

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::time::Instant;

use crate::io::Stream;
use crate::record::Term;
use crate::splice::PipePool;

/// Bytes read per copy; a read that fills it switches its direction to splice.
const COPY_BUF: usize = 32 * 1024;

/// Inactivity limits of a pipe.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    pub client: Duration,
    pub server: Duration,
    /// `timeout tunnel`: one limit for both sides, superseding the two above.
    pub tunnel: Option<Duration>,
    /// `timeout client-fin` / `server-fin`: a side's limit once it was passed a
    /// half-close (`shutdown(SHUT_WR)` towards it).
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
}

/// How a pipe ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub to_server: u64,
    pub to_client: u64,
    /// `----` when both directions ended, else which side went quiet.
    pub term: Term,
}

/// Last activity of each side, and whether it was passed a half-close.
struct Activity {
    client: Cell<Instant>,
    server: Cell<Instant>,
    client_shut: Cell<bool>,
    server_shut: Cell<bool>,
    /// Wakes `watch` when a side is passed a half-close (its limit may shorten).
    shut_waker: Cell<Option<std::task::Waker>>,
}

/// Copies between `client` and `server` until both directions ended or a side was
/// idle for too long. Either may be TLS (its halves run at once: `tls::stream`).
pub async fn run<C: Stream, U: Stream>(
    client: C,
    server: U,
    idle: Idle,
    pipes: &PipePool,
    kill: &crate::upstream::kill::KillSwitch,
) -> Ended {
    let now = Instant::now();
    let activity = Activity {
        client: Cell::new(now),
        server: Cell::new(now),
        client_shut: Cell::new(false),
        server_shut: Cell::new(false),
        shut_waker: Cell::new(None),
    };
    let to_client = Cell::new(0u64);
    let to_server = Cell::new(0u64);
    // Splicing needs both sockets bare; a TLS stream has none.
    let splice_ok = client.socket().is_some() && server.socket().is_some();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let both = async {
        monoio::join!(
            one_way(
                cr,
                sw,
                Side::FromClient,
                &activity,
                &to_server,
                splice_ok,
                pipes
            ),
            one_way(
                sr,
                cw,
                Side::FromServer,
                &activity,
                &to_client,
                splice_ok,
                pipes
            )
        );
    };
    let term = monoio::select! {
        _ = both => Term::NORMAL,
        // Boxed: an inline timer would make the task a 128-byte aligned allocation.
        t = Box::pin(watch(&activity, idle)) => t,
        // The server was marked down with `on-marked-down shutdown-sessions` (`DD`),
        // or a primary came up with `on-marked-up shutdown-backup-sessions` (`UD`).
        up = kill.killed() => if up { Term::KILLED_UP } else { Term::KILLED_DOWN },
    };
    Ended {
        to_server: to_server.get(),
        to_client: to_client.get(),
        term,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    FromClient,
    FromServer,
}

impl Activity {
    /// A transfer from `side` read from one side and wrote to the other: both are
    /// active.
    fn moved(&self) {
        let now = Instant::now();
        self.client.set(now);
        self.server.set(now);
    }

    /// Only the side read from was active (the write is still pending).
    fn read_from(&self, side: Side) {
        let now = Instant::now();
        match side {
            Side::FromClient => self.client.set(now),
            Side::FromServer => self.server.set(now),
        }
    }

    /// The direction from `side` ended and the other side was passed the half-close:
    /// its `-fin` limit starts now.
    fn shut_after(&self, side: Side) {
        let now = Instant::now();
        match side {
            Side::FromClient => {
                self.server_shut.set(true);
                self.server.set(now);
            }
            Side::FromServer => {
                self.client_shut.set(true);
                self.client.set(now);
            }
        }
        if let Some(w) = self.shut_waker.take() {
            w.wake();
        }
    }

    fn shuts(&self) -> (bool, bool) {
        (self.client_shut.get(), self.server_shut.get())
    }
}

/// One direction: copy through a buffer, or splice once bulk data flows; at EOF pass
/// the half-close on with `shutdown(SHUT_WR)`.
async fn one_way<R: Stream, W: Stream>(
    mut from: OwnedReadHalf<R>,
    mut to: OwnedWriteHalf<W>,
    side: Side,
    activity: &Activity,
    copied: &Cell<u64>,
    splice_ok: bool,
    pipes: &PipePool,
) {
    let mut buf = Vec::with_capacity(COPY_BUF);
    loop {
        buf.clear();
        let (res, b) = from.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        copied.set(copied.get() + n as u64);
        activity.read_from(side);
        let (res, b) = to.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
        activity.moved();
        if n == COPY_BUF && splice_ok {
            // Bulk data: the rest goes through a pipe. SAFETY: shared references to
            // the streams inside the halves, used only for their descriptors and
            // readiness on this thread; the other direction's operations do not
            // move or drop them (monoio's own halves read addresses the same way).
            let (src, dst) = unsafe { (&*from.0.get(), &*to.0.get()) };
            if let (Some(src), Some(dst)) = (src.socket(), dst.socket()) {
                let moved = |n: usize| {
                    copied.set(copied.get() + n as u64);
                    activity.moved();
                };
                match pipes.stream(src, dst, moved).await {
                    Ok(()) => break,
                    // No pipe (out of descriptors): go on copying.
                    Err(crate::splice::SpliceError::NoPipe) => {}
                    Err(_) => break,
                }
            }
        }
    }
    let _ = to.shutdown().await;
    activity.shut_after(side);
}

/// Resolves once a side has been idle past its limit, with the side it was. A side's
/// limit: its `-fin` timeout once it was passed a half-close (when set), else `timeout
/// tunnel` from the last activity of either side, else its own timeout.
async fn watch(activity: &Activity, idle: Idle) -> Term {
    loop {
        let either = activity.client.get().max(activity.server.get());
        let due = |shut: bool, fin: Option<Duration>, last: Instant, own: Duration| match (
            fin.filter(|_| shut),
            idle.tunnel,
        ) {
            (Some(f), _) => last + f,
            (None, Some(t)) => either + t,
            (None, None) => last + own,
        };
        let c = due(
            activity.client_shut.get(),
            idle.client_fin,
            activity.client.get(),
            idle.client,
        );
        let s = due(
            activity.server_shut.get(),
            idle.server_fin,
            activity.server.get(),
            idle.server,
        );
        let (due, term) = if c <= s {
            (c, Term::CLIENT_TIMEOUT_DATA)
        } else {
            (s, Term::SERVER_TIMEOUT_DATA)
        };
        if Instant::now() >= due {
            return term;
        }
        if idle.client_fin.is_none() && idle.server_fin.is_none() {
            monoio::time::sleep_until(due).await;
            continue;
        }
        let seen = activity.shuts();
        let shut = std::future::poll_fn(|cx| {
            if activity.shuts() != seen {
                return std::task::Poll::Ready(());
            }
            activity.shut_waker.set(Some(cx.waker().clone()));
            std::task::Poll::Pending
        });
        monoio::select! {
            _ = monoio::time::sleep_until(due) => {}
            _ = shut => {}
        }
    }
}
