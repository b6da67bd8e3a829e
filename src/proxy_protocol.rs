//! The PROXY protocol (v1 text, v2 binary): parsing the header a load balancer in
//! front of us sends on `accept-proxy` binds, and writing one to servers marked
//! `send-proxy` / `send-proxy-v2`. Byte layouts follow HAProxy's proxy-protocol.txt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a header said: the original client and the address it connected to, or
/// nothing (v1 `UNKNOWN`, v2 `LOCAL`: use the connection's own addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a PROXY header at all.
    Missing,
    /// A PROXY header that breaks the format.
    Malformed,
}

/// Parses a header at the start of `buf`: `Ok(None)` = need more bytes,
/// `Ok(Some((header, length)))` = a complete header of `length` bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Decide which version as soon as the bytes seen allow it.
    let n = buf.len().min(12);
    if buf[..n] == V2_SIG[..n] {
        if buf.len() < 16 {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        if buf.len() < 6 {
            return Ok(None);
        }
        return parse_v1(buf);
    }
    Err(ParseError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ParseError::Malformed)
        } else {
            Ok(None)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ParseError::Malformed);
    }
    let line = std::str::from_utf8(&buf[..end - 1]).map_err(|_| ParseError::Malformed)?;
    let words: Vec<&str> = line.split(' ').collect();
    let header = match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Header { addrs: None },
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, ParseError> {
                let ip: IpAddr = s.parse().map_err(|_| ParseError::Malformed)?;
                match (*fam, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ParseError::Malformed),
                }
            };
            let port = |s: &str| -> Result<u16, ParseError> {
                // Decimal without leading zeros, as the spec asks.
                if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
                    return Err(ParseError::Malformed);
                }
                s.parse().map_err(|_| ParseError::Malformed)
            };
            Header {
                addrs: Some((
                    SocketAddr::new(ip(src)?, port(sport)?),
                    SocketAddr::new(ip(dst)?, port(dport)?),
                )),
            }
        }
        _ => return Err(ParseError::Malformed),
    };
    Ok(Some((header, end + 1)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::Malformed);
    }
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let total = 16 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let header = match ver_cmd & 0x0f {
        // LOCAL: health checks and the like; addresses are the connection's.
        0 => Header { addrs: None },
        1 => match buf[13] {
            // TCP over IPv4.
            0x11 if body.len() >= 12 => {
                let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
                let sport = u16::from_be_bytes([body[8], body[9]]);
                let dport = u16::from_be_bytes([body[10], body[11]]);
                Header {
                    addrs: Some((
                        SocketAddr::new(src.into(), sport),
                        SocketAddr::new(dst.into(), dport),
                    )),
                }
            }
            // TCP over IPv6.
            0x21 if body.len() >= 36 => {
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&body[..16]);
                d.copy_from_slice(&body[16..32]);
                let sport = u16::from_be_bytes([body[32], body[33]]);
                let dport = u16::from_be_bytes([body[34], body[35]]);
                Header {
                    addrs: Some((
                        SocketAddr::new(Ipv6Addr::from(s).into(), sport),
                        SocketAddr::new(Ipv6Addr::from(d).into(), dport),
                    )),
                }
            }
            // UNSPEC, UDP or unix sockets: keep the connection's addresses.
            0x00 | 0x12 | 0x22 | 0x31 | 0x32 => Header { addrs: None },
            _ => return Err(ParseError::Malformed),
        },
        _ => return Err(ParseError::Malformed),
    };
    Ok(Some((header, total)))
}

/// Appends a header announcing `src` → `dst` (mixed families are sent as IPv6).
pub fn write(version: Version, src: SocketAddr, dst: SocketAddr, out: &mut Vec<u8>) {
    let (src, dst) = same_family(src, dst);
    match version {
        Version::V1 => {
            use std::io::Write;
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            let _ = write!(
                out,
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            );
        }
        Version::V2 => {
            out.extend_from_slice(&V2_SIG);
            out.push(0x21);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&to_v6(s).octets());
                    out.extend_from_slice(&to_v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
        }
    }
}

/// A header for a connection of our own (a health check): v2 LOCAL, or v1 with the
/// connection's addresses, as HAProxy sends.
pub fn write_local(version: Version, local: SocketAddr, peer: SocketAddr, out: &mut Vec<u8>) {
    match version {
        Version::V1 => write(Version::V1, local, peer, out),
        Version::V2 => {
            out.extend_from_slice(&V2_SIG);
            out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        }
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (
            SocketAddr::new(to_v6(src.ip()).into(), src.port()),
            SocketAddr::new(to_v6(dst.ip()).into(), dst.port()),
        )
    }
}

/// Reads the header a client must send first on an `accept-proxy` bind. Returns it
/// and the buffer holding whatever followed it; `None` when it is missing, malformed
/// or late (the caller closes the connection).
pub async fn receive(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    deadline: monoio::time::Instant,
) -> Option<(Header, Vec<u8>)> {
    use monoio::buf::IoBufMut;
    use monoio::io::AsyncReadRent;
    loop {
        match parse(&buf) {
            Ok(Some((h, n))) => {
                buf.drain(..n);
                return Some((h, buf));
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        let (len, cap) = (buf.len(), buf.capacity());
        if len == cap {
            return None;
        }
        let read = monoio::time::timeout_at(deadline, stream.read(buf.slice_mut(len..cap))).await;
        match read {
            Ok((Ok(n), b)) if n > 0 => buf = b.into_inner(),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_round_trip_and_partials() {
        let mut out = Vec::new();
        write(
            Version::V1,
            sa("192.168.0.1:56324"),
            sa("10.0.0.2:443"),
            &mut out,
        );
        assert_eq!(out, b"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n");
        out.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, n) = parse(&out).unwrap().unwrap();
        assert_eq!(n, 43);
        assert_eq!(h.addrs, Some((sa("192.168.0.1:56324"), sa("10.0.0.2:443"))));
        for cut in 0..43 {
            assert_eq!(parse(&out[..cut]), Ok(None), "cut at {cut}");
        }
        let v6 = b"PROXY TCP6 ::1 ::2 1 2\r\n";
        assert_eq!(
            parse(v6).unwrap().unwrap().0.addrs,
            Some((sa("[::1]:1"), sa("[::2]:2")))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0.addrs, None);
    }

    #[test]
    fn v1_malformed() {
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        ];
        for b in bad {
            assert_eq!(
                parse(b),
                Err(ParseError::Malformed),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(parse(&[b'P'; 200][..]), Err(ParseError::Missing));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ParseError::Missing));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&long), Err(ParseError::Malformed));
    }

    #[test]
    fn v2_round_trip_local_and_partials() {
        let mut out = Vec::new();
        write(
            Version::V2,
            sa("192.168.0.1:56324"),
            sa("10.0.0.2:443"),
            &mut out,
        );
        assert_eq!(&out[..12], &V2_SIG);
        assert_eq!(out[12..16], [0x21, 0x11, 0x00, 0x0c]);
        assert_eq!(out.len(), 28);
        let (h, n) = parse(&out).unwrap().unwrap();
        assert_eq!(
            (h.addrs, n),
            (Some((sa("192.168.0.1:56324"), sa("10.0.0.2:443"))), 28)
        );
        for cut in 0..28 {
            assert_eq!(parse(&out[..cut]), Ok(None), "cut at {cut}");
        }
        let mut v6 = Vec::new();
        write(
            Version::V2,
            sa("[2001:db8::1]:1000"),
            sa("[::1]:80"),
            &mut v6,
        );
        assert_eq!(v6.len(), 16 + 36);
        assert_eq!(
            parse(&v6).unwrap().unwrap().0.addrs,
            Some((sa("[2001:db8::1]:1000"), sa("[::1]:80")))
        );
        let mut local = Vec::new();
        write_local(
            Version::V2,
            sa("127.0.0.1:1"),
            sa("127.0.0.1:2"),
            &mut local,
        );
        assert_eq!(
            parse(&local).unwrap().unwrap(),
            (Header { addrs: None }, 16)
        );
        let mut bad = out.clone();
        bad[12] = 0x31;
        assert_eq!(parse(&bad), Err(ParseError::Malformed));
    }
}
