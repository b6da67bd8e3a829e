//! haproxy.cfg `tcp-check ...` lines, `option tcp-check`, and the options of the
//! protocol checks (`option mysql-check`, `pgsql-check`, `redis-check`, `smtpchk`,
//! `ldap-check`, whose sequences `builtin` builds), `option external-check`.

use super::builtin;
use super::*;
use crate::config::tcpcheck::{
    Action, Connect, Custom, Expect, Message, Pattern, Proto, Rule, TcpCheck,
};

/// Which tcp-check based option a proxy chose (`option httpchk` is kept apart, in
/// `Settings::httpchk`; choosing one clears the other, as in HAProxy).
#[derive(Clone, Default)]
pub(super) enum CheckOpt {
    #[default]
    None,
    /// `option tcp-check`: the proxy's `tcp-check` lines (or its defaults').
    TcpCheck,
    /// A protocol check, its sequence built already.
    Proto(Arc<TcpCheck>),
    /// `option external-check`: a program says.
    External,
}

/// `tcp-check` lines as written (comments kept: they count in step numbers).
#[derive(Clone, Default)]
pub(super) struct TcpRules {
    pub rules: Vec<(Option<String>, Option<Action>)>,
    /// Written in this section (not inherited from a defaults section): the first
    /// line of a section replaces the inherited ones, as HAProxy's rulesets do.
    pub own: bool,
}

impl Mapper<'_> {
    /// `tcp-check connect|send|send-lf|send-binary|send-binary-lf|expect|comment ...`.
    pub(super) fn tcp_check_line(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        if !s.tcp_rules.own {
            s.tcp_rules = TcpRules {
                rules: Vec::new(),
                own: true,
            };
        }
        let Some(kind) = a.first() else {
            return self.err(
                l.line,
                "'tcp-check' expects connect, send, expect or comment",
            );
        };
        let rest = &a[1..];
        let parsed = match kind.as_str() {
            "comment" => match rest {
                [c] => Ok((Some(c.clone()), None)),
                _ => Err("expects a string as argument".to_string()),
            },
            "connect" => self.tcp_connect(s, rest),
            "send" | "send-lf" | "send-binary" | "send-binary-lf" => tcp_send(kind, rest),
            "expect" => tcp_expect(rest),
            k if k.starts_with("set-var") || k.starts_with("unset-var") => Err(format!(
                "'tcp-check {kind}' is not supported by ringlb yet (check variables)"
            )),
            other => Err(format!(
                "'tcp-check' only supports 'comment', 'connect', 'send', 'send-binary', 'expect', 'set-var', 'unset-var'. but got '{other}'"
            )),
        };
        match parsed {
            Ok((comment, action)) => s.tcp_rules.rules.push((comment, action)),
            Err(e) => self.err(l.line, format!("'tcp-check {kind}' : {e}.")),
        }
    }

    fn tcp_connect(
        &mut self,
        s: &Settings,
        w: &[String],
    ) -> Result<(Option<String>, Option<Action>), String> {
        if s.tcp_rules
            .rules
            .iter()
            .any(|(_, a)| !matches!(a, None | Some(Action::Connect(_))))
        {
            return Err("first step MUST also be a 'connect', optionally preceded by a 'set-var', an 'unset-var' or a 'comment', when there is a 'connect' step in the tcp-check ruleset".into());
        }
        let mut c = Connect::default();
        let mut comment = None;
        let mut i = 0;
        while i < w.len() {
            let v = w.get(i + 1);
            let need = |what: &str| {
                v.cloned()
                    .ok_or(format!("'{}' expects {what} as argument.", w[i]))
            };
            match w[i].as_str() {
                "default" => c.default = true,
                "linger" => {}
                "send-proxy" => c.send_proxy = true,
                "ssl" => c.ssl = true,
                "addr" => {
                    let text = need("<ipv4|ipv6>")?;
                    c.addr = Some(match text.parse::<SocketAddr>() {
                        Ok(a) => a,
                        Err(_) => text
                            .parse::<IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 0))
                            .map_err(|_| format!("'addr' : invalid address '{text}'."))?,
                    });
                    i += 1;
                }
                "port" => {
                    let text = need("a port number or a sample expression")?;
                    match text.parse::<u32>() {
                        Ok(n) if (1..=65535).contains(&n) => c.port = Some(n as u16),
                        Ok(_) => return Err(format!("expects a valid TCP port (from range 1 to 65535) or a sample expression, got {text}")),
                        Err(_) => return Err(format!("'port {text}': sample expressions are not supported by ringlb (a number only)")),
                    }
                    i += 1;
                }
                "sni" => {
                    c.sni = Some(need("a string")?);
                    i += 1;
                }
                "comment" => {
                    comment = Some(need("a string")?);
                    i += 1;
                }
                "alpn" | "proto" | "via-socks4" => {
                    return Err(format!("'{}' is not supported by ringlb yet", w[i]))
                }
                other => return Err(format!("expects 'comment', 'port', 'addr', 'send-proxy', 'ssl', 'sni', 'alpn' or 'via-socks4', 'linger', 'default' but got '{other}' as argument.")),
            }
            i += 1;
        }
        Ok((comment, Some(Action::Connect(c))))
    }

    /// `option tcp-check|mysql-check|pgsql-check|redis-check|smtpchk|ldap-check`.
    pub(super) fn check_option(&mut self, l: &Line, opt: &str, w: &[String], s: &mut Settings) {
        let built = match opt {
            "tcp-check" => {
                if !w.is_empty() {
                    return self.err(l.line, "'option tcp-check' cannot handle arguments");
                }
                s.httpchk = None;
                s.check_opt = CheckOpt::TcpCheck;
                return;
            }
            "redis-check" | "ldap-check" if !w.is_empty() => {
                return self.err(l.line, format!("'option {opt}' cannot handle arguments"))
            }
            "redis-check" => builtin::redis(),
            "ldap-check" => builtin::ldap(),
            "smtpchk" if w.len() > 2 => {
                return self.err(l.line, "'option smtpchk' cannot handle more than 2 arguments")
            }
            "smtpchk" => match w {
                [verb, domain] if verb == "HELO" || verb == "EHLO" => builtin::smtp(&format!("{verb} {domain}")),
                _ => builtin::smtp("HELO localhost"),
            },
            "pgsql-check" => match w {
                [u, user] if u == "user" => builtin::pgsql(user),
                [_, _] => return self.err(l.line, "'option pgsql-check' only supports optional values: 'user'."),
                _ => return self.err(l.line, "'option pgsql-check' expects 'user <username>' as argument."),
            },
            "mysql-check" => match w {
                [] => builtin::mysql(None),
                [u, user] if u == "user" => builtin::mysql(Some((user, true))),
                [u, user, v] if u == "user" && (v == "post-41" || v == "pre-41") => {
                    builtin::mysql(Some((user, v == "post-41")))
                }
                [u, _, v] if u == "user" => {
                    return self.err(l.line, format!("keyword 'user' only supports 'post-41' and 'pre-41' (got '{v}')."))
                }
                [u] if u == "user" => {
                    return self.err(l.line, "'option mysql-check user' expects <username> as argument.")
                }
                [other, ..] => {
                    return self.err(l.line, format!("'option mysql-check' only supports optional values: 'user' (got '{other}')."))
                }
            },
            _ => return,
        };
        s.httpchk = None;
        s.check_opt = CheckOpt::Proto(Arc::new(built));
    }

    /// The tcp-check sequence a backend runs, if one of these options chose one.
    pub(super) fn tcp_check_of(&mut self, s: &Settings, line: usize) -> Option<Arc<TcpCheck>> {
        match &s.check_opt {
            CheckOpt::None | CheckOpt::External => None,
            CheckOpt::Proto(t) => Some(t.clone()),
            CheckOpt::TcpCheck => {
                let _ = line;
                Some(Arc::new(finish(Proto::Tcp, &s.tcp_rules.rules)))
            }
        }
    }
}

/// The sequence as HAProxy runs it: an implicit first connect when the rules do not
/// start with one; comments moved onto the rules that follow them; runs of expects
/// marked with their first rule.
fn finish(proto: Proto, written: &[(Option<String>, Option<Action>)]) -> TcpCheck {
    let mut rules: Vec<Rule> = Vec::new();
    let first = written.iter().find_map(|(_, a)| a.as_ref());
    if !matches!(first, Some(Action::Connect(_))) {
        rules.push(Rule {
            step: 0,
            comment: None,
            action: Action::Connect(Connect {
                default: true,
                implicit: true,
                ..Connect::default()
            }),
        });
    }
    // HAProxy's walk: a comment applies to the next rules of one kind.
    let mut comment: Option<String> = None;
    let mut prev: Option<u8> = None;
    for (i, (c, a)) in written.iter().enumerate() {
        let kind = match a {
            None => 0,
            Some(Action::Connect(_)) => 1,
            Some(Action::Send(_)) => 2,
            Some(Action::Expect(_)) => 3,
        };
        if prev.is_some_and(|p| p != kind && p != 0) {
            comment = None;
        }
        prev = Some(kind);
        let Some(a) = a else {
            comment = c.clone();
            continue;
        };
        let own = c.clone().or_else(|| comment.clone());
        if kind == 1 {
            comment = None;
        }
        rules.push(Rule {
            step: i as u32 + 1,
            comment: own,
            action: a.clone(),
        });
    }
    mark_heads(&mut rules);
    TcpCheck { proto, rules }
}

pub(super) fn mark_heads(rules: &mut [Rule]) {
    let mut head = 0;
    for i in 0..rules.len() {
        let after_expect = i > 0 && matches!(rules[i - 1].action, Action::Expect(_));
        if let Action::Expect(e) = &mut rules[i].action {
            if !after_expect {
                head = i;
            }
            e.head = head;
        }
    }
}

fn tcp_send(kind: &str, w: &[String]) -> Result<(Option<String>, Option<Action>), String> {
    let Some(data) = w.first() else {
        return Err(format!(
            "'{kind}' expects a {} as argument",
            if kind == "send-binary" {
                "binary string"
            } else {
                "string"
            }
        ));
    };
    let comment = match &w[1..] {
        [] => None,
        [c, text] if c == "comment" => Some(text.clone()),
        [c] if c == "comment" => return Err("'comment' expects a string as argument.".into()),
        [other, ..] => return Err(format!("expects 'comment' but got '{other}' as argument.")),
    };
    if kind.ends_with("-lf") && data.contains('%') {
        return Err(format!(
            "'{data}': log-format expressions are not supported by ringlb yet in '{kind}'"
        ));
    }
    let bytes = if kind.starts_with("send-binary") {
        hex(data).map_err(|e| format!("'{data}' invalid binary string ({e})"))?
    } else {
        data.as_bytes().to_vec()
    };
    Ok((comment, Some(Action::Send(bytes))))
}

fn tcp_expect(w: &[String]) -> Result<(Option<String>, Option<Action>), String> {
    if w.is_empty() {
        return Err("expects at least a matching pattern as arguments".into());
    }
    let mut e = Expect {
        min_recv: -1,
        inverse: false,
        pattern: Pattern::Custom(Custom::LdapBindResponse),
        ok_status: None,
        err_status: None,
        tout_status: None,
        on_success: None,
        on_error: None,
        code_from_payload: false,
        head: 0,
    };
    let mut have_pattern = false;
    let mut comment = None;
    let mut i = 0;
    while i < w.len() {
        let mut word = w[i].as_str();
        if word.starts_with('!') {
            while let Some(rest) = word.strip_prefix('!') {
                e.inverse = !e.inverse;
                word = rest;
            }
            if word.is_empty() {
                i += 1;
                word = w.get(i).map(String::as_str).unwrap_or("");
            }
            if !matches!(word, "string" | "rstring" | "binary" | "rbinary") {
                return Err(format!("[!] not supported with '{word}'"));
            }
        }
        let v = w.get(i + 1).cloned();
        let need = |what: &str| {
            v.clone()
                .ok_or(format!("'{word}' expects {what} as argument"))
        };
        match word {
            "min-recv" => {
                let n = need("a integer")?;
                e.min_recv = n
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (-1..=i32::MAX as i64).contains(n))
                    .ok_or(format!("'{word}' expects -1 or an integer from 0 to INT_MAX"))?;
            }
            "string" | "rstring" | "binary" | "rbinary" => {
                if have_pattern {
                    return Err("only on pattern expected".into());
                }
                have_pattern = true;
                let p = need("a <pattern>")?;
                e.pattern = match word {
                    "string" => Pattern::Bytes {
                        data: p.into_bytes(),
                        binary: false,
                    },
                    "binary" => Pattern::Bytes {
                        data: hex(&p).map_err(|err| format!("'{p}' invalid binary string ({err})"))?,
                        binary: true,
                    },
                    _ => {
                        regex::bytes::Regex::new(&p)
                            .map_err(|err| format!("'{p}' invalid regex: {err}"))?;
                        if word == "rstring" {
                            Pattern::Regex(p)
                        } else {
                            Pattern::BinaryRegex(p)
                        }
                    }
                };
            }
            "string-lf" | "binary-lf" | "custom" | "status-code" => {
                return Err(format!("'{word}' is not supported by ringlb yet"))
            }
            "comment" => comment = Some(need("a string")?),
            "on-success" | "on-error" => {
                let text = need("a string")?;
                if text.contains('%') {
                    return Err(format!(
                        "'{word} {text}': log-format expressions are not supported by ringlb yet (plain text only)"
                    ));
                }
                let m = Some(Message::Text(text));
                if word == "on-success" {
                    e.on_success = m;
                } else {
                    e.on_error = m;
                }
            }
            "ok-status" => {
                e.ok_status = Some(match need("a string")?.to_ascii_uppercase().as_str() {
                    "L7OK" => "L7OK",
                    "L6OK" => "L6OK",
                    "L4OK" => "L4OK",
                    "L7OKC" => return Err("'ok-status L7OKC' is not supported by ringlb yet".into()),
                    other => return Err(format!("'{word}' only supports 'L4OK', 'L6OK', 'L7OK' or 'L7OKC' status (got '{other}').")),
                })
            }
            "error-status" => {
                e.err_status = Some(match need("a string")?.to_ascii_uppercase().as_str() {
                    "L7RSP" => "L7RSP",
                    "L7STS" => "L7STS",
                    "L6RSP" => "L6RSP",
                    "L4CON" => "L4CON",
                    "L7OKC" => return Err("'error-status L7OKC' is not supported by ringlb yet".into()),
                    other => return Err(format!("'{word}' only supports 'L4CON', 'L6RSP', 'L7RSP' or 'L7STS' status (got '{other}').")),
                })
            }
            "tout-status" => {
                e.tout_status = Some(match need("a string")?.to_ascii_uppercase().as_str() {
                    "L7TOUT" => "L7TOUT",
                    "L6TOUT" => "L6TOUT",
                    "L4TOUT" => "L4TOUT",
                    other => return Err(format!("'{word}' only supports 'L4TOUT', 'L6TOUT' or 'L7TOUT' status (got '{other}').")),
                })
            }
            other => return Err(format!("'only supports min-recv, '[!]binary', '[!]string', '[!]rstring', '[!]string-lf''[!]rbinary', '[!]binary-lf' or comment but got '{other}' as argument.")),
        }
        i += 2;
    }
    if !have_pattern {
        return Err("expects at least a matching pattern as arguments".into());
    }
    Ok((comment, Some(Action::Expect(e))))
}

/// HAProxy's `parse_binary`: an even number of hex digits.
pub(super) fn hex(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err("an even number of hexadecimal digits is expected".into());
    }
    b.chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("'{}' is not hexadecimal", String::from_utf8_lossy(p)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_count_in_steps_and_move_onto_the_next_rules() {
        let w = vec![
            (Some("hello".to_string()), None),
            (None, Some(Action::Send(b"PING\r\n".to_vec()))),
            (None, Some(Action::Send(b"x".to_vec()))),
            (
                None,
                Some(Action::Expect(builtin::expect(
                    -1,
                    Pattern::Regex("x".into()),
                ))),
            ),
        ];
        let t = finish(Proto::Tcp, &w);
        assert_eq!(t.rules.len(), 4);
        assert_eq!(t.rules[0].step, 0);
        assert_eq!(t.rules[1].step, 2);
        assert_eq!(t.rules[1].comment.as_deref(), Some("hello"));
        assert_eq!(t.rules[2].comment.as_deref(), Some("hello"));
        assert_eq!(t.rules[3].comment, None);
    }

    #[test]
    fn binary_strings() {
        assert_eq!(hex("300C").unwrap(), vec![0x30, 0x0c]);
        assert!(hex("30C").is_err());
        assert!(hex("zz").is_err());
    }
}
