//! The resolver thread: DNS service discovery off the shards. Every server whose
//! address comes from DNS (`resolvers` on a server with a name, `server-template`)
//! is asked about every `hold valid` (checked each `timeout resolve`); what the
//! answers change (a server's address and port, an SRV weight, a template slot
//! filled or emptied) goes to every shard over its control channel, like a health
//! flip, and into the health view (`show stat`, health checks). Nothing on the
//! request path waits for DNS: a shard keeps using the address it has until told.
//!
//! A blocking thread of its own with std sockets: a resolution is a handful of small
//! datagrams every few seconds, and a slow nameserver must not stall health checks.

mod slots;
mod wire;

pub use crate::control::{DnsCounters, NsCounters};
pub use slots::{Held, Want};
pub use wire::Outcome;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hickory_proto::rr::RecordType;

use crate::config::dns::Family;
use crate::config::Config;
use crate::control::statelog::{on_backup, say, subject, LOG_ALERT, LOG_EMERG, LOG_NOTICE};
use crate::control::{CheckView, DnsCmd, HealthView, ShardLink, ToShard};

pub struct Resolver {
    stop: Sender<()>,
    /// The runtime API's requests (`set server ... fqdn`).
    cmds: Sender<DnsCmd>,
    /// Set when stopping: a resolution under way gives up before its next question
    /// (a reload waits for this thread, whose messages name the old config's servers).
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<Schedules>,
}

/// Where each name's resolution stood when the thread stopped: `add server` and
/// `del server` replace the thread (see `health::Schedules`), and the next one goes
/// on from here, so a change neither asks every name again at once nor starts the
/// `hold` clocks or the nameservers' counters (`show resolvers`) again. A reload
/// starts afresh, as HAProxy's new process.
#[derive(Default)]
pub struct Schedules {
    /// By backend name and name asked: the next resolution and the last valid answer.
    jobs: HashMap<(String, String), (Instant, Option<Instant>)>,
    /// By backend and server name: when an answer last gave its address.
    seen: HashMap<(String, String), Instant>,
    /// The nameservers' counters, per `resolvers` section.
    counters: Vec<Vec<NsCounters>>,
}

impl Schedules {
    fn of(cfg: &Config, jobs: &[Job], counters: &[Vec<NsCounters>]) -> Schedules {
        let mut out = Schedules {
            counters: counters.to_vec(),
            ..Default::default()
        };
        for j in jobs {
            let b = &cfg.backends[j.backend];
            out.jobs
                .insert((b.name.clone(), j.fqdn.clone()), (j.next, j.last_valid));
            for (&si, h) in j.servers.iter().zip(&j.held) {
                out.seen
                    .insert((b.name.clone(), b.servers[si].name.clone()), h.seen);
            }
        }
        out
    }

    /// `jobs` (just made from `cfg`) go on where the previous thread left them.
    fn resume(&self, cfg: &Config, jobs: &mut [Job]) {
        for j in jobs {
            let b = &cfg.backends[j.backend];
            if let Some(&(next, last_valid)) = self.jobs.get(&(b.name.clone(), j.fqdn.clone())) {
                j.next = next;
                j.last_valid = last_valid;
            }
            for (&si, h) in j.servers.iter().zip(&mut j.held) {
                if let Some(&seen) = self.seen.get(&(b.name.clone(), b.servers[si].name.clone())) {
                    h.seen = seen;
                }
            }
        }
    }
}

impl Resolver {
    /// Starts the thread when some server asks DNS; `None` when none does. It goes on
    /// from `carried` (empty: from the start).
    pub fn spawn(
        cfg: Arc<Config>,
        shards: Vec<ShardLink>,
        view: HealthView,
        counters: DnsCounters,
        log: Option<Sender<Vec<u8>>>,
        carried: Schedules,
    ) -> std::io::Result<Option<Resolver>> {
        let shape: Vec<usize> = cfg.resolvers.iter().map(|r| r.nameservers.len()).collect();
        let local: Vec<Vec<NsCounters>> = if carried
            .counters
            .iter()
            .map(Vec::len)
            .eq(shape.iter().copied())
        {
            carried.counters.clone()
        } else {
            shape
                .iter()
                .map(|&n| vec![NsCounters::default(); n])
                .collect()
        };
        if let Ok(mut c) = counters.lock() {
            c.clone_from(&local);
        }
        let mut jobs = jobs(&cfg, &view);
        if jobs.is_empty() {
            return Ok(None);
        }
        carried.resume(&cfg, &mut jobs);
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let (cmds, cmds_rx) = crossbeam_channel::unbounded();
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("ringlb-dns".into())
            .spawn(move || {
                let out = Outlets { shards, view, log };
                run(cfg, out, (counters, local), jobs, (stop_rx, cmds_rx, flag))
            })?;
        Ok(Some(Resolver {
            stop,
            cmds,
            stopping,
            thread,
        }))
    }

    pub fn commands(&self) -> Sender<DnsCmd> {
        self.cmds.clone()
    }

    /// Stops the thread; gives back where each name's resolution stood.
    pub fn stop(self) -> Schedules {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

/// One name to follow: a server, or the slots of one `server-template`.
struct Job {
    resolvers: usize,
    fqdn: String,
    prefer: Family,
    nets: Vec<(std::net::IpAddr, u8)>,
    srv: bool,
    backend: usize,
    /// Server indices in the backend (one for a plain server).
    servers: Vec<usize>,
    /// The port a server has in the config (an SRV answer gives its own).
    port: u16,
    held: Vec<Held>,
    next: Instant,
    last_valid: Option<Instant>,
}

fn jobs(cfg: &Config, view: &HealthView) -> Vec<Job> {
    let v = view.lock().ok();
    let mut out: Vec<Job> = Vec::new();
    let now = Instant::now();
    for (bi, b) in cfg.backends.iter().enumerate() {
        for (si, s) in b.servers.iter().enumerate() {
            let Some(d) = &s.dns else { continue };
            let c = v.as_ref().and_then(|v| v.get(bi)?.get(si).cloned());
            let held = Held {
                addr: match &c {
                    Some(c) => (!c.no_addr).then_some(c.addr),
                    None => (!s.no_addr).then_some(s.addr),
                },
                weight: c.as_ref().and_then(|c| c.dns_weight),
                seen: now,
            };
            if let Some(j) = out.iter_mut().find(|j| {
                d.template.is_some()
                    && j.backend == bi
                    && cfg.backends[bi].servers[j.servers[0]]
                        .dns
                        .as_ref()
                        .and_then(|x| x.template)
                        == d.template
            }) {
                j.servers.push(si);
                j.held.push(held);
                continue;
            }
            // The name `set server fqdn` gave stays through a change of the servers.
            let fqdn = c
                .as_ref()
                .and_then(|c| c.fqdn.as_deref())
                .unwrap_or(&d.fqdn);
            out.push(Job {
                resolvers: d.resolvers,
                fqdn: fqdn.to_string(),
                prefer: d.prefer,
                nets: d.nets.clone(),
                srv: fqdn.starts_with('_'),
                backend: bi,
                servers: vec![si],
                port: s.addr.port(),
                held: vec![held],
                next: now,
                last_valid: None,
            });
        }
    }
    // Addresses held from the start (`init-addr`, a reload) count as a valid answer
    // now: an error keeps them for its `hold`, as HAProxy's resolutions start valid.
    for j in &mut out {
        if j.held.iter().any(|h| h.addr.is_some()) {
            j.last_valid = Some(now);
        }
    }
    out
}

/// Where a resolution's outcome goes: the shards, the health view (`show stat`, the
/// checks), the log target.
struct Outlets {
    shards: Vec<ShardLink>,
    view: HealthView,
    log: Option<Sender<Vec<u8>>>,
}

/// The thread's loop; `local`: the counters it goes on from.
fn run(
    cfg: Arc<Config>,
    out: Outlets,
    (counters, mut local): (DnsCounters, Vec<Vec<NsCounters>>),
    mut jobs: Vec<Job>,
    (stop, cmds, stopping): (Receiver<()>, Receiver<DnsCmd>, Arc<AtomicBool>),
) -> Schedules {
    loop {
        let now = Instant::now();
        for ji in 0..jobs.len() {
            if jobs[ji].next > now {
                continue;
            }
            // What the backend's other servers of this name hold (a single server
            // takes none of it).
            let taken: Vec<std::net::IpAddr> = jobs
                .iter()
                .enumerate()
                .filter(|(k, o)| {
                    *k != ji && o.backend == jobs[ji].backend && o.fqdn == jobs[ji].fqdn
                })
                .flat_map(|(_, o)| o.held.iter().filter_map(|h| h.addr.map(|a| a.ip())))
                .collect();
            let j = &mut jobs[ji];
            let r = &cfg.resolvers[j.resolvers];
            let outcome = resolve(j, r, &mut local[j.resolvers], &stopping);
            if stopping.load(Ordering::SeqCst) {
                // This name's resolution is due again at once.
                return Schedules::of(&cfg, &jobs, &local);
            }
            let now = Instant::now();
            let want = Want {
                template: j.servers.len() > 1
                    || cfg.backends[j.backend].servers[j.servers[0]]
                        .dns
                        .as_ref()
                        .is_some_and(|d| d.template.is_some()),
                port: j.port,
                prefer: j.prefer,
                nets: &j.nets,
                obsolete: r.hold.obsolete,
                taken: &taken,
            };
            let (new, reason) = match &outcome {
                Outcome::Valid(items, _) => {
                    j.last_valid = Some(now);
                    j.next = now + r.hold.valid.max(r.timeout_resolve);
                    (slots::assign(&j.held, items, now, &want), "")
                }
                bad => {
                    j.next = now + r.timeout_resolve;
                    let hold = match bad {
                        Outcome::Nx => r.hold.nx,
                        Outcome::Refused => r.hold.refused,
                        Outcome::Timeout => r.hold.timeout,
                        _ => r.hold.other,
                    };
                    let expired = j.last_valid.is_none_or(|t| now >= t + hold);
                    if expired {
                        (slots::empty(&j.held), bad.word())
                    } else {
                        (j.held.clone(), "")
                    }
                }
            };
            let by = match &outcome {
                Outcome::Valid(_, ns) if j.srv => {
                    let _ = ns;
                    "DNS additional record".to_string()
                }
                Outcome::Valid(_, ns) => format!("{}/{ns}", r.name),
                _ => String::new(),
            };
            for (k, n) in new.iter().enumerate() {
                let old = j.held[k];
                if old.addr != n.addr || old.weight != n.weight {
                    publish(
                        &cfg,
                        &out,
                        (j.backend, j.servers[k]),
                        &old,
                        n,
                        &by,
                        reason,
                        &j.fqdn,
                    );
                }
            }
            j.held = new;
        }
        if let Ok(mut c) = counters.lock() {
            c.clone_from(&local);
        }
        let next = jobs
            .iter()
            .map(|j| j.next)
            .min()
            .unwrap_or(now + Duration::from_secs(1));
        let tick = cfg
            .resolvers
            .iter()
            .map(|r| r.timeout_resolve)
            .min()
            .unwrap_or(Duration::from_secs(1));
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(tick)
            .max(Duration::from_millis(10));
        crossbeam_channel::select! {
            recv(stop) -> _ => return Schedules::of(&cfg, &jobs, &local),
            recv(cmds) -> c => {
                if let Ok(c) = c {
                    command(&cfg, &mut jobs, &out.view, c);
                }
            }
            default(wait) => {}
        }
    }
}

/// One resolution: the preferred family first, then the other one when the first
/// has no record (as HAProxy); SRV names ask SRV.
fn resolve(
    j: &Job,
    r: &crate::config::dns::Resolvers,
    c: &mut [NsCounters],
    stop: &AtomicBool,
) -> Outcome {
    if j.srv {
        return wire::ask(r, &j.fqdn, RecordType::SRV, c, stop);
    }
    let (first, second) = match j.prefer {
        Family::V4 => (RecordType::A, RecordType::AAAA),
        Family::V6 => (RecordType::AAAA, RecordType::A),
    };
    match wire::ask(r, &j.fqdn, first, c, stop) {
        Outcome::Valid(items, ns) if !items.is_empty() => Outcome::Valid(items, ns),
        Outcome::Valid(..) | Outcome::Nx => wire::ask(r, &j.fqdn, second, c, stop),
        o => o,
    }
}

/// Tells every shard and the health view about a server's new address or weight,
/// and logs it as HAProxy does.
#[allow(clippy::too_many_arguments)]
fn publish(
    cfg: &Config,
    out: &Outlets,
    (backend, server): (usize, usize),
    old: &Held,
    new: &Held,
    by: &str,
    reason: &str,
    fqdn: &str,
) {
    let b = &cfg.backends[backend];
    let (_, name) = subject(b, server);
    // What is left serving once the view has the change (HAProxy's counts in its
    // messages).
    let mut left = (0, 0);
    if let Ok(mut v) = out.view.lock() {
        if let Some(c) = v.get_mut(backend).and_then(|b| b.get_mut(server)) {
            if let Some(a) = new.addr {
                c.addr = a;
            }
            c.no_addr = new.addr.is_none();
            c.dns_weight = new.weight;
            if old.addr.is_none() != new.addr.is_none() {
                c.last_change = Instant::now();
            }
        }
        if let Some(view) = v.get(backend) {
            left = serving(b, view);
        }
    }
    for tx in &out.shards {
        let _ = tx.send(ToShard::SetAddr {
            backend,
            server,
            addr: new.addr,
            weight: new.weight,
        });
    }
    let log = |level: u8, msg: &str| say(out.log.as_ref(), b, level, msg);
    let show = |a: Option<SocketAddr>| a.map_or("(none)".to_string(), |a| a.ip().to_string());
    match (old.addr, new.addr) {
        (o, Some(n)) if o.map(|o| o.ip()) != Some(n.ip()) => {
            let msg = format!(
                "{name} changed its IP from {} to {} by {by}.",
                show(o),
                show(Some(n))
            );
            log(LOG_NOTICE, &msg);
            if o.is_none() {
                log(
                    LOG_NOTICE,
                    &format!("Server {name} ('{fqdn}') is UP/READY (resolves again)."),
                );
                log(
                    LOG_NOTICE,
                    &format!("Server {name} administratively READY thanks to valid DNS answer."),
                );
            }
        }
        (Some(_), None) => {
            let why = match reason {
                "" => "entry removed from the DNS answer".to_string(),
                "other" => "unspecified DNS error".to_string(),
                r => format!("DNS {r} status"),
            };
            let (kind, _) = subject(b, server);
            let (active, backup) = left;
            log(
                LOG_ALERT,
                &format!(
                    "{kind} {name} is going DOWN for maintenance ({why}). {active} active and {backup} backup servers left.{}",
                    on_backup(active, backup)
                ),
            );
            // HAProxy 2.6 says this one on stderr only when DNS takes the last server.
            if active == 0 && backup == 0 {
                log(
                    LOG_EMERG,
                    &format!("backend {} has no server available!", b.name),
                );
            }
        }
        _ => {}
    }
    if let (Some(o), Some(n)) = (old.addr, new.addr) {
        if o.port() != n.port() {
            log(
                LOG_NOTICE,
                &format!(
                    "{name} changed its port from {} to {} by {by}.",
                    o.port(),
                    n.port()
                ),
            );
        }
    }
    if old.weight != new.weight {
        if let Some(w) = new.weight {
            log(
                LOG_NOTICE,
                &format!("{name} changed its weight to {w} by {by}."),
            );
        }
    }
}

/// The backend's servers taking load-balanced traffic, (active, backup), as the view
/// has them: up, not stopping, with an address and a weight.
fn serving(b: &crate::config::Backend, view: &[CheckView]) -> (usize, usize) {
    let (mut active, mut backup) = (0, 0);
    for (s, c) in b.servers.iter().zip(view) {
        if c.up && !c.nolb && !c.no_addr && c.dns_weight.unwrap_or(s.weight) > 0 {
            if s.backup {
                backup += 1;
            } else {
                active += 1;
            }
        }
    }
    (active, backup)
}

/// A runtime API request: in force (the job follows the new name, asked at once) when
/// its answer is sent.
fn command(cfg: &Config, jobs: &mut [Job], view: &HealthView, c: DnsCmd) {
    let DnsCmd::SetFqdn {
        backend,
        server,
        fqdn,
        done,
    } = c;
    let Some(j) = jobs
        .iter_mut()
        .find(|j| j.backend == backend && j.servers.contains(&server))
    else {
        let _ = done.send(Err(
            "set server <b>/<s> fqdn failed because no resolution is configured.".into(),
        ));
        return;
    };
    let template = cfg.backends[backend].servers[server]
        .dns
        .as_ref()
        .is_some_and(|d| d.template.is_some());
    if template || j.servers.len() > 1 {
        let _ = done.send(Err(
            "a server-template slot follows its template's name: ringlb cannot give it one of its own."
                .into(),
        ));
        return;
    }
    let old = std::mem::replace(&mut j.fqdn, fqdn);
    if old != j.fqdn {
        j.srv = j.fqdn.starts_with('_');
        j.next = Instant::now();
        j.last_valid = None;
        // `show servers state` names it from now.
        if let Ok(mut v) = view.lock() {
            if let Some(c) = v.get_mut(backend).and_then(|b| b.get_mut(server)) {
                c.fqdn = Some(j.fqdn.as_str().into());
            }
        }
    }
    let _ = done.send(Ok(old));
}
