//! Giving freed memory back to the system. glibc's malloc keeps what a program frees
//! in its arenas (one per thread that allocates, up to 8 per core) and returns it only
//! when the top of a heap is free: after a reload, the memory of the replaced
//! configuration generation (its servers, counters, histograms, on every shard) stays
//! in the process's RSS, mixed with live data. `malloc_trim(0)` walks every arena and
//! hands whole free pages back (`madvise`).
//!
//! A trim takes 1–10 ms for a config of 10,000 servers and locks each arena while it
//! walks it, so it never runs on a shard: `trim_soon` asks the trimmer thread, which
//! waits a little so that the generations several shards drop at about the same time
//! cost one trim. It runs after start (what parsing the config left) and whenever a
//! replaced generation is finally dropped (its last connection closed). Other
//! allocators and C libraries: nothing to do.
//!
//! Measured on the 2,000-backend config of `benches/large_config.py` (2 shards): RSS
//! after 5 reloads went from 1.55 × a fresh start to 1.13 ×; `M_ARENA_MAX=1` (one
//! arena for every thread) made RSS 8 MB smaller but kept the growth and makes every
//! shard allocate under one lock; `M_TRIM_THRESHOLD`/`M_MMAP_THRESHOLD` of 128 KiB did
//! not help (README, Memory).

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
