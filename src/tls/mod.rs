//! TLS: client-side protocols sit above the stream and below the dispatch.
//!
//! Built once, off the request path: `certs` reads PEM files into certified keys and
//! their names, `store` indexes them by SNI (crt, crt-list lines, filters, default,
//! strict-sni), `suites` maps OpenSSL cipher/curve/version names onto the provider,
//! `tickets` holds the session-ticket keys every shard shares, and `server` turns a
//! bind's settings into one `rustls::ServerConfig` per TLS context, per shard.
//!
//! On the shard, per connection: `accept` reads the ClientHello with rustls'
//! `Acceptor`, picks the context from SNI and signature schemes and runs the handshake
//! under a deadline, taking turns with the shard's other handshakes (`gate`, which
//! also holds `maxsslrate`); `shard` is a shard's current contexts per bind. `stream`
//! is the rent-model `TlsStream` over rustls that runs the handshake; after it,
//! `server_stream::ServerTls` is what the HTTP/1 and L4 paths read and write, over
//! ringlb's own record layer (`records`: no allocation per record). `info` is what a
//! connection remembers of its handshake (fetches, logs); `poll_tls` is a
//! `ServerTls`'s record layer as a tokio stream over the poll-io socket, for the h2
//! crate (a client that picked `h2` by ALPN, or sent the HTTP/2 preface). `client` is
//! the same shape towards servers (`TlsStream` throughout), and
//! `maybe` the stream to a server, plain or TLS.
//!
//! One crypto library is built: aws-lc-rs by default, *ring* with
//! `--no-default-features --features ring`.

pub mod accept;
pub mod certs;
pub mod client;
pub mod gate;
pub mod info;
pub mod maybe;
pub mod poll_tls;
pub mod records;
pub mod server;
pub mod server_stream;
pub mod shard;
pub mod show;
pub mod store;
pub mod stream;
pub mod suites;
pub mod tickets;

use std::sync::Arc;

pub use accept::{accept, accept_h2, AcceptError, Accepted, Acceptor, H2Choice};
pub use certs::{CertError, LoadedCert};
pub use client::{connect, ClientSettings, ServerVerify, SniSource, UpstreamTls};
pub use info::TlsInfo;
pub use maybe::{MaybeTls, ServerStream};
pub use poll_tls::PollTls;
pub use server::{BindTls, BindTlsSpec, CrtSource, Findings, ServerSet};
pub use server_stream::ServerTls;
pub use store::{CertStore, CrtListLine, SslConf, TlsVersion, Verify};
pub use stream::{ClientTls, TlsStream};
pub use tickets::TicketKeys;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "ringlb needs a crypto provider: build with feature `aws-lc-rs` (default) or `ring`"
);

/// The crypto provider every TLS object of the process uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let p = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let p = rustls::crypto::ring::default_provider();
    Arc::new(p)
}

/// Installs `provider()` as the process default, for code that builds rustls configs
/// without naming one (the Redis client). A second call is harmless.
pub fn install_default_provider() {
    let _ = Arc::unwrap_or_clone(provider()).install_default();
}
