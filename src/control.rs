//! The only values that cross threads: messages to and from shards.

/// From the main, health or admin thread to one shard.
#[derive(Debug)]
pub enum ToShard {
    /// Close listeners now, let in-flight requests finish, then exit.
    Shutdown,
    /// The health thread's verdict on a server changed.
    ServerUp {
        backend: usize,
        server: usize,
        up: bool,
    },
}

/// From a shard to the main thread.
#[derive(Debug)]
pub enum FromShard {
    Started {
        shard: usize,
        driver: &'static str,
        core: Option<usize>,
    },
    Failed {
        shard: usize,
        error: String,
    },
    Stopped {
        shard: usize,
        /// Requests still in flight when the grace period ran out.
        abandoned: usize,
    },
}

/// From a shard to the health thread: a server failed for this shard (`streak` =
/// consecutive failures on this shard), or answered again after failing (`streak` 0).
#[derive(Debug, Clone, Copy)]
pub struct HealthReport {
    pub shard: usize,
    pub backend: usize,
    pub server: usize,
    pub streak: u32,
}
