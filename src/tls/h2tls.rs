//! The end of a TLS handshake whose client picked `h2` (ALPN): the socket goes
//! through monoio's poll-io bridge and tokio-rustls finishes the handshake from the
//! ClientHello step's `Accepted` (`StartHandshake::from_parts`), so the h2 crate reads
//! and writes a tokio stream with no copy between it and rustls. The turn taken for
//! the handshake's computation is given back once the server's answer is built.

use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use monoio::time::Instant;
use tokio_rustls::server::{StartHandshake, TlsStream};

use super::accept::{AcceptError, H2Start};
use super::gate::Turns;
use super::info::TlsInfo;

/// A TLS stream the h2 crate serves.
pub type H2Tls = TlsStream<TcpStreamPoll>;

/// Finishes the handshake of `start` by `deadline`.
pub async fn finish(
    start: Box<H2Start<TcpStream>>,
    deadline: Instant,
) -> Result<(H2Tls, TlsInfo), AcceptError> {
    let H2Start {
        io,
        accepted,
        config,
        turn,
    } = *start;
    let io = match io.try_into_poll_io() {
        Ok(io) => io,
        Err((e, _)) => return Err(AcceptError::Io(e)),
    };
    // The key exchange and signature run here, under the turn.
    let handshake = StartHandshake::from_parts(accepted, io).into_stream(config);
    if let Some(turn) = turn {
        Turns::give_back(turn).await;
    }
    let stream = match monoio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(t) => AcceptError::Tls(t.clone()),
                    None => AcceptError::Io(e),
                },
            )
        }
        Err(_) => return Err(AcceptError::Timeout),
    };
    let info = TlsInfo::from_server(stream.get_ref().1);
    Ok((stream, info))
}
