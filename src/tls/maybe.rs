//! `MaybeTls`: a connection to a server, plain TCP or TLS (`TlsStream` over rustls
//! today; a kernel-TLS variant would join here, where the record layer moves into the
//! socket and reads become plain reads), or one stream of a `proto h2` server's shared
//! HTTP/2 connection (`h2map::H2Upstream`, never pooled). It reads and writes as any,
//! tells whether anything is buffered above the socket (pooling), and splits for
//! tunnels.

use std::io;
use std::ops::DerefMut;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::BufResult;
use rustls::{ClientConnection, ConnectionCommon, SideData};

use super::stream::TlsStream;

/// A server connection's stream: plain TCP or TLS (a kernel-TLS variant would join).
pub enum MaybeTls<S, C> {
    Plain(S),
    Tls(Box<TlsStream<S, C>>),
    /// A stream of an HTTP/2 connection (boxed: its state is larger than a socket).
    H2(Box<crate::h2map::H2Upstream>),
}

/// What a connection to a server is.
pub type ServerStream = MaybeTls<monoio::net::TcpStream, ClientConnection>;

impl<S: std::os::fd::AsRawFd, C> MaybeTls<S, C> {
    /// The socket's descriptor.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            MaybeTls::Plain(s) => s.as_raw_fd(),
            MaybeTls::Tls(t) => t.io.as_raw_fd(),
            MaybeTls::H2(_) => -1,
        }
    }
}

impl<S, C, D> MaybeTls<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    /// Nothing buffered above the socket (see `TlsStream::is_drained`).
    pub fn is_drained(&mut self) -> bool {
        match self {
            MaybeTls::Plain(_) | MaybeTls::H2(_) => true,
            MaybeTls::Tls(t) => t.is_drained(),
        }
    }
}

impl<S, C> MaybeTls<S, C> {
    /// An HTTP/2 stream whose response broke the protocol (see `H2Upstream::malformed`).
    pub fn malformed(&self) -> bool {
        matches!(self, MaybeTls::H2(h) if h.malformed())
    }
}

// SAFETY: each variant splits (`TlsStream`'s note above); the variant never changes.
unsafe impl<S: Split, C> Split for MaybeTls<S, C> {}

impl<C, D> crate::io::Stream for MaybeTls<monoio::net::TcpStream, C>
where
    C: DerefMut<Target = ConnectionCommon<D>> + 'static,
    D: SideData + 'static,
{
    fn socket(&self) -> Option<&monoio::net::TcpStream> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(_) | MaybeTls::H2(_) => None,
        }
    }

    fn idle_socket(&mut self) -> Option<&monoio::net::TcpStream> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => t.idle_socket(),
            MaybeTls::H2(_) => None,
        }
    }

    async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        match self {
            MaybeTls::Plain(s) => s.read_until(buf, deadline).await,
            MaybeTls::Tls(t) => t.read_until(buf, deadline).await,
            MaybeTls::H2(h) => h.read_until(buf, deadline).await,
        }
    }
}

impl<S, C, D> AsyncReadRent for MaybeTls<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.read(buf).await,
            MaybeTls::Tls(s) => s.read(buf).await,
            MaybeTls::H2(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.readv(buf).await,
            MaybeTls::Tls(s) => s.readv(buf).await,
            MaybeTls::H2(s) => s.readv(buf).await,
        }
    }
}

impl<S, C, D> AsyncWriteRent for MaybeTls<S, C>
where
    S: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.write(buf).await,
            MaybeTls::Tls(s) => s.write(buf).await,
            MaybeTls::H2(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.writev(buf).await,
            MaybeTls::Tls(s) => s.writev(buf).await,
            MaybeTls::H2(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush().await,
            MaybeTls::Tls(s) => s.flush().await,
            MaybeTls::H2(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.shutdown().await,
            MaybeTls::Tls(s) => s.shutdown().await,
            MaybeTls::H2(s) => s.shutdown().await,
        }
    }
}
