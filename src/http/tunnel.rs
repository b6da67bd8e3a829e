//! After a `101 Switching Protocols` (WebSocket): the client connection becomes a byte
//! tunnel to the server. The 101 head goes to the client, what the client sent after
//! its request head (held back until now) goes to the server, then bytes are copied
//! both ways, each EOF passed on as a half-close, until both directions ended or
//! nothing moved for `timeout.tunnel`.

use std::cell::Cell;

use monoio::io::Splitable;
use monoio::time::Instant;

use super::conn::{Conn, Upstream};
use super::io::write_range;
use crate::l4::{copy_half, idle_watch};
use crate::shard::Slot;

/// Runs the tunnel to its end; the 101 head for the client is in `conn.out`, and the
/// server's bytes after its head are in `conn.sbuf[head_len..]`.
pub(super) async fn run(mut conn: Conn, mut up: Upstream, slot: Slot, head_len: usize) {
    let _slot = slot;
    // In flight like an L4 connection: a soft stop waits for it (up to hard-stop-after).
    let _inflight = conn.shard.begin_request();
    let fe = &conn.shard.config.frontends[conn.frontend];
    let backend = conn.rec.backend.unwrap_or(0);
    let idle = conn.shard.config.backends[backend]
        .timeouts
        .tunnel
        .or(fe.timeouts.tunnel)
        .unwrap_or(fe.timeouts.client);
    let deadline = Instant::now() + idle;
    // The 101 head and whatever the server sent after it.
    conn.out.extend_from_slice(&conn.sbuf[head_len..]);
    let len = conn.out.len();
    if write_range(
        &mut conn.client,
        &mut conn.out,
        0..len,
        &mut conn.timer,
        deadline,
    )
    .await
    .is_err()
    {
        return;
    }
    // Client bytes that followed the request head were held back until the 101.
    let (from, to) = (conn.cpos, conn.cbuf.len());
    if write_range(
        &mut up.stream,
        &mut conn.cbuf,
        from..to,
        &mut conn.timer,
        deadline,
    )
    .await
    .is_err()
    {
        return;
    }
    let last_activity = Cell::new(Instant::now());
    let (cr, cw) = conn.client.into_split();
    let (sr, sw) = up.stream.into_split();
    let to_client = Cell::new(0u64);
    let to_server = Cell::new(0u64);
    let both = async {
        monoio::join!(
            copy_half(cr, sw, &last_activity, &to_server),
            copy_half(sr, cw, &last_activity, &to_client)
        );
    };
    monoio::select! {
        _ = both => {}
        _ = idle_watch(&last_activity, idle) => {
            tracing::debug!(peer = %conn.peer, "tunnel: idle timeout");
        }
    };
    // The request itself was accounted when it ended; the tunnel's bytes come on top.
    let (up_bytes, down_bytes) = (
        to_server.get() + (to - from) as u64,
        to_client.get() + len as u64,
    );
    let server = Some(up.server);
    conn.shard.stats.traffic(
        conn.frontend,
        conn.rec.backend,
        server,
        up_bytes,
        down_bytes,
    );
}
