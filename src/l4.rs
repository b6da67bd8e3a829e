//! TCP passthrough: connect (another server on failure), then copy both ways, passing a
//! half-close on, until both directions ended or nothing moved for `timeout.client`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::shard::Shard;

const COPY_BUF: usize = 32 * 1024;

pub async fn serve(shard: Rc<Shard>, frontend: usize, client: TcpStream, peer: SocketAddr) {
    let _inflight = shard.begin_request();
    let Some(backend) = shard.config.frontends[frontend].default_backend else {
        return;
    };
    let up = match shard.upstreams.connect(backend, false).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(shard = shard.id, %peer, backend = %shard.upstreams.backends[backend].name, ?e, "tcp: no server could be reached");
            return;
        }
    };
    let idle = shard.config.timeouts.client;
    let last_activity = Cell::new(Instant::now());
    let (cr, cw) = client.into_split();
    let (sr, sw) = up.stream.into_split();
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
