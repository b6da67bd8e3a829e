//! `TlsStream`: rustls over a rent-model stream, itself rent-model (`AsyncReadRent`,
//! `AsyncWriteRent`), so the HTTP/1 and L4 paths read and write it as they do a
//! `TcpStream`. It carries connections to servers (`ClientTls`) and a client's
//! handshake (`ServerHandshake`), after which a client's connection moves to ringlb's
//! own record layer (`server_stream::ServerTls`).
//!
//! Buffers: one ciphertext buffer per direction, taken from the shard's free list
//! (`bufpool`) when a socket read or write begins and given back as soon as nothing
//! is left in it (a partial record keeps the read buffer), so an idle connection
//! holds none of them: only rustls' own state. Plaintext is copied straight into (out
//! of) the caller's buffer. `idle_socket` says when nothing at all is buffered above
//! the socket, so the HTTP path can wait for readability holding no buffer.
//!
//! Dropping a future mid-operation (ringlb's timeouts do) is safe: nothing dangles,
//! nothing panics. But a dropped socket read may have consumed bytes and a dropped
//! write may have sent part of a record, so that direction cannot go on: every later
//! call on it fails with `ConnectionAborted` and the caller closes the connection, as
//! it does after a timeout on a plain socket.
//!
//! Split (`monoio::io::Split`, for tunnels and TCP mode): once the handshake is done,
//! the read half touches only the receive state (`rx`, `rbusy`) and the socket's read
//! side, the write half only the send state (its buffer, `wbusy`) and the socket's write
//! side; both use the rustls connection, but only between awaits (one thread, so never
//! at the same time). Records the read side makes rustls queue (a KeyUpdate answer, an
//! alert) leave with the write side's next flush: the read side never writes, so two
//! writes never interleave on the socket.
//!
//! A peer's `close_notify` reads as EOF (`Ok(0)`); a TCP EOF without it reads as
//! `UnexpectedEof` once the plaintext before it was read. `shutdown` sends
//! `close_notify`, then shuts the socket's write half. A TLS error queues the alert
//! rustls chose, which is sent (best effort) before the error is returned.
//!
//! The stream is a plain struct over a generic `S`, so the client-side stream type can
//! be an enum (`maybe::MaybeTls`: plain or rustls today, a kernel-TLS variant later).

use std::io::{self, BufRead, Write};
use std::ops::DerefMut;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split};
use monoio::BufResult;
use rustls::{ClientConnection, ConnectionCommon, ProtocolVersion, ServerConnection, SideData};

use super::records::{capture, record_len, Captured, Records};
use super::server_stream::ServerTls;
use crate::bufpool::PooledBuf;

/// The ciphertext buffers' size: one full TLS record and its header (the largest a
/// peer may send is 5 + 2^14 + 256 bytes).
pub const RX_SIZE: usize = 16 * 1024 + 512;

/// The most plaintext one record carries.
const MAX_PLAIN: usize = 16 * 1024;

/// The most plaintext one write encrypts: its records leave in one socket write (bulk
/// data: a quarter of the syscalls and packets of a record at a time).
const MAX_BATCH: usize = 4 * MAX_PLAIN;

/// A buffer for a batch of records and their headers, tags and padding; bodies are
/// read in buffers of this size too (`http::response`), so one read fills one batch.
pub const BATCH_SIZE: usize = 4 * RX_SIZE;

/// A client's connection while rustls runs its handshake (`ServerTls` after it).
pub type ServerHandshake<S> = TlsStream<S, ServerConnection>;
pub type ClientTls<S> = TlsStream<S, ClientConnection>;

pub struct TlsStream<S, C> {
    pub(super) io: S,
    conn: C,
    /// Ciphertext read from the socket; `rx[rx_pos..]` is not yet given to rustls.
    /// No buffer (capacity 0) while nothing is pending.
    rx: PooledBuf,
    rx_pos: usize,
    /// A socket read (write) was started and its future dropped before it finished.
    rbusy: bool,
    wbusy: bool,
    /// A TLS error was returned: the stream stays failed (never resynchronises on
    /// whatever the peer sends next, nor hands out plaintext decrypted before it).
    failed: bool,
}

/// A direction may start an operation unless an earlier one on it was cancelled
/// (`rbusy`, `wbusy` still set) or the stream failed.
pub(super) fn usable(rbusy: bool, wbusy: bool, failed: bool, write: bool) -> io::Result<()> {
    if (write && wbusy) || (!write && rbusy) {
        Err(cancelled())
    } else if failed {
        Err(failed_before())
    } else {
        Ok(())
    }
}

fn failed_before() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "TLS stream failed earlier")
}

fn cancelled() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "TLS stream used after a cancelled operation",
    )
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S, C, D> TlsStream<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    /// Wraps a connection whose ciphertext so far rustls has seen.
    pub fn new(io: S, conn: C) -> Self {
        TlsStream {
            io,
            conn,
            rx: PooledBuf::none(),
            rx_pos: 0,
            rbusy: false,
            wbusy: false,
            failed: false,
        }
    }

    pub fn conn(&self) -> &C {
        &self.conn
    }

    pub fn io(&self) -> &S {
        &self.io
    }

    /// Nothing is buffered: no ciphertext rustls has not seen, no plaintext unread,
    /// no record waiting to be sent (an idle pooled connection must have none). A
    /// partial record inside rustls is allowed: only the socket can complete it.
    pub fn is_drained(&mut self) -> bool {
        self.rx_pos == self.rx.len() && !self.has_plaintext() && !self.conn.wants_write()
    }

    /// Gives the read buffer back once rustls took all of it.
    fn release_rx(&mut self) {
        if self.rx_pos == self.rx.len() {
            self.rx = PooledBuf::none();
            self.rx_pos = 0;
        }
    }

    /// A read buffer with room for a record: taken from the free list, or the pending
    /// bytes moved to the front of the one held.
    fn rx_room(&mut self) {
        rx_room(&mut self.rx, &mut self.rx_pos);
    }

    /// Sends what rustls has queued (a handshake flight): the expensive part of a
    /// handshake is over once the server's flight left.
    pub async fn send_queued(&mut self) -> io::Result<()> {
        self.usable(true)?;
        self.flush_tls().await
    }

    /// Drives the handshake to its end (the caller bounds it with a deadline).
    pub async fn handshake(&mut self) -> io::Result<()> {
        self.usable(false)?;
        self.usable(true)?;
        loop {
            if self.conn.wants_write() {
                self.flush_tls().await?;
            }
            if !self.conn.is_handshaking() {
                break;
            }
            if self.rx_pos < self.rx.len() {
                self.feed().await?;
                continue;
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
            self.feed().await?;
        }
        // A TLS 1.3 server's tickets follow the handshake.
        if self.conn.wants_write() {
            self.flush_tls().await?;
        }
        Ok(())
    }

    /// The direction (`write` or read) may start an operation.
    fn usable(&self, write: bool) -> io::Result<()> {
        usable(self.rbusy, self.wbusy, self.failed, write)
    }

    /// Gives rustls the buffered ciphertext and processes it. On a TLS error the alert
    /// is sent before the error is returned.
    async fn feed(&mut self) -> io::Result<()> {
        while self.rx_pos < self.rx.len() {
            match self.conn.read_tls(&mut &self.rx[self.rx_pos..]) {
                // After close_notify nothing more is read.
                Ok(0) => {
                    self.rx_pos = self.rx.len();
                    break;
                }
                Ok(n) => self.rx_pos += n,
                // The plaintext buffer is full: the caller reads some first.
                Err(_) if self.has_plaintext() => break,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                self.failed = true;
                // The alert, unless the write side is writing (split): then it stays
                // queued, and the write side fails from now on anyway.
                if !self.wbusy {
                    let _ = self.flush_tls().await;
                }
                return Err(tls_error(e));
            }
            if self.has_plaintext() {
                break;
            }
        }
        self.release_rx();
        Ok(())
    }

    fn has_plaintext(&mut self) -> bool {
        matches!(self.conn.reader().fill_buf(), Ok(b) if !b.is_empty())
    }

    /// Reads ciphertext from the socket into `rx`; `Ok(0)` at EOF (rustls is told).
    async fn fill(&mut self) -> io::Result<usize> {
        self.rx_room();
        match read_more(&mut self.io, &mut self.rx, &mut self.rbusy).await {
            Ok(0) => {
                self.release_rx();
                // An empty read tells rustls the transport ended.
                let _ = self.conn.read_tls(&mut &[][..]);
                if let Err(e) = self.conn.process_new_packets() {
                    self.failed = true;
                    return Err(tls_error(e));
                }
                Ok(0)
            }
            Err(e) => {
                self.release_rx();
                Err(e)
            }
            ok => ok,
        }
    }

    /// Writes every queued TLS record.
    async fn flush_tls(&mut self) -> io::Result<()> {
        self.flush_records(RX_SIZE).await
    }

    /// Writes every queued TLS record, from a buffer of `cap` bytes (a batch's, or
    /// a record's: a larger queue grows it).
    async fn flush_records(&mut self, cap: usize) -> io::Result<()> {
        if !self.conn.wants_write() {
            return Ok(());
        }
        let mut tx = PooledBuf::take(cap);
        while self.conn.wants_write() {
            self.conn.write_tls(&mut *tx)?;
        }
        let buf = std::mem::take(&mut *tx);
        self.wbusy = true;
        let (res, buf) = self.io.write_all(buf).await;
        self.wbusy = false;
        *tx = buf;
        // `tx` goes back to the free list (unless a large write grew it).
        res.map(drop)
    }

    /// Copies plaintext into `dst` (`None`: none buffered yet).
    fn take_plaintext(&mut self, dst: *mut u8, room: usize) -> Option<io::Result<usize>> {
        let mut reader = self.conn.reader();
        match reader.fill_buf() {
            Ok(chunk) => {
                let n = chunk.len().min(room);
                // SAFETY: `dst` points to `room` writable bytes of the caller's buffer,
                // which `chunk` (rustls' own memory) cannot overlap.
                unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst, n) };
                reader.consume(n);
                // `chunk` empty: close_notify was received, a clean EOF.
                Some(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    }

    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        self.usable(false)?;
        if room == 0 {
            return Ok(0);
        }
        // A handshake not yet finished needs its flights sent (never after a split:
        // both sides finish the handshake first).
        if self.conn.is_handshaking() {
            self.handshake().await?;
        }
        loop {
            if let Some(r) = self.take_plaintext(dst, room) {
                return r;
            }
            if self.rx_pos < self.rx.len() {
                self.feed().await?;
                continue;
            }
            // Answers to post-handshake messages (KeyUpdate) leave with the next write.
            if self.fill().await? > 0 {
                self.feed().await?;
            } else if let Some(r) = self.take_plaintext(dst, room) {
                return r;
            } else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn write_raw(&mut self, src: &[u8]) -> io::Result<usize> {
        self.usable(true)?;
        if self.conn.is_handshaking() {
            self.handshake().await?;
        }
        // At most a batch per call (a short write, which `write_all` continues): its
        // ciphertext then fits the pooled buffer, which never has to grow.
        let n = self.conn.writer().write(&src[..src.len().min(MAX_BATCH)])?;
        let cap = if n > MAX_PLAIN { BATCH_SIZE } else { RX_SIZE };
        self.flush_records(cap).await?;
        Ok(n)
    }
}

/// Makes room in a read buffer for the record pending at `rx[*pos..]` (all of it once
/// its header is there) and at least 1 KiB more: a buffer from the free list if none
/// is held, else the pending bytes moved to the front, else a larger one.
pub(super) fn rx_room(rx: &mut PooledBuf, pos: &mut usize) {
    if rx.capacity() == 0 {
        *rx = PooledBuf::take(RX_SIZE);
        *pos = 0;
        return;
    }
    let pending = rx.len() - *pos;
    let need = record_len(&rx[*pos..]).unwrap_or(0).max(pending + 1024);
    if *pos > 0 && rx.capacity() - *pos < need {
        rx.drain(..*pos);
        *pos = 0;
    }
    if rx.capacity() - *pos < need {
        rx.reserve(RX_SIZE.max(need - pending));
    }
}

/// One socket read into `rx`'s spare room (retried on `Interrupted`), `busy` set while
/// it is in flight: a dropped read leaves it set.
pub(super) async fn read_more<S: AsyncReadRent>(
    io: &mut S,
    rx: &mut PooledBuf,
    busy: &mut bool,
) -> io::Result<usize> {
    loop {
        let buf = std::mem::take(&mut **rx);
        let (len, cap) = (buf.len(), buf.capacity());
        *busy = true;
        let (res, slice) = io.read(buf.slice_mut(len..cap)).await;
        *busy = false;
        **rx = slice.into_inner();
        match res {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `AsyncReadRent::read` over a reader of raw memory (`dst`, `room`): the bytes it
/// wrote become `buf`'s.
pub(super) async fn rent_read<T: IoBufMut>(
    mut buf: T,
    read: impl AsyncFnOnce(*mut u8, usize) -> io::Result<usize>,
) -> BufResult<usize, T> {
    let (dst, room) = (buf.write_ptr(), buf.bytes_total());
    let res = read(dst, room).await;
    if let Ok(n) = res {
        // SAFETY: the reader initialised the first `n` bytes.
        unsafe { buf.set_init(n) };
    }
    (res, buf)
}

/// `readv` the same way, into the first iovec.
pub(super) async fn rent_readv<T: IoVecBufMut>(
    mut buf: T,
    read: impl AsyncFnOnce(*mut u8, usize) -> io::Result<usize>,
) -> BufResult<usize, T> {
    // SAFETY: the iovecs stay valid while `buf` is held here.
    let Some(mut raw) = (unsafe { RawBuf::new_from_iovec_mut(&mut buf) }) else {
        return (Ok(0), buf);
    };
    let res = read(raw.write_ptr(), raw.bytes_total()).await;
    if let Ok(n) = res {
        // SAFETY: `n` bytes of the first iovec were written.
        unsafe { buf.set_init(n) };
    }
    (res, buf)
}

/// `AsyncWriteRent::write` over a writer of a byte slice.
pub(super) async fn rent_write<T: IoBuf>(
    buf: T,
    write: impl AsyncFnOnce(&[u8]) -> io::Result<usize>,
) -> BufResult<usize, T> {
    // SAFETY: `buf` owns `bytes_init` initialised bytes at `read_ptr`.
    let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
    let res = write(src).await;
    (res, buf)
}

/// `writev` the same way, from the first iovec.
pub(super) async fn rent_writev<T: IoVecBuf>(
    buf: T,
    write: impl AsyncFnOnce(&[u8]) -> io::Result<usize>,
) -> BufResult<usize, T> {
    // SAFETY: the iovecs stay valid while `buf` is held here.
    let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
        Some(raw) => {
            let src = unsafe { std::slice::from_raw_parts(raw.read_ptr(), raw.bytes_init()) };
            write(src).await
        }
        None => Ok(0),
    };
    (res, buf)
}

impl<S: AsyncReadRent + AsyncWriteRent> TlsStream<S, ServerConnection> {
    /// Drives a server handshake to its end, giving rustls one whole record at a time
    /// and none after the handshake's last: what the client sent after it stays in
    /// `rx` for the record layer (`into_records`). `cap` gathers the traffic secrets
    /// rustls logs on the way (it may already hold those of the first flight).
    pub async fn handshake_records(&mut self, cap: &mut Captured) -> io::Result<()> {
        self.usable(false)?;
        self.usable(true)?;
        loop {
            if self.conn.wants_write() {
                self.flush_tls().await?;
            }
            if !self.conn.is_handshaking() {
                break;
            }
            let at = self.rx_pos;
            match record_len(&self.rx[at..]) {
                Some(n) if n <= self.rx.len() - at => {
                    self.rx_pos += n;
                    let mut record = &self.rx[at..at + n];
                    while !record.is_empty() {
                        if self.conn.read_tls(&mut record)? == 0 {
                            break;
                        }
                    }
                    let (res, got) = capture(|| self.conn.process_new_packets().map(drop));
                    cap.merge(got);
                    if let Err(e) = res {
                        self.failed = true;
                        let _ = self.flush_tls().await;
                        return Err(tls_error(e));
                    }
                    continue;
                }
                _ => {}
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
        }
        // A TLS 1.3 server's tickets follow the handshake.
        self.flush_tls().await
    }

    /// The stream over ringlb's own record layer, with rustls' traffic keys: nothing
    /// is left inside rustls (`handshake_records` fed it no byte past the handshake,
    /// and sent all it queued).
    pub fn into_records(mut self, cap: &Captured) -> io::Result<ServerTls<S>> {
        if self.has_plaintext() || self.conn.wants_write() || self.rbusy || self.wbusy {
            return Err(io::Error::other(
                "TLS: data left inside rustls after the handshake",
            ));
        }
        let tls13 = self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
        let secrets = self.conn.dangerous_extract_secrets().map_err(tls_error)?;
        let rec = Records::server(tls13, secrets, cap)?;
        Ok(ServerTls::new(self.io, rec, self.rx, self.rx_pos))
    }
}

impl<S, C, D> AsyncReadRent for TlsStream<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_read(buf, async |dst, room| self.read_raw(dst, room).await).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_readv(buf, async |dst, room| self.read_raw(dst, room).await).await
    }
}

impl<S, C, D> AsyncWriteRent for TlsStream<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_write(buf, async |src| self.write_raw(src).await).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_writev(buf, async |src| self.write_raw(src).await).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.usable(true)?;
        self.flush_tls().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.usable(true)?;
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

// SAFETY: after the handshake the read and write halves touch disjoint state (the
// module's "Split" paragraph): the read side `rx`, `rx_pos`, `rbusy` and the socket's
// read side, the write side its buffer, `wbusy` and its write side; the rustls connection
// only between awaits, on one thread. `S` itself splits.
unsafe impl<S: Split, C> Split for TlsStream<S, C> {}

impl<S, C, D> TlsStream<S, C>
where
    S: crate::io::Stream,
    C: DerefMut<Target = ConnectionCommon<D>> + 'static,
    D: SideData + 'static,
{
    /// `Stream::read_until` over TLS: plaintext into `buf[len..capacity]`; the socket
    /// read under it is the socket's own `read_until`, so the deadline never drops a
    /// socket operation and the stream stays usable.
    async fn read_plain_until(
        &mut self,
        mut buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        if let Err(e) = self.usable(false) {
            return (Err(e), buf);
        }
        let (len, room) = (buf.len(), buf.capacity() - buf.len());
        if room == 0 {
            return (Ok(0), buf);
        }
        let dst = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        let res = loop {
            if let Some(r) = self.take_plaintext(dst, room) {
                break r;
            }
            if self.rx_pos < self.rx.len() {
                if let Err(e) = self.feed().await {
                    break Err(e);
                }
                continue;
            }
            self.rx_room();
            let rx = std::mem::take(&mut *self.rx);
            self.rbusy = true;
            let (r, rx) = self.io.read_until(rx, deadline).await;
            self.rbusy = false;
            *self.rx = rx;
            if !matches!(r, Ok(n) if n > 0) {
                self.release_rx();
            }
            match r {
                Ok(0) => {
                    // An empty read tells rustls the transport ended.
                    let _ = self.conn.read_tls(&mut &[][..]);
                    if let Err(e) = self.conn.process_new_packets() {
                        self.failed = true;
                        break Err(tls_error(e));
                    }
                    break self
                        .take_plaintext(dst, room)
                        .unwrap_or_else(|| Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if let Ok(n) = res {
            // SAFETY: `take_plaintext` initialised `n` bytes of the spare capacity.
            unsafe { buf.set_len(len + n) };
        }
        (res, buf)
    }
}

impl<S, C, D> crate::io::Stream for TlsStream<S, C>
where
    S: crate::io::Stream,
    C: DerefMut<Target = ConnectionCommon<D>> + 'static,
    D: SideData + 'static,
{
    /// Bytes must go through rustls: no splice.
    fn socket(&self) -> Option<&monoio::net::TcpStream> {
        None
    }

    /// The socket, when rustls has nothing to hand out (no plaintext, no close_notify,
    /// no error) and the stream holds no ciphertext rustls has not seen: a partial
    /// record inside rustls only the socket can complete.
    fn idle_socket(&mut self) -> Option<&monoio::net::TcpStream> {
        if self.rbusy || self.failed || self.rx_pos < self.rx.len() {
            return None;
        }
        // Plaintext, a close_notify or an error to report: read at once.
        match self.conn.reader().fill_buf() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.idle_socket(),
            _ => None,
        }
    }

    async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        self.read_plain_until(buf, deadline).await
    }
}
