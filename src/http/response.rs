//! The response side of an exchange: read and parse the server's head (interim 1xx
//! skipped), then send it and stream the body back to the client.

use super::conn::{Conn, RequestMeta, Stop};
use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed};
use crate::dispatch::ServerConn;
use crate::io::{read_into, write_range, ReadOutcome, Stream};
use crate::record::Term;
use monoio::time::Instant;

impl<S: Stream> Conn<S> {
    /// Reads and parses the response head (skipping interim 1xx responses); the head
    /// for the client is left in `out`, the body bytes that came with it in `sbuf`.
    pub(super) async fn read_response_head(
        &mut self,
        up: &mut ServerConn,
        req: &RequestMeta,
        keep_alive: bool,
        sent: Instant,
    ) -> Result<ResponseMeta, HeadError> {
        self.sbuf.clear();
        let deadline = sent + self.server_timeout;
        let mut received_any = false;
        loop {
            if !self.sbuf.is_empty() {
                let mut client_keep_alive = keep_alive;
                match head::parse_response(
                    &self.sbuf,
                    self.shard.config.limits.max_headers,
                    req.is_head,
                    req.tunnel,
                    req.minor,
                    &mut client_keep_alive,
                    &mut self.out,
                ) {
                    Parsed::Done(r) if (100..200).contains(&r.status) && !r.upgrade => {
                        self.sbuf.drain(..r.head_len);
                        continue;
                    }
                    Parsed::Done(r) => {
                        return Ok(ResponseMeta {
                            status: r.status,
                            head_len: r.head_len,
                            framing: r.framing,
                            reusable: r.reusable,
                            client_keep_alive,
                            upgrade: r.upgrade,
                            names: r.names,
                        })
                    }
                    Parsed::Reject(_) => return Err(HeadError::Invalid),
                    Parsed::Partial if self.sbuf.len() == self.sbuf.capacity() => {
                        return Err(HeadError::Invalid)
                    }
                    Parsed::Partial => {}
                }
            }
            match read_into(&mut up.stream, &mut self.sbuf, &mut self.timer, deadline).await {
                ReadOutcome::Data(n) => received_any |= n > 0,
                ReadOutcome::Timeout => return Err(HeadError::Timeout),
                ReadOutcome::Eof | ReadOutcome::Error if !received_any => {
                    return Err(HeadError::NothingReceived)
                }
                ReadOutcome::Eof | ReadOutcome::Error => return Err(HeadError::Invalid),
            }
        }
    }

    /// Sends the response head and streams the body. Returns (client may stay open,
    /// upstream may be pooled).
    pub(super) async fn forward_response(
        &mut self,
        up: &mut ServerConn,
        res: ResponseMeta,
    ) -> Result<(bool, bool), Stop> {
        let client_timeout = self.timeouts().client;
        let server_timeout = self.server_timeout;
        // `http-response` and `http-after-response` rules, response captures.
        self.txn.names[1] = res.names;
        if self.response_rules(up.server)? {
            // A rule answered instead: the server's body is never read, so its
            // connection is not reused.
            let len = self.out.len();
            self.rec.bytes_out += len as u64;
            let deadline = Instant::now() + client_timeout;
            write_range(
                &mut self.client,
                &mut self.out,
                0..len,
                &mut self.timer,
                deadline,
            )
            .await
            .map_err(|_| Stop::Close)?;
            return Ok((false, false));
        }
        let mut body = BodyProgress::new(res.framing, self.shard.config.limits.max_chunks);
        let rest = &self.sbuf[res.head_len..];
        let used = body.feed(rest).map_err(|_| Stop::Close)?;
        // Bytes past the end of the response mean the server is out of step: never reuse.
        let mut reusable = res.reusable && used == rest.len();
        self.out.extend_from_slice(&rest[..used]);
        let len = self.out.len();
        self.rec.bytes_out += len as u64;
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            &mut self.timer,
            self.rec.first_byte.unwrap_or_else(Instant::now) + client_timeout,
        )
        .await
        .map_err(|_| Stop::Close)?;
        while !body.is_done() {
            // A large Content-Length body goes from socket to socket through a pipe
            // (plain sockets only: a TLS stream needs the bytes).
            let rest = body
                .remaining_length()
                .filter(|&n| n >= crate::splice::SPLICE_MIN);
            if let (Some(rest), Some(to), Some(from)) =
                (rest, self.client.socket(), up.stream.socket())
            {
                let pipes = self.shard.pipes.clone();
                let (rt, wt) = (server_timeout, client_timeout);
                match pipes.forward(from, to, rest, rt, wt, &mut self.timer).await {
                    Ok(()) => {
                        body.skip(rest);
                        self.rec.bytes_out += rest;
                        let st = &self.shard.stats;
                        crate::stats::Counters::add(&st.frontends[self.frontend].spliced_out, rest);
                        if let Some(b) = self.rec.backend {
                            crate::stats::Counters::add(&st.backends[b].spliced_out, rest);
                        }
                        break;
                    }
                    Err(crate::splice::SpliceError::NoPipe) => {}
                    Err(_) => return Err(Stop::Close),
                }
            }
            self.sbuf.clear();
            match read_into(
                &mut up.stream,
                &mut self.sbuf,
                &mut self.timer,
                Self::deadline(server_timeout),
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Eof => {
                    body.on_eof().map_err(|_| Stop::Close)?;
                    reusable = false;
                    break;
                }
                ReadOutcome::Timeout | ReadOutcome::Error => return Err(Stop::Close),
            }
            let used = body.feed(&self.sbuf).map_err(|_| Stop::Close)?;
            self.rec.bytes_out += used as u64;
            reusable &= used == self.sbuf.len();
            write_range(
                &mut self.client,
                &mut self.sbuf,
                0..used,
                &mut self.timer,
                Self::deadline(client_timeout),
            )
            .await
            .map_err(|_| Stop::Close)?;
        }
        Ok((res.client_keep_alive, reusable))
    }
}

impl<S: Stream> Conn<S> {
    /// Runs the response rules on the head in `out`; `Ok(true)` when a rule replaced
    /// the response with a local answer (then in `out`).
    fn response_rules(&mut self, server: u32) -> Result<bool, Stop> {
        let cfg = &self.shard.config;
        let fe = &cfg.frontends[self.frontend];
        let be = self.rec.backend.map(|b| &cfg.backends[b]);
        let none = fe.http_response.is_empty()
            && fe.http_after_response.is_empty()
            && fe.captures.response.is_empty()
            && be.is_none_or(|b| b.http_response.is_empty() && b.http_after_response.is_empty());
        if none {
            return Ok(false);
        }
        match super::phases::response_phase(
            &self.shard,
            self.frontend,
            self.rec.backend,
            Some(server),
            self.peer,
            self.local,
            &mut self.txn,
            &mut self.out,
        ) {
            Ok(()) => {
                if let Some(st) = self.txn.status {
                    self.rec.status = st;
                }
                Ok(false)
            }
            Err(super::phases::Early::Answer(st)) => {
                // A deny (an error status) is a denied response for HAProxy.
                if st >= 400 {
                    self.count_denied_response(server);
                }
                self.rec.status = st;
                self.rec.term = Some(Term::PROXY_HEADER);
                super::rules::connection_header(&mut self.out, true, 1);
                Ok(true)
            }
            Err(_) => {
                self.count_denied_response(server);
                self.rec.term = Some(Term::PROXY_HEADER);
                Err(Stop::Close)
            }
        }
    }

    /// `dresp` of the frontend, the backend and the server.
    fn count_denied_response(&self, server: u32) {
        let st = &self.shard.stats;
        crate::stats::Counters::inc(&st.frontends[self.frontend].dresp);
        if let Some(b) = self.rec.backend {
            crate::stats::Counters::inc(&st.backends[b].dresp);
            if let Some(sv) = st.server_checked(b, server as usize) {
                crate::stats::Counters::inc(&sv.dresp);
            }
        }
    }
}

pub(super) enum HeadError {
    /// EOF or reset before a single response byte: a stale pooled connection.
    NothingReceived,
    Invalid,
    Timeout,
}

pub(super) struct ResponseMeta {
    pub(super) status: u16,
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    pub(super) reusable: bool,
    pub(super) client_keep_alive: bool,
    /// A 101 to an upgrade request: a tunnel follows.
    pub(super) upgrade: bool,
    /// The response head's header-name summary (for the rules).
    pub(super) names: u64,
}
