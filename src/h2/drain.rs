//! Soft stop for HTTP/2 connections. Each open connection registers here (one slab per
//! shard thread). When the shard drains (a stop, or the old process of an upgrade's
//! `-sf`: `runtime::control`), `drain` counts every connection in flight and wakes
//! it: it sends GOAWAY (the h2 crate's graceful shutdown: GOAWAY with the highest id,
//! a PING, then GOAWAY with the last stream it took once the PING is answered), lets
//! its open streams finish, then closes, and the shard waits for it as for an HTTP/1
//! request in flight, up to its grace period. A reload in place sends no GOAWAY: new
//! streams on an old connection are served by the config in force, as an HTTP/1
//! keep-alive connection's next request is.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::shard::{InflightGuard, Shard};

#[derive(Default)]
struct Entry {
    waker: Option<Waker>,
    /// Set by `drain`: the connection counts as in flight until it ends.
    guard: Option<InflightGuard>,
}

thread_local! {
    static OPEN: RefCell<slab::Slab<Entry>> = const { RefCell::new(slab::Slab::new()) };
}

/// Every HTTP/2 connection of this thread's shard: GOAWAY, finish, close.
pub fn drain(shard: &Rc<Shard>) {
    let wakers: Vec<Waker> = OPEN.with(|o| {
        let mut o = o.borrow_mut();
        o.iter_mut()
            .filter(|(_, e)| e.guard.is_none())
            .filter_map(|(_, e)| {
                e.guard = Some(shard.begin_request());
                e.waker.take()
            })
            .collect()
    });
    for w in wakers {
        w.wake();
    }
}

/// A connection's place in the registry, removed when it ends.
pub(super) struct Registration(usize);

impl Registration {
    /// Registers a connection; one that opens while the shard already drains is
    /// told at once.
    pub(super) fn new(shard: &Rc<Shard>) -> Registration {
        let guard = shard.draining.get().then(|| shard.begin_request());
        Registration(OPEN.with(|o| o.borrow_mut().insert(Entry { waker: None, guard })))
    }

    /// Ready once the shard drains.
    pub(super) async fn draining(&self) {
        std::future::poll_fn(|cx| {
            OPEN.with(|o| {
                let mut o = o.borrow_mut();
                match o.get_mut(self.0) {
                    Some(e) if e.guard.is_some() => Poll::Ready(()),
                    Some(e) => {
                        e.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                    None => Poll::Ready(()),
                }
            })
        })
        .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The guard drops outside the borrow.
        let entry = OPEN
            .try_with(|o| o.borrow_mut().try_remove(self.0))
            .ok()
            .flatten();
        drop(entry);
    }
}
