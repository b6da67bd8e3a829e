//! When a TLS stream says its socket may be waited on (`Stream::idle_socket`, which
//! the HTTP path uses to wait for the next request holding no buffer): only when
//! nothing is buffered above the socket. Plaintext rustls already decrypted (the rest
//! of a record read in part) must be read at once: waiting for the socket instead
//! would stall a request the client already sent. Real sockets, both io drivers.

use crate::tls_util;

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use ringlb::io::Stream;
use ringlb::tls::{self, ServerSet};
use tls_util::*;

/// Reads exactly `n` bytes of plaintext.
async fn read_n<S: AsyncReadRent>(s: &mut S, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let (r, b) = s.read(Vec::with_capacity(n - got.len())).await;
        let k = r.expect("read");
        assert!(k > 0, "EOF after {} bytes", got.len());
        got.extend_from_slice(&b);
    }
    got
}

#[test]
fn the_socket_is_waited_on_only_when_nothing_is_buffered_above_it() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let bind = load_bind(&spec_with(&[&pki.path("a.pem")]));
    let ca = pki.ca_der();
    both_drivers(|| {
        let (bind, ca) = (bind.clone(), ca.clone());
        async move {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let cfg = client_config(&ca, ClientOpts::default());
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let client = std::thread::spawn(move || {
                use std::io::{Read, Write};
                let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
                let conn = rustls::ClientConnection::new(cfg, name).unwrap();
                let mut s =
                    rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
                // One record, then (once the server looked) a second one.
                s.write_all(b"first record").unwrap();
                go_rx.recv().unwrap();
                s.write_all(b"second").unwrap();
                let mut ok = [0u8; 2];
                s.read_exact(&mut ok).unwrap();
                ok
            });
            let set = ServerSet::new(&bind).unwrap();
            let (sock, _) = l.accept().await.unwrap();
            let deadline = monoio::time::Instant::now() + Duration::from_secs(5);
            let (mut s, _) = tls::accept(sock, &set, deadline, tls::Acceptor::default(), None)
                .await
                .unwrap();
            // Part of the first record: the rest is decrypted and waits in rustls.
            assert_eq!(read_n(&mut s, 3).await, b"fir");
            assert!(
                s.idle_socket().is_none(),
                "plaintext is buffered, yet the socket would be waited on"
            );
            assert_eq!(read_n(&mut s, 9).await, b"st record");
            // All read: the next bytes can only come from the socket.
            assert!(
                s.idle_socket().is_some(),
                "nothing buffered, yet no socket to wait on"
            );
            go_tx.send(()).unwrap();
            s.idle_socket()
                .expect("still nothing buffered")
                .readable(false)
                .await
                .unwrap();
            assert_eq!(read_n(&mut s, 6).await, b"second");
            assert!(s.idle_socket().is_some());
            let (r, _) = s.write_all(b"ok".to_vec()).await;
            r.unwrap();
            while !client.is_finished() {
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(&client.join().unwrap(), b"ok");
        }
    });
}
