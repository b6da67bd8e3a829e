//! Unit tests of `pattern`.

use super::*;
use crate::rules::sample::Data;

fn m(method: Method, icase: bool, pats: &[&str], input: &str) -> bool {
    let mut p = Patterns::new(method, icase);
    for x in pats {
        p.add(x).unwrap();
    }
    let smp = match method {
        Method::Ip => Smp::Ip(input.parse().unwrap()),
        Method::Int | Method::Bool => Smp::Int(input.parse().unwrap()),
        _ => Smp::Str(Data::Ref(input.as_bytes())),
    };
    p.find(&smp, &[]).is_some()
}

#[test]
fn methods() {
    use Method::*;
    let t = true;
    let f = false;
    let cases: &[(Method, bool, &[&str], &str, bool)] = &[
        (Str, f, &["abc"], "abc", t),
        (Str, f, &["abc"], "ABC", f),
        (Str, t, &["abc"], "ABC", t),
        (Beg, f, &["/api", "/x"], "/api/v1", t),
        (Beg, t, &["/API"], "/api/v1", t),
        (End, f, &[".png"], "/a.png", t),
        (Sub, f, &["v1"], "/api/v1/x", t),
        (Sub, f, &["v2"], "/api/v1/x", f),
        (Reg, f, &["^/api/v[0-9]+"], "/api/v1", t),
        (Reg, t, &["^/API"], "/api", t),
        (Len, f, &["3"], "abc", t),
        (Len, f, &["4:"], "abc", f),
        (Int, f, &["1024:65535"], "8080", t),
        (Int, f, &[":1023"], "8080", f),
        (Int, f, &["5"], "5", t),
        (Bool, f, &[], "1", t),
        (Bool, f, &[], "0", f),
        (Ip, f, &["10.0.0.0/8"], "10.1.2.3", t),
        (Ip, f, &["10.12"], "10.0.0.12", t),
        (Ip, f, &["127.1/8"], "127.9.9.9", t),
        (Ip, f, &["192.168.1"], "192.168.0.1", t),
        (Ip, f, &["192.168.0.0/255.255.0.0"], "192.168.9.9", t),
        (Ip, f, &["10.0.0.0/8"], "::ffff:10.1.2.3", t),
        (Ip, f, &["10.0.0.0/8"], "2002:a01:203::1", t),
        (Ip, f, &["::ffff:10.0.0.0/104"], "10.1.2.3", t),
        (Ip, f, &["2001:db8::/32"], "2001:db8::1", t),
        (Ip, f, &["2001:db8::/32"], "10.0.0.1", f),
        // manual 7.1.3's dir and dom examples, as HAProxy 2.6 runs them (the manual
        // says "png" and "dc-eu.example:80" do not / do match; 2.6 does the
        // opposite, checked on the binary).
        (Dir, f, &["/images/png"], "/images/png/logo/32x32.png", t),
        (Dir, f, &["logo/32x32.png"], "/images/png/logo/32x32.png", t),
        (Dir, f, &["png"], "/images/png/logo/32x32.png", t),
        (Dir, f, &["32x32"], "/images/png/logo/32x32.png", f),
        (
            Dom,
            f,
            &["dc-eu.example:80"],
            "http://www1.dc-eu.example.com:80/blah",
            f,
        ),
        (
            Dom,
            f,
            &[":www1:"],
            "http://www1.dc-eu.example.com:80/blah",
            t,
        ),
        (Dom, f, &["eu"], "http://www1.dc-eu.example.com:80/blah", f),
        (Dom, f, &["dc"], "http://www1.dc-eu.example.com:80/blah", f),
        (Dom, t, &["EXAMPLE.com"], "www.example.com", t),
        (Dom, f, &["ample.com"], "www.example.com", f),
    ];
    for (i, (method, icase, pats, input, want)) in cases.iter().enumerate() {
        assert_eq!(
            m(*method, *icase, pats, input),
            *want,
            "case {i}: {method:?} {pats:?} {input}"
        );
    }
}

#[test]
fn ranges_and_nets() {
    assert_eq!(
        Range::parse("10-20").unwrap(),
        Range {
            min: Some(10),
            max: Some(20)
        }
    );
    assert!(Range::parse("20:10").is_err());
    assert!(Range::parse("x").is_err());
    assert!(parse_net("10.0.0.0/33").is_err());
    assert!(parse_net("10.0.0.0/255.0.255.0").is_err());
    assert!(parse_net("nope").is_err());
    assert_eq!(parse_hex("48656c").unwrap(), b"Hel");
    assert!(parse_hex("486").is_err());
}

/// Fuzzing (`rules`): a `dir`/`dom` pattern of delimiters only indexed past the
/// sample.
#[test]
fn words_of_delimiters_only() {
    for (p, s) in [
        (&b"/"[..], &b"/x"[..]),
        (b"./", b"a.b"),
        (b"?", b""),
        (b"/", b"/"),
    ] {
        assert!(!match_word(s, p, false, b"/?.:"));
        assert!(!match_word(s, p, true, b"/?"));
    }
    assert!(match_word(b"/a/b", b"/b/", false, b"/?"));
    assert!(match_word(b"www.example.com", b".example.", true, b"/?.:"));
}

#[test]
fn maps_prefer_the_longest_prefix() {
    let entries = [
        crate::rules::map::Entry::new("/api", "api"),
        crate::rules::map::Entry::new("/api/v2", "v2"),
        crate::rules::map::Entry::new("/", "root"),
    ];
    let map = Map::load(&entries, "t", Method::Beg, MapOut::Str).unwrap();
    let v = map.lookup(&Smp::Str(Data::Ref(b"/api/v2/x")), &[]).unwrap();
    assert!(matches!(v, MapValue::Str(s) if &**s == b"v2"));
    let v = map.lookup(&Smp::Str(Data::Ref(b"/other")), &[]).unwrap();
    assert!(matches!(v, MapValue::Str(s) if &**s == b"root"));
}

#[test]
fn files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.map");
    std::fs::write(&p, "# comment\n\n  key1   value one  \nkey2\n #x y\n").unwrap();
    let f = PatternFile::read(p.to_str().unwrap(), true).unwrap();
    assert_eq!(
        f.entries,
        vec![
            ("key1".to_string(), "value one".to_string()),
            ("key2".into(), "".into()),
            ("#x".into(), "y".into())
        ]
    );
    let f = PatternFile::read(p.to_str().unwrap(), false).unwrap();
    assert_eq!(f.entries[0].0, "key1   value one  ");
    assert!(PatternFile::read("/nonexistent/x", false).is_err());
}
