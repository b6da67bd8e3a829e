//! `sess` variables on HTTP/2 against HAProxy 2.6 on the same haproxy.cfg: the streams
//! of one connection share their session's variables, as HAProxy's streams share
//! their session. A stream sees what the connection's `tcp-request session` rules set
//! (ringlb began each stream with none before), and a stream sees what an earlier
//! stream of the connection set. An h2 client sends two requests, one after the other,
//! on one connection (prior knowledge), to the real binary and Debian's HAProxy;
//! compared: the fields the response rules wrote from the variables.

use crate::common;

use common::grpc;
use common::twins::{Side, Srv, Twins};

const BODY: &str = "frontend fe
    bind 127.0.0.1:${P} proto h2
    tcp-request session set-var(sess.tag) str(hello)
    http-request set-var(sess.count) int(7) if { path /set }
    http-request set-var(txn.once) str(t) if { path /set }
    http-response set-header x-tag \"%[var(sess.tag)]\"
    http-response set-header x-count \"%[var(sess.count)]\"
    http-response set-header x-once \"%[var(txn.once)]\"
    default_backend be
backend be
    server app ${APP}
";

/// The `x-tag`, `x-count` and `x-once` fields of each response, requests sent one
/// after the other on one HTTP/2 connection.
fn fields(side: &Side, paths: &[&str]) -> Vec<Vec<String>> {
    let addr = side.addr("fe");
    grpc::run(async move {
        let mut conn = grpc::connect(addr, None).await;
        let mut all = Vec::new();
        for path in paths {
            std::future::poll_fn(|cx| conn.poll_ready(cx))
                .await
                .expect("ready");
            let req = http::Request::get(format!("http://{addr}{path}"))
                .body(())
                .unwrap();
            let (res, _) = conn.send_request(req, true).expect("send request");
            let res = res.await.expect("response");
            let (parts, mut body) = res.into_parts();
            grpc::read_body(&mut body).await;
            all.push(
                ["x-tag", "x-count", "x-once"]
                    .iter()
                    .map(|n| {
                        let v = parts.headers.get(*n).map(|v| v.to_str().unwrap());
                        format!("{n}: {}", v.unwrap_or("(none)"))
                    })
                    .collect(),
            );
        }
        all
    })
}

#[test]
fn http2_streams_share_their_sessions_variables_as_in_haproxy() {
    let t = Twins::start(BODY, &[("fe", "P")], &[("APP", Srv::Up("app"))]);
    let seen = t.same("/set then / on one HTTP/2 connection", |s| {
        fields(s, &["/set", "/"])
    });
    assert_eq!(
        seen,
        [
            ["x-tag: hello", "x-count: 7", "x-once: t"],
            ["x-tag: hello", "x-count: 7", "x-once: "],
        ]
    );
    // A new connection starts a new session: what the other one set is not there.
    let seen = t.same("/ on a new HTTP/2 connection", |s| fields(s, &["/"]));
    assert_eq!(seen, [["x-tag: hello", "x-count: ", "x-once: "]]);
}
