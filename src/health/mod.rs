//! The health thread: the one truth about whether a server is up. It runs active checks
//! (rise/fall, fast interval while a server changes state, down interval while it is
//! down), counts the passive failures shards report (a server's `Passive`), logs each flip
//! once the way HAProxy does, and broadcasts flips, and only flips, to every shard.

mod external;
mod probe;
mod protocols;
mod tcpcheck;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::config::{Config, HealthCheck};
use crate::control::{CheckView, HealthReport, HealthView, ShardLink, ToShard};

/// Syslog severities of server state changes, as HAProxy sends them.
use crate::control::statelog::{on_backup, say, subject, LOG_ALERT, LOG_EMERG, LOG_NOTICE};

/// How often the health thread drains shard reports and ends passive cool-downs.
const REPORT_TICK: Duration = Duration::from_millis(10);
/// The reason of a state the runtime API forced (`set server B/S health`), in
/// HAProxy's words.
const FROM_CLI: &str = "changed from CLI";
/// Without active checks, a server marked down by passive failures is tried again
/// after this long.
pub const PASSIVE_COOLDOWN: Duration = Duration::from_secs(2);

pub struct Health {
    stop: Sender<()>,
    /// The runtime API's `enable|disable health`.
    cmds: Sender<crate::control::HealthCmd>,
    /// DNS service discovery, when some server asks for it.
    resolver: Option<crate::resolver::Resolver>,
    /// Its nameservers' counters (`show resolvers`).
    pub dns: crate::resolver::DnsCounters,
    thread: JoinHandle<Option<(Receiver<HealthReport>, Schedules)>>,
    /// What the checks say, for `show stat` and the metrics.
    pub view: HealthView,
}

impl Health {
    /// Starts the thread. `reports` receives the shards' passive failure reports.
    /// `log`: the log thread, which hears of server state changes too.
    pub fn spawn(
        cfg: Arc<Config>,
        shards: Vec<ShardLink>,
        reports: Receiver<HealthReport>,
        log: Option<Sender<Vec<u8>>>,
    ) -> std::io::Result<Health> {
        Self::spawn_from(cfg, shards, reports, None, false, Schedules::default(), log)
    }

    /// Starts the thread; with `previous` (a reload), servers that existed before (same
    /// backend and server name) keep their state, and new ones start up.
    pub fn spawn_from(
        cfg: Arc<Config>,
        shards: Vec<ShardLink>,
        reports: Receiver<HealthReport>,
        previous: Option<(&Config, &HealthView)>,
        keep_paused: bool,
        schedules: Schedules,
        log: Option<Sender<Vec<u8>>>,
    ) -> std::io::Result<Health> {
        // The old view, locked once, and its backends by name (no quadratic search).
        let old = previous.map(|(c, v)| {
            let names = crate::config::by_name(&c.backends, |b| &b.name);
            (c, v.lock().ok(), names)
        });
        let carried = |b: &str, s: &str| -> Option<CheckView> {
            let (old_cfg, old_view, names) = old.as_ref()?;
            let bi = *names.get(b)?;
            let si = old_cfg.backends[bi]
                .servers
                .iter()
                .position(|x| x.name == s)?;
            old_view.as_ref()?.get(bi)?.get(si).cloned()
        };
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let (cmds, cmds_rx) = crossbeam_channel::unbounded();
        let now = Instant::now();
        let view: HealthView = Arc::new(Mutex::new(
            cfg.backends
                .iter()
                .map(|b| {
                    let (rise, fall) = b.health.as_ref().map_or((2, 3), |h| (h.rise, h.fall));
                    b.servers
                        .iter()
                        .map(|s| {
                            // The server-state file read by this load has the say
                            // over the old view (as HAProxy's new process).
                            let carried = if s.saved.is_some() {
                                None
                            } else {
                                carried(&b.name, &s.name)
                            };
                            if let Some(mut c) = carried {
                                // `disable health` lasts until a reload, not through
                                // an `add server`.
                                c.checked =
                                    b.health.is_some() && s.check && (c.checked || !keep_paused);
                                // What DNS gave stays (the resolver goes on from
                                // there); a fixed address is the new config's.
                                if s.dns.is_none() {
                                    c.addr = s.addr;
                                    c.no_addr = s.no_addr;
                                    c.dns_weight = None;
                                }
                                c.rise = rise;
                                c.fall = fall;
                                return c;
                            }
                            let saved = s.saved;
                            let since = Duration::from_secs(saved.map_or(0, |v| v.since));
                            CheckView {
                                // A dynamic server's checks wait for `enable health`.
                                checked: b.health.is_some() && s.check && !s.dynamic,
                                up: saved.is_none_or(|v| v.up),
                                nolb: false,
                                status: "",
                                code: None,
                                duration: None,
                                desc: String::new(),
                                info: String::new(),
                                chkfail: 0,
                                chkdown: 0,
                                last_change: now.checked_sub(since).unwrap_or(now),
                                downtime: Duration::ZERO,
                                down_since: saved.filter(|v| !v.up).map(|_| now),
                                // HAProxy starts a dynamic server STOPPED, health 0.
                                health: if s.dynamic {
                                    0
                                } else {
                                    saved.map_or(rise + fall - 1, |v| v.health)
                                },
                                rise,
                                fall,
                                backend: crate::control::BackendFlips::new(now),
                                addr: s.addr,
                                no_addr: s.no_addr,
                                dns_weight: None,
                                // The name the server-state file gave back.
                                fqdn: saved
                                    .filter(|v| v.fqdn_set)
                                    .and(s.dns.as_ref())
                                    .map(|d| d.fqdn.as_str().into()),
                            }
                        })
                        .collect()
                })
                .collect(),
        ));
        // The old view's lock goes now.
        drop(old);
        let mut schedules = schedules;
        let dns_schedules = std::mem::take(&mut schedules.dns);
        let shared = view.clone();
        let cfg_for_dns = cfg.clone();
        let dns_shards = shards.clone();
        let log_for_dns = log.clone();
        let thread = std::thread::Builder::new().name("ringlb-health".into()).spawn(move || {
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build();
            match rt {
                Ok(mut rt) => Some(rt.block_on(run(cfg, shards, reports, (stop_rx, cmds_rx), shared, schedules, log))),
                Err(e) => {
                    tracing::error!(error = %e, "health thread: cannot start its runtime; no health checks");
                    None
                }
            }
        })?;
        let dns = crate::resolver::DnsCounters::default();
        let resolver = crate::resolver::Resolver::spawn(
            cfg_for_dns,
            dns_shards,
            view.clone(),
            dns.clone(),
            log_for_dns,
            dns_schedules,
        )?;
        Ok(Health {
            stop,
            cmds,
            resolver,
            dns,
            thread,
            view,
        })
    }

    /// Where `enable|disable health` goes.
    pub fn commands(&self) -> Sender<crate::control::HealthCmd> {
        self.cmds.clone()
    }

    /// Where `set server ... fqdn` goes (`None`: no server asks DNS).
    pub fn dns_commands(&self) -> Option<Sender<crate::control::DnsCmd>> {
        self.resolver.as_ref().map(|r| r.commands())
    }

    /// Stops the thread; gives back the reports channel (for the next one, on reload)
    /// and where each server's checks stood (for the next one, on `add server`).
    pub fn stop(self) -> Option<(Receiver<HealthReport>, Schedules)> {
        let dns = self.resolver.map(|r| r.stop()).unwrap_or_default();
        let _ = self.stop.send(());
        let (reports, mut schedules) = self.thread.join().ok().flatten()?;
        schedules.dns = dns;
        Some((reports, schedules))
    }
}

struct ServerHealth {
    up: bool,
    /// Up, in NOLB (`disable-on-404`).
    nolb: bool,
    /// Consecutive check results against the current state.
    oks: u32,
    fails: u32,
    /// Each shard's current streak of passive failures.
    streaks: Vec<u32>,
    /// Marked down by passive failures with no active check to bring it back.
    cooldown_until: Option<Instant>,
    checked: bool,
    /// Passive failures asked for a check at `fastinter` (HAProxy's on-error).
    hurry: bool,
    /// `disable health`: no check runs, the state stays as it is.
    paused: bool,
    /// When its next check is due (`None`: it has no check loop); a check under way
    /// is due at its start (a thread stopped meanwhile never saw its result).
    next: Option<Instant>,
}

/// Where each server's checks stood when a health thread stopped, by backend and
/// server name. `add server` and `del server` replace the health thread (its server
/// numbering changes): the next one goes on from here, so that only the server
/// added or removed starts its checks, as HAProxy touches only that one. A reload
/// starts every schedule again (as HAProxy's new process does).
#[derive(Default)]
pub struct Schedules {
    checks: std::collections::HashMap<(String, String), Schedule>,
    /// The resolver thread's (replaced with this one).
    dns: crate::resolver::Schedules,
}

/// One server's place in its checks: its rise/fall progress, passive failure
/// streaks, cool-down and next check.
struct Schedule {
    oks: u32,
    fails: u32,
    streaks: Vec<u32>,
    cooldown_until: Option<Instant>,
    hurry: bool,
    next: Option<Instant>,
}

impl Schedules {
    /// Every server's schedule in `st`.
    fn of(st: &State) -> Schedules {
        let mut map = std::collections::HashMap::new();
        for (b, hs) in st.cfg.backends.iter().zip(&st.servers) {
            for (s, h) in b.servers.iter().zip(hs) {
                let k = Schedule {
                    oks: h.oks,
                    fails: h.fails,
                    streaks: h.streaks.clone(),
                    cooldown_until: h.cooldown_until,
                    hurry: h.hurry,
                    next: h.next,
                };
                map.insert((b.name.clone(), s.name.clone()), k);
            }
        }
        Schedules {
            checks: map,
            dns: Default::default(),
        }
    }

    /// Takes server `s` of backend `b`'s schedule, if it had one.
    fn take(&mut self, b: &str, s: &str) -> Option<Schedule> {
        self.checks.remove(&(b.to_string(), s.to_string()))
    }
}

struct State {
    cfg: Arc<Config>,
    /// The log thread, for server state changes (`None`: no log target).
    log: Option<Sender<Vec<u8>>>,
    servers: Vec<Vec<ServerHealth>>,
    shards: Vec<ShardLink>,
    view: HealthView,
}

impl State {
    fn flip(
        &mut self,
        backend: usize,
        server: usize,
        up: bool,
        reason: &str,
        took: Option<Duration>,
    ) {
        if let Ok(mut v) = self.view.lock() {
            let c = &mut v[backend][server];
            let now = Instant::now();
            c.up = up;
            c.nolb = false;
            c.last_change = now;
            if up {
                if let Some(since) = c.down_since.take() {
                    c.downtime += now.saturating_duration_since(since);
                }
                c.health = c.rise + c.fall - 1;
            } else {
                c.chkdown += 1;
                c.down_since = Some(now);
                c.health = 0;
            }
        }
        self.servers[backend][server].up = up;
        self.servers[backend][server].nolb = false;
        self.servers[backend][server].oks = 0;
        self.servers[backend][server].fails = 0;
        for tx in &self.shards {
            let _ = tx.send(ToShard::ServerUp {
                backend,
                server,
                up,
            });
        }
        let b = &self.cfg.backends[backend];
        let (active, backup) = self.online(backend);
        // The backend's own state: down once no server is left.
        if let Ok(mut v) = self.view.lock() {
            let now = Instant::now();
            let mut flips = v[backend].first().map(|c| c.backend);
            if let Some(f) = &mut flips {
                let down = active == 0 && backup == 0;
                if down && f.down_since.is_none() {
                    f.chkdown += 1;
                    f.down_since = Some(now);
                    f.last_change = now;
                } else if !down {
                    if let Some(since) = f.down_since.take() {
                        f.downtime += now.saturating_duration_since(since);
                        f.last_change = now;
                    }
                }
            }
            if let Some(f) = flips {
                for c in v[backend].iter_mut() {
                    c.backend = f;
                }
            }
        }
        let took = took
            .map(|d| format!(", check duration: {}ms", d.as_millis()))
            .unwrap_or_default();
        let (kind, name) = subject(b, server);
        let on_backup = on_backup(active, backup);
        // With `log-health-checks` the check's own line said why (HAProxy passes no
        // check to the state change's message then).
        let why = if reason == FROM_CLI {
            format!(", {FROM_CLI}")
        } else if b.log_health_checks {
            String::new()
        } else {
            format!(", reason: {reason}{took}")
        };
        if up {
            let msg = format!(
                "{kind} {name} is UP{why}. {active} active and {backup} backup servers online.{on_backup}"
            );
            self.syslog(backend, LOG_NOTICE, &msg);
        } else {
            let msg = format!(
                "{kind} {name} is DOWN{why}. {active} active and {backup} backup servers left.{on_backup}"
            );
            self.syslog(backend, LOG_ALERT, &msg);
            if active == 0 && backup == 0 {
                let msg = format!("backend {} has no server available!", b.name);
                self.syslog(backend, LOG_EMERG, &msg);
            }
        }
    }

    /// `option log-health-checks`: a check that changed the server's status or health
    /// counter, in HAProxy's words (`notice`).
    #[allow(clippy::too_many_arguments)]
    fn check_log(
        &self,
        backend: usize,
        server: usize,
        check: &HealthCheck,
        passed: bool,
        conditional: bool,
        reason: &str,
        took: Duration,
        health: u32,
    ) {
        let b = &self.cfg.backends[backend];
        let s = &b.servers[server];
        let (n, of, state) = if health >= check.rise {
            (health - check.rise + 1, check.fall, "UP")
        } else {
            (health, check.rise, "DOWN")
        };
        let msg = format!(
            "Health check for {}server {}/{} {}{}, reason: {reason}, check duration: {}ms, status: {n}/{of} {state}.",
            if s.backup { "backup " } else { "" },
            b.name,
            s.name,
            if conditional { "conditionally " } else { "" },
            if passed { "succeeded" } else { "failed" },
            took.as_millis(),
        );
        self.syslog(backend, LOG_NOTICE, &msg);
    }

    /// A server state message on stderr, and to the log target when the backend logs.
    fn syslog(&self, backend: usize, level: u8, msg: &str) {
        say(self.log.as_ref(), &self.cfg.backends[backend], level, msg);
    }

    /// A runtime API command, in force when its answer goes.
    fn command(&mut self, c: crate::control::HealthCmd) {
        let (backend, server, on, done) = match c {
            crate::control::HealthCmd::Checks {
                backend,
                server,
                on,
                done,
            } => (backend, server, on, done),
            crate::control::HealthCmd::Force {
                backend,
                server,
                health,
                done,
            } => {
                self.force(backend, server, health);
                let _ = done.send(());
                return;
            }
        };
        if let Some(h) = self
            .servers
            .get_mut(backend)
            .and_then(|b| b.get_mut(server))
            .filter(|h| h.checked)
        {
            h.paused = !on;
            if let Ok(mut v) = self.view.lock() {
                if let Some(c) = v.get_mut(backend).and_then(|b| b.get_mut(server)) {
                    // No check result shows while the checks are off (HAProxy's
                    // `no check`, or DOWN as it was).
                    c.checked = on;
                    if !on {
                        c.status = "";
                    }
                }
            }
        }
        let _ = done.send(());
    }

    /// `set server B/S health up|stopping|down`: the state the next checks confirm or
    /// undo, as HAProxy forces it.
    fn force(&mut self, backend: usize, server: usize, health: crate::control::Forced) {
        use crate::control::Forced;
        let Some(h) = self.servers.get(backend).and_then(|b| b.get(server)) else {
            return;
        };
        let (up, nolb) = (h.up, h.nolb);
        match health {
            Forced::Down if up => self.flip(backend, server, false, FROM_CLI, None),
            Forced::Up if !up => self.flip(backend, server, true, FROM_CLI, None),
            Forced::Up if nolb => self.set_nolb(backend, server, false, FROM_CLI, Duration::ZERO),
            Forced::Stopping if !up => {
                self.flip(backend, server, true, FROM_CLI, None);
                self.set_nolb(backend, server, true, FROM_CLI, Duration::ZERO);
            }
            Forced::Stopping if !nolb => {
                self.set_nolb(backend, server, true, FROM_CLI, Duration::ZERO)
            }
            _ => {}
        }
    }

    /// The backend's servers taking load-balanced traffic: (active, backup).
    fn online(&self, backend: usize) -> (usize, usize) {
        let b = &self.cfg.backends[backend];
        let (mut active, mut backup) = (0, 0);
        for (i, s) in b.servers.iter().enumerate() {
            let h = &self.servers[backend][i];
            if h.up && !h.nolb && s.weight > 0 {
                if s.backup {
                    backup += 1;
                } else {
                    active += 1;
                }
            }
        }
        (active, backup)
    }

    /// A running server enters NOLB (`disable-on-404`: a 404, HAProxy's "stopping")
    /// or leaves it (a 2xx/3xx: "UP").
    fn set_nolb(
        &mut self,
        backend: usize,
        server: usize,
        nolb: bool,
        reason: &str,
        took: Duration,
    ) {
        self.servers[backend][server].nolb = nolb;
        if let Ok(mut v) = self.view.lock() {
            let c = &mut v[backend][server];
            c.nolb = nolb;
            c.last_change = Instant::now();
        }
        for tx in &self.shards {
            let _ = tx.send(ToShard::ServerNolb {
                backend,
                server,
                nolb,
            });
        }
        let b = &self.cfg.backends[backend];
        let (active, backup) = self.online(backend);
        let (kind, name) = subject(b, server);
        let word = if nolb { "is stopping" } else { "is UP" };
        let on_backup = on_backup(active, backup);
        let why = if reason == FROM_CLI {
            format!(", {FROM_CLI}")
        } else if b.log_health_checks {
            String::new()
        } else {
            format!(", reason: {reason}, check duration: {}ms", took.as_millis())
        };
        let msg = format!(
            "{kind} {name} {word}{why}. {active} active and {backup} backup servers online.{on_backup}"
        );
        self.syslog(backend, LOG_NOTICE, &msg);
    }

    fn on_check(
        &mut self,
        backend: usize,
        server: usize,
        check: &HealthCheck,
        outcome: &probe::Outcome,
        took: Duration,
    ) {
        let h = &self.servers[backend][server];
        // A check that was under way when `disable health` came counts for nothing.
        if h.paused {
            return;
        }
        // `disable-on-404`: a running server's 404 passes, conditionally (HAProxy's
        // L7OKC); the server stays up in NOLB. A stopped server's 404 is judged as
        // any status.
        let conditional = outcome.nolb && h.up;
        let cond_reason;
        let (passed, status, reason) = if conditional {
            cond_reason = outcome.reason.replacen(
                "Layer7 wrong status",
                "Layer7 check conditionally passed",
                1,
            );
            (true, "L7OKC", cond_reason.as_str())
        } else {
            (outcome.passed, outcome.status, outcome.reason.as_str())
        };
        // HAProxy's health counter after this check (0 once below `rise` on the way
        // down, full once `rise` is reached on the way up), for `log-health-checks`.
        let top = check.rise + check.fall - 1;
        let health_after = match (h.up, passed) {
            (true, true) => top,
            (true, false) => Some(top.saturating_sub(h.fails + 1))
                .filter(|&v| v >= check.rise)
                .unwrap_or(0),
            (false, true) if h.oks + 1 >= check.rise => top,
            (false, true) => h.oks + 1,
            (false, false) => 0,
        };
        let mut report = false;
        if let Ok(mut v) = self.view.lock() {
            let c = &mut v[backend][server];
            report = c.status != status || c.health != health_after;
            c.status = status;
            c.code = outcome.code;
            c.duration = Some(took);
            c.desc = reason.split(',').next().unwrap_or("").to_string();
            c.info = match &outcome.info {
                Some(info) => info.trim_start().to_string(),
                None if passed => String::new(),
                None => last_check_info(reason),
            };
            if !passed {
                c.chkfail += 1;
            }
            // HAProxy's counter: falls from rise+fall-1 while up, rises from 0 while down.
            c.health = match (h.up, passed) {
                (true, true) => check.rise + check.fall - 1,
                (true, false) => (check.rise + check.fall - 1).saturating_sub(h.fails + 1),
                (false, true) => h.oks + 1,
                (false, false) => 0,
            };
        }
        if report && self.cfg.backends[backend].log_health_checks {
            self.check_log(
                backend,
                server,
                check,
                passed,
                conditional,
                reason,
                took,
                health_after,
            );
        }
        let h = &mut self.servers[backend][server];
        if passed {
            h.fails = 0;
            if h.up && h.nolb != conditional {
                self.set_nolb(backend, server, conditional, reason, took);
            } else if !h.up {
                h.oks += 1;
                if h.oks >= check.rise {
                    h.streaks.iter_mut().for_each(|s| *s = 0);
                    self.flip(backend, server, true, reason, Some(took));
                }
            }
        } else {
            h.oks = 0;
            if h.up {
                h.fails += 1;
                if h.fails >= check.fall {
                    self.flip(backend, server, false, reason, Some(took));
                }
            }
        }
    }

    fn on_report(&mut self, r: HealthReport) {
        let cfg = self.cfg.clone();
        let b = &cfg.backends[r.backend];
        // Without `observe` (haproxy.cfg) or with `error_limit = 0` (TOML): nothing.
        let Some(passive) = b.servers[r.server].passive else {
            return;
        };
        let h = &mut self.servers[r.backend][r.server];
        if let Some(s) = h.streaks.get_mut(r.shard) {
            *s = r.streak;
        }
        let total: u32 = h.streaks.iter().sum();
        if passive.limit == 0 || !h.up || total < passive.limit {
            return;
        }
        h.streaks.iter_mut().for_each(|s| *s = 0);
        let reason = format!("Passive check: {total} consecutive errors");
        let fall = b.health.as_ref().map_or(1, |c| c.fall);
        // HAProxy's on-error modes act on the health checks; a server nobody checks
        // is marked down and tried again after a cool-down.
        let mode = if h.checked {
            passive.on_error
        } else {
            crate::config::OnError::MarkDown
        };
        // Every mode checks again at `fastinter`.
        h.hurry = true;
        let down = match mode {
            crate::config::OnError::FastInter => false,
            crate::config::OnError::FailCheck => {
                h.oks = 0;
                h.fails += 1;
                h.fails >= fall
            }
            crate::config::OnError::SuddenDeath => {
                h.oks = 0;
                h.fails = (h.fails + 1).max(fall.saturating_sub(1));
                h.fails >= fall
            }
            crate::config::OnError::MarkDown => true,
        };
        if down {
            if !h.checked {
                h.cooldown_until = Some(Instant::now() + PASSIVE_COOLDOWN);
            }
            self.flip(r.backend, r.server, false, &reason, None);
        }
    }

    fn end_cooldowns(&mut self, now: Instant) {
        for b in 0..self.servers.len() {
            for s in 0..self.servers[b].len() {
                let h = &mut self.servers[b][s];
                if h.cooldown_until.is_some_and(|t| now >= t) {
                    h.cooldown_until = None;
                    self.flip(
                        b,
                        s,
                        true,
                        "Passive check: cool-down over, trying again",
                        None,
                    );
                }
            }
        }
    }

    fn next_interval(&self, backend: usize, server: usize, check: &HealthCheck) -> Duration {
        let h = &self.servers[backend][server];
        if (h.up && h.fails > 0) || (!h.up && h.oks > 0) {
            check.fast_interval
        } else if !h.up {
            check.down_interval
        } else {
            check.interval
        }
    }
}

async fn run(
    cfg: Arc<Config>,
    shards: Vec<ShardLink>,
    reports: Receiver<HealthReport>,
    (stop, cmds): (Receiver<()>, Receiver<crate::control::HealthCmd>),
    view: HealthView,
    mut schedules: Schedules,
    log: Option<Sender<Vec<u8>>>,
) -> (Receiver<HealthReport>, Schedules) {
    let shard_count = shards.len();
    let now = Instant::now();
    let start_up = view
        .lock()
        .map(|v| {
            v.iter()
                .map(|b| {
                    b.iter()
                        .map(|c| (c.up, c.nolb, c.checked))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut servers: Vec<Vec<ServerHealth>> = cfg
        .backends
        .iter()
        .enumerate()
        .map(|(bi, b)| {
            let start_up = &start_up;
            b.servers
                .iter()
                .enumerate()
                .map(move |(si, s)| ServerHealth {
                    up: start_up.get(bi).and_then(|v| v.get(si)).is_none_or(|c| c.0),
                    nolb: start_up
                        .get(bi)
                        .and_then(|v| v.get(si))
                        .is_some_and(|c| c.1),
                    // Where the server-state file left its check health (HAProxy's
                    // STARTING and STOPPING: fewer checks to go).
                    oks: s.saved.filter(|v| !v.up).map_or(0, |v| v.health),
                    fails: s.saved.filter(|v| v.up).map_or(0, |v| {
                        let (rise, fall) = b.health.as_ref().map_or((2, 3), |h| (h.rise, h.fall));
                        (rise + fall - 1).saturating_sub(v.health)
                    }) + if s.dynamic {
                        // Health 0 (HAProxy's start of a dynamic server): its first
                        // failed check takes it down.
                        b.health.as_ref().map_or(0, |h| h.fall.saturating_sub(1))
                    } else {
                        0
                    },
                    streaks: vec![0; shard_count],
                    // Down without checks (passively): it gets its cool-down again. Down
                    // by the server-state file: it stays down, as in HAProxy.
                    cooldown_until: {
                        let checked = b.health.is_some() && s.check;
                        let up = start_up.get(bi).and_then(|v| v.get(si)).is_none_or(|c| c.0);
                        let by_file = s.saved.is_some_and(|v| !v.up);
                        (!checked && !up && !by_file).then(|| Instant::now() + PASSIVE_COOLDOWN)
                    },
                    checked: b.health.is_some() && s.check,
                    hurry: false,
                    // Checks the view shows off (`disable health` kept through an
                    // `add server`, a dynamic server's until `enable health`).
                    paused: b.health.is_some()
                        && s.check
                        && start_up
                            .get(bi)
                            .and_then(|v| v.get(si))
                            .is_some_and(|c| !c.2),
                    next: None,
                })
                .collect()
        })
        .collect();
    // Carried schedules go on where they were.
    for (b, hs) in cfg.backends.iter().zip(&mut servers) {
        for (s, h) in b.servers.iter().zip(hs) {
            let Some(k) = schedules.take(&b.name, &s.name) else {
                continue;
            };
            h.oks = k.oks;
            h.fails = k.fails;
            if k.streaks.len() == h.streaks.len() {
                h.streaks = k.streaks;
            }
            h.cooldown_until = k.cooldown_until;
            h.hurry = k.hurry;
            h.next = k.next;
        }
    }
    let state = Rc::new(RefCell::new(State {
        cfg: cfg.clone(),
        log,
        servers,
        shards,
        view,
    }));
    // Every check loop (its abort handle and its task), to end them when the thread
    // stops.
    let mut loops = Vec::new();
    for (bi, b) in cfg.backends.iter().enumerate() {
        let Some(check) = &b.health else { continue };
        // A stopped proxy (`disabled`) checks nothing, as in HAProxy.
        if b.disabled {
            continue;
        }
        let count = b.servers.len().max(1) as u32;
        for (si, s) in b.servers.iter().enumerate() {
            if s.check {
                // Its own check port and address (HAProxy's are per server).
                let check = &HealthCheck {
                    port: s.check_port.or(check.port),
                    addr: s.check_addr.or(check.addr),
                    ..check.clone()
                };
                // As HAProxy: checks speak PROXY when asked to, or when the server
                // does and the check goes to the server's own address and port.
                let proxy = if s.check_send_proxy {
                    Some(s.send_proxy.unwrap_or(crate::proxy_protocol::Version::V1))
                } else if check.port.is_none() && check.addr.is_none() {
                    s.send_proxy
                } else {
                    None
                };
                // As HAProxy: an `ssl` server is checked over TLS when the check goes
                // to its own address and port, or always with `check-ssl`; the name
                // sent is `check-sni`'s (none by default).
                let own = check.port.is_none() && check.addr.is_none();
                let tls = s
                    .tls
                    .as_ref()
                    .filter(|t| t.settings.check_ssl || own)
                    .map(|t| probe::CheckTls {
                        config: t.config.clone(),
                        name: t
                            .settings
                            .server_name(t.settings.check_sni.as_deref(), s.addr.ip()),
                    });
                // Spread the first checks over one interval; a carried schedule
                // goes on where it was.
                let first = match state.borrow().servers[bi][si].next {
                    Some(at) => at.saturating_duration_since(now),
                    None => check.interval / count * si as u32,
                };
                state.borrow_mut().servers[bi][si].next = Some(now + first);
                let how = match &check.kind {
                    crate::config::CheckKind::TcpCheck(tc) => How::TcpCheck(
                        Rc::new(tcpcheck::Prepared::new(tc.clone())),
                        tcpcheck::Target {
                            server: s.addr,
                            check_port: check.port,
                            check_addr: check.addr,
                            default_proxy: proxy,
                            default_tls: tls,
                            proxy_version: s
                                .send_proxy
                                .unwrap_or(crate::proxy_protocol::Version::V1),
                            tls: s.tls.clone(),
                        },
                    ),
                    crate::config::CheckKind::External(x) => {
                        How::External(Rc::new(external::Program::new(x, &b.name, s)))
                    }
                    _ => How::Probe(probe::check_addr(s.addr, check), proxy, tls, s.check_h2()),
                };
                let (checks, abort) = futures_util::future::abortable(check_loop(
                    state.clone(),
                    (bi, si),
                    check.clone(),
                    how,
                    first,
                ));
                loops.push((abort, monoio::spawn(checks)));
            }
        }
    }
    loop {
        monoio::time::sleep(REPORT_TICK).await;
        match stop.try_recv() {
            Ok(()) | Err(TryRecvError::Disconnected) => {
                let schedules = Schedules::of(&state.borrow());
                // The check loops end before the runtime goes: one left asleep in a timer
                // would never be dropped (its timer entry holds its waker), and with it
                // this generation's config and state (a leak per reload).
                for (abort, _) in &loops {
                    abort.abort();
                }
                for (_, task) in loops {
                    let _ = task.await;
                }
                return (reports, schedules);
            }
            Err(TryRecvError::Empty) => {}
        }
        let mut st = state.borrow_mut();
        while let Ok(r) = reports.try_recv() {
            if r.backend < st.servers.len() && r.server < st.servers[r.backend].len() {
                st.on_report(r);
            }
        }
        while let Ok(c) = cmds.try_recv() {
            st.command(c);
        }
        st.end_cooldowns(Instant::now());
    }
}

/// How a server is checked: one probe (connect, TLS, HTTP) or a tcp-check sequence.
enum How {
    Probe(
        std::net::SocketAddr,
        Option<crate::proxy_protocol::Version>,
        Option<probe::CheckTls>,
        // A `proto h2` server: HTTP checks over HTTP/2.
        bool,
    ),
    TcpCheck(Rc<tcpcheck::Prepared>, tcpcheck::Target),
    External(Rc<external::Program>),
}

async fn check_loop(
    state: Rc<RefCell<State>>,
    (backend, server): (usize, usize),
    check: HealthCheck,
    mut how: How,
    first: Duration,
) {
    monoio::time::sleep(first).await;
    let dns = {
        let st = state.borrow();
        let s = &st.cfg.backends[backend].servers[server];
        s.dns.is_some() || s.no_addr
    };
    loop {
        // `disable health`: no check until `enable health`.
        if state.borrow().servers[backend][server].paused {
            monoio::time::sleep(check.interval.min(Duration::from_millis(100))).await;
            continue;
        }
        let start = Instant::now();
        state.borrow_mut().servers[backend][server].next = Some(start);
        // A server DNS moves is checked where it is now; one without an address is
        // not checked (it is in maintenance).
        if dns {
            let now = state.borrow().view.lock().ok().and_then(|v| {
                v.get(backend)?
                    .get(server)
                    .map(|c| (!c.no_addr).then_some(c.addr))
            });
            match (now.flatten(), &mut how) {
                (None, _) => {
                    state.borrow_mut().servers[backend][server].next = Some(start + check.interval);
                    monoio::time::sleep(check.interval).await;
                    continue;
                }
                (Some(a), How::Probe(addr, ..)) => *addr = probe::check_addr(a, &check),
                (Some(a), How::TcpCheck(_, t)) => t.server = a,
                (Some(_), How::External(_)) => {}
            }
        }
        let outcome = match &how {
            How::Probe(addr, proxy, tls, h2) => {
                probe::probe(*addr, &check, *proxy, tls.as_ref(), *h2).await
            }
            How::TcpCheck(p, t) => tcpcheck::run(p, t, check.timeout).await,
            How::External(x) => x.run(check.timeout).await,
        };
        let took = start.elapsed();
        let (wait, passive) = {
            let mut st = state.borrow_mut();
            st.on_check(backend, server, &check, &outcome, took);
            st.servers[backend][server].hurry = false;
            let passive = st.cfg.backends[backend].servers[server].passive.is_some();
            (st.next_interval(backend, server, &check), passive)
        };
        let mut until = start + wait;
        state.borrow_mut().servers[backend][server].next = Some(until);
        if !passive {
            monoio::time::sleep(until.saturating_duration_since(Instant::now())).await;
            continue;
        }
        // Passive failures may ask for the next check at `fastinter` from then on
        // (HAProxy's on-error): look at each report tick.
        loop {
            let now = Instant::now();
            if std::mem::take(&mut state.borrow_mut().servers[backend][server].hurry) {
                until = until.min(now + check.fast_interval);
                state.borrow_mut().servers[backend][server].next = Some(until);
            }
            if now >= until {
                break;
            }
            monoio::time::sleep((until - now).min(REPORT_TICK)).await;
        }
    }
}

/// HAProxy's `last_chk` of a failed check: the `info` of its reason, without the
/// OS error number Rust appends (`Connection refused (os error 111)`).
fn last_check_info(reason: &str) -> String {
    let Some(i) = reason.find("info: \"") else {
        return String::new();
    };
    let text = reason[i + 7..].trim_end_matches('"');
    match text.find(" (os error") {
        Some(j) => text[..j].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod last_check_tests {
    #[test]
    fn last_chk_is_the_info_without_the_os_error_number() {
        assert_eq!(
            super::last_check_info(
                "Layer4 connection problem, info: \"Connection refused (os error 111)\""
            ),
            "Connection refused"
        );
        assert_eq!(
            super::last_check_info(
                "Layer7 wrong status, code: 500, info: \"Internal Server Error\""
            ),
            "Internal Server Error"
        );
        assert_eq!(super::last_check_info("Layer4 timeout"), "");
    }
}
