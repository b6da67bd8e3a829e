//! Pipelined requests (all written before any response is read) are answered in order,
//! whatever their bodies, methods and upstream latencies.

use crate::common;

use common::*;

#[test]
fn pipelined_gets_answered_in_order() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let reqs: Vec<Vec<u8>> = (0..20).map(|i| id_request(&format!("p{i}"))).collect();
    let resps = c.pipeline(&reqs);
    for (i, r) in resps.iter().enumerate() {
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(r.body_str(), format!("p{i}"), "response {i} out of order");
    }
    assert_eq!(b.requests(), 20);
}

#[test]
fn slow_first_request_does_not_let_later_ones_overtake() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let reqs = vec![
        get_request("/sleep/300").into_bytes(),
        id_request("after-sleep"),
        get_request("/sleep/100").into_bytes(),
        id_request("last"),
    ];
    let resps = c.pipeline(&reqs);
    assert_eq!(resps[0].body_str(), "slept 300");
    assert_eq!(resps[1].body_str(), "after-sleep");
    assert_eq!(resps[2].body_str(), "slept 100");
    assert_eq!(resps[3].body_str(), "last");
}

#[test]
fn pipelined_mixed_methods_and_bodies() {
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let big = pattern(50_000);
    let reqs = vec![
        post_request("/echo", b"first body"),
        b"HEAD /bytes/777 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        post_chunked_request("/echo", &big, 999),
        get_request("/status/204").into_bytes(),
        get_request("/bytes-chunked/70000").into_bytes(),
        get_request("/status/304").into_bytes(),
        post_request("/sha256", b"abc"),
        id_request("tail"),
    ];
    let r = c.pipeline(&reqs);
    assert_eq!(r[0].body_str(), "first body");
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].header("content-length"), Some("777"));
    assert!(r[1].body.is_empty());
    assert!(r[2].body == big, "chunked echo differs");
    assert_eq!(r[3].status, 204);
    assert_eq!(r[4].body.len(), 70_000);
    assert_eq!(pattern_mismatch(&r[4].body, 0), None);
    assert_eq!(r[5].status, 304);
    assert_eq!(
        r[6].body_str(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(r[7].body_str(), "tail");
}

#[test]
fn pipeline_split_across_writes() {
    // One request's head arrives together with half of the next one.
    let b = TestBackend::start("a");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    let mut c = HttpClient::connect(lb.addr("web"));
    let mut all = id_request("one");
    all.extend_from_slice(&id_request("two"));
    let cut = all.len() - 10;
    c.send(&all[..cut]);
    let r1 = c.read_response();
    assert_eq!(r1.body_str(), "one");
    c.send(&all[cut..]);
    let r2 = c.read_response();
    assert_eq!(r2.body_str(), "two");
}
