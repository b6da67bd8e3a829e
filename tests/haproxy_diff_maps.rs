//! Differential tests of the runtime API's map and ACL commands: HAProxy 2.6 and
//! ringlb on the same haproxy.cfg and the same map files answer `show map`, `show
//! acl`, `add map`, `set map`, `del map`, `clear map`, `add acl`, `del acl`, `get map`
//! and `get acl` alike, error lines included. Normalised: the `0x...` entry
//! references (pointers in HAProxy), the config file's temporary name, and
//! HAProxy's two internal `httpclient` references (ringlb has no HTTP client).
//! `entry_cnt` is compared before runtime changes only: HAProxy 2.6 does not count
//! runtime additions and wraps below zero after deletions.

use crate::common;

use common::twins::{Srv, Twins};

fn body(dir: &std::path::Path) -> String {
    format!(
        r#"
frontend web
    bind "127.0.0.1:${{PORT}}"
    acl blocked src -f {d}/ips.acl
    acl known hdr(host) -M -f {d}/hosts.map
    acl api path_beg /api /v2
    http-request deny if blocked
    http-request set-header X-B %[req.hdr(host),map({d}/hosts.map,none)]
    http-request set-header X-N %[req.hdr(x),map_str_int({d}/n.map,0)]
    default_backend app

backend app
    server s1 "${{S1}}"
"#,
        d = dir.display()
    )
}

fn normal(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("file 'httpclient'"))
        .map(|l| {
            let l = match l.find(" file '") {
                Some(i)
                    if l.contains(" line ") && !l[i..].starts_with(" file '/")
                        || l.contains(".cfg") =>
                {
                    let mut out = String::new();
                    let mut rest = l;
                    while let Some(i) = rest.find("at file '").or_else(|| rest.find(" file '")) {
                        let (head, tail) = rest.split_at(i);
                        let q = tail.find('\'').unwrap() + 1;
                        let end = tail[q..].find('\'').map_or(tail.len(), |e| q + e + 1);
                        let name = &tail[q..end - 1];
                        out.push_str(head);
                        if name.starts_with("/tmp/")
                            && !name.ends_with(".map")
                            && !name.ends_with(".acl")
                        {
                            out.push_str(&tail[..q]);
                            out.push_str("CFG'");
                        } else {
                            out.push_str(&tail[..end]);
                        }
                        rest = &tail[end..];
                    }
                    out.push_str(rest);
                    out
                }
                _ => l.to_string(),
            };
            match l.strip_prefix("0x") {
                Some(r) => format!("0xREF{}", &r[r.find(' ').unwrap_or(r.len())..]),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn twins() -> (Twins, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hosts.map"),
        "example.com be1\n# comment\nfoo.org be2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ips.acl"), "10.0.0.0/8\n192.168.1.1\n").unwrap();
    std::fs::write(dir.path().join("n.map"), "a 1\nb 2\n").unwrap();
    let t = Twins::start(
        &body(dir.path()),
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1"))],
    );
    (t, dir)
}

#[test]
fn listings_and_contents_match_haproxy() {
    let (t, dir) = twins();
    let d = dir.path().display();
    for cmd in [
        "show map".to_string(),
        "show acl".to_string(),
        "show map #2".to_string(),
        format!("show map {d}/hosts.map"),
        format!("show map {d}/n.map"),
        "show acl #0".to_string(),
        "show acl #4".to_string(),
        "show map #0".to_string(),
        "show map #99".to_string(),
        "show acl #99".to_string(),
        "show map hosts.map".to_string(),
    ] {
        t.same(&cmd, |s| normal(&s.cli(&cmd)));
    }
    // The comparison saw real listings (the normalisation keeps what matters).
    let maps = t.same("show map", |s| normal(&s.cli("show map")));
    assert!(
        maps.contains(&format!("2 ({d}/hosts.map) pattern loaded from file '{d}/hosts.map' used by map at file 'CFG' line 15, by map at file 'CFG' line 18. curr_ver=0 next_ver=0 entry_cnt=4")),
        "{maps}"
    );
    let acls = t.same("show acl", |s| normal(&s.cli("show acl")));
    assert!(
        acls.contains("1 () acl 'src' file 'CFG' line 14. curr_ver=0 next_ver=0 entry_cnt=0"),
        "{acls}"
    );
    assert!(
        acls.contains("4 () acl 'path_beg' file 'CFG' line 16. curr_ver=0 next_ver=0 entry_cnt=2"),
        "{acls}"
    );
}

#[test]
fn changes_and_errors_match_haproxy() {
    let (t, dir) = twins();
    let d = dir.path().display();
    let n = format!("{d}/n.map");
    let cmds = [
        format!("add map {n} c notint"),
        format!("add map {n} c 5"),
        format!("add map {n} c 8"),
        format!("show map {n}"),
        format!("set map {n} c 9"),
        format!("show map {n}"),
        format!("set map {n} zz 7"),
        format!("del map {n} c"),
        format!("del map {n} c"),
        format!("show map {n}"),
        "add map #0 bar.net be3".into(),
        "add map #0 10.1.0.0/16 x".into(),
        "show acl #0".into(),
        "add acl #2 x".into(),
        "add acl #0 1.2.3.4".into(),
        "add acl #0 notanip".into(),
        "del acl #0 1.2.3.4".into(),
        "del acl #0 1.2.3.4".into(),
        "show acl #0".into(),
        "add acl #1 172.16.0.1".into(),
        "show acl #1".into(),
        "add map #2 foo.org zz".into(),
        "show map #2".into(),
        "del map #2 foo.org".into(),
        "show map #2".into(),
        "get map #2 example.com".into(),
        "get map #2 EXAMPLE.com".into(),
        format!("get map {n} a"),
        "get acl #0 10.1.2.3".into(),
        "get acl #0 11.1.2.3".into(),
        "get acl #4 /api/x".into(),
        "get acl #4 /web".into(),
        format!("clear map {n}"),
        format!("show map {n}"),
        "clear acl #0".into(),
        "show acl #0".into(),
        "add map".into(),
        "add map #0".into(),
        "add map #0 k".into(),
        "add map /nope k v".into(),
        "set map #0".into(),
        "set map #0 k".into(),
        "del map".into(),
        "del map #0 x".into(),
        "del acl".into(),
        "del acl #9 x".into(),
        "clear map".into(),
        "clear map #7".into(),
        "clear acl".into(),
        "clear acl #9".into(),
        "add acl".into(),
        "add acl #9 x".into(),
        "get map".into(),
        "get map #0".into(),
        "get acl #9 x".into(),
        "get map #9 x".into(),
    ];
    for cmd in &cmds {
        t.same(cmd, |s| normal(&s.cli(cmd)));
    }
}
