//! Reads and writes with a deadline over rent-model buffers, for any stream of the
//! data path (a plain socket today, a TLS stream next). A timed-out operation is
//! dropped with its buffer: the caller closes the connection, so no byte is lost.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::task::Poll;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::{sleep_until, Instant, Sleep};

use crate::bufpool::Recycled;

/// A connection's one timer, re-armed for each operation instead of a timer made,
/// registered and dropped per read or write. A later deadline only moves the armed
/// expiry (monoio re-files the entry when the earlier one comes due), so steady
/// keep-alive traffic barely touches the timer wheel. A quiet connection gives its
/// timer back (`release`: monoio's timer is 640 bytes) and waits on the shard's shared
/// deadlines instead (`idle`); the timer's memory is recycled through the shard's
/// free list, and the timer made again on the next bounded operation.
pub struct Timer(Option<Recycled<Sleep>>);

impl Timer {
    pub fn new(at: Instant) -> Self {
        Self(Some(Recycled::new(sleep_until(at))))
    }

    /// A timer not made yet (it is, on the first bounded operation).
    pub fn none() -> Self {
        Self(None)
    }

    /// Gives the timer back while the connection waits without it.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// The timer, armed for `at` (made first if it was given back). Inlined: it runs
    /// for every read and write of the request path.
    #[inline(always)]
    fn armed(&mut self, at: Instant) -> std::pin::Pin<&mut Sleep> {
        if self.0.is_none() {
            self.make(at);
        }
        let Some(timer) = &mut self.0 else {
            unreachable!("the timer was just made")
        };
        let mut sleep = timer.pinned();
        sleep.as_mut().reset(at);
        sleep
    }

    /// Makes the timer again after `release`.
    #[cold]
    #[inline(never)]
    fn make(&mut self, at: Instant) {
        self.0 = Some(Recycled::new(sleep_until(at)));
    }

    /// Runs `op` to completion, or drops it and returns `None` once `at` has passed.
    pub async fn bound<F: Future>(&mut self, at: Instant, op: F) -> Option<F::Output> {
        let mut sleep = self.armed(at);
        let mut op = std::pin::pin!(op);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(v) = op.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }
}

thread_local! {
    /// This thread's runtime runs the legacy (epoll) driver.
    static EPOLL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Told once per shard thread, when its runtime starts.
pub fn set_epoll_driver(epoll: bool) {
    EPOLL.with(|e| e.set(epoll));
}

/// A read in flight can be dropped without losing bytes: on epoll a read is a wait for
/// readiness and then a `recv` done when polled, while on io_uring the kernel may
/// complete a read (into the buffer it holds) after the future was dropped.
pub fn reads_drop_safely() -> bool {
    EPOLL.with(|e| e.get())
}

pub enum ReadOutcome {
    Data(usize),
    Eof,
    Timeout,
    /// Reset or another socket error: the connection is unusable.
    Error,
}

impl ReadOutcome {
    /// What a read's result is.
    pub fn of(res: io::Result<usize>) -> ReadOutcome {
        match res {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadOutcome::Data(0),
            Err(_) => ReadOutcome::Error,
        }
    }
}

/// Reads into the spare capacity of `buf` (after its `len`).
pub async fn read_into<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    timer: &mut Timer,
    deadline: Instant,
) -> ReadOutcome {
    let b = std::mem::take(buf);
    let (len, cap) = (b.len(), b.capacity());
    debug_assert!(len < cap);
    match timer
        .bound(deadline, stream.read(b.slice_mut(len..cap)))
        .await
    {
        Some((res, slice)) => {
            *buf = slice.into_inner();
            ReadOutcome::of(res)
        }
        None => ReadOutcome::Timeout,
    }
}

#[derive(Debug)]
pub enum WriteError {
    Timeout,
    Io,
}

/// Writes `buf[range]` completely.
pub async fn write_range<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), WriteError> {
    if range.is_empty() {
        return Ok(());
    }
    let b = std::mem::take(buf);
    match timer
        .bound(deadline, stream.write_all(b.slice(range)))
        .await
    {
        Some((res, slice)) => {
            *buf = slice.into_inner();
            res.map(drop).map_err(|_| WriteError::Io)
        }
        None => Err(WriteError::Timeout),
    }
}

/// Writes a static reply.
pub async fn write_static<S: AsyncWriteRent>(
    stream: &mut S,
    bytes: &'static [u8],
    timer: &mut Timer,
    deadline: Instant,
) -> Result<(), WriteError> {
    match timer.bound(deadline, stream.write_all(bytes)).await {
        Some((res, _)) => res.map(drop).map_err(|_| WriteError::Io),
        None => Err(WriteError::Timeout),
    }
}

/// Ends a connection after a local reply: stop writing, then read and discard what
/// the client still sends for a moment, so the kernel does not answer it with a reset
/// that could destroy the reply before the client reads it.
pub async fn linger_close<S: AsyncReadRent + AsyncWriteRent>(
    mut stream: S,
    scratch: Vec<u8>,
    mut timer: Timer,
) {
    let _ = stream.shutdown().await;
    let mut buf = if scratch.capacity() >= 4096 {
        scratch
    } else {
        Vec::with_capacity(4096)
    };
    let deadline = Instant::now() + std::time::Duration::from_millis(500);
    let mut drained = 0usize;
    while drained < (1 << 20) {
        buf.clear();
        match read_into(&mut stream, &mut buf, &mut timer, deadline).await {
            ReadOutcome::Data(n) => drained += n,
            _ => break,
        }
    }
}

/// A stream the data path serves clients on: a plain socket or a TLS stream.
/// What only a plain socket can do (splice: bytes that never enter user space) asks
/// for it through `socket`. It splits into halves (a tunnel copies both ways at once).
pub trait Stream: AsyncReadRent + AsyncWriteRent + monoio::io::Split + 'static {
    /// The socket itself, when bytes may go to and from it untouched.
    fn socket(&self) -> Option<&monoio::net::TcpStream>;

    /// The socket, when nothing is buffered above it (no byte read and not yet
    /// handed out): the stream has something to read only once the socket is
    /// readable, so a quiet connection may wait for that holding no buffer.
    fn idle_socket(&mut self) -> Option<&monoio::net::TcpStream> {
        self.socket()
    }

    /// A client connection whose first bytes are the HTTP/2 preface is handed over
    /// to the HTTP/2 path (`http::H2Preface`): a plain socket, and a TLS one whose
    /// client did not pick `h2` by ALPN. Not a stream of an HTTP/2 connection.
    fn serves_h2_preface(&self) -> bool {
        false
    }

    /// A client's HTTP/2 stream whose request body was not read yet gives it up as
    /// frames, for a `proto h2` server that forwards them as they come (a call
    /// streaming both ways); the HTTP path then sees a request that ends with its head.
    fn take_h2_body(&mut self) -> Option<h2::RecvStream> {
        None
    }

    /// The `sess` variables this stream shares with the other streams of its HTTP/2
    /// connection (see `rules::SharedVars`); `None` for a connection of its own, whose
    /// variables stay in its transaction from one request to the next.
    fn shared_vars(&self) -> Option<&std::cell::RefCell<crate::rules::SharedVars>> {
        None
    }

    /// Ready once the client gave its request up (an HTTP/2 stream it reset, or whose
    /// connection died): the exchange stops waiting for the server and closes (an
    /// HTTP/1 server connection) or resets (an HTTP/2 server stream) its side. Never
    /// for a connection of its own (an HTTP/1 client is read between requests only).
    fn gone(&mut self) -> impl Future<Output = ()> {
        std::future::pending()
    }

    /// Reads into `buf[len..capacity]`, giving up at `deadline` without losing what
    /// the kernel already delivered (a cancelled read hands its bytes over): the
    /// stream stays usable either way. At the deadline the result may be an error
    /// (the cancelled operation's); the caller looks at the clock.
    fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: Instant,
    ) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// Reads into the spare capacity of `buf` until `at` on the connection's timer,
    /// where a read still in flight then can be cancelled with what it delivered kept
    /// (`read_into_cancelling`: a plain socket). A keep-alive connection waiting for
    /// its next request then needs one read, not a readiness wait and a read. `None`
    /// where the stream cannot: the caller waits for readiness first.
    fn read_cancelling(
        &mut self,
        _buf: &mut Vec<u8>,
        _timer: &mut Timer,
        _at: Instant,
    ) -> impl Future<Output = Option<ReadOutcome>> {
        std::future::ready(None)
    }
}

impl Stream for monoio::net::TcpStream {
    fn socket(&self) -> Option<&monoio::net::TcpStream> {
        Some(self)
    }

    fn serves_h2_preface(&self) -> bool {
        true
    }

    async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        read_cancelled_at(self, buf, std::pin::pin!(sleep_until(deadline))).await
    }

    async fn read_cancelling(
        &mut self,
        buf: &mut Vec<u8>,
        timer: &mut Timer,
        at: Instant,
    ) -> Option<ReadOutcome> {
        Some(read_into_cancelling(self, buf, timer, at).await)
    }
}

thread_local! {
    /// Cancellers for `read_cancelled_at`. monoio's is an `Rc` with the set of the
    /// operations it would cancel; one that cancelled nothing (or was renewed by its
    /// `cancel`) is as good as new, so they serve read after read instead of being
    /// allocated per read.
    static CANCELLERS: std::cell::RefCell<Vec<monoio::io::Canceller>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Cancellers kept per shard: as many as reads wait at once, up to this.
const MAX_CANCELLERS: usize = 256;

/// A canceller from the shard's spares (made if there is none).
fn spare_canceller() -> monoio::io::Canceller {
    CANCELLERS
        .with(|c| c.borrow_mut().pop())
        .unwrap_or_default()
}

/// Keeps a canceller whose reads ended for the next read.
fn keep_canceller(canceller: monoio::io::Canceller) {
    let _ = CANCELLERS.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_CANCELLERS {
            c.push(canceller);
        }
    });
}

/// Reads into the spare capacity of `buf` until `at`, as `read_into`, on the
/// connection's timer (`read_cancelled_at`). `Timeout` only when nothing was read.
pub async fn read_into_cancelling(
    stream: &mut monoio::net::TcpStream,
    buf: &mut Vec<u8>,
    timer: &mut Timer,
    at: Instant,
) -> ReadOutcome {
    let b = std::mem::take(buf);
    debug_assert!(b.len() < b.capacity());
    let (res, b) = read_cancelled_at(stream, b, timer.armed(at)).await;
    *buf = b;
    match res {
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => ReadOutcome::Timeout,
        res => ReadOutcome::of(res),
    }
}

/// A read into the spare capacity of `b`, cancelled once `deadline` fires and its
/// result then awaited rather than dropped, so bytes the kernel delivered meanwhile
/// are kept (on io_uring a dropped read could lose them). The read is polled first:
/// a deadline already past still takes what is there. The canceller comes from the
/// shard's spares and goes back to them.
async fn read_cancelled_at(
    stream: &mut monoio::net::TcpStream,
    b: Vec<u8>,
    mut deadline: std::pin::Pin<&mut Sleep>,
) -> (io::Result<usize>, Vec<u8>) {
    use monoio::io::CancelableAsyncReadRent;
    let canceller = spare_canceller();
    let (len, cap) = (b.len(), b.capacity());
    let read = stream.cancelable_read(b.slice_mut(len..cap), canceller.handle());
    let mut read = std::pin::pin!(read);
    let done = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = read.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await;
    let (canceller, (res, slice)) = match done {
        Some(r) => (canceller, r),
        None => {
            let renewed = canceller.cancel();
            (renewed, read.await)
        }
    };
    keep_canceller(canceller);
    (res, slice.into_inner())
}

/// Wakes one task of this thread (a shard's control loop) from anywhere on the same
/// thread: the data path rings it when it leaves work for later (log lines, stick
/// records), the doorbell task when another thread sent a message. Ringing an already
/// rung bell costs a load.
#[derive(Default)]
pub struct LocalBell {
    rung: std::cell::Cell<bool>,
    waker: std::cell::RefCell<Option<std::task::Waker>>,
}

impl LocalBell {
    pub fn ring(&self) {
        if !self.rung.replace(true) {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Resolves once the bell was rung since the last wait (at once if it was).
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.rung.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
