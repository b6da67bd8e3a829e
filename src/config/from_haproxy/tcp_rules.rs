//! haproxy.cfg TCP rules: `tcp-request connection|session|content`, `tcp-request
//! inspect-delay`, `tcp-response content` and `tcp-response inspect-delay`.

use super::*;
use crate::config::TcpAction;
use crate::rules::action::log_level;
use crate::rules::logformat::Mode as LfMode;
use crate::rules::LogFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connection,
    Session,
    Content,
    Response,
}

impl Mapper<'_> {
    /// `tcp-request ...` (`response`: `tcp-response ...`).
    pub(super) fn tcp_rule(&mut self, l: &Line, response: bool, p: &mut Proxy) {
        let kw = if response {
            "tcp-response"
        } else {
            "tcp-request"
        };
        let a = l.args();
        let Some(first) = a.first() else {
            return self.err(
                l.line,
                format!("'{kw}' expects 'inspect-delay' or 'content'"),
            );
        };
        let fe_only = p.kind == SectionKind::Backend;
        let stage = match (first.as_str(), response) {
            ("inspect-delay", _) => {
                let Some(t) = a.get(1) else {
                    return self.err(l.line, format!("'{kw} inspect-delay' expects a time"));
                };
                match parse_time(t) {
                    Ok(d) if response => p.response_inspect_delay = Some(d),
                    Ok(d) => p.inspect_delay = Some(d),
                    Err(e) => self.err(l.line, format!("'{kw} inspect-delay': {e}")),
                }
                return;
            }
            ("content", false) => Stage::Content,
            ("content", true) => {
                return self.err(
                    l.line,
                    "'tcp-response content' rules are not supported yet (the server's bytes are not inspected)",
                )
            }
            ("connection", false) if !fe_only => Stage::Connection,
            ("session", false) if !fe_only => Stage::Session,
            ("connection" | "session", false) => {
                return self.err(
                    l.line,
                    format!("'tcp-request {first}' is not allowed in a 'backend' section"),
                )
            }
            (other, _) => {
                return self.err(l.line, format!("'{kw} {other}' is not a valid rule kind"))
            }
        };
        let words = &a[1..];
        let Some(action) = words.first() else {
            return self.err(l.line, format!("'{kw} {first}' expects an action"));
        };
        let cut = words
            .iter()
            .position(|x| x == "if" || x == "unless")
            .unwrap_or(words.len());
        let args: Vec<&str> = words[1..cut]
            .iter()
            .map(String::as_str)
            .take_while(|a| !a.is_empty())
            .collect();
        let what = format!("{kw} {first}");
        let Some(cond) = self.condition_of(l.line, &words[cut..], p, &what) else {
            return;
        };
        use crate::rules::parse::Phase;
        self.phase = Some(match stage {
            Stage::Connection => Phase::TcpConnection,
            Stage::Session => Phase::TcpSession,
            Stage::Content => Phase::TcpContent,
            Stage::Response => Phase::TcpResponse,
        });
        let act = self.tcp_action(stage, action, &args, p);
        self.phase = None;
        let act = match act {
            Ok(a) => a,
            Err(e) => return self.err(l.line, format!("'{what} {action}': {e}")),
        };
        let rule = TcpRule {
            cond,
            action: act,
            line: l.line,
        };
        match stage {
            Stage::Connection => p.tcp_connection.push(rule),
            Stage::Session => p.tcp_session.push(rule),
            Stage::Content => p.tcp_content.push(rule),
            Stage::Response => p.tcp_response.push(rule),
        }
    }

    fn tcp_action(
        &mut self,
        stage: Stage,
        action: &str,
        args: &[&str],
        p: &mut Proxy,
    ) -> Result<TcpAction, String> {
        let none = |a: TcpAction| {
            if args.is_empty() {
                Ok(a)
            } else {
                Err("takes no argument".to_string())
            }
        };
        if let Some(rest) = action.strip_suffix(')') {
            if let Some(name) = rest.strip_prefix("set-var(") {
                let id = self.vars.id(name)?;
                let [e] = args else {
                    return Err("expects a sample expression".into());
                };
                let expr = {
                    let mut env = self.rule_env(p);
                    crate::rules::Expr::parse(e, &mut env)?
                };
                return Ok(TcpAction::SetVar(var_target(id, name), expr));
            }
            if let Some(name) = rest.strip_prefix("set-var-fmt(") {
                let id = self.vars.id(name)?;
                let [f] = args else {
                    return Err("expects a log-format string".into());
                };
                let fmt = {
                    let mut env = self.rule_env(p);
                    LogFormat::parse(f, LfMode::Plain, &mut env)?
                };
                return Ok(TcpAction::SetVarFmt(var_target(id, name), fmt));
            }
            if let Some(name) = rest.strip_prefix("unset-var(") {
                let id = self.vars.id(name)?;
                return none(TcpAction::UnsetVar(var_target(id, name)));
            }
            for (prefix, gpc) in [("sc-inc-gpc0(", 0u8), ("sc-inc-gpc1(", 1)] {
                if let Some(n) = rest.strip_prefix(prefix) {
                    let counter = sc_counter(n)?;
                    return none(TcpAction::ScIncGpc { counter, gpc });
                }
            }
            if let Some(n) = rest.strip_prefix("sc-set-gpt0(") {
                let counter = sc_counter(n)?;
                let [e] = args else {
                    return Err("expects an integer or a sample expression".into());
                };
                // An integer is a constant (HAProxy: `{ <int> | <expr> }`).
                let e = match e.parse::<i64>() {
                    Ok(n) => format!("int({n})"),
                    Err(_) => e.to_string(),
                };
                let expr = {
                    let mut env = self.rule_env(p);
                    crate::rules::Expr::parse(&e, &mut env)?
                };
                return Ok(TcpAction::ScSetGpt0 { counter, expr });
            }
        }
        if let Some(n) = action.strip_prefix("track-sc") {
            if stage == Stage::Response {
                return Err("not allowed in tcp-response".into());
            }
            let counter = sc_counter(n)?;
            let (key, table) = match args {
                [k] => (*k, None),
                [k, "table", t] => (*k, Some(*t)),
                _ => return Err("expects KEY [table NAME]".into()),
            };
            let table = match table {
                Some(t) => self
                    .names
                    .table(t)
                    .ok_or_else(|| format!("no stick-table named '{t}'"))?,
                None => self.names.table(&p.name).ok_or_else(|| {
                    format!(
                        "no stick-table in proxy '{}' (name one with 'table')",
                        p.name
                    )
                })?,
            };
            let key = {
                let mut env = self.rule_env(p);
                crate::rules::Expr::parse(key, &mut env)?
            };
            return Ok(TcpAction::TrackSc {
                counter,
                key,
                table: table as u32,
            });
        }
        match action {
            "accept" => none(TcpAction::Accept),
            "reject" => none(TcpAction::Reject),
            "silent-drop" => none(TcpAction::SilentDrop),
            "close" if stage == Stage::Response => none(TcpAction::Reject),
            "expect-proxy" if stage == Stage::Connection => match args {
                ["layer4"] => Ok(TcpAction::ExpectProxy),
                _ => Err("expects 'layer4'".into()),
            },
            "capture" if stage == Stage::Content => {
                let [e, "len", n] = args else {
                    return Err("expects a sample expression and 'len N'".into());
                };
                let len: usize = n
                    .parse()
                    .map_err(|_| format!("'len' expects a number, got '{n}'"))?;
                if p.kind == SectionKind::Backend {
                    return Err("'capture' is only allowed in frontends".into());
                }
                let expr = {
                    let mut env = self.rule_env(p);
                    crate::rules::Expr::parse(e, &mut env)?
                };
                p.captures
                    .request
                    .push(crate::config::CaptureSlot { header: None, len });
                Ok(TcpAction::Capture {
                    expr,
                    slot: p.captures.request.len() - 1,
                    len,
                })
            }
            "set-log-level" if stage != Stage::Connection => match args {
                [lvl] => Ok(TcpAction::SetLogLevel(
                    log_level(lvl).ok_or_else(|| format!("unknown log level '{lvl}'"))?,
                )),
                _ => Err("expects a log level".into()),
            },
            "set-nice" => Ok(TcpAction::Nothing),
            "switch-mode" => {
                Err("'switch-mode http' is not supported by ringlb (use 'mode http')".into())
            }
            "use-service"
            | "do-resolve"
            | "send-spoe-group"
            | "set-src"
            | "set-dst"
            | "set-src-port"
            | "set-dst-port"
            | "set-tos"
            | "set-mark"
            | "set-priority-class"
            | "set-priority-offset"
            | "attach-srv"
            | "expect-netscaler-cip" => Err("is not supported by ringlb".into()),
            a if a.starts_with("lua.") => Err("Lua is not supported by ringlb".into()),
            other => Err(format!("unknown or unsupported action '{other}'")),
        }
    }
}

fn var_target(id: crate::rules::vars::VarId, name: &str) -> crate::rules::action::VarTarget {
    use crate::rules::action::VarTarget;
    match id.scope {
        crate::rules::vars::Scope::Proc => {
            VarTarget::Proc(name.split_once('.').map_or("", |(_, n)| n).into())
        }
        _ => VarTarget::Slot(id),
    }
}

fn sc_counter(n: &str) -> Result<u8, String> {
    match n.parse::<u8>() {
        Ok(i) if i < 3 => Ok(i),
        _ => Err(format!("invalid stick counter '{n}' (0, 1 or 2)")),
    }
}
