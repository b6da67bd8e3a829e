//! The names, positions, tags and types of HAProxy 2.6's `show stat` and `show info`
//! fields: the one table the CSV, `typed` and `json` outputs, `show schema json` and
//! the Prometheus exporter read. A field's tags say where its value comes from
//! (origin), what kind of figure it is (nature) and how far it holds (scope), in
//! HAProxy's letters (`MGP`: a metric, a gauge, for the process); its type is
//! HAProxy's (`u32`, `u64`, `s32`, `str`).

/// What one object fills of a field: its tags and type (`"MGP:u32"`), or `""` when
/// that kind of object never fills it.
#[derive(Debug, Clone, Copy)]
pub struct Meta(pub &'static str);

impl Meta {
    #[cfg(test)]
    pub fn fills(self) -> bool {
        !self.0.is_empty()
    }

    /// The three tag letters (`MGP`).
    pub fn tags(self) -> &'static str {
        self.0.split(':').next().unwrap_or("")
    }

    /// HAProxy's type name (`u32`, `u64`, `s32`, `str`).
    pub fn ty(self) -> &'static str {
        self.0.split(':').nth(1).unwrap_or("str")
    }

    /// The tags spelt out, for the JSON outputs: (origin, nature, scope).
    pub fn words(self) -> (&'static str, &'static str, &'static str) {
        let t = self.tags().as_bytes();
        let origin = match t.first() {
            Some(b'M') => "Metric",
            Some(b'S') => "Status",
            Some(b'K') => "Key",
            Some(b'C') => "Config",
            Some(b'P') => "Product",
            _ => "Unknown",
        };
        let nature = match t.get(1) {
            Some(b'G') => "Gauge",
            Some(b'L') => "Limit",
            Some(b'm') => "Min",
            Some(b'M') => "Max",
            Some(b'R') => "Rate",
            Some(b'C') => "Counter",
            Some(b'D') => "Duration",
            Some(b'A') => "Age",
            Some(b'T') => "Time",
            Some(b'N') => "Name",
            Some(b'O') => "Output",
            Some(b'a') => "Avg",
            _ => "Unknown",
        };
        let scope = match t.get(2) {
            Some(b'P') => "Process",
            Some(b'S') => "Service",
            Some(b's') => "System",
            Some(b'C') => "Cluster",
            _ => "Unknown",
        };
        (origin, nature, scope)
    }
}

/// One `show stat` field: its name, what a frontend, a backend and a server fill of
/// it, and what it means.
pub struct StatField {
    pub name: &'static str,
    pub fe: Meta,
    pub be: Meta,
    pub sv: Meta,
    pub desc: &'static str,
}

/// The kind of a `show stat` row (HAProxy's `type` column: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obj {
    Frontend,
    Backend,
    Server,
}

impl Obj {
    /// The letter of `show stat typed` and the word of `show stat json`.
    pub fn letter(self) -> char {
        match self {
            Obj::Frontend => 'F',
            Obj::Backend => 'B',
            Obj::Server => 'S',
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Obj::Frontend => "Frontend",
            Obj::Backend => "Backend",
            Obj::Server => "Server",
        }
    }

    /// HAProxy's `type` number, the bit of the `show stat IID TYPE SID` filter.
    pub fn number(self) -> u32 {
        match self {
            Obj::Frontend => 0,
            Obj::Backend => 1,
            Obj::Server => 2,
        }
    }
}

impl StatField {
    pub fn meta(&self, obj: Obj) -> Meta {
        match obj {
            Obj::Frontend => self.fe,
            Obj::Backend => self.be,
            Obj::Server => self.sv,
        }
    }
}

macro_rules! stat_fields {
    ($(($name:literal, $fe:literal, $be:literal, $sv:literal, $desc:literal)),* $(,)?) => {
        /// HAProxy 2.6's `show stat` fields in their order (position = index). The
        /// CSV has a `-` column between the general fields and the modules' (`ssl`,
        /// `h2`, `h1`), which `typed` and `json` skip.
        pub const STAT: &[StatField] = &[
            $(StatField {
                name: $name,
                fe: Meta($fe),
                be: Meta($be),
                sv: Meta($sv),
                desc: $desc,
            }),*
        ];
    };
}

stat_fields! {
    ("pxname", "KNS:str", "KNS:str", "KNS:str", "Proxy name"),
    ("svname", "KNS:str", "KNS:str", "KNS:str", "Server name, or FRONTEND / BACKEND"),
    ("qcur", "", "MGP:u32", "MGP:u32", "Requests waiting in the queue now"),
    ("qmax", "", "MMP:u32", "MMP:u32", "Most requests seen waiting in the queue"),
    ("scur", "MGP:u32", "MGP:u32", "MGP:u32", "Current sessions"),
    ("smax", "MMP:u32", "MMP:u32", "MMP:u32", "Most sessions seen at once"),
    ("slim", "CLP:u32", "CLP:u32", "CLP:u32", "Session limit (maxconn)"),
    ("stot", "MCP:u64", "MCP:u64", "MCP:u64", "Sessions since the start"),
    ("bin", "MCP:u64", "MCP:u64", "MCP:u64", "Bytes received from clients"),
    ("bout", "MCP:u64", "MCP:u64", "MCP:u64", "Bytes sent to clients"),
    ("dreq", "MCP:u64", "MCP:u64", "", "Requests denied by rules"),
    ("dresp", "MCP:u64", "MCP:u64", "MCP:u64", "Responses denied by rules"),
    ("ereq", "MCP:u64", "", "", "Invalid requests"),
    ("econ", "", "MCP:u64", "MCP:u64", "Failed connections to servers"),
    ("eresp", "", "MCP:u64", "MCP:u64", "Invalid or failed server responses"),
    ("wretr", "", "MCP:u64", "MCP:u64", "Connection attempts retried"),
    ("wredis", "", "MCP:u64", "MCP:u64", "Requests sent again to another server"),
    ("status", "SGP:str", "SGP:str", "SGP:str", "Status: OPEN, UP, DOWN, MAINT, DRAIN, NOLB, no check"),
    ("weight", "", "MaP:u32", "MaP:u32", "Effective weight (backend: of its usable servers)"),
    ("act", "", "MGP:u32", "SGP:u32", "Active servers usable (server: 1 if active)"),
    ("bck", "", "MGP:u32", "SGP:u32", "Backup servers usable (server: 1 if backup)"),
    ("chkfail", "", "", "MCP:u64", "Failed health checks"),
    ("chkdown", "", "MCP:u64", "MCP:u64", "Transitions from UP to DOWN"),
    ("lastchg", "", "MAP:u32", "MAP:u32", "Seconds since the last change of state"),
    ("downtime", "", "MCP:u32", "MCP:u32", "Seconds spent DOWN"),
    ("qlimit", "", "", "CGS:u32", "Queue limit (maxqueue)"),
    ("pid", "KGP:u32", "KGP:u32", "KGP:u32", "Process number"),
    ("iid", "KGS:u32", "KGS:u32", "KGS:u32", "Proxy id"),
    ("sid", "KGS:u32", "KGS:u32", "KGS:u32", "Server id (0 for a frontend or backend)"),
    ("throttle", "", "", "MaP:u32", "Slow start: percentage of the weight in force"),
    ("lbtot", "", "MCP:u64", "MCP:u64", "Times a server was picked"),
    ("tracked", "", "", "CNS:str", "Server whose checks this one follows"),
    ("type", "CGS:u32", "CGS:u32", "CGS:u32", "Row kind: 0 frontend, 1 backend, 2 server"),
    ("rate", "MRP:u32", "MGP:u32", "MRP:u32", "Sessions over the last second"),
    ("rate_lim", "CLP:u32", "", "", "Session rate limit"),
    ("rate_max", "MMP:u32", "MGP:u32", "MMP:u32", "Most sessions seen in one second"),
    ("check_status", "", "", "MOP:str", "Outcome of the last health check"),
    ("check_code", "", "", "MOP:u32", "Status code of the last health check"),
    ("check_duration", "", "", "MDP:u64", "Duration of the last health check, in ms"),
    ("hrsp_1xx", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with a 1xx status"),
    ("hrsp_2xx", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with a 2xx status"),
    ("hrsp_3xx", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with a 3xx status"),
    ("hrsp_4xx", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with a 4xx status"),
    ("hrsp_5xx", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with a 5xx status"),
    ("hrsp_other", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP responses with another status"),
    ("hanafail", "", "", "MCP:u64", "Failed health checks (observe)"),
    ("req_rate", "MRP:u32", "", "", "HTTP requests over the last second"),
    ("req_rate_max", "MMP:u32", "", "", "Most HTTP requests seen in one second"),
    ("req_tot", "MCP:u64", "MCP:u64", "MCP:u64", "HTTP requests (backend, server: answered)"),
    ("cli_abrt", "", "MCP:u64", "MCP:u64", "Transfers aborted by the client"),
    ("srv_abrt", "", "MCP:u64", "MCP:u64", "Transfers aborted by the server"),
    ("comp_in", "MCP:u64", "MCP:u64", "", "Bytes fed to the compressor"),
    ("comp_out", "MCP:u64", "MCP:u64", "", "Bytes out of the compressor"),
    ("comp_byp", "MCP:u64", "MCP:u64", "", "Bytes that bypassed the compressor"),
    ("comp_rsp", "MCP:u64", "MCP:u64", "", "Responses compressed"),
    ("lastsess", "", "MAP:s32", "MAP:s32", "Seconds since the last session (-1: none)"),
    ("last_chk", "", "", "MOP:str", "What the last failed health check said"),
    ("last_agt", "", "", "", "What the last agent check said"),
    ("qtime", "", "MaP:u32", "MaP:u32", "Average queue time over the last 1024 requests, ms"),
    ("ctime", "", "MaP:u32", "MaP:u32", "Average connect time over the last 1024 requests, ms"),
    ("rtime", "", "MaP:u32", "MaP:u32", "Average response time over the last 1024 requests, ms"),
    ("ttime", "", "MaP:u32", "MaP:u32", "Average total time over the last 1024 requests, ms"),
    ("agent_status", "", "", "", "Outcome of the last agent check"),
    ("agent_code", "", "", "", "Code of the last agent check"),
    ("agent_duration", "", "", "", "Duration of the last agent check, ms"),
    ("check_desc", "", "", "MOP:str", "Description of the last health check's outcome"),
    ("agent_desc", "", "", "", "Description of the last agent check's outcome"),
    ("check_rise", "", "", "CGS:u32", "Passed checks needed to go UP"),
    ("check_fall", "", "", "CGS:u32", "Failed checks needed to go DOWN"),
    ("check_health", "", "", "CGS:u32", "Health counter: 0 to rise+fall-1, UP from rise"),
    ("agent_rise", "", "", "", "Agent rise"),
    ("agent_fall", "", "", "", "Agent fall"),
    ("agent_health", "", "", "", "Agent health"),
    ("addr", "", "", "CGS:str", "Server address"),
    ("cookie", "", "CNS:str", "CNS:str", "Persistence cookie"),
    ("mode", "CGS:str", "CGS:str", "CGS:str", "Proxy mode: http or tcp"),
    ("algo", "", "CGS:str", "", "Balancing algorithm"),
    ("conn_rate", "MRP:u32", "", "", "Connections over the last second"),
    ("conn_rate_max", "MMP:u32", "", "", "Most connections seen in one second"),
    ("conn_tot", "MCP:u64", "", "", "Connections since the start"),
    ("intercepted", "MCP:u64", "", "", "Requests the proxy answered itself"),
    ("dcon", "MCP:u64", "", "", "Connections refused by tcp-request connection rules"),
    ("dses", "MCP:u64", "", "", "Sessions refused by tcp-request session rules"),
    ("wrew", "MCP:u64", "MCP:u64", "MCP:u64", "Failed header rewrites"),
    ("connect", "", "MCP:u64", "MCP:u64", "New server connections tried"),
    ("reuse", "", "MCP:u64", "MCP:u64", "Idle server connections reused"),
    ("cache_lookups", "MCP:u64", "MCP:u64", "", "Cache lookups"),
    ("cache_hits", "MCP:u64", "MCP:u64", "", "Cache hits"),
    ("srv_icur", "", "", "MGP:u32", "Idle server connections now"),
    ("src_ilim", "", "", "", "Idle server connection limit"),
    ("qtime_max", "", "MMP:u32", "MMP:u32", "Longest queue time seen, ms"),
    ("ctime_max", "", "MMP:u32", "MMP:u32", "Longest connect time seen, ms"),
    ("rtime_max", "", "MMP:u32", "MMP:u32", "Longest response time seen, ms"),
    ("ttime_max", "", "MMP:u32", "MMP:u32", "Longest total time seen, ms"),
    ("eint", "MCP:u64", "MCP:u64", "MCP:u64", "Internal errors"),
    ("idle_conn_cur", "", "", "MGP:u32", "Idle connections not known to be safe to reuse"),
    ("safe_conn_cur", "", "", "MGP:u32", "Idle connections safe to reuse"),
    ("used_conn_cur", "", "", "MGP:u32", "Server connections in use"),
    ("need_conn_est", "", "", "MGP:u32", "Server connections estimated to be needed"),
    ("uweight", "", "MaP:u32", "MaP:u32", "Weight set by the operator"),
    ("agg_server_status", "", "MGP:u32", "", "Servers per status (backend)"),
    ("agg_server_check_status", "", "MGP:u32", "", "Servers per status (deprecated)"),
    ("agg_check_status", "", "MGP:u32", "", "Servers per check status"),
    ("ssl_sess", "MCP:u64", "MCP:u64", "MCP:u64", "TLS sessions established"),
    ("ssl_reused_sess", "MCP:u64", "MCP:u64", "MCP:u64", "TLS sessions resumed"),
    ("ssl_failed_handshake", "MCP:u64", "MCP:u64", "MCP:u64", "Failed TLS handshakes"),
    ("h2_headers_rcvd", "MCP:u64", "MCP:u64", "", "HTTP/2 HEADERS frames received"),
    ("h2_data_rcvd", "MCP:u64", "MCP:u64", "", "HTTP/2 DATA frames received"),
    ("h2_settings_rcvd", "MCP:u64", "MCP:u64", "", "HTTP/2 SETTINGS frames received"),
    ("h2_rst_stream_rcvd", "MCP:u64", "MCP:u64", "", "HTTP/2 RST_STREAM frames received"),
    ("h2_goaway_rcvd", "MCP:u64", "MCP:u64", "", "HTTP/2 GOAWAY frames received"),
    ("h2_detected_conn_protocol_errors", "MCP:u64", "MCP:u64", "", "HTTP/2 connection protocol errors"),
    ("h2_detected_strm_protocol_errors", "MCP:u64", "MCP:u64", "", "HTTP/2 stream protocol errors"),
    ("h2_rst_stream_resp", "MCP:u64", "MCP:u64", "", "HTTP/2 RST_STREAM frames sent"),
    ("h2_goaway_resp", "MCP:u64", "MCP:u64", "", "HTTP/2 GOAWAY frames sent"),
    ("h2_open_connections", "MGP:u64", "MGP:u64", "", "HTTP/2 connections open"),
    ("h2_backend_open_streams", "MGP:u64", "MGP:u64", "", "HTTP/2 streams open to servers"),
    ("h2_total_connections", "MCP:u64", "MCP:u64", "", "HTTP/2 connections since the start"),
    ("h2_backend_total_streams", "MCP:u64", "MCP:u64", "", "HTTP/2 streams to servers since the start"),
    ("h1_open_connections", "MGP:u64", "MGP:u64", "", "HTTP/1 connections open"),
    ("h1_open_streams", "MGP:u64", "MGP:u64", "", "HTTP/1 requests in progress"),
    ("h1_total_connections", "MCP:u64", "MCP:u64", "", "HTTP/1 connections since the start"),
    ("h1_total_streams", "MCP:u64", "MCP:u64", "", "HTTP/1 requests since the start"),
    ("h1_bytes_in", "MCP:u64", "MCP:u64", "", "HTTP/1 bytes received"),
    ("h1_bytes_out", "MCP:u64", "MCP:u64", "", "HTTP/1 bytes sent"),
    ("h1_spliced_bytes_in", "MCP:u64", "MCP:u64", "", "HTTP/1 bytes received by splice"),
    ("h1_spliced_bytes_out", "MCP:u64", "MCP:u64", "", "HTTP/1 bytes sent by splice"),
}

/// Position of the first module field (`ssl_sess`): the CSV puts its `-` column
/// before it.
pub const FIRST_MODULE: usize = 103;

/// The position of the stat field `name`.
pub fn stat_pos(name: &str) -> Option<usize> {
    STAT.iter().position(|f| f.name == name)
}

/// One `show info` field: its position, name and tags.
pub struct InfoField {
    pub pos: usize,
    pub name: &'static str,
    pub meta: Meta,
}

macro_rules! info_fields {
    ($(($pos:literal, $name:literal, $meta:literal)),* $(,)?) => {
        /// HAProxy 2.6's `show info` fields in order, with their positions (some
        /// positions are fields HAProxy leaves out when empty).
        pub const INFO: &[InfoField] = &[
            $(InfoField { pos: $pos, name: $name, meta: Meta($meta) }),*
        ];
    };
}

info_fields! {
    (0, "Name", "POS:str"),
    (1, "Version", "POS:str"),
    (2, "Release_date", "POS:str"),
    (3, "Nbthread", "CGS:u32"),
    (4, "Nbproc", "CGS:u32"),
    (5, "Process_num", "KGP:u32"),
    (6, "Pid", "SGP:u32"),
    (7, "Uptime", "MDP:str"),
    (8, "Uptime_sec", "MDP:u32"),
    (9, "Memmax_MB", "CLP:u32"),
    (10, "PoolAlloc_MB", "MGP:u32"),
    (11, "PoolUsed_MB", "MGP:u32"),
    (12, "PoolFailed", "MCP:u32"),
    (13, "Ulimit-n", "CLP:u32"),
    (14, "Maxsock", "CLP:u32"),
    (15, "Maxconn", "CLP:u32"),
    (16, "Hard_maxconn", "CLP:u32"),
    (17, "CurrConns", "MGP:u32"),
    (18, "CumConns", "MCP:u32"),
    (19, "CumReq", "MCP:u32"),
    (20, "MaxSslConns", "MMP:u32"),
    (21, "CurrSslConns", "MGP:u32"),
    (22, "CumSslConns", "MCP:u32"),
    (23, "Maxpipes", "CLP:u32"),
    (24, "PipesUsed", "MGP:u32"),
    (25, "PipesFree", "MGP:u32"),
    (26, "ConnRate", "MRP:u32"),
    (27, "ConnRateLimit", "CLP:u32"),
    (28, "MaxConnRate", "MMP:u32"),
    (29, "SessRate", "MRP:u32"),
    (30, "SessRateLimit", "CLP:u32"),
    (31, "MaxSessRate", "MRP:u32"),
    (32, "SslRate", "MRP:u32"),
    (33, "SslRateLimit", "CLP:u32"),
    (34, "MaxSslRate", "MMP:u32"),
    (35, "SslFrontendKeyRate", "MGP:u32"),
    (36, "SslFrontendMaxKeyRate", "MMP:u32"),
    (37, "SslFrontendSessionReuse_pct", "MGP:u32"),
    (38, "SslBackendKeyRate", "MRP:u32"),
    (39, "SslBackendMaxKeyRate", "MMP:u32"),
    (40, "SslCacheLookups", "MCP:u32"),
    (41, "SslCacheMisses", "MCP:u32"),
    (42, "CompressBpsIn", "MRP:u32"),
    (43, "CompressBpsOut", "MRP:u32"),
    (44, "CompressBpsRateLim", "CLP:u32"),
    (47, "Tasks", "MGP:u32"),
    (48, "Run_queue", "MGP:u32"),
    (49, "Idle_pct", "MaP:u32"),
    (50, "node", "COS:str"),
    (52, "Stopping", "MGP:u32"),
    (53, "Jobs", "MGP:u32"),
    (54, "Unstoppable Jobs", "MGP:u32"),
    (55, "Listeners", "MGP:u32"),
    (56, "ActivePeers", "MGP:u32"),
    (57, "ConnectedPeers", "MGP:u32"),
    (58, "DroppedLogs", "MGP:u32"),
    (59, "BusyPolling", "MGP:u32"),
    (60, "FailedResolutions", "MGP:u32"),
    (61, "TotalBytesOut", "MGP:u64"),
    (62, "TotalSplicdedBytesOut", "MGP:u64"),
    (63, "BytesOutRate", "MRP:u64"),
    (64, "DebugCommandsIssued", "MGP:u32"),
    (65, "CumRecvLogs", "MCP:u32"),
    (66, "Build info", "POS:str"),
    (67, "Memmax_bytes", "CLP:u32"),
    (68, "PoolAlloc_bytes", "MGP:u64"),
    (69, "PoolUsed_bytes", "MGP:u64"),
    (70, "Start_time_sec", "MDP:u32"),
    (71, "Tainted", "SGP:str"),
}

/// A value of a field: a number (its type comes from the field's `Meta`) or text.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    N(i64),
    S(String),
}

impl V {
    /// As the CSV and `show info` write it.
    pub fn text(&self) -> String {
        match self {
            V::N(n) => n.to_string(),
            V::S(s) => s.clone(),
        }
    }

    pub fn num(&self) -> Option<i64> {
        match self {
            V::N(n) => Some(*n),
            V::S(_) => None,
        }
    }

    /// As `typed` writes it, after the type name.
    pub fn typed(&self, meta: Meta) -> String {
        format!("{}:{}", meta.ty(), self.text())
    }
}

impl From<u64> for V {
    fn from(n: u64) -> V {
        V::N(n.min(i64::MAX as u64) as i64)
    }
}

impl From<u32> for V {
    fn from(n: u32) -> V {
        V::N(i64::from(n))
    }
}

impl From<i64> for V {
    fn from(n: i64) -> V {
        V::N(n)
    }
}

impl From<&str> for V {
    fn from(s: &str) -> V {
        V::S(s.to_string())
    }
}

impl From<String> for V {
    fn from(s: String) -> V {
        V::S(s)
    }
}

/// HAProxy's `show schema json` (draft-04 JSON schema of the `json` outputs).
pub fn schema() -> String {
    let tags = serde_json::json!({
        "type": "object",
        "origin": { "type": "string", "enum": ["Metric", "Status", "Key", "Config", "Product", "Unknown"] },
        "nature": { "type": "string", "enum": ["Gauge", "Limit", "Min", "Max", "Rate", "Counter", "Duration", "Age", "Time", "Name", "Output", "Avg", "Unknown"] },
        "scope": { "type": "string", "enum": ["Cluster", "Process", "Service", "System", "Unknown"] },
        "required": ["origin", "nature", "scope"],
    });
    let value = |ty: &str, v: serde_json::Value| {
        serde_json::json!({
            "properties": { "type": { "type": "string", "enum": [ty] }, "value": v },
            "required": ["type", "value"],
        })
    };
    let int = |min: i64, max: i64| serde_json::json!({ "type": "integer", "minimum": min, "maximum": max });
    let schema = serde_json::json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "oneOf": [
            {
                "title": "Info",
                "type": "array",
                "items": {
                    "title": "InfoItem",
                    "type": "object",
                    "properties": {
                        "field": { "$ref": "#/definitions/field" },
                        "processNum": { "$ref": "#/definitions/processNum" },
                        "tags": { "$ref": "#/definitions/tags" },
                        "value": { "$ref": "#/definitions/typedValue" },
                    },
                    "required": ["field", "processNum", "tags", "value"],
                },
            },
            {
                "title": "Stat",
                "type": "array",
                "items": {
                    "title": "InfoItem",
                    "type": "object",
                    "properties": {
                        "objType": { "enum": ["Frontend", "Backend", "Listener", "Server", "Unknown"] },
                        "proxyId": { "type": "integer", "minimum": 0 },
                        "id": { "type": "integer", "minimum": 0 },
                        "field": { "$ref": "#/definitions/field" },
                        "processNum": { "$ref": "#/definitions/processNum" },
                        "tags": { "$ref": "#/definitions/tags" },
                        "typedValue": { "$ref": "#/definitions/typedValue" },
                    },
                    "required": ["objType", "proxyId", "id", "field", "processNum", "tags", "value"],
                },
            },
            {
                "title": "Error",
                "type": "object",
                "properties": { "errorStr": { "type": "string" } },
                "required": ["errorStr"],
            },
        ],
        "definitions": {
            "field": {
                "type": "object",
                "pos": { "type": "integer", "minimum": 0 },
                "name": { "type": "string" },
                "required": ["pos", "name"],
            },
            "processNum": { "type": "integer", "minimum": 1 },
            "tags": tags,
            "typedValue": {
                "type": "object",
                "oneOf": [
                    { "$ref": "#/definitions/typedValue/definitions/s32Value" },
                    { "$ref": "#/definitions/typedValue/definitions/s64Value" },
                    { "$ref": "#/definitions/typedValue/definitions/u32Value" },
                    { "$ref": "#/definitions/typedValue/definitions/u64Value" },
                    { "$ref": "#/definitions/typedValue/definitions/strValue" },
                ],
                "definitions": {
                    "s32Value": value("s32", int(-2147483648, 2147483647)),
                    "s64Value": value("s64", int(-9007199254740991, 9007199254740991)),
                    "u32Value": value("u32", int(0, 4294967295)),
                    "u64Value": value("u64", int(0, 9007199254740991)),
                    "strValue": value("str", serde_json::json!({ "type": "string" })),
                    "unknownValue": {
                        "properties": {
                            "type": { "type": "integer", "minimum": 0 },
                            "value": { "type": "string", "enum": ["unknown"] },
                        },
                        "required": ["type", "value"],
                    },
                },
            },
        },
    });
    format!("{schema}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_header_is_haproxy_26s() {
        let mut names: Vec<&str> = STAT.iter().map(|f| f.name).collect();
        names.insert(FIRST_MODULE, "-");
        assert_eq!(
            names.join(","),
            super::super::csv::HEADER.trim_end_matches(',')
        );
        assert_eq!(STAT[FIRST_MODULE].name, "ssl_sess");
    }

    #[test]
    fn every_meta_is_well_formed() {
        for f in STAT {
            for m in [f.fe, f.be, f.sv] {
                if m.fills() {
                    assert_eq!(m.tags().len(), 3, "{}", f.name);
                    assert!(["u32", "u64", "s32", "str"].contains(&m.ty()), "{}", f.name);
                    assert!(!m.words().0.contains("Unknown"), "{}", f.name);
                }
            }
        }
        let mut last = None;
        for i in INFO {
            assert!(last.is_none_or(|l| l < i.pos), "{}", i.name);
            last = Some(i.pos);
        }
    }
}
