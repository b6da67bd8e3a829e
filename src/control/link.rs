//! How other threads reach a shard: its message channel, and a doorbell that wakes the
//! shard's event loop at once (a datagram on a socket pair the shard's runtime waits
//! on: a pending receive on io_uring, readiness on epoll), so a shard sleeps until
//! there is something to do instead of polling its channel.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::ToShard;

/// The sending side of a shard's channel; clones go to every thread that talks to it.
#[derive(Clone)]
pub struct ShardLink {
    tx: Sender<(Instant, ToShard)>,
    bell: Arc<Bell>,
}

/// Wakes the shard; one datagram at most is outstanding, however many messages wait.
struct Bell {
    tx: UnixDatagram,
    /// A datagram is on its way and the shard has not yet taken it.
    rung: AtomicBool,
}

/// The shard's side: the channel, and the socket its runtime waits on.
pub struct Inbox {
    /// Each message with the moment it was sent (the shard measures how long control
    /// changes take to be in force).
    pub rx: Receiver<(Instant, ToShard)>,
    /// The receiving end of the doorbell; each runtime of the shard registers a
    /// duplicate (a runtime restarted after a panic gets a fresh one).
    pub bell: UnixDatagram,
    rung: Arc<Bell>,
}

/// A new link to a shard, and the shard's inbox.
pub fn link() -> std::io::Result<(ShardLink, Inbox)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ring, bell) = UnixDatagram::pair()?;
    ring.set_nonblocking(true)?;
    bell.set_nonblocking(true)?;
    let shared = Arc::new(Bell {
        tx: ring,
        rung: AtomicBool::new(false),
    });
    Ok((
        ShardLink {
            tx,
            bell: shared.clone(),
        },
        Inbox {
            rx,
            bell,
            rung: shared,
        },
    ))
}

impl ShardLink {
    /// Queues `msg` and wakes the shard. `Err`: the shard is gone.
    pub fn send(&self, msg: ToShard) -> Result<(), ToShard> {
        self.tx.send((Instant::now(), msg)).map_err(|e| e.0 .1)?;
        if !self.bell.rung.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a wake-up is pending anyway.
            let _ = self.bell.tx.send(&[1]);
        }
        Ok(())
    }
}

impl Inbox {
    /// The shard took the doorbell's datagram: the next message rings again. Called
    /// before the channel is drained, so that no message goes without a ring.
    pub fn answered(&self) {
        self.rung.rung.store(false, Ordering::Release);
    }
}

/// Every shard's link: how the limits tell a shard about a slot or room.
pub struct ShardLinks(pub Vec<ShardLink>);

impl crate::limits::Tell for ShardLinks {
    fn tell(&self, shard: usize, event: crate::limits::Event) {
        if let Some(l) = self.0.get(shard) {
            let _ = l.send(ToShard::Limits(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_messages_ring_once_until_answered() {
        let (link, inbox) = link().unwrap();
        for _ in 0..5 {
            link.send(ToShard::Shutdown { grace: None }).unwrap();
        }
        let mut b = [0u8; 8];
        assert_eq!(inbox.bell.recv(&mut b).unwrap(), 1);
        assert!(inbox.bell.recv(&mut b).is_err(), "a single datagram");
        inbox.answered();
        assert_eq!(inbox.rx.try_iter().count(), 5);
        link.send(ToShard::Shutdown { grace: None }).unwrap();
        assert_eq!(inbox.bell.recv(&mut b).unwrap(), 1);
    }
}
