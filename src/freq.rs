//! HAProxy's figures over time, kept per shard without a clock of their own: the
//! one-second frequency counter (`freq_ctr`: sessions, requests, connections per
//! second and their maxima) and the sliding average over the last 1,024 samples
//! (`swrate`: queue, connect, response and total times). Each takes the caller's
//! clock reading, so the request path reads the clock no more often than before.

use std::cell::Cell;

/// HAProxy's one-second frequency counter (`freq_ctr`): the events of the current
/// period and of the one before, read as the events of the last second. Periods are
/// a second long and start at the first event after a quiet one, as HAProxy's do.
#[derive(Default)]
pub struct Rate {
    /// Start of the current period, in ms after the process's epoch.
    tick: Cell<u64>,
    curr: Cell<u64>,
    prev: Cell<u64>,
    /// Most events in one period (HAProxy's `*_max` rates).
    max: Cell<u64>,
}

/// A rate as read at a snapshot: per second now, and the most seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RateTotals {
    pub cur: u64,
    pub max: u64,
}

impl RateTotals {
    /// Shards' rates add up; their maxima too (a bound from above, as for gauges).
    pub fn add(&mut self, o: &RateTotals) {
        self.cur += o.cur;
        self.max += o.max;
    }
}

const PERIOD_MS: u64 = 1000;

impl Rate {
    /// Counts `n` events at `now_ms`.
    #[inline]
    pub fn add(&self, now_ms: u64, n: u64) {
        let tick = self.tick.get();
        let curr = if now_ms.wrapping_sub(tick) < PERIOD_MS {
            self.curr.get() + n
        } else {
            // A new period; a quiet one in between leaves nothing of the past.
            let next = tick + PERIOD_MS;
            if now_ms.saturating_sub(next) >= PERIOD_MS {
                self.prev.set(0);
                self.tick.set(now_ms);
            } else {
                self.prev.set(self.curr.get());
                self.tick.set(next);
            }
            n
        };
        self.curr.set(curr);
        if curr > self.max.get() {
            self.max.set(curr);
        }
    }

    /// Events over the last second at `now_ms`: the current period's, plus the part
    /// of the previous one still within the second (HAProxy's `read_freq_ctr`,
    /// with its correction for very low rates).
    pub fn read(&self, now_ms: u64) -> u64 {
        let (tick, mut curr, mut past) = (self.tick.get(), self.curr.get(), self.prev.get());
        let mut remain = (tick + PERIOD_MS) as i64 - now_ms as i64;
        if remain < 0 {
            remain += PERIOD_MS as i64;
            past = if remain >= 0 { curr } else { 0 };
            curr = 0;
        }
        if curr == 0 && past <= 1 {
            return past;
        }
        (past * remain.max(0) as u64 + curr * PERIOD_MS) / PERIOD_MS
    }

    pub fn snapshot(&self, now_ms: u64) -> RateTotals {
        RateTotals {
            cur: self.read(now_ms),
            max: self.max.get(),
        }
    }

    pub fn copy_from(&self, o: &Rate) {
        self.tick.set(o.tick.get());
        self.curr.set(o.curr.get());
        self.prev.set(o.prev.get());
        self.max.set(o.max.get());
    }

    /// Forgets the maximum (`clear counters`).
    pub fn clear_max(&self) {
        self.max.set(0);
    }
}

/// HAProxy's averages over the last 1,024 requests: a sliding sum (`swrate`) of each
/// of the queue, connect, response and total times, in milliseconds, and their maxima.
#[derive(Default)]
pub struct Timing {
    sum: [Cell<u64>; 4],
    max: [Cell<u64>; 4],
}

/// The window of HAProxy's sliding averages.
pub const TIME_SAMPLES: u64 = 1024;

/// A `Timing` as read at a snapshot: summable across shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeTotals {
    /// The sliding sums (queue, connect, response, total).
    pub sum: [u64; 4],
    /// Samples the sums stand for (at most 1,024; 0 before the first).
    pub window: u64,
    /// The longest of each, in milliseconds.
    pub max: [u64; 4],
}

impl TimeTotals {
    pub fn add(&mut self, o: &TimeTotals) {
        for i in 0..4 {
            self.sum[i] += o.sum[i];
            self.max[i] = self.max[i].max(o.max[i]);
        }
        self.window += o.window;
    }

    /// The average of time `i` (0 queue, 1 connect, 2 response, 3 total) in
    /// milliseconds, rounded up as HAProxy's `swrate_avg` does.
    pub fn avg(&self, i: usize) -> u64 {
        if self.window == 0 {
            0
        } else {
            self.sum[i].div_ceil(self.window)
        }
    }
}

impl Timing {
    /// Adds one request's times (ms); `samples` counts it already. Up to 1,024
    /// samples the sums add up; beyond, each new one pushes out an average one
    /// (HAProxy's `swrate_add_dynamic`).
    #[inline]
    pub fn record(&self, samples: u64, t: [u64; 4]) {
        for (i, v) in t.into_iter().enumerate() {
            let old = self.sum[i].get();
            let kept = if samples > TIME_SAMPLES {
                old - old.div_ceil(TIME_SAMPLES)
            } else {
                old
            };
            self.sum[i].set(kept + v);
            if v > self.max[i].get() {
                self.max[i].set(v);
            }
        }
    }

    pub fn snapshot(&self, samples: u64) -> TimeTotals {
        TimeTotals {
            sum: std::array::from_fn(|i| self.sum[i].get()),
            window: samples.min(TIME_SAMPLES),
            max: std::array::from_fn(|i| self.max[i].get()),
        }
    }

    pub fn copy_from(&self, o: &Timing) {
        for i in 0..4 {
            self.sum[i].set(o.sum[i].get());
            self.max[i].set(o.max[i].get());
        }
    }

    /// Forgets the maxima (`clear counters`).
    pub fn clear_max(&self) {
        for m in &self.max {
            m.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_reads_the_last_second_as_haproxy_does() {
        let r = Rate::default();
        for _ in 0..10 {
            r.add(10_000, 1);
        }
        assert_eq!(r.read(10_000), 10);
        // Half into the next period, half of the past one still counts.
        r.add(11_000, 4);
        assert_eq!(r.read(11_500), 4 + 5);
        assert_eq!(r.snapshot(11_500).max, 10);
        // Two quiet seconds later, nothing is left.
        assert_eq!(r.read(13_500), 0);
        // A single event stays 1 instead of flapping to 0 (HAProxy's correction).
        let one = Rate::default();
        one.add(20_000, 1);
        assert_eq!(one.read(21_900), 1);
    }

    #[test]
    fn averages_add_up_to_1024_samples_then_slide() {
        let t = Timing::default();
        for (i, v) in [10, 20, 30].into_iter().enumerate() {
            t.record(i as u64 + 1, [v, 1, 2, 3]);
        }
        let s = t.snapshot(3);
        assert_eq!((s.avg(0), s.max[0]), (20, 30));
        // Past the window each sample pushes an average one out.
        let t = Timing::default();
        for n in 1..=2048 {
            t.record(n, [if n <= 1024 { 100 } else { 0 }, 0, 0, 0]);
        }
        let s = t.snapshot(2048);
        assert!(s.avg(0) < 50, "{}", s.avg(0));
        // Merged shards weigh each by its samples; rounded up like swrate_avg.
        let mut a = TimeTotals {
            sum: [10, 0, 0, 0],
            window: 1,
            max: [10, 0, 0, 0],
        };
        a.add(&TimeTotals {
            sum: [30, 0, 0, 0],
            window: 2,
            max: [20, 0, 0, 0],
        });
        assert_eq!((a.avg(0), a.max[0]), (14, 20));
    }
}
