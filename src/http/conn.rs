//! One client connection: read a request head, route it, get an upstream connection,
//! send the rewritten head and stream the body, read the response head, stream the
//! response body back, pool the upstream connection, and go round again (keep-alive,
//! pipelining: requests are answered strictly in order).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::framing::{BodyProgress, Framing};
use super::head::{self, Parsed, MAX_HEADERS};
use super::io::{linger_close, read_into, write_range, write_static, ReadOutcome};
use super::reply::{Reply, CONTINUE};
use super::route::route;
use crate::shard::Shard;
use crate::upstream::{ConnectError, Upstream};

/// Response buffer size; the request buffer is `limits.max_header_bytes`.
const SERVER_BUF: usize = 16 * 1024;

/// How one exchange ended, when it did not end in a reusable state.
enum Stop {
    /// Close quietly (client gone, idle timeout, or the response was cut short).
    Close,
    /// Answer with a canned reply, then close.
    Reply(Reply),
}

/// The parts of a request head the rest of the exchange needs (the head itself has
/// already been rewritten into `out`).
struct RequestMeta {
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    is_head: bool,
    minor: u8,
    backend: Option<usize>,
}

struct Conn {
    shard: Rc<Shard>,
    frontend: usize,
    peer: SocketAddr,
    client: TcpStream,
    /// Client bytes: `[cpos..len]` not yet consumed (pipelined requests wait here).
    cbuf: Vec<u8>,
    cpos: usize,
    /// Server bytes of the current response.
    sbuf: Vec<u8>,
    /// The rewritten head (and the first body bytes) going out.
    out: Vec<u8>,
}

pub async fn serve(shard: Rc<Shard>, frontend: usize, client: TcpStream, peer: SocketAddr) {
    let cap = shard.config.limits.max_header_bytes;
    let mut conn = Conn {
        shard,
        frontend,
        peer,
        client,
        cbuf: Vec::with_capacity(cap),
        cpos: 0,
        sbuf: Vec::with_capacity(SERVER_BUF.max(cap)),
        out: Vec::with_capacity(1024),
    };
    let mut first = true;
    loop {
        match conn.exchange(first).await {
            Ok(true) => first = false,
            Ok(false) => {
                let _ = conn.client.shutdown().await;
                return;
            }
            Err(Stop::Close) => return,
            Err(Stop::Reply(r)) => {
                let deadline = Instant::now() + conn.shard.config.timeouts.client;
                if write_static(&mut conn.client, r.bytes(), deadline)
                    .await
                    .is_ok()
                {
                    linger_close(conn.client, conn.cbuf).await;
                }
                return;
            }
        }
    }
}

impl Conn {
    fn timeouts(&self) -> &crate::config::Timeouts {
        &self.shard.config.timeouts
    }

    fn deadline(d: Duration) -> Instant {
        Instant::now() + d
    }

    /// One request and its response. `Ok(true)` = keep the client connection open.
    async fn exchange(&mut self, first: bool) -> Result<bool, Stop> {
        let req = self.read_head(first).await?;
        let _inflight = self.shard.begin_request();
        let keep_alive = req.keep_alive && !self.shard.draining.get();
        let Some(backend) = req.backend else {
            return Err(Stop::Reply(Reply::ServiceUnavailable));
        };
        let mut up = match self.shard.upstreams.connect(backend, true).await {
            Ok(u) => u,
            Err(ConnectError::NoServer) => return Err(Stop::Reply(Reply::ServiceUnavailable)),
            Err(ConnectError::AllFailed) => return Err(Stop::Reply(Reply::BadGateway)),
        };
        if req.expect_continue {
            let deadline = Self::deadline(self.timeouts().client);
            write_static(&mut self.client, CONTINUE, deadline)
                .await
                .map_err(|_| Stop::Close)?;
        }

        // The head and whatever body bytes are already buffered leave in one write.
        self.cpos += req.head_len;
        let mut body = BodyProgress::new(req.framing);
        let used = body
            .feed(&self.cbuf[self.cpos..])
            .map_err(|_| Stop::Reply(Reply::BadRequest))?;
        self.out
            .extend_from_slice(&self.cbuf[self.cpos..self.cpos + used]);
        self.cpos += used;
        // A request wholly in `out` can be resent if a pooled connection turns out stale.
        let replayable = body.is_done();

        let mut retried = false;
        let response = loop {
            match self.send_request(&mut up, &mut body).await {
                Ok(()) => {}
                Err(SendError::Client) => return Err(Stop::Close),
                Err(SendError::Server) if up.reused && replayable && !retried => {
                    retried = true;
                    up = self.fresh(backend, up.server).await?;
                    continue;
                }
                Err(SendError::Server) => return Err(Stop::Reply(Reply::BadGateway)),
            }
            match self.read_response_head(&mut up, &req, keep_alive).await {
                Ok(r) => break r,
                Err(HeadError::NothingReceived) if up.reused && replayable && !retried => {
                    retried = true;
                    up = self.fresh(backend, up.server).await?;
                }
                Err(HeadError::NothingReceived) | Err(HeadError::Invalid) => {
                    return Err(Stop::Reply(Reply::BadGateway))
                }
                Err(HeadError::Timeout) => return Err(Stop::Reply(Reply::GatewayTimeout)),
            }
        };
        let (client_keep_alive, reusable) = self.forward_response(&mut up, response).await?;
        if reusable {
            self.shard.upstreams.release(backend, up.server, up.stream);
        }
        Ok(keep_alive && client_keep_alive)
    }

    async fn fresh(&self, backend: usize, server: usize) -> Result<Upstream, Stop> {
        match self.shard.upstreams.connect_fresh(backend, server).await {
            Ok(stream) => Ok(Upstream {
                server,
                stream,
                reused: false,
            }),
            Err(_) => Err(Stop::Reply(Reply::BadGateway)),
        }
    }

    /// Reads until a complete request head is buffered, then parses and routes it.
    async fn read_head(&mut self, first: bool) -> Result<RequestMeta, Stop> {
        let t = self.timeouts();
        let (http_request, keep_alive_idle) = (t.http_request, t.http_keep_alive);
        let max = self.shard.config.limits.max_header_bytes;
        let fe = &self.shard.config.frontends[self.frontend];
        let xff = fe.forward_for.then(|| self.peer.ip());
        let mut waiting_first_byte = !first && self.cpos == self.cbuf.len();
        let mut deadline = Self::deadline(if waiting_first_byte {
            keep_alive_idle
        } else {
            http_request
        });
        loop {
            if self.cpos < self.cbuf.len() {
                let data = &self.cbuf[self.cpos..];
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match head::parse_request(data, &mut headers, xff, &mut self.out) {
                    Parsed::Done(r) => {
                        return Ok(RequestMeta {
                            head_len: r.head_len,
                            framing: r.framing,
                            keep_alive: r.keep_alive,
                            expect_continue: r.expect_continue,
                            is_head: r.method == "HEAD",
                            minor: r.minor_version,
                            backend: route(fe, r.host, r.path),
                        });
                    }
                    Parsed::Reject(reply) => return Err(Stop::Reply(reply)),
                    Parsed::Partial if data.len() >= max => {
                        return Err(Stop::Reply(Reply::HeaderTooLarge))
                    }
                    Parsed::Partial => {}
                }
            }
            // Make room at the end of the buffer for the rest of the head.
            if self.cpos > 0 {
                self.cbuf.copy_within(self.cpos.., 0);
                self.cbuf.truncate(self.cbuf.len() - self.cpos);
                self.cpos = 0;
            }
            match read_into(&mut self.client, &mut self.cbuf, deadline).await {
                ReadOutcome::Data(_) => {
                    if waiting_first_byte {
                        waiting_first_byte = false;
                        deadline = Self::deadline(http_request);
                    }
                }
                ReadOutcome::Timeout if waiting_first_byte => return Err(Stop::Close),
                ReadOutcome::Timeout => return Err(Stop::Reply(Reply::RequestTimeout)),
                ReadOutcome::Eof | ReadOutcome::Error => return Err(Stop::Close),
            }
        }
    }

    /// Writes `out` (head + buffered body) and streams the rest of the request body.
    async fn send_request(
        &mut self,
        up: &mut Upstream,
        body: &mut BodyProgress,
    ) -> Result<(), SendError> {
        let server_deadline = Self::deadline(self.timeouts().server);
        let len = self.out.len();
        write_range(&mut up.stream, &mut self.out, 0..len, server_deadline)
            .await
            .map_err(|_| SendError::Server)?;
        let client_timeout = self.timeouts().client;
        let server_timeout = self.timeouts().server;
        while !body.is_done() {
            // Everything buffered was consumed by the body so far: reuse from the start.
            self.cbuf.clear();
            self.cpos = 0;
            match read_into(
                &mut self.client,
                &mut self.cbuf,
                Self::deadline(client_timeout),
            )
            .await
            {
                ReadOutcome::Data(_) => {}
                _ => return Err(SendError::Client),
            }
            let used = body.feed(&self.cbuf).map_err(|_| SendError::Client)?;
            write_range(
                &mut up.stream,
                &mut self.cbuf,
                0..used,
                Self::deadline(server_timeout),
            )
            .await
            .map_err(|_| SendError::Server)?;
            self.cpos = used;
        }
        Ok(())
    }

    /// Reads and parses the response head (skipping interim 1xx responses); the head
    /// for the client is left in `out`, the body bytes that came with it in `sbuf`.
    async fn read_response_head(
        &mut self,
        up: &mut Upstream,
        req: &RequestMeta,
        keep_alive: bool,
    ) -> Result<ResponseMeta, HeadError> {
        self.sbuf.clear();
        let deadline = Self::deadline(self.timeouts().server);
        let mut received_any = false;
        loop {
            if !self.sbuf.is_empty() {
                let mut client_keep_alive = keep_alive;
                match head::parse_response(
                    &self.sbuf,
                    req.is_head,
                    req.minor,
                    &mut client_keep_alive,
                    &mut self.out,
                ) {
                    Parsed::Done(r) if r.status == 101 => return Err(HeadError::Invalid),
                    Parsed::Done(r) if (100..200).contains(&r.status) => {
                        self.sbuf.drain(..r.head_len);
                        continue;
                    }
                    Parsed::Done(r) => {
                        return Ok(ResponseMeta {
                            head_len: r.head_len,
                            framing: r.framing,
                            reusable: r.reusable,
                            client_keep_alive,
                        })
                    }
                    Parsed::Reject(_) => return Err(HeadError::Invalid),
                    Parsed::Partial if self.sbuf.len() == self.sbuf.capacity() => {
                        return Err(HeadError::Invalid)
                    }
                    Parsed::Partial => {}
                }
            }
            match read_into(&mut up.stream, &mut self.sbuf, deadline).await {
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
    async fn forward_response(
        &mut self,
        up: &mut Upstream,
        res: ResponseMeta,
    ) -> Result<(bool, bool), Stop> {
        let client_timeout = self.timeouts().client;
        let server_timeout = self.timeouts().server;
        let mut body = BodyProgress::new(res.framing);
        let rest = &self.sbuf[res.head_len..];
        let used = body.feed(rest).map_err(|_| Stop::Close)?;
        // Bytes past the end of the response mean the server is out of step: never reuse.
        let mut reusable = res.reusable && used == rest.len();
        self.out.extend_from_slice(&rest[..used]);
        let len = self.out.len();
        write_range(
            &mut self.client,
            &mut self.out,
            0..len,
            Self::deadline(client_timeout),
        )
        .await
        .map_err(|_| Stop::Close)?;
        while !body.is_done() {
            self.sbuf.clear();
            match read_into(
                &mut up.stream,
                &mut self.sbuf,
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
            reusable &= used == self.sbuf.len();
            write_range(
                &mut self.client,
                &mut self.sbuf,
                0..used,
                Self::deadline(client_timeout),
            )
            .await
            .map_err(|_| Stop::Close)?;
        }
        Ok((res.client_keep_alive, reusable))
    }
}

enum SendError {
    Client,
    Server,
}

enum HeadError {
    /// EOF or reset before a single response byte: a stale pooled connection.
    NothingReceived,
    Invalid,
    Timeout,
}

struct ResponseMeta {
    head_len: usize,
    framing: Framing,
    reusable: bool,
    client_keep_alive: bool,
}
