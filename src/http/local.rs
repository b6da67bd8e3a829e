//! Pages the admin side builds (stats, metrics), fetched without blocking the shard.

use std::time::Duration;

use crate::config::Service;
use crate::shard::Shard;

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
