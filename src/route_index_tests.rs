//! The index alone, on a parsed haproxy.cfg: which rules it keys, what a host finds,
//! and which rules of the rest `first` evaluates (only those before the hit, in
//! order).

use super::*;

fn index(rules: &str) -> RouteIndex {
    let mut text = String::from("defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n");
    text += rules;
    for i in 0..10 {
        text += &format!("    use_backend b if {{ hdr(host) -i f{i}.example }}\n");
    }
    text += "backend b\n    server s 127.0.0.1:1\n";
    let (cfg, _) = crate::config::from_haproxy_str(&text, &|_| None).expect("valid");
    let ix = cfg.frontends[0].route_index.clone().expect("an index");
    (*ix).clone()
}

#[test]
fn first_evaluates_only_the_rest_before_the_hit() {
    let ix = index(
        "    use_backend b if { path_beg /x/ }\n    \
         use_backend b if { hdr(host) -i a.example }\n    \
         use_backend b if { hdr_sub(host) y }\n",
    );
    assert_eq!(ix.rest, [0, 2].into());
    let src = &ix.sources()[0];
    assert_eq!(src.find(b"A.EXAMPLE"), Ok(Some(1)));
    assert_eq!(src.find(b"f9.example"), Ok(Some(12)));
    assert_eq!(src.find(b"nowhere"), Ok(None));
    assert_eq!(src.find(&[b'a'; 257]), Err(Undecided));

    let mut seen = Vec::new();
    // Hit rule 1: only rule 0 is evaluated; it fails, the hit wins.
    let got = ix.first(Some(1), |i| {
        seen.push(i);
        false
    });
    assert_eq!((got, &seen[..]), (Some(1), &[0][..]));
    // Hit rule 12: rules 0 and 2 are evaluated, the first that holds wins.
    seen.clear();
    let got = ix.first(Some(12), |i| {
        seen.push(i);
        i == 2
    });
    assert_eq!((got, &seen[..]), (Some(2), &[0, 2][..]));
    // No hit: the whole rest, in order.
    seen.clear();
    let got = ix.first(None, |i| {
        seen.push(i);
        false
    });
    assert_eq!((got, &seen[..]), (None, &[0, 2][..]));
}

#[test]
fn case_sensitive_and_folded_keys_are_apart() {
    let ix = index(
        "    use_backend b if { hdr(host) Up.example }\n    \
         use_backend b if { hdr(host) -i up.example }\n",
    );
    let src = &ix.sources()[0];
    // Exact key first (rule 0), the folded one for any other case (rule 1).
    assert_eq!(src.find(b"Up.example"), Ok(Some(0)));
    assert_eq!(src.find(b"UP.example"), Ok(Some(1)));
    // A long value with only case-sensitive keys is still decided.
    let ix = index("");
    assert!(ix.rest.is_empty());
}
