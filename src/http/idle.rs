//! The deadlines of a shard's connections that wait for a request (a new connection's
//! first bytes, a keep-alive connection's next request), kept together: one slab and
//! one min-heap per shard, and the shard's control tick wakes the connections whose
//! deadline passed. A monoio timer would cost each idle connection 640 bytes (its
//! entry is cache-line padded and aligned), more than a third of what the rest of an
//! idle connection costs; here it is a slab entry and a heap slot. The shard's control
//! loop sleeps until the earliest deadline (`next_deadline`; a wait that becomes the
//! earliest rings its bell) and wakes the connections whose deadline passed: a wait
//! ends at most one control tick (20 ms) after its deadline, which no request timeout
//! needs finer.

use std::cell::RefCell;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use monoio::net::TcpStream;
use monoio::time::Instant;

struct Entry {
    deadline: Instant,
    waker: Option<Waker>,
    /// Where the entry sits in the heap; `None` once it expired.
    pos: Option<usize>,
}

/// Waiting connections by slab key, and their keys as a min-heap on the deadline.
#[derive(Default)]
struct Waiting {
    entries: slab::Slab<Entry>,
    heap: Vec<usize>,
}

thread_local! {
    static WAITING: RefCell<Waiting> = RefCell::new(Waiting::default());
    /// The shard's control loop, rung when a wait becomes the earliest.
    static BELL: RefCell<Option<std::rc::Rc<crate::io::LocalBell>>> =
        const { RefCell::new(None) };
}

/// The bell of this thread's control loop (set when its runtime starts).
pub fn set_bell(bell: std::rc::Rc<crate::io::LocalBell>) {
    BELL.with(|b| *b.borrow_mut() = Some(bell));
}

/// The earliest deadline of a waiting connection.
pub fn next_deadline() -> Option<Instant> {
    WAITING
        .try_with(|w| {
            let w = w.borrow();
            w.heap.first().map(|&key| w.entries[key].deadline)
        })
        .ok()
        .flatten()
}

impl Waiting {
    fn less(&self, a: usize, b: usize) -> bool {
        self.entries[self.heap[a]].deadline < self.entries[self.heap[b]].deadline
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (ka, kb) = (self.heap[a], self.heap[b]);
        self.entries[ka].pos = Some(a);
        self.entries[kb].pos = Some(b);
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.less(l, least) {
                least = l;
            }
            if r < self.heap.len() && self.less(r, least) {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }

    fn insert(&mut self, deadline: Instant, waker: Waker) -> usize {
        let pos = self.heap.len();
        let key = self.entries.insert(Entry {
            deadline,
            waker: Some(waker),
            pos: Some(pos),
        });
        self.heap.push(key);
        self.up(pos);
        key
    }

    /// Takes the entry at heap position `i` out of the heap.
    fn unlink(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        if i != last {
            self.swap(i, last);
        }
        let key = self.heap.pop().unwrap_or(usize::MAX);
        if let Some(e) = self.entries.get_mut(key) {
            e.pos = None;
        }
        if i < self.heap.len() {
            self.down(i);
            self.up(i);
        }
    }
}

/// Wakes every waiting connection whose deadline is `now` or earlier (the shard's
/// control tick calls this).
pub fn wake_expired(now: Instant) {
    let mut wake = Vec::new();
    let _ = WAITING.try_with(|w| {
        let mut w = w.borrow_mut();
        while let Some(&key) = w.heap.first() {
            if w.entries[key].deadline > now {
                break;
            }
            w.unlink(0);
            if let Some(waker) = w.entries[key].waker.take() {
                wake.push(waker);
            }
        }
    });
    // Woken outside the borrow: a waker may run code that registers again.
    wake.into_iter().for_each(Waker::wake);
}

/// Gives back the room a burst of waiting connections left (run once a second).
pub fn shrink() {
    let _ = WAITING.try_with(|w| {
        let mut w = w.borrow_mut();
        if w.entries.is_empty() {
            *w = Waiting::default();
        } else if w.entries.capacity() > 4 * w.entries.len().max(256) {
            w.entries.shrink_to_fit();
            w.heap.shrink_to_fit();
        }
    });
}

/// A place among the waiting connections until `deadline`.
struct Deadline {
    deadline: Instant,
    key: Option<usize>,
}

impl Deadline {
    /// Ready once the deadline passed.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(key) = self.key else {
            if Instant::now() >= self.deadline {
                return Poll::Ready(());
            }
            let (key, earliest) = WAITING.with(|w| {
                let mut w = w.borrow_mut();
                let key = w.insert(self.deadline, cx.waker().clone());
                (key, w.entries[key].pos == Some(0))
            });
            self.key = Some(key);
            if earliest {
                // The control loop sleeps until the earliest deadline it knew of.
                BELL.with(|b| b.borrow().as_ref().map(|b| b.ring()));
            }
            return Poll::Pending;
        };
        WAITING.with(|w| {
            let mut w = w.borrow_mut();
            let e = &mut w.entries[key];
            if e.pos.is_none() {
                return Poll::Ready(());
            }
            if !e.waker.as_ref().is_some_and(|k| k.will_wake(cx.waker())) {
                e.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let _ = WAITING.try_with(|w| {
            let mut w = w.borrow_mut();
            if let Some(pos) = w.entries.get(key).and_then(|e| e.pos) {
                w.unlink(pos);
            }
            w.entries.try_remove(key);
        });
    }
}

/// Waits until `deadline` among the shard's waiting connections (up to a control tick
/// late): a slab entry and a heap slot where a monoio timer would hold 640 bytes in the
/// waiting future (an HTTP/2 connection waiting out its keep-alive timeout).
pub async fn until(deadline: Instant) {
    let mut deadline = Deadline {
        deadline,
        key: None,
    };
    std::future::poll_fn(|cx| deadline.poll(cx)).await
}

/// Ready once `stream` is readable (data, EOF or an error: a read tells which) or
/// `deadline` has passed, at once without a stream (bytes are buffered above it).
/// Nothing is read: no byte can be lost when the wait ends.
pub fn readable_until(stream: Option<&TcpStream>, deadline: Instant) -> ReadableUntil {
    ReadableUntil {
        ready: stream.map(|s| s.readiness(false)),
        deadline: Deadline {
            deadline,
            key: None,
        },
    }
}

/// `readable_until`'s wait: a named future of the two waits side by side (72 bytes),
/// since every idle connection's task holds one (an `async fn` over monoio's
/// `readable` took about twice that).
pub struct ReadableUntil {
    ready: Option<monoio::net::tcp::Readiness>,
    deadline: Deadline,
}

impl Future for ReadableUntil {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(ready) = &mut this.ready else {
            return Poll::Ready(());
        };
        if std::pin::Pin::new(ready).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.deadline.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The heap keeps the earliest deadline first through inserts and removals.
    #[test]
    fn deadlines_expire_in_order_and_removed_ones_never() {
        let t0 = Instant::now();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut ds: Vec<Deadline> = [50u64, 10, 40, 30, 20, 60]
            .iter()
            .map(|&s| Deadline {
                deadline: t0 + Duration::from_secs(s),
                key: None,
            })
            .collect();
        for d in &mut ds {
            assert!(d.poll(&mut cx).is_pending());
        }
        // 40 s leaves before it expires.
        drop(ds.remove(2));
        wake_expired(t0 + Duration::from_secs(35));
        let expired: Vec<bool> = ds.iter_mut().map(|d| d.poll(&mut cx).is_ready()).collect();
        assert_eq!(expired, [false, true, true, true, false]);
        wake_expired(t0 + Duration::from_secs(100));
        assert!(ds.iter_mut().all(|d| d.poll(&mut cx).is_ready()));
        drop(ds);
        WAITING.with(|w| {
            let w = w.borrow();
            assert!(w.entries.is_empty() && w.heap.is_empty());
        });
    }
}
