//! HAProxy 2.6's protocol checks as the tcp-check sequences it builds for them
//! (src/tcpcheck.c, as of 2.6.12, Debian's: smtpchk ends with a QUIT, pgsql-check
//! takes any auth length): `option redis-check`, `ldap-check`, `smtpchk`,
//! `pgsql-check`, `mysql-check`; the same bytes sent, the same expects.

use crate::config::tcpcheck::{
    Action, Connect, Custom, Expect, Message, Pattern, Proto, Rule, TcpCheck,
};

fn rule(step: u32, action: Action) -> Rule {
    Rule {
        step,
        comment: None,
        action,
    }
}

pub(super) fn expect(min_recv: i64, pattern: Pattern) -> Expect {
    Expect {
        min_recv,
        inverse: false,
        pattern,
        ok_status: None,
        err_status: None,
        tout_status: None,
        on_success: None,
        on_error: None,
        code_from_payload: false,
        head: 0,
    }
}

fn default_connect(step: u32) -> Rule {
    rule(
        step,
        Action::Connect(Connect {
            default: true,
            ..Connect::default()
        }),
    )
}

fn payload(offset: usize, ltrim: bool, cut_crlf: bool) -> Option<Message> {
    Some(Message::Payload {
        offset,
        ltrim,
        cut_crlf,
    })
}

fn text(t: &str) -> Option<Message> {
    Some(Message::Text(t.into()))
}

fn build(proto: Proto, mut rules: Vec<Rule>) -> TcpCheck {
    if !matches!(rules.first().map(|r| &r.action), Some(Action::Connect(_))) {
        rules.insert(
            0,
            rule(
                0,
                Action::Connect(Connect {
                    default: true,
                    implicit: true,
                    ..Connect::default()
                }),
            ),
        );
    }
    super::tcpcheck::mark_heads(&mut rules);
    TcpCheck { proto, rules }
}

pub(super) fn redis() -> TcpCheck {
    let mut e = expect(
        -1,
        Pattern::Bytes {
            data: b"+PONG\r\n".to_vec(),
            binary: false,
        },
    );
    e.err_status = Some("L7STS");
    e.on_error = payload(0, false, true);
    e.on_success = text("Redis server is ok");
    build(
        Proto::Redis,
        vec![
            rule(1, Action::Send(b"*1\r\n$4\r\nPING\r\n".to_vec())),
            rule(2, Action::Expect(e)),
        ],
    )
}

pub(super) fn ldap() -> TcpCheck {
    let mut e = expect(14, Pattern::BinaryRegex("^30".into()));
    e.on_error = text("Not LDAPv3 protocol");
    build(
        Proto::Ldap,
        vec![
            rule(
                1,
                Action::Send(
                    super::tcpcheck::hex("300C020101600702010304008000").unwrap_or_default(),
                ),
            ),
            rule(2, Action::Expect(e)),
            rule(
                3,
                Action::Expect(expect(-1, Pattern::Custom(Custom::LdapBindResponse))),
            ),
        ],
    )
}

pub(super) fn smtp(cmd: &str) -> TcpCheck {
    let mut greet = expect(4, Pattern::Regex("^[0-9]{3}[ \r]".into()));
    greet.err_status = Some("L7RSP");
    greet.on_error = payload(0, false, true);
    let mut ok = expect(4, Pattern::Regex("^2[0-9]{2}[ \r]".into()));
    ok.err_status = Some("L7STS");
    ok.on_error = payload(4, true, true);
    ok.code_from_payload = true;
    // A reply of any number of `250-` lines, then a `250 ` one.
    let mut hello = expect(
        -1,
        Pattern::Regex("^(2[0-9]{2}-[^\r]*\r\n)*2[0-9]{2}[ \r]".into()),
    );
    hello.err_status = Some("L7STS");
    hello.on_error = payload(4, true, true);
    hello.on_success = payload(4, true, true);
    hello.code_from_payload = true;
    // A clean goodbye (HAProxy issue 1812).
    let mut quit = expect(4, Pattern::Regex("^2[0-9]{2}[- \r]".into()));
    quit.err_status = Some("L7STS");
    quit.on_error = payload(4, true, true);
    quit.on_success = payload(4, true, true);
    quit.code_from_payload = true;
    build(
        Proto::Smtp,
        vec![
            default_connect(1),
            rule(2, Action::Expect(greet)),
            rule(3, Action::Expect(ok)),
            rule(4, Action::Send(format!("{cmd}\r\n").into_bytes())),
            rule(5, Action::Expect(hello)),
            rule(6, Action::Send(b"QUIT\r\n".to_vec())),
            rule(7, Action::Expect(quit)),
        ],
    )
}

pub(super) fn pgsql(user: &str) -> TcpCheck {
    // A StartupMessage: length, protocol 3.0, "user" = the name.
    let len = 15 + user.len() as u32;
    let mut req = len.to_be_bytes().to_vec();
    req.extend_from_slice(&[0, 3, 0, 0]);
    req.extend_from_slice(b"user\0");
    req.extend_from_slice(user.as_bytes());
    req.extend_from_slice(&[0, 0]);
    let mut not_error = expect(5, Pattern::Regex("^E".into()));
    not_error.inverse = true;
    not_error.err_status = Some("L7RSP");
    not_error.on_error = payload(6, false, false);
    let mut auth = expect(
        9,
        Pattern::BinaryRegex("^52000000[A-Z0-9]{2}000000(00|02|03|04|05|06|07|09|0A)".into()),
    );
    auth.err_status = Some("L7STS");
    auth.on_success = text("PostgreSQL server is ok");
    auth.on_error = text("PostgreSQL unknown error");
    build(
        Proto::Pgsql,
        vec![
            default_connect(1),
            rule(2, Action::Send(req)),
            rule(3, Action::Expect(not_error)),
            rule(4, Action::Expect(auth)),
        ],
    )
}

/// `user` and whether the client speaks the 4.1 protocol (`post-41`).
pub(super) fn mysql(user: Option<(&str, bool)>) -> TcpCheck {
    let mut rules = vec![default_connect(1)];
    if let Some((user, post41)) = user {
        let len = user.len() + if post41 { 7 + 27 } else { 7 };
        let mut req = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 1];
        if post41 {
            req.extend_from_slice(&[0x00, 0x82, 0x00, 0x00, 0x00, 0x80, 0x00, 0x01, 0x21]);
            req.extend_from_slice(&[0; 23]);
        } else {
            req.extend_from_slice(&[0x00, 0x80, 0x00, 0x00, 0x01]);
        }
        req.extend_from_slice(user.as_bytes());
        // NUL, filler, then a COM_QUIT packet.
        req.extend_from_slice(&[0, 0, 0x01, 0x00, 0x00, 0x00, 0x01]);
        rules.push(rule(2, Action::Send(req)));
        rules.push(rule(
            3,
            Action::Expect(expect(-1, Pattern::Custom(Custom::MysqlInitialHandshake))),
        ));
        rules.push(rule(
            4,
            Action::Expect(expect(-1, Pattern::Custom(Custom::MysqlOk))),
        ));
    } else {
        rules.push(rule(
            2,
            Action::Expect(expect(-1, Pattern::Custom(Custom::MysqlInitialHandshake))),
        ));
    }
    build(Proto::Mysql, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_post41_request_is_haproxys() {
        let t = mysql(Some(("haproxy", true)));
        let Action::Send(req) = &t.rules[1].action else {
            panic!("no send")
        };
        // 3-byte length (7 + 7 + 27 = 41), sequence 1.
        assert_eq!(&req[..4], &[41, 0, 0, 1]);
        assert_eq!(req.len(), 4 + 41 + 5);
        assert_eq!(&req[req.len() - 5..], &[1, 0, 0, 0, 1]);
    }
}
