//! The Redis connections: one for commands (the cluster thread's), one subscribed to
//! the events channel (its own thread). Both reconnect with backoff, log a loss once
//! and the recovery once; a (re)subscription is reported so that the cluster thread
//! catches up on what it may have missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

/// Longest wait for a connect, a command or a reply.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Doubling delays between attempts, reset by a success.
struct Backoff {
    delay: Duration,
    next: Instant,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: BACKOFF_MIN,
            next: Instant::now(),
        }
    }
    fn ready(&self) -> bool {
        Instant::now() >= self.next
    }
    fn failed(&mut self) {
        self.next = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
    fn reset(&mut self) {
        self.delay = BACKOFF_MIN;
    }
}

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

/// The command connection.
pub struct Link {
    client: Option<redis::Client>,
    conn: Option<redis::Connection>,
    backoff: Backoff,
    /// Since when Redis is unreachable (logged once).
    lost: Option<Instant>,
    ever: bool,
}

impl Link {
    pub fn new(url: Option<&str>) -> Link {
        #[cfg(feature = "redis-tls")]
        {
            // rustls needs a process-wide crypto provider; another may be installed.
            crate::tls::install_default_provider();
        }
        let client = url.and_then(|u| match redis::Client::open(u) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cluster: bad redis URL; state stays local");
                None
            }
        });
        Link {
            client,
            conn: None,
            backoff: Backoff::new(),
            lost: None,
            ever: false,
        }
    }

    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// The connection, connecting when due; `true` with a new connection.
    pub fn get(&mut self) -> Option<(&mut redis::Connection, bool)> {
        let client = self.client.as_ref()?;
        let mut fresh = false;
        if self.conn.is_none() {
            if !self.backoff.ready() {
                return None;
            }
            match connect(client) {
                Ok(c) => {
                    match self.lost.take() {
                        Some(since) => tracing::warn!(
                            after = ?since.elapsed(),
                            "cluster: redis reachable again; resyncing"
                        ),
                        None => tracing::info!("cluster: connected to redis"),
                    }
                    self.ever = true;
                    self.backoff.reset();
                    self.conn = Some(c);
                    fresh = true;
                }
                Err(e) => {
                    self.note_loss(&e);
                    self.backoff.failed();
                    return None;
                }
            }
        }
        self.conn.as_mut().map(|c| (c, fresh))
    }

    /// A command failed: drop the connection, retry later.
    pub fn failed(&mut self, e: &redis::RedisError) {
        self.conn = None;
        self.note_loss(e);
        self.backoff.failed();
    }

    fn note_loss(&mut self, e: &redis::RedisError) {
        if self.lost.is_none() {
            self.lost = Some(Instant::now());
            tracing::warn!(
                error = %e,
                connected_before = self.ever,
                "cluster: redis unreachable; serving with the last known state, retrying with backoff"
            );
        }
    }
}

/// What the subscriber hears.
pub enum Event {
    /// (Re)subscribed: messages may have been missed before.
    Subscribed,
    Message(String),
}

/// The thread subscribed to the events channel.
pub struct Subscriber {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Subscriber {
    pub fn spawn(url: &str, channel: String, tx: Sender<Event>) -> Option<Subscriber> {
        let client = redis::Client::open(url).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ringlb-cluster-sub".into())
            .spawn(move || listen(client, &channel, &tx, &flag))
            .ok()?;
        Some(Subscriber { stop, handle })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

fn listen(client: redis::Client, channel: &str, tx: &Sender<Event>, stop: &AtomicBool) {
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Relaxed) {
        if !backoff.ready() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mut conn = match connect(&client) {
            Ok(c) => c,
            Err(_) => {
                backoff.failed();
                continue;
            }
        };
        let mut ps = conn.as_pubsub();
        // Short reads, to notice `stop`.
        if ps.subscribe(channel).is_err()
            || ps
                .set_read_timeout(Some(Duration::from_millis(200)))
                .is_err()
        {
            backoff.failed();
            continue;
        }
        backoff.reset();
        if tx.send(Event::Subscribed).is_err() {
            return;
        }
        while !stop.load(Ordering::Relaxed) {
            match ps.get_message() {
                Ok(msg) => {
                    if let Ok(text) = msg.get_payload::<String>() {
                        if tx.send(Event::Message(text)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => {
                    backoff.failed();
                    break;
                }
            }
        }
    }
}
