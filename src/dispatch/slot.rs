//! A request's slot on a server, held from the pick to the end of the exchange.

use super::*;

/// A request's slot on a server; dropping it frees the slot for the next waiter.
pub struct Slot {
    shard: Rc<Shard>,
    backend: usize,
    taken: Taken,
}

impl Slot {
    /// Wraps a slot `BackendState::acquire` handed out at `now`, and counts the
    /// session (its rate and date too).
    pub fn new(shard: &Rc<Shard>, backend: usize, taken: Taken, now: Instant) -> Slot {
        let server = taken.server;
        let be = shard.stats.backend(backend);
        let sv = shard.stats.server(backend, server as usize);
        for c in [be, sv] {
            c.up(&c.scur, &c.smax);
            Counters::inc(&c.stot);
        }
        Counters::inc(&sv.lbtot);
        Counters::inc(&be.lbtot);
        shard
            .stats
            .session(backend, server, shard.stats.ms(now.into_std()));
        shard.pools.slot_taken();
        Slot {
            shard: shard.clone(),
            backend,
            taken,
        }
    }

    pub fn server(&self) -> u32 {
        self.taken.server
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let st = &self.shard.stats;
        let server = self.taken.server as usize;
        Counters::down(&st.backend(self.backend).scur);
        Counters::down(&st.server(self.backend, server).scur);
        self.shard.pools.slot_released();
        self.shard.upstreams.backends[self.backend].release(self.taken);
    }
}
