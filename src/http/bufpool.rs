//! A shard's free list of connection buffers. A connection takes its two 16 KiB
//! buffers (client bytes, server bytes) from here and gives them back when it ends,
//! so a new connection per request costs no malloc/free of them. The list is
//! thread-local: each shard is one thread, so no lock is involved.
//!
//! Buffers are kept by exact capacity: a buffer's capacity is a limit (a client's
//! head must fit `max_header_bytes`), so a larger one must never stand in for it.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// At most this many idle buffers per capacity and shard (4 MiB at the default 16 KiB).
const MAX_IDLE: usize = 256;
/// Capacities kept at once: a config uses one or two; a reload that changes
/// `max_header_bytes` retires the oldest list instead of keeping it forever.
const MAX_CLASSES: usize = 4;

thread_local! {
    /// (capacity, idle buffers of exactly that capacity); a config has one or two.
    static FREE: RefCell<Vec<(usize, Vec<Vec<u8>>)>> = const { RefCell::new(Vec::new()) };
    /// Bytes of the buffers handed out and not given back, for the statistics.
    static OUT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This shard's buffers: (bytes in use by connections, bytes idle in the free list),
/// HAProxy's pool figures for `show info`.
pub fn figures() -> (u64, u64) {
    let used = OUT.with(|o| o.get()) as u64;
    let idle = FREE.with(|f| {
        f.borrow()
            .iter()
            .map(|(cap, l)| (cap * l.len()) as u64)
            .sum()
    });
    (used, idle)
}

/// An empty buffer of at least the capacity asked for, returned to the shard's free
/// list when dropped (unless an I/O that was cancelled kept its storage).
pub struct PooledBuf {
    buf: Vec<u8>,
    cap: usize,
}

impl PooledBuf {
    pub fn take(cap: usize) -> Self {
        let reused = FREE.with(|f| {
            let mut f = f.borrow_mut();
            f.iter_mut()
                .find(|(c, _)| *c == cap)
                .and_then(|(_, l)| l.pop())
        });
        let buf = reused.unwrap_or_else(|| Vec::with_capacity(cap));
        let _ = OUT.try_with(|o| o.set(o.get() + cap));
        Self { buf, cap }
    }

    /// Wraps a buffer that already holds bytes (those that followed a PROXY header).
    pub fn adopt(buf: Vec<u8>) -> Self {
        let cap = buf.capacity();
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
        let _ = OUT.try_with(|o| o.set(o.get().saturating_sub(self.cap)));
        let mut buf = std::mem::take(&mut self.buf);
        // A read cut short by a timeout leaves an empty Vec here: nothing to keep.
        if buf.capacity() != self.cap || self.cap == 0 {
            return;
        }
        buf.clear();
        // `try_with`: a buffer dropped while the thread's locals are torn down is freed.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            let i = match f.iter().position(|(c, _)| *c == self.cap) {
                Some(i) => i,
                None => {
                    if f.len() == MAX_CLASSES {
                        f.remove(0);
                    }
                    f.push((self.cap, Vec::new()));
                    f.len() - 1
                }
            };
            if f[i].1.len() < MAX_IDLE {
                f[i].1.push(buf);
            }
        });
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
