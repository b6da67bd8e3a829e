//! The haproxy.cfg word splitter: one physical line in, its words out, with HAProxy's
//! quoting, backslash escapes and environment expansion (configuration manual 2.2 and
//! 2.3). Part of `config::haproxy`; `grammar` calls it once per line. It is a port of
//! HAProxy 2.6's `parse_line()` as `readcfgfile()` calls it (environment, both quote
//! kinds, backslashes, `#` comments and `[*]` word expansion all enabled).

/// HAProxy's `MAX_LINE_ARGS`: a line holds at most this many words.
pub(crate) const MAX_WORDS: usize = 64;

/// What the lexer needs from outside the line: the environment and the values of the
/// pseudo-variables `.LINE`, `.FILE` and `.SECTION`.
pub(crate) struct LexEnv<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub line: usize,
    /// `.SECTION`: the current section's name, or its keyword when it has none, or ""
    /// before the first section.
    pub section: &'a str,
}

/// A tokenizing error; `at` is the byte offset in the line of the offending character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub at: usize,
    pub kind: LexErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LexErrorKind {
    Quote,
    Brace,
    VarName,
    Hex,
    WordExpand,
    TooMany,
}

impl LexErrorKind {
    /// HAProxy's wording for this error.
    pub fn message(self) -> &'static str {
        match self {
            LexErrorKind::Quote => "unmatched quote",
            LexErrorKind::Brace => "unmatched brace in environment variable name",
            LexErrorKind::VarName => "forbidden first char in environment variable name",
            LexErrorKind::Hex => "truncated or invalid hexadecimal sequence",
            LexErrorKind::WordExpand => "truncated or invalid word expansion sequence",
            LexErrorKind::TooMany => "too many words",
        }
    }
}

/// The words of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Words {
    pub words: Vec<Vec<u8>>,
    /// The line ended with a separator and nothing after it (trailing blanks, or a
    /// last word that came out empty). HAProxy drops that empty last word but its
    /// `.if` re-merging still turns the separator into a trailing space, which shows
    /// in condition error messages.
    pub trailing_separator: bool,
}

/// C's `isspace()` in the "C" locale.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits `line[start..]` into words. `start` is where the statement begins (HAProxy
/// skips leading white space first); offsets in errors count from the start of `line`.
///
/// Words are raw bytes: `\xNN` may produce any byte, including NUL. A trailing empty
/// word is dropped (`kw ""` has one word, as in HAProxy) but empty words before a
/// separator are kept (`kw "" x` has three).
pub(crate) fn split_words(line: &str, start: usize, lx: &LexEnv) -> Result<Words, LexError> {
    let b = line.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut squote = false;
    let mut dquote = false;
    // Where the currently open quote started, for the error.
    let mut quote: Option<usize> = None;
    let mut too_many: Option<usize> = None;
    let mut i = start;

    // Ends the current word; HAProxy flags the line once a 65th word would start.
    let end_word =
        |words: &mut Vec<Vec<u8>>, cur: &mut Vec<u8>, too_many: &mut Option<usize>, pos| {
            words.push(std::mem::take(cur));
            if words.len() >= MAX_WORDS && too_many.is_none() {
                *too_many = Some(pos);
            }
        };

    loop {
        let c = at(i);
        if c == 0 || c == b'\n' || c == b'\r' {
            break;
        }
        if c == b'#' && !squote && !dquote {
            break;
        }
        if c == b'"' && !squote {
            dquote = !dquote;
            quote = if dquote { Some(i) } else { None };
            i += 1;
            continue;
        }
        if c == b'\'' && !dquote {
            squote = !squote;
            quote = if squote { Some(i) } else { None };
            i += 1;
            continue;
        }
        if c == b'\\' && !squote {
            match at(i + 1) {
                b' ' | b'\\' | b'#' | b'\'' | b'"' => {
                    cur.push(at(i + 1));
                    i += 2;
                }
                b't' => {
                    cur.push(b'\t');
                    i += 2;
                }
                b'n' => {
                    cur.push(b'\n');
                    i += 2;
                }
                b'r' => {
                    cur.push(b'\r');
                    i += 2;
                }
                // `\$` is an escape only inside double quotes (outside them `$` is not
                // special, and the backslash stays).
                b'$' if dquote => {
                    cur.push(b'$');
                    i += 2;
                }
                b'x' => {
                    let (h, l) = (hex_val(at(i + 2)), hex_val(at(i + 3)));
                    match (h, l) {
                        (Some(h), Some(l)) => cur.push((h << 4) | l),
                        _ => {
                            return Err(LexError {
                                at: i,
                                kind: LexErrorKind::Hex,
                            })
                        }
                    }
                    i += 4;
                }
                // Anything else (`\1`, `\q`, a trailing `\`) is not an escape: the
                // backslash is kept and the next character read normally.
                _ => {
                    cur.push(b'\\');
                    i += 1;
                }
            }
            continue;
        }
        if is_c_space(c) && !squote && !dquote {
            let sep = i;
            while is_c_space(at(i)) {
                i += 1;
            }
            end_word(&mut words, &mut cur, &mut too_many, sep);
            continue;
        }
        if c == b'$' && dquote {
            i += 1;
            let brace = if at(i) == b'{' {
                i += 1;
                Some(i - 1)
            } else {
                None
            };
            let first = at(i);
            if !(first.is_ascii_alphabetic() || first == b'_' || first == b'.') {
                return Err(LexError {
                    at: i,
                    kind: LexErrorKind::VarName,
                });
            }
            let name_start = i;
            if first == b'.' {
                i += 1;
            }
            while at(i).is_ascii_alphanumeric() || at(i) == b'_' {
                i += 1;
            }
            let name = &line[name_start..i];
            let mut value: Option<Vec<u8>> = if name.starts_with('.') {
                match name {
                    ".LINE" => Some(lx.line.to_string().into_bytes()),
                    // The file name is not ours to know: the caller's environment may
                    // answer for ".FILE".
                    ".FILE" => Some((lx.env)(".FILE").unwrap_or_default().into_bytes()),
                    ".SECTION" => Some(lx.section.as_bytes().to_vec()),
                    _ => {
                        return Err(LexError {
                            at: name_start,
                            kind: LexErrorKind::VarName,
                        })
                    }
                }
            } else {
                (lx.env)(name).map(String::into_bytes)
            };
            // `${NAME[*]}` splits the value into words on white space.
            let mut word_expand = false;
            if at(i) == b'[' && brace.is_some() {
                let open = i;
                if at(i + 1) != b'*' || at(i + 2) != b']' {
                    return Err(LexError {
                        at: open,
                        kind: LexErrorKind::WordExpand,
                    });
                }
                i += 3;
                word_expand = true;
            }
            if let Some(brace) = brace {
                if at(i) == b'-' {
                    // `${NAME-default}`: used only when NAME is not set at all.
                    let default_start = i + 1;
                    while at(i) != 0 && at(i) != b'}' {
                        i += 1;
                    }
                    if at(i) == 0 {
                        return Err(LexError {
                            at: brace,
                            kind: LexErrorKind::Brace,
                        });
                    }
                    if value.is_none() {
                        value = Some(b[default_start..i].to_vec());
                    }
                } else if at(i) != b'}' {
                    return Err(LexError {
                        at: brace,
                        kind: LexErrorKind::Brace,
                    });
                }
                i += 1;
            }
            if let Some(value) = value {
                let mut k = 0;
                while k < value.len() {
                    if word_expand && is_c_space(value[k]) {
                        end_word(&mut words, &mut cur, &mut too_many, i);
                        k += 1;
                        while k < value.len() && is_c_space(value[k]) {
                            k += 1;
                        }
                    } else {
                        cur.push(value[k]);
                        k += 1;
                    }
                }
            }
            continue;
        }
        cur.push(c);
        i += 1;
    }
    // HAProxy does not count an empty last word, but its slot stays in the buffer.
    let trailing_separator = cur.is_empty() && !words.is_empty();
    if !cur.is_empty() {
        words.push(cur);
    }
    if let Some(q) = quote {
        return Err(LexError {
            at: q,
            kind: LexErrorKind::Quote,
        });
    }
    if let Some(pos) = too_many {
        return Err(LexError {
            at: pos,
            kind: LexErrorKind::TooMany,
        });
    }
    Ok(Words {
        words,
        trailing_separator,
    })
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "EMPTY" => Some(String::new()),
            "SPL" => Some(" a  b ".into()),
            "TWO" => Some("x y".into()),
            ".FILE" => Some("/etc/haproxy/haproxy.cfg".into()),
            _ => None,
        }
    }

    fn split(line: &str) -> Result<Vec<String>, LexError> {
        let lx = LexEnv {
            env: &env,
            line: 7,
            section: "web",
        };
        let start = line.len()
            - line
                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                .len();
        split_words(line, start, &lx).map(|ws| {
            ws.words
                .into_iter()
                .map(|w| String::from_utf8(w).unwrap())
                .collect()
        })
    }

    /// Each case: input line, expected words. Cases marked (hx) were run through
    /// `haproxy -c` 2.6.12 on this machine, via `.notice WORD`, which prints one word.
    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   ", &[]),
            ("# only a comment", &[]),
            ("global", &["global"]),
            ("  timeout   connect\t5s  ", &["timeout", "connect", "5s"]),
            // vertical tab and form feed separate words too (hx: `\v`)
            ("a\x0bb\x0cc", &["a", "b", "c"]),
            ("mode http # trailing comment", &["mode", "http"]),
            ("mode http#glued comment", &["mode", "http"]),
            // quotes join with adjacent text into one word (hx)
            ("x foo\"bar baz\"qux", &["x", "foobar bazqux"]),
            ("x 'a b'\"c d\"\\ e", &["x", "a bc d e"]),
            ("x \"a#b\" 'a#b'", &["x", "a#b", "a#b"]),
            ("x ab#c", &["x", "ab"]),
            // backslash escapes outside quotes (hx)
            ("x \\#hash", &["x", "#hash"]),
            ("x \\\\back", &["x", "\\back"]),
            ("x \\\"dq \\'sq", &["x", "\"dq", "'sq"]),
            ("x a\\ b", &["x", "a b"]),
            // backslash-TAB is not an escape, whatever the manual's table says (hx):
            // the backslash stays and the TAB separates; in quotes both stay
            ("x a\\\tb", &["x", "a\\", "b"]),
            ("x \"a\\\tb\"", &["x", "a\\\tb"]),
            ("x \\t\\n\\r", &["x", "\t\n\r"]),
            ("x \\x41\\x42 \\x7e", &["x", "AB", "~"]),
            // not escapes: the backslash stays (hx: `\1`, `\q`, trailing `\`)
            ("x \\1 \\q a\\", &["x", "\\1", "\\q", "a\\"]),
            // `\$` is only an escape inside double quotes (hx)
            (
                "x \\$dollar \"\\$dollarq\"",
                &["x", "\\$dollar", "$dollarq"],
            ),
            // inside double quotes: escapes apply, `'` and `#` are plain (hx)
            (
                "x \"\\#inq\" \"\\'s\" \"\\\"d\" \"\\x43\" \"\\1\"",
                &["x", "#inq", "'s", "\"d", "C", "\\1"],
            ),
            ("x \"it's\"", &["x", "it's"]),
            // inside single quotes nothing is interpreted (hx)
            (
                "x '\\#insq' '\\x41' '$HOME' '\"'",
                &["x", "\\#insq", "\\x41", "$HOME", "\""],
            ),
            // environment: only inside double quotes (hx: `$HOME` stays literal)
            (
                "x $HOME \"$HOME\" \"${HOME}\"",
                &["x", "$HOME", "/root", "/root"],
            ),
            (
                "x \"$HOME.x\" \"${HOME}_X\" \"$HOME_X\" y",
                &["x", "/root.x", "/root_X", "", "y"],
            ),
            ("x \"${HOME}${HOME}\"", &["x", "/root/root"]),
            // unset expands to nothing; `-default` only replaces unset, not empty (hx)
            (
                "x \"${UNSET}x\" \"${UNSET-def ault}x\"",
                &["x", "x", "def aultx"],
            ),
            (
                "x \"${HOME-def}x\" \"${EMPTY-def}x\" \"$UNSET-x\"",
                &["x", "/rootx", "x", "-x"],
            ),
            // pseudo-variables (hx: .LINE, .SECTION, .FILE, `$.LINE`)
            (
                "x \"${.LINE}\" \"$.LINE\" \"${.SECTION}\" \"${.FILE}\"",
                &["x", "7", "7", "web", "/etc/haproxy/haproxy.cfg"],
            ),
            // `${VAR[*]}` splits the value into words (hx: " a  b " gives x a b y)
            ("x \"x${SPL[*]}y\"", &["x", "x", "a", "b", "y"]),
            ("x \"${TWO[*]}\"", &["x", "x", "y"]),
            (
                "x \"${TWO}\" \"${HOME}[*]\" \"$HOME[*]\"",
                &["x", "x y", "/root[*]", "/root[*]"],
            ),
            // an empty word before a separator is a word; a trailing one is not (hx)
            ("x \"\" y", &["x", "", "y"]),
            ("x \"\"", &["x"]),
            ("x \"\" ", &["x", ""]),
            ("\"\" x", &["", "x"]),
            // CR ends the statement (hx: `.notice a<CR>b c` prints 'a')
            ("x a\rb c", &["x", "a"]),
            ("x a \rb", &["x", "a", "b"]),
            // non-ASCII passes through
            ("x caf\u{e9} \"\\xc3\\xa9\"", &["x", "caf\u{e9}", "\u{e9}"]),
        ];
        for (line, want) in cases {
            let got = split(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            assert_eq!(got, *want, "line {line:?}");
        }
    }

    /// Each case: input line, error kind, 1-based position as HAProxy prints it (hx).
    #[test]
    fn errors() {
        let cases: &[(&str, LexErrorKind, usize)] = &[
            ("  .notice \"abc", LexErrorKind::Quote, 11),
            ("  .notice 'abc", LexErrorKind::Quote, 11),
            ("x \"a\"'b", LexErrorKind::Quote, 6),
            ("x \"it's", LexErrorKind::Quote, 3),
            ("  .notice \\x4", LexErrorKind::Hex, 11),
            ("  .notice \\xZZ", LexErrorKind::Hex, 11),
            ("  .notice \"a\\x4\"", LexErrorKind::Hex, 13),
            ("  .notice \"$1\"", LexErrorKind::VarName, 13),
            ("  .notice \"${1}\"", LexErrorKind::VarName, 14),
            ("  .notice \"$\"", LexErrorKind::VarName, 13),
            ("  .notice \"${.FOO}\"", LexErrorKind::VarName, 14),
            ("  .notice \"${HOME\"", LexErrorKind::Brace, 13),
            ("  .notice \"${HOME-x\"", LexErrorKind::Brace, 13),
            ("  .notice \"${HOME[x]}\"", LexErrorKind::WordExpand, 18),
        ];
        for (line, kind, pos) in cases {
            let err = split(line).expect_err(line);
            assert_eq!((err.kind, err.at + 1), (*kind, *pos), "line {line:?}");
        }
    }

    /// 64 words pass; a separator after the 64th word is already too many, even before
    /// a comment (hx, all three).
    #[test]
    fn word_limit() {
        let words: Vec<String> = (1..=64).map(|i| format!("w{i}")).collect();
        let line = words.join(" ");
        assert_eq!(split(&line).unwrap().len(), 64);
        assert_eq!(
            split(&format!("{line} ")).unwrap_err().kind,
            LexErrorKind::TooMany
        );
        assert_eq!(
            split(&format!("{line} #c")).unwrap_err().kind,
            LexErrorKind::TooMany
        );
        assert_eq!(split(&format!("{line}#c")).unwrap().len(), 64);
        assert_eq!(
            split(&format!("{line} w65")).unwrap_err().kind,
            LexErrorKind::TooMany
        );
    }

    #[test]
    fn raw_bytes() {
        let lx = LexEnv {
            env: &env,
            line: 1,
            section: "",
        };
        let got = split_words("x a\\x00b \\xff", 0, &lx).unwrap();
        assert_eq!(got.words, vec![b"x".to_vec(), b"a\0b".to_vec(), vec![0xff]]);
        assert!(!got.trailing_separator);
    }

    #[test]
    fn trailing_separator() {
        let lx = LexEnv {
            env: &env,
            line: 1,
            section: "",
        };
        let cases: &[(&str, usize, bool)] = &[
            ("x", 1, false),
            ("x ", 1, true),
            ("x y  # c", 2, true),
            ("x \"\"", 1, true),
            ("x \"${NOPE}\"", 1, true),
            ("\"\"", 0, false),
            ("", 0, false),
        ];
        for (line, n, trailing) in cases {
            let got = split_words(line, 0, &lx).unwrap();
            assert_eq!(
                (got.words.len(), got.trailing_separator),
                (*n, *trailing),
                "{line:?}"
            );
        }
    }
}
