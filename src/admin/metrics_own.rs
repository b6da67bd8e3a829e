//! ringlb's own Prometheus families, beside HAProxy's: the stick tables' sizes
//! (HAProxy's `sticktable` scope), shard restarts and connections per shard, the
//! control plane's wake-ups and latency, TLS handshakes per frontend, and the latency
//! histograms merged from every shard's hdrhistogram.

use std::fmt::Write as _;

use super::metrics::{esc, Out};
use super::rows::Stats;
use super::Core;
use crate::stats::{Latency, Totals};

/// HAProxy's `haproxy_sticktable_size` and `_used`, for the stick tables.
pub(super) fn sticktables(st: &Stats, out: &mut Out) {
    let tables: Vec<(&str, u64)> = st
        .cfg
        .backends
        .iter()
        .filter_map(|b| b.stick.as_ref().map(|t| (b.name.as_str(), t.size as u64)))
        .collect();
    if tables.is_empty() {
        return;
    }
    out.head(
        "haproxy_sticktable_size",
        "Stick table size (entries per shard).",
        false,
    );
    for (name, size) in &tables {
        out.sample(
            "haproxy_sticktable_size",
            &format!("name=\"{}\",type=\"ip\"", esc(name)),
            *size as f64,
        );
    }
}

/// ringlb's own families: shards, the control plane, latency histograms.
pub(super) fn ringlb(core: &Core, st: &Stats, out: &mut Out) {
    use crate::stats::process as p;
    let cfg = &st.cfg;
    for (name, help, c) in [
        (
            "ringlb_upgrade_handover_failures_total",
            "Listener hand-overs from an older process (-sf) that failed and were bound anew.",
            &p::HANDOVER_FAILURES,
        ),
        (
            "ringlb_shard_restarts_total",
            "Shard runtimes that died of a panic and were restarted on their core.",
            &p::SHARD_RESTARTS,
        ),
        (
            "ringlb_control_wakeups_total",
            "Times a shard's control loop woke up (messages, its own timers), all shards.",
            &p::CONTROL_WAKEUPS,
        ),
        (
            "ringlb_control_messages_total",
            "Control messages (health flips, operator changes, shared tables) shards applied.",
            &p::CONTROL_MESSAGES,
        ),
    ] {
        out.head(name, help, true);
        out.sample(name, "", p::read(c) as f64);
    }
    let name = "ringlb_control_apply_seconds";
    out.head(
        name,
        "From a control message's sending to its application on a shard (quantiles).",
        false,
    );
    if let Ok(h) = p::control_latency().lock() {
        for q in [0.5, 0.99, 0.999, 1.0] {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            };
            out.sample(name, &format!("quantile=\"{q}\""), v as f64 / 1e6);
        }
    }
    let mut per_shard = st.g.per_shard.clone();
    per_shard.sort_unstable();
    let name = "ringlb_shard_connections_total";
    out.head(
        name,
        "Connections accepted by each shard (all frontends): how evenly SO_REUSEPORT spreads them.",
        true,
    );
    for (s, n) in per_shard {
        out.sample(name, &format!("shard=\"{s}\""), n as f64);
    }
    for (name, help, pick) in [
        (
            "ringlb_frontend_handler_panics_total",
            "Connections closed because their handler panicked.",
            (|t: &Totals| t.panics) as fn(&Totals) -> u64,
        ),
        (
            "ringlb_frontend_tls_handshakes_total",
            "TLS handshakes completed (full and resumed).",
            |t: &Totals| t.tls_done,
        ),
        (
            "ringlb_frontend_tls_resumed_total",
            "TLS handshakes that resumed a session.",
            |t: &Totals| t.tls_resumed,
        ),
        (
            "ringlb_frontend_tls_handshake_failures_total",
            "TLS handshakes that failed or did not finish in time.",
            |t: &Totals| t.tls_failed,
        ),
    ] {
        out.head(name, help, true);
        for (f, t) in cfg.frontends.iter().zip(&st.g.stats.frontends) {
            out.sample(name, &format!("proxy=\"{}\"", esc(&f.name)), pick(t) as f64);
        }
    }
    let name = "ringlb_h2_calm_total";
    out.head(
        name,
        "HTTP/2 connections ended with GOAWAY(ENHANCE_YOUR_CALM), by cause.",
        true,
    );
    for (f, t) in cfg.frontends.iter().zip(&st.g.stats.frontends) {
        for (cause, n) in [
            ("ping", t.h2_calm_ping),
            ("settings", t.h2_calm_settings),
            ("empty_data", t.h2_calm_empty_data),
            ("continuation", t.h2_calm_continuation),
            ("rapid_reset", t.h2_calm_rapid_reset),
            ("local_resets", t.h2_calm_local_resets),
        ] {
            out.sample(
                name,
                &format!("proxy=\"{}\",cause=\"{cause}\"", esc(&f.name)),
                n as f64,
            );
        }
    }
    let _ = core;
    // Latency histograms merged from every shard's hdrhistogram.
    for (name, pick, help) in [
        (
            "ringlb_backend_first_byte_seconds",
            (|l: &Latency| &l.first_byte) as fn(&Latency) -> &hdrhistogram::Histogram<u64>,
            "Time from sending the request to the first response byte.",
        ),
        (
            "ringlb_backend_response_seconds",
            |l: &Latency| &l.total,
            "Time from the request head to the end of the response.",
        ),
    ] {
        let _ = writeln!(out.text, "# HELP {name} {help}");
        let _ = writeln!(out.text, "# TYPE {name} histogram");
        for (b, l) in cfg.backends.iter().zip(&st.g.stats.latency) {
            // A backend that served nothing has no histogram: every bucket is 0.
            let h = l.as_ref().map(pick);
            let label = format!("proxy=\"{}\"", esc(&b.name));
            for le in [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ] {
                let us = (le * 1e6) as u64;
                let n = h.map_or(0, |h| h.count_between(0, us));
                let _ = writeln!(out.text, "{name}_bucket{{{label},le=\"{le}\"}} {n}");
            }
            let len = h.map_or(0, |h| h.len());
            let _ = writeln!(out.text, "{name}_bucket{{{label},le=\"+Inf\"}} {len}");
            let sum: f64 = h.map_or(0.0, |h| h.mean() * len as f64 / 1e6);
            let _ = writeln!(out.text, "{name}_sum{{{label}}} {sum}");
            let _ = writeln!(out.text, "{name}_count{{{label}}} {len}");
        }
    }
}
