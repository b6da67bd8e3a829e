//! Edits of a rewritten message head in place (`name: value` lines, CRLF, an empty
//! line at the end): what header rules and request-line rules do. Nothing is
//! allocated once the head buffer has grown to its working size.

use crate::rules::head::Head;
use crate::rules::pattern::Method;

/// The byte ranges of the lines of the header `name` (or matching `m`).
fn matches(line_name: &[u8], name: &str, m: Method, re: Option<&regex::bytes::Regex>) -> bool {
    let n = name.as_bytes();
    match m {
        Method::Beg => line_name.len() >= n.len() && line_name[..n.len()].eq_ignore_ascii_case(n),
        Method::End => {
            line_name.len() >= n.len()
                && line_name[line_name.len() - n.len()..].eq_ignore_ascii_case(n)
        }
        Method::Sub => {
            n.is_empty()
                || line_name
                    .windows(n.len().max(1))
                    .any(|w| w.eq_ignore_ascii_case(n))
        }
        Method::Reg => re.is_some_and(|r| r.is_match(line_name)),
        _ => line_name.eq_ignore_ascii_case(n),
    }
}

/// Whether header line `line` is to be removed.
#[inline]
fn drops(line: &[u8], name: &str, m: Method, re: Option<&regex::bytes::Regex>) -> bool {
    let n = name.as_bytes();
    if m == Method::Str {
        // The common case, without looking for the colon.
        return line.len() > n.len()
            && line[n.len()] == b':'
            && line[..n.len()].eq_ignore_ascii_case(n);
    }
    match line.iter().position(|&b| b == b':') {
        Some(c) if line.len() > 2 => matches(&line[..c], name, m, re),
        _ => false,
    }
}

/// Removes every header line whose name matches (in place; nothing moves unless a
/// line goes).
pub fn del_header_by(head: &mut Vec<u8>, name: &str, m: Method, re: Option<&regex::bytes::Regex>) {
    use crate::rules::head::find_nl;
    let first = Head::new(head).first_line_len();
    let mut read = first;
    // Up to the first line to remove, nothing is copied.
    loop {
        if read >= head.len() {
            return;
        }
        let end = find_nl(head, read).map_or(head.len(), |p| p + 1);
        if drops(&head[read..end], name, m, re) {
            break;
        }
        read = end;
    }
    let mut write = read;
    while read < head.len() {
        let end = find_nl(head, read).map_or(head.len(), |p| p + 1);
        if !drops(&head[read..end], name, m, re) {
            head.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    head.truncate(write);
}

/// Removes every `name:` line.
pub fn del_header(head: &mut Vec<u8>, name: &str) {
    del_header_by(head, name, Method::Str, None)
}

/// Adds `name: value` at the end of the head (before its empty line).
pub fn add_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.truncate(head.len().saturating_sub(2));
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
}

/// Replaces `range` of `head` with `with`.
pub fn splice(head: &mut Vec<u8>, range: std::ops::Range<usize>, with: &[u8]) {
    let old = range.end - range.start;
    if with.len() > old {
        let grow = with.len() - old;
        let len = head.len();
        head.resize(len + grow, 0);
        head.copy_within(range.end..len, range.end + grow);
    } else if with.len() < old {
        let shrink = old - with.len();
        head.copy_within(range.end.., range.end - shrink);
        head.truncate(head.len() - shrink);
    }
    head[range.start..range.start + with.len()].copy_from_slice(with);
}

/// Request line parts: (method, target, version) byte ranges.
pub fn request_line(head: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let h = Head::new(head);
    let line = h.first_line();
    let m_end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let t_end = line
        .iter()
        .rposition(|&c| c == b' ')
        .filter(|&e| e > m_end)
        .unwrap_or(line.len());
    (0..m_end, (m_end + 1).min(t_end)..t_end)
}

/// Where the path (with its query) starts in a target: after `scheme://authority`.
fn path_start(target: &[u8]) -> usize {
    let lower_starts =
        |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    let skip = if lower_starts(b"http://") {
        7
    } else if lower_starts(b"https://") {
        8
    } else {
        return 0;
    };
    target[skip..]
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .map_or(target.len(), |i| skip + i)
}

/// Which part of the request target a rule rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Method,
    /// The path, without the query.
    Path,
    /// The path and its query.
    PathQ,
    /// The query, without its `?` (an empty value removes the `?` too).
    Query,
    /// The whole target.
    Uri,
}

/// The byte range of `part` in `head`.
pub fn part_range(head: &[u8], part: Part) -> std::ops::Range<usize> {
    let (m, t) = request_line(head);
    let target = &head[t.clone()];
    let ps = t.start + path_start(target);
    let q = head[ps..t.end]
        .iter()
        .position(|&c| c == b'?')
        .map(|i| ps + i);
    match part {
        Part::Method => m,
        Part::Uri => t,
        Part::PathQ => ps..t.end,
        Part::Path => ps..q.unwrap_or(t.end),
        Part::Query => match q {
            Some(i) => i + 1..t.end,
            None => t.end..t.end,
        },
    }
}

/// Sets `part` of the request line to `value` (`set-query` always leaves a `?`, even
/// for an empty query, as HAProxy does).
pub fn set_part(head: &mut Vec<u8>, part: Part, value: &[u8]) {
    let r = part_range(head, part);
    if part == Part::Query {
        let has_q = r.start > 0 && head[r.start - 1] == b'?' && {
            let (_, t) = request_line(head);
            r.start > t.start
        };
        if has_q {
            splice(head, r, value);
        } else {
            splice(head, r.start..r.end, b"?");
            splice(head, r.start + 1..r.start + 1, value);
        }
        return;
    }
    splice(head, r, value);
}

/// Response: replaces the status code (and the reason: given, or HAProxy's).
pub fn set_status(head: &mut Vec<u8>, status: u16, reason: Option<&str>) {
    let line_end = Head::new(head).first_line().len();
    let mut line = [0u8; 512];
    let reason = reason.unwrap_or_else(|| crate::rules::action::reason(status));
    let mut n = 0;
    for b in b"HTTP/1.1 "
        .iter()
        .chain(
            [
                b'0' + (status / 100 % 10) as u8,
                b'0' + (status / 10 % 10) as u8,
                b'0' + (status % 10) as u8,
                b' ',
            ]
            .iter(),
        )
        .chain(reason.as_bytes().iter().take(400))
    {
        line[n] = *b;
        n += 1;
    }
    splice(head, 0..line_end, &line[..n]);
}

/// `h1-case-adjust`: every header name of `head` (a request or status line, `name:
/// value` lines, the empty line) equal to a FROM of `map` but for case is rewritten as
/// its TO, in place (the same length). Stops at the empty line: a body that follows
/// is left alone.
pub(super) fn case_adjust(head: &mut [u8], map: &[crate::config::CasePair]) {
    let mut at = match head.iter().position(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => return,
    };
    while at < head.len() {
        let end = head[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |i| at + i);
        let line = &head[at..end];
        if line.is_empty() || line == b"\r" {
            return;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = &line[..colon];
            if let Some((_, to)) = map.iter().find(|(f, _)| name.eq_ignore_ascii_case(f)) {
                head[at..at + colon].copy_from_slice(to);
            }
        }
        at = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_map_take_its_case_and_nothing_else_changes() {
        let map: Vec<crate::config::CasePair> = vec![
            ((*b"x-foo").into(), (*b"X-FOO").into()),
            ((*b"content-type").into(), (*b"Content-Type").into()),
        ];
        let mut head =
            b"GET / HTTP/1.1\r\nx-Foo: x-foo\r\nhost: a\r\ncontent-type: t\r\n\r\nx-foo: body"
                .to_vec();
        case_adjust(&mut head, &map);
        assert_eq!(
            head,
            b"GET / HTTP/1.1\r\nX-FOO: x-foo\r\nhost: a\r\nContent-Type: t\r\n\r\nx-foo: body"
        );
    }

    #[test]
    fn header_edits() {
        let mut h = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n".to_vec();
        del_header(&mut h, "x-a");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\n\r\n");
        add_header(&mut h, "X-C", b"4");
        assert_eq!(h, b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
        del_header(&mut h, "X-B-longer");
        del_header(&mut h, "host");
        assert_eq!(h, b"GET / HTTP/1.1\r\nX-B: 3\r\nX-C: 4\r\n\r\n");
        del_header_by(&mut h, "x-", Method::Beg, None);
        assert_eq!(h, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn request_line_edits() {
        let mut h = b"GET /a/b?x=1 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        set_part(&mut h, Part::Path, b"/new");
        assert!(h.starts_with(b"GET /new?x=1 HTTP/1.1\r\n"));
        set_part(&mut h, Part::Query, b"y=2&z");
        assert!(h.starts_with(b"GET /new?y=2&z HTTP/1.1\r\n"));
        set_part(&mut h, Part::Query, b"");
        assert!(
            h.starts_with(b"GET /new? HTTP/1.1\r\n"),
            "{}",
            String::from_utf8_lossy(&h)
        );
        set_part(&mut h, Part::Query, b"q");
        assert!(h.starts_with(b"GET /new?q HTTP/1.1\r\n"));
        let mut h2 = b"GET /n HTTP/1.1\r\n\r\n".to_vec();
        set_part(&mut h2, Part::Query, b"");
        assert!(h2.starts_with(b"GET /n? HTTP/1.1\r\n"));
        set_part(&mut h, Part::Method, b"POST");
        assert!(h.starts_with(b"POST /new?q HTTP/1.1\r\n"));
        set_part(&mut h, Part::Uri, b"/u");
        assert!(h.starts_with(b"POST /u HTTP/1.1\r\nHost: a\r\n\r\n"));
        let mut h = b"GET http://h:80/p?q HTTP/1.1\r\n\r\n".to_vec();
        set_part(&mut h, Part::PathQ, b"/z");
        assert!(h.starts_with(b"GET http://h:80/z HTTP/1.1\r\n"));
        let mut r = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n".to_vec();
        set_status(&mut r, 404, None);
        assert_eq!(r, b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n");
        set_status(&mut r, 503, Some("Down"));
        assert_eq!(r, b"HTTP/1.1 503 Down\r\nA: b\r\n\r\n");
    }
}
