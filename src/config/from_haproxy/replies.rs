//! haproxy.cfg local replies: the bodies of `deny`, `tarpit` and `return`
//! (`status`, `content-type`, `string`, `lf-string`, `file`, `errorfile`, `hdr`),
//! and `redirect` rules.

use super::*;
use crate::config::Reply;
use crate::rules::action::{Body, Redirect, RedirectKind, ERROR_STATUSES};

impl Mapper<'_> {
    /// The local reply of `deny`, `tarpit` or `return`.
    pub(super) fn reply(
        &mut self,
        args: &[&str],
        default: u16,
        deny: bool,
        p: &Proxy,
    ) -> Result<Reply, String> {
        let mut status = default;
        let mut ctype: Option<Box<str>> = None;
        let mut body: Option<Body> = None;
        let mut headers = Vec::new();
        let mut custom = false;
        let mut default_pages = false;
        let mut i = 0;
        let arg = |i: usize| {
            args.get(i + 1)
                .copied()
                .ok_or_else(|| format!("'{}' expects an argument", args[i]))
        };
        while i < args.len() {
            match args[i] {
                "deny_status" | "status" => {
                    let v = arg(i)?;
                    status = v
                        .parse()
                        .ok()
                        .filter(|s| (200..600).contains(s))
                        .ok_or_else(|| format!("invalid status code '{v}'"))?;
                    custom |= args[i] == "status";
                }
                "content-type" => {
                    ctype = Some(arg(i)?.into());
                    custom = true;
                }
                "string" => {
                    body = Some(Body::Bytes(arg(i)?.as_bytes().into()));
                    custom = true;
                }
                "lf-string" => {
                    body = Some(Body::Lf(self.lf(p, arg(i)?)?));
                    custom = true;
                }
                "file" | "lf-file" => {
                    let f = arg(i)?;
                    let text = std::fs::read_to_string(f)
                        .map_err(|e| format!("cannot read '{f}': {e}"))?;
                    body = Some(if args[i] == "file" {
                        Body::Bytes(text.into_bytes().into())
                    } else {
                        Body::Lf(self.lf(p, &text)?)
                    });
                    custom = true;
                }
                "errorfile" => {
                    let f = arg(i)?;
                    return self.errorfile(f);
                }
                "default-errorfiles" => {
                    default_pages = true;
                    i += 1;
                    continue;
                }
                "errorfiles" => {
                    // The named section's page for this status (the default page when
                    // it has none, as HAProxy).
                    let name = arg(i)?;
                    let Some(pages) = self.http_errors.get(name) else {
                        return Err(format!("unknown http-errors section '{name}'"));
                    };
                    if let Some(r) = pages.get(status) {
                        return Ok((**r).clone());
                    }
                    default_pages = true;
                    i += 2;
                    continue;
                }
                "hdr" => {
                    let (Some(n), Some(v)) = (args.get(i + 1), args.get(i + 2)) else {
                        return Err("'hdr' expects a name and a value".into());
                    };
                    headers.push((n.to_ascii_lowercase().into(), self.lf(p, v)?));
                    custom = true;
                    i += 3;
                    continue;
                }
                other => return Err(format!("unexpected argument '{other}'")),
            }
            i += 2;
        }
        if ctype.is_some() && body.is_none() {
            return Err(
                "'content-type' needs a body ('string', 'lf-string', 'file' or 'lf-file')".into(),
            );
        }
        if body.is_some() && ctype.is_none() {
            return Err("a body needs a 'content-type'".into());
        }
        if (status == 204 || status == 304) && body.is_some() {
            return Err(format!("a {status} reply may not have a body"));
        }
        if (deny && !custom) || default_pages {
            if !ERROR_STATUSES.contains(&status) {
                return Err(format!(
                    "status code '{status}' not handled by default with 'default-errorfiles' argument"
                ));
            }
            return Ok(Reply::error_page(status));
        }
        let mut r = Reply {
            status,
            content_type: ctype,
            body: body.unwrap_or(Body::Empty),
            headers,
            error_page: false,
            canned: None,
        };
        r.prebuild();
        Ok(r)
    }

    /// `redirect location|prefix|scheme TARGET [code N] [option]...`.
    pub(super) fn redirect(
        &mut self,
        args: &[&str],
        p: &Proxy,
        req: bool,
    ) -> Result<Redirect, String> {
        let (Some(kind), Some(target)) = (args.first(), args.get(1)) else {
            return Err("expects location|prefix|scheme and a target".into());
        };
        let kind = match *kind {
            "location" => RedirectKind::Location,
            "prefix" if req => RedirectKind::Prefix,
            "scheme" if req => RedirectKind::Scheme,
            other => return Err(format!("'{other}': expected location, prefix or scheme")),
        };
        let mut r = Redirect {
            kind,
            target: self.lf(p, target)?,
            code: 302,
            drop_query: false,
            append_slash: false,
            cookie: None,
        };
        let mut i = 2;
        while i < args.len() {
            match args[i] {
                "code" => {
                    r.code = match args.get(i + 1).and_then(|c| c.parse::<u16>().ok()) {
                        Some(c @ (301 | 302 | 303 | 307 | 308)) => c,
                        _ => return Err("'code' expects 301, 302, 303, 307 or 308".into()),
                    };
                    i += 2;
                }
                "drop-query" => {
                    r.drop_query = true;
                    i += 1;
                }
                "append-slash" => {
                    r.append_slash = true;
                    i += 1;
                }
                "set-cookie" | "clear-cookie" => {
                    let c = args.get(i + 1).ok_or("'set-cookie' expects NAME[=VALUE]")?;
                    r.cookie = Some(if args[i] == "set-cookie" {
                        format!("{c}; path=/;").into()
                    } else {
                        format!(
                            "{}; path=/; Max-Age=0; Expires=Thu, 01-Jan-1970 00:00:01 GMT;",
                            c.split('=').next().unwrap_or(c)
                        )
                        .into()
                    });
                    i += 2;
                }
                other => return Err(format!("unknown option '{other}'")),
            }
        }
        Ok(r)
    }
}
