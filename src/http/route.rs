//! Choosing a backend for a request: the frontend's ordered rules, then its default.

use std::net::IpAddr;

use super::head::Request;
use crate::config::{Frontend, HashKey};
use crate::upstream::balance::hash_key;

/// First rule whose host (exact, case-insensitive) and path prefix both match.
pub fn route(fe: &Frontend, host: Option<&str>, path: &str) -> Option<usize> {
    for r in &fe.routes {
        if let Some(want) = &r.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => continue,
            }
        }
        if let Some(prefix) = &r.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                continue;
            }
        }
        return Some(r.backend);
    }
    fe.default_backend
}

/// The hash a `hash` balancer uses for this request; `None` when the key is absent
/// (the balancer then falls back to round robin, as HAProxy does).
pub fn request_hash(key: &HashKey, req: &Request<'_>, peer: IpAddr) -> Option<u64> {
    match key {
        HashKey::Source => Some(match peer {
            IpAddr::V4(v4) => hash_key(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => hash_key(&v4.octets()),
                None => hash_key(&v6.octets()),
            },
        }),
        HashKey::Uri => Some(hash_key(req.path.as_bytes())),
        HashKey::Path => Some(hash_key(
            req.path.split('?').next().unwrap_or("").as_bytes(),
        )),
        HashKey::Header(name) => req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| hash_key(h.value)),
        HashKey::UrlParam(name) => {
            let query = req.path.split_once('?')?.1;
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| hash_key(v.as_bytes()))
        }
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mode, Route};

    #[test]
    fn first_match_then_default() {
        let fe = Frontend {
            name: "web".into(),
            binds: vec![],
            mode: Mode::Http,
            routes: vec![
                Route {
                    host: Some("api.example.com".into()),
                    path_prefix: Some("/v1/".into()),
                    backend: 1,
                },
                Route {
                    host: Some("api.example.com".into()),
                    path_prefix: None,
                    backend: 2,
                },
                Route {
                    host: None,
                    path_prefix: Some("/static/".into()),
                    backend: 3,
                },
            ],
            default_backend: Some(0),
            forward_for: false,
        };
        assert_eq!(route(&fe, Some("API.example.com"), "/v1/x"), Some(1));
        assert_eq!(route(&fe, Some("api.example.com"), "/v2/x"), Some(2));
        assert_eq!(route(&fe, Some("other"), "/static/a.css"), Some(3));
        assert_eq!(route(&fe, None, "/"), Some(0));
    }
}
