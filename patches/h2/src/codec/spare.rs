//! Write buffers of idle connections, kept per thread for the next connection that has
//! something to send (ringlb's patch, change 3 in README.md).
//!
//! An idle connection frees its write buffer (`FramedWrite::release_idle_buffer`). A
//! server whose clients send streams in batches (each connection idle for a moment
//! between them) would then free and allocate one per batch and connection; a 16 KiB
//! block is often mapped and unmapped by the allocator, page faults included. Kept
//! here instead, a few of them serve whichever connection needs one next.

use bytes::BytesMut;
use std::cell::RefCell;

/// At most this many per thread (512 KiB of 16 KiB buffers).
const MAX_SPARE: usize = 32;

struct Spare {
    idle: Vec<BytesMut>,
    /// The fewest idle since the last `trim_spare_buffers`: those went unused.
    low: usize,
}

thread_local! {
    static SPARE: RefCell<Spare> = const {
        RefCell::new(Spare {
            idle: Vec::new(),
            low: 0,
        })
    };
}

/// An empty buffer of at least `capacity`: a spare one, or a new one.
pub(crate) fn take(capacity: usize) -> BytesMut {
    let spare = SPARE
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let buf = s.idle.pop();
            s.low = s.low.min(s.idle.len());
            buf
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| BytesMut::with_capacity(capacity))
}

/// Keeps an idle connection's buffer for the next one (if it still has `capacity`
/// and fewer than `MAX_SPARE` are kept); frees it otherwise.
pub(crate) fn put(mut buf: BytesMut, capacity: usize) {
    buf.clear();
    if buf.capacity() < capacity {
        return;
    }
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.idle.len() < MAX_SPARE {
            s.idle.push(buf);
        }
    });
}

/// Frees this thread's spare write buffers that no connection took since the last
/// call; returns how many bytes were freed. For a server to call periodically (ringlb:
/// once a second), so a burst's buffers do not stay for good.
pub fn trim_spare_buffers() -> usize {
    SPARE
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let from = s.idle.len() - s.low;
            let freed = s.idle.drain(from..).map(|b| b.capacity()).sum();
            s.low = s.idle.len();
            freed
        })
        .unwrap_or(0)
}
