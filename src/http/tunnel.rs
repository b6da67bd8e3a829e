//! After a `101 Switching Protocols` (WebSocket) or a 2xx to a CONNECT: the client
//! connection becomes a byte tunnel to the server. The server's head goes to the
//! client, what the client sent after its request head (held back until now) goes to
//! the server, then `pipe` copies both ways until both directions ended or the tunnel
//! was idle too long (`timeout tunnel`, else `timeout client` / `timeout server`).

use monoio::time::Instant;

use super::conn::Conn;
use crate::dispatch::ServerConn;
use crate::io::{write_range, Stream};
use crate::pipe::{self, Idle};

/// Runs the tunnel to its end; the server's head for the client is in `conn.out`, and
/// the server's bytes after its head are in `conn.sbuf[head_len..]`.
pub(super) async fn run<S: Stream>(mut conn: Conn<S>, mut up: ServerConn, head_len: usize) {
    // In flight like an L4 connection: a soft stop waits for it (up to hard-stop-after).
    let _inflight = conn.shard.begin_request();
    let fe = &conn.shard.config.frontends[conn.frontend];
    let backend = conn.rec.backend.unwrap_or(0);
    let be = &conn.shard.config.backends[backend];
    let idle = Idle {
        client: fe.timeouts.client,
        server: be.timeouts.server,
        tunnel: be.timeouts.tunnel.or(fe.timeouts.tunnel),
        client_fin: fe.timeouts.client_fin,
        server_fin: be.timeouts.server_fin,
    };
    let deadline = Instant::now() + idle.tunnel.unwrap_or(idle.client);
    // The server's head and whatever it sent after it.
    conn.out.extend_from_slice(&conn.sbuf[head_len..]);
    let len = conn.out.len();
    let to_client = write_range(
        &mut conn.client,
        &mut conn.out,
        0..len,
        &mut conn.timer,
        deadline,
    );
    if to_client.await.is_err() {
        return;
    }
    // Client bytes that followed the request head were held back until now.
    let (from, to) = (conn.cpos, conn.cbuf.len());
    let deadline = Instant::now() + idle.tunnel.unwrap_or(idle.server);
    let to_server = write_range(
        &mut up.stream,
        &mut conn.cbuf,
        from..to,
        &mut conn.timer,
        deadline,
    );
    if to_server.await.is_err() {
        return;
    }
    let shard = conn.shard.clone();
    let kill = shard.upstreams.backends[backend].servers[up.server as usize].kill_switch();
    let splice = shard.config.splice(conn.frontend, backend);
    let ended = pipe::run(conn.client, up.stream, idle, splice, &shard.pipes, kill).await;
    if ended.term != crate::record::Term::NORMAL {
        tracing::debug!(peer = %conn.peer, term = %ended.term, "tunnel: idle timeout");
    }
    // The request itself was accounted when it ended; the tunnel's bytes come on top.
    shard.stats.traffic(
        conn.frontend,
        conn.rec.backend,
        Some(up.server),
        ended.to_server + (to - from) as u64,
        ended.to_client + len as u64,
    );
    drop(up.slot);
}
