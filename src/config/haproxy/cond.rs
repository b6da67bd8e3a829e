//! `.if` / `.elif` conditions (configuration manual 2.4): parsing and evaluation of
//! the expression that follows the directive. Part of `config::haproxy`; `grammar`
//! hands it the directive's words re-joined with single spaces, as HAProxy does.
//!
//! A port of HAProxy 2.6's `cfgcond.c` (terms, `!`, `&&`, `||`, parentheses), of the
//! argument parser it uses for predicate arguments (`make_arg_list()`, the second level
//! of quoting of manual 2.2) and of `split_version()`, so that error messages and
//! corner cases (`1 ||`, `streq(a, a)`, `version_atleast(abc)`) come out as in 2.6.

use super::lexer::is_c_space;
use super::{FEATURES, HAPROXY_VERSION};

/// HAProxy's `MAX_CFG_RECURSION`.
const MAX_DEPTH: i32 = 1024;

/// A condition error: HAProxy's message and the 1-based position in the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CondError {
    pub message: String,
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pred {
    Defined,
    Feature,
    StrEq,
    StrNeq,
    VersionAtLeast,
    VersionBefore,
}

const PREDICATES: &[(&str, Pred, usize)] = &[
    ("defined", Pred::Defined, 1),
    ("feature", Pred::Feature, 1),
    ("streq", Pred::StrEq, 2),
    ("strneq", Pred::StrNeq, 2),
    ("version_atleast", Pred::VersionAtLeast, 1),
    ("version_before", Pred::VersionBefore, 1),
];

#[derive(Debug)]
enum TermKind {
    Const(bool),
    Paren(Expr),
    Pred(Pred, Vec<Vec<u8>>),
}

#[derive(Debug)]
struct Term {
    neg: bool,
    kind: TermKind,
}

/// OR of ANDs of terms.
type Expr = Vec<Vec<Term>>;

type Parsed<T> = Result<Option<T>, CondError>;

struct Parser<'a> {
    s: &'a [u8],
}

impl<'a> Parser<'a> {
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn skip_blanks(&self, mut i: usize) -> usize {
        while matches!(self.at(i), b' ' | b'\t') {
            i += 1;
        }
        i
    }

    fn rest(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.s[i.min(self.s.len())..]).into_owned()
    }

    fn err(&self, message: String, at: usize) -> CondError {
        CondError {
            message,
            position: at + 1,
        }
    }

    /// `cfg_parse_cond_term()`: `Ok(None)` when there is nothing to parse.
    fn term(&self, text: &mut usize, depth: i32) -> Parsed<Term> {
        let start = *text;
        let mut i = self.skip_blanks(start);
        if i >= self.s.len() {
            return Ok(None);
        }
        // HAProxy reports these at the term's start, before its leading blanks.
        let unparsable = || {
            self.err(
                format!("unparsable conditional expression '{}'", self.rest(start)),
                start,
            )
        };
        if depth <= 0 {
            return Err(unparsable());
        }
        let mut neg = false;
        while self.at(i) == b'!' {
            neg = !neg;
            i = self.skip_blanks(i + 1);
        }
        if let Some((nonzero, end)) = c_strtol(self.s, i, 0) {
            *text = end;
            return Ok(Some(Term {
                neg,
                kind: TermKind::Const(nonzero),
            }));
        }
        if self.at(i) == b'(' {
            i = self.skip_blanks(i + 1);
            let Some(expr) = self.expr(&mut i, depth - 1)? else {
                return Err(unparsable());
            };
            i = self.skip_blanks(i);
            if self.at(i) != b')' {
                return Err(self.err(
                    format!(
                        "expected ')' after conditional expression '{}'",
                        self.rest(start)
                    ),
                    start,
                ));
            }
            *text = self.skip_blanks(i + 1);
            return Ok(Some(Term {
                neg,
                kind: TermKind::Paren(expr),
            }));
        }
        // The predicate name runs up to a space or an opening parenthesis.
        let len = self.s[i..]
            .iter()
            .position(|&c| c == b' ' || c == b'(')
            .unwrap_or(self.s.len() - i);
        let word = &self.s[i..i + len];
        if let Some(&(name, pred, nargs)) = PREDICATES.iter().find(|(n, _, _)| n.as_bytes() == word)
        {
            return match self.arg_list(i + len, nargs) {
                Ok((args, end)) => {
                    *text = end;
                    Ok(Some(Term { neg, kind: TermKind::Pred(pred, args) }))
                }
                Err((msg, arg, at)) => Err(self.err(
                    format!("{msg} in argument {arg} of predicate '{name}' used in conditional expression"),
                    at,
                )),
            };
        }
        Err(unparsable())
    }

    /// `cfg_parse_cond_and()`.
    fn and(&self, text: &mut usize, depth: i32) -> Parsed<Vec<Term>> {
        let mut i = *text;
        if i >= self.s.len() {
            return Ok(None);
        }
        let sub = |i: usize| {
            self.err(
                format!("unparsable conditional sub-expression '{}'", self.rest(i)),
                i,
            )
        };
        if depth <= 0 {
            return Err(sub(i));
        }
        let Some(left) = self.term(&mut i, depth - 1)? else {
            return Err(sub(i));
        };
        i = self.skip_blanks(i);
        *text = i;
        if !(self.at(i) == b'&' && self.at(i + 1) == b'&') {
            return Ok(Some(vec![left]));
        }
        i = self.skip_blanks(i + 2);
        match self.and(&mut i, depth - 1)? {
            Some(mut right) => {
                *text = i;
                right.insert(0, left);
                Ok(Some(right))
            }
            None => Ok(None),
        }
    }

    /// `cfg_parse_cond_expr()`.
    fn expr(&self, text: &mut usize, depth: i32) -> Parsed<Expr> {
        let mut i = *text;
        if i >= self.s.len() {
            return Ok(None);
        }
        let unparsable = |i: usize| {
            self.err(
                format!("unparsable conditional expression '{}'", self.rest(i)),
                i,
            )
        };
        if depth <= 0 {
            return Err(unparsable(i));
        }
        let Some(left) = self.and(&mut i, depth - 1)? else {
            return Err(unparsable(i));
        };
        i = self.skip_blanks(i);
        *text = i;
        if !(self.at(i) == b'|' && self.at(i + 1) == b'|') {
            return Ok(Some(vec![left]));
        }
        i = self.skip_blanks(i + 2);
        match self.expr(&mut i, depth - 1)? {
            Some(mut right) => {
                *text = i;
                right.insert(0, left);
                Ok(Some(right))
            }
            None => Ok(None),
        }
    }

    /// `make_arg_list()` for `nargs` mandatory string arguments starting at `i` (on the
    /// opening parenthesis, if any). Returns the arguments and the position after the
    /// closing parenthesis, or (message, argument number, position) on error.
    #[allow(clippy::type_complexity)]
    fn arg_list(
        &self,
        mut i: usize,
        nargs: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), (String, usize, usize)> {
        let empty = self.at(i) != b'(';
        if !empty {
            i += 1;
        }
        let mut args = Vec::new();
        while args.len() < nargs {
            let mut word = Vec::new();
            let (mut squote, mut dquote) = (false, false);
            while !empty && i < self.s.len() {
                let c = self.s[i];
                if c == b'"' && !squote {
                    dquote = !dquote;
                    i += 1;
                } else if c == b'\'' && !dquote {
                    squote = !squote;
                    i += 1;
                } else if c == b'\\' && !squote {
                    match self.at(i + 1) {
                        0 => {
                            let msg = format!(
                                "failed to parse '\\' after '{}' as type 'string' at position {}",
                                String::from_utf8_lossy(&word),
                                args.len() + 1
                            );
                            return Err((msg, args.len(), i));
                        }
                        n @ (b'\\' | b' ' | b'"' | b'\'') => {
                            word.push(n);
                            i += 2;
                        }
                        b'r' => {
                            word.push(b'\r');
                            i += 2;
                        }
                        b'n' => {
                            word.push(b'\n');
                            i += 2;
                        }
                        b't' => {
                            word.push(b'\t');
                            i += 2;
                        }
                        _ => {
                            word.push(b'\\');
                            i += 1;
                        }
                    }
                } else if !squote && !dquote && (c == b',' || c == b')') {
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            }
            args.push(word);
            if empty || i >= self.s.len() || self.s[i] == b')' || args.len() >= nargs {
                break;
            }
            i += 1; // the comma
        }
        let mut pos = args.len();
        if pos < nargs {
            return Err((
                format!("missing arguments (got {pos}/{nargs}), type 'string' expected"),
                pos,
                i,
            ));
        }
        if !empty {
            if self.at(i) == b')' {
                i += 1;
            } else {
                let rest = self.rest(i);
                let msg = if rest.is_empty() {
                    "expected ')'".to_string()
                } else {
                    format!("expected ')' before '{rest}'")
                };
                if pos > 1 {
                    pos -= 1;
                }
                return Err((msg, pos, i));
            }
        }
        Ok((args, i))
    }
}

/// C's `strtol(s + i, &end, base)` reduced to what conditions need: whether the value is
/// non-zero and where the number ends, or `None` when no digits were converted.
fn c_strtol(s: &[u8], i: usize, base: u32) -> Option<(bool, usize)> {
    let (value, end) = c_strtol_value(s, i, base)?;
    Some((value != 0, end))
}

/// C's `strtol()`: skips white space, takes a sign, then digits in `base` (0 detects
/// `0x` and leading-zero octal). The value saturates like C's does.
fn c_strtol_value(s: &[u8], i: usize, base: u32) -> Option<(i64, usize)> {
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let mut j = i;
    while is_c_space(at(j)) {
        j += 1;
    }
    let negative = at(j) == b'-';
    if matches!(at(j), b'+' | b'-') {
        j += 1;
    }
    let mut radix = base;
    if (radix == 0 || radix == 16)
        && at(j) == b'0'
        && matches!(at(j + 1), b'x' | b'X')
        && at(j + 2).is_ascii_hexdigit()
    {
        radix = 16;
        j += 2;
    } else if radix == 0 {
        radix = if at(j) == b'0' { 8 } else { 10 };
    }
    let digits_start = j;
    let mut value: i64 = 0;
    while let Some(d) = (at(j) as char).to_digit(radix) {
        value = value.saturating_mul(radix as i64).saturating_add(d as i64);
        j += 1;
    }
    if j == digits_start {
        return None;
    }
    Some((
        if negative {
            value.saturating_neg()
        } else {
            value
        },
        j,
    ))
}

/// `split_version()`: `<a>[.<b>[.<c>[.<d>]]][-{dev,pre,rc}<f>][-*][-<g>]` into 7 numbers;
/// the release tag defaults to 3 (dev = 1, pre/rc = 2). `None` if unparsable.
fn split_version(v: &str) -> Option<[u32; 7]> {
    let s = v.as_bytes();
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let mut out = [0u32, 0, 0, 0, 3, 0, 0];
    if s.is_empty() {
        return None;
    }
    // strtol(p, &end, 10); C stores the long in an unsigned int.
    let num = |p: usize| -> (u32, usize) {
        match c_strtol_value(s, p, 10) {
            Some((n, end)) => (n as u32, end),
            None => (0, p),
        }
    };
    let mut p = 0;
    let mut tag = false;
    for slot in 0..4 {
        let (n, end) = num(p);
        out[slot] = n;
        p = end + 1;
        match at(end) {
            0 => return Some(out),
            b'-' => {
                tag = true;
                break;
            }
            b'.' if slot < 3 => {}
            _ => return None,
        }
    }
    if !tag {
        return None;
    }
    // After a '-': either a commit number, or a dev/rc/pre tag with its number.
    if !at(p).is_ascii_digit() {
        let tag_len = if s[p.min(s.len())..].starts_with(b"dev") {
            out[4] = 1;
            3
        } else if s[p.min(s.len())..].starts_with(b"rc") {
            out[4] = 2;
            2
        } else if s[p.min(s.len())..].starts_with(b"pre") {
            out[4] = 2;
            3
        } else {
            0
        };
        if tag_len > 0 {
            let (n, end) = num(p + tag_len);
            out[5] = n;
            p = end + 1;
            match at(end) {
                0 => return Some(out),
                b'-' => {}
                _ => return None,
            }
        }
    }
    // The commit count: after the last '-', if any.
    let tail = &s[p.min(s.len())..];
    let digits = match tail.iter().rposition(|&c| c == b'-') {
        Some(dash) => {
            let after = &tail[dash + 1..];
            if after.is_empty() {
                return None;
            }
            after
        }
        None => tail,
    };
    let text = std::str::from_utf8(digits).unwrap_or("");
    out[6] = match c_strtol_value(digits, 0, 10) {
        Some((n, end)) if end == text.len() => n as u32,
        _ => 0,
    };
    Some(out)
}

/// `compare_current_version()`: -1 if `v` is older than the emulated version, 0 if equal,
/// 1 if newer, -3 if `v` does not parse.
fn compare_version(v: &str) -> i32 {
    let Some(mine) = split_version(HAPROXY_VERSION) else {
        return -2;
    };
    let Some(theirs) = split_version(v) else {
        return -3;
    };
    match theirs.cmp(&mine) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

fn eval_expr(e: &Expr, env: &dyn Fn(&str) -> Option<String>) -> bool {
    e.iter().any(|and| and.iter().all(|t| eval_term(t, env)))
}

fn eval_term(t: &Term, env: &dyn Fn(&str) -> Option<String>) -> bool {
    let str_arg = |a: &Vec<u8>| String::from_utf8_lossy(a).into_owned();
    let v = match &t.kind {
        TermKind::Const(b) => *b,
        TermKind::Paren(e) => eval_expr(e, env),
        TermKind::Pred(p, args) => match p {
            Pred::Defined => env(&str_arg(&args[0])).is_some(),
            Pred::Feature => FEATURES.iter().any(|f| f.as_bytes() == args[0].as_slice()),
            Pred::StrEq => args[0] == args[1],
            Pred::StrNeq => args[0] != args[1],
            // An unparsable version compares as -3: "at least" true, "before" false.
            Pred::VersionAtLeast => compare_version(&str_arg(&args[0])) <= 0,
            Pred::VersionBefore => compare_version(&str_arg(&args[0])) > 0,
        },
    };
    v != t.neg
}

/// `cfg_eval_condition()`: evaluates the condition text of an `.if`/`.elif` line. An
/// empty condition is false. The whole expression is parsed before anything is
/// evaluated, so `0 && junk(` is still an error.
pub(crate) fn eval_condition(
    text: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, CondError> {
    if text.is_empty() {
        return Ok(false);
    }
    let p = Parser { s: text };
    let mut t = 0;
    match p.expr(&mut t, MAX_DEPTH)? {
        Some(expr) => {
            let t = p.skip_blanks(t);
            if t < text.len() {
                return Err(p.err(
                    format!(
                        "unexpected character '{}' at the end of conditional expression '{}'",
                        text[t] as char,
                        p.rest(0)
                    ),
                    t,
                ));
            }
            Ok(eval_expr(&expr, env))
        }
        None => Err(p.err(
            format!("unparsable conditional expression '{}'", p.rest(0)),
            t,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DEFV" => Some("1".into()),
            "EMPTYV" => Some(String::new()),
            _ => None,
        }
    }

    fn eval(text: &str) -> Result<bool, CondError> {
        eval_condition(text.as_bytes(), &env)
    }

    /// Condition text (as it is after the line's own unquoting) and its value. Every
    /// case was checked with `haproxy -c` 2.6.12 on this machine, except those about
    /// features and the version, which differ on purpose: this module claims
    /// `HAPROXY_VERSION` "2.6" and only the features in `FEATURES`.
    #[test]
    fn values() {
        let cases: &[(&str, bool)] = &[
            ("", false),
            ("0", false),
            ("1", true),
            ("-1", true),
            ("00", false),
            ("0x10", true),
            ("0x0", false),
            ("+5", true),
            ("007", true),
            ("!0", true),
            ("!!0", false),
            ("! 1", false),
            ("!!!1", false),
            ("!-0", true),
            ("defined(DEFV)", true),
            ("defined(EMPTYV)", true),
            ("defined(NOPE)", false),
            ("defined", false),
            ("defined()", false),
            ("defined(\"DEFV\")", true),
            ("defined('DEFV')", true),
            ("defined(\"DE\"FV)", true),
            ("streq(a,a)", true),
            ("streq(a,b)", false),
            ("streq(a, a)", false),
            ("streq(  a,  a)", true),
            ("streq(,)", true),
            ("streq(a,)", false),
            ("strneq(,)", false),
            ("strneq(a,b)", true),
            ("strneq(a,a)", false),
            ("streq(\"a b\",a b)", true),
            ("streq(\"a,b\",\"a,b\")", true),
            ("streq(a\\nb,a\\nb)", true),
            ("streq(a\\qb,a\\\\qb)", true),
            ("streq(a\\\\qb,a\\\\\\\\qb)", false),
            ("streq(a\\ b,a b)", true),
            ("streq('a)',\"a)\")", true),
            ("1 && 0", false),
            ("1 || 0", true),
            ("0 || 0", false),
            ("1 && 1", true),
            ("1&&1", true),
            ("0 || 0 || 1", true),
            ("0 && 1 || 1 && 1", true),
            ("(0 || 1) && 1", true),
            ("(((1)))", true),
            ("( 1 )", true),
            ("!(0)", true),
            ("! (1 && 0)", true),
            ("defined(DEFV)&&!defined(NOPE)", true),
            ("defined(DEFV) && defined(DEFV) || 0", true),
            // features: only those listed in FEATURES
            ("feature(EPOLL)", true),
            ("feature(LINUX_SPLICE)", true),
            ("feature(OPENSSL)", false),
            ("feature(LUA)", false),
            ("feature(EPOL)", false),
            ("feature", false),
            // versions, against "2.6" (2.6.0 released)
            ("version_atleast(2.6)", true),
            ("version_atleast(2.6.0)", true),
            ("version_atleast(2.6.12)", false),
            ("version_atleast(2.7)", false),
            ("version_atleast(3)", false),
            ("version_atleast(2.5.99)", true),
            ("version_atleast(2.4-dev19)", true),
            ("version_atleast(2.6-dev1)", true),
            ("version_atleast(2.6-rc1)", true),
            ("version_atleast(2.6-pre2)", true),
            ("version_atleast(2.6.0-1)", false),
            ("version_before(2.7)", true),
            ("version_before(2.6)", false),
            ("version_before(2.6-dev1)", false),
            ("version_before(2.6.0.1)", true),
            ("version_before(2.6.0-1)", true),
            // unparsable versions compare as "older" (as in HAProxy)
            ("version_atleast(abc)", true),
            ("version_before(abc)", false),
            ("version_atleast(2.x)", true),
            ("version_atleast()", true),
            ("version_atleast", true),
            ("version_atleast(2.6.)", true),
            ("version_atleast(-1)", false),
        ];
        for (text, want) in cases {
            assert_eq!(eval(text), Ok(*want), "condition {text:?}");
        }
    }

    /// Condition text, HAProxy's message and position (all checked with `haproxy -c`).
    #[test]
    fn errors() {
        let cases: &[(&str, &str, usize)] = &[
            ("1 2", "unexpected character '2' at the end of conditional expression '1 2'", 3),
            ("1 1", "unexpected character '1' at the end of conditional expression '1 1'", 3),
            ("0x", "unexpected character 'x' at the end of conditional expression '0x'", 2),
            ("08", "unexpected character '8' at the end of conditional expression '08'", 2),
            ("!", "unparsable conditional expression '!'", 1),
            ("- 1", "unparsable conditional expression '- 1'", 1),
            ("foo", "unparsable conditional expression 'foo'", 1),
            ("DEFV", "unparsable conditional expression 'DEFV'", 1),
            ("foo(x)", "unparsable conditional expression 'foo(x)'", 1),
            ("defined (DEFV)", "unexpected character '(' at the end of conditional expression 'defined (DEFV)'", 9),
            (
                "defined(DEFV",
                "expected ')' in argument 1 of predicate 'defined' used in conditional expression",
                13,
            ),
            (
                "defined(DEFV,x)",
                "expected ')' before ',x)' in argument 1 of predicate 'defined' used in conditional expression",
                13,
            ),
            ("defined(DEFV)x", "unexpected character 'x' at the end of conditional expression 'defined(DEFV)x'", 14),
            ("defined(X))", "unexpected character ')' at the end of conditional expression 'defined(X))'", 11),
            (
                "streq(a)",
                "missing arguments (got 1/2), type 'string' expected in argument 1 of predicate 'streq' used in conditional expression",
                8,
            ),
            (
                "streq",
                "missing arguments (got 1/2), type 'string' expected in argument 1 of predicate 'streq' used in conditional expression",
                6,
            ),
            (
                "streq(\"a,b)",
                "missing arguments (got 1/2), type 'string' expected in argument 1 of predicate 'streq' used in conditional expression",
                12,
            ),
            (
                "streq(a,b,c)",
                "expected ')' before ',c)' in argument 1 of predicate 'streq' used in conditional expression",
                10,
            ),
            (
                "streq(a,b,a,b)",
                "expected ')' before ',a,b)' in argument 1 of predicate 'streq' used in conditional expression",
                10,
            ),
            (
                "streq(\"x)\",x\\))",
                "unexpected character ')' at the end of conditional expression 'streq(\"x)\",x\\))'",
                15,
            ),
            (
                "defined(a\\",
                "failed to parse '\\' after 'a' as type 'string' at position 1 in argument 0 of predicate 'defined' used in conditional expression",
                10,
            ),
            ("defined(a\\\\", "expected ')' in argument 1 of predicate 'defined' used in conditional expression", 12),
            ("0 && x(", "unparsable conditional expression 'x('", 6),
            ("1 || x(", "unparsable conditional expression 'x('", 6),
            ("(1", "expected ')' after conditional expression '(1'", 1),
            ("()", "unparsable conditional expression ')'", 2),
            ("1 &&", "unparsable conditional expression '&&'", 3),
            ("1 ||", "unparsable conditional expression '1 ||'", 3),
            ("1 ||| 1", "unparsable conditional expression '| 1'", 5),
            ("1 & 1", "unexpected character '&' at the end of conditional expression '1 & 1'", 3),
            ("(1)(1)", "unexpected character '(' at the end of conditional expression '(1)(1)'", 4),
        ];
        for (text, msg, pos) in cases {
            let err = eval(text).expect_err(text);
            assert_eq!(
                (err.message.as_str(), err.position),
                (*msg, *pos),
                "condition {text:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(eval(&text).is_err());
        let text = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(eval(&text), Ok(true));
    }

    #[test]
    fn versions() {
        let cases: &[(&str, Option<[u32; 7]>)] = &[
            ("1.2.1-pre2", Some([1, 2, 1, 0, 2, 2, 0])),
            ("1.2.1", Some([1, 2, 1, 0, 3, 0, 0])),
            ("1.2.10.1", Some([1, 2, 10, 1, 3, 0, 0])),
            ("1.3.16-rc1", Some([1, 3, 16, 0, 2, 1, 0])),
            ("1.4-dev3", Some([1, 4, 0, 0, 1, 3, 0])),
            ("1.5-dev18-43", Some([1, 5, 0, 0, 1, 18, 43])),
            ("2.4-dev18-f6818d-20", Some([2, 4, 0, 0, 1, 18, 20])),
            ("2.6", Some([2, 6, 0, 0, 3, 0, 0])),
            ("2.6-1", Some([2, 6, 0, 0, 3, 0, 1])),
            ("", None),
            ("abc", None),
            ("2.x", None),
            ("2.6-", Some([2, 6, 0, 0, 3, 0, 0])),
            ("2.6-foo-", None),
        ];
        for (v, want) in cases {
            assert_eq!(split_version(v), *want, "version {v:?}");
        }
    }
}
