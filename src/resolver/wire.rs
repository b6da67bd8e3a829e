//! One DNS question on the wire: a query built with hickory-proto, sent over UDP to
//! each nameserver in turn (`resolve_retries` sends, `timeout retry` each), again over
//! TCP when the answer came back truncated, and the answer reduced to what servers
//! need: addresses, and for SRV names ports and weights.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::config::dns::Resolvers;
use crate::control::NsCounters;

/// One usable answer: an address, and for SRV records its port and weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub weight: Option<u16>,
}

/// What a resolution came to (HAProxy's response statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid answer (maybe with no record of the type asked), and the nameserver
    /// that gave it.
    Valid(Vec<Item>, String),
    Nx,
    Refused,
    Timeout,
    Other,
}

impl Outcome {
    /// HAProxy's word for the status (`show resolvers`, logs).
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Valid(..) => "valid",
            Outcome::Nx => "NX",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Other => "other",
        }
    }
}

/// Asks `name` of type `qtype`; counts into `counters` (one per nameserver). Gives up
/// (a timeout) before a question once `stop` is set.
pub fn ask(
    r: &Resolvers,
    name: &str,
    qtype: RecordType,
    counters: &mut [NsCounters],
    stop: &AtomicBool,
) -> Outcome {
    let Ok(qname) = Name::from_ascii(fqdn(name)) else {
        return Outcome::Other;
    };
    let mut last = Outcome::Timeout;
    for attempt in 0..r.retries.max(1) as usize {
        if stop.load(Ordering::SeqCst) {
            return Outcome::Timeout;
        }
        let n = attempt % r.nameservers.len().max(1);
        let Some(server) = r.nameservers.get(n) else {
            return Outcome::Other;
        };
        let (ns_name, ns) = (&server.name, &server.addr);
        let c = &mut counters[n];
        let id = fastrand::u16(..);
        let query = build(id, &qname, qtype, r.payload);
        let Ok(bytes) = query.to_vec() else {
            return Outcome::Other;
        };
        c.sent += 1;
        // `tcp@`: the question goes over TCP from the start.
        let first = if server.tcp {
            tcp(*ns, &bytes, id, r.timeout_retry)
        } else {
            udp(*ns, &bytes, id, r.timeout_retry, r.payload)
        };
        let answer = match first {
            Ok(Some(m)) if m.metadata.truncation => {
                c.truncated += 1;
                match tcp(*ns, &bytes, id, r.timeout_retry) {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        c.invalid += 1;
                        continue;
                    }
                    Err(_) => {
                        c.timeout += 1;
                        last = Outcome::Timeout;
                        continue;
                    }
                }
            }
            Ok(Some(m)) => m,
            Ok(None) => {
                c.timeout += 1;
                last = Outcome::Timeout;
                continue;
            }
            Err(_) => {
                c.snd_error += 1;
                last = Outcome::Timeout;
                continue;
            }
        };
        let outcome = read(&answer, ns_name);
        match &outcome {
            Outcome::Valid(..) => c.valid += 1,
            Outcome::Nx => c.nx += 1,
            Outcome::Refused => c.refused += 1,
            Outcome::Timeout => c.timeout += 1,
            Outcome::Other => c.other += 1,
        }
        if !matches!(outcome, Outcome::Valid(..)) {
            c.any_err += 1;
        }
        match outcome {
            // Another nameserver may know better.
            Outcome::Refused | Outcome::Other => last = outcome,
            o => return o,
        }
    }
    last
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn build(id: u16, name: &Name, qtype: RecordType, payload: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), qtype));
    if payload > 512 {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m
}

/// One exchange over UDP: the answer with our id, or `None` after `wait`.
fn udp(
    ns: SocketAddr,
    query: &[u8],
    id: u16,
    wait: Duration,
    payload: u16,
) -> std::io::Result<Option<Message>> {
    let local: SocketAddr = if ns.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(ns)?;
    sock.send(query)?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; usize::from(payload.max(512))];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // Anything that is not our answer (a late one, garbage) is skipped.
                if let Ok(m) = Message::from_vec(&buf[..n]) {
                    if m.metadata.id == id && m.metadata.message_type == MessageType::Response {
                        return Ok(Some(m));
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            // An ICMP port unreachable: nobody listens there.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// The same question over TCP (RFC 1035 4.2.2: a two-byte length before each message).
fn tcp(ns: SocketAddr, query: &[u8], id: u16, wait: Duration) -> std::io::Result<Option<Message>> {
    let mut s = TcpStream::connect_timeout(&ns, wait)?;
    s.set_read_timeout(Some(wait))?;
    s.set_write_timeout(Some(wait))?;
    let len = u16::try_from(query.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    s.write_all(&out)?;
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(hdr))];
    s.read_exact(&mut body)?;
    Ok(Message::from_vec(&body)
        .ok()
        .filter(|m| m.metadata.id == id))
}

/// The answer's status and records: A/AAAA answers as they are; SRV answers with the
/// addresses of their targets from the additional section (HAProxy 2.6 uses those;
/// a target without one is skipped).
fn read(m: &Message, ns: &str) -> Outcome {
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Outcome::Nx,
        ResponseCode::Refused => return Outcome::Refused,
        _ => return Outcome::Other,
    }
    let mut items = Vec::new();
    for rec in &m.answers {
        match &rec.data {
            RData::A(a) => items.push(Item {
                ip: IpAddr::V4(a.0),
                port: None,
                weight: None,
            }),
            RData::AAAA(a) => items.push(Item {
                ip: IpAddr::V6(a.0),
                port: None,
                weight: None,
            }),
            RData::SRV(srv) => {
                for add in m.additionals.iter().filter(|a| a.name == srv.target) {
                    let ip = match &add.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(a) => IpAddr::V6(a.0),
                        _ => continue,
                    };
                    items.push(Item {
                        ip,
                        port: Some(srv.port),
                        weight: Some(srv.weight),
                    });
                }
            }
            // A CNAME chain: the records it leads to follow in the same answer.
            _ => {}
        }
    }
    Outcome::Valid(items, ns.to_string())
}
