//! Local answers and head edits: `http-request` header rules on the rewritten head,
//! and pages the admin side builds (stats, metrics) fetched without blocking the shard.

use std::time::Duration;

use crate::config::Service;
use crate::shard::Shard;

/// Removes every `name:` line from a rewritten head (in place, no allocation).
pub fn del_header(head: &mut Vec<u8>, name: &str) {
    let mut read = 0;
    let mut write = 0;
    let mut first = true;
    while read < head.len() {
        let end = head[read..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |p| read + p + 2);
        let line = &head[read..end];
        let drop = !first
            && line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes());
        if !drop {
            head.copy_within(read..end, write);
            write += end - read;
        }
        first = false;
        read = end;
    }
    head.truncate(write);
}

/// Adds `name: value` at the end of a rewritten head (before its empty line).
pub fn add_header(head: &mut Vec<u8>, name: &str, value: &str) {
    head.truncate(head.len().saturating_sub(2));
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
}

/// The answer to a request for an admin page (stats, metrics): the page, or a 401
/// when the stats page's credentials are missing.
pub async fn service_response(shard: &Shard, svc: &Service, csv: bool, authorized: bool) -> String {
    if !authorized {
        let realm = match svc {
            Service::Stats { realm, .. } => realm.as_str(),
            _ => "",
        };
        let body = "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n";
        return format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/html\r\nWWW-Authenticate: Basic realm=\"{realm}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    // Boxed: the wait's timer would otherwise grow every connection's task.
    match Box::pin(ask_admin(shard, svc.clone(), csv)).await {
        Some(a) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            a.content_type,
            a.body.len(),
            a.body
        ),
        None => String::from_utf8_lossy(super::reply::Reply::ServiceUnavailable.bytes()).into_owned(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits() {
        let mut h = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n".to_vec();
        del_header(&mut h, "x-a");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\n\r\n");
        add_header(&mut h, "X-C", "4");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
        del_header(&mut h, "X-B-longer");
        del_header(&mut h, "host");
        assert_eq!(h, b"GET / HTTP/1.1\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
    }
}
