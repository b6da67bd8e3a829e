//! Pages the admin side builds (stats, metrics), fetched without blocking the shard.

use std::time::Duration;

use crate::config::Service;
use crate::shard::Shard;

/// Asks the admin side for a page and waits for it without blocking the shard: the
/// admin side itself asks every shard (this one too) for figures meanwhile.
pub async fn ask_admin(
    shard: &Shard,
    service: Service,
    csv: bool,
) -> Option<crate::control::ServiceAnswer> {
    let (reply, answer) = crossbeam_channel::bounded(1);
    shard
        .services
        .send(crate::control::ServiceQuery {
            service,
            csv,
            reply,
        })
        .ok()?;
    for _ in 0..600 {
        match answer.try_recv() {
            Ok(a) => return Some(a),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                monoio::time::sleep(Duration::from_millis(5)).await
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
        }
    }
    None
}
