//! Keeping handshakes from starving a shard. A handshake is the costliest thing a
//! shard does, and it does it in one go without yielding (ECDSA P-256 about 0.1 ms of
//! CPU, RSA-2048 about 0.4 ms on this VM's class of CPU). Two limits:
//!
//! - **Per shard, handshakes computing at once** (`Turns`): a connection whose
//!   ClientHello has arrived waits its turn (first come, first served) before its
//!   share of the crypto runs, and holds the turn until its answer left. So at most
//!   `cap` handshake computations sit in the shard's run queue ahead of a keep-alive
//!   request that became ready at the same moment; the others wait without costing
//!   anything. Waiting for the ClientHello takes no turn, so clients that send half of
//!   one (or nothing) never delay the others: they are closed at their deadline.
//! - **`maxsslrate`** (HAProxy's, process-wide): new connections per second on TLS
//!   listeners. At the limit, TLS listeners stop accepting until the rate falls (the
//!   connections wait in the kernel's backlog), as HAProxy does; connections are
//!   counted before they reach the TLS layer, so bad handshakes count too. The
//!   counter is HAProxy's `freq_ctr` (this second's count plus the previous second's,
//!   weighted by what is left of this one), in two words every shard updates without
//!   a lock; only processes with `maxsslrate` touch it.

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use local_sync::semaphore::{OwnedSemaphorePermit, Semaphore};

/// HAProxy has no such limit; ringlb's default per shard (`[runtime]
/// tls_handshakes_per_shard`). Measured (tests/tls_limits.rs storm, RSA-2048, one
/// shard, ~2,800 ClientHellos a second): on the epoll driver a keep-alive client got
/// 237 requests through in 3 s with 4 turns, 30 with 16, 48 with no limit; the
/// handshake rate was the same (the turn is held only while the handshake computes
/// and its answer is written). io_uring passes through the ring at each write anyway.
/// A later run on the same loaded machine did not reproduce the difference (epoll:
/// 113 and 225 requests with 4 turns, 138 and 235 with no limit, against 4,000-9,000
/// handshakes): the cap bounds the worst case, its measured gain is not steady.
pub const DEFAULT_TURNS: usize = 4;

/// A shard's handshake turns (shared by its config generations).
pub struct Turns(Rc<Semaphore>);

/// A turn, given back when dropped.
pub struct Turn(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Turns {
    pub fn new(cap: usize) -> Turns {
        Turns(Rc::new(Semaphore::new(cap.max(1))))
    }

    /// Waits for a turn (in arrival order).
    pub async fn take(&self) -> Turn {
        Turn(self.0.clone().acquire_owned().await.ok())
    }

    /// Gives `turn` back once the shard has looked at its sockets again: on the epoll
    /// driver a write that fits in the socket buffer completes without yielding, so
    /// the next handshake would start at once and a whole storm could run before a
    /// keep-alive request that became ready meanwhile. One yield puts the holder
    /// behind the tasks already queued; the run queue's next pass polls the driver.
    pub async fn give_back(turn: Turn) {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        drop(turn);
    }

    /// Turns free now (metrics, tests).
    pub fn free(&self) -> usize {
        self.0.available_permits()
    }
}

/// Connections per second on TLS listeners, all shards together.
pub struct Rate {
    /// (second << 32) | count in that second.
    curr: AtomicU64,
    /// The count of the second before `curr`'s.
    prev: AtomicU32,
}

/// The process's TLS connection rate (`maxsslrate`).
pub static SSL_RATE: Rate = Rate::new();

const PERIOD_MS: u64 = 1000;

fn now_ms() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl Rate {
    pub const fn new() -> Rate {
        Rate {
            curr: AtomicU64::new(0),
            prev: AtomicU32::new(0),
        }
    }

    /// Moves to the current second if needed; returns (count this second, count of
    /// the previous one, milliseconds into this second).
    fn read(&self, at: u64) -> (u32, u32, u64) {
        let sec = at / PERIOD_MS;
        loop {
            let cur = self.curr.load(Ordering::Acquire);
            let (csec, count) = (cur >> 32, cur as u32);
            if csec == sec {
                return (count, self.prev.load(Ordering::Acquire), at % PERIOD_MS);
            }
            // A new second: this second's count starts at 0, the last one's becomes
            // `prev` (0 if more than a second passed).
            let prev = if csec + 1 == sec { count } else { 0 };
            if self
                .curr
                .compare_exchange(cur, sec << 32, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.prev.store(prev, Ordering::Release);
            }
        }
    }

    /// The estimate HAProxy compares with the limit.
    fn estimate(curr: u32, prev: u32, into: u64) -> u64 {
        u64::from(curr) + u64::from(prev) * (PERIOD_MS - into) / PERIOD_MS
    }

    /// `None`: a connection may be accepted now; else how long to wait before the rate
    /// allows one more.
    pub fn wait(&self, limit: u32) -> Option<Duration> {
        let at = now_ms();
        let (curr, prev, into) = self.read(at);
        if Self::estimate(curr, prev, into) < u64::from(limit) {
            return None;
        }
        // The estimate falls as the second goes by (prev's weight shrinks) and drops
        // to `curr` at the next second.
        let left = PERIOD_MS - into;
        let mut wait = left;
        if prev > 0 && curr < limit {
            // Solve curr + prev * (P - t) / P < limit for t.
            let need = u64::from(curr) + u64::from(prev) - u64::from(limit) + 1;
            let t = need * PERIOD_MS / u64::from(prev);
            if t > into {
                wait = (t - into).min(left);
            } else {
                wait = 1;
            }
        }
        Some(Duration::from_millis(wait.max(1)))
    }

    /// Counts one accepted connection.
    pub fn add(&self) {
        let at = now_ms();
        self.read(at);
        self.curr.fetch_add(1, Ordering::AcqRel);
    }

    /// The current estimate (metrics, tests).
    pub fn per_second(&self) -> u64 {
        let (curr, prev, into) = self.read(now_ms());
        Self::estimate(curr, prev, into)
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limits_then_allows_again() {
        let r = Rate::new();
        assert!(r.wait(3).is_none());
        for _ in 0..3 {
            r.add();
        }
        let w = r.wait(3).expect("at the limit");
        assert!(w <= Duration::from_millis(1000), "{w:?}");
        assert!(r.wait(4).is_none());
    }

    #[test]
    fn the_estimate_weighs_the_previous_second() {
        assert_eq!(Rate::estimate(10, 100, 500), 60);
        assert_eq!(Rate::estimate(10, 100, 0), 110);
        assert_eq!(Rate::estimate(10, 100, 999), 10);
    }

    #[test]
    fn turns_are_taken_in_order_and_given_back() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let turns = Turns::new(2);
            let a = turns.take().await;
            let _b = turns.take().await;
            assert_eq!(turns.free(), 0);
            drop(a);
            assert_eq!(turns.free(), 1);
            let _c = turns.take().await;
            assert_eq!(turns.free(), 0);
        });
    }
}
