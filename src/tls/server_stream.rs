//! `ServerTls`: a client's TLS connection once the handshake is done, rent-model
//! (`AsyncReadRent`, `AsyncWriteRent`) like a `TcpStream`, over ringlb's own record
//! layer (`records`): records are opened in place in the read buffer and sealed
//! straight into the write buffer, so a keep-alive exchange copies each byte once
//! and allocates nothing.
//!
//! Buffers, as `TlsStream`'s: one ciphertext buffer per direction from the shard's
//! free list, held only while a socket operation is in progress or bytes are left in
//! it, so an idle connection holds none. The read buffer also keeps the opened
//! plaintext the caller has not taken yet (`plain`), ahead of the ciphertext not yet
//! opened (`rx[rx_pos..]`).
//!
//! Dropped futures, failures and EOF behave as in `TlsStream` (its module note): a
//! dropped socket operation leaves its direction refusing further use; a record that
//! does not open fails the stream for good, after a fatal alert (best effort); the
//! peer's close_notify reads as `Ok(0)`, a TCP EOF without it as `UnexpectedEof`.
//!
//! Split: the read half uses the read buffer, `rbusy` and the receiving keys; the
//! write half its buffer, `wbusy` and the sending keys. Both touch `rec` only between
//! awaits (one thread). What the read side owes the peer (a KeyUpdate, a refusal)
//! leaves with the write side's next record; an alert after a failed read is sent by
//! the read side only while the write side is not writing.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split};
use monoio::BufResult;

use super::records::{whole_record, Fatal, Opened, Records, CLOSE_NOTIFY, MAX_PLAIN};
use super::stream::{
    read_more, rent_read, rent_readv, rent_write, rent_writev, rx_room, usable, BATCH_SIZE, RX_SIZE,
};
use crate::bufpool::PooledBuf;

/// The most plaintext one write seals: its records leave in one socket write.
const MAX_BATCH: usize = 4 * MAX_PLAIN;

pub struct ServerTls<S> {
    io: S,
    rec: Box<Records>,
    rx: PooledBuf,
    /// `rx[rx_pos..]`: ciphertext not opened yet.
    rx_pos: usize,
    /// `rx[plain.0..plain.1]`: opened plaintext not read yet.
    plain: (usize, usize),
    rbusy: bool,
    wbusy: bool,
    failed: bool,
    /// close_notify was read.
    closed: bool,
    /// The socket read EOF: nothing more is read from it.
    tcp_eof: bool,
}

/// What the buffered bytes gave.
enum Take {
    /// Plaintext copied, or `Ok(0)` after close_notify.
    Got(usize),
    /// A whole record is not there yet.
    More,
    Fatal(Fatal),
}

impl<S: AsyncReadRent + AsyncWriteRent> ServerTls<S> {
    /// The stream over `io` once rustls finished the handshake: `rx[rx_pos..]` holds
    /// what the peer sent after its last handshake record.
    pub(super) fn new(io: S, rec: Records, rx: PooledBuf, rx_pos: usize) -> Self {
        let mut s = ServerTls {
            io,
            rec: Box::new(rec),
            rx,
            rx_pos,
            plain: (0, 0),
            rbusy: false,
            wbusy: false,
            failed: false,
            closed: false,
            tcp_eof: false,
        };
        s.release_rx();
        s
    }

    pub fn io(&self) -> &S {
        &self.io
    }

    /// The socket, the record layer and what was read but not given out yet, for
    /// `PollTls` (HTTP/2 after a preface); `None` while an operation is in flight or
    /// once the stream failed.
    pub fn into_parts(self) -> Option<(S, super::poll_tls::Parts)> {
        if self.rbusy || self.wbusy || self.failed {
            return None;
        }
        let parts = super::poll_tls::Parts {
            rec: self.rec,
            rx: self.rx,
            rx_pos: self.rx_pos,
            plain: self.plain,
            closed: self.closed,
            tcp_eof: self.tcp_eof,
        };
        Some((self.io, parts))
    }

    fn usable(&self, write: bool) -> io::Result<()> {
        usable(self.rbusy, self.wbusy, self.failed, write)
    }

    /// Gives the read buffer back once nothing is left in it.
    fn release_rx(&mut self) {
        release_rx(&mut self.rx, &mut self.rx_pos, &mut self.plain);
    }

    /// Opens buffered records until one gives plaintext or the end, then copies what
    /// fits into `dst`.
    fn take(&mut self, dst: *mut u8, room: usize) -> Take {
        match open_records(
            &mut self.rec,
            &mut self.rx,
            &mut self.rx_pos,
            &mut self.plain,
            &mut self.closed,
        ) {
            Ok(true) => {}
            Ok(false) => return Take::More,
            Err(f) => return Take::Fatal(f),
        }
        let n = (self.plain.1 - self.plain.0).min(room);
        // SAFETY: `dst` points to `room` writable bytes of the caller's buffer, which
        // cannot overlap `rx` (the stream's own memory).
        unsafe { std::ptr::copy_nonoverlapping(self.rx[self.plain.0..].as_ptr(), dst, n) };
        self.plain.0 += n;
        self.release_rx();
        Take::Got(n)
    }

    /// The stream fails for good; the fatal alert goes out unless the write side is
    /// writing (split).
    async fn fail(&mut self, f: Fatal) -> io::Error {
        self.failed = true;
        if !self.wbusy {
            let _ = self
                .seal_and_send(RX_SIZE, |rec, tx| rec.seal_alert(f.alert, tx))
                .await;
        }
        f.into_io()
    }

    /// A read buffer with room for the pending record. Only ciphertext is left in it
    /// (reads come after the plaintext was taken), so moving it is safe.
    fn rx_room(&mut self) {
        rx_room(&mut self.rx, &mut self.rx_pos);
        self.plain = (self.rx_pos, self.rx_pos);
    }

    /// Reads ciphertext from the socket into `rx`; `Ok(0)` at EOF, and from then on.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.tcp_eof {
            return Ok(0);
        }
        self.rx_room();
        let res = read_more(&mut self.io, &mut self.rx, &mut self.rbusy).await;
        if !matches!(res, Ok(n) if n > 0) {
            self.tcp_eof |= matches!(res, Ok(0));
            self.release_rx();
        }
        res
    }

    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        self.usable(false)?;
        if room == 0 {
            return Ok(0);
        }
        loop {
            match self.take(dst, room) {
                Take::Got(n) => return Ok(n),
                Take::Fatal(f) => return Err(self.fail(f).await),
                Take::More => {}
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Writes `tx` whole, then gives it back to the free list.
    async fn send(&mut self, mut tx: PooledBuf) -> io::Result<()> {
        let buf = std::mem::take(&mut *tx);
        self.wbusy = true;
        let (res, buf) = self.io.write_all(buf).await;
        self.wbusy = false;
        *tx = buf;
        res.map(drop)
    }

    /// Seals with `seal` into a buffer of `cap` bytes and sends it; a sealing failure
    /// fails the stream.
    async fn seal_and_send(
        &mut self,
        cap: usize,
        seal: impl FnOnce(&mut Records, &mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut tx = PooledBuf::take(cap);
        if let Err(e) = seal(&mut self.rec, &mut tx) {
            self.failed = true;
            tx.clear();
            self.rec.seal_internal_error(&mut tx);
            let _ = self.send(tx).await;
            return Err(e);
        }
        self.send(tx).await
    }

    async fn write_raw(&mut self, src: &[u8]) -> io::Result<usize> {
        self.usable(true)?;
        // At most a batch per call (a short write, which `write_all` continues): its
        // ciphertext then fits the pooled buffer, which never has to grow.
        let n = src.len().min(MAX_BATCH);
        let cap = if n > MAX_PLAIN { BATCH_SIZE } else { RX_SIZE };
        debug_assert!(Records::sealed_len(n) <= cap);
        self.seal_and_send(cap, |rec, tx| rec.seal_data(&src[..n], tx))
            .await?;
        Ok(n)
    }
}

/// Gives a read buffer back once nothing is left in it: no plaintext `rx[plain]` to
/// read, no ciphertext `rx[pos..]` to open.
pub(super) fn release_rx(rx: &mut PooledBuf, pos: &mut usize, plain: &mut (usize, usize)) {
    if *pos == rx.len() && plain.0 == plain.1 {
        *rx = PooledBuf::none();
        *pos = 0;
        *plain = (0, 0);
    }
}

/// Opens the whole records buffered in `rx[*pos..]` until one gives plaintext
/// (`rx[plain]`) or close_notify (`closed`): `Ok(true)` then (or when some was already
/// there), `Ok(false)` when the next record is not whole yet. What `ServerTls` and
/// `PollTls` read through.
pub(super) fn open_records(
    rec: &mut Records,
    rx: &mut [u8],
    pos: &mut usize,
    plain: &mut (usize, usize),
    closed: &mut bool,
) -> Result<bool, Fatal> {
    while plain.0 == plain.1 && !*closed {
        let at = *pos;
        let Some(n) = whole_record(&rx[at..])? else {
            return Ok(false);
        };
        *pos += n;
        match rec.open(&mut rx[at..at + n])? {
            Opened::Data { start, end } => *plain = (at + start, at + end),
            Opened::Closed => *closed = true,
            Opened::Control => {}
        }
    }
    Ok(true)
}

impl<S: AsyncReadRent + AsyncWriteRent> AsyncReadRent for ServerTls<S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_read(buf, async |dst, room| self.read_raw(dst, room).await).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_readv(buf, async |dst, room| self.read_raw(dst, room).await).await
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> AsyncWriteRent for ServerTls<S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_write(buf, async |src| self.write_raw(src).await).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        rent_writev(buf, async |src| self.write_raw(src).await).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.usable(true)?;
        if self.rec.has_queued() {
            self.seal_and_send(RX_SIZE, |rec, tx| rec.seal_queued(tx))
                .await?;
        }
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.usable(true)?;
        self.seal_and_send(RX_SIZE, |rec, tx| {
            rec.seal_queued(tx)?;
            rec.seal_alert(CLOSE_NOTIFY, tx)
        })
        .await?;
        self.io.shutdown().await
    }
}

// SAFETY: the read and write halves touch disjoint state (the module's "Split"
// paragraph) and share `rec` only between awaits, on one thread. `S` itself splits.
unsafe impl<S: Split> Split for ServerTls<S> {}

impl<S> crate::io::Stream for ServerTls<S>
where
    S: crate::io::Stream,
{
    /// A preface is served as HTTP/2 over the same keys (`PollTls`), as HAProxy does
    /// when ALPN did not settle on `h2`.
    fn serves_h2_preface(&self) -> bool {
        true
    }

    /// Bytes must go through the record layer: no splice.
    fn socket(&self) -> Option<&monoio::net::TcpStream> {
        None
    }

    /// The socket, when nothing at all is buffered above it.
    fn idle_socket(&mut self) -> Option<&monoio::net::TcpStream> {
        if self.rbusy
            || self.failed
            || self.closed
            || self.tcp_eof
            || self.plain.0 < self.plain.1
            || self.rx_pos < self.rx.len()
        {
            return None;
        }
        self.io.idle_socket()
    }

    /// `Stream::read_until` over TLS: plaintext into `buf[len..capacity]`; the socket
    /// read under it is the socket's own `read_until`, so the deadline never drops a
    /// socket operation and the stream stays usable.
    async fn read_until(
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
            match self.take(dst, room) {
                Take::Got(n) => break Ok(n),
                Take::Fatal(f) => break Err(self.fail(f).await),
                Take::More if self.tcp_eof => break Err(io::ErrorKind::UnexpectedEof.into()),
                Take::More => {}
            }
            self.rx_room();
            let rx = std::mem::take(&mut *self.rx);
            self.rbusy = true;
            let (r, rx) = self.io.read_until(rx, deadline).await;
            self.rbusy = false;
            *self.rx = rx;
            match r {
                Ok(0) => {
                    self.tcp_eof = true;
                    self.release_rx();
                    break Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.release_rx();
                    break Err(e);
                }
            }
        };
        if let Ok(n) = res {
            // SAFETY: `take` initialised `n` bytes of the spare capacity.
            unsafe { buf.set_len(len + n) };
        }
        (res, buf)
    }
}
