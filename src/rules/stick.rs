//! Stick tables as the rule language sees them: a table's key type and stored data
//! types (`store conn_cur,http_req_rate(10s),gpc0`), and the fetches that read or
//! update a tracked entry (`sc_*`, `scN_*`, `src_*`, `table_*` converters). The
//! counters themselves live in each shard (`tables`) and are shared across
//! shards and nodes by the cluster thread.

use std::time::Duration;

use super::sample::Smp;
use super::{Ctx, Tracked};

/// Most data types one table stores (HAProxy configs store one to four).
pub const MAX_STORED: usize = 8;

/// What a table stores for each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    ConnCur,
    ConnCnt,
    ConnRate,
    SessCnt,
    SessRate,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
    HttpFailCnt,
    HttpFailRate,
    BytesInCnt,
    BytesInRate,
    BytesOutCnt,
    BytesOutRate,
    Gpc0,
    Gpc0Rate,
    Gpc1,
    Gpc1Rate,
    Gpt0,
    ServerId,
}

impl DataType {
    /// The `store` name (without the period of a rate).
    pub fn parse(name: &str) -> Option<DataType> {
        use DataType::*;
        Some(match name {
            "conn_cur" => ConnCur,
            "conn_cnt" => ConnCnt,
            "conn_rate" => ConnRate,
            "sess_cnt" => SessCnt,
            "sess_rate" => SessRate,
            "http_req_cnt" => HttpReqCnt,
            "http_req_rate" => HttpReqRate,
            "http_err_cnt" => HttpErrCnt,
            "http_err_rate" => HttpErrRate,
            "http_fail_cnt" => HttpFailCnt,
            "http_fail_rate" => HttpFailRate,
            "bytes_in_cnt" => BytesInCnt,
            "bytes_in_rate" => BytesInRate,
            "bytes_out_cnt" => BytesOutCnt,
            "bytes_out_rate" => BytesOutRate,
            "gpc0" => Gpc0,
            "gpc0_rate" => Gpc0Rate,
            "gpc1" => Gpc1,
            "gpc1_rate" => Gpc1Rate,
            "gpt0" => Gpt0,
            "server_id" => ServerId,
            _ => return None,
        })
    }

    /// A rate over a period (`store http_req_rate(10s)`).
    pub fn is_rate(self) -> bool {
        use DataType::*;
        matches!(
            self,
            ConnRate
                | SessRate
                | HttpReqRate
                | HttpErrRate
                | HttpFailRate
                | BytesInRate
                | BytesOutRate
                | Gpc0Rate
                | Gpc1Rate
        )
    }

    /// Where HAProxy 2.6 lists this type in `show table` (its `STKTABLE_DT_*` order).
    pub fn haproxy_rank(self) -> u8 {
        use DataType::*;
        match self {
            ServerId => 0,
            Gpt0 => 1,
            Gpc0 => 2,
            Gpc0Rate => 3,
            ConnCnt => 4,
            ConnRate => 5,
            ConnCur => 6,
            SessCnt => 7,
            SessRate => 8,
            HttpReqCnt => 9,
            HttpReqRate => 10,
            HttpErrCnt => 11,
            HttpErrRate => 12,
            BytesInCnt => 13,
            BytesInRate => 14,
            BytesOutCnt => 15,
            BytesOutRate => 16,
            Gpc1 => 17,
            Gpc1Rate => 18,
            HttpFailCnt => 19,
            HttpFailRate => 20,
        }
    }

    pub fn name(self) -> &'static str {
        use DataType::*;
        match self {
            ConnCur => "conn_cur",
            ConnCnt => "conn_cnt",
            ConnRate => "conn_rate",
            SessCnt => "sess_cnt",
            SessRate => "sess_rate",
            HttpReqCnt => "http_req_cnt",
            HttpReqRate => "http_req_rate",
            HttpErrCnt => "http_err_cnt",
            HttpErrRate => "http_err_rate",
            HttpFailCnt => "http_fail_cnt",
            HttpFailRate => "http_fail_rate",
            BytesInCnt => "bytes_in_cnt",
            BytesInRate => "bytes_in_rate",
            BytesOutCnt => "bytes_out_cnt",
            BytesOutRate => "bytes_out_rate",
            Gpc0 => "gpc0",
            Gpc0Rate => "gpc0_rate",
            Gpc1 => "gpc1",
            Gpc1Rate => "gpc1_rate",
            Gpt0 => "gpt0",
            ServerId => "server_id",
        }
    }
}

/// The key of a table's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ip,
    Ipv6,
    Integer,
    /// Strings cut to this many bytes.
    String(usize),
    Binary(usize),
}

/// A `stick-table` line, resolved: the table is named after its proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub key: KeyType,
    /// Most entries per shard.
    pub size: usize,
    /// An entry not touched for this long is forgotten.
    pub expire: Duration,
    /// Stored data types, rates with their period.
    pub store: Vec<(DataType, Duration)>,
}

impl TableSpec {
    /// The period of a stored data type, if the table stores it.
    pub fn stores(&self, d: DataType) -> Option<Duration> {
        self.store.iter().find(|(t, _)| *t == d).map(|(_, p)| *p)
    }
}

/// What an `sc_*` / `src_*` fetch does with its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScOp {
    /// Read a stored value.
    Get(DataType),
    /// `inc_gpc0` / `inc_gpc1`: increment, then read.
    Inc(DataType),
    /// `clr_gpc0` / `clr_gpc1`: read, then reset to zero.
    Clr(DataType),
    /// `sc_tracked`: the counter is tracked.
    Tracked,
    /// `sc_trackers`: how many connections track the entry.
    Trackers,
    /// `kbytes_in` / `kbytes_out`: byte counts in kilobytes.
    Kbytes(DataType),
}

/// Which entry a fetch looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScWhich {
    /// `sc_*(N[,table])`, `scN_*([table])`: what track-scN tracks (in `table`, if
    /// given, only when it is that table).
    Tracked { counter: u8, table: Option<u32> },
    /// `src_*([table])`: the client address looked up in `table`.
    Src { table: u32 },
}

/// A stick-counter fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScFetch {
    pub which: ScWhich,
    pub op: ScOp,
}

/// `http_req_rate` → a read of that data type, `inc_gpc0` → an increment, ...
pub fn parse_op(name: &str) -> Option<ScOp> {
    use DataType::*;
    Some(match name {
        "tracked" => ScOp::Tracked,
        "trackers" => ScOp::Trackers,
        "inc_gpc0" => ScOp::Inc(Gpc0),
        "inc_gpc1" => ScOp::Inc(Gpc1),
        "clr_gpc0" => ScOp::Clr(Gpc0),
        "clr_gpc1" => ScOp::Clr(Gpc1),
        "get_gpc0" => ScOp::Get(Gpc0),
        "get_gpc1" => ScOp::Get(Gpc1),
        "get_gpt0" => ScOp::Get(Gpt0),
        "kbytes_in" => ScOp::Kbytes(BytesInCnt),
        "kbytes_out" => ScOp::Kbytes(BytesOutCnt),
        other => ScOp::Get(DataType::parse(other)?),
    })
}

impl ScOp {
    /// The data type the table must store for this operation.
    pub fn needs(self) -> Option<DataType> {
        match self {
            ScOp::Get(d) | ScOp::Inc(d) | ScOp::Clr(d) | ScOp::Kbytes(d) => Some(d),
            ScOp::Tracked | ScOp::Trackers => None,
        }
    }
}

/// The entry a fetch designates in this request, if any: (table, key).
pub fn entry(f: &ScFetch, ctx: &Ctx<'_>) -> Option<Tracked> {
    match f.which {
        ScWhich::Tracked { counter, table } => {
            let t = ctx.txn.track[counter as usize].or(ctx.txn.sess_track[counter as usize])?;
            match table {
                Some(want) if want != t.table => {
                    // `sc_*(N,other)`: the same key looked up in another table.
                    Some(Tracked {
                        table: want,
                        key: t.key,
                    })
                }
                _ => Some(t),
            }
        }
        ScWhich::Src { table } => Some(Tracked {
            table,
            key: ip_key(ctx.src.ip()),
        }),
    }
}

/// Evaluates a stick-counter fetch against this shard's counters.
pub fn eval<'a>(f: &ScFetch, ctx: &Ctx<'a>) -> Option<Smp<'a>> {
    let world = ctx.world?;
    let e = entry(f, ctx);
    match f.op {
        ScOp::Tracked => {
            let ScWhich::Tracked { counter, .. } = f.which else {
                return None;
            };
            let c = counter as usize;
            Some(Smp::Bool(
                ctx.txn.track[c].is_some() || ctx.txn.sess_track[c].is_some(),
            ))
        }
        op => {
            // Not tracked: the fetch fails (as in HAProxy); tracked but absent from
            // the table: 0.
            let e = e?;
            Some(Smp::Int(world.sc_value(e, op)?))
        }
    }
}

/// The 64-bit key of a client address (IPv4-mapped IPv6 as IPv4).
pub fn ip_key(ip: std::net::IpAddr) -> u64 {
    use xxhash_rust::xxh3::xxh3_64;
    match ip {
        std::net::IpAddr::V4(a) => xxh3_64(&a.octets()),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => xxh3_64(&v4.octets()),
            None => xxh3_64(&a.octets()),
        },
    }
}
