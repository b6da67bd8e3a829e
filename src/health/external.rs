//! `option external-check`: runs `external-check command` for a server with HAProxy's
//! contract (argv `<proxy_address> <proxy_port> <server_address> <server_port>`, a
//! clean environment of `PATH` and `HAPROXY_*` variables) and reads its exit status:
//! 0 passes (PROCOK), anything else fails (PROCERR, the status as the code), a program
//! still running at the check timeout is killed (PROCTOUT).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::probe::Outcome;
use crate::config::{ExternalCheck, Server};

/// What one server's check program gets.
pub struct Program {
    command: String,
    args: [String; 4],
    env: Vec<(&'static str, String)>,
}

impl Program {
    pub fn new(x: &ExternalCheck, backend: &str, s: &Server) -> Program {
        let (paddr, pport) = match x.bind {
            Some(b) => (b.ip().to_string(), b.port().to_string()),
            None => ("NOT_USED".to_string(), "NOT_USED".to_string()),
        };
        // In the environment, HAProxy gives an empty value for NOT_USED.
        let env_of = |v: &str| {
            if v == "NOT_USED" {
                String::new()
            } else {
                v.to_string()
            }
        };
        let saddr = s.addr.ip().to_string();
        let sport = s.addr.port().to_string();
        let env = vec![
            ("PATH", x.path.clone()),
            ("HAPROXY_PROXY_NAME", backend.to_string()),
            ("HAPROXY_PROXY_ID", x.proxy_id.to_string()),
            ("HAPROXY_PROXY_ADDR", env_of(&paddr)),
            ("HAPROXY_PROXY_PORT", env_of(&pport)),
            ("HAPROXY_SERVER_NAME", s.name.clone()),
            ("HAPROXY_SERVER_ID", s.id.to_string()),
            ("HAPROXY_SERVER_ADDR", saddr.clone()),
            ("HAPROXY_SERVER_PORT", sport.clone()),
            ("HAPROXY_SERVER_MAXCONN", s.maxconn.unwrap_or(0).to_string()),
            // The health thread does not see the shards' connection counts.
            ("HAPROXY_SERVER_CURCONN", "0".to_string()),
            (
                "HAPROXY_SERVER_SSL",
                if s.tls.is_some() { "1" } else { "0" }.to_string(),
            ),
            ("HAPROXY_SERVER_PROTO", x.proto.to_string()),
        ];
        Program {
            command: x.command.clone(),
            args: [paddr, pport, saddr, sport],
            env,
        }
    }

    /// Runs the program once, killing it at `timeout`.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let mut cmd = Command::new(&self.command);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            // HAProxy's child exits with -1 when exec fails.
            Err(_) => return outcome(false, "PROCERR", Some(255)),
        };
        let deadline = monoio::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return match status.code() {
                        Some(0) => outcome(true, "PROCOK", Some(0)),
                        Some(c) => outcome(false, "PROCERR", Some(c as u16)),
                        // Killed by a signal: HAProxy's code is -1.
                        None => outcome(false, "PROCERR", None),
                    };
                }
                Ok(None) if monoio::time::Instant::now() < deadline => {
                    monoio::time::sleep(Duration::from_millis(10)).await
                }
                _ => {
                    // As HAProxy: SIGTERM. One that ignores it gets SIGKILL a second
                    // later, so that the health thread never blocks on it.
                    let pid = child.id() as libc::pid_t;
                    // SAFETY: kill(2) on our own child, not reaped yet.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                    for _ in 0..100 {
                        if !matches!(child.try_wait(), Ok(None)) {
                            return outcome(false, "PROCTOUT", Some(0));
                        }
                        monoio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return outcome(false, "PROCTOUT", Some(0));
                }
            }
        }
    }
}

fn outcome(passed: bool, status: &'static str, code: Option<u16>) -> Outcome {
    let desc = match status {
        "PROCOK" => "External check passed",
        "PROCTOUT" => "External check timeout",
        _ => "External check error",
    };
    let reason = match code {
        Some(c) => format!("{desc}, code: {c}"),
        None => desc.to_string(),
    };
    Outcome {
        passed,
        status,
        code,
        reason,
        info: Some(String::new()),
        nolb: false,
    }
}
