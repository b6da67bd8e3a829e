//! The one copy-both-ways loop: TCP mode connections and tunnels (WebSocket after a
//! 101, CONNECT after a 2xx). Bytes go both ways until both directions ended, each EOF
//! passed on as a half-close. Between two plain sockets, a direction splices (the
//! bytes stay in the kernel) as `config::splice` decides: always, never, or, by
//! default, adaptively as HAProxy's `splice-auto`: once its reads keep filling the
//! buffer, and back to copies when its traffic turns interactive. Inactivity ends it, with
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

use crate::bufpool::PooledBuf;
use crate::config::{Splice, SpliceMode};
use crate::io::Stream;
use crate::record::Term;
use crate::recv_ring::{Chunk, MultiRecv};
use crate::splice::{PipePool, SpliceError, Streamed, Transfer};
use monoio::buf::IoBuf;

/// Bytes read per copy (the size of the ring's buffers too).
const COPY_BUF: usize = crate::recv_ring::BUF_SIZE;

/// Reads that fill the copy buffer, with no read under half of it between them,
/// before an adaptive direction splices. HAProxy's `splice-auto` waits for 3 reads
/// filling its 16 KiB buffer (a "fast streamer"; a read under half its buffer starts
/// the count again, one in between does not); 2 of our 32 KiB are as much data. A
/// burst shorter than that (a request, a small response) is cheaper copied than
/// spliced through a pipe.
const BULK_READS: u8 = 2;

/// Splices in a row that moved less than half the copy buffer before an adaptive
/// direction copies again (HAProxy's streamer flags drop after 3 reads under half
/// its buffer): then two splices per message cost more than a read and a write.
const SMALL_SPLICES: u8 = 3;

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
    splice: Splice,
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
    let splice = if client.socket().is_some() && server.socket().is_some() {
        splice
    } else {
        Splice::OFF
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let both = async {
        monoio::join!(
            one_way(
                &mut cr,
                &mut sw,
                Side::FromClient,
                &activity,
                &to_server,
                splice.request,
                pipes
            ),
            one_way(
                &mut sr,
                &mut cw,
                Side::FromServer,
                &activity,
                &to_client,
                splice.response,
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
    // Whole again, each stream is closed once dropped. A write half dropped on its own
    // would shut its socket down first (monoio's `OwnedWriteHalf` drop): a syscall for a
    // FIN the close sends anyway, or for nothing when the peer already went.
    drop((cr.reunite(cw), sr.reunite(sw)));
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

/// One direction: copy through a buffer, or splice as `mode` says; at EOF pass the
/// half-close on with `shutdown(SHUT_WR)` (unless the other direction ended too: the
/// close that follows sends the FIN). From a plain socket on io_uring, the copy
/// receives into the shard's buffer ring (`recv_ring`): one armed multishot receive,
/// and no buffer of its own while the direction is quiet. A multishot receive takes
/// whatever arrives as long as the ring has buffers, so a direction that falls behind
/// (a completion already waiting when it takes one) ends it and reads single-shot,
/// as the kernel's socket buffer lets it (the sender's backpressure, and the ring left
/// to other connections), until a read finds less than a buffer: caught up, it arms
/// a multishot receive again.
async fn one_way<R: Stream, W: Stream>(
    from: &mut OwnedReadHalf<R>,
    to: &mut OwnedWriteHalf<W>,
    side: Side,
    activity: &Activity,
    copied: &Cell<u64>,
    mode: SpliceMode,
    pipes: &PipePool,
) {
    // SAFETY: a shared reference to the stream inside the half, used only for its
    // descriptor on this thread; the other direction does not move or drop it.
    let mut multi = unsafe { (*from.0.get()).socket() }.and_then(MultiRecv::new);
    let mut ring = if multi.is_some() {
        Ring::Armed
    } else {
        Ring::Single
    };
    // Only for single-shot reads: taken from the shard's free list at the first (a
    // fresh 32 KiB block would be mapped and unmapped per connection: `bufpool::init`).
    let mut buf = PooledBuf::none();
    // Reads that filled the buffer since the last under half of it (`Always` starts as
    // if bulk had been seen).
    let mut full = if mode == SpliceMode::Always {
        BULK_READS
    } else {
        0
    };
    'copy: loop {
        if mode != SpliceMode::Off && full >= BULK_READS {
            full = 0;
            // What a multishot receive took before it ends goes first.
            if let (Some(m), Ring::Armed | Ring::Draining) = (&mut multi, ring) {
                m.cancel();
                loop {
                    match m.drain().await {
                        Ok(Chunk::Data(b)) => {
                            if !forward(b, to, side, activity, copied).await.0 {
                                break 'copy;
                            }
                        }
                        Ok(Chunk::Dry) => break,
                        Ok(Chunk::Eof) | Err(_) => break 'copy,
                    }
                }
                ring = Ring::Single;
            }
            // SAFETY: shared references to the streams inside the halves, used only
            // for their descriptors and readiness on this thread; the other
            // direction's operations do not move or drop them (monoio's own halves
            // read addresses the same way).
            let (src, dst) = unsafe { (&*from.0.get(), &*to.0.get()) };
            if let (Some(src), Some(dst)) = (src.socket(), dst.socket()) {
                match spliced(src, dst, mode, side, activity, copied, pipes).await {
                    Ok(Streamed::Ended) => break,
                    // Interactive again, or no pipe left: copy.
                    Ok(Streamed::Stopped) | Err(SpliceError::NoPipe) => {}
                    Err(_) => break,
                }
            }
        }
        let chunk = match (&mut multi, ring) {
            (Some(m), Ring::Armed) => m.next().await,
            (Some(m), Ring::Draining) => m.drain().await,
            _ => Ok(Chunk::Dry),
        };
        let n = match chunk {
            Ok(Chunk::Data(b)) => {
                let n = b.len();
                if ring == Ring::Armed && multi.as_ref().is_some_and(|m| m.more_queued()) {
                    // Behind: end the receive; what it took comes first (`drain`).
                    if let Some(m) = &mut multi {
                        m.cancel();
                    }
                    ring = Ring::Draining;
                }
                // The buffer goes back to the ring once sent, not after the next arrival.
                if !forward(b, to, side, activity, copied).await.0 {
                    break;
                }
                n
            }
            Ok(Chunk::Eof) | Err(_) => break,
            // No ring, none of its buffers left, or reading single-shot: into our own.
            Ok(Chunk::Dry) => {
                if ring == Ring::Draining {
                    ring = Ring::Single;
                }
                if buf.capacity() == 0 {
                    buf = PooledBuf::take(COPY_BUF);
                }
                buf.clear();
                let (res, b) = from.read(std::mem::take(&mut *buf)).await;
                *buf = b;
                let n = match res {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (sent, b) =
                    forward(std::mem::take(&mut *buf), to, side, activity, copied).await;
                *buf = b;
                if !sent {
                    break;
                }
                if ring == Ring::Single && multi.is_some() && n < COPY_BUF {
                    // Caught up: wait with a multishot receive again.
                    ring = Ring::Armed;
                }
                n
            }
        };
        full = match mode {
            // Splicing was refused for want of a pipe: try again after this read.
            SpliceMode::Always => BULK_READS,
            _ if n == COPY_BUF => full.saturating_add(1),
            _ if n >= COPY_BUF / 2 => full,
            _ => 0,
        };
    }
    // The other direction already ended: both sockets close next, and the close sends
    // the FIN. A TLS stream still ends with its close_notify.
    let other_ended = match side {
        Side::FromClient => activity.client_shut.get(),
        Side::FromServer => activity.server_shut.get(),
    };
    // SAFETY: as above, the stream's descriptor only.
    let plain = unsafe { (*to.0.get()).socket() }.is_some();
    if !(other_ended && plain) {
        let _ = to.shutdown().await;
    }
    activity.shut_after(side);
}

/// How a direction with a buffer ring reads now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ring {
    /// A multishot receive (armed at the next read if none is).
    Armed,
    /// Its receive was cancelled: what it took comes first.
    Draining,
    /// Single-shot reads into the direction's own buffer.
    Single,
}

/// Sends what a read got (a ring buffer, or the direction's own) and counts it;
/// false when the write failed. The buffer comes back.
async fn forward<B: IoBuf, W: Stream>(
    b: B,
    to: &mut OwnedWriteHalf<W>,
    side: Side,
    activity: &Activity,
    copied: &Cell<u64>,
) -> (bool, B) {
    copied.set(copied.get() + b.bytes_init() as u64);
    activity.read_from(side);
    let (res, b) = to.write_all(b).await;
    if res.is_ok() {
        activity.moved();
    }
    (res.is_ok(), b)
}

/// A stretch of a direction through a pipe: until its source ends, or, adaptive, its
/// traffic turns interactive (`Stopped`).
async fn spliced(
    src: &monoio::net::TcpStream,
    dst: &monoio::net::TcpStream,
    mode: SpliceMode,
    side: Side,
    activity: &Activity,
    copied: &Cell<u64>,
    pipes: &PipePool,
) -> Result<Streamed, SpliceError> {
    let mut small = 0u8;
    let report = |t: Transfer| match t {
        Transfer::Read(n) => {
            copied.set(copied.get() + n as u64);
            activity.read_from(side);
            true
        }
        Transfer::Written(n) => {
            activity.moved();
            small = if n < COPY_BUF / 2 {
                small.saturating_add(1)
            } else {
                0
            };
            mode == SpliceMode::Always || small < SMALL_SPLICES
        }
    };
    pipes.stream(src, dst, report).await
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
