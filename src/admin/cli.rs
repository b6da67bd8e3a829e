//! HAProxy's runtime API on the stats socket: a line of `;`-separated commands, each
//! answered in HAProxy's words followed by an empty line. Without `prompt` the
//! connection closes after the line (`echo "show stat" | socat stdio
//! unix-connect:PATH`); `prompt` makes it interactive (HAProxy's `> ` prompt, `quit`,
//! `set timeout cli`), as `hatop` uses it. A line ending with `<<` gives its last
//! command a payload: the lines that follow, up to an empty line (`set ssl cert NAME
//! <<` and a PEM file).
//!
//! Commands live in one registry (`COMMANDS`): the words that name a command, its
//! usage and help line, and its handler; a new command is one more entry.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use super::servers::{self, with_server};
use super::{csv, Core};
use crate::control::ToShard;

/// A runtime API command: the words naming it, its usage and help (as `help` lists
/// them), and its handler, given the words after its name.
struct Command {
    words: &'static [&'static str],
    usage: &'static str,
    help: &'static str,
    run: fn(&Core, &[&str]) -> String,
}

/// Every command, in `help`'s (alphabetical) order.
const COMMANDS: &[Command] = &[
    Command {
        words: &["abort", "ssl", "cert"],
        usage: "abort ssl cert <certfile>",
        help: "abort a transaction for a certificate file",
        run: |core, w| match w.first() {
            Some(name) => super::ssl::abort(core, name),
            None => "'abort ssl cert' expects a filename\n".into(),
        },
    },
    Command {
        words: &["clear", "counters"],
        usage: "clear counters [all]",
        help: "clear max statistics counters (or all counters)",
        run: |core, w| {
            let all = w.first() == Some(&"all");
            core.apply_everywhere(|| ToShard::ClearCounters { all })
                .err()
                .unwrap_or_default()
        },
    },
    Command {
        words: &["add", "acl"],
        usage: "add acl <acl> <pattern>",
        help: "add an acl entry",
        run: |core, w| super::maps::add(core, w, None, false),
    },
    Command {
        words: &["add", "map"],
        usage: "add map <map> <key> <val>",
        help: "add a map entry (payload supported instead of key/val)",
        run: |core, w| super::maps::add(core, w, None, true),
    },
    Command {
        words: &["add", "server"],
        usage: "add server <bk>/<srv>",
        help: "create a new server",
        run: |core, w| core.add_server(w, false),
    },
    Command {
        words: &["clear", "acl"],
        usage: "clear acl <acl>",
        help: "clear the contents of this acl",
        run: |core, w| super::maps::clear(core, w, false),
    },
    Command {
        words: &["clear", "map"],
        usage: "clear map <map>",
        help: "clear the contents of this map",
        run: |core, w| super::maps::clear(core, w, true),
    },
    Command {
        words: &["clear", "table"],
        usage: "clear table <table> [<filter>]*",
        help: "remove an entry from a table (filter: data/key)",
        run: super::tables::clear_table,
    },
    Command {
        words: &["commit", "ssl", "cert"],
        usage: "commit ssl cert <certfile>",
        help: "commit a certificate file",
        run: |core, w| match w.first() {
            Some(name) => super::ssl::commit(core, name),
            None => "'commit ssl cert expects a filename\n".into(),
        },
    },
    Command {
        words: &["disable", "agent"],
        usage: "disable agent <bk>/<srv>",
        help: "disable agent checks",
        // `agent-check` is refused at load: no server has an agent to stop.
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |_, _| String::new()),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["enable", "agent"],
        usage: "enable agent <bk>/<srv>",
        help: "enable agent checks",
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |_, _| {
                "Agent was not configured on this server, cannot enable.\n".into()
            }),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["disable", "health"],
        usage: "disable health <bk>/<srv>",
        help: "disable health checks",
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |b, s| servers::set_checks(core, b, s, false)),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["enable", "health"],
        usage: "enable health <bk>/<srv>",
        help: "enable health checks",
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |b, s| servers::set_checks(core, b, s, true)),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["disable", "server"],
        usage: "disable server (DEPRECATED)",
        help: "disable a server for maintenance (use 'set server' instead)",
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |b, s| servers::set_state(core, b, s, "maint")),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["enable", "server"],
        usage: "enable server  (DEPRECATED)",
        help: "enable a disabled server (use 'set server' instead)",
        run: |core, w| match w.first() {
            Some(spec) => with_server(core, spec, |b, s| servers::set_state(core, b, s, "ready")),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["del", "acl"],
        usage: "del acl <acl> [<key>|#<ref>]",
        help: "delete acl entries matching <key>",
        run: |core, w| super::maps::del(core, w, false),
    },
    Command {
        words: &["del", "map"],
        usage: "del map <map> [<key>|#<ref>]",
        help: "delete map entries matching <key>",
        run: |core, w| super::maps::del(core, w, true),
    },
    Command {
        words: &["del", "server"],
        usage: "del server <bk>/<srv>",
        help: "remove a dynamically added server",
        run: |core, w| core.del_server(&w[..w.len().min(1)], false),
    },
    Command {
        words: &["get", "acl"],
        usage: "get acl <acl> <value>",
        help: "report the patterns matching a sample for an ACL",
        run: |core, w| super::maps::get(core, w, false),
    },
    Command {
        words: &["get", "map"],
        usage: "get map <acl> <value>",
        help: "report the keys and values matching a sample for a map",
        run: |core, w| super::maps::get(core, w, true),
    },
    Command {
        words: &["get", "weight"],
        usage: "get weight <bk>/<srv>",
        help: "report a server's current weight",
        run: |core, w| match w.first() {
            Some(spec) => servers::get_weight(core, spec),
            None => "Require 'backend/server'.\n".into(),
        },
    },
    Command {
        words: &["help"],
        usage: "help [<command>]",
        help: "list matching or all commands",
        run: |_, w| help(w),
    },
    Command {
        words: &["prompt"],
        usage: "prompt",
        help: "toggle interactive mode with prompt",
        run: |_, _| String::new(),
    },
    Command {
        words: &["quit"],
        usage: "quit",
        help: "disconnect",
        run: |_, _| String::new(),
    },
    Command {
        words: &["set", "map"],
        usage: "set map <map> [<key>|#<ref>] <value>",
        help: "modify a map entry",
        run: super::maps::set,
    },
    Command {
        words: &["set", "maxconn", "server"],
        usage: "set maxconn server <bk>/<srv>",
        help: "change a server's maxconn setting",
        run: |core, w| match w {
            [spec, value, ..] => {
                with_server(core, spec, |b, s| servers::set_maxconn(core, b, s, value))
            }
            _ => "Require 'backend/server' and 'maxconn'.\n".into(),
        },
    },
    Command {
        words: &["set", "server"],
        usage: "set server <bk>/<srv> [opts]",
        help: "change a server's state, weight or address",
        run: set_server,
    },
    Command {
        words: &["set", "ssl", "cert"],
        usage: "set ssl cert <certfile> <payload>",
        help: "replace a certificate file (transaction)",
        // With its payload, the command is run by `run_with_payload`.
        run: |_, _| "'set ssl cert expects a filename and a certificate as a payload\n".into(),
    },
    Command {
        words: &["set", "table"],
        usage: "set table <table> key <k> [data.* <v>]*",
        help: "update or create a table entry's data",
        run: super::tables::set_table,
    },
    Command {
        words: &["set", "timeout", "cli"],
        usage: "set timeout [cli] <delay>",
        help: "change a timeout setting",
        run: |_, _| String::new(),
    },
    Command {
        words: &["set", "weight"],
        usage: "set weight <bk>/<srv>  (DEPRECATED)",
        help: "change a server's weight (use 'set server' instead)",
        run: |core, w| match w {
            [spec, weight, ..] => {
                with_server(core, spec, |b, s| servers::set_weight(core, b, s, weight))
            }
            [_] => "Require <weight> or <weight%>.\n".into(),
            _ => "Require 'backend/server' and 'weight' or 'weight%'.\n".into(),
        },
    },
    Command {
        words: &["show", "acl"],
        usage: "show acl <acl>]",
        help: "report available acls or dump an acl's contents",
        run: |core, w| super::maps::show(core, w, false),
    },
    Command {
        words: &["show", "backend"],
        usage: "show backend",
        help: "list backends in the current running config",
        run: |core, _| {
            let mut out = String::from("# name\n");
            for b in &core.cfg().backends {
                let _ = writeln!(out, "{}", b.name);
            }
            out
        },
    },
    Command {
        words: &["show", "env"],
        usage: "show env [var]",
        help: "dump environment variables known to the process",
        run: |_, w| match w.first() {
            Some(name) => match std::env::var(name) {
                Ok(v) => format!("{name}={v}\n"),
                Err(_) => "Variable not found\n".into(),
            },
            None => std::env::vars().fold(String::new(), |mut out, (k, v)| {
                let _ = writeln!(out, "{k}={v}");
                out
            }),
        },
    },
    Command {
        words: &["show", "errors"],
        usage: "show errors [<px>] [request|response]",
        help: "report last request and/or response errors for each proxy",
        run: super::sessions::show_errors,
    },
    Command {
        words: &["show", "frontend"],
        usage: "show frontend",
        help: "list frontends in the current running config",
        run: |core, _| {
            let mut out = String::from("# name\n");
            for f in &core.cfg().frontends {
                let _ = writeln!(out, "{}", f.name);
            }
            out
        },
    },
    Command {
        words: &["show", "info"],
        usage: "show info [desc|json|typed|float]*",
        help: "report information about the running process",
        run: super::info::show_info,
    },
    Command {
        words: &["show", "map"],
        usage: "show map [<map>]",
        help: "report available maps or dump a map's contents",
        run: |core, w| super::maps::show(core, w, true),
    },
    Command {
        words: &["show", "resolvers"],
        usage: "show resolvers [id]",
        help: "dumps counters from all resolvers section and associated name servers",
        run: super::dns::show_resolvers,
    },
    Command {
        words: &["show", "schema", "json"],
        usage: "show schema json",
        help: "report schema used for stats",
        run: |_, _| super::fields::schema(),
    },
    Command {
        words: &["show", "servers", "conn"],
        usage: "show servers conn [<backend>]",
        help: "dump server connections status (all or for a single backend)",
        run: |core, w| servers::show_servers_conn(core, w.first().copied()),
    },
    Command {
        words: &["show", "servers", "state"],
        usage: "show servers state [<backend>]",
        help: "dump volatile server information (all or for a single backend)",
        run: |core, w| servers::show_servers_state(core, w.first().copied()),
    },
    Command {
        words: &["show", "sess"],
        usage: "show sess [id]",
        help: "report the list of current sessions or dump this exact session",
        run: super::sessions::show_sess,
    },
    Command {
        words: &["show", "ssl", "cert"],
        usage: "show ssl cert [<certfile>]",
        help: "display the SSL certificates used in memory, or the details of a file",
        run: |core, w| super::ssl::show(core, w.first().copied()),
    },
    Command {
        words: &["show", "stat"],
        usage: "show stat [desc|json|no-maint|typed|up]*",
        help: "report counters for each proxy and server",
        run: csv::show_stat,
    },
    Command {
        words: &["show", "table"],
        usage: "show table <table> [<filter>]*",
        help: "report table usage stats or dump this table's contents (filter: data/key)",
        run: super::tables::show_table,
    },
    Command {
        words: &["show", "version"],
        usage: "show version",
        help: "show version of the current process",
        run: |_, _| format!("{}\n", super::info::VERSION),
    },
];

/// A runtime API client's stream: a unix socket or a TCP connection (`stats socket
/// ADDR:PORT`).
trait CliStream: Read + Write + Send + 'static {
    fn read_timeout(&self, d: Duration);
    fn write_timeout(&self, d: Duration);
}

impl CliStream for UnixStream {
    fn read_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
    }
    fn write_timeout(&self, d: Duration) {
        let _ = self.set_write_timeout(Some(d));
    }
}

impl CliStream for TcpStream {
    fn read_timeout(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
    }
    fn write_timeout(&self, d: Duration) {
        let _ = self.set_write_timeout(Some(d));
    }
}

pub fn serve(core: Arc<Core>, listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        spawn(&core, conn);
    }
}

/// The same runtime API on a TCP `stats socket`.
pub fn serve_tcp(core: Arc<Core>, listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        spawn(&core, conn);
    }
}

fn spawn<C: CliStream>(core: &Arc<Core>, conn: C) {
    let core = core.clone();
    let _ = std::thread::Builder::new()
        .name("ringlb-cli-conn".into())
        .spawn(move || handle(&core, conn));
}

/// The longest line a client may send.
const MAX_LINE: usize = 64 * 1024;

fn handle<C: CliStream>(core: &Core, mut conn: C) {
    let mut timeout = Duration::from_secs(10);
    conn.read_timeout(timeout);
    conn.write_timeout(Duration::from_secs(10));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut interactive = false;
    loop {
        // The next whole line.
        let line = loop {
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                break Some(line);
            }
            if buf.len() >= MAX_LINE {
                break None;
            }
            match conn.read(&mut chunk) {
                // A last line without its newline still counts, as with HAProxy.
                Ok(0) | Err(_) if !buf.is_empty() && !interactive => {
                    break Some(std::mem::take(&mut buf))
                }
                Ok(0) | Err(_) => break None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(line) = line else { return };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        // `<<`: the payload runs to the first empty line (or the end of input).
        let (text, payload) = match text.strip_suffix("<<") {
            Some(cmds) => (cmds, Some(read_payload(&mut conn, &mut buf, &mut chunk))),
            None => (text, None),
        };
        let mut out = String::new();
        let mut quit = false;
        let cmds: Vec<&str> = text.split(';').collect();
        for (i, cmd) in cmds.iter().enumerate() {
            let given = payload.as_deref().filter(|_| i + 1 == cmds.len());
            let words: Vec<&str> = cmd.split_whitespace().collect();
            match words.as_slice() {
                [] => continue,
                ["prompt", ..] => interactive = !interactive,
                ["quit", ..] => {
                    quit = true;
                    break;
                }
                ["set", "timeout", "cli", t, ..] => match crate::config::haproxy::parse_time(t) {
                    Ok(d) if !d.is_zero() => {
                        timeout = d;
                        conn.read_timeout(timeout);
                    }
                    _ => out.push_str("'set timeout cli' expects an integer value (in seconds).\n"),
                },
                _ => out.push_str(&run_with_payload(core, &words, given)),
            }
            out.push('\n');
        }
        if quit {
            let _ = conn.write_all(out.as_bytes());
            return;
        }
        if interactive {
            out.push_str("> ");
        }
        if conn.write_all(out.as_bytes()).is_err() || !interactive {
            return;
        }
    }
}

/// The largest payload a `<<` line may announce.
const MAX_PAYLOAD: usize = 1 << 20;

/// Reads a `<<` payload: the lines up to an empty one (taken out of `buf`, the empty
/// line too), or what came before the end of input.
fn read_payload<C: CliStream>(conn: &mut C, buf: &mut Vec<u8>, chunk: &mut [u8]) -> String {
    let done = |b: &[u8]| b.first() == Some(&b'\n') || b.windows(2).any(|w| w == b"\n\n");
    while !done(buf) && buf.len() < MAX_PAYLOAD {
        match conn.read(chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (stop, skip) = if buf.first() == Some(&b'\n') {
        (0, 1)
    } else {
        buf.windows(2)
            .position(|w| w == b"\n\n")
            .map_or((buf.len(), 0), |i| (i + 1, 1))
    };
    let text = String::from_utf8_lossy(&buf[..stop]).into_owned();
    buf.drain(..stop + skip);
    text
}

/// Runs one command with the payload its line announced with `<<`.
pub fn run_with_payload(core: &Core, w: &[&str], payload: Option<&str>) -> String {
    match (w, payload) {
        (["add", "map", rest @ ..], Some(p)) => super::maps::add(core, rest, Some(p), true),
        (["add", "acl", rest @ ..], Some(p)) => super::maps::add(core, rest, Some(p), false),
        (["set", "ssl", "cert", name, ..], Some(p)) if !p.trim().is_empty() => {
            super::ssl::set(core, name, p)
        }
        _ => run(core, w),
    }
}

/// Runs one command; the answer (possibly empty) without the closing blank line.
pub fn run(core: &Core, w: &[&str]) -> String {
    let found = COMMANDS
        .iter()
        .filter(|c| w.len() >= c.words.len() && w[..c.words.len()] == *c.words)
        .max_by_key(|c| c.words.len());
    match found {
        Some(c) => (c.run)(core, &w[c.words.len()..]),
        None => format!(
            "Unknown command, but maybe one of the following ones is a better match:\n{}",
            help(&[])
        ),
    }
}

/// `help [<words>]`: the commands whose usage starts with the words given (all
/// without any), as HAProxy lists them.
fn help(w: &[&str]) -> String {
    let mut out = String::from("The following commands are valid at this level:\n");
    let topic = w.join(" ");
    for c in COMMANDS {
        if !topic.is_empty() && !c.usage.starts_with(&topic) {
            continue;
        }
        let _ = writeln!(out, "  {:<40}: {}", c.usage, c.help);
    }
    out
}

/// `set server <bk>/<srv> state|weight ...`.
fn set_server(core: &Core, w: &[&str]) -> String {
    match w {
        [spec, "state", state, ..] => {
            with_server(core, spec, |b, s| servers::set_state(core, b, s, state))
        }
        [_, "state"] => "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into(),
        [spec, "weight", weight, ..] => {
            with_server(core, spec, |b, s| servers::set_weight(core, b, s, weight))
        }
        [_, "weight"] => "Require <weight>.\n".into(),
        [spec, "addr", rest @ ..] => {
            with_server(core, spec, |b, s| super::dns::set_addr(core, b, s, rest, false))
        }
        [spec, "health", word, ..] => {
            with_server(core, spec, |b, s| servers::set_health(core, b, s, word))
        }
        [_, "health"] => {
            "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n".into()
        }
        [spec, "agent" | "agent-send" | "agent-addr" | "agent-port", ..] => {
            with_server(core, spec, |_, _| {
                "agent checks are not enabled on this server.\n".into()
            })
        }
        [spec, "fqdn", rest @ ..] => {
            with_server(core, spec, |b, s| super::dns::set_fqdn(core, b, s, rest, false))
        }
        [_, other, ..] => format!(
            "'set server <srv>' only supports 'state', 'weight', 'health', 'addr' and 'fqdn' in ringlb (got '{other}').\n"
        ),
        _ => "Require 'backend/server'.\n".into(),
    }
}
