//! Giving freed memory back to the system. glibc's malloc keeps what a program frees
//! in its arenas (one per thread that allocates, up to 8 per core) and returns it only
//! when the top of a heap is free: after a reload, the memory of the replaced
//! configuration generation (its servers, counters, histograms, on every shard) stays
//! in the process's RSS, mixed with live data. `malloc_trim(0)` walks every arena and
//! hands whole free pages back (`madvise`).
//!
//! A trim locks each arena while it walks it (a shard allocating meanwhile waits; the
//! request path allocates nothing once warm), so it never runs on a shard itself: `trim_soon` asks the trimmer thread, which
//! waits a little so that the generations several shards drop at about the same time
//! cost one trim. It runs after start (what parsing the config left) and whenever a
//! replaced generation is finally dropped (its last connection closed). Other
//! allocators and C libraries: nothing to do.
//!
//! Measured on the 2,000-backend config of `benches/large_config.py` (2 shards): a
//! fresh start 33 → 22 MB, and RSS after 10 reloads 1.56 × → 1.13 × a fresh start (the
//! rest is fragmentation of the main thread's heap; the live heap does not grow).
//! `MALLOC_ARENA_MAX=1`, `MALLOC_MMAP_THRESHOLD_` of 16 or 64 KiB and
//! `MALLOC_TOP_PAD_=0` changed nothing measurable (README, Memory and large configs).

use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// How long the trimmer waits after a request, for other shards' requests to join.
const GATHER: Duration = Duration::from_millis(100);

static TRIMMER: OnceLock<Sender<()>> = OnceLock::new();

/// Hands free memory back to the system now (on the calling thread).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists; it is
    // thread-safe (it locks each arena) and takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks for a trim soon, on the trimmer thread (started on first use). Never blocks
/// and allocates nothing once the thread runs: requests made while one waits join it.
pub fn trim_soon() {
    let tx = TRIMMER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("ringlb-trim".into())
            .spawn(move || trimmer(rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no trimmer thread: freed memory stays with the allocator");
        }
        tx
    });
    let _ = tx.try_send(());
}

fn trimmer(rx: Receiver<()>) {
    while rx.recv().is_ok() {
        std::thread::sleep(GATHER);
        while rx.try_recv().is_ok() {}
        trim();
    }
}
