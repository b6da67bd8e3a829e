//! Choosing a backend for a request: the frontend's ordered rules, then its default.

use crate::config::Frontend;

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
