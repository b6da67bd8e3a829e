//! A shard's free list of connection buffers, and giving memory back to the system.
//! A connection takes its two 16 KiB buffers (client bytes, server bytes) from here
//! when bytes arrive and gives them back when it goes quiet or ends, so neither a new
//! connection nor a keep-alive connection waking up costs a malloc/free of them. The
//! list is thread-local: each shard is one thread, so no lock is involved.
//!
//! Buffers are kept by exact capacity: a buffer's capacity is a limit (a client's
//! head must fit `max_header_bytes`), so a larger one must never stand in for it.
//!
//! The same goes for the state of a busy connection (`Recycled`: the boxed future of
//! its exchanges, which it gives back when it goes quiet). Neither churns the
//! allocator, whose heap would otherwise end up with the small, long-lived state of
//! idle connections scattered across pages that the freed buffers and futures left
//! mostly empty (resident all the same: 1 KiB more per idle connection, measured).
//! For the same reason `init` has the allocator map 16 KiB and larger blocks on
//! their own: a buffer the free list does not keep is unmapped when freed.
//!
//! After a burst of connections the lists and the allocator would keep the burst's
//! memory for good (the allocator keeps freed memory for the next malloc). `trim`, run
//! once a second by the shard, frees what sat unused in the lists for the whole second,
//! and once the shard's open (or busy) connections fell well below their peak, asks
//! the allocator to return its free pages (`malloc_trim`): RSS comes back to where it
//! was before the burst, and steady traffic keeps what it uses.

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Idle buffers per capacity and shard (4 MiB at the default 16 KiB), and idle future
/// blocks per layout, kept whatever the load; more while the load of the last period
/// had more out at once (`Spare::keep`).
const MAX_IDLE: usize = 256;
/// Capacities kept at once: a config uses up to six (head and body buffers, the
/// response head's, TLS records and batches, the copy buffer of TCP mode and
/// tunnels); a reload that changes `max_header_bytes` retires the oldest list
/// instead of keeping it forever.
const MAX_CLASSES: usize = 7;
/// The allocator is asked to give memory back when the shard's open connections, or
/// the buffers its connections hold (busy connections), fell to half their peak since
/// the last time, and by at least this many.
const TRIM_AFTER: usize = 256;

/// Spare items of one kind (buffers of one capacity, blocks of one layout): the idle
/// ones, the fewest idle since the last `trim` (those went unused for the whole
/// period), and how many are out now and were at most since the last `trim`.
struct Spare<T> {
    idle: Vec<T>,
    low: usize,
    out: usize,
    peak: usize,
}

impl<T> Spare<T> {
    const fn new() -> Self {
        Spare {
            idle: Vec::new(),
            low: 0,
            out: 0,
            peak: 0,
        }
    }

    /// An idle item if there is one; counted out either way (the caller makes one).
    fn take(&mut self) -> Option<T> {
        let item = self.idle.pop();
        self.low = self.low.min(self.idle.len());
        self.out += 1;
        self.peak = self.peak.max(self.out);
        item
    }

    /// Keeps a returned item, or gives it back to be freed. The list holds as many as
    /// were out at once since the last `trim` (at least `MAX_IDLE`): a shard whose
    /// load swings between busy and quiet (HTTP/2 clients sending streams in batches)
    /// finds all of them at its next peak, instead of allocating (and mapping) the
    /// part above a fixed bound again each time; `trim` frees those a whole period
    /// did not use.
    fn keep(&mut self, item: T) -> Option<T> {
        self.out = self.out.saturating_sub(1);
        if self.idle.len() < MAX_IDLE.max(self.peak) {
            self.idle.push(item);
            None
        } else {
            Some(item)
        }
    }

    /// For `trim`: the items unused since the last run go; the next period starts.
    fn unused(&mut self) -> std::vec::Drain<'_, T> {
        let from = self.idle.len() - self.low;
        self.low = from;
        self.peak = self.out;
        self.idle.drain(from..)
    }
}

/// Idle buffers by capacity.
type Buffers = Vec<(usize, Spare<Vec<u8>>)>;
/// Idle future blocks by layout.
type Blocks = Vec<(Layout, Spare<NonNull<u8>>)>;

/// The entry for `key` in a shard's list of kinds, made if missing; the oldest goes
/// (to `retire`) when `max` are kept already.
fn kind<K: PartialEq + Copy, T>(
    list: &mut Vec<(K, Spare<T>)>,
    key: K,
    max: usize,
    retire: impl FnOnce(Spare<T>),
) -> &mut Spare<T> {
    let i = match list.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            if list.len() == max {
                retire(list.remove(0).1);
            }
            list.push((key, Spare::new()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

thread_local! {
    /// The free lists by capacity; a config has one or two.
    static FREE: RefCell<Buffers> = const { RefCell::new(Vec::new()) };
    /// The most connections open on this shard since memory was last given back.
    static PEAK: Cell<usize> = const { Cell::new(0) };
    /// Buffers taken and not given back yet, and the most there were since memory
    /// was last given back.
    static TAKEN: Cell<usize> = const { Cell::new(0) };
    static PEAK_TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Trims still to come after the last one a burst's end asked for.
    static FOLLOW_UPS: Cell<u8> = const { Cell::new(0) };
    /// Bytes of the buffers handed out and not given back, for the statistics.
    static OUT: Cell<usize> = const { Cell::new(0) };
    /// Idle blocks for `Recycled` futures, by layout.
    static BLOCKS: RefCell<Blocks> = const { RefCell::new(Vec::new()) };
}

/// Once per process, before the shards start: blocks of 16 KiB and more (connection
/// buffers) are mapped on their own by the allocator instead of carved out of its heap.
pub fn init() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 * 1024);
    }
}

/// Run once a second by each shard with its open client connections: frees the
/// buffers and blocks the free lists did not need since the last run, and returns the
/// allocator's free memory to the system after a burst of connections closed.
pub fn trim(open: usize) {
    let mut freed = 0;
    FREE.with(|f| {
        for (cap, spare) in f.borrow_mut().iter_mut() {
            freed += spare.unused().count() * *cap;
        }
    });
    BLOCKS.with(|b| {
        for (layout, spare) in b.borrow_mut().iter_mut() {
            for ptr in spare.unused() {
                freed += layout.size();
                // SAFETY: allocated with this layout by `Recycled::new`, unused since.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), *layout) };
            }
        }
    });
    let peak = PEAK.get().max(open);
    let (taken, peak_taken) = (TAKEN.get(), PEAK_TAKEN.get());
    let fell = |now: usize, peak: usize| now < peak / 2 && peak - now >= TRIM_AFTER;
    if fell(open, peak) || fell(taken, peak_taken) || freed >= 256 << 10 {
        PEAK.set(open);
        PEAK_TAKEN.set(taken);
        // A burst's end frees memory for a few seconds more (the last connections
        // close, the free lists above empty a second later): trim again after it.
        FOLLOW_UPS.set(3);
        release_free_memory();
    } else {
        PEAK.set(peak);
        let follow = FOLLOW_UPS.get();
        if follow > 0 {
            FOLLOW_UPS.set(follow - 1);
            release_free_memory();
        }
    }
}

/// This shard's buffers: (bytes in use by connections, bytes idle in the free list),
/// HAProxy's pool figures for `show info`.
pub fn figures() -> (u64, u64) {
    let used = OUT.with(|o| o.get()) as u64;
    let idle = FREE.with(|f| {
        f.borrow()
            .iter()
            .map(|(cap, spare)| (cap * spare.idle.len()) as u64)
            .sum()
    });
    (used, idle)
}

/// Whether `trim` has work to do, with `open` client connections on the shard: memory
/// in the free lists, trims to follow a burst's end, or enough connections or buffers
/// that their fall would be a burst's end (the shard sweeps once a second meanwhile).
pub fn wants_trim(open: usize) -> bool {
    FOLLOW_UPS.get() > 0
        || open.max(PEAK.get()) >= TRIM_AFTER
        || TAKEN.get().max(PEAK_TAKEN.get()) >= TRIM_AFTER
        || FREE.with(|f| f.borrow().iter().any(|(_, s)| !s.idle.is_empty()))
        || BLOCKS.with(|b| b.borrow().iter().any(|(_, s)| !s.idle.is_empty()))
}

/// Returns the allocator's free pages to the system (glibc keeps freed memory in its
/// arenas otherwise). `malloc_trim` gives back the free pages inside every arena but
/// leaves the top of a thread's arena alone (measured: 3.5 MiB per shard stayed after a
/// burst of 4,000 connections closed); glibc shrinks that one when a large block is
/// freed into it, so one is, from this (the shard's) thread.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; the block is
    // freed as it was allocated, and never touched.
    unsafe {
        libc::malloc_trim(0);
        let block = libc::malloc(256 << 10);
        libc::free(std::hint::black_box(block));
    }
}

/// An empty buffer of at least the capacity asked for, returned to the shard's free
/// list when dropped (unless an I/O that was cancelled kept its storage).
pub struct PooledBuf {
    buf: Vec<u8>,
    cap: usize,
}

impl PooledBuf {
    pub fn take(cap: usize) -> Self {
        let reused = FREE.with(|f| kind(&mut f.borrow_mut(), cap, MAX_CLASSES, drop).take());
        let buf = reused.unwrap_or_else(|| Vec::with_capacity(cap));
        let taken = TAKEN.get() + 1;
        TAKEN.set(taken);
        OUT.set(OUT.get() + cap);
        PEAK_TAKEN.set(PEAK_TAKEN.get().max(taken));
        Self { buf, cap }
    }

    /// No buffer (a connection waiting for bytes holds none).
    pub fn none() -> Self {
        Self {
            buf: Vec::new(),
            cap: 0,
        }
    }

    /// Wraps a buffer that already holds bytes (those that followed a PROXY header).
    pub fn adopt(buf: Vec<u8>) -> Self {
        let cap = buf.capacity();
        let _ = TAKEN.try_with(|t| t.set(t.get() + 1));
        let _ = OUT.try_with(|o| o.set(o.get() + cap));
        Self { buf, cap }
    }

    /// The buffer leaves the pool for good.
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if self.cap != 0 {
            let _ = TAKEN.try_with(|t| t.set(t.get().saturating_sub(1)));
            let _ = OUT.try_with(|o| o.set(o.get().saturating_sub(self.cap)));
        }
        // A read cut short by a timeout leaves an empty Vec here: nothing to keep.
        if buf.capacity() != self.cap || self.cap == 0 {
            return;
        }
        buf.clear();
        // `try_with`: a buffer dropped while the thread's locals are torn down is freed.
        let _ = FREE.try_with(|f| kind(&mut f.borrow_mut(), self.cap, MAX_CLASSES, drop).keep(buf));
    }
}

/// A future in a block of memory recycled through the shard's free list: the boxed
/// state of a busy connection, given back when it goes quiet, costs no malloc/free.
pub struct Recycled<F: Future> {
    ptr: NonNull<F>,
}

impl<F: Future> Recycled<F> {
    pub fn new(future: F) -> Self {
        Self::with(|| future)
    }

    /// The future `make` returns, built where it will live: a large future (a whole
    /// connection's state) is not copied from the stack into its block, as `new`
    /// copies it (an HTTP/2 stream makes one: that copy was a tenth of a shard's CPU).
    #[inline(always)]
    pub fn with(make: impl FnOnce() -> F) -> Self {
        let layout = Layout::new::<F>();
        let reused = BLOCKS
            .with(|b| kind(&mut b.borrow_mut(), layout, usize::MAX, free_blocks(layout)).take());
        let block = match reused {
            Some(p) => p,
            None if layout.size() == 0 => NonNull::<F>::dangling().cast(),
            // SAFETY: a non-zero size.
            None => match NonNull::new(unsafe { std::alloc::alloc(layout) }) {
                Some(p) => p,
                None => std::alloc::handle_alloc_error(layout),
            },
        };
        let ptr = block.cast::<F>();
        // SAFETY: the block is valid for F's layout and holds nothing.
        unsafe { ptr.as_ptr().write(make()) };
        Recycled { ptr }
    }
}

impl<F: Future> Recycled<F> {
    /// The future, pinned where it lives.
    pub fn pinned(&mut self) -> Pin<&mut F> {
        // SAFETY: the future stays in its block until `drop`: it is pinned there.
        unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) }
    }
}

impl<F: Future> Future for Recycled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Recycled` is only a pointer: it is `Unpin` whatever `F` is.
        self.get_mut().pinned().poll(cx)
    }
}

impl<F: Future> Drop for Recycled<F> {
    fn drop(&mut self) {
        let layout = Layout::new::<F>();
        // SAFETY: the future was written by `new` and is dropped once, here.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        if layout.size() == 0 {
            return;
        }
        let block = self.ptr.cast::<u8>();
        let unkept = BLOCKS
            .try_with(|b| {
                kind(&mut b.borrow_mut(), layout, usize::MAX, free_blocks(layout)).keep(block)
            })
            .unwrap_or(Some(block));
        if let Some(block) = unkept {
            // SAFETY: allocated with this layout by `new`.
            unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
        }
    }
}

/// Frees the idle blocks of a layout the list no longer keeps.
fn free_blocks(layout: Layout) -> impl FnOnce(Spare<NonNull<u8>>) {
    move |spare| {
        for ptr in spare.idle {
            // SAFETY: allocated with this layout by `Recycled::new`, unused since.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_handed_out_again_empty() {
        let mut a = PooledBuf::take(1024);
        a.extend_from_slice(b"bytes of a finished connection");
        let ptr = a.as_ptr();
        drop(a);
        let b = PooledBuf::take(1024);
        assert_eq!(b.as_ptr(), ptr, "the same storage comes back");
        assert!(b.is_empty() && b.capacity() >= 1024);
    }

    /// A pooled 16 KiB server buffer must not become a 1 KiB client buffer: the
    /// capacity is the head-size limit (a head of 4,000 bytes got a 200, not a 431).
    #[test]
    fn a_larger_buffer_never_stands_in_for_a_smaller_one() {
        drop(PooledBuf::take(16 * 1024));
        let small = PooledBuf::take(1000);
        assert_eq!(small.capacity(), 1000);
        drop(small);
        assert_eq!(PooledBuf::take(16 * 1024).capacity(), 16 * 1024);
    }

    #[test]
    fn buffers_unused_for_a_whole_period_are_freed() {
        let cap = 3000;
        let idle = |cap| {
            FREE.with(|f| {
                f.borrow()
                    .iter()
                    .find(|(c, _)| *c == cap)
                    .map_or(0, |(_, s)| s.idle.len())
            })
        };
        let bufs: Vec<_> = (0..8).map(|_| PooledBuf::take(cap)).collect();
        drop(bufs);
        assert_eq!(idle(cap), 8);
        // The first run only starts the count: nothing was unused for a whole period.
        trim(0);
        assert_eq!(idle(cap), 8);
        // Three taken during the period: the five never taken go.
        let taken: Vec<_> = (0..3).map(|_| PooledBuf::take(cap)).collect();
        trim(0);
        assert_eq!(idle(cap), 0);
        // Buffers given back during a period are not spare until a whole one passed.
        drop(taken);
        trim(0);
        assert_eq!(idle(cap), 3);
        trim(0);
        assert_eq!(idle(cap), 0);
    }

    /// A load that swings above `MAX_IDLE` buffers out at once (HTTP/2 streams sent in
    /// batches) keeps every one of them for its next peak: none is freed and allocated
    /// again (with a fixed bound, 44 of these 300 were, at every swing).
    #[test]
    fn a_swing_above_the_fixed_bound_keeps_all_its_buffers() {
        let cap = 5000;
        let idle = || {
            FREE.with(|f| {
                f.borrow()
                    .iter()
                    .find(|(c, _)| *c == cap)
                    .map_or(0, |(_, s)| s.idle.len())
            })
        };
        drop((0..300).map(|_| PooledBuf::take(cap)).collect::<Vec<_>>());
        assert_eq!(idle(), 300);
        drop((0..300).map(|_| PooledBuf::take(cap)).collect::<Vec<_>>());
        assert_eq!(idle(), 300);
        // Unused for two whole periods, they go, and the bound with them.
        trim(0);
        trim(0);
        assert_eq!(idle(), 0);
        drop((0..300).map(|_| PooledBuf::take(cap)).collect::<Vec<_>>());
        trim(0);
        drop((0..300).map(|_| PooledBuf::take(cap)).collect::<Vec<_>>());
        assert_eq!(idle(), 300, "the peak of the period counts");
    }

    #[test]
    fn a_recycled_future_runs_drops_and_gives_its_block_back() {
        use std::rc::Rc;
        let dropped = Rc::new(Cell::new(0));
        struct Probe(Rc<Cell<u32>>, [u64; 40]);
        impl Drop for Probe {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let make = |d: Rc<Cell<u32>>| {
            let probe = Probe(d, [7; 40]);
            async move { probe.1.iter().sum::<u64>() }
        };
        let mut f = Recycled::new(make(dropped.clone()));
        let first = f.ptr.as_ptr() as usize;
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(280));
        drop(f);
        assert_eq!(dropped.get(), 1);
        // The same block serves the next future of that type.
        let f = Recycled::new(make(dropped.clone()));
        assert_eq!(f.ptr.as_ptr() as usize, first);
        drop(f);
        assert_eq!(dropped.get(), 2, "dropped unpolled too");
        let blocks = |l| {
            BLOCKS.with(|b| {
                b.borrow()
                    .iter()
                    .find(|(layout, _)| *layout == l)
                    .map_or(0, |(_, s)| s.idle.len())
            })
        };
        let layout = Layout::for_value(&make(dropped.clone()));
        assert_eq!(blocks(layout), 1);
        trim(0);
        trim(0);
        assert_eq!(blocks(layout), 0);
    }

    #[test]
    fn a_buffer_whose_storage_left_is_not_pooled() {
        let mut a = PooledBuf::take(2048);
        let _gone = std::mem::take(&mut *a);
        drop(a);
        let b = PooledBuf::take(2048);
        assert!(b.capacity() >= 2048);
        let inner = b.into_inner();
        assert!(inner.capacity() >= 2048);
    }
}
