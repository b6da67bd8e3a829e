//! The upstream connection pool: idle connections are shared by client connections,
//! and a pooled connection that the server closed is not an error for the client.

use crate::common;

use std::time::Duration;

use common::*;

#[test]
fn pooled_connections_are_shared_across_client_connections() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    for i in 0..50 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(b.requests(), 50);
    assert!(
        b.accepts() <= 4,
        "50 sequential client connections used {} upstream connections (want <= 4)",
        b.accepts()
    );
}

#[test]
fn server_closed_idle_connection_is_not_an_error() {
    let b = TestBackend::start_with_idle_close("a", Duration::from_millis(100));
    let lb = RingLb::start(&http_config_shards(
        1,
        &[b.addr()],
        "[pool]\nidle_timeout = \"30s\"\n",
    ));
    let mut c = HttpClient::connect(lb.addr("web"));
    for i in 0..5 {
        let closes = b.idle_closes();
        let r = c.get("/");
        assert_eq!(r.status, 200, "GET {i}: {r:?}");
        assert_eq!(r.body_str(), "backend=a");
        // Let the backend close the (now idle) pooled connection, then go again.
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
    for i in 0..3 {
        let closes = b.idle_closes();
        let r = c.post("/echo", format!("post {i}").as_bytes());
        assert_eq!(r.status, 200, "POST {i}: {r:?}");
        assert_eq!(r.body_str(), format!("post {i}"));
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
}

#[test]
fn server_closed_idle_connection_on_fresh_client_connections() {
    let b = TestBackend::start_with_idle_close("a", Duration::from_millis(100));
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    for i in 0..5 {
        let closes = b.idle_closes();
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        wait_for(
            "the backend to close its idle connection",
            Duration::from_secs(5),
            || b.idle_closes() > closes,
        );
    }
}

/// Five `/id` requests on fresh client connections, each answered with its own id:
/// a pooled connection carrying a stale response would answer with the wrong body.
fn assert_pool_clean(lb: &RingLb, what: &str) {
    for i in 0..5 {
        let id = format!("{what}-{i}");
        let r = HttpClient::connect(lb.addr("web")).request(id_request(&id));
        assert_eq!(r.status, 200, "after {what}, request {i}: {r:?}");
        assert_eq!(
            r.body_str(),
            id,
            "after {what}, request {i} got another response's body"
        );
    }
}

#[test]
fn server_connection_close_is_not_pooled() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    for i in 0..10 {
        let r = c.get("/close-after");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body_str(), "backend=a");
        if r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            c = HttpClient::connect(lb.addr("web"));
        }
    }
    assert_eq!(
        b.accepts(),
        10,
        "each `connection: close` response needs a new upstream connection"
    );
    assert_pool_clean(&lb, "close-after");
}

#[test]
fn timed_out_upstream_connection_is_not_reused() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(
        1,
        &[b.addr()],
        "[timeout]\nserver = \"300ms\"\n",
    ));
    let r = http_get(lb.addr("web"), "/sleep/800");
    assert_eq!(r.status, 504, "{r:?}");
    // The late response is written (or refused) by now.
    wait_for(
        "the backend to finish the late response",
        Duration::from_secs(5),
        || b.in_flight() == 0,
    );
    assert_pool_clean(&lb, "504");
}

#[test]
fn client_abort_mid_response_does_not_poison_the_pool() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    {
        let mut c = HttpClient::connect(lb.addr("web"));
        c.send(get_request("/bytes/8388608"));
        let mut first = [0u8; 65536];
        std::io::Read::read_exact(c.stream(), &mut first).expect("the start of the response");
    } // dropped with most of the body unread
    wait_for(
        "the backend to finish or abort the abandoned response (the balancer neither read nor closed it)",
        Duration::from_secs(10),
        || b.in_flight() == 0,
    );
    assert_pool_clean(&lb, "client abort mid-response");
}

#[test]
fn client_abort_while_waiting_does_not_poison_the_pool() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(1, &[b.addr()], ""));
    {
        let mut c = HttpClient::connect(lb.addr("web"));
        c.send(get_request("/sleep/300"));
        wait_for(
            "the request to reach the backend",
            Duration::from_secs(5),
            || b.in_flight() == 1,
        );
    } // gone before the response
    wait_for(
        "the backend to finish the abandoned request",
        Duration::from_secs(5),
        || b.in_flight() == 0,
    );
    assert_pool_clean(&lb, "client abort while waiting");
}

/// A response that takes longer than `pool.idle_timeout` to deliver (a slow reader)
/// still leaves its connection in the pool: idleness counts from the end of the
/// response, not from its first byte.
#[test]
fn a_slowly_read_response_keeps_its_connection_pooled() {
    use std::io::{Read, Write};
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config_shards(
        1,
        &[b.addr()],
        "[pool]\nidle_timeout = \"1s\"\n",
    ));
    let len = 8 << 20;
    let mut s = std::net::TcpStream::connect(lb.addr("web")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /bytes/{len} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    common::raw::read_head(&mut s).expect("the response head");
    // Read the body over about 1.5 s: the proxy waits on this reader with the body
    // half sent.
    let start = std::time::Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    while got < len {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
        if start.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(b.accepts(), 1);
    let r = http_get(lb.addr("web"), "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        b.accepts(),
        1,
        "the connection that carried the slow response was not reused"
    );
}
