//! The model of a `tcp-check` rule sequence (`option tcp-check` and the protocol checks
//! HAProxy builds on it: `mysql-check`, `pgsql-check`, `redis-check`, `smtpchk`,
//! `ldap-check`). The health thread runs it (`health::tcpcheck`); this file only says
//! what each rule asks for.

/// Which option built the sequence: the plain `tcp-check` reports failures with their
/// step, the protocol checks with their own texts (as HAProxy does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Redis,
    Mysql,
    Pgsql,
    Smtp,
    Ldap,
}

/// A full rule sequence, the implicit first connect included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheck {
    pub proto: Proto,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// HAProxy's step number in texts (`at step N`): the rule's place in the file,
    /// comments counted; 0 for the implicit first connect.
    pub step: u32,
    pub comment: Option<String>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Connect(Connect),
    Send(Vec<u8>),
    Expect(Expect),
}

/// `tcp-check connect [default] [port N] [addr A] [send-proxy] [ssl] [sni S] [linger]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// `default`: the server's own check settings (PROXY header, TLS) apply.
    pub default: bool,
    /// The connect HAProxy adds before the first rule when the sequence has none.
    pub implicit: bool,
    pub port: Option<u16>,
    pub addr: Option<std::net::SocketAddr>,
    pub send_proxy: bool,
    pub ssl: bool,
    pub sni: Option<String>,
}

/// `tcp-check expect [min-recv N] [ok-status S] [error-status S] [tout-status S]
/// [on-success TEXT] [on-error TEXT] [comment C] [!] string|rstring|binary|rbinary P`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// -1: wait for more data while the pattern does not match (HAProxy's default).
    pub min_recv: i64,
    pub inverse: bool,
    pub pattern: Pattern,
    /// Status names (L7OK, L7STS, ...) overriding the defaults.
    pub ok_status: Option<&'static str>,
    pub err_status: Option<&'static str>,
    pub tout_status: Option<&'static str>,
    pub on_success: Option<Message>,
    pub on_error: Option<Message>,
    /// The check's code is the response's first three bytes (smtpchk).
    pub code_from_payload: bool,
    /// Index of the first rule of this run of consecutive expects: more data
    /// re-evaluates the run from there.
    pub head: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `string` and `binary` (decoded): the bytes appear in the response.
    Bytes { data: Vec<u8>, binary: bool },
    /// `rstring`: a regex over the response.
    Regex(String),
    /// `rbinary`: a regex over the response in upper-case hex.
    BinaryRegex(String),
    /// A protocol check's own parser.
    Custom(Custom),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    /// MySQL's initial handshake packet (not an error packet).
    MysqlInitialHandshake,
    /// The packet after the handshake (an OK, not an error packet).
    MysqlOk,
    /// An LDAPv3 bind response with result 0.
    LdapBindResponse,
}

/// `on-success` / `on-error`: a fixed text, or a slice of the response (the few
/// expressions HAProxy's own protocol checks use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    /// `res.payload(OFFSET,0)`, with `ltrim(' ')` and `cut_crlf` when set.
    Payload {
        offset: usize,
        ltrim: bool,
        cut_crlf: bool,
    },
}
