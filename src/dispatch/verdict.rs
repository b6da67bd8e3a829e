//! What to do after a failed attempt at a server: a pure function of what failed, what
//! was sent and what the backend allows, so every protocol decides alike and the rules
//! are tested as a table.

use crate::record::Term;

/// How an attempt at a server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable, `timeout connect`, or the PROXY header
    /// could not be written): nothing of the request left.
    Connect,
    /// The request was (at least partly) sent and the server closed or reset before a
    /// single response byte.
    NothingReceived,
    /// The server answered with something that is not a valid response head.
    Invalid,
    /// No response head within `timeout server`.
    Timeout,
}

/// What the failed attempt was.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    pub failure: Failure,
    /// The connection came from the pool (the server may have closed it while idle).
    pub reused: bool,
    /// A stale pooled connection was already replaced once for this request.
    pub stale_retried: bool,
    /// The request may be sent again: idempotent and still whole in memory.
    pub may_resend: bool,
    /// Failed attempts so far, this one included.
    pub failures: u32,
    /// The backend's `retries`.
    pub retries: u32,
    /// The backend's `option redispatch`.
    pub redispatch: bool,
    /// Its interval (`option redispatch N`): every Nth retry for N > 0, the retry
    /// -N-1 places before the last for N < 0 (-1, the default: the last), none for 0.
    pub redispatch_after: i32,
    /// The failed server is down (HAProxy then redispatches whatever the interval).
    pub server_down: bool,
    /// Any server will do: no persistence chose this one, the backend's algorithm is
    /// not a hash (`roundrobin`, `static-rr`, `leastconn`, `first`) and it has more
    /// than one active server (HAProxy then redispatches on every retry).
    pub any_server: bool,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The pooled connection was stale: the same server again on a new connection,
    /// not counted as a failure (HAProxy does the same for an idle connection that
    /// died under the request).
    Fresh,
    /// Another attempt, counted as a retry: on the same server, keeping its slot.
    RetrySame,
    /// Another attempt on another server (the failed one is avoided).
    Redispatch,
    /// No more attempts: answer with this status, log this termination state.
    GiveUp { status: u16, term: Term },
}

/// Whether `Dispatch::failed` counts the failure against the server (connection or
/// response error, passive health report).
pub fn counts_against_server(s: &Situation) -> bool {
    verdict(s) != Verdict::Fresh
}

/// The rules, in HAProxy's terms:
/// - nothing was sent (a failed connect): always safe to try again, up to `retries`;
///   no server could be reached is a 503;
/// - a pooled connection that died before a response byte is replaced once, for a
///   request that may be resent;
/// - bytes were sent and nothing came back: only a request that may be resent goes
///   again, up to `retries`; else 502;
/// - an invalid response is a 502, a response timeout a 504, never retried (the
///   server may have acted on the request).
pub fn verdict(s: &Situation) -> Verdict {
    let again = if redispatches(s) {
        Verdict::Redispatch
    } else {
        Verdict::RetrySame
    };
    match s.failure {
        Failure::Connect if s.failures > s.retries => Verdict::GiveUp {
            status: 503,
            term: Term::SERVER_CONNECT,
        },
        Failure::Connect => again,
        Failure::NothingReceived if s.reused && !s.stale_retried && s.may_resend => Verdict::Fresh,
        Failure::NothingReceived if !s.may_resend || s.failures > s.retries => Verdict::GiveUp {
            status: 502,
            term: Term::SERVER_HEADERS,
        },
        Failure::NothingReceived => again,
        Failure::Invalid => Verdict::GiveUp {
            status: 502,
            term: Term::SERVER_HEADERS,
        },
        Failure::Timeout => Verdict::GiveUp {
            status: 504,
            term: Term::SERVER_TIMEOUT_HEADERS,
        },
    }
}

/// Whether the next attempt goes to another server: HAProxy 2.6's
/// `stream_choose_redispatch`, where the attempt that failed is the `failures`-th.
fn redispatches(s: &Situation) -> bool {
    if !s.redispatch {
        return false;
    }
    let k = i64::from(s.failures);
    let after = i64::from(s.redispatch_after);
    let on_interval = match after {
        0 => false,
        n if n > 0 => k % n == 0,
        n => {
            // C's `%` by a negative divisor has the dividend's sign; by 0, no retry
            // would be left to redispatch anyway.
            let d = i64::from(s.retries) + 1 + n;
            d != 0 && k % d == 0
        }
    };
    s.server_down || on_interval || s.any_server
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(failure: Failure) -> Situation {
        Situation {
            failure,
            reused: false,
            stale_retried: false,
            may_resend: true,
            failures: 1,
            retries: 3,
            redispatch: true,
            redispatch_after: 1,
            server_down: false,
            any_server: false,
        }
    }

    /// `option redispatch N` with `retries 3`: which of the 3 retries (after the 1st,
    /// 2nd, 3rd failure) go to another server.
    #[test]
    fn the_interval() {
        let on = |after: i32, down: bool, any: bool| -> Vec<bool> {
            (1..=3)
                .map(|failures| {
                    let st = Situation {
                        failures,
                        redispatch_after: after,
                        server_down: down,
                        any_server: any,
                        ..s(Failure::Connect)
                    };
                    verdict(&st) == Verdict::Redispatch
                })
                .collect()
        };
        assert_eq!(on(1, false, false), [true, true, true]);
        assert_eq!(on(2, false, false), [false, true, false]);
        assert_eq!(on(3, false, false), [false, false, true]);
        // -1 (plain `option redispatch`): the last retry; -2: the one before it.
        assert_eq!(on(-1, false, false), [false, false, true]);
        assert_eq!(on(-2, false, false), [false, true, false]);
        assert_eq!(on(-3, false, false), [true, true, true]);
        assert_eq!(on(0, false, false), [false, false, false]);
        // A down server, or round robin over several servers: every retry.
        assert_eq!(on(0, true, false), [true, true, true]);
        assert_eq!(on(-1, false, true), [true, true, true]);
        let off = Situation {
            redispatch: false,
            any_server: true,
            server_down: true,
            ..s(Failure::Connect)
        };
        assert_eq!(verdict(&off), Verdict::RetrySame);
    }

    #[test]
    fn the_table() {
        use Failure::*;
        use Verdict::*;
        let give_up = |status, term| GiveUp { status, term };
        #[rustfmt::skip]
        let rows: &[(&str, Situation, Verdict)] = &[
            ("connect fails, retries left, redispatch", s(Connect), Redispatch),
            ("connect fails, retries left, no redispatch", Situation { redispatch: false, ..s(Connect) }, RetrySame),
            ("connect fails, retries used up", Situation { failures: 4, ..s(Connect) }, give_up(503, Term::SERVER_CONNECT)),
            ("connect fails, no retries at all", Situation { retries: 0, ..s(Connect) }, give_up(503, Term::SERVER_CONNECT)),
            ("connect fails, a POST: nothing was sent, retried", Situation { may_resend: false, ..s(Connect) }, Redispatch),
            ("stale pooled connection, GET", Situation { reused: true, ..s(NothingReceived) }, Fresh),
            ("stale pooled connection, second time", Situation { reused: true, stale_retried: true, ..s(NothingReceived) }, Redispatch),
            ("stale pooled connection, POST", Situation { reused: true, may_resend: false, ..s(NothingReceived) }, give_up(502, Term::SERVER_HEADERS)),
            ("fresh connection closed, GET", s(NothingReceived), Redispatch),
            ("fresh connection closed, GET, no redispatch", Situation { redispatch: false, ..s(NothingReceived) }, RetrySame),
            ("fresh connection closed, POST", Situation { may_resend: false, ..s(NothingReceived) }, give_up(502, Term::SERVER_HEADERS)),
            ("fresh connection closed, retries used up", Situation { failures: 4, ..s(NothingReceived) }, give_up(502, Term::SERVER_HEADERS)),
            ("invalid response", s(Invalid), give_up(502, Term::SERVER_HEADERS)),
            ("invalid response on a pooled connection", Situation { reused: true, ..s(Invalid) }, give_up(502, Term::SERVER_HEADERS)),
            ("response timeout", s(Timeout), give_up(504, Term::SERVER_TIMEOUT_HEADERS)),
        ];
        for (what, situation, want) in rows {
            assert_eq!(verdict(situation), *want, "{what}");
        }
    }

    #[test]
    fn only_a_stale_pooled_connection_is_not_held_against_the_server() {
        let stale = Situation {
            reused: true,
            ..s(Failure::NothingReceived)
        };
        assert!(!counts_against_server(&stale));
        assert!(counts_against_server(&s(Failure::NothingReceived)));
        assert!(counts_against_server(&s(Failure::Connect)));
        assert!(counts_against_server(&s(Failure::Timeout)));
    }
}
