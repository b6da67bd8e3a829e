//! The TLS session-ticket keys every node shares, so that a client resumes on
//! whichever node its next connection reaches. Redis holds them at
//! `PREFIX:tls-ticket-keys`: a first line with the time of the last rotation (Unix
//! seconds), then three base64 keys of 80 bytes, oldest first, as in HAProxy's
//! `tls-ticket-keys` file: the middle one encrypts, all three decrypt. A rotation
//! drops the oldest key and appends a new one, so the key that starts encrypting is
//! one every node has been decrypting with for a whole period: a node that learns of
//! the rotation a moment late still resumes the others' tickets, and they its own.
//!
//! The first node to find no keys writes them (`SET NX`); a rotation is a
//! WATCH/MULTI transaction, so two nodes that see the period over rotate once. Nodes
//! read the keys once a second; the shards get them when they change (binds with a
//! `tls-ticket-keys` file or `no-tls-tickets` keep theirs).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redis::Commands;

/// Keys in the set (HAProxy's TLS_TICKETS_NO).
const KEYS: usize = 3;
/// How often a node reads the keys.
const READ_EVERY: Duration = Duration::from_secs(1);

pub struct TicketSync {
    period: Duration,
    /// The key lines the shards have.
    installed: Option<Arc<str>>,
    next_read: Option<Instant>,
}

impl TicketSync {
    pub fn new(period: Duration) -> TicketSync {
        TicketSync {
            period,
            installed: None,
            next_read: None,
        }
    }

    /// Reads (creating or rotating them when due) the shared keys; `Some`: new key
    /// lines for the shards.
    pub fn sync(
        &mut self,
        conn: &mut redis::Connection,
        prefix: &str,
    ) -> redis::RedisResult<Option<Arc<str>>> {
        let now = Instant::now();
        if self.next_read.is_some_and(|t| now < t) {
            return Ok(None);
        }
        let key = format!("{prefix}:tls-ticket-keys");
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let period = self.period.as_secs().max(1);
        let text: String = redis::transaction(conn, &[&key], |conn, pipe| {
            let current: Option<String> = conn.get(&key)?;
            let next = match current.as_deref().and_then(parse) {
                Some((at, _)) if unix < at + period => None,
                Some((_, lines)) => rotate(&lines, unix),
                None => fresh(unix),
            };
            match next {
                // Nothing to write (or no randomness to write with).
                None => Ok(Some(current.unwrap_or_default())),
                // `None` from EXEC: another node wrote first; read again.
                Some(next) => pipe
                    .set(&key, &next)
                    .ignore()
                    .get(&key)
                    .query::<Option<(String,)>>(conn)
                    .map(|done| done.map(|(written,)| written)),
            }
        })?;
        self.next_read = Some(now + READ_EVERY);
        let Some((_, lines)) = parse(&text) else {
            return Ok(None);
        };
        let joined: Arc<str> = lines.join("\n").into();
        if self.installed.as_deref() == Some(&*joined) {
            return Ok(None);
        }
        self.installed = Some(joined.clone());
        Ok(Some(joined))
    }
}

/// The rotation time and the key lines; `None` if the text is not a valid key set.
fn parse(text: &str) -> Option<(u64, Vec<String>)> {
    let mut it = text.lines();
    let at = it.next()?.trim().parse().ok()?;
    let lines: Vec<String> = it
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    crate::tls::TicketKeys::parse(&lines.join("\n"), 300).ok()?;
    Some((at, lines))
}

fn fresh(unix: u64) -> Option<String> {
    let mut out = format!("{unix}\n");
    for _ in 0..KEYS {
        out.push_str(&crate::tls::tickets::random_key_line().ok()?);
        out.push('\n');
    }
    Some(out)
}

fn rotate(lines: &[String], unix: u64) -> Option<String> {
    let mut out = format!("{unix}\n");
    for l in lines.iter().skip(lines.len().saturating_sub(KEYS - 1)) {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&crate::tls::tickets::random_key_line().ok()?);
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_two_newest_and_adds_one() {
        let first = fresh(100).unwrap();
        let (at, lines) = parse(&first).unwrap();
        assert_eq!((at, lines.len()), (100, 3));
        let next = rotate(&lines, 200).unwrap();
        let (at2, lines2) = parse(&next).unwrap();
        assert_eq!(at2, 200);
        assert_eq!(&lines2[..2], &lines[1..]);
        assert_ne!(lines2[2], lines[2]);
        assert!(parse("x\nnot a key\n").is_none());
    }
}
