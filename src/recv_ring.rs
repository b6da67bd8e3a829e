//! Multishot receives into the shard's provided-buffer ring (io_uring only).
//!
//! A single-shot receive costs a submission and, when no data is there yet, a poll the
//! kernel arms and disarms, on every call; and each direction of a copy holds its own
//! buffer while it waits. A multishot receive (monoio patch, `patches/monoio`) is
//! submitted once per connection and direction and stays armed: each arrival posts a
//! completion in a buffer the kernel takes from the shard's ring only then, so a quiet
//! connection holds no buffer. The ring is made on the shard's first use; where the
//! driver is the legacy one (or the kernel predates provided-buffer rings, 5.19, or
//! multishot receive, 6.0) there is none and callers read as before.
//!
//! When every buffer is out (more readable connections than buffers, their writes
//! slow) the kernel ends the receive with `ENOBUFS`: `next` says `Dry` and the caller
//! reads that once into a buffer of its own, then the receive is armed again. Nothing
//! waits for a buffer, so no connection stalls.
//!
//! `RINGLB_RECV_RING=N` sets the buffers per shard (a power of two up to 32768; 0
//! turns multishot receives off).

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::multishot::{BufRing, Received, RecvMulti, RingBuf};

/// Bytes per buffer: the copy loop's buffer size.
pub const BUF_SIZE: usize = 32 * 1024;

/// Buffers per shard by default: 4 MiB.
const ENTRIES: u16 = 128;

thread_local! {
    /// `None` until the first use; then the ring, or `None` where there is none.
    static RING: RefCell<Option<Option<BufRing>>> = const { RefCell::new(None) };
}

/// The shard's ring, made on first use; `None` where multishot receives are off or
/// unsupported. A shard whose runtime died gets a new runtime on the same thread: its
/// ring then belongs to the dead driver and is replaced (dropping the old one lets
/// that driver go).
fn ring() -> Option<BufRing> {
    RING.with(|r| {
        let mut r = r.borrow_mut();
        match &*r {
            Some(Some(ring)) if ring.is_current() => return Some(ring.clone()),
            Some(None) => return None,
            _ => {}
        }
        let made = make();
        *r = Some(made.clone());
        made
    })
}

fn make() -> Option<BufRing> {
    let entries = match std::env::var("RINGLB_RECV_RING") {
        Ok(v) => match v.trim().parse::<u16>() {
            Ok(0) => return None,
            Ok(n) if n.is_power_of_two() && n <= 32768 => n,
            _ => {
                tracing::warn!(value = %v, "RINGLB_RECV_RING: not a power of two up to 32768; using {ENTRIES}");
                ENTRIES
            }
        },
        Err(_) => ENTRIES,
    };
    match BufRing::new(0, entries, BUF_SIZE as u32) {
        Ok(r) => {
            tracing::info!(
                buffers = entries,
                "multishot receives into a ring of {entries} buffers of {} KiB",
                BUF_SIZE / 1024
            );
            Some(r)
        }
        Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
        Err(e) => {
            tracing::info!(error = %e, "no provided-buffer ring: receives are single-shot");
            None
        }
    }
}

/// One arrival.
pub enum Chunk {
    Data(RingBuf),
    /// The peer closed its side.
    Eof,
    /// No buffer was left (or the receive ended without EOF): read once some other
    /// way; the next `next` arms the receive again.
    Dry,
}

/// Multishot receives on one socket, armed again whenever one ends.
pub struct MultiRecv {
    fd: RawFd,
    ring: BufRing,
    armed: Option<RecvMulti>,
}

impl MultiRecv {
    /// `None`: no ring on this shard (legacy driver, old kernel, turned off).
    pub fn new(sock: &monoio::net::TcpStream) -> Option<MultiRecv> {
        Some(MultiRecv {
            fd: sock.as_raw_fd(),
            ring: ring()?,
            armed: None,
        })
    }

    /// The next arrival, arming a receive if none is.
    pub async fn next(&mut self) -> io::Result<Chunk> {
        if self.armed.is_none() {
            match RecvMulti::new(self.fd, &self.ring) {
                Ok(r) => self.armed = Some(r),
                // The submission queue is full even after a flush: read once instead.
                Err(_) => return Ok(Chunk::Dry),
            }
        }
        self.take().await
    }

    /// True when more has arrived already (the next `next` will not wait): the
    /// arrival just taken is part of a burst.
    pub fn more_queued(&self) -> bool {
        self.armed.as_ref().is_some_and(|r| r.has_queued())
    }

    /// Asks the armed receive to end (before the socket is read some other way).
    /// What it received before that still comes from `drain`.
    pub fn cancel(&mut self) {
        if let Some(r) = &mut self.armed {
            r.cancel();
        }
    }

    /// After `cancel`: the next arrival the receive made before it ended; `Dry` once
    /// it ended. Arms nothing.
    pub async fn drain(&mut self) -> io::Result<Chunk> {
        if self.armed.is_none() {
            return Ok(Chunk::Dry);
        }
        self.take().await
    }

    async fn take(&mut self) -> io::Result<Chunk> {
        let Some(armed) = &mut self.armed else {
            return Ok(Chunk::Dry);
        };
        let got = armed.recv().await;
        if !matches!(got, Ok(Received::Data(_))) || armed.is_ended() {
            // Ended (or failed): the next `next` arms a new one.
            self.armed = None;
        }
        match got? {
            Received::Data(b) => Ok(Chunk::Data(b)),
            Received::Eof => Ok(Chunk::Eof),
            Received::Stopped => Ok(Chunk::Dry),
        }
    }
}
