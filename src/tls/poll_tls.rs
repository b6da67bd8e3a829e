//! `PollTls`: a client's TLS connection (ringlb's own record layer, `records`) as a
//! tokio stream over monoio's poll-io socket, for the h2 crate. Every HTTP/2 client
//! over TLS is served through it: one that picked `h2` by ALPN (or came to a `proto
//! h2` bind) after its handshake, and one that sent the HTTP/2 preface without that,
//! as HAProxy's HTTP/1 multiplexer upgrades such a connection. Either way a
//! `ServerTls` gives its keys and the bytes it read but did not give out over to this
//! stream (`ServerTls::into_parts`).
//!
//! Reads open whole records in place in `rx` (`server_stream::open_records`, as
//! `ServerTls` does) and copy the plaintext out. A write (its slices, vectored) seals
//! at most a batch of records into `tx` and takes the bytes as soon as they are
//! sealed; the next write (or a flush) first sends what `tx` still holds, so at most
//! one batch waits and the h2 crate's flow control sees the socket's back-pressure.
//! Both buffers come from the shard's free list and go back whenever they are empty,
//! so an idle connection holds none. Errors as in `ServerTls`: a record that does not
//! open fails the stream (after a fatal alert, best effort); close_notify reads as
//! EOF, a TCP EOF without it as `UnexpectedEof`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::records::{Fatal, Records, CLOSE_NOTIFY, MAX_PLAIN};
use super::server_stream::{open_records, release_rx};
use super::stream::{rx_room, BATCH_SIZE, RX_SIZE};
use crate::bufpool::PooledBuf;

/// The most plaintext one write seals.
const MAX_BATCH: usize = 4 * MAX_PLAIN;

pub struct PollTls<T> {
    io: T,
    rec: Box<Records>,
    /// `rx[rx_pos..]`: ciphertext not opened yet; `rx[plain.0..plain.1]`: opened
    /// plaintext not read yet.
    rx: PooledBuf,
    rx_pos: usize,
    plain: (usize, usize),
    /// `tx[tx_pos..]`: sealed records not sent yet.
    tx: PooledBuf,
    tx_pos: usize,
    failed: bool,
    /// close_notify was read.
    closed: bool,
    /// The socket read EOF.
    tcp_eof: bool,
    /// close_notify was sealed.
    shut: bool,
}

/// What `ServerTls` hands over: its record layer and what it read but did not give
/// out yet.
pub struct Parts {
    pub rec: Box<Records>,
    pub rx: PooledBuf,
    pub rx_pos: usize,
    pub plain: (usize, usize),
    pub closed: bool,
    pub tcp_eof: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> PollTls<T> {
    pub fn new(io: T, p: Parts) -> Self {
        let mut s = PollTls {
            io,
            rec: p.rec,
            rx: p.rx,
            rx_pos: p.rx_pos,
            plain: p.plain,
            tx: PooledBuf::none(),
            tx_pos: 0,
            failed: false,
            closed: p.closed,
            tcp_eof: p.tcp_eof,
            shut: false,
        };
        s.release_rx();
        s
    }

    fn release_rx(&mut self) {
        release_rx(&mut self.rx, &mut self.rx_pos, &mut self.plain);
    }

    fn broken() -> io::Error {
        io::Error::other("TLS: the stream failed before")
    }

    /// Sends what `tx` holds; ready once it is empty (and given back).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tx_pos < self.tx.len() {
            let n = match ready!(Pin::new(&mut self.io).poll_write(cx, &self.tx[self.tx_pos..])) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tx_pos += n;
        }
        self.tx = PooledBuf::none();
        self.tx_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Seals with `seal` into an empty `tx` (the caller sent what it held). A sealing
    /// failure fails the stream; its `internal_error` alert goes out if the socket
    /// takes it at once.
    fn seal(
        &mut self,
        cx: &mut Context<'_>,
        cap: usize,
        seal: impl FnOnce(&mut Records, &mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        debug_assert!(self.tx_pos == self.tx.len());
        self.tx = PooledBuf::take(cap);
        self.tx_pos = 0;
        if let Err(e) = seal(&mut self.rec, &mut self.tx) {
            self.failed = true;
            self.tx.clear();
            self.rec.seal_internal_error(&mut self.tx);
            let _ = self.poll_send(cx);
            return Err(e);
        }
        Ok(())
    }

    /// A record that does not open: the stream fails, its alert goes out if the
    /// socket takes it at once.
    fn fail(&mut self, cx: &mut Context<'_>, f: Fatal) -> io::Error {
        self.failed = true;
        // Nothing after our close_notify; and a batch half sent keeps its place.
        if !self.shut
            && self.tx_pos == self.tx.len()
            && self
                .seal(cx, RX_SIZE, |rec, tx| rec.seal_alert(f.alert, tx))
                .is_ok()
        {
            let _ = self.poll_send(cx);
        }
        f.into_io()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for PollTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(Self::broken()));
        }
        loop {
            match open_records(
                &mut this.rec,
                &mut this.rx,
                &mut this.rx_pos,
                &mut this.plain,
                &mut this.closed,
            ) {
                Ok(true) => {
                    // Plaintext, or close_notify (EOF: nothing put).
                    let n = (this.plain.1 - this.plain.0).min(buf.remaining());
                    buf.put_slice(&this.rx[this.plain.0..this.plain.0 + n]);
                    this.plain.0 += n;
                    this.release_rx();
                    return Poll::Ready(Ok(()));
                }
                Ok(false) => {}
                Err(f) => return Poll::Ready(Err(this.fail(cx, f))),
            }
            if this.tcp_eof {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            // Only ciphertext is left in `rx`: it may move to make room.
            rx_room(&mut this.rx, &mut this.rx_pos);
            this.plain = (this.rx_pos, this.rx_pos);
            let len = this.rx.len();
            let mut room = ReadBuf::uninit(this.rx.spare_capacity_mut());
            let res = Pin::new(&mut this.io).poll_read(cx, &mut room);
            let got = room.filled().len();
            match res {
                Poll::Ready(Ok(())) => {
                    // SAFETY: the socket initialised `got` bytes past `len`.
                    unsafe { this.rx.set_len(len + got) };
                    if got == 0 {
                        this.tcp_eof = true;
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    this.release_rx();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    this.release_rx();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PollTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(src)])
    }

    /// Seals up to a batch from the slices (a record or more per slice) and sends the
    /// records in one socket write: the h2 crate writes a frame's head and payload as
    /// two slices.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        srcs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failed || this.shut {
            return Poll::Ready(Err(Self::broken()));
        }
        ready!(this.poll_send(cx))?;
        let total = srcs.iter().map(|s| s.len()).sum::<usize>().min(MAX_BATCH);
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let cap = if total > MAX_PLAIN {
            BATCH_SIZE
        } else {
            RX_SIZE
        };
        // Many small slices add a record head each: the buffer may grow past `cap`.
        this.seal(cx, cap, |rec, tx| {
            rec.seal_queued(tx)?;
            let mut left = total;
            for src in srcs {
                let n = src.len().min(left);
                if n > 0 {
                    rec.seal_data(&src[..n], tx)?;
                    left -= n;
                }
                if left == 0 {
                    break;
                }
            }
            Ok(())
        })?;
        // The bytes are taken once sealed: what the socket does not take now (or an
        // error it gives) comes with the next write or flush.
        let _ = this.poll_send(cx);
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(Self::broken()));
        }
        ready!(this.poll_send(cx))?;
        if this.rec.has_queued() && !this.shut {
            this.seal(cx, RX_SIZE, |rec, tx| rec.seal_queued(tx))?;
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(Self::broken()));
        }
        ready!(this.poll_send(cx))?;
        if !this.shut {
            this.shut = true;
            this.seal(cx, RX_SIZE, |rec, tx| {
                rec.seal_queued(tx)?;
                rec.seal_alert(CLOSE_NOTIFY, tx)
            })?;
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
