//! Pages the admin side builds (stats, metrics), fetched without blocking the shard.

use std::time::Duration;

use crate::config::Service;
use crate::shard::Shard;

/// A request for an admin page, as the connection read it.
pub struct ServiceRequest {
    pub method: String,
    pub target: String,
    /// A POST's body, once read.
    pub body: Vec<u8>,
    /// It meets `stats admin`'s condition.
    pub admin: bool,
}

/// The answer to a request for an admin page (stats, metrics): the page, or a 401
/// when the stats page's credentials are missing.
pub async fn service_response(
    shard: &Shard,
    svc: &Service,
    req: ServiceRequest,
    authorized: bool,
) -> String {
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
    match Box::pin(ask_admin(shard, svc.clone(), req)).await {
        Some(a) => {
            let reason = match a.status {
                200 => "OK",
                303 => "See Other",
                400 => "Bad Request",
                403 => "Forbidden",
                _ => "Status",
            };
            let location = a
                .location
                .map(|l| format!("Location: {l}\r\n"))
                .unwrap_or_default();
            format!(
                "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\n{location}Cache-Control: no-cache\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                a.status,
                a.content_type,
                a.body.len(),
                a.body
            )
        }
        None => {
            String::from_utf8_lossy(super::reply::Reply::ServiceUnavailable.bytes()).into_owned()
        }
    }
}

/// Asks the admin side for a page and waits for it without blocking the shard: the
/// admin side itself asks every shard (this one too) for figures meanwhile.
pub async fn ask_admin(
    shard: &Shard,
    service: Service,
    req: ServiceRequest,
) -> Option<crate::control::ServiceAnswer> {
    let (reply, answer) = crossbeam_channel::bounded(1);
    shard
        .services
        .send(crate::control::ServiceQuery {
            service,
            method: req.method,
            target: req.target,
            body: req.body,
            admin: req.admin,
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
