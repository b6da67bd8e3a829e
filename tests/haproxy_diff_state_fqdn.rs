//! Differential test of the server-state file's `srv_fqdn`: HAProxy 2.6 and ringlb
//! read the same haproxy.cfg and the same file, with servers that follow names through
//! the same test DNS server (`common::dns`). The name comes back only where HAProxy's
//! `srv_state_srv_update` takes it: a server named in the config whose name `set
//! server fqdn` had changed (the HMAINT flag, 64); not without the flag, not for a
//! server with an IP in the config; the config's own name clears the flag; a bad name
//! leaves the whole line unapplied. Both then follow the same names and show the same
//! `show servers state`; ringlb writes a file it reads back the same way, at a start
//! and at a reload (HAProxy 2.6 leaves the flag out of its dump after `set server
//! fqdn`: see below).

use crate::common;

use std::time::Duration;

use common::dns::DnsServer;
use common::haproxy::{cli, ringlb_cfg};
use common::twins::{Side, Twins, DIFF_HEAD};
use common::wait_for;

const WAIT: Duration = Duration::from_secs(20);

fn body(dns: &DnsServer) -> String {
    format!(
        r#"
resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 200ms
    hold valid 200ms

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    load-server-state-from-file global
    server n1 one.test:8081 resolvers dns init-addr none resolve-prefer ipv4
    server n2 one.test:8082 resolvers dns init-addr none resolve-prefer ipv4
    server n3 three.test:8083 resolvers dns init-addr none resolve-prefer ipv4
    server n4 127.0.0.1:8084 resolvers dns resolve-prefer ipv4
    server n5 five.test:8085 resolvers dns init-addr none resolve-prefer ipv4 weight 7
"#,
        dns.addr()
    )
}

/// What a previous process wrote: n1 renamed by `set server fqdn` (flag 64); n2 with
/// another name but no flag; n3 with the flag and the config's own name; n4 (an IP in
/// the config) with the flag; n5 with a name HAProxy refuses (and weight 3, which is
/// then not applied either). (Each its own name where DNS gives one address: HAProxy
/// gives an address to one server of a backend only.)
const FILE: &str = "1\n\
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
3 app 1 n1 127.0.0.21 2 64 1 1 5 0 0 0 0 0 0 0 two.test 8081 - 0 0 - - 0\n\
3 app 2 n2 127.0.0.21 2 0 1 1 5 0 0 0 0 0 0 0 two.test 8082 - 0 0 - - 0\n\
3 app 3 n3 127.0.0.23 2 64 1 1 5 0 0 0 0 0 0 0 three.test 8083 - 0 0 - - 0\n\
3 app 4 n4 127.0.0.1 2 64 1 1 5 0 0 0 0 0 0 0 two.test 8084 - 0 0 - - 0\n\
3 app 5 n5 127.0.0.25 2 64 3 7 5 0 0 0 0 0 0 0 bad!name 8085 - 0 0 - - 0\n";

/// (name, srv_addr, srv_admin_state, srv_uweight, srv_fqdn, srv_port) of every server.
fn state(s: &Side) -> Vec<[String; 6]> {
    rows(&s.cli("show servers state app"))
}

fn rows(dump: &str) -> Vec<[String; 6]> {
    dump.lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            [3, 4, 6, 7, 17, 18].map(|i| w[i].to_string())
        })
        .collect()
}

fn resolved(rows: &[[String; 6]]) -> bool {
    rows.iter().all(|r| r[1] != "-")
}

#[test]
fn srv_fqdn_comes_back_where_haproxy_takes_it() {
    let dns = DnsServer::start();
    dns.set("one.test", &["127.0.0.21"]);
    dns.set("two.test", &["127.0.0.22"]);
    dns.set("three.test", &["127.0.0.23"]);
    dns.set("five.test", &["127.0.0.25"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    std::fs::write(&file, FILE).unwrap();
    let global = format!("    server-state-file {}\n", file.display());
    let t = Twins::start_with_global(&global, &body(&dns), &[("web", "PORT")], &[]);
    t.wait_both("every name resolved", WAIT, |s| resolved(&state(s)));
    let ours = t.same("show servers state after the file", state);
    let row = |n: &str| ours.iter().find(|r| r[0] == n).unwrap().clone();
    // n1 follows the name the file gave back, flagged; the others their config's.
    assert_eq!(
        row("n1")[1..],
        ["127.0.0.22", "64", "1", "two.test", "8081"]
    );
    assert_eq!(row("n2")[1..], ["127.0.0.21", "0", "1", "one.test", "8082"]);
    assert_eq!(
        row("n3")[1..],
        ["127.0.0.23", "0", "1", "three.test", "8083"]
    );
    assert_eq!(row("n4")[4], "-");
    assert_eq!(
        row("n5")[1..],
        ["127.0.0.25", "0", "7", "five.test", "8085"]
    );
    let refused =
        "server-state application failed for server 'app/n5', invalid srv_fqdn value 'bad!name'";
    let (hx, lb) = (t.haproxy_output(), t.ringlb_stderr());
    assert!(hx.contains(refused), "{hx}");
    assert!(lb.contains(refused), "{lb}");

    // A name set now: HAProxy 2.6 flags it (HMAINT, in `next_admin`) but dumps the
    // flags in force (`cur_admin`), without it until another state change, so its
    // next process would not give the name back; ringlb dumps the flag, what it is
    // for (HAProxy's later fix, 85298189b, says so).
    dns.set("four.test", &["127.0.0.24"]);
    t.same("set server fqdn", |s| {
        s.cli("set server app/n2 fqdn four.test")
    });
    t.wait_both("n2 follows four.test", WAIT, |s| {
        state(s)
            .iter()
            .any(|r| r[0] == "n2" && r[1] == "127.0.0.24")
    });
    let (mut theirs, ours) = t.both(state);
    for r in theirs.iter_mut().filter(|r| r[0] == "n2") {
        assert_eq!(r[2], "0", "HAProxy dumps the flag now: {r:?}");
        r[2] = "64".into();
    }
    assert_eq!(theirs, ours, "show servers state after set server fqdn");
    let row = |n: &str| ours.iter().find(|r| r[0] == n).unwrap().clone();
    assert_eq!(
        row("n2")[1..],
        ["127.0.0.24", "64", "1", "four.test", "8082"]
    );

    // ringlb's own dump, read back by a new ringlb: the same names again.
    let sock = dir.path().join("again.sock");
    std::fs::write(&file, t.lb.cli("show servers state")).unwrap();
    let head = DIFF_HEAD.replacen("global\n", &format!("global\n{global}"), 1);
    let cfg = common::haproxy::render(
        &format!("{head}\n{}", body(&dns)),
        &[("SOCK", sock.display().to_string()), ("PORT", "0".into())],
    );
    let again = ringlb_cfg(&cfg);
    wait_for("the new process resolved", WAIT, || {
        resolved(&rows(&cli(&sock, "show servers state app")))
    });
    assert_eq!(rows(&cli(&sock, "show servers state app")), ours);

    // And by the same process on a reload, after another change.
    dns.set("six.test", &["127.0.0.26"]);
    cli(&sock, "set server app/n3 fqdn six.test");
    std::fs::write(&file, cli(&sock, "show servers state")).unwrap();
    again.signal(libc::SIGUSR2);
    wait_for("the reload", WAIT, || again.stdout_count("reloaded") == 1);
    wait_for("n3 follows six.test after the reload", WAIT, || {
        let r = rows(&cli(&sock, "show servers state app"));
        r.iter().any(|r| r[0] == "n3" && r[1] == "127.0.0.26")
    });
    let r = rows(&cli(&sock, "show servers state app"));
    let n3 = r.iter().find(|r| r[0] == "n3").unwrap();
    assert_eq!(n3[1..], ["127.0.0.26", "64", "1", "six.test", "8083"]);
    assert_eq!(r.iter().find(|r| r[0] == "n2").unwrap()[4], "four.test");

    // A name set at run time stays through `add server` (a new config is made for
    // it, and the resolver starts again from it), and so does an operator's state
    // (the file had its say at the reload).
    dns.set("seven.test", &["127.0.0.27"]);
    cli(&sock, "set server app/n5 fqdn seven.test");
    let at = |ip: &str| {
        let r = rows(&cli(&sock, "show servers state app"));
        r.iter()
            .any(|r| r[0] == "n5" && r[1] == ip && r[4] == "seven.test")
    };
    wait_for("n5 follows seven.test", WAIT, || at("127.0.0.27"));
    assert_eq!(cli(&sock, "disable server app/n4"), "\n");
    assert_eq!(
        cli(&sock, "add server app/extra 127.0.0.1:9"),
        "New server registered.\n\n"
    );
    dns.set("seven.test", &["127.0.0.28"]);
    wait_for("n5 still follows seven.test", WAIT, || at("127.0.0.28"));
    let r = rows(&cli(&sock, "show servers state app"));
    assert_eq!(r.iter().find(|r| r[0] == "n4").unwrap()[2], "1", "{r:?}");
}
