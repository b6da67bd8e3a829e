//! `hatop` (Debian's, 0.8.2) on ringlb's stats socket (issue 22): it enters the
//! runtime API's interactive mode (`prompt`, `set timeout cli`), reads `show info`
//! and `show stat` every second and draws them with curses. It runs in a detached
//! tmux session; the test reads the screen (`tmux capture-pane`) and finds every
//! server with its status.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// A private tmux server (its own socket), killed with its sessions in `Drop`.
struct Tmux {
    sock: std::path::PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["-S", self.sock.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = common::haproxy::run_with_env("tmux", &all, &[], Duration::from_secs(20));
        assert!(out.status.success(), "tmux {args:?}: {}", out.stderr);
        out.stdout
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-S", self.sock.to_str().unwrap(), "kill-server"])
            .output();
    }
}

#[test]
fn hatop_shows_every_server_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let b = [
        TestBackend::start("up1"),
        TestBackend::start("m1"),
        TestBackend::start("d1"),
    ];
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} mode 600 level admin\n\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n\n\
         frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\n\
         backend app\n    default-server inter 200ms fall 1 rise 1\n    server up1 {} check\n    server dead 127.0.0.1:1 check\n    server m1 {} check\n    server d1 {} check\n",
        sock.display(),
        b[0].addr(),
        b[1].addr(),
        b[2].addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let lb = RingLb::launch(&["-f", &path], Some(file), |l| l.starts_with("ready"));
    let cli = |line: &str| common::haproxy::cli(&sock, line);
    // The dead server's first check takes it out of the rotation; traffic after that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli("show stat")
        .lines()
        .any(|l| l.starts_with("app,dead,") && l.contains(",DOWN,"))
    {
        assert!(Instant::now() < deadline, "app/dead never DOWN");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..5 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
    assert_eq!(cli("set server app/m1 state maint"), "\n");
    assert_eq!(cli("set server app/d1 state drain"), "\n");

    let tmux = Tmux {
        sock: dir.path().join("tmux.sock"),
    };
    let hatop = format!("hatop -s {}", sock.display());
    tmux.run(&["new-session", "-d", "-x", "200", "-y", "50", &hatop]);
    let want = [
        ("up1", "UP"),
        ("dead", "DOWN"),
        ("m1", "MAINT"),
        ("d1", "DRAIN"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = tmux.run(&["capture-pane", "-p", "-t", "0"]);
        let found = want.iter().all(|(name, status)| {
            screen.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(name) && w.get(2) == Some(status)
            })
        });
        if found && screen.contains("ringlb Version") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for (name, status) in want {
        assert!(
            screen.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&name) && w.get(2) == Some(&status)
            }),
            "{name} {status} not on hatop's screen:\n{screen}"
        );
    }
    assert!(
        screen.contains(">>> app") && screen.contains(">>> web"),
        "{screen}"
    );
    assert!(screen.contains("ringlb Version"), "{screen}");
    assert!(Path::new(&sock).exists());
    drop(tmux);
    // The interactive connection ended with hatop: the socket still answers.
    assert!(cli("show info").contains("Name: ringlb"));
}
