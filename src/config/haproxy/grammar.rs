//! The haproxy.cfg document parser: physical lines in, a [`Document`] of sections out.
//! Part of `config::haproxy`; it drives `lexer` (words of a line) and `cond` (`.if`
//! conditions) and applies the file-level rules of HAProxy 2.6's `readcfgfile()`:
//! conditional blocks, `.diag`/`.notice`/`.warning`/`.alert`, scope lines, section
//! detection, and the header checks of `cfg_parse_listen()` for proxy sections.

use super::cond::eval_condition;
use super::lexer::{is_c_space, split_words, LexEnv, LexErrorKind};
use super::{CfgError, Document, Line, Section, SectionKind};

/// HAProxy's `MAXNESTEDCONDS`: the 100th nested `.if` is refused.
const MAX_NESTED_CONDS: usize = 100;

/// Parses a whole haproxy.cfg. `env` answers environment variables (typically
/// `|name| std::env::var(name).ok()`); it is also asked for `.FILE`, the file name the
/// `${.FILE}` pseudo-variable expands to (empty if it answers `None`).
///
/// Returns every error found, in line order, or the document (with its warnings). As in
/// HAProxy, text whose last line lacks its `\n` is an error: the file may have been
/// truncated.
pub fn parse_document(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Document, Vec<CfgError>> {
    let mut p = Parser {
        env,
        doc: Document::default(),
        refs: Vec::new(),
        errors: Vec::new(),
        conds: Vec::new(),
        section_label: String::new(),
        by_name: Default::default(),
        last_defaults: None,
    };
    let mut pieces: Vec<&str> = text.split('\n').collect();
    // After the last '\n' there is either nothing or a line without its LF.
    let unterminated = pieces.pop().filter(|last| !last.is_empty());
    for (i, raw) in pieces.iter().enumerate() {
        p.line(i + 1, raw);
    }
    if let Some(last) = unterminated {
        let n = pieces.len() + 1;
        p.line(n, last);
        let len = last.find('\0').unwrap_or(last.len());
        p.error(
            n,
            format!(
                "missing LF on last line, file might have been truncated at position {}",
                column(last, len)
            ),
        );
    }
    for (_, line) in std::mem::take(&mut p.conds) {
        p.error(line, "non-terminated '.if' block".into());
    }
    if p.errors.is_empty() {
        Ok(p.doc)
    } else {
        p.errors.sort_by_key(|e| e.line);
        Err(p.errors)
    }
}

/// The state of one `.if` level (HAProxy's `enum nested_cond_state`). `Take` levels
/// keep their lines; `Drop` levels skip them but a later branch may still be taken;
/// `Skip` levels skip them and every later branch (one was taken, or the whole `.if`
/// sits in a skipped block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    IfTake,
    IfDrop,
    IfSkip,
    ElifTake,
    ElifDrop,
    ElifSkip,
    ElseTake,
    ElseDrop,
}

impl Cond {
    fn dropped(self) -> bool {
        !matches!(self, Cond::IfTake | Cond::ElifTake | Cond::ElseTake)
    }

    /// A branch of this level was taken or the level is skipped, so no later branch is.
    fn done(self) -> bool {
        matches!(
            self,
            Cond::IfTake | Cond::IfSkip | Cond::ElifTake | Cond::ElifSkip
        )
    }

    fn is_else(self) -> bool {
        matches!(self, Cond::ElseTake | Cond::ElseDrop)
    }
}

struct Parser<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    doc: Document,
    /// Per section: whether a later header named it in `from` (explicit) or used it as
    /// the last `defaults` (implicit). Only `defaults` sections get marks.
    refs: Vec<[bool; 2]>,
    errors: Vec<CfgError>,
    /// Open `.if` levels, innermost last, with the line of their `.if`.
    conds: Vec<(Cond, usize)>,
    /// What `.SECTION` expands to.
    section_label: String,
    /// By the hash of a name (`name_key`): the first frontend-side and the first
    /// backend-side section of that name, so that a config of thousands of proxies
    /// checks each new name once, not against every section before it. Nothing is
    /// allocated per name: what parsing leaves between the pieces of a config is
    /// what fragments the heap it is built in (README, Memory and large configs).
    by_name: std::collections::HashMap<u64, [Option<usize>; 2]>,
    /// The last `defaults` section so far, which a proxy without `from` starts from.
    last_defaults: Option<usize>,
}

/// 1-based column of byte `at` in `line`, counted in characters.
fn column(line: &str, at: usize) -> usize {
    line.get(..at).map_or(at, |s| s.chars().count()) + 1
}

/// A proxy name's key in `Parser::by_name`.
fn name_key(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// HAProxy's `invalid_char()`: the first character not allowed in a name (letters,
/// digits, `-`, `_`, `.`, `:`).
fn invalid_char(name: &str) -> Option<char> {
    name.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
}

/// How HAProxy names a proxy of this kind in messages.
fn cap_str(kind: &SectionKind) -> &str {
    kind.keyword()
}

impl Parser<'_> {
    fn error(&mut self, line: usize, message: String) {
        self.errors.push(CfgError { line, message });
    }

    fn warning(&mut self, line: usize, message: String) {
        self.doc.warnings.push(CfgError { line, message });
    }

    fn dropped(&self) -> bool {
        self.conds.last().is_some_and(|(c, _)| c.dropped())
    }

    fn line(&mut self, n: usize, raw: &str) {
        // HAProxy reads lines as C strings: a NUL ends the line.
        let raw = match raw.find('\0') {
            Some(at) => {
                self.error(
                    n,
                    format!("stray NUL character at position {}", column(raw, at)),
                );
                &raw[..at]
            }
            None => raw,
        };
        let start = raw
            .bytes()
            .position(|b| !is_c_space(b))
            .unwrap_or(raw.len());
        if raw[start..].starts_with('[') {
            self.scope(n, raw, start);
            return;
        }
        let lx = LexEnv {
            env: self.env,
            line: n,
            section: &self.section_label,
        };
        let (words, trailing_separator) = match split_words(raw, start, &lx) {
            Ok(w) => (w.words, w.trailing_separator),
            Err(e) => {
                let msg = match e.kind {
                    LexErrorKind::TooMany => {
                        format!("too many words (at most {})", super::lexer::MAX_WORDS)
                    }
                    kind => format!("{} at position {}", kind.message(), column(raw, e.at)),
                };
                self.error(n, msg);
                // Keep `.if` levels balanced so that one bad line is one error.
                let first = raw[start..]
                    .split(|c: char| c.is_ascii_whitespace())
                    .next()
                    .unwrap_or("");
                if matches!(first, ".if" | ".elif" | ".else" | ".endif") {
                    self.cond_directive(n, first, None);
                }
                return;
            }
        };
        // An empty line, or one whose first word is empty, is skipped.
        if words.first().is_none_or(|w| w.is_empty()) {
            return;
        }
        if let Ok(name @ (".if" | ".elif" | ".else" | ".endif")) = std::str::from_utf8(&words[0]) {
            self.cond_directive(n, name, Some((&words, trailing_separator)));
            return;
        }
        if self.dropped() {
            return;
        }
        let mut strings = Vec::with_capacity(words.len());
        for (i, mut w) in words.into_iter().enumerate() {
            // C strings: a `\x00` ends the word.
            if let Some(nul) = w.iter().position(|&b| b == 0) {
                w.truncate(nul);
            }
            match String::from_utf8(w) {
                Ok(s) => strings.push(s),
                Err(_) => {
                    self.error(
                        n,
                        format!("word {} is not valid UTF-8 (check its \\x escapes)", i + 1),
                    );
                    return;
                }
            }
        }
        let words = strings;
        if words[0].starts_with('.') {
            self.message_directive(n, &words);
        } else if let Some(kind) = SectionKind::from_keyword(&words[0]) {
            self.header(n, kind, &words);
        } else if let Some(section) = self.doc.sections.last_mut() {
            section.lines.push(Line { line: n, words });
        } else {
            self.error(n, format!("unknown keyword '{}' out of section", words[0]));
        }
    }

    /// `[name]` scope lines (`cfg_parse_scope()`): checked, then ignored.
    fn scope(&mut self, n: usize, raw: &str, start: usize) {
        let rest = &raw[start + 1..];
        let Some(end) = rest.find(']').filter(|&e| e > 0) else {
            self.error(n, "empty scope name is forbidden".into());
            return;
        };
        if let Some(c) = invalid_char(&rest[..end]) {
            self.error(
                n,
                format!("character '{c}' is not permitted in a scope name"),
            );
            return;
        }
        let after =
            rest[end + 1..].trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        if let Some(c) = after.chars().next().filter(|&c| c != '#') {
            self.error(
                n,
                format!("character '{c}' is not permitted after scope declaration"),
            );
        }
    }

    /// `.if`, `.elif`, `.else`, `.endif`. `words` is `None` when the line failed to
    /// tokenize: the directive then only keeps the levels balanced (conditions count as
    /// false) and reports nothing more.
    fn cond_directive(&mut self, n: usize, name: &str, words: Option<(&[Vec<u8>], bool)>) {
        let recovering = words.is_none();
        let (words, trailing_separator) = words.unwrap_or((&[], false));
        // The condition: the words after the directive joined with single spaces, any
        // NUL from `\x00` made a space and a trailing separator kept as a space, as
        // HAProxy re-merges them in its line buffer.
        let condition = || {
            let mut text = words.get(1..).unwrap_or(&[]).join(&b' ');
            if trailing_separator && words.len() > 1 {
                text.push(b' ');
            }
            text.iter_mut().filter(|b| **b == 0).for_each(|b| *b = b' ');
            text
        };
        let eval = |p: &mut Self| -> bool {
            if recovering {
                return false;
            }
            match eval_condition(&condition(), p.env) {
                Ok(v) => v,
                Err(e) => {
                    p.error(
                        n,
                        format!("{} in '{name}' at position {}", e.message, e.position),
                    );
                    false
                }
            }
        };
        match name {
            ".if" => {
                if self.conds.len() + 1 >= MAX_NESTED_CONDS {
                    if !recovering {
                        self.error(
                            n,
                            format!("too many nested '.if', max is {MAX_NESTED_CONDS}"),
                        );
                    }
                    self.conds.push((Cond::IfSkip, n));
                } else if self.dropped() {
                    self.conds.push((Cond::IfSkip, n));
                } else {
                    let state = if eval(self) {
                        Cond::IfTake
                    } else {
                        Cond::IfDrop
                    };
                    self.conds.push((state, n));
                }
            }
            ".elif" => {
                let Some(&(top, _)) = self.conds.last() else {
                    if !recovering {
                        self.error(n, "lone '.elif' with no matching '.if'".into());
                    }
                    return;
                };
                if top.is_else() {
                    if !recovering {
                        self.error(n, "'.elif' after '.else' is not permitted".into());
                    }
                    return;
                }
                let state = if top.done() {
                    Cond::ElifSkip
                } else if eval(self) {
                    Cond::ElifTake
                } else {
                    Cond::ElifDrop
                };
                self.set_top(state);
            }
            _ => {
                // `.else` and `.endif` take no argument.
                if let Some(arg) = words.get(1).filter(|w| !w.is_empty()) {
                    let arg = String::from_utf8_lossy(arg);
                    self.error(n, format!("unexpected argument '{arg}' for '{name}'"));
                }
                let Some(&(top, _)) = self.conds.last() else {
                    if !recovering {
                        self.error(n, format!("lone '{name}' with no matching '.if'"));
                    }
                    return;
                };
                if name == ".endif" {
                    self.conds.pop();
                } else if top.is_else() {
                    if !recovering {
                        self.error(n, "'.else' after '.else' is not permitted".into());
                    }
                } else {
                    self.set_top(if top.done() {
                        Cond::ElseDrop
                    } else {
                        Cond::ElseTake
                    });
                }
            }
        }
    }

    fn set_top(&mut self, state: Cond) {
        if let Some(top) = self.conds.last_mut() {
            top.0 = state;
        }
    }

    /// `.alert`, `.warning`, `.notice`, `.diag`: one quoted message each.
    fn message_directive(&mut self, n: usize, words: &[String]) {
        let level = match words[0].as_str() {
            ".alert" => "alert",
            ".warning" => "warning",
            ".notice" => "notice",
            ".diag" => "diag",
            other => {
                self.error(n, format!("unknown directive '{other}'"));
                return;
            }
        };
        if let Some(extra) = words.iter().skip(2).find(|w| !w.is_empty()) {
            self.error(
                n,
                format!(
                    "unexpected argument '{extra}' for '{}'; use quotes if the message should contain spaces",
                    words[0]
                ),
            );
            return;
        }
        let message = format!("{level}: {}", words.get(1).map_or("", String::as_str));
        if level == "alert" {
            self.error(n, message);
        } else {
            self.warning(n, message);
        }
    }

    /// A section header: checks it and opens the section. The section is opened even
    /// when the header is wrong, so that its lines do not each report an error too.
    fn header(&mut self, n: usize, kind: SectionKind, words: &[String]) {
        let w = |i: usize| words.get(i).map_or("", String::as_str);
        // `.SECTION` from here on: the name, or the keyword of an unnamed section.
        self.section_label = if w(1).is_empty() { w(0) } else { w(1) }.to_string();
        let (name, from) = match &kind {
            SectionKind::Global => {
                if !w(1).is_empty() {
                    self.error(
                        n,
                        format!("'global' cannot handle unexpected argument '{}'", w(1)),
                    );
                }
                (None, None)
            }
            SectionKind::Other(_) => ((!w(1).is_empty()).then(|| w(1).to_string()), None),
            SectionKind::Defaults => self.defaults_header(n, words),
            _ => self.proxy_header(n, &kind, words),
        };
        if let (Some(name), true) = (&name, kind.is_proxy()) {
            let at = self.doc.sections.len();
            let first = self.by_name.entry(name_key(name)).or_default();
            let sides = [
                matches!(kind, SectionKind::Frontend | SectionKind::Listen),
                matches!(kind, SectionKind::Backend | SectionKind::Listen),
            ];
            for k in 0..2 {
                if sides[k] && first[k].is_none() {
                    first[k] = Some(at);
                }
            }
        }
        if kind == SectionKind::Defaults {
            self.last_defaults = Some(self.doc.sections.len());
        }
        self.doc.sections.push(Section {
            kind,
            name,
            from,
            line: n,
            lines: Vec::new(),
        });
        self.refs.push([false, false]);
    }

    /// `defaults [NAME] [from NAME]`, also `defaults from NAME` (no name).
    fn defaults_header(&mut self, n: usize, words: &[String]) -> (Option<String>, Option<String>) {
        let w = |i: usize| words.get(i).map_or("", String::as_str);
        let (name, from, used) = if w(1) == "from" && !w(2).is_empty() && w(3).is_empty() {
            (None, Some(w(2)), 3)
        } else {
            let name = (!w(1).is_empty()).then(|| w(1));
            if w(2) == "from" && !w(3).is_empty() {
                (name, Some(w(3)), 4)
            } else {
                (name, None, 2)
            }
        };
        if let Some(extra) = words.iter().skip(used).find(|w| !w.is_empty()) {
            self.warning(
                n,
                format!("unexpected argument '{extra}' in 'defaults' header ignored"),
            );
        }
        let from = from.filter(|target| {
            self.resolve_from(n, &SectionKind::Defaults, name.unwrap_or(""), target)
        });
        (name.map(str::to_string), from.map(str::to_string))
    }

    /// `frontend|backend|listen NAME [from NAME]`.
    fn proxy_header(
        &mut self,
        n: usize,
        kind: &SectionKind,
        words: &[String],
    ) -> (Option<String>, Option<String>) {
        let w = |i: usize| words.get(i).map_or("", String::as_str);
        let kw = kind.keyword();
        let name = w(1);
        if name.is_empty() {
            self.error(n, format!("'{kw}' expects an <id> argument"));
            return (None, None);
        }
        if let Some(c) = invalid_char(name) {
            self.error(
                n,
                format!("character '{c}' is not permitted in '{kw}' name '{name}'"),
            );
        }
        // A frontend and a backend may share a name; two of a kind may not, and a
        // listen section is both kinds.
        let fe = |k: &SectionKind| matches!(k, SectionKind::Frontend | SectionKind::Listen);
        let be = |k: &SectionKind| matches!(k, SectionKind::Backend | SectionKind::Listen);
        let sides = [fe(kind), be(kind)];
        let first = self
            .by_name
            .get(&name_key(name))
            .map_or([None, None], |f| *f);
        let sections = &self.doc.sections;
        let clash = match (0..2).filter_map(|k| first[k].filter(|_| sides[k])).min() {
            Some(i) if sections[i].name.as_deref() == Some(name) => Some(&sections[i]),
            // Two names with one hash: look the slow way.
            Some(_) => sections.iter().find(|s| {
                s.name.as_deref() == Some(name)
                    && ((fe(kind) && fe(&s.kind)) || (be(kind) && be(&s.kind)))
            }),
            None => None,
        };
        if let Some(other) = clash {
            let msg = format!(
                "{} '{name}' has the same name as {} '{name}' declared at line {}",
                cap_str(kind),
                cap_str(&other.kind),
                other.line
            );
            self.error(n, msg);
        }
        let (from, used) = if w(2) == "from" && !w(3).is_empty() {
            (Some(w(3)), 4)
        } else {
            (None, 2)
        };
        if let Some(extra) = words.iter().skip(used).find(|w| !w.is_empty()) {
            let hint = if fe(kind) {
                "; please use the 'bind' keyword for listening addresses"
            } else {
                ""
            };
            self.error(
                n,
                format!("'{kw}' cannot handle unexpected argument '{extra}'{hint}"),
            );
        }
        match from {
            Some(target) => {
                let found = self.resolve_from(n, kind, name, target);
                (Some(name.to_string()), found.then(|| target.to_string()))
            }
            None => {
                // Without `from`, a proxy starts from the last defaults section.
                if let Some(last) = self.last_defaults {
                    self.mark_ref(n, last, 1);
                }
                (Some(name.to_string()), None)
            }
        }
    }

    /// Checks `from target` on the header of a `kind` section called `name`: an
    /// earlier `defaults` section must have that name, only one, and a valid name.
    fn resolve_from(&mut self, n: usize, kind: &SectionKind, name: &str, target: &str) -> bool {
        let found: Vec<usize> = (0..self.doc.sections.len())
            .filter(|&i| {
                let s = &self.doc.sections[i];
                s.kind == SectionKind::Defaults && s.name.as_deref() == Some(target)
            })
            .collect();
        let cap = cap_str(kind);
        let Some(&idx) = found.last() else {
            self.error(
                n,
                format!("defaults section '{target}' not found for {cap} '{name}'"),
            );
            return false;
        };
        let line = self.doc.sections[idx].line;
        if found.len() > 1 {
            let prev = self.doc.sections[found[found.len() - 2]].line;
            self.error(
                n,
                format!(
                    "ambiguous defaults section name '{target}' referenced by {cap} '{name}' exists at least at line {line} and line {prev}"
                ),
            );
        }
        if let Some(c) = invalid_char(target) {
            self.error(
                n,
                format!(
                    "character '{c}' is not permitted in defaults section name '{target}' when designated by its name (section found at line {line})"
                ),
            );
        }
        self.mark_ref(n, idx, 0);
        true
    }

    /// Marks defaults section `idx` as used explicitly (`how` 0) or implicitly (1), and
    /// warns, as HAProxy does, once it has been used both ways.
    fn mark_ref(&mut self, n: usize, idx: usize, how: usize) {
        self.refs[idx][how] = true;
        if self.refs[idx] == [true, true] {
            let d = &self.doc.sections[idx];
            let msg = format!(
                "defaults section '{}' (declared at line {}) is explicitly referenced by another proxy and implicitly used here. \
                 To avoid any ambiguity don't mix both usage. Add a last defaults section not explicitly used or always use explicit references",
                d.name.as_deref().unwrap_or(""),
                d.line
            );
            self.warning(n, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_document, CfgError, Document, Line, Section, SectionKind};

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            "WITH_SSL" => Some("yes".into()),
            "SERVERS" => Some("s1 s2".into()),
            ".FILE" => Some("/etc/haproxy/haproxy.cfg".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Document, Vec<CfgError>> {
        parse_document(text, &env)
    }

    fn doc(text: &str) -> Document {
        parse(text).unwrap_or_else(|errs| panic!("{text:?}: {errs:#?}"))
    }

    /// Every (line, words) pair of every section, flattened, for compact comparisons.
    fn flat(d: &Document) -> Vec<(usize, Vec<&str>)> {
        d.sections
            .iter()
            .flat_map(|s| {
                s.lines
                    .iter()
                    .map(|l| (l.line, l.words.iter().map(String::as_str).collect()))
            })
            .collect()
    }

    fn headers(d: &Document) -> Vec<(String, Option<&str>, Option<&str>, usize)> {
        d.sections
            .iter()
            .map(|s| {
                (
                    s.kind.keyword().to_string(),
                    s.name.as_deref(),
                    s.from.as_deref(),
                    s.line,
                )
            })
            .collect()
    }

    fn errors(text: &str) -> Vec<(usize, String)> {
        match parse(text) {
            Ok(d) => panic!("{text:?} parsed: {d:#?}"),
            Err(errs) => errs.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    #[test]
    fn sections_and_lines() {
        let d = doc("# haproxy.cfg\n\
                     global\n\
                     \tmaxconn 100\n\
                     \n\
                     defaults\n\
                     \x20 mode http\n\
                     \x20 timeout connect 5s   # comment\n\
                     frontend web\n\
                     \x20 bind :80\n\
                     \x20 default_backend app\n\
                     backend app\n\
                     \x20 server s1 127.0.0.1:8000 check\n\
                     listen stats\n\
                     \x20 bind :9000\n");
        assert_eq!(
            headers(&d),
            vec![
                ("global".into(), None, None, 2),
                ("defaults".into(), None, None, 5),
                ("frontend".into(), Some("web"), None, 8),
                ("backend".into(), Some("app"), None, 11),
                ("listen".into(), Some("stats"), None, 13),
            ]
        );
        assert_eq!(
            d.sections[1].lines,
            vec![
                Line {
                    line: 6,
                    words: vec!["mode".into(), "http".into()]
                },
                Line {
                    line: 7,
                    words: vec!["timeout".into(), "connect".into(), "5s".into()]
                },
            ]
        );
        assert_eq!(d.sections[3].lines[0].keyword(), "server");
        assert_eq!(
            d.sections[3].lines[0].args(),
            ["s1", "127.0.0.1:8000", "check"]
        );
        assert!(d.warnings.is_empty());
    }

    /// The manual's own example (2.1): comments glued to words, odd indentation.
    #[test]
    fn manual_layout_example() {
        let d = doc("    global#this is the global section\n\
                     daemon#daemonize\n\
                     \x20   frontend         foo\n\
                     mode             http   # or tcp\n");
        assert_eq!(
            headers(&d),
            vec![
                ("global".into(), None, None, 1),
                ("frontend".into(), Some("foo"), None, 3)
            ]
        );
        assert_eq!(
            flat(&d),
            vec![(2, vec!["daemon"]), (4, vec!["mode", "http"])]
        );
    }

    #[test]
    fn empty_and_comment_only_files() {
        for text in ["", "\n", "# nothing\n", "   \n\t\n", "\r\n"] {
            assert_eq!(doc(text), Document::default(), "{text:?}");
        }
    }

    /// Every section keyword of HAProxy 2.6 opens a section (hx: each one accepted as a
    /// section by `haproxy -c`; `traces`, `crt-store` and `acme` are unknown to 2.6).
    #[test]
    fn other_sections() {
        let kws = [
            "resolvers",
            "peers",
            "userlist",
            "mailers",
            "program",
            "http-errors",
            "ring",
            "cache",
            "fcgi-app",
            "log-forward",
            "namespace_list",
        ];
        for kw in kws {
            let d = doc(&format!("{kw} foo\n  some-keyword 1 2\nbackend b\n"));
            assert_eq!(d.sections[0].kind, SectionKind::Other(kw.into()));
            assert_eq!(d.sections[0].name.as_deref(), Some("foo"));
            assert_eq!(d.sections[0].lines[0].words, ["some-keyword", "1", "2"]);
            assert_eq!(d.sections[1].kind, SectionKind::Backend);
        }
        for kw in ["traces", "crt-store", "acme", "Global", "FRONTEND"] {
            assert_eq!(
                errors(&format!("{kw} x\n")),
                [(1, format!("unknown keyword '{kw}' out of section"))]
            );
        }
    }

    /// Header forms: (header line, kind, name, from). `defaults` sections named here are
    /// declared first so that `from` resolves. Checked with `haproxy -c`.
    #[test]
    fn headers_with_names_and_from() {
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            ("defaults", "defaults", None, None),
            ("defaults d2", "defaults", Some("d2"), None),
            (
                "defaults d2 from base",
                "defaults",
                Some("d2"),
                Some("base"),
            ),
            ("defaults from base", "defaults", None, Some("base")),
            // with nothing after it, "from" is the name (hx)
            ("defaults from", "defaults", Some("from"), None),
            ("defaults \"\" from base", "defaults", None, Some("base")),
            ("frontend fe", "frontend", Some("fe"), None),
            (
                "frontend fe from base",
                "frontend",
                Some("fe"),
                Some("base"),
            ),
            (
                "backend be.1:x-y_z from base",
                "backend",
                Some("be.1:x-y_z"),
                Some("base"),
            ),
            ("listen li from base", "listen", Some("li"), Some("base")),
            ("frontend \"${HOST}\"", "frontend", Some("10.0.0.1"), None),
            ("global", "global", None, None),
        ];
        for (header, kind, name, from) in cases {
            let d = doc(&format!("defaults base\n{header}\n"));
            let s = &d.sections[1];
            assert_eq!(
                (
                    s.kind.keyword(),
                    s.name.as_deref(),
                    s.from.as_deref(),
                    s.line
                ),
                (*kind, *name, *from, 2),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn defaults_of() {
        let d = doc("defaults a\n\
                     defaults b from a\n\
                     frontend f1\n\
                     backend b1 from a\n\
                     defaults\n\
                     listen l1\n\
                     global\n");
        let got: Vec<Option<usize>> = (0..d.sections.len()).map(|i| d.defaults_of(i)).collect();
        assert_eq!(d.defaults_each(), got);
        assert_eq!(got, [None, Some(0), Some(1), Some(0), None, Some(4), None]);
        assert_eq!(d.defaults_of(99), None);
        assert_eq!(doc("frontend f\n").defaults_of(0), None);
    }

    /// Header errors (hx: each checked with `haproxy -c`; message wording adapted).
    #[test]
    fn header_errors() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("frontend\n", &[(1, "'frontend' expects an <id> argument")]),
            ("backend \"\"\n", &[(1, "'backend' expects an <id> argument")]),
            ("frontend a/b\n", &[(1, "character '/' is not permitted in 'frontend' name 'a/b'")]),
            ("frontend \"a b\"\n", &[(1, "character ' ' is not permitted in 'frontend' name 'a b'")]),
            (
                "frontend a *:80\n",
                &[(1, "'frontend' cannot handle unexpected argument '*:80'; please use the 'bind' keyword for listening addresses")],
            ),
            (
                "listen a 10.0.2.15:80\n",
                &[(1, "'listen' cannot handle unexpected argument '10.0.2.15:80'; please use the 'bind' keyword for listening addresses")],
            ),
            (
                "defaults d\nfrontend a from\n",
                &[(2, "'frontend' cannot handle unexpected argument 'from'; please use the 'bind' keyword for listening addresses")],
            ),
            (
                "defaults d\nfrontend a from d extra\n",
                &[(2, "'frontend' cannot handle unexpected argument 'extra'; please use the 'bind' keyword for listening addresses")],
            ),
            // HAProxy 2.6 silently drops such a backend (then fails on its lines)
            ("backend a b\n", &[(1, "'backend' cannot handle unexpected argument 'b'")]),
            ("backend a \"\" b\n", &[(1, "'backend' cannot handle unexpected argument 'b'")]),
            ("global foo\n", &[(1, "'global' cannot handle unexpected argument 'foo'")]),
            ("frontend a from nosuch\n", &[(1, "defaults section 'nosuch' not found for frontend 'a'")]),
            ("backend b1\nfrontend a from b1\n", &[(2, "defaults section 'b1' not found for frontend 'a'")]),
            // a defaults section must come before its use
            ("defaults d1\nfrontend a from d2\ndefaults d2\n", &[(2, "defaults section 'd2' not found for frontend 'a'")]),
            ("defaults x from nosuch\n", &[(1, "defaults section 'nosuch' not found for defaults 'x'")]),
            ("defaults from nosuch\n", &[(1, "defaults section 'nosuch' not found for defaults ''")]),
            (
                "defaults d\ndefaults d\nbackend b from d\n",
                &[(3, "ambiguous defaults section name 'd' referenced by backend 'b' exists at least at line 2 and line 1")],
            ),
            (
                "defaults d/x\nbackend b from d/x\n",
                &[(2, "character '/' is not permitted in defaults section name 'd/x' when designated by its name (section found at line 1)")],
            ),
            (
                "frontend a\nfrontend a\nbackend a\nlisten a\nbackend a\n",
                &[
                    (2, "frontend 'a' has the same name as frontend 'a' declared at line 1"),
                    (4, "listen 'a' has the same name as frontend 'a' declared at line 1"),
                    (5, "backend 'a' has the same name as backend 'a' declared at line 3"),
                ],
            ),
        ];
        for (text, want) in cases {
            let want: Vec<(usize, String)> =
                want.iter().map(|(l, m)| (*l, m.to_string())).collect();
            assert_eq!(errors(text), want, "config {text:?}");
        }
    }

    /// What HAProxy 2.6 accepts in headers (hx), some with a warning here.
    #[test]
    fn header_leniency() {
        // a frontend and a backend may share a name; defaults names may repeat
        let d = doc("frontend a\nbackend a\ndefaults d\ndefaults d\nbackend b\n");
        assert_eq!(d.sections.len(), 5);
        assert!(d.warnings.is_empty());
        // a referenced defaults name may be reused after the reference
        doc("defaults d\nbackend b from d\ndefaults d\n");
        // defaults names are only checked when referenced
        doc("defaults a/b\n");
        // extra words on a defaults header: ignored by HAProxy, a warning here
        let d = doc("defaults a b c\ndefaults d from\n");
        let w: Vec<_> = d
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(
            w,
            [
                (1, "unexpected argument 'b' in 'defaults' header ignored"),
                (2, "unexpected argument 'from' in 'defaults' header ignored"),
            ]
        );
    }

    /// A defaults section used both by name and as the implicit last one: HAProxy 2.6
    /// prints an alert but starts (hx: exit code 2, "no listener"), so a warning here.
    #[test]
    fn mixed_defaults_use_warns() {
        let d = doc("defaults d\nbackend b from d\nbackend c\nbackend e\n");
        let w: Vec<_> = d.warnings.iter().map(|w| w.line).collect();
        assert_eq!(w, [3, 4]);
        assert!(d.warnings[0]
            .message
            .starts_with("defaults section 'd' (declared at line 1) is explicitly referenced"));
        let d = doc("defaults d\nbackend c\nbackend b from d\n");
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].line, 3);
    }

    /// Quoting, escaping and environment through the whole parser (the lexer has the
    /// full table): (line, words).
    #[test]
    fn words_through_the_parser() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"log-format "%{+Q}o %t %s %{-Q}r""#,
                &["log-format", "%{+Q}o %t %s %{-Q}r"],
            ),
            (
                r"log-format %{+Q}o\ %t\ %s\ %{-Q}r",
                &["log-format", "%{+Q}o %t %s %{-Q}r"],
            ),
            (
                "log-format '%{+Q}o %t %s %{-Q}r'",
                &["log-format", "%{+Q}o %t %s %{-Q}r"],
            ),
            (
                r#"log-format "%{+Q}o %t"' %s %{-Q}r'"#,
                &["log-format", "%{+Q}o %t %s %{-Q}r"],
            ),
            (
                r#"log-format "%{+Q}o %t"' %s'\ %{-Q}r"#,
                &["log-format", "%{+Q}o %t %s %{-Q}r"],
            ),
            (
                r#"http-request set-path %[path,regsub(\"(foo|bar)\",blah,g)]"#,
                &[
                    "http-request",
                    "set-path",
                    r#"%[path,regsub("(foo|bar)",blah,g)]"#,
                ],
            ),
            (
                r#"http-request set-path '%[path,regsub("^/(here)(/|$)","my/\1",g)]'"#,
                &[
                    "http-request",
                    "set-path",
                    r#"%[path,regsub("^/(here)(/|$)","my/\1",g)]"#,
                ],
            ),
            (
                r#"server s1 "${HOST}:${PORT}" check"#,
                &["server", "s1", "10.0.0.1:8080", "check"],
            ),
            (
                r#"server s1 '${HOST}:${PORT}'"#,
                &["server", "s1", "${HOST}:${PORT}"],
            ),
            (
                r#"server s1 ${HOST}:$PORT"#,
                &["server", "s1", "${HOST}:$PORT"],
            ),
            (
                r#"bind "${NOPE-127.0.0.1}:${PORT-80}""#,
                &["bind", "127.0.0.1:8080"],
            ),
            (r#"bind "${NOPE}:80""#, &["bind", ":80"]),
            (r#"x "${EMPTY-def}" y"#, &["x", "", "y"]),
            (r#"x "${SERVERS[*]}""#, &["x", "s1", "s2"]),
            // `.LINE` is 2: the backend header is line 1
            (
                r#"x "${.LINE}" "${.SECTION}" "${.FILE}""#,
                &["x", "2", "app", "/etc/haproxy/haproxy.cfg"],
            ),
            (
                r#"acl a path_beg /x\#y # comment"#,
                &["acl", "a", "path_beg", "/x#y"],
            ),
            (r#"x "" "#, &["x", ""]),
        ];
        for (line, want) in cases {
            let text = format!("{line}\n");
            let d = doc(&format!("backend app\n{text}"));
            let got: Vec<&str> = d.sections[0].lines[0]
                .words
                .iter()
                .map(String::as_str)
                .collect();
            assert_eq!(got, *want, "line {line:?}");
        }
    }

    /// `.SECTION` is the name of the section being parsed, its keyword when unnamed,
    /// and empty before any section; on a header line it is still the previous one
    /// (hx: `.notice "${.SECTION}"`).
    #[test]
    fn section_pseudo_variable() {
        let d = doc(".notice \"[${.SECTION}]\"\n\
                     global\n\
                     .notice \"[${.SECTION}]\"\n\
                     frontend \"${.SECTION}-fe\"\n\
                     .notice \"[${.SECTION}]\"\n");
        let w: Vec<_> = d.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(w, ["notice: []", "notice: [global]", "notice: [global-fe]"]);
        assert_eq!(d.sections[1].name.as_deref(), Some("global-fe"));
    }

    #[test]
    fn first_empty_word_skips_the_line() {
        // hx: `"" .notice x` prints nothing and is no error
        let d = doc("backend b\n\"\" server x\n\"${NOPE}\" y\n  \"\"\n");
        assert!(d.sections[0].lines.is_empty());
    }

    /// Conditional blocks: (config body inside a backend, the keyword lines kept).
    #[test]
    fn conditional_blocks() {
        let cases: &[(&str, &[&str])] = &[
            (".if 1\na\n.endif\nb\n", &["a", "b"]),
            (".if 0\na\n.endif\nb\n", &["b"]),
            (".if\na\n.endif\n", &[]),
            (".if 0\na\n.else\nb\n.endif\n", &["b"]),
            (".if 1\na\n.else\nb\n.endif\n", &["a"]),
            (".if 0\na\n.elif 1\nb\n.elif 1\nc\n.else\nd\n.endif\n", &["b"]),
            (".if 0\na\n.elif 0\nb\n.elif 0\nc\n.else\nd\n.endif\n", &["d"]),
            (".if 1\na\n.elif 1\nb\n.else\nc\n.endif\n", &["a"]),
            // nested
            (".if 1\na\n.if 0\nb\n.else\nc\n.endif\nd\n.endif\ne\n", &["a", "c", "d", "e"]),
            (".if 0\na\n.if 1\nb\n.else\nc\n.endif\nd\n.elif 1\ne\n.endif\n", &["e"]),
            (".if 1\n.if 1\n.if 1\na\n.endif\n.endif\n.endif\n", &["a"]),
            // a skipped block does not evaluate or check what it holds (hx)
            (".if 0\n.if junk(\n.endif\n.foo\n.alert \"no\"\nfrontend x y z\n.endif\nb\n", &["b"]),
            // environment in conditions; the manual's examples
            (".if defined(HOST)\na\n.endif\n.if defined(NOPE)\nb\n.endif\n", &["a"]),
            (".if defined(EMPTY)\na\n.endif\n", &["a"]),
            (".if strneq(\"$SSL_ONLY\",yes)\nbind80\n.endif\n", &["bind80"]),
            (".if streq(\"$WITH_SSL\",yes)\n.if feature(OPENSSL)\nbind443\n.endif\n.endif\n", &[]),
            (".if feature(OPENSSL) && (streq(\"$WITH_SSL\",yes) || streq(\"$SSL_ONLY\",yes))\nssl\n.endif\n", &[]),
            (".if !feature(OPENSSL)\nplain\n.endif\n", &["plain"]),
            (".if version_atleast(2.4-dev19)\nnew\n.endif\n", &["new"]),
            (".if version_before(2.7) && version_atleast(2.6)\nsix\n.endif\n", &["six"]),
            // words are re-joined with single spaces before the condition is parsed
            (".if streq(\"a b\",a\\ b)\nj\n.endif\n", &["j"]),
            (".if 1 \"&&\" 0\nk\n.endif\n", &[]),
            (".if \"${PORT}\"\nport\n.endif\n", &["port"]),
            (".if \"${NOPE}\"\nnope\n.endif\n", &[]),
            // comments on directive lines
            (".if 1 # yes\na\n.else # no\nb\n.endif # done\n", &["a"]),
        ];
        for (body, want) in cases {
            let text = format!("backend app\n{body}");
            let d = doc(&text);
            let got: Vec<&str> = d.sections[0]
                .lines
                .iter()
                .map(|l| l.words[0].as_str())
                .collect();
            assert_eq!(got, *want, "config {body:?}");
        }
    }

    /// Section headers inside blocks follow the blocks; lines after `.endif` belong to
    /// the section open before the block.
    #[test]
    fn sections_in_blocks() {
        let d = doc("backend a\n.if 0\nbackend b\nx\n.endif\ny\n.if 1\nbackend c\nz\n.endif\nw\n");
        let names: Vec<_> = d
            .sections
            .iter()
            .map(|s| (s.name.as_deref().unwrap(), flat_words(s)))
            .collect();
        assert_eq!(names, [("a", vec!["y"]), ("c", vec!["z", "w"])]);
    }

    fn flat_words(s: &Section) -> Vec<&str> {
        s.lines.iter().map(|l| l.words[0].as_str()).collect()
    }

    #[test]
    fn message_directives() {
        let d = doc(".notice \"before any section\"\n\
                     global\n\
                     .warning \"w 1\"\n\
                     .notice n\n\
                     .diag \"${HOST}\"\n\
                     .notice\n\
                     .if 0\n\
                     .warning skipped\n\
                     .endif\n");
        let w: Vec<_> = d
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(
            w,
            [
                (1, "notice: before any section"),
                (3, "warning: w 1"),
                (4, "notice: n"),
                (5, "diag: 10.0.0.1"),
                (6, "notice: "),
            ]
        );
        assert_eq!(d.warnings[1].to_string(), "line 3: warning: w 1");
    }

    /// Error cases: (config, [(line, message)]). Messages are HAProxy's (hx), adapted
    /// to sentence case and without the trailing period.
    #[test]
    fn errors_with_lines() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("maxconn 10\n", &[(1, "unknown keyword 'maxconn' out of section")]),
            ("\n\n  timeout client 5s\nglobal\n", &[(3, "unknown keyword 'timeout' out of section")]),
            ("global\n  .notice \"abc\n", &[(2, "unmatched quote at position 11")]),
            ("global\n  .notice 'abc\n", &[(2, "unmatched quote at position 11")]),
            ("global\n  x \"a\\x4\"\n", &[(2, "truncated or invalid hexadecimal sequence at position 7")]),
            ("global\n  x \"$1\"\n", &[(2, "forbidden first char in environment variable name at position 7")]),
            ("global\n  x \"${.FOO}\"\n", &[(2, "forbidden first char in environment variable name at position 8")]),
            ("global\n  x \"${HOST\"\n", &[(2, "unmatched brace in environment variable name at position 7")]),
            ("global\n  x \"${HOST[x]}\"\n", &[(2, "truncated or invalid word expansion sequence at position 12")]),
            ("global\n  x \\xff\n", &[(2, "word 2 is not valid UTF-8 (check its \\x escapes)")]),
            ("global\n.alert \"SSL support is mandatory\"\n", &[(2, "alert: SSL support is mandatory")]),
            (
                "global\n  .notice foo bar\n",
                &[(2, "unexpected argument 'bar' for '.notice'; use quotes if the message should contain spaces")],
            ),
            ("global\n.bogus x\n", &[(2, "unknown directive '.bogus'")]),
            ("global\n.else\n", &[(2, "lone '.else' with no matching '.if'")]),
            ("global\n.elif 1\n", &[(2, "lone '.elif' with no matching '.if'")]),
            ("global\n.endif\n", &[(2, "lone '.endif' with no matching '.if'")]),
            ("global\n.if 1\n.notice in\n", &[(2, "non-terminated '.if' block")]),
            ("global\n.if 1\n.if 0\n.endif\n", &[(2, "non-terminated '.if' block")]),
            ("global\n.if 1\n.else\n.else\n.endif\n", &[(4, "'.else' after '.else' is not permitted")]),
            ("global\n.if 1\n.else\n.elif 1\n.endif\n", &[(4, "'.elif' after '.else' is not permitted")]),
            ("global\n.if 1\n.else x\n.endif\n", &[(3, "unexpected argument 'x' for '.else'")]),
            ("global\n.if 1\n.endif x\n", &[(3, "unexpected argument 'x' for '.endif'")]),
            (
                "global\n.if foo(x)\n.endif\n",
                &[(2, "unparsable conditional expression 'foo(x)' in '.if' at position 1")],
            ),
            (
                "global\n.if 0\n.elif streq(a)\n.endif\n",
                &[(
                    3,
                    "missing arguments (got 1/2), type 'string' expected in argument 1 of predicate 'streq' used in conditional expression in '.elif' at position 8",
                )],
            ),
            ("global\n.if 1 1\n.endif\n", &[(2, "unexpected character '1' at the end of conditional expression '1 1' in '.if' at position 3")]),
            // tokenizer errors are reported inside skipped blocks too (hx)
            ("global\n.if 0\n  .notice \"abc\n.endif\n", &[(3, "unmatched quote at position 11")]),
            // a directive line that fails to tokenize still opens/closes its level
            ("global\n.if \"1\n  x\n.endif\n", &[(2, "unmatched quote at position 5")]),
            ("global\n.if 1\n.endif \"\n", &[(3, "unmatched quote at position 8")]),
            ("[foo\nglobal\n", &[(1, "empty scope name is forbidden")]),
            ("[]\n", &[(1, "empty scope name is forbidden")]),
            ("[a/b]\n", &[(1, "character '/' is not permitted in a scope name")]),
            ("[ab] x\n", &[(1, "character 'x' is not permitted after scope declaration")]),
            ("global\n  maxconn 1\0junk\n", &[(2, "stray NUL character at position 12")]),
            ("global\n  maxconn 10", &[(2, "missing LF on last line, file might have been truncated at position 13")]),
        ];
        for (text, want) in cases {
            let want: Vec<(usize, String)> =
                want.iter().map(|(l, m)| (*l, m.to_string())).collect();
            assert_eq!(errors(text), want, "config {text:?}");
        }
    }

    #[test]
    fn scopes_are_ignored() {
        let d = doc("[my-scope]\nbackend b\n  [other] # comment\n  x\n");
        assert_eq!(flat(&d), [(4, vec!["x"])]);
    }

    #[test]
    fn nesting_limit() {
        // hx: the 100th nested `.if` is refused ("max is 100")
        let ok = format!(
            "global\n{}x\n{}",
            ".if 1\n".repeat(99),
            ".endif\n".repeat(99)
        );
        assert_eq!(flat(&doc(&ok)), [(101, vec!["x"])]);
        let deep = format!(
            "global\n{}x\n{}",
            ".if 1\n".repeat(100),
            ".endif\n".repeat(100)
        );
        assert_eq!(
            errors(&deep),
            [(101, "too many nested '.if', max is 100".to_string())]
        );
    }

    #[test]
    fn word_limit() {
        let line = (1..=64)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            doc(&format!("global\n{line}\n")).sections[0].lines[0]
                .words
                .len(),
            64
        );
        assert_eq!(
            errors(&format!("global\n{line} w65\n")),
            [(2, "too many words (at most 64)".to_string())]
        );
    }

    #[test]
    fn line_endings() {
        // CRLF files, and a CR alone ending the statement (hx)
        let d = doc("global\r\n  maxconn 10\r\n\r\nbackend b\r\n  x a\rb c\n");
        assert_eq!(flat(&d), [(2, vec!["maxconn", "10"]), (5, vec!["x", "a"])]);
        assert_eq!(d.sections[1].name.as_deref(), Some("b"));
    }

    /// Arbitrary input never panics (slicing, recursion, arithmetic): random lines
    /// built from the characters the grammar cares about, multi-byte ones included.
    #[test]
    fn arbitrary_input_does_not_panic() {
        let pieces = [
            "global",
            "backend",
            "defaults",
            "frontend",
            "from",
            ".if",
            ".elif",
            ".else",
            ".endif",
            ".notice",
            ".alert",
            "[",
            "]",
            " ",
            "\t",
            "\n",
            "\r",
            "\0",
            "\"",
            "'",
            "\\",
            "\\x",
            "\\x4",
            "$",
            "${",
            "}",
            "{",
            "-",
            "[*]",
            "#",
            "(",
            ")",
            "!",
            "&&",
            "||",
            ",",
            "1",
            "0",
            "a",
            "HOST",
            ".LINE",
            "streq(",
            "defined(",
            "version_atleast(",
            "feature(",
            "\u{e9}",
            "\u{1f600}",
            "x",
        ];
        let mut rng = fastrand::Rng::with_seed(0x4a50);
        for _ in 0..3000 {
            let text: String = (0..rng.usize(0..40))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let _ = parse(&text);
        }
    }

    /// Several errors at once, in line order, each on its line, and lines after an
    /// error still parsed.
    #[test]
    fn several_errors_at_once() {
        let text = "maxconn 1\n\
                    global\n\
                    \x20 x \"open\n\
                    .if bogus\n\
                    \x20 .alert \"not reached\"\n\
                    .endif\n\
                    frontend\n\
                    \x20 bind :80\n\
                    backend b1 from nowhere\n\
                    .alert \"stop\"\n\
                    .endif\n\
                    .if 1\n";
        let want = [
            (1, "unknown keyword 'maxconn' out of section"),
            (3, "unmatched quote at position 5"),
            (
                4,
                "unparsable conditional expression 'bogus' in '.if' at position 1",
            ),
            (7, "'frontend' expects an <id> argument"),
            (9, "defaults section 'nowhere' not found for backend 'b1'"),
            (10, "alert: stop"),
            (11, "lone '.endif' with no matching '.if'"),
            (12, "non-terminated '.if' block"),
        ];
        let want: Vec<(usize, String)> = want.iter().map(|(l, m)| (*l, m.to_string())).collect();
        assert_eq!(errors(text), want);
        let err = parse(text).unwrap_err();
        assert_eq!(err[1].to_string(), "line 3: unmatched quote at position 5");
    }
}
