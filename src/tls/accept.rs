//! Accepting a TLS client on the shard: read the ClientHello with rustls' `Acceptor`,
//! choose the TLS context from what it offers (SNI, signature schemes: `store`), wait
//! for a handshake turn (`gate`), and finish the handshake, all before `deadline`.
//! What the caller gets is a `ServerTls` stream over ringlb's record layer, the
//! connection's `TlsInfo`, and whether it is to be served HTTP/2 (the client picked
//! `h2` by ALPN on an HTTP frontend, or the bind says `proto h2`; `h2::serve_tls`).
//!
//! A client that stops halfway (half a ClientHello, a silent peer) is dropped at the
//! deadline with its socket; a bad ClientHello or a failed handshake gets the alert
//! rustls chose; `strict-sni` without a certificate for the name gets
//! `unrecognized_name`, as HAProxy (OpenSSL) sends.

use std::io;
use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;
use rustls::server::Acceptor as RustlsAcceptor;

use super::gate::Turns;
use super::info::TlsInfo;
use super::records::capture;
use super::server::ServerSet;
use super::server_stream::ServerTls;
use super::store::Hello;
use super::stream::{TlsStream, RX_SIZE};
use crate::bufpool::PooledBuf;

/// A plaintext fatal alert record: level 2 (fatal), description 112 (unrecognized_name).
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// Why a TLS client was not accepted (for logs and counters).
#[derive(Debug)]
pub enum AcceptError {
    /// The deadline passed first.
    Timeout,
    /// The peer closed or reset the connection.
    Io(io::Error),
    /// Not TLS, or a TLS failure (the alert was sent).
    Tls(rustls::Error),
    /// `strict-sni` and no certificate for the name.
    NoCertificate,
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcceptError::Timeout => write!(f, "TLS handshake timeout"),
            AcceptError::Io(e) => write!(f, "connection error during the TLS handshake: {e}"),
            AcceptError::Tls(e) => write!(f, "TLS handshake failure: {e}"),
            AcceptError::NoCertificate => {
                write!(f, "no certificate for the requested name (strict-sni)")
            }
        }
    }
}

/// The per-connection parts of an accept: the buffer the ClientHello is read into
/// (the stream takes its own from the shard's free list afterwards). `rx` may already
/// hold the first bytes of the ClientHello (read with a PROXY header).
#[derive(Default)]
pub struct Acceptor {
    pub rx: Vec<u8>,
    pub tx: Vec<u8>,
}

/// What an accept ends with, moved at once into the connection's handler: the stream
/// over ringlb's record layer, what the connection keeps of its handshake for counters
/// and for the rules, and whether it is to be served HTTP/2.
pub struct Accepted<S> {
    pub stream: ServerTls<S>,
    pub info: TlsInfo,
    pub facts: Box<crate::rules::TlsFacts>,
    /// ALPN settled on `h2` (on a frontend that serves it), or the bind says
    /// `proto h2`: the h2 crate serves it (`h2::serve_tls`).
    pub h2: bool,
}

/// Whether a TLS client is to be served HTTP/2 (`Accepted::h2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Choice {
    /// Never: the stream is served whatever ALPN settled.
    Off,
    /// When ALPN settles on `h2` (an HTTP frontend's TLS bind).
    ByAlpn,
    /// Always, whatever ALPN settles (`bind ... ssl proto h2`, as HAProxy forces its
    /// HTTP/2 multiplexer there).
    Always,
}

/// Accepts one TLS client on `io` with the contexts of `set`, finishing by `deadline`;
/// the handshake's computation waits for a turn from `turns` (`None`: no limit). The
/// stream is served whatever ALPN settled (TCP mode, tests); `accept_h2` also says
/// whether the client is to be served HTTP/2.
pub async fn accept<S>(
    io: S,
    set: &ServerSet,
    deadline: Instant,
    bufs: Acceptor,
    turns: Option<&Turns>,
) -> Result<(ServerTls<S>, TlsInfo), AcceptError>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let a = accept_h2(io, set, deadline, bufs, turns, H2Choice::Off).await?;
    Ok((a.stream, a.info))
}

/// `accept`, for a frontend that serves HTTP/2 as `h2` says: `Accepted::h2` is set
/// for a client that picked it by ALPN (or any client, `H2Choice::Always`).
pub async fn accept_h2<S>(
    io: S,
    set: &ServerSet,
    deadline: Instant,
    bufs: Acceptor,
    turns: Option<&Turns>,
    h2: H2Choice,
) -> Result<Accepted<S>, AcceptError>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    // Boxed: the handshake's state is large, and would otherwise weigh on the
    // caller's future for the connection's whole life.
    match monoio::time::timeout_at(deadline, Box::pin(accept_now(io, set, bufs, turns, h2))).await {
        Ok(r) => r,
        Err(_) => Err(AcceptError::Timeout),
    }
}

async fn accept_now<S>(
    mut io: S,
    set: &ServerSet,
    bufs: Acceptor,
    turns: Option<&Turns>,
    h2: H2Choice,
) -> Result<Accepted<S>, AcceptError>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let Acceptor {
        rx: early_bytes,
        mut tx,
    } = bufs;
    let mut acceptor = RustlsAcceptor::default();
    // Bytes that came with a PROXY header are the ClientHello's first.
    let mut rx = PooledBuf::take(RX_SIZE);
    rx.extend_from_slice(&early_bytes);
    drop(early_bytes);
    let mut early = !rx.is_empty();
    let accepted = loop {
        if !std::mem::take(&mut early) {
            rx.clear();
            let buf = std::mem::take(&mut *rx);
            let cap = buf.capacity();
            let (res, slice) = io.read(buf.slice_mut(0..cap)).await;
            *rx = slice.into_inner();
            match res {
                Ok(0) => {
                    return Err(AcceptError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AcceptError::Io(e)),
            }
        }
        let mut fed = &rx[..];
        while !fed.is_empty() {
            if let Err(e) = acceptor.read_tls(&mut fed) {
                return Err(AcceptError::Io(e));
            }
        }
        match acceptor.accept() {
            Ok(Some(a)) => break a,
            Ok(None) => continue,
            Err((e, mut alert)) => {
                tx.clear();
                let _ = alert.write_all(&mut tx);
                let _ = io.write_all(tx).await;
                return Err(AcceptError::Tls(e));
            }
        }
    };
    let hello = accepted.client_hello();
    let chosen = set.bind.store.select(&Hello {
        sni: hello.server_name(),
        schemes: hello.signature_schemes(),
    });
    let Some(entry) = chosen else {
        // strict-sni without a match: a fatal `unrecognized_name` alert, as HAProxy
        // (OpenSSL) sends; rustls' own answer would be `access_denied`.
        let (r, _) = io.write_all(UNRECOGNIZED_NAME.to_vec()).await;
        drop(r);
        return Err(AcceptError::NoCertificate);
    };
    let config = Arc::clone(&set.configs[entry.ctx]);
    // The expensive part (key exchange, signature) runs in `into_connection`; the turn
    // is held until its answer left.
    let turn = match turns {
        Some(t) => Some(t.take().await),
        None => None,
    };
    // The server's flight is made here: with it the traffic secrets (TLS 1.3), which
    // the record layer needs for KeyUpdates.
    let (conn, mut secrets) = capture(|| accepted.into_connection(config));
    let conn = match conn {
        Ok(c) => c,
        Err((e, mut alert)) => {
            tx.clear();
            let _ = alert.write_all(&mut tx);
            let _ = io.write_all(tx).await;
            return Err(AcceptError::Tls(e));
        }
    };
    drop((rx, tx));
    let mut stream = TlsStream::new(io, conn);
    let sent = stream.send_queued().await;
    if let Some(turn) = turn {
        Turns::give_back(turn).await;
    }
    let done = match sent {
        Ok(()) => stream.handshake_records(&mut secrets).await,
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        return Err(
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(t) => AcceptError::Tls(t.clone()),
                None => AcceptError::Io(e),
            },
        );
    }
    let info = TlsInfo::from_server(stream.conn());
    let facts = Box::new(super::info::facts(stream.conn()));
    let h2 = match h2 {
        H2Choice::Off => false,
        H2Choice::ByAlpn => stream.conn().alpn_protocol() == Some(b"h2"),
        H2Choice::Always => true,
    };
    let stream = stream.into_records(&secrets).map_err(AcceptError::Io)?;
    Ok(Accepted {
        stream,
        info,
        facts,
        h2,
    })
}
