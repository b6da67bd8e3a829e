//! haproxy.cfg custom error responses: `http-errors` sections, and in proxies (and
//! `defaults`) `errorfile`, `errorfiles`, `http-error` and `errorloc*`. Each proxy's
//! directives apply in order over what its `defaults` gave it (the last one for a
//! status wins, as in HAProxy's `proxy_check_errors`).

use super::*;
use crate::config::error_pages::{self, customizable, ErrorPages};
use crate::config::Reply;

impl Mapper<'_> {
    /// Reads every `http-errors NAME` section first (proxies may name one declared
    /// further down).
    pub(super) fn http_errors_sections(&mut self, doc: &Document) {
        for sec in &doc.sections {
            if sec.kind != SectionKind::Other("http-errors".into()) {
                continue;
            }
            let Some(name) = sec.name.clone() else {
                self.err(sec.line, "'http-errors' expects <name> as argument");
                continue;
            };
            if self.http_errors.contains_key(&name) {
                self.err(
                    sec.line,
                    format!("http-errors section '{name}' is declared twice"),
                );
            }
            let mut pages = ErrorPages::default();
            for l in &sec.lines {
                match l.keyword() {
                    "errorfile" => {
                        if let Some((code, r)) = self.errorfile_line(l) {
                            pages.set(code, Some(Arc::new(r)));
                        }
                    }
                    other => self.err(
                        l.line,
                        format!(
                            "unknown keyword '{other}' in 'http-errors' section (only 'errorfile')"
                        ),
                    ),
                }
            }
            self.http_errors.insert(name, pages);
        }
    }

    /// `errorfile CODE FILE`: the status and its prepared response.
    fn errorfile_line(&mut self, l: &Line) -> Option<(u16, Reply)> {
        let a = l.args();
        let (Some(code), Some(file)) = (a.first(), a.get(1)) else {
            self.err(
                l.line,
                "'errorfile' expects <status_code> and <file> as arguments",
            );
            return None;
        };
        let code = self.error_code(l, code)?;
        match self.errorfile(file) {
            Ok(r) => Some((code, r)),
            Err(e) => {
                self.err(l.line, format!("errorfile : {e}"));
                None
            }
        }
    }

    /// A status `errorfile`, `errorloc` or `http-error` may customize.
    fn error_code(&mut self, l: &Line, code: &str) -> Option<u16> {
        match code.parse::<u16>() {
            Ok(c) if customizable(c) => Some(c),
            _ => {
                self.err(
                    l.line,
                    format!("{} : status code '{code}' not handled", l.keyword()),
                );
                None
            }
        }
    }

    /// The prepared response of an errorfile, read now.
    pub(super) fn errorfile(&self, file: &str) -> Result<Reply, String> {
        let raw = std::fs::read(file).map_err(|e| format!("error opening file '{file}': {e}"))?;
        let max = self.limits.max_header_bytes.max(16 * 1024);
        error_pages::errorfile(&raw, file, max)
    }

    /// `errorfile`, `errorfiles`, `http-error`, `errorloc`, `errorloc302`,
    /// `errorloc303` in a proxy or `defaults`.
    pub(super) fn error_line(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        match l.keyword() {
            "errorfile" => {
                if let Some((code, r)) = self.errorfile_line(l) {
                    p.settings.errors.set(code, Some(Arc::new(r)));
                }
            }
            "errorloc" | "errorloc302" | "errorloc303" => {
                let (Some(code), Some(url)) = (a.first(), a.get(1)) else {
                    return self.err(
                        l.line,
                        format!(
                            "'{}' expects <status_code> and <url> as arguments",
                            l.keyword()
                        ),
                    );
                };
                if let Some(code) = self.error_code(l, code) {
                    let redirect = if l.keyword() == "errorloc303" {
                        303
                    } else {
                        302
                    };
                    let r = error_pages::errorloc(redirect, url);
                    p.settings.errors.set(code, Some(Arc::new(r)));
                }
            }
            "errorfiles" => {
                let Some(name) = a.first() else {
                    return self.err(l.line, "'errorfiles' expects <name> as argument");
                };
                let Some(pages) = self.http_errors.get(name).cloned() else {
                    return self.err(l.line, format!("unknown http-errors section '{name}'"));
                };
                if a.len() == 1 {
                    for (code, r) in pages.iter() {
                        p.settings.errors.set(*code, Some(r.clone()));
                    }
                    return;
                }
                for code in &a[1..] {
                    let Some(code) = self.error_code(l, code) else {
                        continue;
                    };
                    match pages.get(code) {
                        Some(r) => p.settings.errors.set(code, Some(r.clone())),
                        None => self.warn(
                            l.line,
                            format!("status '{code}' not declared in http-errors section '{name}'"),
                        ),
                    }
                }
            }
            "http-error" => {
                let words: Vec<&str> = a.iter().map(String::as_str).collect();
                if words.first() != Some(&"status") || words.len() < 2 {
                    return self.err(l.line, "'http-error' expects 'status <code>'");
                }
                let Some(code) = self.error_code(l, words[1]) else {
                    return;
                };
                // Without a payload, or with `default-errorfiles`: HAProxy's own page
                // (the frontend's custom one, for a backend), as if none was set.
                let plain = words.len() == 2 || words[2..] == ["default-errorfiles"];
                if plain {
                    p.settings.errors.set(code, None);
                    return;
                }
                match self.reply(&words, code, false, p) {
                    Ok(r) if r.error_page => p.settings.errors.set(code, None),
                    Ok(r) => p.settings.errors.set(code, Some(Arc::new(r))),
                    Err(e) => self.err(l.line, format!("'http-error': {e}")),
                }
            }
            _ => {}
        }
    }
}
