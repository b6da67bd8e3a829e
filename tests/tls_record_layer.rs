//! The TLS record layer of the client-facing side after the handshake (issue 16): what
//! any implementation of it (rustls' own, or records sealed and opened in place by
//! ringlb) must get right. An in-process `ringlb::tls` echo server over loopback, on
//! both io drivers, against rustls clients: every suite and version offered, records
//! cut into single bytes or packed many to a segment, TLS 1.3 KeyUpdate, padding and
//! empty records, and records that must be refused (a flipped byte, an overlong record,
//! an unexpected type, an alert). Then the real binary: its HTTP path (curl, and a
//! hand-driven client cutting, packing and re-keying requests) and its TCP mode (both
//! halves of the stream at once; `openssl s_client`'s KeyUpdate).
//!
//! Every exchange is an echo compared byte for byte, so wrong plaintext in either
//! direction fails the test.

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpListener;
use monoio::time::Instant;
use ringlb::tls::{self, BindTls, ServerSet, TlsInfo};
use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{
    CipherSuite as C, ClientConnection, ContentType, ProtocolVersion, SupportedCipherSuite,
};

use common::haproxy::ringlb_cfg;
use common::proc::collect_text;
use common::wire::pattern;
use common::{wait_for, EchoServer, RingLb, TestBackend};
use tls_util::*;

/// What the server saw on one connection.
#[derive(Debug)]
struct Served {
    /// `None`: the handshake failed.
    info: Option<TlsInfo>,
    /// Every plaintext byte read (each echoed back at once).
    got: Vec<u8>,
    /// `Ok`: a close_notify read as EOF, then the server's shutdown; `Err`: how the
    /// read (or the echo) failed.
    end: Result<(), String>,
}

/// Accepts `n` connections one after the other and echoes each until it ends.
async fn echo_server(listener: TcpListener, bind: Arc<BindTls>, n: usize) -> Vec<Served> {
    let set = ServerSet::new(&bind).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        // Bounded: a client that panicked never connects.
        let Ok(accepted) = monoio::time::timeout(Duration::from_secs(20), listener.accept()).await
        else {
            break;
        };
        let (sock, _) = accepted.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut s, info) =
            match tls::accept(sock, &set, deadline, tls::Acceptor::default(), None).await {
                Ok(a) => a,
                Err(e) => {
                    out.push(Served {
                        info: None,
                        got: Vec::new(),
                        end: Err(e.to_string()),
                    });
                    continue;
                }
            };
        let mut got = Vec::new();
        let mut buf = Vec::with_capacity(64 * 1024);
        let end = loop {
            buf.clear();
            let (r, b) = s.read(buf).await;
            buf = b;
            match r {
                Ok(0) => break s.shutdown().await.map_err(|e| format!("shutdown: {e}")),
                Ok(_) => {
                    got.extend_from_slice(&buf);
                    let (w, b) = s.write_all(buf).await;
                    buf = b;
                    if let Err(e) = w {
                        break Err(format!("echo: {e}"));
                    }
                }
                Err(e) => break Err(format!("{:?}: {e}", e.kind())),
            }
        };
        out.push(Served {
            info: Some(info),
            got,
            end,
        });
    }
    out
}

/// Runs the echo server for `n` connections while `client` runs on a thread.
async fn with_server<T, F>(bind: Arc<BindTls>, n: usize, client: F) -> (Vec<Served>, T)
where
    T: Send + 'static,
    F: FnOnce(SocketAddr) -> T + Send + 'static,
{
    let (l, addr) = listener();
    let t = std::thread::spawn(move || client(addr));
    let served = echo_server(l, bind, n).await;
    (served, join(t).await)
}

/// A bind serving an ECDSA (or RSA) certificate for `a.test`, and the CA.
fn bind_for(alg: Alg) -> (Pki, Arc<BindTls>) {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", alg, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    (pki, bind)
}

fn opts(version: &'static rustls::SupportedProtocolVersion) -> ClientOpts {
    ClientOpts {
        versions: vec![version],
        ..Default::default()
    }
}

/// A rustls client driven by hand over a blocking socket: the test decides how the
/// ciphertext it seals reaches the socket, and sees every record the server sends.
struct Hand {
    conn: ClientConnection,
    sock: std::net::TcpStream,
    /// Every byte of ciphertext received (the test clears it).
    raw: Vec<u8>,
    /// Ciphertext read from the socket that rustls did not take yet.
    pending: Vec<u8>,
}

impl Hand {
    fn connect(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Hand {
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut conn = ClientConnection::new(cfg, name).unwrap();
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).expect("handshake");
        }
        Hand {
            conn,
            sock,
            raw: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The records rustls queued (for `data`, and anything else it had to send).
    fn seal(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let mut rest = data;
        // rustls buffers 64 KiB of plaintext at most: seal it piece by piece.
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest).unwrap();
            rest = &rest[n..];
            v.extend(self.queued());
        }
        v.extend(self.queued());
        v
    }

    fn queued(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut v).unwrap();
        }
        v
    }

    /// Writes `bytes` to the socket `step` bytes per write (errors ignored: the
    /// server may have closed on a bad record already).
    fn send(&mut self, bytes: &[u8], step: usize) {
        for c in bytes.chunks(step) {
            if self.sock.write_all(c).is_err() {
                return;
            }
        }
    }

    /// Exactly `n` bytes of plaintext, or how the connection ended before them.
    fn recv(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut got = Vec::new();
        let mut b = vec![0u8; 65536];
        loop {
            let room = (n - got.len()).min(b.len());
            match self.conn.reader().read(&mut b[..room]) {
                Ok(0) => return Err(format!("close_notify after {} bytes", got.len())),
                Ok(k) => {
                    got.extend_from_slice(&b[..k]);
                    if got.len() == n {
                        return Ok(got);
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("{e} after {} bytes", got.len())),
            }
            self.read_socket()?;
        }
    }

    /// Ciphertext for rustls: what it has not taken yet, else one socket read.
    fn read_socket(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            let mut b = vec![0u8; 65536];
            let k = match self.sock.read(&mut b) {
                Ok(0) => return Err("eof".into()),
                Ok(k) => k,
                Err(e) if is_timeout(&e) => return Err("timeout".into()),
                Err(e) => return Err(format!("socket: {e}")),
            };
            self.raw.extend_from_slice(&b[..k]);
            self.pending.extend_from_slice(&b[..k]);
        }
        // rustls takes what its plaintext buffer has room for; the rest waits.
        let n = self
            .conn
            .read_tls(&mut &self.pending[..])
            .map_err(|e| e.to_string())?;
        self.pending.drain(..n);
        self.conn
            .process_new_packets()
            .map_err(|e| format!("tls: {e}"))?;
        Ok(())
    }

    /// `data` sealed, sent `step` bytes per write, and its echo compared.
    fn echo(&mut self, data: &[u8], step: usize) {
        let records = self.seal(data);
        self.send(&records, step);
        let back = self.recv(data.len()).expect("the echo");
        assert!(back == data, "the echo of {} bytes differs", data.len());
    }

    /// Sends close_notify; `Ok` once the server's close_notify came.
    fn close(&mut self) -> Result<(), String> {
        self.conn.send_close_notify();
        let v = self.queued();
        self.send(&v, v.len().max(1));
        match self.recv(1) {
            Err(e) if e.starts_with("close_notify after 0") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }

    /// One HTTP response's body (Content-Length framing), read a byte at a time.
    fn response(&mut self) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.extend(self.recv(1).expect("a response head"));
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no length: {head}"));
        let body = if len == 0 {
            Vec::new()
        } else {
            self.recv(len).expect("a body")
        };
        String::from_utf8(body).unwrap()
    }

    /// How the server ended the connection after a bad record: never plaintext.
    fn refused(&mut self) -> String {
        match self.recv(1) {
            Ok(b) => panic!("plaintext {b:?} after a bad record"),
            Err(e) => {
                assert_ne!(e, "timeout", "the connection stayed open");
                e
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The (type, length) of each record in `raw`.
fn records(raw: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 5 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        out.push((rest[0], len));
        rest = &rest[(5 + len).min(rest.len())..];
    }
    out
}

/// The provider's suite with this id.
fn offered(id: C) -> SupportedCipherSuite {
    *provider()
        .cipher_suites
        .iter()
        .find(|s| s.suite() == id)
        .unwrap_or_else(|| panic!("{id:?} not in the provider"))
}

/// Sizes each suite echoes: record boundaries and a megabyte.
const SIZES: &[usize] = &[1, 16383, 16384, 16385, 100_000, 1 << 20];

/// Each size echoed, in pieces of 64 KiB (a piece's echo read before the next is
/// sent), then a clean close both ways. What was echoed, in order.
fn echo_sizes(mut s: rustls::StreamOwned<ClientConnection, std::net::TcpStream>) -> Vec<u8> {
    let mut all = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        let data: Vec<u8> = pattern(n + i).split_off(i);
        for piece in data.chunks(64 * 1024) {
            s.write_all(piece).unwrap();
            s.flush().unwrap();
            let mut back = vec![0u8; piece.len()];
            s.read_exact(&mut back).unwrap();
            assert!(back == piece, "echo of a {n}-byte message differs");
        }
        all.extend_from_slice(&data);
    }
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    // rustls reads the server's close_notify as a clean EOF (no UnexpectedEof).
    s.read_to_end(&mut rest).expect("the server's close_notify");
    assert!(rest.is_empty());
    all
}

/// Every suite and version the server offers: sizes on both sides of the record size
/// and a megabyte echoed byte-exact, then close_notify each way. One test per
/// certificate and version, so they run side by side.
#[test]
fn tls13_suites_echo_every_size_and_close_cleanly() {
    suites_echo(
        Alg::Ecdsa,
        &rustls::version::TLS13,
        &[
            (C::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
            (C::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
            (
                C::TLS13_CHACHA20_POLY1305_SHA256,
                "TLS_CHACHA20_POLY1305_SHA256",
            ),
        ],
    );
}

#[test]
fn tls12_ecdsa_suites_echo_every_size_and_close_cleanly() {
    suites_echo(
        Alg::Ecdsa,
        &rustls::version::TLS12,
        &[
            (
                C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                "ECDHE-ECDSA-AES128-GCM-SHA256",
            ),
            (
                C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                "ECDHE-ECDSA-AES256-GCM-SHA384",
            ),
            (
                C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                "ECDHE-ECDSA-CHACHA20-POLY1305",
            ),
        ],
    );
}

#[test]
fn tls12_rsa_suites_echo_every_size_and_close_cleanly() {
    suites_echo(
        Alg::Rsa,
        &rustls::version::TLS12,
        &[
            (
                C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                "ECDHE-RSA-AES128-GCM-SHA256",
            ),
            (
                C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                "ECDHE-RSA-AES256-GCM-SHA384",
            ),
            (
                C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                "ECDHE-RSA-CHACHA20-POLY1305",
            ),
        ],
    );
}

/// Each suite (its id, and its name as the server reports it) on its own connection.
fn suites_echo(
    alg: Alg,
    version: &'static rustls::SupportedProtocolVersion,
    suites: &'static [(C, &'static str)],
) {
    let (pki, bind) = bind_for(alg);
    let ca = pki.ca_der();
    let expect: Vec<u8> = SIZES
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| pattern(n + i).split_off(i))
        .collect();
    both_drivers(|| {
        let (bind, ca, expect) = (bind.clone(), ca.clone(), expect.clone());
        async move {
            for &(id, name) in suites {
                let suite = offered(id);
                let cfg = client_config(
                    &ca,
                    ClientOpts {
                        suites: vec![suite],
                        ..opts(version)
                    },
                );
                let (served, echoed) = with_server(bind.clone(), 1, move |addr| {
                    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
                    let conn = ClientConnection::new(cfg, name).unwrap();
                    let sock = std::net::TcpStream::connect(addr).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let mut s = rustls::StreamOwned::new(conn, sock);
                    while s.conn.is_handshaking() {
                        s.conn.complete_io(&mut s.sock).unwrap();
                    }
                    assert_eq!(s.conn.negotiated_cipher_suite(), Some(suite));
                    echo_sizes(s)
                })
                .await;
                let sv = &served[0];
                let info = sv.info.as_ref().expect("handshake");
                assert_eq!(info.cipher, name);
                let proto = if version.version == ProtocolVersion::TLSv1_3 {
                    "TLSv1.3"
                } else {
                    "TLSv1.2"
                };
                assert_eq!(info.protocol, proto, "{name}");
                assert_eq!(sv.end, Ok(()), "{name}: close_notify reads as EOF");
                assert!(sv.got == expect, "{name}: the server read other bytes");
                assert!(echoed == expect, "{name}");
            }
        }
    });
}

/// Ciphertext one byte per TCP segment (headers and tags cut everywhere), then fifty
/// records in one segment: the server reads exactly the plaintext.
#[test]
fn records_cut_into_single_bytes_or_packed_fifty_to_a_write_read_exactly() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
            let (served, sent) = with_server(bind, versions.len(), move |addr| {
                let mut sent = Vec::new();
                for v in versions {
                    let mut h = Hand::connect(addr, client_config(&ca, opts(v)));
                    let mut all = Vec::new();
                    // Two records, the second short: every boundary cut.
                    let big = pattern(16384 + 300);
                    h.echo(&big, 1);
                    all.extend_from_slice(&big);
                    // Fifty requests of odd sizes, each its own record, one write.
                    let msgs: Vec<Vec<u8>> = (0..50)
                        .map(|i| pattern(i * 37 + 1 + i).split_off(i))
                        .collect();
                    let mut wire = Vec::new();
                    for m in &msgs {
                        wire.extend(h.seal(m));
                    }
                    assert!(records(&wire).len() >= 50);
                    h.send(&wire, wire.len());
                    let flat: Vec<u8> = msgs.concat();
                    let back = h.recv(flat.len()).expect("the pipelined echo");
                    assert!(back == flat, "pipelined echo differs");
                    all.extend_from_slice(&flat);
                    // A record whose header and body come in odd pieces.
                    let odd = pattern(5000);
                    h.echo(&odd, 3);
                    all.extend_from_slice(&odd);
                    // The last data and the close_notify in one segment: the data
                    // first, then the EOF.
                    let mut wire = h.seal(b"tail");
                    h.conn.send_close_notify();
                    wire.extend(h.queued());
                    h.send(&wire, wire.len());
                    assert_eq!(h.recv(4).expect("the echo before the EOF"), b"tail");
                    all.extend_from_slice(b"tail");
                    let end = h.recv(1);
                    assert_eq!(end, Err("close_notify after 0 bytes".into()));
                    sent.push(all);
                }
                sent
            })
            .await;
            for (sv, sent) in served.iter().zip(&sent) {
                assert_eq!(sv.end, Ok(()));
                assert!(sv.got == *sent, "the server read other bytes");
            }
        }
    });
}

/// TLS 1.3 KeyUpdate asking for the peer's: the server's next records follow a
/// KeyUpdate of its own, and data flows both ways under the new keys, three times.
#[test]
fn tls13_key_updates_mid_stream_keep_data_flowing_both_ways() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (served, sent) = with_server(bind, 1, move |addr| {
                let mut h = Hand::connect(addr, client_config(&ca, opts(&rustls::version::TLS13)));
                // The server's session tickets come with the first echo.
                h.echo(b"first", 64);
                let mut sent = b"first".to_vec();
                for round in 0..3 {
                    let msg = pattern(1000 + round);
                    // Without an update: how many records the echo takes.
                    h.raw.clear();
                    h.echo(&msg, msg.len() + 100);
                    let plain = records(&h.raw).len();
                    h.conn.refresh_traffic_keys().unwrap();
                    h.raw.clear();
                    // The KeyUpdate and the data in one write, or (round 1) cut in
                    // single bytes.
                    h.echo(&msg, if round == 1 { 1 } else { 1 << 20 });
                    let updated = records(&h.raw).len();
                    assert!(
                        updated > plain,
                        "round {round}: no KeyUpdate from the server ({updated} records, {plain} before)"
                    );
                    // More than a record each way under the new keys.
                    let bulk = pattern(70_000 + round);
                    h.echo(&bulk, 1 << 20);
                    sent.extend([msg.clone(), msg, bulk].concat());
                }
                h.close().expect("clean close");
                sent
            })
            .await;
            assert_eq!(served[0].end, Ok(()));
            assert!(served[0].got == sent);
        }
    });
}

/// Records that must be refused: a flipped ciphertext byte, a record over
/// 2^14 + 256 bytes, a record of a type not allowed after the handshake. The read
/// fails (no plaintext), the connection ends, and the next connection works.
#[test]
fn a_tampered_overlong_or_mistyped_record_fails_the_read_and_only_that_connection() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    // Each builds the bad bytes to send after a good exchange.
    type Bad = fn(&mut Hand) -> Vec<u8>;
    let bad: &[(&str, Bad)] = &[
        ("flipped payload byte", |h| {
            let mut r = h.seal(b"tampered");
            r[5 + 3] ^= 0x01;
            r
        }),
        ("flipped tag byte", |h| {
            let mut r = h.seal(b"tampered");
            let last = r.len() - 1;
            r[last] ^= 0x80;
            r
        }),
        ("record over 2^14 + 256", |_| overlong((1 << 14) + 256 + 1)),
        ("record over 2^14 + 2048", |_| {
            overlong((1 << 14) + 2048 + 1)
        }),
        ("type 23 with garbage", |_| {
            let mut r = vec![23, 3, 3, 0, 40];
            r.extend((0..40u8).map(|i| i.wrapping_mul(97)));
            r
        }),
        ("plaintext handshake record", |_| {
            vec![22, 3, 3, 0, 5, 1, 0, 0, 1, 0]
        }),
        ("change_cipher_spec after the handshake", |_| {
            vec![20, 3, 3, 0, 1, 1]
        }),
        ("unknown record type", |_| vec![99, 3, 3, 0, 4, 1, 2, 3, 4]),
    ];
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
                let cfg = client_config(&ca, opts(v));
                let (served, ends) = with_server(bind.clone(), bad.len() + 1, move |addr| {
                    let mut ends = Vec::new();
                    for (what, make) in bad {
                        let mut h = Hand::connect(addr, cfg.clone());
                        h.echo(b"before", 64);
                        let bytes = make(&mut h);
                        h.send(&bytes, bytes.len());
                        ends.push(format!("{what}: {}", h.refused()));
                    }
                    // The server serves the next connection as if nothing happened.
                    let mut h = Hand::connect(addr, cfg);
                    h.echo(b"after", 64);
                    h.close().expect("clean close");
                    ends
                })
                .await;
                for (i, (what, _)) in bad.iter().enumerate() {
                    let sv = &served[i];
                    assert_eq!(sv.got, b"before", "{v:?} {what}: {}", ends[i]);
                    assert!(sv.end.is_err(), "{v:?} {what}: {:?}", sv.end);
                }
                let last = served.last().unwrap();
                assert_eq!((last.got.as_slice(), &last.end), (&b"after"[..], &Ok(())));
            }
        }
    });
}

/// An application data record of `len` bytes of garbage.
fn overlong(len: usize) -> Vec<u8> {
    let mut r = vec![23, 3, 3, (len >> 8) as u8, len as u8];
    r.resize(5 + len, 0x5a);
    r
}

/// A client that seals its own records (keys taken from rustls after the handshake):
/// padding, empty records, alerts and types rustls never sends.
struct Sealer {
    sock: std::net::TcpStream,
    enc: Box<dyn MessageEncrypter>,
    dec: Box<dyn MessageDecrypter>,
    tx_seq: u64,
    rx_seq: u64,
    rx: Vec<u8>,
}

/// A direction's key and IV.
fn keys(
    s: rustls::ConnectionTrafficSecrets,
) -> (rustls::crypto::cipher::AeadKey, rustls::crypto::cipher::Iv) {
    match s {
        rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => panic!("unknown AEAD"),
    }
}

impl Sealer {
    fn connect(
        addr: SocketAddr,
        ca: &rustls::pki_types::CertificateDer<'static>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Sealer {
        // TLS 1.2: ChaCha20 only. rustls' AES-GCM sealing key for TLS 1.2 (aws-lc-rs)
        // insists that its first record is sequence number 0, long gone here.
        let suites = if version.version == ProtocolVersion::TLSv1_2 {
            vec![offered(C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)]
        } else {
            Vec::new()
        };
        let cfg = client_config(
            ca,
            ClientOpts {
                extract_secrets: true,
                suites,
                ..opts(version)
            },
        );
        let h = Hand::connect(addr, cfg);
        let suite = h.conn.negotiated_cipher_suite().unwrap();
        let secrets = h.conn.dangerous_extract_secrets().unwrap();
        let ((tk, ti), (rk, ri)) = (keys(secrets.tx.1), keys(secrets.rx.1));
        let (enc, dec) = match suite {
            SupportedCipherSuite::Tls13(s) => {
                (s.aead_alg.encrypter(tk, ti), s.aead_alg.decrypter(rk, ri))
            }
            SupportedCipherSuite::Tls12(s) => (
                s.aead_alg.encrypter(tk, ti.as_ref(), &[]),
                s.aead_alg.decrypter(rk, ri.as_ref()),
            ),
        };
        Sealer {
            sock: h.sock,
            enc,
            dec,
            tx_seq: secrets.tx.0,
            rx_seq: secrets.rx.0,
            rx: Vec::new(),
        }
    }

    /// One record: `inner` followed by the content type `typ` (TLS 1.3's inner
    /// plaintext; `Unknown(0)` lets `inner` carry its own type and padding).
    fn record(&mut self, typ: ContentType, inner: &[u8]) -> Vec<u8> {
        let m = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(inner),
        };
        let r = self.enc.encrypt(m, self.tx_seq).unwrap().encode();
        self.tx_seq += 1;
        r
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.sock.write_all(bytes);
    }

    /// Application data until `n` bytes came (tickets skipped), or how it ended.
    fn recv(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut got = Vec::new();
        while got.len() < n {
            while self.rx.len() < 5
                || self.rx.len() < 5 + u16::from_be_bytes([self.rx[3], self.rx[4]]) as usize
            {
                let mut b = [0u8; 65536];
                match self.sock.read(&mut b) {
                    Ok(0) => return Err("eof".into()),
                    Ok(k) => self.rx.extend_from_slice(&b[..k]),
                    Err(e) if is_timeout(&e) => return Err("timeout".into()),
                    Err(e) => return Err(format!("socket: {e}")),
                }
            }
            let len = 5 + u16::from_be_bytes([self.rx[3], self.rx[4]]) as usize;
            let mut rec: Vec<u8> = self.rx.drain(..len).collect();
            let msg = InboundOpaqueMessage::new(
                ContentType::from(rec[0]),
                ProtocolVersion::TLSv1_2,
                &mut rec[5..],
            );
            let plain = self
                .dec
                .decrypt(msg, self.rx_seq)
                .map_err(|e| format!("decrypt: {e}"))?;
            self.rx_seq += 1;
            match plain.typ {
                ContentType::ApplicationData => got.extend_from_slice(plain.payload),
                ContentType::Alert => return Err(format!("alert {:?}", plain.payload)),
                _ => {} // NewSessionTicket
            }
        }
        Ok(got)
    }

    fn echo(&mut self, data: &[u8]) {
        let r = self.record(ContentType::ApplicationData, data);
        self.send(&r);
        assert_eq!(self.recv(data.len()).unwrap(), data);
    }

    /// close_notify sent; `Ok` once the server's came.
    fn close(&mut self) -> Result<(), String> {
        let r = self.record(ContentType::Alert, &[1, 0]);
        self.send(&r);
        match self.recv(1) {
            Err(e) if e == "alert [1, 0]" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

/// Valid records rustls never sends: TLS 1.3 padding after the content type, empty
/// application data records (not an EOF) in TLS 1.3 and 1.2, a close_notify sealed
/// by hand.
#[test]
fn padding_and_empty_records_are_read_as_the_plaintext_they_carry() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (served, ()) = with_server(bind, 2, move |addr| {
                let mut s = Sealer::connect(addr, &ca, &rustls::version::TLS13);
                s.echo(b"plain");
                // "padded", its type, then 200 zero bytes of padding.
                let mut inner = b"padded".to_vec();
                inner.push(23);
                inner.resize(inner.len() + 199, 0);
                let r = s.record(ContentType::Unknown(0), &inner);
                s.send(&r);
                assert_eq!(s.recv(6).unwrap(), b"padded");
                // Padding up to the largest record: 2^14 bytes of inner plaintext + type.
                let mut full = b"full".to_vec();
                full.push(23);
                full.resize(1 << 14, 0);
                let r = s.record(ContentType::Unknown(0), &full);
                s.send(&r);
                assert_eq!(s.recv(4).unwrap(), b"full");
                empty_records(&mut s);
                let mut s = Sealer::connect(addr, &ca, &rustls::version::TLS12);
                s.echo(b"plain");
                empty_records(&mut s);
            })
            .await;
            assert_eq!(served[0].got, b"plainpaddedfullnextlast");
            assert_eq!(served[1].got, b"plainnextlast");
            assert!(served.iter().all(|s| s.end == Ok(())), "{served:?}");
        }
    });
}

/// An empty record then data in one write, an empty record alone then data later:
/// the connection goes on; then a clean close.
fn empty_records(s: &mut Sealer) {
    let mut w = s.record(ContentType::ApplicationData, b"");
    w.extend(s.record(ContentType::ApplicationData, b"next"));
    s.send(&w);
    assert_eq!(s.recv(4).unwrap(), b"next");
    let r = s.record(ContentType::ApplicationData, b"");
    s.send(&r);
    s.echo(b"last");
    s.close().expect("clean close");
}

/// Records that carry no plaintext, in a row: 32 are read through (as OpenSSL, HAProxy's
/// TLS, reads them), and the count starts over after data; the 33rd ends the connection
/// with an alert, in TLS 1.3 and 1.2 (before, any number was opened, the shard making
/// no progress). The next connection works.
#[test]
fn more_than_32_records_in_a_row_without_data_end_the_connection() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let (served, ends) = with_server(bind, 3, move |addr| {
                let mut ends = Vec::new();
                for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
                    let mut s = Sealer::connect(addr, &ca, v);
                    // `empty` empty records then `data`, in one write.
                    let burst = |s: &mut Sealer, empty: usize, data: &[u8]| {
                        let mut w = Vec::new();
                        for _ in 0..empty {
                            w.extend(s.record(ContentType::ApplicationData, b""));
                        }
                        w.extend(s.record(ContentType::ApplicationData, data));
                        s.send(&w);
                    };
                    for round in 0..2 {
                        burst(&mut s, 32, b"ok");
                        assert_eq!(s.recv(2).unwrap(), b"ok", "{v:?}: round {round}");
                    }
                    burst(&mut s, 33, b"lost");
                    let end = match s.recv(1) {
                        Ok(b) => panic!("{v:?}: {} bytes after 33 empty records", b.len()),
                        Err(e) => e,
                    };
                    ends.push(format!("{v:?}: {end}"));
                }
                let mut s = Sealer::connect(addr, &ca, &rustls::version::TLS13);
                s.echo(b"after");
                s.close().expect("clean close");
                ends
            })
            .await;
            for (i, end) in ends.iter().enumerate() {
                // unexpected_message (10), fatal.
                assert!(end.ends_with("alert [2, 10]"), "{end}");
                assert_eq!(served[i].got, b"okok", "{end}");
                assert!(served[i].end.is_err(), "{end}: {:?}", served[i].end);
            }
            let last = served.last().unwrap();
            assert_eq!((last.got.as_slice(), &last.end), (&b"after"[..], &Ok(())));
        }
    });
}

type BadSealed = fn(&mut Sealer) -> Vec<u8>;

/// Sealed with the right keys yet not acceptable: a fatal alert, a record of 2^14 + 1
/// bytes of plaintext, an encrypted change_cipher_spec; in TLS 1.3 also an inner
/// plaintext of zeros only (no type) and a ClientHello after the handshake. The read
/// fails without handing out their bytes; the next connection works.
#[test]
fn sealed_alerts_and_bad_inner_records_fail_the_read() {
    let (pki, bind) = bind_for(Alg::Ecdsa);
    let ca = pki.ca_der();
    let both: &[(&str, BadSealed)] = &[
        ("fatal alert", |s| s.record(ContentType::Alert, &[2, 40])),
        ("2^14 + 1 bytes of plaintext", |s| {
            s.record(ContentType::ApplicationData, &[b'x'; (1 << 14) + 1])
        }),
        ("encrypted change_cipher_spec", |s| {
            s.record(ContentType::ChangeCipherSpec, &[1])
        }),
    ];
    let tls13: &[(&str, BadSealed)] = &[
        ("no content type", |s| {
            s.record(ContentType::Unknown(0), &[0; 32])
        }),
        ("a ClientHello after the handshake", |s| {
            s.record(ContentType::Handshake, &[1, 0, 0, 2, 3, 3])
        }),
    ];
    let cases: Vec<_> = both
        .iter()
        .chain(tls13)
        .map(|c| (&rustls::version::TLS13, *c))
        .chain(both.iter().map(|c| (&rustls::version::TLS12, *c)))
        .collect();
    let cases = Arc::new(cases);
    both_drivers(|| {
        let (bind, ca, cases) = (bind.clone(), ca.clone(), cases.clone());
        async move {
            let n = cases.len();
            let list = cases.clone();
            let (served, ends) = with_server(bind, n + 1, move |addr| {
                let mut ends = Vec::new();
                for (v, (what, make)) in list.iter() {
                    let mut s = Sealer::connect(addr, &ca, v);
                    s.echo(b"before");
                    let r = make(&mut s);
                    s.send(&r);
                    let end = match s.recv(1) {
                        Ok(b) => panic!("{v:?} {what}: {} bytes of plaintext", b.len()),
                        Err(e) => e,
                    };
                    assert_ne!(end, "timeout", "{v:?} {what}: the connection stayed open");
                    ends.push(format!("{v:?} {what}: {end}"));
                }
                let mut s = Sealer::connect(addr, &ca, &rustls::version::TLS13);
                s.echo(b"after");
                s.close().expect("clean close");
                ends
            })
            .await;
            for i in 0..n {
                assert_eq!(served[i].got, b"before", "{}", ends[i]);
                assert!(served[i].end.is_err(), "{}: {:?}", ends[i], served[i].end);
            }
            let last = served.last().unwrap();
            assert_eq!((last.got.as_slice(), &last.end), (&b"after"[..], &Ok(())));
        }
    });
}

/// The real binary with a TLS frontend (`mode`) in front of `server`, and its PKI.
fn tls_frontend(mode: &str, server: SocketAddr) -> (Pki, RingLb) {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n{DEFAULTS}    mode {mode}\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {server}\n",
        pki.path("a.pem").display(),
    ));
    (pki, lb)
}

const DEFAULTS: &str =
    "defaults\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// The HTTP path on the real binary reads requests through the record layer too (its
/// own read loop, under the client timeout): requests cut into single bytes, twenty
/// pipelined in one write, TLS 1.3 KeyUpdates between them; then a tampered record
/// gets no answer and closes the connection.
#[test]
fn http_requests_cut_packed_and_after_key_updates_on_the_real_binary() {
    let app = TestBackend::start("app");
    let (pki, lb) = tls_frontend("http", app.addr());
    let addr = lb.addr("fe");
    let get = |id: usize| format!("GET /id HTTP/1.1\r\nHost: a.test\r\nx-id: {id}\r\n\r\n");
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut h = Hand::connect(addr, client_config(&pki.ca_der(), opts(v)));
        let mut id = 0;
        for round in 0..3 {
            id += 1;
            let wire = h.seal(get(id).as_bytes());
            h.send(&wire, 1);
            assert_eq!(h.response(), id.to_string(), "{v:?}: request {id}, cut");
            let mut wire = Vec::new();
            for _ in 0..20 {
                id += 1;
                wire.extend(h.seal(get(id).as_bytes()));
            }
            h.send(&wire, wire.len());
            for want in id - 19..=id {
                assert_eq!(h.response(), want.to_string(), "{v:?}: pipelined {want}");
            }
            if v.version == ProtocolVersion::TLSv1_3 {
                h.conn.refresh_traffic_keys().unwrap();
                id += 1;
                let wire = h.seal(get(id).as_bytes());
                h.send(&wire, if round == 1 { 1 } else { wire.len() });
                assert_eq!(
                    h.response(),
                    id.to_string(),
                    "{v:?}: after KeyUpdate {round}"
                );
            }
        }
        let mut wire = h.seal(get(0).as_bytes());
        wire[5 + 4] ^= 0x40;
        h.send(&wire, wire.len());
        let end = h.refused();
        assert!(!end.contains("HTTP/1.1"), "{v:?}: {end}");
    }
}

/// The HTTP path on the real binary: curl over TLS 1.2 and 1.3 (curl refuses any
/// other version itself), fifty keep-alive requests on one connection, then a
/// megabyte uploaded and echoed by the backend.
#[test]
fn curl_keep_alive_series_and_a_megabyte_post_over_tls12_and_tls13() {
    let app = TestBackend::start("app");
    let (_pki, lb) = tls_frontend("http", app.addr());
    let addr = lb.addr("fe");
    let dir = tempfile::tempdir().unwrap();
    let body = pattern((1 << 20) + 3);
    let upload = dir.path().join("upload");
    std::fs::write(&upload, &body).unwrap();
    for (version, flags) in [
        ("1.2", &["--tlsv1.2", "--tls-max", "1.2"][..]),
        ("1.3", &["--tlsv1.3"][..]),
    ] {
        let url = format!("https://{addr}/");
        let mut args: Vec<&str> = vec!["-sk", "--http1.1", "-w", "|%{http_code} %{num_connects}\n"];
        args.extend(flags);
        args.extend(std::iter::repeat_n(url.as_str(), 50));
        let out = Command::new("curl").args(&args).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50, "TLS {version}: {text} {}", lb.stderr());
        for (i, l) in lines.iter().enumerate() {
            let connects = if i == 0 { 1 } else { 0 };
            assert_eq!(
                *l,
                format!("backend=app|200 {connects}"),
                "TLS {version}, request {i}"
            );
        }
        let echo = dir.path().join(format!("echo-{version}"));
        let out = Command::new("curl")
            .args(["-sk", "--http1.1", "-o"])
            .arg(&echo)
            .args(["-w", "%{http_code}", "--data-binary"])
            .arg(format!("@{}", upload.display()))
            .args(flags)
            .arg(format!("https://{addr}/echo"))
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "TLS {version}");
        let got = std::fs::read(&echo).unwrap();
        assert_eq!(got.len(), body.len(), "TLS {version}");
        assert!(got == body, "TLS {version}: the echoed upload differs");
    }
}

/// TCP mode reads and writes the two halves of the stream at once: KeyUpdates from
/// the client land on the read half while the write half sends the echo; 768 KiB
/// each way come back intact, then close_notify is passed on as a half-close.
#[test]
fn tcp_mode_key_updates_while_both_halves_stream() {
    let echo = EchoServer::start();
    let (pki, lb) = tls_frontend("tcp", echo.addr());
    let cfg = client_config(&pki.ca_der(), opts(&rustls::version::TLS13));
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let sock = std::net::TcpStream::connect(lb.addr("fe")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(ClientConnection::new(cfg, name).unwrap(), sock);
    let data = pattern(12 * 64 * 1024);
    let (mut got, mut b) = (Vec::new(), vec![0u8; 65536]);
    for (i, piece) in data.chunks(64 * 1024).enumerate() {
        if matches!(i, 2 | 5 | 8) {
            s.conn.refresh_traffic_keys().unwrap();
        }
        s.write_all(piece).unwrap();
        s.flush().unwrap();
        // Some of the echo, not all: the halves overlap.
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "early end after {} bytes", got.len());
        got.extend_from_slice(&b[..n]);
    }
    while got.len() < data.len() {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "early end after {} bytes", got.len());
        got.extend_from_slice(&b[..n]);
    }
    assert!(got == data, "the echo differs from what was sent");
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("a clean close");
    assert!(rest.is_empty());
}

/// `openssl s_client`'s `K` (a KeyUpdate asking for the server's) between lines sent
/// through a TLS frontend in TCP mode to an echo server: every line comes back.
#[test]
fn openssl_s_client_key_updates_through_the_real_binary() {
    let echo = EchoServer::start();
    let (_pki, lb) = tls_frontend("tcp", echo.addr());
    let addr = lb.addr("fe");
    // No -quiet: it would ignore the command letters.
    let mut child = Command::new("openssl")
        .args(["s_client", "-tls1_3", "-servername", "a.test", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    let out: Arc<Mutex<String>> = Arc::default();
    let err: Arc<Mutex<String>> = Arc::default();
    collect_text(child.stdout.take().unwrap(), Arc::clone(&out));
    collect_text(child.stderr.take().unwrap(), Arc::clone(&err));
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..4 {
        if i > 0 {
            // Alone in its read of stdin: s_client takes a whole read as the command.
            stdin.write_all(b"K\n").unwrap();
            stdin.flush().unwrap();
            wait_for(
                &format!("KeyUpdate {i} sent"),
                Duration::from_secs(10),
                || err.lock().unwrap().matches("KEYUPDATE").count() == i,
            );
        }
        let line = format!("ping-{i}-{}\n", "z".repeat(i * 3000));
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let want = format!("\n{line}");
        wait_for(
            &format!("the echo of line {i}"),
            Duration::from_secs(10),
            || out.lock().unwrap().contains(&want),
        );
    }
    // Its stdin closed, s_client ends the connection and exits.
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", err.lock().unwrap());
}
