//! A pooled server connection that turned readable while idle never serves another
//! request (issue 13, part 2). The server here misbehaves after a complete response:
//! a body on a 204, on a 304 and on a HEAD answer, or bytes past its Content-Length,
//! each arriving a little later, when the connection already sits in the pool. Those
//! bytes form a whole response (`POISONED`), so a reuse would hand it to the next
//! client as its answer. Each misbehaviour runs 20 times, the next request coming on
//! the same client connection or from another client on a new one: every such request
//! must get its own answer (its `x-id`).

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// What a late writer sends once its response is complete: a whole response of its own.
const LATE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nx-id: POISONED\r\n\r\nPOISONED";
/// How long after its response the server writes the late bytes.
const LATE_AFTER: Duration = Duration::from_millis(20);
const ROUNDS: usize = 20;

/// The value of header `name` in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A server whose `/late-*` answers are followed, `LATE_AFTER` later, by `LATE`; it
/// counts the late writes done. `/id` answers with the request's `x-id`.
fn late_writer() -> (RawServer, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let server = RawServer::start(move |mut s: TcpStream| {
        while let Some(head) = common::raw::read_head(&mut s) {
            let head = String::from_utf8_lossy(&head).into_owned();
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let answer: Vec<u8> = match (method, path) {
                (_, "/late-204") => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                (_, "/late-304") => b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n".to_vec(),
                ("HEAD", "/late-head") => b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n".to_vec(),
                (_, "/late-extra") => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                (_, "/id") => {
                    let id = header(&head, "x-id").unwrap_or("");
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-id: {id}\r\n\r\n{id}",
                        id.len()
                    )
                    .into_bytes()
                }
                _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            };
            if s.write_all(&answer).is_err() {
                return;
            }
            if path.starts_with("/late-") {
                std::thread::sleep(LATE_AFTER);
                if s.write_all(LATE).is_err() {
                    return;
                }
                w.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (server, written)
}

/// One balancer shard (so every client shares its pool) in front of a late writer.
fn setup() -> (RingLb, RawServer, Arc<AtomicUsize>) {
    let (server, written) = late_writer();
    let lb = RingLb::start(&http_config_shards(
        1,
        &[server.addr()],
        "[pool]\nidle_timeout = \"30s\"\n",
    ));
    (lb, server, written)
}

/// The misbehaving request and the status its (correct) answer has.
fn trigger(case: &str) -> (String, &'static str, u16) {
    match case {
        "204" => (get_request("/late-204"), "GET", 204),
        "304" => (get_request("/late-304"), "GET", 304),
        "head" => (
            "HEAD /late-head HTTP/1.1\r\nHost: test.local\r\n\r\n".into(),
            "HEAD",
            200,
        ),
        "extra" => (get_request("/late-extra"), "GET", 200),
        other => panic!("no case {other}"),
    }
}

/// `ROUNDS` times: a client triggers the late bytes, they arrive at the pooled server
/// connection, then a request on the same client connection (`same_client`) or from
/// another client on a new connection gets its own answer.
fn no_poisoned_response(case: &str, same_client: bool) {
    let (lb, _server, written) = setup();
    let addr = lb.addr("web");
    let mut poisoned = Vec::new();
    for round in 0..ROUNDS {
        let (request, method, status) = trigger(case);
        let mut attacker = HttpClient::connect(addr);
        attacker.send(&request);
        let r = attacker.read_response_to(method);
        assert_eq!(r.status, status, "{case} round {round}: {r:?}");
        // The late bytes are on their way to the idle pooled connection.
        wait_for("the server's late bytes", Duration::from_secs(5), || {
            written.load(Ordering::SeqCst) > round
        });
        let id = format!("{case}-{round}");
        let r = if same_client {
            attacker.request(id_request(&id))
        } else {
            drop(attacker);
            HttpClient::connect(addr).request(id_request(&id))
        };
        if r.status != 200 || r.body_str() != id {
            poisoned.push((round, r.status, r.body_str()));
        }
    }
    assert!(
        poisoned.is_empty(),
        "{case} ({}): {} of {ROUNDS} requests got another response: {poisoned:?}",
        if same_client {
            "same client"
        } else {
            "another client"
        },
        poisoned.len()
    );
}

#[test]
fn late_body_on_204_poisons_nobody() {
    no_poisoned_response("204", false);
    no_poisoned_response("204", true);
}

#[test]
fn late_body_on_304_poisons_nobody() {
    no_poisoned_response("304", false);
    no_poisoned_response("304", true);
}

#[test]
fn late_body_on_head_answer_poisons_nobody() {
    no_poisoned_response("head", false);
    no_poisoned_response("head", true);
}

#[test]
fn bytes_past_content_length_poison_nobody() {
    no_poisoned_response("extra", false);
    no_poisoned_response("extra", true);
}

/// The other side of the check: a server that behaves keeps its pooled connection,
/// whichever client comes next.
#[test]
fn a_quiet_pooled_connection_is_still_reused() {
    let (lb, server, _) = setup();
    let addr = lb.addr("web");
    for i in 0..ROUNDS {
        let id = format!("quiet-{i}");
        let r = HttpClient::connect(addr).request(id_request(&id));
        assert_eq!((r.status, r.body_str()), (200, id));
    }
    assert_eq!(
        server.accepts(),
        1,
        "one server connection for every client"
    );
}
