//! A connection's buffers between exchanges: taken from the shard's free list for an
//! exchange, given back while the connection waits for its next request (an idle
//! keep-alive connection holds none).

use super::*;
use crate::http::idle::ReadableUntil;

impl<S: Stream> Idle<S> {
    /// The wait, holding no buffer, until the client sends something or the wait for
    /// the request head is over (`timeout.http_request` for the first request,
    /// `timeout.http_keep_alive` for the next ones); `read_head` then tells which.
    pub(super) fn wait_readable(&mut self, first: bool) -> ReadableUntil {
        let t = &self.shard.config.frontends[self.frontend as usize].timeouts;
        let wait = if first {
            t.http_request
        } else {
            t.http_keep_alive
        };
        let deadline = self.head_start + wait;
        // A stream with bytes buffered above the socket (TLS: plaintext rustls
        // decrypted, a record read whole) is not waited on: it reads them at once.
        crate::http::idle::readable_until(self.client.idle_socket(), deadline)
    }
}

impl<S: Stream> Conn<S> {
    /// Takes the buffers of an exchange from the shard's free list.
    pub(super) fn take_buffers(&mut self) {
        let cap = self.shard.config.limits.max_header_bytes;
        if self.cbuf.capacity() == 0 {
            self.cbuf = PooledBuf::take(cap);
        }
        if self.sbuf.capacity() == 0 {
            self.sbuf = PooledBuf::take(SERVER_BUF.max(cap));
        }
        if self.out.capacity() == 0 {
            self.out = PooledBuf::take(OUT_BUF);
        }
    }

    /// Gives the buffers and the timer back while the connection waits (nothing is
    /// buffered).
    pub(super) fn release_buffers(&mut self) {
        self.cbuf = PooledBuf::none();
        self.cpos = 0;
        self.sbuf = PooledBuf::none();
        self.out = PooledBuf::none();
        self.reqline = Vec::new();
        self.timer.release();
    }
}
