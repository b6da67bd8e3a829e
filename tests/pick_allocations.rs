//! Balancer picks never allocate: a counting global allocator watches 10,000 picks of
//! every algorithm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringlb::config::{BalanceAlgo, HashFunction, HashKey, UriKey};
use ringlb::upstream::balance::{Balancer, Member};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measuring thread counts: the test harness's own threads may allocate
    /// at any moment.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn picks_do_not_allocate() {
    let algos = [
        BalanceAlgo::RoundRobin,
        BalanceAlgo::StaticRr,
        BalanceAlgo::LeastConn,
        BalanceAlgo::Random { draws: 2 },
        BalanceAlgo::First,
        BalanceAlgo::Hash {
            key: HashKey::Uri(UriKey::default()),
            consistent: false,
            function: HashFunction::default_for(false),
        },
        BalanceAlgo::Hash {
            key: HashKey::Uri(UriKey::default()),
            consistent: true,
            function: HashFunction::default_for(true),
        },
    ];
    let active: Vec<Cell<u32>> = (0..64).map(|i| Cell::new(i % 3)).collect();
    let keys: Vec<u32> = (0..64u32).map(ringlb::hash::full_hash).collect();
    for algo in algos {
        let mut b = Balancer::new(&algo, 1);
        b.rebuild((0..64).map(|i| Member {
            server: i,
            weight: 1 + i % 3,
            id: i as usize as u32 + 1,
        }));
        b.init_loads(&active, |_| u32::MAX);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        let mut picked = 0u64;
        for i in 0..10_000usize {
            // Every third server is full, to exercise the skip paths too.
            if let Some(s) = b.pick(&active, Some(keys[i % 64]), |s| s % 3 != 0) {
                picked += u64::from(s);
                // The bookkeeping of taking and returning the slot.
                b.load_changed(s, active[s as usize].get() + 1, u32::MAX);
                b.load_changed(s, active[s as usize].get(), u32::MAX);
            }
        }
        COUNTING.with(|c| c.set(false));
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        assert!(picked > 0);
        assert_eq!(after - before, 0, "{algo:?} allocated during picks");
    }
}
