//! A compressed response body on its way to the client: the server's body (its
//! `Content-Length` bytes or its chunks' data) goes through the encoder, read by read,
//! and out as one chunk per read. Never spliced; the memory it holds is the
//! connection's buffers plus the encoder's state, whatever the body's length.

use monoio::time::Instant;

use super::encoder::Encoder;
use crate::config::compression::Algo;
use crate::dispatch::ServerConn;
use crate::http::conn::{Conn, Stop};
use crate::http::framing::BodyProgress;
use crate::http::reply::Reply;
use crate::http::response::{keep_tail, ResponseMeta};
use crate::io::{write_range, ReadOutcome, Stream};

impl<S: Stream> Conn<S> {
    /// Sends the head in `out` (already rewritten for `algo`) and the body compressed.
    /// Returns (client may stay open, upstream may be pooled).
    pub(in crate::http) async fn forward_compressed(
        &mut self,
        up: &mut ServerConn,
        res: ResponseMeta,
        algo: Algo,
    ) -> Result<(bool, bool), Stop> {
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        let mut enc = Encoder::new(algo, self.shard.config.runtime.comp_level);
        let mut body = BodyProgress::new(res.framing, self.shard.config.limits.max_chunks);
        let mut failed = false;
        let start = Encoder::begin_chunk(&mut self.out);
        let rest = &mut self.sbuf[res.head_len..];
        let fed = body.feed_with(rest, |d| failed |= enc.push(d, &mut self.out).is_err());
        let Ok(fed) = fed else {
            // Nothing went to the client yet: it gets a 502 rather than a bare close.
            self.bad_response(up.server);
            return Err(Stop::Reply(Reply::BadGateway));
        };
        // Bytes past the end of the response mean the server is out of step: never reuse.
        let mut reusable = res.reusable && (!body.is_done() || fed.used == rest.len());
        let mut held = if body.is_done() {
            0
        } else {
            rest.len() - fed.used
        };
        failed |= enc.end_chunk(&mut self.out, start, body.is_done()).is_err();
        if failed {
            return Err(Stop::Reply(Reply::BadGateway));
        }
        let deadline = self.rec.first_byte.unwrap_or_else(Instant::now) + client_timeout;
        self.send_out(deadline).await?;
        while !body.is_done() {
            keep_tail(&mut self.sbuf, held);
            if self.sbuf.len() == self.sbuf.capacity() {
                return Err(Stop::Close);
            }
            let read = self.read_server(up, Self::deadline(server_timeout));
            match read.await.ok_or(Stop::Close)? {
                ReadOutcome::Data(_) => {}
                // A body of known length (the only ones compressed) cut short.
                ReadOutcome::Eof | ReadOutcome::Timeout | ReadOutcome::Error => {
                    return Err(Stop::Close)
                }
            }
            self.out.clear();
            let start = Encoder::begin_chunk(&mut self.out);
            let fed = body
                .feed_with(&mut self.sbuf, |d| {
                    failed |= enc.push(d, &mut self.out).is_err()
                })
                .map_err(|_| Stop::Close)?;
            reusable &= !body.is_done() || fed.used == self.sbuf.len();
            held = self.sbuf.len() - fed.used;
            failed |= enc.end_chunk(&mut self.out, start, body.is_done()).is_err();
            if failed {
                return Err(Stop::Close);
            }
            if !self.out.is_empty() {
                self.send_out(Self::deadline(client_timeout)).await?;
            }
        }
        Ok((res.client_keep_alive, reusable))
    }

    /// Writes all of `out` to the client.
    async fn send_out(&mut self, deadline: Instant) -> Result<(), Stop> {
        let len = self.out.len();
        self.rec.bytes_out += len as u64;
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            &mut self.timer,
            deadline,
        )
        .await
        .map_err(|_| Stop::Close)
    }
}
