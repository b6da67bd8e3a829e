//! TCP passthrough: take a server slot, connect (another server on failure), then copy
//! both ways, passing a half-close on, until both directions ended or nothing moved
//! for `timeout.client`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::shard::{Shard, Slot};
use crate::upstream::Tried;

const COPY_BUF: usize = 32 * 1024;

/// Proxies one TCP connection; `early` holds bytes that followed a PROXY header.
pub async fn serve(
    shard: Rc<Shard>,
    frontend: usize,
    client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    early: Vec<u8>,
) {
    let _inflight = shard.begin_request();
    let Some(backend) = shard.config.frontends[frontend].default_backend else {
        return;
    };
    let Some((mut server, slot)) = connect(&shard, backend, peer).await else {
        return;
    };
    // A PROXY header for the server, then what the client already sent, in one write.
    let mut first = Vec::new();
    if let Some(v) = shard.config.backends[backend].servers[slot.server() as usize].send_proxy {
        crate::proxy_protocol::write(v, peer, local, &mut first);
    }
    first.extend_from_slice(&early);
    if !first.is_empty() {
        let (res, _) = server.write_all(first).await;
        if res.is_err() {
            return;
        }
    }
    let _slot = slot;
    let idle = shard.config.frontends[frontend].timeouts.client;
    let last_activity = Cell::new(Instant::now());
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let both = async {
        monoio::join!(
            copy_half(cr, sw, &last_activity),
            copy_half(sr, cw, &last_activity)
        );
    };
    monoio::select! {
        _ = both => {}
        _ = idle_watch(&last_activity, idle) => {
            tracing::debug!(shard = shard.id, %peer, "tcp: idle timeout");
        }
    }
}

/// A server slot and a connection, with the backend's retries and redispatch.
async fn connect(shard: &Rc<Shard>, backend: usize, peer: SocketAddr) -> Option<(TcpStream, Slot)> {
    let conf = &shard.config.backends[backend];
    let be = &shard.upstreams.backends[backend];
    let key =
        matches!(conf.balance, crate::config::BalanceAlgo::Hash { .. }).then(|| match peer.ip() {
            std::net::IpAddr::V4(v4) => crate::upstream::balance::hash_key(&v4.octets()),
            std::net::IpAddr::V6(v6) => crate::upstream::balance::hash_key(&v6.octets()),
        });
    let mut tried = Tried::default();
    let mut failures = 0;
    loop {
        let deadline = std::time::Instant::now() + conf.timeouts.queue;
        let server = match be.acquire(key, &tried, deadline).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shard = shard.id, %peer, backend = %be.name, error = ?e, "tcp: no server available");
                return None;
            }
        };
        let slot = Slot::new(shard, backend, server);
        match shard.upstreams.connect(backend, server).await {
            Ok(stream) => {
                shard.upstreams.report_success(backend, server);
                return Some((stream, slot));
            }
            Err(_) => {
                shard.upstreams.report_failure(backend, server);
                failures += 1;
                if failures > conf.retries {
                    tracing::warn!(shard = shard.id, %peer, backend = %be.name, "tcp: every connect attempt failed");
                    return None;
                }
                if conf.redispatch {
                    tried.add(server);
                }
            }
        }
    }
}

/// Copies one direction; at EOF passes the half-close on with `shutdown(SHUT_WR)`.
async fn copy_half(
    mut from: OwnedReadHalf<TcpStream>,
    mut to: OwnedWriteHalf<TcpStream>,
    last_activity: &Cell<Instant>,
) {
    let mut buf = Vec::with_capacity(COPY_BUF);
    loop {
        buf.clear();
        let (res, b) = from.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        last_activity.set(Instant::now());
        let (res, b) = to.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Resolves once nothing has moved in either direction for `idle`.
async fn idle_watch(last_activity: &Cell<Instant>, idle: Duration) {
    loop {
        let due = last_activity.get() + idle;
        if Instant::now() >= due {
            return;
        }
        monoio::time::sleep_until(due).await;
    }
}
