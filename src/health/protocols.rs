//! The parsers HAProxy's protocol checks use where a pattern cannot say it: MySQL's
//! handshake and OK packets (`option mysql-check`) and LDAPv3's bind response
//! (`option ldap-check`); and the `on-success` / `on-error` texts cut out of a
//! response (`smtpchk`, `redis-check`, `pgsql-check`). Ported from HAProxy 2.6's
//! src/tcpcheck.c, with every read bounds-checked.

use crate::config::tcpcheck::{Custom, Message};

/// What a custom expect decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The rule passed; go on.
    Pass,
    /// Not enough bytes yet.
    Wait,
    /// Failed: HAProxy's status, the check code, and the info text (if any).
    Fail {
        status: &'static str,
        code: Option<u16>,
        info: Option<String>,
    },
}

/// Runs a custom expect over the bytes received since the last send; `last_read`: no
/// more will come.
pub fn custom(kind: Custom, bi: &[u8], last_read: bool) -> Verdict {
    match kind {
        Custom::MysqlInitialHandshake => mysql_packet(bi, 0, last_read),
        Custom::MysqlOk => {
            let first = bi.len().min(3);
            let hslen = 4 + le(&bi[..first]);
            mysql_packet(bi, hslen, last_read)
        }
        Custom::LdapBindResponse => ldap_bind_response(bi, last_read),
    }
}

fn le(b: &[u8]) -> usize {
    b.iter().rev().fold(0, |acc, &x| (acc << 8) | x as usize)
}

fn be(b: &[u8]) -> usize {
    b.iter().fold(0, |acc, &x| (acc << 8) | x as usize)
}

fn short(last_read: bool) -> Verdict {
    if last_read {
        // Invalid length or a truncated response.
        Verdict::Fail {
            status: "L7RSP",
            code: None,
            info: None,
        }
    } else {
        Verdict::Wait
    }
}

/// One MySQL packet at `offset`: 3-byte length, sequence id, payload; an error
/// packet's payload starts with 0xff, then the error code and its text.
fn mysql_packet(bi: &[u8], offset: usize, last_read: bool) -> Verdict {
    if bi.len() < offset + 4 {
        return short(last_read);
    }
    let plen = le(&bi[offset..offset + 3]);
    if bi.len() < offset + plen + 4 {
        return short(last_read);
    }
    if bi.get(offset + 4) == Some(&0xff) {
        let code = bi.get(offset + 5..offset + 7).map(|c| le(c) as u16);
        let info = bi
            .get(offset + 7..)
            .map(|t| String::from_utf8_lossy(t).into_owned());
        return Verdict::Fail {
            status: "L7STS",
            code: Some(code.unwrap_or(0)),
            info,
        };
    }
    Verdict::Pass
}

const NOT_LDAP: &str = "Not LDAPv3 protocol";

fn ldap_bind_response(bi: &[u8], last_read: bool) -> Verdict {
    let not_ldap = || Verdict::Fail {
        status: "L7RSP",
        code: None,
        info: Some(NOT_LDAP.into()),
    };
    let Some(&size) = bi.get(1) else {
        return short(last_read);
    };
    // The LDAPMessage's size: one byte, or 2 or 4 bytes after a 0x8N byte.
    let (nbytes, msglen) = if size & 0x80 != 0 {
        let n = (size & 0x7f) as usize;
        if bi.len() < 1 + n {
            return short(last_read);
        }
        match (n, bi.get(2..2 + n)) {
            (2 | 4, Some(b)) => (n, be(b)),
            (2 | 4, None) => return short(last_read),
            _ => return not_ldap(),
        }
    } else {
        (0, size as usize)
    };
    let mut p = 2 + nbytes;
    if bi.len() < 2 + nbytes + msglen {
        return short(last_read);
    }
    // messageID INTEGER 1, then protocolOp bindResponse (0x61).
    if bi.get(p..p + 4) != Some(&[0x02, 0x01, 0x01, 0x61]) {
        return not_ldap();
    }
    p += 4;
    let skip = match bi.get(p) {
        Some(b) if b & 0x80 != 0 => (b & 0x7f) as usize,
        Some(_) => 0,
        None => return not_ldap(),
    };
    p += 1 + skip;
    // ldapResult: ENUMERATED, one byte: the result code.
    if bi.get(p..p + 2) != Some(&[0x0a, 0x01]) {
        return not_ldap();
    }
    match bi.get(p + 2) {
        Some(0) => Verdict::Pass,
        Some(&code) => Verdict::Fail {
            status: "L7STS",
            code: Some(u16::from(code)),
            info: Some("See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9".into()),
        },
        None => not_ldap(),
    }
}

/// An `on-success` / `on-error` text for the response `bi`.
pub fn render(m: &Message, bi: &[u8]) -> String {
    match m {
        Message::Text(t) => t.clone(),
        Message::Payload {
            offset,
            ltrim,
            cut_crlf,
        } => {
            let mut b = bi.get(*offset..).unwrap_or(&[]);
            if *ltrim {
                while let [b' ', rest @ ..] = b {
                    b = rest;
                }
            }
            if *cut_crlf {
                if let Some(i) = b.iter().position(|&c| c == b'\r' || c == b'\n') {
                    b = &b[..i];
                }
            }
            String::from_utf8_lossy(b).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(version: &[u8]) -> Vec<u8> {
        let mut body = vec![10];
        body.extend_from_slice(version);
        body.push(0);
        body.extend_from_slice(&[0; 20]);
        let mut p = vec![body.len() as u8, 0, 0, 0];
        p.extend(body);
        p
    }

    #[test]
    fn mysql_handshake_ok_and_error_packets() {
        let hs = handshake(b"8.0.36");
        assert_eq!(
            custom(Custom::MysqlInitialHandshake, &hs, false),
            Verdict::Pass
        );
        assert_eq!(
            custom(Custom::MysqlInitialHandshake, &hs[..10], false),
            Verdict::Wait
        );
        assert!(matches!(
            custom(Custom::MysqlInitialHandshake, &hs[..10], true),
            Verdict::Fail {
                status: "L7RSP",
                ..
            }
        ));
        let mut err = vec![0, 0, 0, 0, 0xff, 0x15, 0x04];
        err.extend_from_slice(b"#28000Access denied");
        err[0] = (err.len() - 4) as u8;
        assert_eq!(
            custom(Custom::MysqlInitialHandshake, &err, false),
            Verdict::Fail {
                status: "L7STS",
                code: Some(1045),
                info: Some("#28000Access denied".into())
            }
        );
        let mut both = hs.clone();
        both.extend_from_slice(&[7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(custom(Custom::MysqlOk, &both, false), Verdict::Pass);
        assert_eq!(custom(Custom::MysqlOk, &hs, false), Verdict::Wait);
    }

    #[test]
    fn ldap_bind_responses() {
        let ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(custom(Custom::LdapBindResponse, &ok, false), Verdict::Pass);
        let mut bad = ok;
        bad[9] = 49;
        assert!(matches!(
            custom(Custom::LdapBindResponse, &bad, false),
            Verdict::Fail {
                status: "L7STS",
                code: Some(49),
                ..
            }
        ));
        assert_eq!(
            custom(Custom::LdapBindResponse, &ok[..8], false),
            Verdict::Wait
        );
        let mut other = ok;
        other[5] = 0x65;
        assert!(matches!(
            custom(Custom::LdapBindResponse, &other, false),
            Verdict::Fail {
                status: "L7RSP",
                ..
            }
        ));
    }

    #[test]
    fn messages_cut_from_the_payload() {
        let m = Message::Payload {
            offset: 4,
            ltrim: true,
            cut_crlf: true,
        };
        assert_eq!(
            render(&m, b"250  mail.example ready\r\nmore"),
            "mail.example ready"
        );
        assert_eq!(render(&m, b"25"), "");
    }
}
