//! A poll-io socket that first gives back bytes already read from it (what followed
//! a PROXY header): the h2 crate reads the connection preface from them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

pub(super) struct Prefixed<T> {
    early: Vec<u8>,
    pos: usize,
    io: T,
}

impl<T> Prefixed<T> {
    pub(super) fn new(early: Vec<u8>, io: T) -> Self {
        Prefixed { early, pos: 0, io }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.early.len() {
            let n = (this.early.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.early[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.early.len() {
                this.early = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

crate::h2map::write_through!(Prefixed);
