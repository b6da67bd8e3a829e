//! HTTP/2 servers and clients for the `proto h2` tests, on the h2 crate over monoio's
//! poll-io bridge (as ringlb itself): a gRPC-shaped server (a unary call, a call that
//! echoes each message of a bidirectional stream as it comes, `grpc-status` trailers,
//! a response that never ends for the cancel tests, and a catch-all that says what it
//! saw), cleartext or TLS (`alpn h2`), and a client connection to drive ringlb.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, Request, Response};
use monoio::io::IntoPollIo;

/// A gRPC message: its 5-byte prefix (not compressed, length), then `body`.
pub fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    connections: usize,
    /// Streams the client (ringlb) reset, with the reason.
    resets: Vec<h2::Reason>,
    /// How each ended connection ended: `None` cleanly, else the error.
    ends: Vec<Option<String>>,
}

/// The gRPC-shaped HTTP/2 server, on its own thread and runtime.
pub struct GrpcServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl GrpcServer {
    /// Cleartext HTTP/2 (prior knowledge), or TLS with `tls` (which should offer h2).
    pub fn start(tls: Option<Arc<rustls::ServerConfig>>) -> GrpcServer {
        Self::start_limited(tls, None)
    }

    /// `start`, announcing `SETTINGS_MAX_CONCURRENT_STREAMS` `max` when given.
    pub fn start_limited(tls: Option<Arc<rustls::ServerConfig>>, max: Option<u32>) -> GrpcServer {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                tx.send(l.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    st.lock().unwrap().connections += 1;
                    monoio::spawn(connection(s, tls.clone(), st.clone(), max));
                }
            });
        });
        GrpcServer {
            addr: rx.recv().expect("server address"),
            state,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Reasons of the streams the client reset.
    pub fn resets(&self) -> Vec<h2::Reason> {
        self.state.lock().unwrap().resets.clone()
    }

    /// How the connections that ended did: `None` cleanly (the client's GOAWAY or
    /// close with no stream open), else the connection's error.
    pub fn ends(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().ends.clone()
    }
}

async fn connection(
    s: monoio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    st: Arc<Mutex<State>>,
    max: Option<u32>,
) {
    let Ok(io) = s.into_poll_io() else { return };
    match tls {
        Some(cfg) => {
            if let Ok(t) = tokio_rustls::TlsAcceptor::from(cfg).accept(io).await {
                serve(t, st, max).await
            }
        }
        None => serve(io, st, max).await,
    }
}

async fn serve<T>(io: T, st: Arc<Mutex<State>>, max: Option<u32>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let mut b = h2::server::Builder::new();
    if let Some(m) = max {
        b.max_concurrent_streams(m);
    }
    let Ok(mut c) = b.handshake(io).await else {
        return;
    };
    let end = loop {
        match c.accept().await {
            Some(Ok((req, respond))) => {
                monoio::spawn(stream(req, respond, st.clone()));
            }
            Some(Err(e)) => break Some(e.to_string()),
            None => break None,
        }
    };
    st.lock().unwrap().ends.push(end);
}

fn fields(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn grpc_head() -> Response<()> {
    Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

fn grpc_trailers(message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "0".parse().unwrap());
    t.insert("grpc-message", message.parse().unwrap());
    t
}

/// Reads a body whole (giving the window back), then its trailers.
pub async fn read_body(body: &mut RecvStream) -> (Vec<u8>, Option<HeaderMap>) {
    let mut all = Vec::new();
    while let Some(Ok(d)) = body.data().await {
        let _ = body.flow_control().release_capacity(d.len());
        all.extend_from_slice(&d);
    }
    let trailers = body.trailers().await.ok().flatten();
    (all, trailers)
}

async fn stream(req: Request<RecvStream>, mut respond: SendResponse<Bytes>, st: Arc<Mutex<State>>) {
    let (parts, mut body) = req.into_parts();
    let mut seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: fields(&parts.headers),
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if let Some(a) = parts.uri.authority() {
        seen.headers.push((":authority".into(), a.to_string()));
    }
    match parts.uri.path() {
        "/echo.Echo/Unary" => {
            let (msg, trailers) = read_body(&mut body).await;
            seen.body = msg.clone();
            seen.trailers = trailers.as_ref().map(fields).unwrap_or_default();
            st.lock().unwrap().seen.push(seen);
            let Ok(mut send) = respond.send_response(grpc_head(), false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(msg), false);
            let _ = send.send_trailers(grpc_trailers("unary ok"));
        }
        // Each DATA frame goes back as it comes: a proxy that held the request body
        // until its end would never see an answer before the client's next message.
        "/echo.Echo/Bidi" => {
            st.lock().unwrap().seen.push(seen);
            let Ok(mut send) = respond.send_response(grpc_head(), false) else {
                return;
            };
            while let Some(Ok(d)) = body.data().await {
                let _ = body.flow_control().release_capacity(d.len());
                if send.send_data(d, false).is_err() {
                    return;
                }
            }
            let _ = send.send_trailers(grpc_trailers("bidi ok"));
        }
        // Answers at once, before reading any of the request body: `early` first, then
        // each DATA frame echoed as it comes, and the end with the request's.
        "/early" => {
            st.lock().unwrap().seen.push(seen);
            let Ok(mut send) = respond.send_response(Response::new(()), false) else {
                return;
            };
            if send
                .send_data(Bytes::from_static(b"early\n"), false)
                .is_err()
            {
                return;
            }
            while let Some(Ok(d)) = body.data().await {
                let _ = body.flow_control().release_capacity(d.len());
                if send.send_data(d, false).is_err() {
                    return;
                }
            }
            let _ = send.send_data(Bytes::from_static(b"end\n"), true);
        }
        // A whole 413 at once, the request body unread: `/refuse` lets the body go
        // (the h2 crate then resets the stream with NO_ERROR, RFC 9113 §8.1),
        // `/refuse-hold` keeps it without reading (its window stays shut) for 60 s.
        "/refuse" | "/refuse-hold" => {
            let hold = parts.uri.path() == "/refuse-hold";
            st.lock().unwrap().seen.push(seen);
            let text = b"too large\n";
            let res = Response::builder()
                .status(413)
                .header("content-length", text.len().to_string())
                .body(())
                .unwrap();
            if let Ok(mut send) = respond.send_response(res, false) {
                let _ = send.send_data(Bytes::from_static(text), true);
            }
            if hold {
                monoio::time::sleep(Duration::from_secs(60)).await;
            }
            drop(body);
        }
        // A response that never ends: a line every 50 ms until the client resets.
        "/slow" => {
            st.lock().unwrap().seen.push(seen);
            let Ok(mut send) = respond.send_response(Response::new(()), false) else {
                return;
            };
            loop {
                if send
                    .send_data(Bytes::from_static(b"tick\n"), false)
                    .is_err()
                {
                    return;
                }
                let reset = std::future::poll_fn(|cx| send.poll_reset(cx));
                monoio::select! {
                    _ = monoio::time::sleep(Duration::from_millis(50)) => {}
                    r = reset => {
                        if let Ok(reason) = r {
                            st.lock().unwrap().resets.push(reason);
                        }
                        return;
                    }
                }
            }
        }
        _ => {
            let (b, trailers) = read_body(&mut body).await;
            seen.body = b;
            seen.trailers = trailers.as_ref().map(fields).unwrap_or_default();
            let text = format!("{} {} {}\n", seen.method, seen.path, seen.body.len());
            st.lock().unwrap().seen.push(seen);
            let res = Response::builder()
                .status(200)
                .header("content-length", text.len().to_string())
                .header("x-served-by", "h2")
                .body(())
                .unwrap();
            if let Ok(mut send) = respond.send_response(res, false) {
                let _ = send.send_data(Bytes::from(text), true);
            }
        }
    }
}

/// Runs `f` on a runtime of its own (the test's client side).
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// An HTTP/2 client connection to `addr` (prior knowledge, or TLS with `tls` and
/// `sni`), driven by a task of the current runtime.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, &str)>,
) -> SendRequest<Bytes> {
    let s = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    let io = s.into_poll_io().expect("poll io");
    match tls {
        Some((cfg, sni)) => {
            let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
            let t = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, io)
                .await
                .expect("TLS handshake");
            assert_eq!(t.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN");
            handshake(t).await
        }
        None => handshake(io).await,
    }
}

async fn handshake<T>(io: T) -> SendRequest<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (send, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    monoio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A gRPC request head for `path` on `authority`.
pub fn grpc_request(authority: &str, path: &str) -> Request<()> {
    Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// A unary call: the response head, its body and its trailers.
pub async fn unary(
    conn: &mut SendRequest<Bytes>,
    authority: &str,
    msg: &[u8],
) -> (http::response::Parts, Vec<u8>, Option<HeaderMap>) {
    std::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .expect("ready");
    let (res, mut send) = conn
        .send_request(grpc_request(authority, "/echo.Echo/Unary"), false)
        .expect("send request");
    send.send_data(Bytes::copy_from_slice(msg), true).unwrap();
    let res = res.await.expect("response");
    let (parts, mut body) = res.into_parts();
    let (b, t) = read_body(&mut body).await;
    (parts, b, t)
}
