//! `RedisServer`: a real `redis-server` (Debian's package) on a free loopback port,
//! without persistence (`--save '' --appendonly no`), killed by PID on drop; and a
//! minimal RESP client so that tests can look at what ringlb wrote.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tcp::free_port;

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
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
    /// Starts on a free port and waits until it answers (another test's server that
    /// won a race for the port does not count: the answer names our process).
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            if let Some(r) = Self::try_start(free_port()) {
                return r;
            }
        }
        panic!("redis-server did not start on a free port");
    }

    /// Starts on `port` (to bring a stopped server back on the same address).
    pub fn start_on(port: u16) -> RedisServer {
        Self::try_start(port).unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
    }

    fn try_start(port: u16) -> Option<RedisServer> {
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
        let mut r = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = format!("process_id:{pid}\r\n");
        loop {
            if let Ok(Reply::Bulk(Some(info))) = r.try_cmd(&["INFO", "server"]) {
                if info.contains(&ours) {
                    return Some(r);
                }
            }
            let exited = r
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() >= deadline {
                r.stop();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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

    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    pub fn try_cmd(&self, args: &[&str]) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
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
