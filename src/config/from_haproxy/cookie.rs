//! haproxy.cfg cookie persistence: the backend's `cookie NAME [options]` line and
//! `dynamic-cookie-key`, checked as HAProxy 2.6 checks them (same refusals), and the
//! servers' values resolved once the backend is read.

use super::*;
use crate::config::cookie::{dynamic_value, CookieMode, Persistence};

impl Mapper<'_> {
    /// `cookie NAME [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve]
    /// [httponly] [secure] [domain D]* [maxidle T] [maxlife T] [dynamic] [attr A]*`.
    pub(super) fn cookie_line(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let Some(name) = a.first().filter(|n| !n.is_empty()) else {
            return self.err(l.line, "'cookie' expects <cookie_name> as argument.");
        };
        let mut c = Persistence {
            name: name.clone(),
            ..Persistence::default()
        };
        let mut modes = 0;
        let mut i = 1;
        while i < a.len() {
            let v = a.get(i + 1);
            match a[i].as_str() {
                "rewrite" | "insert" | "prefix" => {
                    modes += 1;
                    c.mode = match a[i].as_str() {
                        "rewrite" => CookieMode::Rewrite,
                        "insert" => CookieMode::Insert,
                        _ => CookieMode::Prefix,
                    };
                }
                "indirect" => c.indirect = true,
                "nocache" => c.nocache = true,
                "postonly" => c.postonly = true,
                "preserve" => c.preserve = true,
                "httponly" => c.httponly = true,
                "secure" => c.secure = true,
                "dynamic" => c.dynamic = true,
                "domain" => {
                    let Some(d) = v.filter(|d| !d.is_empty()) else {
                        return self.err(l.line, "'domain' expects <domain> as argument.");
                    };
                    c.domains.push(d.clone());
                    i += 1;
                }
                "attr" => {
                    let Some(at) = v else {
                        return self.err(l.line, "'attr' expects <value> as argument.");
                    };
                    if let Some(bad) = at.bytes().find(|&b| b == b';' || b.is_ascii_control()) {
                        return self.err(
                            l.line,
                            format!("character '%x{bad:02X}' is not permitted in attribute value."),
                        );
                    }
                    c.attrs.push(at.clone());
                    i += 1;
                }
                "maxidle" | "maxlife" => {
                    let what = a[i].clone();
                    let arg = if what == "maxidle" { "idletime" } else { "lifetime" };
                    let secs = v.and_then(|t| cookie_seconds(t));
                    let Some(secs) = secs else {
                        return self.err(
                            l.line,
                            format!("'{what}' expects <{arg}> in seconds as argument."),
                        );
                    };
                    if what == "maxidle" {
                        c.maxidle = secs;
                    } else {
                        c.maxlife = secs;
                    }
                    i += 1;
                }
                _ => {
                    return self.err(
                        l.line,
                        "'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'domain', 'maxidle', 'dynamic', 'maxlife' and 'attr' options.",
                    )
                }
            }
            i += 1;
        }
        if modes > 1 {
            return self.err(
                l.line,
                "cookie 'rewrite', 'insert' and 'prefix' modes are incompatible.",
            );
        }
        if c.preserve && c.mode != CookieMode::Insert && !c.indirect {
            return self.err(
                l.line,
                "cookie 'preserve' requires at least 'insert' or 'indirect'.",
            );
        }
        s.cookie = Some(c);
    }

    /// Each server's cookie value: its own, else (with `dynamic`) the value HAProxy
    /// derives from the key and the server's address.
    pub(super) fn cookie_values(&mut self, p: &Proxy) -> Option<Arc<Persistence>> {
        let mut c = p.settings.cookie.clone()?;
        if p.settings.mode != Mode::Http {
            self.warn(
                p.line,
                format!(
                    "'cookie' statement ignored for proxy '{}' as it requires HTTP mode (as in HAProxy)",
                    p.name
                ),
            );
            return None;
        }
        c.persist = p.settings.persist;
        let key = p.settings.dyncookie_key.as_deref();
        c.values = p
            .servers
            .iter()
            .map(|(_, sv, params)| match (&params.cookie, key) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(k)) if c.dynamic => Some(dynamic_value(k, sv.addr)),
                _ => None,
            })
            .collect();
        Some(Arc::new(c))
    }
}

/// A `maxidle`/`maxlife` value: seconds unless a unit is given.
fn cookie_seconds(t: &str) -> Option<u32> {
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    parse_time(t)
        .ok()
        .and_then(|d| u32::try_from(d.as_secs()).ok())
}
