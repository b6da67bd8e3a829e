//! Cookie persistence as configured (haproxy.cfg `cookie NAME insert|rewrite|prefix
//! ...`, server `cookie VALUE`, `dynamic-cookie-key`, `option persist`): the settings
//! and each server's value, resolved at load. The request path (`http::cookie`) only
//! reads this.

use std::net::SocketAddr;

/// How the persistence cookie is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieMode {
    /// Only read from requests (none of `insert`, `rewrite`, `prefix`).
    #[default]
    Passive,
    /// Set by the proxy on responses (`insert`).
    Insert,
    /// The server sets the cookie; its value is replaced by the server's (`rewrite`).
    Rewrite,
    /// The server's own cookie gets the server's value and `~` before its value.
    Prefix,
}

/// A backend's `cookie` line, with what goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persistence {
    pub name: String,
    pub mode: CookieMode,
    pub indirect: bool,
    pub nocache: bool,
    pub postonly: bool,
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    /// `; domain=A; domain=B`... as HAProxy appends them.
    pub domains: Vec<String>,
    /// Seconds; 0 = not set.
    pub maxidle: u32,
    pub maxlife: u32,
    pub dynamic: bool,
    /// `attr` values, joined with `; ` after the others.
    pub attrs: Vec<String>,
    /// `option persist`: a cookie for a down server still goes to it.
    pub persist: bool,
    /// Each server's value (by server index): its `cookie VALUE`, else the dynamic
    /// one, else none (such a server gets a cookie-removal `Set-Cookie` in insert
    /// mode, as in HAProxy).
    pub values: Vec<Option<String>>,
}

impl Persistence {
    /// The mode changes responses or requests (HAProxy's `PR_CK_ANY`): the
    /// termination state shows the cookie characters only then.
    pub fn logs_state(&self) -> bool {
        self.mode != CookieMode::Passive || self.indirect
    }
}

/// HAProxy's dynamic cookie for a server (`srv_set_dyncookie`): XXH64 (seed 0) of the
/// key, the address bytes and the port as 4 big-endian bytes, in 16 hex digits.
pub fn dynamic_value(key: &str, addr: SocketAddr) -> String {
    let mut buf = Vec::with_capacity(key.len() + 20);
    buf.extend_from_slice(key.as_bytes());
    match addr {
        SocketAddr::V4(a) => buf.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => buf.extend_from_slice(&a.ip().octets()),
    }
    buf.extend_from_slice(&u32::from(addr.port()).to_be_bytes());
    format!("{:016x}", xxhash_rust::xxh64::xxh64(&buf, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_values_differ_by_address_and_key() {
        let a = dynamic_value("k", "10.0.0.1:80".parse().unwrap());
        let b = dynamic_value("k", "10.0.0.1:81".parse().unwrap());
        let c = dynamic_value("j", "10.0.0.1:80".parse().unwrap());
        assert_eq!(a.len(), 16);
        assert!(a != b && a != c && b != c);
    }
}
