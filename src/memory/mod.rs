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
//! fresh start 33 → 22 MB, and RSS after 10 reloads 1.56 × → 1.18 × a fresh start with
//! the trim, 1.12 × with configs built in turn on two threads (`build_in_turn`), 1.02 ×
//! with each config built in a region of its own (`region`), which leaves glibc none of
//! a config's pages to fragment.

pub mod region;

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
    // The thread may start during a build: its name is not the config's.
    let tx = TRIMMER.get_or_init(|| region::outside(|| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("ringlb-trim".into())
            .spawn(move || trimmer(rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no trimmer thread: freed memory stays with the allocator");
        }
        tx
    }));
    let _ = tx.try_send(());
}

fn trimmer(rx: Receiver<()>) {
    let mut released = 0;
    while rx.recv().is_ok() {
        std::thread::sleep(GATHER);
        while rx.try_recv().is_ok() {}
        trim();
        let (in_use, bytes, total) = region::usage();
        if total != released {
            released = total;
            tracing::info!(
                released = total,
                in_use,
                kib = bytes / 1024,
                "replaced configurations' memory returned to the system"
            );
        }
    }
}

/// A job for a config builder thread.
type Job = Box<dyn FnOnce() + Send>;

/// The builder threads (spawned on first use), each a job channel and its handle.
type Builders = [Option<(Sender<Job>, std::thread::JoinHandle<()>)>; 2];

static BUILDERS: std::sync::Mutex<Option<Builders>> = std::sync::Mutex::new(None);
static NEXT_BUILDER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Ends the builder threads and waits for them, so that the process has one thread
/// again (`daemon` forks then); the next `build_in_turn` starts them anew.
pub fn stop_builders() {
    let taken = BUILDERS.lock().ok().and_then(|mut b| b.take());
    for (tx, handle) in taken.into_iter().flatten().flatten() {
        drop(tx);
        let _ = handle.join();
    }
}

/// Runs `build` (reading a config) on one of two long-lived builder threads, in turn,
/// and returns what it made.
///
/// Why: glibc's malloc gives each thread an arena of its own. A config built on the
/// thread that also holds the previous one lands in the holes that generation and the
/// parser's temporaries left, and once the old one is freed the pages stay half used:
/// RSS crept by some 15 % over a fresh start after the first reload of a 10,000-server
/// config, with the live heap flat. Built in turn on two threads, generation N+1 fills
/// the arena generation N-1 left empty (every connection of N-1 closed by then), so
/// each arena holds one config and what the parser left is trimmed whole: RSS after a
/// reload stays near a fresh start's. The threads sleep on a channel between reloads.
pub fn build_in_turn<T: Send + 'static>(build: impl FnOnce() -> T + Send + 'static) -> T {
    let turn = NEXT_BUILDER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2;
    let tx = match BUILDERS.lock() {
        Ok(mut b) => b.get_or_insert_with(|| [spawn_builder(0), spawn_builder(1)])[turn]
            .as_ref()
            .map(|(tx, _)| tx.clone()),
        Err(_) => None,
    };
    let Some(tx) = tx else {
        return in_region(build);
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let job: Job = Box::new(move || {
        let _ = done_tx.send(in_region(build));
    });
    // A builder that died (a panic in an earlier build) hands the job back: it runs here.
    if let Err(crossbeam_channel::SendError(job)) = tx.send(job) {
        job();
    }
    done_rx
        .recv()
        .unwrap_or_else(|_| panic!("building the configuration panicked"))
}

/// Runs `build` with its allocations in a config region of their own (`region`).
fn in_region<T>(build: impl FnOnce() -> T) -> T {
    let building = region::enter();
    let made = build();
    drop(building);
    made
}

fn spawn_builder(n: usize) -> Option<(Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    let spawned = std::thread::Builder::new()
        .name(format!("ringlb-cfg{n}"))
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        });
    match spawned {
        Ok(handle) => Some((tx, handle)),
        Err(e) => {
            tracing::warn!(error = %e, "no config builder thread: configs are built in place");
            None
        }
    }
}
