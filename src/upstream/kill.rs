//! Ending a server's sessions on a shard (`on-marked-down shutdown-sessions`, and the
//! backups' on `on-marked-up shutdown-backup-sessions`): each server has a switch;
//! a session that passes its bytes through `pipe` waits on it beside its transfers,
//! and firing it ends every session waiting there. One thread, no lock: the wakers
//! sit in a slab whose slots are reused, so a steady number of sessions allocates
//! nothing.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct KillSwitch {
    /// Times fired: a waiter that saw another value is done.
    fired: Cell<u64>,
    /// The last firing was a primary coming up (a backup's sessions end).
    by_primary: Cell<bool>,
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl KillSwitch {
    /// Ends every session waiting on this switch now: the server went down, or (with
    /// `by_primary`) a primary server of its backend came up.
    pub fn fire(&self, by_primary: bool) {
        self.by_primary.set(by_primary);
        self.fired.set(self.fired.get() + 1);
        for w in self.waiters.borrow_mut().iter_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }

    /// Resolves once the switch is fired after this call; true when a primary coming
    /// up fired it.
    pub fn killed(&self) -> Killed<'_> {
        Killed {
            switch: self,
            seen: self.fired.get(),
            slot: None,
        }
    }
}

pub struct Killed<'a> {
    switch: &'a KillSwitch,
    seen: u64,
    slot: Option<usize>,
}

impl Future for Killed<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if self.switch.fired.get() != self.seen {
            return Poll::Ready(self.switch.by_primary.get());
        }
        let mut waiters = self.switch.waiters.borrow_mut();
        let slot = match self.slot {
            Some(s) => s,
            None => match self.switch.free.borrow_mut().pop() {
                Some(s) => s,
                None => {
                    waiters.push(None);
                    waiters.len() - 1
                }
            },
        };
        waiters[slot] = Some(cx.waker().clone());
        drop(waiters);
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            if let Some(w) = self.switch.waiters.borrow_mut().get_mut(s) {
                *w = None;
            }
            self.switch.free.borrow_mut().push(s);
        }
    }
}
