//! ringlb patch: multishot receive into a provided-buffer ring.
//!
//! A `BufRing` is a group of equal buffers registered with the ring
//! (`IORING_REGISTER_PBUF_RING`, Linux 5.19). A `RecvMulti` is one receive submitted
//! with `IORING_RECV_MULTISHOT` (Linux 6.0): it stays armed and posts a completion each
//! time data arrives, in a buffer the kernel takes from the ring only then, until EOF,
//! an error, a cancel, or the ring running dry (`ENOBUFS`). A connection that waits
//! therefore holds no buffer and costs no submission per receive. A `RingBuf` is one
//! received buffer; dropping it gives it back to the ring.
//!
//! The operation's completions queue in its slab entry (`Lifecycle::Multi`) until the
//! receiver takes them, in order. A receiver dropped while the operation is armed
//! cancels it; buffers of completions nobody will take go straight back to the ring.

use std::{
    cell::{Cell, UnsafeCell},
    collections::VecDeque,
    io,
    os::unix::io::RawFd,
    ptr::NonNull,
    rc::{Rc, Weak},
    sync::atomic::{AtomicU16, Ordering},
    task::{Context, Poll, Waker},
};

use io_uring::{opcode, types};

use super::{lifecycle::Lifecycle, UringInner, CANCEL_USERDATA};
use crate::{
    buf::IoBuf,
    driver::{Inner, CURRENT},
};

const CQE_F_BUFFER: u32 = 1 << 0;
const CQE_F_MORE: u32 = 1 << 1;
const CQE_BUFFER_SHIFT: u32 = 16;

/// A multishot operation's state in the driver's slab.
pub(crate) struct MultiState {
    /// Completions not taken yet: result and flags.
    queue: VecDeque<(io::Result<u32>, u32)>,
    waker: Option<Waker>,
    /// The kernel posted the operation's last completion (no `IORING_CQE_F_MORE`).
    ended: bool,
    /// The group the operation takes its buffers from (weak: an operation left in a
    /// dropped runtime's slab must not keep its group, nor through it the driver).
    ring: Weak<RingInner>,
    /// Set once the receiver is gone: buffers of later completions go straight back.
    orphan: bool,
}

impl MultiState {
    /// Takes one completion. True when the entry can go (ended, nobody listening).
    pub(crate) fn complete(&mut self, result: io::Result<u32>, flags: u32) -> bool {
        if flags & CQE_F_MORE == 0 {
            self.ended = true;
        }
        if flags & CQE_F_BUFFER != 0 {
            if let Some(ring) = self.ring.upgrade() {
                // The kernel took a buffer.
                ring.free.set(ring.free.get() - 1);
                if self.orphan {
                    ring.give_back((flags >> CQE_BUFFER_SHIFT) as u16);
                }
            }
        }
        if self.orphan {
            return self.ended;
        }
        self.queue.push_back((result, flags));
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        false
    }
}

/// A group of `entries` buffers of `size` bytes each, registered with the thread's
/// io_uring. Cheap to clone (the group is shared).
#[derive(Clone)]
pub struct BufRing(Rc<RingInner>);

struct RingInner {
    driver: Rc<UnsafeCell<UringInner>>,
    /// The ring of entries the kernel takes buffers from (page aligned).
    ring: NonNull<types::BufRingEntry>,
    ring_bytes: usize,
    /// The buffers, `size` bytes each, one after the other.
    bufs: NonNull<u8>,
    bufs_bytes: usize,
    size: u32,
    entries: u16,
    bgid: u16,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: Cell<u16>,
    /// Buffers the kernel may take now.
    free: Cell<u16>,
}

fn map(bytes: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping; no pointer is passed in.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(p.cast()).expect("mmap returned null"))
}

impl BufRing {
    /// Registers `entries` buffers of `size` bytes as buffer group `bgid` on the
    /// current thread's io_uring. `entries`: a power of two, at most 32768. Fails with
    /// `Unsupported` on the legacy driver, and with the kernel's error where provided
    /// buffer rings are not supported (before 5.19).
    pub fn new(bgid: u16, entries: u16, size: u32) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 || size == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let driver = CURRENT.with(|inner| match inner {
            Inner::Uring(this) => Some(this.clone()),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let Some(driver) = driver else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        let ring_bytes = entries as usize * std::mem::size_of::<types::BufRingEntry>();
        let bufs_bytes = entries as usize * size as usize;
        let ring = map(ring_bytes)?;
        let bufs = match map(bufs_bytes) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: the mapping made just above, unused.
                unsafe { libc::munmap(ring.as_ptr().cast(), ring_bytes) };
                return Err(e);
            }
        };
        let inner = RingInner {
            driver,
            ring: ring.cast(),
            ring_bytes,
            bufs,
            bufs_bytes,
            size,
            entries,
            bgid,
            tail: Cell::new(0),
            free: Cell::new(0),
        };
        // SAFETY: the ring stays mapped until the group is unregistered (Drop).
        let registered = unsafe {
            (*inner.driver.get()).uring.submitter().register_buf_ring(
                ring.as_ptr() as u64,
                entries,
                bgid,
            )
        };
        if let Err(e) = registered {
            // SAFETY: both mappings made above, never registered.
            unsafe {
                libc::munmap(ring.as_ptr().cast(), ring_bytes);
                libc::munmap(bufs.as_ptr().cast(), bufs_bytes);
            }
            return Err(e);
        }
        for bid in 0..entries {
            inner.give_back(bid);
        }
        Ok(BufRing(Rc::new(inner)))
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.0.size as usize
    }

    /// Buffers in the group.
    pub fn entries(&self) -> usize {
        self.0.entries as usize
    }

    /// Buffers the kernel may take now (the others are received and not yet dropped).
    pub fn available(&self) -> usize {
        self.0.free.get() as usize
    }

    /// True when the group belongs to the driver of the thread's current runtime (a
    /// runtime built anew on the thread needs a group of its own).
    pub fn is_current(&self) -> bool {
        CURRENT.with(|inner| match inner {
            Inner::Uring(this) => Rc::ptr_eq(this, &self.0.driver),
            #[allow(unreachable_patterns)]
            _ => false,
        })
    }
}

impl RingInner {
    /// Puts buffer `bid` back at the ring's tail.
    fn give_back(&self, bid: u16) {
        let t = self.tail.get();
        // SAFETY: `t & (entries - 1)` is inside the mapped ring; the kernel reads only
        // entries before the published tail, and this one is at or after it.
        unsafe {
            let e = &mut *self.ring.as_ptr().add((t & (self.entries - 1)) as usize);
            e.set_addr(self.bufs.as_ptr() as u64 + bid as u64 * self.size as u64);
            e.set_len(self.size);
            e.set_bid(bid);
        }
        let t = t.wrapping_add(1);
        self.tail.set(t);
        self.free.set(self.free.get() + 1);
        // SAFETY: the tail field of the ring's first entry, shared with the kernel: an
        // aligned u16 it reads atomically.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(t, Ordering::Release);
        }
    }

    fn buf(&self, bid: u16) -> *const u8 {
        // SAFETY: `bid` < entries: inside the buffers' mapping.
        unsafe { self.bufs.as_ptr().add(bid as usize * self.size as usize) }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Every operation that could take a buffer held this group: none is left.
        // SAFETY: the driver outlives the group (held by `driver`).
        let _ = unsafe { (*self.driver.get()).uring.submitter() }.unregister_buf_ring(self.bgid);
        // SAFETY: the mappings made in `new`; the kernel no longer uses them.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
            libc::munmap(self.bufs.as_ptr().cast(), self.bufs_bytes);
        }
    }
}

/// One receive's data, in a buffer of the group; given back when dropped.
pub struct RingBuf {
    ring: Rc<RingInner>,
    bid: u16,
    len: u32,
}

impl std::ops::Deref for RingBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel wrote `len` bytes there and will not touch the buffer
        // until it is given back (on drop).
        unsafe { std::slice::from_raw_parts(self.ring.buf(self.bid), self.len as usize) }
    }
}

// SAFETY: the buffer stays where it is (inside the group's mapping, alive while this
// holds the group) until dropped.
unsafe impl IoBuf for RingBuf {
    fn read_ptr(&self) -> *const u8 {
        self.ring.buf(self.bid)
    }

    fn bytes_init(&self) -> usize {
        self.len as usize
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.give_back(self.bid);
    }
}

/// What a multishot receive gives.
pub enum Received {
    /// Data, in a buffer of the group.
    Data(RingBuf),
    /// The peer closed its side: the operation ended.
    Eof,
    /// The operation ended without EOF: the group ran dry (`ENOBUFS`), it was
    /// cancelled, or the kernel stopped it. Read some other way or arm a new one.
    Stopped,
}

/// A multishot receive on one socket (see the module's doc).
pub struct RecvMulti {
    driver: Rc<UnsafeCell<UringInner>>,
    ring: Rc<RingInner>,
    /// The slab entry; `usize::MAX` once the operation ended and was taken whole.
    index: usize,
}

impl RecvMulti {
    /// Arms a multishot receive on `fd`, into buffers of `ring`. The submission goes
    /// to the kernel with the thread's next batch.
    pub fn new(fd: RawFd, ring: &BufRing) -> io::Result<RecvMulti> {
        let driver = ring.0.driver.clone();
        // SAFETY: the driver of this thread, not borrowed elsewhere during this call.
        let inner = unsafe { &mut *driver.get() };
        if inner.uring.submission().is_full() {
            inner.submit()?;
        }
        let index = inner
            .ops
            .slab
            .insert(Lifecycle::Multi(Box::new(MultiState {
                queue: VecDeque::with_capacity(4),
                waker: None,
                ended: false,
                ring: Rc::downgrade(&ring.0),
                orphan: false,
            })));
        let sqe = opcode::RecvMulti::new(types::Fd(fd), ring.0.bgid)
            .build()
            .user_data(index as u64);
        // SAFETY: the entry's buffers belong to the registered group.
        if unsafe { inner.uring.submission().push(&sqe) }.is_err() {
            inner.ops.slab.remove(index);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(RecvMulti {
            driver,
            ring: ring.0.clone(),
            index,
        })
    }

    /// The next completion, in order.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Received>> {
        if self.index == usize::MAX {
            return Poll::Ready(Ok(Received::Stopped));
        }
        // SAFETY: the driver of this thread, not borrowed elsewhere during this call.
        let inner = unsafe { &mut *self.driver.get() };
        let mut entry = inner
            .ops
            .slab
            .get(self.index)
            .expect("multishot receive without its entry");
        let Lifecycle::Multi(state) = &mut *entry else {
            unreachable!("multishot receive entry of another kind")
        };
        let Some((result, flags)) = state.queue.pop_front() else {
            if state.ended {
                entry.remove();
                self.index = usize::MAX;
                return Poll::Ready(Ok(Received::Stopped));
            }
            match &state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        if state.ended && state.queue.is_empty() {
            entry.remove();
            self.index = usize::MAX;
        }
        let buf = (flags & CQE_F_BUFFER != 0).then(|| RingBuf {
            ring: self.ring.clone(),
            bid: (flags >> CQE_BUFFER_SHIFT) as u16,
            len: 0,
        });
        Poll::Ready(match (result, buf) {
            (Ok(0), _) => Ok(Received::Eof),
            (Ok(n), Some(mut b)) => {
                b.len = n;
                Ok(Received::Data(b))
            }
            (Ok(_), None) => Err(io::Error::other("multishot receive without a buffer")),
            (Err(e), _) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ECANCELED)) => {
                Ok(Received::Stopped)
            }
            (Err(e), _) => Err(e),
        })
    }

    /// The next completion, in order.
    pub async fn recv(&mut self) -> io::Result<Received> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// True when a completion is waiting to be taken (`recv` would not wait).
    pub fn has_queued(&self) -> bool {
        if self.index == usize::MAX {
            return false;
        }
        // SAFETY: the driver of this thread, not borrowed elsewhere during this call.
        let inner = unsafe { &mut *self.driver.get() };
        match inner.ops.slab.get(self.index).as_deref() {
            Some(Lifecycle::Multi(state)) => !state.queue.is_empty(),
            _ => false,
        }
    }

    /// True once the operation ended and everything it gave was taken.
    pub fn is_ended(&self) -> bool {
        self.index == usize::MAX
    }

    /// Asks the kernel to end the operation. Completions it made before still come:
    /// take them (`recv`) until `Eof`, `Stopped` or an error. Nothing is submitted
    /// when the kernel already posted its last completion (an EOF queued behind data).
    pub fn cancel(&mut self) {
        if self.index == usize::MAX {
            return;
        }
        // SAFETY: the driver of this thread, not borrowed elsewhere here.
        let inner = unsafe { &mut *self.driver.get() };
        let ended = match inner.ops.slab.get(self.index).as_deref() {
            Some(Lifecycle::Multi(state)) => state.ended,
            _ => true,
        };
        if !ended {
            push_cancel(inner, self.index);
        }
    }
}

fn push_cancel(inner: &mut UringInner, index: usize) {
    let cancel = opcode::AsyncCancel::new(index as u64)
        .build()
        .user_data(CANCEL_USERDATA);
    // SAFETY: a cancel carries no buffer.
    unsafe { inner.push_or_flush(&cancel) };
}

impl Drop for RecvMulti {
    fn drop(&mut self) {
        if self.index == usize::MAX {
            return;
        }
        // SAFETY: the driver of this thread, not borrowed elsewhere during drop.
        let inner = unsafe { &mut *self.driver.get() };
        let Some(mut entry) = inner.ops.slab.get(self.index) else {
            return;
        };
        let Lifecycle::Multi(state) = &mut *entry else {
            return;
        };
        for (_, flags) in state.queue.drain(..) {
            if flags & CQE_F_BUFFER != 0 {
                self.ring.give_back((flags >> CQE_BUFFER_SHIFT) as u16);
            }
        }
        if state.ended {
            entry.remove();
        } else {
            state.waker = None;
            state.orphan = true;
            drop(entry);
            push_cancel(inner, self.index);
        }
    }
}
