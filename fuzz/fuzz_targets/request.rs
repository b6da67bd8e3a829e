//! The request parser and framing: any bytes are parsed without a panic; a request
//! that is accepted is rewritten into a head that parses again to the same method,
//! target and framing (what goes upstream is unambiguous), and its body is delimited
//! by the framing state machine without reading past the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::config::Limits;
use ringlb::http::framing::BodyProgress;
use ringlb::http::head::{header_slots, parse_request, Parsed};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut slots = header_slots();
    let mut out = Vec::new();
    let Parsed::Done(req) = parse_request(data, &mut slots, &limits, None, &mut out) else {
        return;
    };
    assert!(req.head_len <= data.len());
    let (method, target, framing) = (req.method, req.target, req.framing);
    let mut again = header_slots();
    let mut out2 = Vec::new();
    match parse_request(&out, &mut again, &limits, None, &mut out2) {
        Parsed::Done(r) => {
            assert_eq!(r.method, method);
            assert_eq!(r.target, target);
            assert_eq!(r.framing, framing);
            assert_eq!(r.head_len, out.len());
            assert_eq!(out2, out, "rewriting is idempotent");
        }
        _ => panic!("the rewritten head does not parse: {:?}", String::from_utf8_lossy(&out)),
    }
    let mut rest = data[req.head_len..].to_vec();
    let mut body = BodyProgress::new(framing, limits.max_chunks);
    if let Ok(fed) = body.feed(&mut rest) {
        assert!(fed.forward <= fed.used && fed.used <= rest.len());
    }
});
