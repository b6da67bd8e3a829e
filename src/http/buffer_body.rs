//! `option http-buffer-request`: the request body is waited for, whole or until the
//! request buffer is full, before the proxy's rules run and before a server is
//! connected, as HAProxy 2.6 does. A slow uploader then holds no server connection,
//! and a buffered request can be sent again after a failed attempt. The wait is
//! bounded by a fresh `timeout http-request` (408 when it expires); a client that
//! expects `100-continue` gets it from the proxy (the `Expect` header is then
//! removed, so the server sends none). The body stays in the connection's request
//! buffer: nothing is allocated.

use monoio::time::Instant;

use super::conn::{Conn, Stop};
use super::framing::{BodyProgress, Framing};
use super::reply::Reply;
use crate::io::{read_into, write_static, ReadOutcome, Stream};

/// The interim answer sent to a client that expects it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Whether `body`, the bytes after a request head, hold the whole body that
/// `framing` announces. A chunked body is scanned through a copy on the stack (the
/// scanner may rewrite trailer lines in place; the buffer is left as it was). A
/// malformed one counts as whole: the exchange then refuses it as usual.
pub(super) fn whole(body: &[u8], framing: Framing, max_chunks: u32) -> bool {
    match framing {
        Framing::None => true,
        Framing::Length(n) => body.len() as u64 >= n,
        Framing::UntilClose => false,
        Framing::Chunked => {
            let mut scan = BodyProgress::new(Framing::Chunked, max_chunks);
            let mut piece = [0u8; 512];
            let mut at = 0;
            while at < body.len() {
                let n = (body.len() - at).min(piece.len());
                piece[..n].copy_from_slice(&body[at..at + n]);
                match scan.feed(&mut piece[..n]) {
                    Err(_) => return true,
                    Ok(_) if scan.is_done() => return true,
                    // The start of a trailer line the piece does not hold whole: it
                    // needs more bytes than there are.
                    Ok(fed) if fed.used == 0 => return false,
                    Ok(fed) => at += fed.used,
                }
            }
            scan.is_done()
        }
    }
}

impl<S: Stream> Conn<S> {
    /// Reads until the body that follows the request head (`head_len` bytes from
    /// `cpos`) is whole in `cbuf`, or `cbuf` is full. `Ok(true)`: the client was sent
    /// `100 Continue` (its `Expect` header is to be removed).
    pub(super) async fn buffer_body(
        &mut self,
        head_len: usize,
        framing: Framing,
        expect_continue: bool,
    ) -> Result<bool, Stop> {
        let max_chunks = self.shard.config.limits.max_chunks;
        let deadline = Instant::now() + self.timeouts().http_request;
        let mut continued = false;
        loop {
            let start = (self.cpos + head_len).min(self.cbuf.len());
            if whole(&self.cbuf[start..], framing, max_chunks) {
                return Ok(continued);
            }
            if self.cpos > 0 {
                self.cbuf.copy_within(self.cpos.., 0);
                let len = self.cbuf.len() - self.cpos;
                self.cbuf.truncate(len);
                self.cpos = 0;
            }
            if self.cbuf.len() >= self.cbuf.capacity() {
                return Ok(continued);
            }
            if expect_continue && !continued {
                write_static(&mut self.client, CONTINUE, &mut self.timer, deadline)
                    .await
                    .map_err(|_| Stop::Close)?;
                continued = true;
            }
            match read_into(&mut self.client, &mut self.cbuf, &mut self.timer, deadline).await {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Timeout => return Err(Stop::Reply(Reply::RequestTimeout)),
                ReadOutcome::Eof | ReadOutcome::Error => return Err(Stop::Close),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_bodies_by_framing() {
        assert!(whole(b"", Framing::None, 16));
        assert!(!whole(b"abc", Framing::Length(5), 16));
        assert!(whole(b"abcde", Framing::Length(5), 16));
        assert!(!whole(b"5\r\nhel", Framing::Chunked, 16));
        assert!(!whole(b"5\r\nhello\r\n", Framing::Chunked, 16));
        assert!(whole(b"5\r\nhello\r\n0\r\n\r\n", Framing::Chunked, 16));
        // A long chunked body spans several stack pieces.
        let mut long = Vec::new();
        for _ in 0..100 {
            long.extend_from_slice(b"a\r\n0123456789\r\n");
        }
        assert!(!whole(&long, Framing::Chunked, 1000));
        long.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        assert!(whole(&long, Framing::Chunked, 1000));
    }
}
