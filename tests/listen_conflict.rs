//! Starting on a port another process already listens on fails with a clear error,
//! instead of silently joining that listener's SO_REUSEPORT group.

use crate::common;

use std::net::TcpListener;
use std::time::Duration;

use common::{check_config, run, TestBackend};

#[test]
fn port_taken_by_another_listener_is_a_clear_error() {
    let backend = TestBackend::start("b1");
    // Like another process's listener: SO_REUSEPORT set, so a reuseport bind alone
    // would succeed and steal half its connections.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other.set_reuse_port(true).unwrap();
    other
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    other.listen(16).unwrap();
    let taken: std::net::SocketAddr = other.local_addr().unwrap().as_socket().unwrap();
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_plain = plain.local_addr().unwrap();

    for addr in [taken, taken_plain] {
        let toml = format!(
            "[runtime]\nshards = 2\n[frontend.web]\nbind = \"{addr}\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
            backend.addr()
        );
        assert_eq!(
            check_config(&toml).code(),
            Some(0),
            "the config itself is valid"
        );
        let cfg = common::proc::write_config(&toml);
        let out = run(
            &["-f", cfg.path().to_str().unwrap()],
            Duration::from_secs(15),
        );
        assert_eq!(
            out.code(),
            Some(1),
            "stdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains("already in use") && out.stderr.contains(&addr.to_string()),
            "stderr should name the address and the cause: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("listening"), "{}", out.stdout);
    }
    drop(other);
}
