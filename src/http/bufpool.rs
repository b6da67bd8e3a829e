//! A shard's free list of connection buffers. A connection takes its two 16 KiB
//! buffers (client bytes, server bytes) from here and gives them back when it ends,
//! so a new connection per request costs no malloc/free of them. The list is
//! thread-local: each shard is one thread, so no lock is involved.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// At most this many idle buffers per shard (4 MiB at the default 16 KiB).
const MAX_IDLE: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least the capacity asked for, returned to the shard's free
/// list when dropped (unless an I/O that was cancelled kept its storage).
pub struct PooledBuf {
    buf: Vec<u8>,
    cap: usize,
}

impl PooledBuf {
    pub fn take(cap: usize) -> Self {
        let reused = FREE.with(|f| f.borrow_mut().pop());
        let buf = match reused {
            Some(b) if b.capacity() >= cap => b,
            _ => Vec::with_capacity(cap),
        };
        Self { buf, cap }
    }

    /// Wraps a buffer that already holds bytes (those that followed a PROXY header).
    pub fn adopt(buf: Vec<u8>) -> Self {
        let cap = buf.capacity();
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
        // A read cut short by a timeout leaves an empty Vec here: nothing to keep.
        if buf.capacity() < self.cap || self.cap == 0 {
            return;
        }
        buf.clear();
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < MAX_IDLE {
                f.push(buf);
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
