//! Config regions: each configuration is built in an address range of its own, and the
//! whole range goes back to the system once the last piece of that configuration is freed.
//!
//! Why: glibc lays a new configuration out among the holes its predecessor and the
//! parser's temporaries left in an arena, so RSS crept with every reload although the
//! bytes in use stayed flat (README, Memory and large configs). Here a build's
//! allocations come from a region that holds nothing else, so nothing of another
//! generation sits between them, and a replaced configuration leaves no half-used page
//! behind.
//!
//! How: [`ConfigRegions`] is the process's global allocator (`main.rs`). It passes every
//! allocation to the system allocator except those of a thread inside [`enter`] (a config
//! builder thread while it builds): these take size-class chunks (16 B to 4 KiB; a chunk
//! never straddles a page) or whole pages from the thread's region, carved forward with
//! free lists for what the build frees meanwhile. A free is routed by address (one range
//! check). Each page counts the chunks on it. When the build ends the region is sealed: no
//! allocation comes to it again, its free lists are dropped and every page left empty (the
//! parser's temporaries) goes back to the system at once; after that a page goes back
//! when its last chunk is freed, so something a configuration leaves alive (a name a
//! global cache kept) pins a page, not the region. When nothing of the region is left,
//! the whole range is released and the slot serves a later build. With no free slot, or
//! when the reservation was refused, a build allocates from the system as before.
//!
//! The request path is untouched: shards never allocate in a region, and a free costs one
//! comparison more. `RINGLB_CONFIG_REGIONS=0` turns regions off (measurements).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Regions, each a reservation of address space (no memory until touched).
const SLOTS: usize = 16;
const REGION: usize = 512 << 20;
const PAGE: usize = 4096;
const PAGES: usize = REGION / PAGE;
/// The page counts (one `u32` per page) sit at the region's start.
const META: usize = PAGES * 4;

/// Chunk sizes; a request goes to the first that holds it. Powers of two are carved
/// aligned to their size, the others to 16 bytes.
const CLASSES: [usize; 28] = [
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
];

const FREE: u8 = 0;
const BUILDING: u8 = 1;
const SEALED: u8 = 2;
const RELEASING: u8 = 3;

struct Region {
    state: AtomicU8,
    /// The next offset to carve from (moved by the building thread only).
    bump: AtomicUsize,
    /// Chunks and page runs alive, plus one held by the build until it seals.
    live: AtomicUsize,
    lock: AtomicBool,
    /// Free-list heads by class (addresses; 0 is empty), under `lock`, while building.
    free: UnsafeCell<[usize; CLASSES.len()]>,
    /// Pages holding something at the seal, in bytes.
    sealed_bytes: AtomicUsize,
}

// SAFETY: `free` is only touched under `lock`; everything else is atomic.
unsafe impl Sync for Region {}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Region = Region {
    state: AtomicU8::new(FREE),
    bump: AtomicUsize::new(META),
    live: AtomicUsize::new(0),
    lock: AtomicBool::new(false),
    free: UnsafeCell::new([0; CLASSES.len()]),
    sealed_bytes: AtomicUsize::new(0),
};

static REGIONS: [Region; SLOTS] = [EMPTY; SLOTS];
/// The start of the reservation (0 until made).
static BASE: AtomicUsize = AtomicUsize::new(0);
static RESERVED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

thread_local! {
    /// The region this thread builds in, plus one (0: none).
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The process's allocator: the system's, with config regions for builder threads.
pub struct ConfigRegions;

/// A build in progress; dropping it seals the region.
pub struct Building {
    slot: usize,
    /// Sealed on the thread that built.
    _here: std::marker::PhantomData<*const ()>,
}

/// Makes the calling thread's allocations come from a free region until the guard drops.
/// `None` when regions are off, the reservation was refused or every slot is taken (the
/// build then allocates from the system).
pub fn enter() -> Option<Building> {
    let base = *RESERVED.get_or_init(reserve);
    if base == 0 || CURRENT.with(Cell::get) != 0 {
        return None;
    }
    let slot = REGIONS.iter().position(|r| {
        r.state
            .compare_exchange(FREE, BUILDING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })?;
    REGIONS[slot].live.store(1, Ordering::Release);
    CURRENT.with(|c| c.set(slot + 1));
    Some(Building {
        slot,
        _here: std::marker::PhantomData,
    })
}

impl Drop for Building {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(0));
        seal(self.slot);
    }
}

/// Runs `f` with its allocations from the system even on a building thread: for
/// process-wide state a build makes once and every later config shares (the process's
/// TLS ticket keys, helper threads), which would otherwise keep its region.
pub fn outside<T>(f: impl FnOnce() -> T) -> T {
    let slot = current();
    let _ = CURRENT.try_with(|c| c.set(0));
    let made = f();
    let _ = CURRENT.try_with(|c| c.set(slot));
    made
}

/// Regions released whole so far (nothing is logged from inside the allocator).
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// What the regions hold: those in use (built or building), the bytes of their pages
/// at their seals, and how many were released whole so far.
pub fn usage() -> (usize, usize, usize) {
    let busy = REGIONS
        .iter()
        .filter(|r| r.state.load(Ordering::Acquire) != FREE);
    let (n, bytes) = busy.fold((0, 0), |(n, b), r| {
        (n + 1, b + r.sealed_bytes.load(Ordering::Relaxed))
    });
    (n, bytes, RELEASED.load(Ordering::Relaxed))
}

fn reserve() -> usize {
    if std::env::var_os("RINGLB_CONFIG_REGIONS").is_some_and(|v| v == "0") {
        return 0;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's choice; it
    // touches no existing memory. NORESERVE: only pages written cost memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SLOTS * REGION,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        tracing::debug!("no config regions: the address space reservation was refused");
        return 0;
    }
    BASE.store(p as usize, Ordering::Release);
    p as usize
}

fn start(slot: usize) -> usize {
    BASE.load(Ordering::Acquire) + slot * REGION
}

/// The region holding `p`, if any.
#[inline]
fn slot_of(p: *mut u8) -> Option<usize> {
    let base = BASE.load(Ordering::Relaxed);
    let off = (p as usize).wrapping_sub(base);
    (base != 0 && off < SLOTS * REGION).then_some(off / REGION)
}

/// The class index for a layout, or `None` for whole pages.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(1);
    let want = if layout.align() > 16 {
        size.max(layout.align()).next_power_of_two()
    } else {
        size
    };
    (want <= PAGE).then(|| CLASSES.partition_point(|&c| c < want))
}

fn pages_of(layout: Layout) -> usize {
    layout.size().max(1).div_ceil(PAGE)
}

fn page_count(slot: usize, page: usize) -> &'static AtomicU32 {
    // SAFETY: the counts array fills the region's first META bytes, inside the mapping
    // (which lives for the process), and AtomicU32 has u32's layout; zeroed pages are 0.
    unsafe { &*((start(slot) + page * 4) as *const AtomicU32) }
}

/// Gives pages back to the system (they read as zeros when touched again).
fn release_pages(addr: usize, len: usize) {
    // SAFETY: the range is inside the reservation and holds nothing alive.
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

impl Region {
    fn lock(&self) {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    fn unlock(&self) {
        self.lock.store(false, Ordering::Release);
    }
}

/// Carves `size` bytes at `align` from the region's end, or `None` when it is full.
fn carve(r: &Region, size: usize, align: usize) -> Option<usize> {
    let mut off = r.bump.load(Ordering::Relaxed).next_multiple_of(align);
    if off / PAGE != (off + size - 1) / PAGE && size <= PAGE {
        off = off.next_multiple_of(PAGE);
    }
    (off + size <= REGION).then(|| {
        r.bump.store(off + size, Ordering::Release);
        off
    })
}

/// # Safety
/// Called by the thread that builds in `slot`.
unsafe fn region_alloc(slot: usize, layout: Layout) -> Option<*mut u8> {
    let r = &REGIONS[slot];
    let base = start(slot);
    let off = match class_of(layout) {
        Some(c) => {
            r.lock();
            // SAFETY: under the lock.
            let free = unsafe { &mut *r.free.get() };
            let off = if free[c] != 0 {
                let p = free[c];
                // SAFETY: a free chunk holds the next one's address; its page stays
                // resident while the region builds.
                free[c] = unsafe { *(p as *const usize) };
                Some(p - base)
            } else {
                let size = CLASSES[c];
                carve(r, size, if size.is_power_of_two() { size } else { 16 })
            };
            r.unlock();
            let off = off?;
            page_count(slot, off / PAGE).fetch_add(1, Ordering::Relaxed);
            off
        }
        None if layout.align() <= PAGE => {
            let off = carve(r, pages_of(layout) * PAGE, PAGE)?;
            for page in off / PAGE..off / PAGE + pages_of(layout) {
                page_count(slot, page).fetch_add(1, Ordering::Relaxed);
            }
            off
        }
        None => return None,
    };
    r.live.fetch_add(1, Ordering::Relaxed);
    Some((base + off) as *mut u8)
}

/// # Safety
/// `p` was allocated in `slot` with `layout` and is not used again.
unsafe fn region_free(slot: usize, p: *mut u8, layout: Layout) {
    let r = &REGIONS[slot];
    let base = start(slot);
    let off = p as usize - base;
    match class_of(layout) {
        Some(c) => {
            if r.state.load(Ordering::Acquire) == BUILDING {
                r.lock();
                if r.state.load(Ordering::Acquire) == BUILDING {
                    // SAFETY: under the lock; the chunk is ours and at least 16 bytes.
                    unsafe {
                        let free = &mut *r.free.get();
                        *(p as *mut usize) = free[c];
                        free[c] = p as usize;
                    }
                }
                r.unlock();
            }
            let page = off / PAGE;
            // A page emptied after the seal goes back now; one emptied while building
            // may hold free-list chunks, and the seal's sweep takes it.
            if page_count(slot, page).fetch_sub(1, Ordering::AcqRel) == 1
                && r.state.load(Ordering::Acquire) == SEALED
            {
                release_pages(base + page * PAGE, PAGE);
            }
        }
        None => {
            let first = off / PAGE;
            for page in first..first + pages_of(layout) {
                page_count(slot, page).fetch_sub(1, Ordering::AcqRel);
            }
            release_pages(p as usize, pages_of(layout) * PAGE);
        }
    }
    // Last, so that the region cannot be released and reused under a page release above.
    drop_live(slot);
}

fn drop_live(slot: usize) {
    let r = &REGIONS[slot];
    if r.live.fetch_sub(1, Ordering::AcqRel) == 1
        && r.state
            .compare_exchange(SEALED, RELEASING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        let used = r.bump.load(Ordering::Acquire);
        release_pages(start(slot), used.next_multiple_of(PAGE));
        r.bump.store(META, Ordering::Relaxed);
        RELEASED.fetch_add(1, Ordering::Relaxed);
        r.state.store(FREE, Ordering::Release);
    }
}

/// Ends a build: drops the free lists, gives every empty page back, and lets the last
/// free release the region.
fn seal(slot: usize) {
    let r = &REGIONS[slot];
    r.lock();
    r.state.store(SEALED, Ordering::Release);
    // SAFETY: under the lock.
    unsafe { *r.free.get() = [0; CLASSES.len()] };
    r.unlock();
    let base = start(slot);
    let end = r.bump.load(Ordering::Acquire).div_ceil(PAGE);
    let mut run: Option<usize> = None;
    let mut kept = 0;
    for page in META / PAGE..=end {
        let empty = page < end && page_count(slot, page).load(Ordering::Acquire) == 0;
        match (empty, run) {
            (true, None) => run = Some(page),
            (false, Some(first)) => {
                release_pages(base + first * PAGE, (page - first) * PAGE);
                run = None;
            }
            _ => {}
        }
        kept += usize::from(!empty && page < end);
    }
    r.sealed_bytes.store(kept * PAGE, Ordering::Relaxed);
    drop_live(slot);
}

fn current() -> usize {
    CURRENT.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every pointer goes back to the allocator that made it (routed by address);
// region chunks meet their layout's size and alignment (see `class_of` and `carve`).
unsafe impl GlobalAlloc for ConfigRegions {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let slot = current();
        if slot != 0 {
            // SAFETY: this thread builds in that slot.
            if let Some(p) = unsafe { region_alloc(slot - 1, layout) } {
                return p;
            }
        }
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let slot = current();
        if slot != 0 {
            // SAFETY: as in `alloc`; a reused chunk is zeroed here.
            if let Some(p) = unsafe { region_alloc(slot - 1, layout) } {
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
                return p;
            }
        }
        // SAFETY: forwarded as given.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match slot_of(p) {
            // SAFETY: `p` came from that region with this layout.
            Some(slot) => unsafe { region_free(slot, p, layout) },
            // SAFETY: `p` came from the system allocator.
            None => unsafe { System.dealloc(p, layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if slot_of(p).is_none() {
            // A system block stays with the system, even on a building thread.
            // SAFETY: forwarded as given.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: the caller guarantees a valid size for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let same = match (class_of(layout), class_of(new_layout)) {
            (Some(a), Some(b)) => a == b,
            (None, None) => pages_of(layout) == pages_of(new_layout),
            _ => false,
        };
        if same {
            return p;
        }
        // SAFETY: a fresh block (a region's if this thread builds, else the system's),
        // the old one's bytes copied, then the old one freed.
        unsafe {
            let q = self.alloc(new_layout);
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_fit_and_never_straddle_a_page() {
        for (size, align) in [
            (1, 1),
            (17, 8),
            (100, 32),
            (4000, 16),
            (4096, 4096),
            (24, 64),
        ] {
            let c = class_of(layout(size, align)).unwrap();
            assert!(CLASSES[c] >= size && CLASSES[c] >= align.min(CLASSES[c]));
            if align > 16 {
                assert!(CLASSES[c].is_power_of_two() && CLASSES[c] >= align);
            }
        }
        assert_eq!(class_of(layout(4097, 8)), None);
    }

    /// A build's memory, the temporaries it freed and what it kept, all goes back once
    /// the last kept block is freed, and the slot serves the next build.
    #[test]
    fn a_region_is_released_when_its_last_block_goes() {
        let Some(building) = enter() else {
            // The reservation was refused here (or regions are off): nothing to test.
            assert!(
                std::env::var_os("RINGLB_CONFIG_REGIONS").is_some()
                    || BASE.load(Ordering::Relaxed) == 0
            );
            return;
        };
        let slot = building.slot;
        let mut kept = Vec::new();
        let mut temporaries = Vec::new();
        for i in 0..2000 {
            let l = layout(8 + (i * 37) % 3000, if i % 7 == 0 { 64 } else { 8 });
            // SAFETY: this thread builds in `slot`.
            let p = unsafe { region_alloc(slot, l) }.unwrap();
            assert_eq!(slot_of(p), Some(slot));
            assert_eq!(p as usize % l.align(), 0);
            // SAFETY: fresh memory of that size.
            unsafe { std::ptr::write_bytes(p, 0xab, l.size()) };
            if i % 3 == 0 {
                kept.push((p, l))
            } else {
                temporaries.push((p, l))
            }
        }
        let big = layout(100_000, 8);
        // SAFETY: as above.
        let large = unsafe { region_alloc(slot, big) }.unwrap();
        for (p, l) in temporaries.drain(..) {
            // SAFETY: allocated above with that layout.
            unsafe { region_free(slot, p, l) };
        }
        // A freed chunk is handed out again while building.
        let again = layout(16, 8);
        // SAFETY: as above.
        let reused = unsafe { region_alloc(slot, again) }.unwrap();
        assert!(
            (reused as usize) < start(slot) + REGIONS[slot].bump.load(Ordering::Relaxed) - 100_000
        );
        kept.push((reused, again));
        kept.push((large, big));
        drop(building);
        assert_eq!(REGIONS[slot].state.load(Ordering::Acquire), SEALED);
        for (p, l) in &kept {
            // The kept blocks are intact after the seal's sweep.
            // SAFETY: live blocks.
            assert!(*l == again || *l == big || unsafe { **p } == 0xab);
        }
        for (p, l) in kept {
            // SAFETY: allocated above with that layout.
            unsafe { region_free(slot, p, l) };
        }
        assert_eq!(REGIONS[slot].state.load(Ordering::Acquire), FREE);
        assert_eq!(REGIONS[slot].bump.load(Ordering::Relaxed), META);
        assert_eq!(page_count(slot, META / PAGE).load(Ordering::Relaxed), 0);
    }
}
