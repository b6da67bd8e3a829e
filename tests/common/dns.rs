//! A small authoritative DNS server for the tests: UDP (and TCP, for answers too big
//! for a datagram) on `127.0.0.1:0`, serving A, AAAA and SRV records from a table the
//! test changes while it runs; names it has no record of get NXDOMAIN, or whatever
//! the test set (`refuse`, `silence`). Messages are read and written with
//! hickory-proto. It counts the questions it got, so a test can wait for the next
//! resolution instead of sleeping.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One SRV record: a port, a weight and a target with its addresses.
#[derive(Debug, Clone)]
pub struct Srv {
    pub port: u16,
    pub weight: u16,
    pub target: String,
    pub ips: Vec<IpAddr>,
}

#[derive(Default)]
struct Table {
    addrs: HashMap<String, Vec<IpAddr>>,
    srv: HashMap<String, Vec<Srv>>,
    refused: bool,
    silent: bool,
    /// Answers above this many bytes over UDP are truncated (TC).
    udp_limit: Option<usize>,
}

pub struct DnsServer {
    addr: SocketAddr,
    table: Arc<Mutex<Table>>,
    questions: Arc<AtomicUsize>,
    tcp_questions: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub fn start() -> DnsServer {
        // TCP on the same port number as UDP (RFC 7766): a port free for both.
        let (sock, tcp) = (0..100)
            .find_map(|_| {
                let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
                let tcp = TcpListener::bind(sock.local_addr().ok()?).ok()?;
                Some((sock, tcp))
            })
            .expect("a port free for UDP and TCP");
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let s = DnsServer {
            addr,
            table: Arc::default(),
            questions: Arc::default(),
            tcp_questions: Arc::default(),
            stop: Arc::default(),
        };
        let (table, questions, stop) = (s.table.clone(), s.questions.clone(), s.stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                questions.fetch_add(1, Ordering::SeqCst);
                let t = table.lock().unwrap();
                if t.silent {
                    continue;
                }
                if let Some(mut out) = answer(&t, &buf[..n]) {
                    if t.udp_limit.is_some_and(|l| out.len() > l) {
                        if let Ok(m) = Message::from_vec(&out) {
                            out = m.truncate().to_vec().unwrap();
                        }
                    }
                    let _ = sock.send_to(&out, peer);
                }
            }
        });
        let (table, tq, stop) = (s.table.clone(), s.tcp_questions.clone(), s.stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                tq.fetch_add(1, Ordering::SeqCst);
                let out = answer(&table.lock().unwrap(), &q);
                if let Some(out) = out {
                    let mut msg = (out.len() as u16).to_be_bytes().to_vec();
                    msg.extend_from_slice(&out);
                    let _ = c.write_all(&msg);
                }
            }
        });
        s
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `name`'s A and AAAA records (an empty list: the name exists with none).
    pub fn set(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|i| i.parse().unwrap()).collect();
        self.table.lock().unwrap().addrs.insert(key(name), ips);
    }

    /// `name` no longer exists (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let mut t = self.table.lock().unwrap();
        t.addrs.remove(&key(name));
        t.srv.remove(&key(name));
    }

    pub fn set_srv(&self, name: &str, records: Vec<Srv>) {
        self.table.lock().unwrap().srv.insert(key(name), records);
    }

    /// Every question is answered REFUSED.
    pub fn refuse(&self, on: bool) {
        self.table.lock().unwrap().refused = on;
    }

    /// No question is answered.
    pub fn silence(&self, on: bool) {
        self.table.lock().unwrap().silent = on;
    }

    /// UDP answers longer than `limit` bytes go out truncated.
    pub fn truncate_above(&self, limit: usize) {
        self.table.lock().unwrap().udp_limit = Some(limit);
    }

    /// Questions received over UDP so far.
    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }

    pub fn tcp_questions(&self) -> usize {
        self.tcp_questions.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(t: &Table, q: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(q).ok()?;
    let query = req.queries.first()?.clone();
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata.authoritative = true;
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.add_query(query.clone());
    let name = key(&query.name.to_ascii());
    if t.refused {
        m.metadata.response_code = ResponseCode::Refused;
        return m.to_vec().ok();
    }
    let qn = query.name.clone();
    match (query.query_type, t.addrs.get(&name), t.srv.get(&name)) {
        (RecordType::A, Some(ips), _) => {
            for ip in ips {
                if let IpAddr::V4(v4) = ip {
                    m.add_answer(Record::from_rdata(qn.clone(), 1, RData::A(A(*v4))));
                }
            }
        }
        (RecordType::AAAA, Some(ips), _) => {
            for ip in ips {
                if let IpAddr::V6(v6) = ip {
                    m.add_answer(Record::from_rdata(qn.clone(), 1, RData::AAAA(AAAA(*v6))));
                }
            }
        }
        (RecordType::SRV, _, Some(recs)) => {
            for r in recs {
                let target = Name::from_ascii(format!("{}.", key(&r.target))).ok()?;
                m.add_answer(Record::from_rdata(
                    qn.clone(),
                    1,
                    RData::SRV(SRV::new(0, r.weight, r.port, target.clone())),
                ));
                for ip in &r.ips {
                    let data = match ip {
                        IpAddr::V4(v4) => RData::A(A(*v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                    };
                    m.add_additional(Record::from_rdata(target.clone(), 1, data));
                }
            }
        }
        (_, None, None) => m.metadata.response_code = ResponseCode::NXDomain,
        // The name exists without a record of that type: an empty NOERROR.
        _ => {}
    }
    m.to_vec().ok()
}
