//! The haproxy.cfg grammar layer: HAProxy's configuration language turned into a
//! line-numbered [`Document`] of sections and keyword lines. It knows the file format
//! (configuration manual sections 2.1 to 2.6 and the section headers of section 4) but
//! not what any keyword means: mapping a `Document` onto ringlb's [`Config`] is the job
//! of the layer above, which also reports the sections ringlb does not support.
//!
//! It follows HAProxy 2.6 (checked against `haproxy -c` 2.6.12):
//!
//! * **Lines** (`lexer`): words split on unprotected spaces and tabs, `#` comments,
//!   backslash escapes (`\ `, `\#`, `\\`, `\'`, `\"`, `\t`, `\n`, `\r`, `\xNN`), weak
//!   `"..."` and strong `'...'` quotes joined with adjacent text into one word, and
//!   environment variables `$NAME`, `${NAME}`, `${NAME-default}`, `${NAME[*]}` (split
//!   into words) and the pseudo-variables `.LINE`, `.FILE`, `.SECTION`. As in HAProxy,
//!   variables are expanded **only inside double quotes**: an unquoted `$HOME` stays
//!   `$HOME`. An unset variable expands to nothing. Where the manual and the 2.6 code
//!   disagree, this follows the code: `\<TAB>` is not an escape (the backslash stays
//!   and the TAB separates words), and an unknown escape such as `\1` keeps its
//!   backslash.
//! * **Conditional blocks** (`cond`, `grammar`): `.if`, `.elif`, `.else`, `.endif`,
//!   nested up to 100 levels, with `defined()`, `feature()`, `streq()`, `strneq()`,
//!   `version_atleast()`, `version_before()`, integers, `!`, `&&`, `||` and
//!   parentheses; `.diag`, `.notice`, `.warning` become [`Document::warnings`] and
//!   `.alert` an error. A version test compares with [`HAPROXY_VERSION`]; a feature
//!   test looks the name up in [`FEATURES`].
//! * **Sections** (`grammar`): `global`, `defaults [NAME] [from NAME]`,
//!   `frontend|backend|listen NAME [from NAME]`, and the other 2.6 sections as
//!   [`SectionKind::Other`]. Header checks are HAProxy's: proxy names, `from`
//!   references to an earlier `defaults` section, duplicate proxy names.
//! * **Values** (`units`): [`parse_time`] and [`parse_size`] for keyword arguments.
//!
//! Every error is collected, each with its line; parsing never stops at the first.
//!
//! Deviations from HAProxy 2.6, all on purpose:
//!
//! * HAProxy stops reading at some errors (a bad `.if` condition, a lone `.else`, an
//!   `.alert`, a proxy header without a name); this carries on, treating a bad
//!   condition as false, so that every error is reported at once.
//! * A non-terminated `.if` is reported on the `.if` line (HAProxy names the last line).
//! * A word that `\xNN` escapes leave as invalid UTF-8 is an error (words are `String`).
//! * Header arguments HAProxy 2.6 silently ignores are errors for proxies (`backend b
//!   extra`, which 2.6 neither creates nor reports) and warnings for `defaults`.
//! * `.notice` and friends reject any extra non-empty word, not only the third.
//! * `parse_time` rejects characters after a valid unit (`10sec`), which 2.6 only warns
//!   about.
//! * Scope lines (`[name]`, used by SPOE files) are checked and then ignored.
//!
//! [`Config`]: crate::config::Config

mod cond;
mod grammar;
mod lexer;
mod units;

use std::fmt;

pub use grammar::parse_document;
pub use units::{parse_size, parse_time};

/// The HAProxy version `version_atleast()` and `version_before()` compare with: the
/// grammar this module implements is 2.6's, so a configuration written for later
/// versions can test for them and keep to 2.6 syntax here. Missing components are zero
/// and this is a release, so `version_atleast(2.6.1)` is false and
/// `version_atleast(2.6-dev3)` true.
pub const HAPROXY_VERSION: &str = "2.6";

/// The names `feature()` is true for, using HAProxy's feature names as `haproxy -vv`
/// lists them: only those ringlb genuinely provides (the epoll fallback driver, splice,
/// threads, CPU pinning). Everything else, `OPENSSL` and `LUA` included, is false, so
/// that blocks guarded by them are skipped.
pub const FEATURES: &[&str] = &["EPOLL", "LINUX_SPLICE", "THREAD", "CPU_AFFINITY"];

/// One keyword line: its words after quoting, escaping and environment expansion, with
/// its line number (1-based). `words` is never empty and `words[0]`, the keyword, is
/// never empty; later words may be (`kw "" x` has an empty second word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub words: Vec<String>,
}

impl Line {
    /// The first word.
    pub fn keyword(&self) -> &str {
        &self.words[0]
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }
}

/// What a section header declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
    /// A section HAProxy 2.6 knows but this grammar does not interpret: `resolvers`,
    /// `peers`, `userlist`, `mailers`, `program`, `http-errors`, `ring`, `cache`,
    /// `fcgi-app`, `log-forward`, `namespace_list`. Holds the keyword.
    Other(String),
}

/// The section keywords of HAProxy 2.6 that [`SectionKind::Other`] covers.
pub(crate) const OTHER_SECTIONS: &[&str] = &[
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

impl SectionKind {
    /// The keyword that opens such a section.
    pub fn keyword(&self) -> &str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
            SectionKind::Other(kw) => kw,
        }
    }

    /// The section a keyword opens, if it is a section keyword.
    pub fn from_keyword(kw: &str) -> Option<SectionKind> {
        Some(match kw {
            "global" => SectionKind::Global,
            "defaults" => SectionKind::Defaults,
            "frontend" => SectionKind::Frontend,
            "backend" => SectionKind::Backend,
            "listen" => SectionKind::Listen,
            _ if OTHER_SECTIONS.contains(&kw) => SectionKind::Other(kw.to_string()),
            _ => return None,
        })
    }

    /// Frontend, backend or listen: a proxy that handles traffic.
    pub fn is_proxy(&self) -> bool {
        matches!(
            self,
            SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen
        )
    }
}

/// A section: its header and the keyword lines up to the next header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// The name given on the header line (always present for proxies; optional for
    /// `defaults`; the first argument for [`SectionKind::Other`]; none for `global`).
    pub name: Option<String>,
    /// `from NAME` on a `defaults`, `frontend`, `backend` or `listen` header: the
    /// `defaults` section to start from. The parser has checked that an earlier
    /// `defaults` section has that name; [`Document::defaults_of`] finds it.
    pub from: Option<String>,
    /// The header's line.
    pub line: usize,
    pub lines: Vec<Line>,
}

/// A parsed haproxy.cfg: its sections in file order, and the messages that do not
/// stop it (`.notice`, `.warning`, `.diag`, and header oddities HAProxy tolerates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub sections: Vec<Section>,
    pub warnings: Vec<CfgError>,
}

impl Document {
    /// `defaults_of` of every section, in one pass: a file of thousands of proxies
    /// does not look back over every section before each of them.
    pub fn defaults_each(&self) -> Vec<Option<usize>> {
        let mut last = None;
        let mut out = Vec::with_capacity(self.sections.len());
        for (i, s) in self.sections.iter().enumerate() {
            out.push(match (&s.from, s.kind.is_proxy()) {
                (None, true) => last,
                _ => self.defaults_of(i),
            });
            if s.kind == SectionKind::Defaults {
                last = Some(i);
            }
        }
        out
    }

    /// The index of the `defaults` section that section `index` takes its settings
    /// from, HAProxy's way: the one its `from` names, or for a proxy without `from`
    /// the last `defaults` section before it. `None` for other sections, or if there
    /// is none.
    pub fn defaults_of(&self, index: usize) -> Option<usize> {
        let section = self.sections.get(index)?;
        if !(section.kind.is_proxy() || section.kind == SectionKind::Defaults) {
            return None;
        }
        let earlier = &self.sections[..index];
        match &section.from {
            Some(name) => earlier.iter().rposition(|s| {
                s.kind == SectionKind::Defaults && s.name.as_deref() == Some(name.as_str())
            }),
            None if section.kind.is_proxy() => earlier
                .iter()
                .rposition(|s| s.kind == SectionKind::Defaults),
            None => None,
        }
    }
}

/// A problem in the file, with the line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for CfgError {}
