//! `RedisServer`: a real `redis-server` (Debian's package) on a reserved loopback port,
//! without persistence (`--save '' --appendonly no`), killed by PID on drop; and a
//! minimal RESP client so that tests can look at what ringlb wrote.
//!
//! redis-server cannot bind port 0 and say what it got (`--port 0` turns TCP off), and
//! ringlb's cluster link takes `redis://` URLs only (no unix socket). So the harness
//! holds a `ReservedPort` and redis-server binds it (with SO_REUSEADDR, which the
//! reservation allows): no other test can take the port, before, during or after the
//! server's life, and a stopped server comes back on the same address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tcp::ReservedPort;

pub struct RedisServer {
    child: Option<Child>,
    port: ReservedPort,
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl RedisServer {
    /// Starts on a reserved port and waits until it answers.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: ReservedPort::new(),
        };
        r.restart();
        r
    }

    /// Starts the server (again, after `stop`) on its port and waits until it answers
    /// `INFO` with its own process id.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server (apt-get install redis-server)");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = format!("process_id:{pid}\r\n");
        loop {
            if let Ok(Reply::Bulk(Some(info))) = self.try_cmd(&["INFO", "server"]) {
                if info.contains(&ours) {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() >= deadline {
                self.stop();
                panic!("redis-server did not start on port {port} (exited: {exited})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port.port()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    /// Kills the server (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Starts a ringlb node of a cluster on this server (haproxy.cfg `text`, the Redis
    /// URL from `RINGLB_REDIS_URL`); returns once it is ready.
    pub fn node(&self, text: &str) -> super::RingLb {
        let cfg = super::haproxy::write_cfg(text);
        let path = cfg.path().to_str().unwrap().to_string();
        super::RingLb::launch_env(
            &["-f", &path],
            Some(cfg),
            &[("RINGLB_REDIS_URL", self.url())],
            |l| l.starts_with("ready"),
        )
    }

    /// Waits until `n` nodes listen on the events channel (`ringlb:events`).
    pub fn wait_subscribed(&self, n: i64) {
        let listening = Reply::Array(vec![
            Reply::Bulk(Some("ringlb:events".into())),
            Reply::Int(n),
        ]);
        super::wait_for("the nodes subscribed", Duration::from_secs(10), || {
            self.cmd(&["PUBSUB", "NUMSUB", "ringlb:events"]) == listening
        });
    }

    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    pub fn try_cmd(&self, args: &[&str]) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(self.port.addr())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes())?;
        read_reply(&mut BufReader::new(s))
    }
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad RESP reply");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    Ok(match kind {
        "+" => Reply::Simple(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            let mut v = Vec::new();
            for _ in 0..n.max(0) {
                v.push(read_reply(r)?);
            }
            Reply::Array(v)
        }
        _ => return Err(bad()),
    })
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
