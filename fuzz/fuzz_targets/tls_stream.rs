//! ringlb's `TlsStream` (server side) driven by a peer whose bytes come from the
//! input: after a real handshake with an in-memory rustls client, the input is a
//! script of what the peer does next: send application data (properly encrypted, in
//! cuts of any size), send raw bytes (garbage, truncated or replayed records), send
//! close_notify, or end the transport. Checked beyond "no panic": the stream hands
//! back exactly the plaintext sent before anything went wrong, reads `Ok(0)` only
//! after a close_notify, and once it returned an error it keeps failing (never
//! resynchronises on attacker bytes).
#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;
use ringlb::tls::TlsStream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The server's socket: reads what the peer queued, `cut` bytes at most per read.
struct Mem {
    inbox: Rc<RefCell<VecDeque<u8>>>,
    eof: Rc<RefCell<bool>>,
    outbox: Rc<RefCell<Vec<u8>>>,
    cut: usize,
}

impl AsyncReadRent for Mem {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.is_empty() {
            return if *self.eof.borrow() {
                (Ok(0), buf)
            } else {
                (Err(io::ErrorKind::WouldBlock.into()), buf)
            };
        }
        let n = inbox.len().min(buf.bytes_total()).min(self.cut.max(1));
        for (i, b) in inbox.drain(..n).enumerate() {
            // SAFETY: i < n <= bytes_total.
            unsafe { buf.write_ptr().add(i).write(b) };
        }
        unsafe { buf.set_init(n) };
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }
}

impl AsyncWriteRent for Mem {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let s = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        self.outbox.borrow_mut().extend_from_slice(s);
        (Ok(s.len()), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every future here completes without waiting: poll it once.
fn now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

struct Keys {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["fuzz.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let provider = ringlb::tls::provider();
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        // As ringlb's own configs: the record layer takes over after the handshake.
        server.enable_secret_extraction = true;
        server.key_log = Arc::new(ringlb::tls::records::SecretHook);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Keys {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, mut script)) = data.split_first() else {
        return;
    };
    let k = keys();
    let inbox = Rc::new(RefCell::new(VecDeque::new()));
    let eof = Rc::new(RefCell::new(false));
    let outbox = Rc::new(RefCell::new(Vec::new()));
    let mem = Mem {
        inbox: inbox.clone(),
        eof: eof.clone(),
        outbox: outbox.clone(),
        cut: cut as usize * 7 + 1,
    };
    let conn = rustls::ServerConnection::new(k.server.clone()).unwrap();
    let mut server = TlsStream::new(mem, conn);
    let mut secrets = ringlb::tls::records::Captured::default();
    let mut client =
        rustls::ClientConnection::new(k.client.clone(), ServerName::try_from("fuzz.test").unwrap())
            .unwrap();
    // The handshake, flight by flight.
    for _ in 0..8 {
        let mut flight = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut flight).unwrap();
        }
        inbox.borrow_mut().extend(flight);
        let _ = now(server.handshake_records(&mut secrets));
        let back = std::mem::take(&mut *outbox.borrow_mut());
        if !back.is_empty() {
            let mut r = &back[..];
            while !r.is_empty() {
                if client.read_tls(&mut r).is_err() {
                    break;
                }
            }
            if client.process_new_packets().is_err() {
                return;
            }
        }
        if !client.is_handshaking() && !server.conn().is_handshaking() {
            break;
        }
    }
    if client.is_handshaking() || server.conn().is_handshaking() {
        return;
    }
    // From here on: ringlb's own record layer.
    let Ok(mut server) = server.into_records(&secrets) else {
        return;
    };
    let mut sent = Vec::new();
    let mut clean = true; // nothing but well-formed records so far
    let mut closed = false;
    let mut got = Vec::new();
    let mut failed = false;
    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        let len = (op as usize >> 2) % 64;
        let (chunk, rest) = script.split_at(len.min(script.len()));
        script = rest;
        match op & 3 {
            0 if !closed => {
                // The client refuses to write once it got the server's alert.
                if client.writer().write_all(chunk).is_err() {
                    continue;
                }
                if clean {
                    sent.extend_from_slice(chunk);
                }
                let mut recs = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut recs).unwrap();
                }
                inbox.borrow_mut().extend(recs);
            }
            1 => {
                inbox.borrow_mut().extend(chunk.iter().copied());
                clean &= chunk.is_empty();
            }
            2 if !closed => {
                client.send_close_notify();
                let mut recs = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut recs).unwrap();
                }
                inbox.borrow_mut().extend(recs);
                closed = true;
            }
            _ => *eof.borrow_mut() = true,
        }
        // The server reads what arrived.
        loop {
            if inbox.borrow().is_empty() && !*eof.borrow() {
                break;
            }
            let Some((r, buf)) = now(server.read(Vec::with_capacity(1 + (op as usize % 300)))) else {
                break;
            };
            match r {
                Ok(0) => {
                    assert!(!failed, "a read succeeded after an error");
                    // A clean EOF: only after close_notify (and all data read).
                    assert!(closed, "Ok(0) without close_notify");
                    if clean {
                        assert_eq!(got, sent);
                    }
                    return;
                }
                Ok(n) => {
                    assert!(!failed, "a read succeeded after an error");
                    got.extend_from_slice(&buf[..n]);
                    if clean {
                        assert!(sent.starts_with(&got), "plaintext out of order");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    if inbox.borrow().is_empty() {
                        break;
                    }
                    inbox.borrow_mut().clear();
                }
            }
        }
        let back = std::mem::take(&mut *outbox.borrow_mut());
        let _ = client.read_tls(&mut &back[..]);
        let _ = client.process_new_packets();
        let _ = client.reader().read(&mut [0u8; 64]);
    }
});
