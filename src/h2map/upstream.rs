//! One request to a `proto h2` server as the byte stream the HTTP path reads and
//! writes on a server connection: writes take the HTTP/1.1 request (head, then body)
//! and send it as a stream of the server's shared HTTP/2 connection (HEADERS with
//! `:scheme` and `:authority` as HAProxy 2.6 derives them (`RequestHead::target`),
//! connection-specific fields dropped, `te: trailers` kept,
//! DATA under the server's flow control, chunked trailers as a trailing HEADERS);
//! reads give its response as HTTP/1.1 as HAProxy 2.6 writes it (no reason phrase;
//! chunked when it has no length, so trailers such as gRPC's `grpc-status` pass).
//!
//! A request whose client is itself an HTTP/2 stream may hand its body over untouched
//! (`adopt_body`): a task forwards its frames as they come while the HTTP path reads
//! the response, so a call streaming both ways (gRPC) is not held until the request
//! ends. A stream dropped before its response ended (the client reset or left, a
//! timeout) is reset at the server with CANCEL.

use std::future::Future;
use std::io;
use std::task::Poll;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::uri::Scheme;
use http::{header, Method, Request, Uri};

use super::inbound::H2In;
use super::out::{broken, copy_fields, H1Out, Head, HeadSink, Phase};

/// The longest request head taken (the HTTP path wrote it: a local bound only).
const HEAD_MAX: usize = 256 * 1024;

/// A connection of its own for one stream (a health check's) over `io`, a poll-io
/// socket or TLS over one. A task of the current runtime drives it, and it closes
/// once the stream is dropped.
pub async fn single<T>(io: T) -> io::Result<H2Upstream>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (conn, driver) = h2::client::handshake(io)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e))?;
    monoio::spawn(async move {
        let _ = driver.await;
    });
    Ok(H2Upstream::new(conn, Default::default()))
}

/// What the streams of one connection share with the code that hands them out.
#[derive(Default)]
pub struct Shared {
    /// The connection ended, or refuses new streams (GOAWAY).
    pub dead: std::cell::Cell<bool>,
    /// Its streams in use.
    pub active: std::cell::Cell<usize>,
    /// Streams it ever carried: the idle sweep sees whether one came since its last
    /// look without reading the clock per stream.
    pub started: std::cell::Cell<u64>,
}

pub struct H2Upstream {
    shared: std::rc::Rc<Shared>,
    out: H1Out,
    head: RequestHead,
    answer: Answer,
    /// The request body forwarded frame by frame (`adopt_body`): told to stop, with
    /// the reason for the server, when this stream ends.
    pump: Option<local_sync::oneshot::Sender<Reason>>,
}

/// The response side, apart from the request's so both can wait at once
/// (`read_or_send`).
#[derive(Default)]
struct Answer {
    response: Option<ResponseFuture>,
    inbound: Option<H2In>,
    /// The whole response was read.
    ended: bool,
    /// The h2 crate found the response broke the protocol (and reset the stream or
    /// ended the connection itself).
    malformed: bool,
    /// An interim response's head (`Next::Interim`), read before the final one.
    interim: Option<H2In>,
}

/// What came first of `H2Upstream::read_or_send`.
pub enum Duplex {
    /// Response bytes were read (0: the response is over).
    Read(io::Result<usize>),
    /// Request bytes were sent.
    Sent(io::Result<usize>),
}

/// The request head's side: the connection to open the stream on.
struct RequestHead {
    conn: SendRequest<Bytes>,
    /// A body to forward as frames once the HEADERS went (`adopt_body`).
    adopted: Option<RecvStream>,
    /// Set once the HEADERS went: the response, and the adopted body's stream.
    sent: Option<(ResponseFuture, Option<SendStream<Bytes>>)>,
    head_request: bool,
    /// The `:scheme` of the client's HTTP/2 stream; `None`: an HTTP/1 client.
    client_scheme: Option<Scheme>,
}

impl H2Upstream {
    /// A new stream on `conn` (its own clone of the connection's handle).
    pub fn new(conn: SendRequest<Bytes>, shared: std::rc::Rc<Shared>) -> Self {
        shared.active.set(shared.active.get() + 1);
        shared.started.set(shared.started.get() + 1);
        H2Upstream {
            shared,
            out: H1Out::default(),
            head: RequestHead {
                conn,
                adopted: None,
                sent: None,
                head_request: false,
                client_scheme: None,
            },
            answer: Answer::default(),
            pump: None,
        }
    }

    /// The server's answer broke the protocol before its head came whole (a stream or
    /// connection error the h2 crate detected): an invalid response, never retried,
    /// as HAProxy 2.6 takes it, not a server that closed before answering.
    pub fn malformed(&self) -> bool {
        self.answer.malformed
    }

    /// The request's client is an HTTP/2 stream with this `:scheme` (see
    /// `RequestHead::target`); by default it is an HTTP/1 client.
    pub fn client_scheme(&mut self, scheme: Scheme) {
        self.head.client_scheme = Some(scheme);
    }

    /// Takes the request body as HTTP/2 frames, forwarded as they come: the HTTP
    /// path then writes the head only.
    pub fn adopt_body(&mut self, body: RecvStream) {
        self.head.adopted = Some(body);
    }

    /// `Stream::read_until` (see `h2map::read_until`).
    pub async fn read_until(
        &mut self,
        buf: Vec<u8>,
        deadline: monoio::time::Instant,
    ) -> (io::Result<usize>, Vec<u8>) {
        super::read_until(buf, deadline, |dst, room| self.read_raw(dst, room)).await
    }

    /// The writer is done (see `rent_io`).
    fn finish(&mut self) {
        self.out.finish();
    }

    /// Reads response bytes into the spare room of `buf` or, while none come (and
    /// only when `read`), sends request body bytes from `src` as the server's window
    /// allows: whichever is first. The head was sent. Either side left waiting loses
    /// nothing, so an HTTP/1 client's body and the response move at once, and a
    /// server that stops reading (its window shut) still gets its answer through.
    pub async fn read_or_send(&mut self, buf: &mut Vec<u8>, src: &[u8], read: bool) -> Duplex {
        let head_request = self.head.head_request;
        let answer = &mut self.answer;
        let receive = async {
            if !read {
                return std::future::pending().await;
            }
            super::read_vec(buf, |dst, room| answer.read_raw(dst, room, head_request)).await
        };
        let send = async {
            if src.is_empty() {
                return std::future::pending().await;
            }
            self.out.write(src, &mut self.head).await
        };
        monoio::select! {
            r = receive => Duplex::Read(r),
            w = send => Duplex::Sent(w),
        }
    }

    async fn write_raw(&mut self, src: &[u8]) -> io::Result<usize> {
        if !self.out.is_headed() {
            // The connection takes another stream (it may be dead, or at its limit).
            if std::future::poll_fn(|cx| self.head.conn.poll_ready(cx))
                .await
                .is_err()
            {
                self.shared.dead.set(true);
                return Err(broken("connection closed"));
            }
        }
        let n = match self.out.write(src, &mut self.head).await {
            Ok(n) => n,
            Err(e) => {
                if !self.out.is_headed() && e.kind() == io::ErrorKind::BrokenPipe {
                    // The connection took no new stream: GOAWAY, or it is closing.
                    self.shared.dead.set(true);
                }
                return Err(e);
            }
        };
        if let Some((response, pumped)) = self.head.sent.take() {
            self.answer.response = Some(response);
            if let (Some(to), Some(from)) = (pumped, self.head.adopted.take()) {
                let (tx, rx) = local_sync::oneshot::channel();
                self.pump = Some(tx);
                monoio::spawn(super::pump::pump(from, to, rx));
            }
        }
        Ok(n)
    }

    async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        self.answer
            .read_raw(dst, room, self.head.head_request)
            .await
    }
}

impl Answer {
    async fn read_raw(
        &mut self,
        dst: *mut u8,
        room: usize,
        head_request: bool,
    ) -> io::Result<usize> {
        loop {
            if let Some(interim) = self.interim.as_mut() {
                let n = interim.read_raw(dst, room).await?;
                if n > 0 {
                    return Ok(n);
                }
                self.interim = None;
            }
            if self.inbound.is_some() {
                break;
            }
            let Some(response) = self.response.as_mut() else {
                return Err(broken("no request sent"));
            };
            match next_head(response).await {
                Ok(Next::Interim(res)) => {
                    let mut head = status_and_fields(&res);
                    head.extend_from_slice(b"\r\n");
                    self.interim = Some(H2In::new(head, None, false));
                }
                Ok(Next::Final(res)) => {
                    self.response = None;
                    self.inbound = Some(translate_response(res, head_request));
                }
                Err(e) => {
                    self.malformed = e.is_library();
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, e));
                }
            }
        }
        let Some(inbound) = self.inbound.as_mut() else {
            return Ok(0);
        };
        let n = inbound.read_raw(dst, room).await?;
        if n == 0 {
            self.ended = true;
        }
        Ok(n)
    }
}

/// A response head of a stream: an interim one (1xx, passed on as HAProxy 2.6 passes
/// it: `103 Early Hints`), or the final one.
enum Next {
    Interim(http::Response<()>),
    Final(http::Response<RecvStream>),
}

/// The next response head of `response`: its interim ones first.
async fn next_head(response: &mut ResponseFuture) -> Result<Next, h2::Error> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(Some(Ok(res))) = response.poll_informational(cx) {
            return Poll::Ready(Ok(Next::Interim(res)));
        }
        std::pin::Pin::new(&mut *response)
            .poll(cx)
            .map(|r| r.map(Next::Final))
    })
    .await
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        self.shared.active.set(self.shared.active.get() - 1);
        // A response read whole needs no reset, except for a body still going up.
        let reason = if self.answer.ended {
            Reason::NO_ERROR
        } else {
            Reason::CANCEL
        };
        if let Some(p) = self.pump.take() {
            let _ = p.send(reason);
        }
        if !self.answer.ended {
            self.out.reset(Reason::CANCEL);
        }
    }
}

impl RequestHead {
    /// The URI of an origin-form request (`path`; `host`: its Host), sent as HAProxy
    /// 2.6 sends it: `:scheme` is an HTTP/2 client's, else `https` (its default for
    /// an HTTP/1 request, whatever the server connection), and Host is the
    /// `:authority`. An HTTP/1 client's request keeps its `host` field too: HAProxy
    /// sends `:scheme https` without `:authority`, which the h2 crate cannot (a URI
    /// has a scheme only with an authority; without one it sends `:scheme http`), and
    /// RFC 9113 §8.3.1 lets an intermediary retain Host beside an equal `:authority`.
    fn target(&self, path: &str, host: Option<&[u8]>) -> io::Result<Uri> {
        let relative = || {
            Uri::builder()
                .path_and_query(path)
                .build()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request target"))
        };
        let Some(host) = host else {
            return relative();
        };
        let scheme = self.client_scheme.clone().unwrap_or(Scheme::HTTPS);
        match Uri::builder()
            .scheme(scheme)
            .authority(host)
            .path_and_query(path)
            .build()
        {
            Ok(uri) => Ok(uri),
            // A Host that is no authority (HTTP/1 lets more through) stays a field.
            Err(_) if self.client_scheme.is_none() => relative(),
            Err(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "request target")),
        }
    }
}

impl HeadSink for RequestHead {
    fn head(&mut self, head: &[u8]) -> io::Result<Head> {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut slots);
        let len = match req.parse(head) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if head.len() <= HEAD_MAX => return Ok(Head::Partial),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "request head")),
        };
        let method = Method::from_bytes(req.method.unwrap_or("GET").as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "method"))?;
        self.head_request = method == Method::HEAD;
        let mut out = Request::new(());
        let target = req.path.unwrap_or("/");
        let absolute = (!target.starts_with('/') && target != "*")
            .then(|| target.parse::<Uri>().ok())
            .flatten()
            .filter(|u| u.scheme().is_some() && u.authority().is_some());
        // Host is sent as a field unless an `:authority` stands for it.
        let keep_host = absolute.is_none() && self.client_scheme.is_none();
        let mut host = None;
        let (chunked, length) = copy_fields(head, req.headers, out.headers_mut(), |name, value| {
            match name.as_str() {
                "host" => {
                    host = host.or(Some(value));
                    !keep_host
                }
                // Only `trailers` may pass (gRPC servers want it).
                "te" => !value.eq_ignore_ascii_case(b"trailers"),
                _ => false,
            }
        });
        *out.uri_mut() = match absolute {
            Some(uri) => uri,
            None => self.target(target, host)?,
        };
        *out.method_mut() = method;
        let phase = if self.adopted.is_some() {
            // The body goes as frames, not through the HTTP path.
            Phase::Done
        } else {
            // A request without framing has no body (RFC 9112 §6.3).
            Phase::body(!chunked && length.is_none(), chunked, length)
        };
        // With no body (and none adopted), the HEADERS frame ends the stream.
        let end = matches!(phase, Phase::Done) && self.adopted.is_none();
        let (response, send) = self
            .conn
            .send_request(out, end)
            .map_err(|_| broken("stream refused"))?;
        // Kept even when the HEADERS ended the request: a response given up is reset
        // through it.
        let (send, pumped) = match self.adopted.is_some() {
            true => (None, Some(send)),
            false => (Some(send), None),
        };
        self.sent = Some((response, pumped));
        Ok(Head::Sent { len, send, phase })
    }
}

/// The response head as HTTP/1.1, as HAProxy 2.6 writes an HTTP/2 response to an
/// HTTP/1 client: `HTTP/1.1`, the status and an empty reason phrase (HTTP/2 has
/// none, and HAProxy makes none up), the fields in the order and case they came
/// (`fields_in_order`),
/// framed by their Content-Length, else chunked (so that trailers can follow; the
/// HTTP path writes `transfer-encoding` after `connection`, see `head::Origin`). A
/// response whose HEADERS ended the stream without a length is chunked too, its last
/// chunk at once, as from HAProxy.
fn translate_response(res: http::Response<RecvStream>, head_request: bool) -> H2In {
    let mut head = status_and_fields(&res);
    let (parts, body) = res.into_parts();
    let code = parts.status.as_u16();
    let length = parts.headers.contains_key(header::CONTENT_LENGTH);
    let bodiless = head_request || code == 204 || code == 304 || (100..200).contains(&code);
    let chunked = !bodiless && !length;
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let ended = body.is_end_stream();
    if chunked && ended {
        head.extend_from_slice(b"0\r\n\r\n");
    }
    let body = (!bodiless && !ended).then_some(body);
    H2In::new(head, body, chunked)
}

/// The status line (no reason phrase) and the fields of a response head as HTTP/1.1
/// (see `translate_response`), without the empty line that ends it.
fn status_and_fields<B>(res: &http::Response<B>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    // `StatusCode` holds three digits (100 to 999).
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(res.status().as_str().as_bytes());
    head.extend_from_slice(b" \r\n");
    super::fields_in_order(res.headers(), res.extensions(), |name, value| {
        super::push_field(&mut head, name.as_str().as_bytes(), value.as_bytes())
    });
    head
}

super::rent_io!(H2Upstream);
