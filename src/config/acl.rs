//! Request conditions, HAProxy style: named ACLs (several tests ORed, each with several
//! patterns ORed) combined by `if`/`unless` with implicit AND, `||` and `!`. TOML routes
//! (host / path prefix) and haproxy.cfg `use_backend ... if ...` both compile to these.

use std::net::IpAddr;
use std::sync::Arc;

/// What part of the request a test looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// The path, without the query string.
    Path,
    /// The whole request target.
    Url,
    Method,
    /// The client's address (the PROXY protocol's, when accepted).
    Src,
    /// Every value of a header (comma-separated lists split), name lower-cased.
    Header(String),
    /// The requested host without its port (Host header or absolute-form target).
    HostName,
    /// What the connection's TLS handshake settled (`ssl_fc`, `ssl_fc_sni`, ...).
    Tls(TlsFetch),
}

/// The TLS fetches. On a plain connection the boolean ones are false and the others
/// find nothing, as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFetch {
    /// `ssl_fc`: the connection is TLS.
    Fc,
    /// `ssl_fc_has_sni`.
    HasSni,
    /// `ssl_fc_sni`: the server name the client asked for.
    Sni,
    /// `ssl_fc_protocol`: `TLSv1.2`, `TLSv1.3`.
    Protocol,
    /// `ssl_fc_cipher`: OpenSSL's name of the suite.
    Cipher,
    /// `ssl_fc_alpn`.
    Alpn,
    /// `ssl_fc_is_resumed`.
    Resumed,
    /// `ssl_c_used`: the client sent a certificate.
    CUsed,
    /// `ssl_c_verify`: its verification result (0: verified).
    CVerify,
    /// `ssl_c_s_dn`: its subject, `/C=../CN=..`.
    CSDn,
}

impl TlsFetch {
    /// The fetch named `name` and its default match method.
    pub fn parse(name: &str) -> Option<(TlsFetch, MatchMethod)> {
        Some(match name {
            "ssl_fc" => (TlsFetch::Fc, MatchMethod::Bool),
            "ssl_fc_has_sni" => (TlsFetch::HasSni, MatchMethod::Bool),
            "ssl_fc_sni" => (TlsFetch::Sni, MatchMethod::Str),
            "ssl_fc_sni_end" => (TlsFetch::Sni, MatchMethod::End),
            "ssl_fc_sni_reg" => (TlsFetch::Sni, MatchMethod::Reg),
            "ssl_fc_protocol" => (TlsFetch::Protocol, MatchMethod::Str),
            "ssl_fc_cipher" => (TlsFetch::Cipher, MatchMethod::Str),
            "ssl_fc_alpn" => (TlsFetch::Alpn, MatchMethod::Str),
            "ssl_fc_is_resumed" => (TlsFetch::Resumed, MatchMethod::Bool),
            "ssl_c_used" => (TlsFetch::CUsed, MatchMethod::Bool),
            "ssl_c_verify" => (TlsFetch::CVerify, MatchMethod::Str),
            "ssl_c_s_dn" => (TlsFetch::CSDn, MatchMethod::Str),
            _ => return None,
        })
    }
}

/// How a fetched value is compared with the patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMethod {
    Str,
    Beg,
    End,
    Sub,
    /// The pattern as whole dot- or slash-delimited labels.
    Dom,
    Reg,
    Ip,
    /// The fetch returned anything at all.
    Found,
    /// A boolean fetch returned true (a string one: anything non-empty).
    Bool,
}

#[derive(Debug, Clone)]
pub struct AclTest {
    pub fetch: Fetch,
    pub method: MatchMethod,
    pub ignore_case: bool,
    /// Patterns, lower-cased when `ignore_case`.
    pub patterns: Vec<String>,
    pub regexes: Vec<regex::Regex>,
    /// Networks for `Ip`: (address, prefix length).
    pub nets: Vec<(IpAddr, u8)>,
}

/// A named ACL: true when any of its tests is.
#[derive(Debug, Clone)]
pub struct Acl {
    pub name: String,
    pub tests: Vec<AclTest>,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Always,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Acl(Arc<Acl>),
}

impl AclTest {
    /// A plain test with string patterns.
    pub fn new(
        fetch: Fetch,
        method: MatchMethod,
        ignore_case: bool,
        patterns: &[&str],
    ) -> Result<AclTest, String> {
        let mut t = AclTest {
            fetch,
            method,
            ignore_case,
            patterns: Vec::new(),
            regexes: Vec::new(),
            nets: Vec::new(),
        };
        for p in patterns {
            t.add_pattern(p)?;
        }
        Ok(t)
    }

    pub fn add_pattern(&mut self, p: &str) -> Result<(), String> {
        match self.method {
            MatchMethod::Reg => {
                let re = regex::RegexBuilder::new(p)
                    .case_insensitive(self.ignore_case)
                    .build()
                    .map_err(|e| format!("invalid regex {p:?}: {e}"))?;
                self.regexes.push(re);
            }
            MatchMethod::Ip => self.nets.push(parse_net(p)?),
            _ => {
                // Delimiters at the ends of a domain pattern mean nothing (as in HAProxy).
                let p = if self.method == MatchMethod::Dom {
                    p.trim_matches(|c| matches!(c, '.' | '/' | '?' | ':'))
                } else {
                    p
                };
                self.patterns.push(if self.ignore_case {
                    p.to_ascii_lowercase()
                } else {
                    p.to_string()
                })
            }
        }
        Ok(())
    }
}

/// `10.0.0.0/8`, `192.168.1.1`, `::1`, `2001:db8::/32`.
pub fn parse_net(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("invalid address {text:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                // HAProxy also accepts a dotted mask: 255.255.0.0.
                match (ip, l.parse::<std::net::Ipv4Addr>()) {
                    (IpAddr::V4(_), Ok(mask))
                        if u32::from(mask).leading_ones() == u32::from(mask).count_ones() =>
                    {
                        u32::from(mask).count_ones() as u8
                    }
                    _ => return Err(format!("invalid network {text:?}")),
                }
            }
        },
    };
    Ok((ip, len))
}

/// Whether `ip` is inside `net`. IPv4-mapped IPv6 clients match IPv4 networks.
pub fn net_contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = parse_net("10.1.0.0/16").unwrap();
        assert!(net_contains(net, "10.1.2.3".parse().unwrap()));
        assert!(!net_contains(net, "10.2.0.1".parse().unwrap()));
        assert!(net_contains(net, "::ffff:10.1.9.9".parse().unwrap()));
        assert_eq!(parse_net("10.0.0.0/255.0.0.0").unwrap().1, 8);
        assert!(net_contains(
            parse_net("0.0.0.0/0").unwrap(),
            "1.2.3.4".parse().unwrap()
        ));
        assert!(net_contains(
            parse_net("2001:db8::/32").unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/255.0.255.0"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }
}
