//! Limits that hold for the whole process, whatever the number of shards: a server's
//! `maxconn` (its busy slots, one atomic counter every shard takes from and gives
//! back to), the backend's queue of requests waiting for a slot (one FIFO across
//! shards: a slot a shard frees goes to the oldest waiter, on whichever shard it
//! waits), and the frontends' and the process's connection limits.
//!
//! Why it is exact: a slot is taken by a compare-and-swap that never lets the count
//! pass the limit, and a freed slot is either handed to a waiter (the count does not
//! move: the slot changes owner) or given back, never both. Why it is cheap: only
//! limited objects have shared state that the request path touches (an unlimited
//! server's counter is never read or written; a backend without limited servers never
//! queues), and the queue's lock is taken only when somebody waits.
//!
//! Owns: the counters and queues, one set per config, carried over a reload for the
//! servers and proxies that stay (in-flight requests of the old config give their
//! slots back to the same counters). May not touch: a shard's own state; a waiter on
//! another shard is told through that shard's control channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

use crate::config::Config;

/// Slots of a server or a proxy: `busy` never exceeds `max` (0 = no limit).
#[derive(Debug, Default)]
pub struct Slots {
    busy: AtomicU32,
    max: AtomicU32,
}

impl Slots {
    pub fn new(max: Option<u32>) -> Slots {
        Slots {
            busy: AtomicU32::new(0),
            max: AtomicU32::new(max.unwrap_or(0)),
        }
    }

    pub fn limited(&self) -> bool {
        self.max.load(Ordering::Relaxed) != 0
    }

    /// A slot is free now (it may be gone by the time `try_take` runs).
    pub fn free(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        max == 0 || self.busy.load(Ordering::Relaxed) < max
    }

    /// Takes a slot if one is free.
    pub fn try_take(&self) -> bool {
        let mut cur = self.busy.load(Ordering::Relaxed);
        loop {
            let max = self.max.load(Ordering::Relaxed);
            if max != 0 && cur >= max {
                return false;
            }
            match self
                .busy
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Gives a slot back.
    pub fn give(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn busy(&self) -> u32 {
        self.busy.load(Ordering::Relaxed)
    }

    /// The limit, `None` for none.
    pub fn max(&self) -> Option<u32> {
        Some(self.max.load(Ordering::Relaxed)).filter(|&m| m != 0)
    }

    pub fn set_max(&self, max: Option<u32>) {
        self.max.store(max.unwrap_or(0), Ordering::Relaxed);
    }
}

/// A waiter's state: waiting, gone (it gave up), or the server whose slot it got.
const WAITING: u32 = u32::MAX;
const GONE: u32 = u32::MAX - 1;

/// A request waiting for a slot in a backend's queue.
#[derive(Debug)]
pub struct Waiter {
    pub shard: usize,
    /// A specific server (a hash or a sticky key chose it), or any.
    pub want: Option<u32>,
    state: AtomicU32,
    /// Its shard asked it to look at the servers again.
    nudged: AtomicBool,
    /// Set and woken only on the waiter's own shard.
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    pub fn new(shard: usize, want: Option<u32>) -> Waiter {
        Waiter {
            shard,
            want,
            state: AtomicU32::new(WAITING),
            nudged: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    pub fn nudge(&self) {
        self.nudged.store(true, Ordering::Release);
    }

    pub fn take_nudge(&self) -> bool {
        self.nudged.swap(false, Ordering::AcqRel)
    }

    /// The server whose slot was handed to this waiter.
    pub fn granted(&self) -> Option<u32> {
        match self.state.load(Ordering::Acquire) {
            WAITING | GONE => None,
            s => Some(s),
        }
    }

    /// Leaves the queue: `Err(server)` when a slot was handed over meanwhile (the
    /// waiter owns it now).
    pub fn give_up(&self) -> Result<(), u32> {
        match self
            .state
            .compare_exchange(WAITING, GONE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(GONE) => Ok(()),
            Err(s) => Err(s),
        }
    }

    pub fn set_waker(&self, w: &Waker) {
        if let Ok(mut slot) = self.waker.lock() {
            match &*slot {
                Some(old) if old.will_wake(w) => {}
                _ => *slot = Some(w.clone()),
            }
        }
    }
}

impl Waiter {
    /// On the waiter's shard (a waker is only woken on its own thread), when told
    /// it was granted a slot or to look again.
    pub fn wake_here(&self) {
        if let Some(w) = self.waker.lock().ok().and_then(|mut w| w.take()) {
            w.wake();
        }
    }
}

/// One backend: its servers' slots and its queue.
#[derive(Debug, Default)]
pub struct BackendShared {
    pub servers: Vec<Arc<Slots>>,
    queue: Mutex<VecDeque<Arc<Waiter>>>,
    /// Entries in `queue` (read without the lock: a release with nobody waiting
    /// costs one load).
    queued: AtomicUsize,
    /// Most requests ever waiting at once.
    queue_max: AtomicU64,
}

impl BackendShared {
    /// Requests waiting now and at most, process-wide.
    pub fn queue_figures(&self) -> (u64, u64) {
        (
            self.queued.load(Ordering::Relaxed) as u64,
            self.queue_max.load(Ordering::Relaxed),
        )
    }

    pub fn anyone_waiting(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }

    /// Queues a waiter at the back, unless `maxqueue` waiters are there already.
    pub fn enqueue(&self, waiter: Arc<Waiter>, maxqueue: Option<usize>) -> bool {
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        if maxqueue.is_some_and(|m| q.len() >= m) {
            return false;
        }
        q.push_back(waiter);
        let n = q.len();
        self.queued.store(n, Ordering::Release);
        self.queue_max.fetch_max(n as u64, Ordering::Relaxed);
        true
    }

    /// Queues a waiter that was woken to look again and found nothing: it keeps its
    /// place at the front (`maxqueue` does not turn it away).
    pub fn enqueue_front(&self, waiter: Arc<Waiter>) -> bool {
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        q.push_front(waiter);
        let n = q.len();
        self.queued.store(n, Ordering::Release);
        self.queue_max.fetch_max(n as u64, Ordering::Relaxed);
        true
    }

    /// Takes a waiter out (it gave up, or found a slot by itself).
    pub fn remove(&self, waiter: &Arc<Waiter>) {
        if let Ok(mut q) = self.queue.lock() {
            q.retain(|w| !Arc::ptr_eq(w, waiter));
            self.queued.store(q.len(), Ordering::Release);
        }
    }

    /// A slot of `server` is free: it goes to the oldest waiter that can use it (the
    /// count stays; that waiter's shard is told), or back to the counter.
    pub fn release(&self, server: u32, links: &Links) {
        let slots = &self.servers[server as usize];
        if !self.anyone_waiting() {
            slots.give();
            return;
        }
        let granted = {
            let Ok(mut q) = self.queue.lock() else {
                slots.give();
                return;
            };
            let mut granted = None;
            let mut i = 0;
            while i < q.len() {
                let (state, want) = (q[i].state.load(Ordering::Acquire), q[i].want);
                if state == GONE {
                    q.remove(i);
                    continue;
                }
                if want.is_some_and(|s| s != server) {
                    i += 1;
                    continue;
                }
                let Some(w) = q.remove(i) else { break };
                if w.state
                    .compare_exchange(WAITING, server, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    granted = Some(w);
                    break;
                }
            }
            self.queued.store(q.len(), Ordering::Release);
            granted
        };
        match granted {
            Some(w) => links.tell(w.shard, Event::Granted(w)),
            None => slots.give(),
        }
    }

    /// Every waiter's shard re-examines its waiters (capacity appeared, or servers
    /// went away): used when a server's limit changes.
    pub fn nudge(&self, links: &Links) {
        let shards: Vec<usize> = match self.queue.lock() {
            Ok(q) => q.iter().map(|w| w.shard).collect(),
            Err(_) => return,
        };
        let mut told = Vec::new();
        for s in shards {
            if !told.contains(&s) {
                told.push(s);
                links.tell(s, Event::Nudge);
            }
        }
    }
}

/// A connection limit of the process or of a frontend: accept loops pause when it is
/// reached, and the shards that paused are told when a connection closes.
#[derive(Debug)]
pub struct ConnLimit {
    pub slots: Slots,
    /// Shards whose accept loops wait for room.
    paused: Vec<AtomicBool>,
}

impl ConnLimit {
    pub fn new(max: u32, shards: usize) -> ConnLimit {
        ConnLimit {
            slots: Slots::new(Some(max.max(1))),
            paused: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Takes a slot, or marks `shard` as waiting for one (`false`).
    pub fn take_or_wait(&self, shard: usize) -> bool {
        if self.slots.try_take() {
            return true;
        }
        if let Some(p) = self.paused.get(shard) {
            p.store(true, Ordering::Release);
        }
        // A slot freed between the two steps would have found nobody paused.
        if self.slots.try_take() {
            if let Some(p) = self.paused.get(shard) {
                p.store(false, Ordering::Release);
            }
            return true;
        }
        false
    }

    /// A connection closed: its slot is free, and paused shards look again.
    pub fn give(&self, links: &Links) {
        self.slots.give();
        for (shard, p) in self.paused.iter().enumerate() {
            if p.swap(false, Ordering::AcqRel) {
                links.tell(shard, Event::Room);
            }
        }
    }
}

/// What a shard is told about the limits, through its control channel.
#[derive(Debug)]
pub enum Event {
    /// A request waiting on the shard got a server slot another shard freed.
    Granted(Arc<Waiter>),
    /// The shard's waiters look at the servers again (a limit changed).
    Nudge,
    /// A connection limit has room again: paused accept loops try again.
    Room,
}

/// Tells shard N an `Event` (the control layer's channels, set once they exist).
pub trait Tell: Send + Sync {
    fn tell(&self, shard: usize, event: Event);
}

/// The shards' control channels, for telling a shard about a slot it got.
#[derive(Default)]
pub struct Links(OnceLock<Arc<dyn Tell>>);

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

impl Links {
    pub fn set(&self, tell: Arc<dyn Tell>) {
        let _ = self.0.set(tell);
    }

    fn tell(&self, shard: usize, event: Event) {
        if let Some(t) = self.0.get() {
            t.tell(shard, event);
        }
    }
}

/// A shard's part of the descriptors the process's maxconn was sized for: what its
/// idle server connections and splice pipes may use (`usize::MAX`: no limit). Not a
/// connection limit (those hold for the process): a budget, so that pooled
/// connections and pipes never take the descriptors maxconn counted on.
pub fn fd_share(maxconn: Option<u32>, shard: usize, shards: usize) -> usize {
    match maxconn {
        None => usize::MAX,
        Some(m) => {
            let shards = shards.max(1) as u32;
            (m / shards + u32::from((shard as u32) < m % shards)).max(1) as usize
        }
    }
}

/// Everything limited, for one config.
#[derive(Debug, Default)]
pub struct Shared {
    pub backends: Vec<Arc<BackendShared>>,
    /// Per frontend (`None`: no maxconn).
    pub frontends: Vec<Option<Arc<ConnLimit>>>,
    pub global: Option<Arc<ConnLimit>>,
    pub links: Arc<Links>,
}

impl Shared {
    /// The shared state of `cfg`; with `old` (a reload), servers, frontends and the
    /// process limit that exist in both keep their counters.
    pub fn new(cfg: &Config, old: Option<(&Config, &Shared)>) -> Shared {
        Self::with_global(cfg, old, cfg.runtime.maxconn)
    }

    /// Like `new`, with the process's maxconn in force (`maxconn`: configured, or
    /// derived from the open-file limit).
    pub fn with_global(
        cfg: &Config,
        old: Option<(&Config, &Shared)>,
        maxconn: Option<u32>,
    ) -> Shared {
        let shards = cfg.runtime.shards;
        let links = old.map(|(_, o)| o.links.clone()).unwrap_or_default();
        let names = old.map(|(oc, _)| crate::config::by_name(&oc.backends, |b| &b.name));
        let backends = cfg
            .backends
            .iter()
            .map(|b| {
                let ob = old.and_then(|(oc, o)| {
                    let i = *names.as_ref()?.get(b.name.as_str())?;
                    Some((&oc.backends[i], &o.backends[i]))
                });
                let servers = b
                    .servers
                    .iter()
                    .map(|s| {
                        let kept = ob.and_then(|(obc, obs)| {
                            let j = obc.servers.iter().position(|x| x.name == s.name)?;
                            Some(obs.servers[j].clone())
                        });
                        match kept {
                            Some(slots) => {
                                slots.set_max(s.maxconn);
                                slots
                            }
                            None => Arc::new(Slots::new(s.maxconn)),
                        }
                    })
                    .collect();
                Arc::new(BackendShared {
                    servers,
                    ..Default::default()
                })
            })
            .collect();
        let frontends = cfg
            .frontends
            .iter()
            .map(|f| {
                let m = f.maxconn?;
                let kept = old.and_then(|(oc, o)| {
                    let i = oc.frontends.iter().position(|x| x.name == f.name)?;
                    o.frontends[i].clone()
                });
                Some(kept.unwrap_or_else(|| Arc::new(ConnLimit::new(m, shards))))
            })
            .collect();
        let global = maxconn.map(|m| match old.and_then(|(_, o)| o.global.clone()) {
            Some(g) => {
                g.slots.set_max(Some(m.max(1)));
                g
            }
            None => Arc::new(ConnLimit::new(m, shards)),
        });
        Shared {
            backends,
            frontends,
            global,
            links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_pass_the_limit() {
        let s = Arc::new(Slots::new(Some(3)));
        let taken: u32 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || (0..1000).filter(|_| s.try_take()).count() as u32)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 3);
        assert_eq!(s.busy(), 3);
        s.give();
        assert!(s.try_take());
        assert!(!s.try_take());
        let unlimited = Slots::new(None);
        assert!((0..10).all(|_| unlimited.try_take()));
    }

    fn waiter(shard: usize, want: Option<u32>) -> Arc<Waiter> {
        Arc::new(Waiter::new(shard, want))
    }

    #[test]
    fn a_freed_slot_goes_to_the_oldest_waiter_that_can_use_it() {
        let b = BackendShared {
            servers: vec![Arc::new(Slots::new(Some(1))), Arc::new(Slots::new(Some(1)))],
            ..Default::default()
        };
        assert!(b.servers[0].try_take() && b.servers[1].try_take());
        let (on_s1, any, gone) = (waiter(0, Some(1)), waiter(1, None), waiter(0, None));
        for w in [&gone, &on_s1, &any] {
            assert!(b.enqueue(w.clone(), None));
        }
        assert_eq!(gone.give_up(), Ok(()));
        let links = Links::default();
        // Server 0's slot: not for the waiter that wants server 1.
        b.release(0, &links);
        assert_eq!(any.granted(), Some(0));
        assert_eq!(on_s1.granted(), None);
        assert_eq!(b.servers[0].busy(), 1, "the slot changed owner");
        b.release(1, &links);
        assert_eq!(on_s1.granted(), Some(1));
        assert!(!b.anyone_waiting());
        // Nobody waits: the slot goes back.
        b.release(1, &links);
        assert_eq!(b.servers[1].busy(), 0);
        // A waiter that gives up after it was granted owns the slot.
        let late = waiter(0, None);
        assert!(b.enqueue(late.clone(), None));
        b.release(0, &links);
        assert_eq!(late.give_up(), Err(0));
    }

    #[test]
    fn maxqueue_bounds_the_queue() {
        let b = BackendShared::default();
        assert!(b.enqueue(waiter(0, None), Some(1)));
        assert!(!b.enqueue(waiter(1, None), Some(1)));
        assert_eq!(b.queue_figures(), (1, 1));
    }
}
