//! HTTP/1.1 messages and HTTP/2 streams, mapped both ways, for both sides of the
//! proxy: a client's stream read as an HTTP/1.1 request and answered with HTTP/1.1
//! bytes (`h2::pipe`), and a request to a `proto h2` server written and read as
//! HTTP/1.1 (`upstream::H2Upstream`). The HTTP path in between sees HTTP/1.1 only.
//! Below the HTTP path and the dispatch; depends on nothing of the proxy.

pub mod frames;
pub mod inbound;
pub mod out;
mod pump;
mod rent;
pub mod upstream;

pub use inbound::H2In;
pub use out::{H1Out, Head, HeadSink, Phase};
pub(crate) use rent::rent_io;

/// `tokio::io::AsyncWrite` for a transport wrapper (`$t<T>`) whose writes go to its
/// `io` field untouched (it only looks at, or adds to, what is read).
macro_rules! write_through {
    ($t:ident) => {
        impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $t<T> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
            }
        }
    };
}
pub use upstream::H2Upstream;
pub(crate) use write_through;

use std::future::Future;
use std::io;

/// Appends the field line `name: value` to an HTTP/1.1 head.
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Calls `field` for each header field of a received message (`headers` and the
/// `extensions` of its `Request` or `Response`), in the order they came, as HAProxy
/// 2.6 passes them on: the map's order, or `h2::ext::FieldOrder` where the map lost
/// it (a name repeated after another).
pub fn fields_in_order(
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    mut field: impl FnMut(&http::HeaderName, &http::HeaderValue),
) {
    let Some(order) = extensions.get::<h2::ext::FieldOrder>() else {
        return headers.iter().for_each(|(n, v)| field(n, v));
    };
    // Each name of the order takes its next value.
    let mut next = http::HeaderMap::with_capacity(headers.keys_len());
    for name in order.names() {
        let values = next
            .entry(name)
            .or_insert_with(|| headers.get_all(name).iter());
        if let Some(value) = values.next() {
            field(name, value);
        }
    }
}

/// `Stream::read_until` for a stream whose reads (`read`: into a pointer and a room)
/// may be dropped at the deadline without losing bytes.
pub async fn read_until<F: Future<Output = io::Result<usize>>>(
    mut buf: Vec<u8>,
    deadline: monoio::time::Instant,
    read: impl FnOnce(*mut u8, usize) -> F,
) -> (io::Result<usize>, Vec<u8>) {
    match monoio::time::timeout_at(deadline, read_vec(&mut buf, read)).await {
        Ok(r) => (r, buf),
        Err(_) => (Err(io::ErrorKind::TimedOut.into()), buf),
    }
}

/// Reads (`read`: into a pointer and a room) into the spare room of `buf`.
async fn read_vec<F: Future<Output = io::Result<usize>>>(
    buf: &mut Vec<u8>,
    read: impl FnOnce(*mut u8, usize) -> F,
) -> io::Result<usize> {
    let (len, cap) = (buf.len(), buf.capacity());
    // SAFETY: `len..cap` is the vector's spare capacity.
    let n = read(unsafe { buf.as_mut_ptr().add(len) }, cap - len).await?;
    // SAFETY: the read initialised `n` bytes after `len`.
    unsafe { buf.set_len(len + n) };
    Ok(n)
}
