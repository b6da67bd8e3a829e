//! Differential test of a `proto h2` server answering an HTTP/1.1 client before its
//! request ended: Debian's HAProxy 2.6 and ringlb run the same haproxy.cfg, each in
//! front of its own h2 server (tests/common/grpc.rs), and the same clients
//! (tests/common/early.rs) go to both: a chunked upload whose response streams back
//! while it goes on, and a large upload answered at once with a 413 (the server then
//! resets the stream with NO_ERROR, or keeps it with its window shut). What each
//! client saw must be the same.

use crate::common;

use common::early::{refused_upload, streamed_upload};
use common::grpc::GrpcServer;
use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;

const CFG: &str = r#"global
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind "127.0.0.1:${H1}"
    default_backend be

backend be
    server s1 "${SRV}" proto h2
"#;

/// Far larger than the server's flow-control windows (64 KiB) and what the sockets
/// can buffer.
const BIG: usize = 32 << 20;

#[test]
fn a_proto_h2_server_answering_early_is_seen_by_http1_clients_as_from_haproxy() {
    let port = ReservedPort::new();
    let hx = GrpcServer::start(None);
    let lb_server = GrpcServer::start(None);
    let hx_text = render(
        CFG,
        &[
            ("H1", port.port().to_string()),
            ("SRV", hx.addr().to_string()),
        ],
    );
    let lb_text = render(
        CFG,
        &[("H1", "0".into()), ("SRV", lb_server.addr().to_string())],
    );
    let _haproxy = HaProxy::start(&hx_text, &[port.addr()], None);
    let ringlb = ringlb_cfg(&lb_text);
    let [a, b] = [port.addr(), ringlb.addrs("web")[0]].map(|addr| {
        (
            streamed_upload(addr),
            refused_upload(addr, "/refuse", BIG),
            refused_upload(addr, "/refuse-hold", BIG),
        )
    });
    eprintln!("haproxy: {a:#?}\nringlb: {b:#?}");
    assert!(
        a.0.early_first && a.1.before_end,
        "HAProxy answers early: {a:?}"
    );
    assert_eq!(a, b, "haproxy, then ringlb");
}
