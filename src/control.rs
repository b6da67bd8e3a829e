//! The only values that cross threads: messages to and from shards.

/// From the main (or admin) thread to one shard.
#[derive(Debug)]
pub enum ToShard {
    /// Close listeners now, let in-flight requests finish, then exit.
    Shutdown,
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
