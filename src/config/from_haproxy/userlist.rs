//! haproxy.cfg `userlist` sections: `user NAME password HASH | insecure-password PW
//! [groups G1,G2...]` and `group NAME [users U1,U2...]`, read before any proxy (the
//! rules of a proxy name them with `http_auth(L)` and `http_auth_group(L)`).

use super::*;
use crate::rules::auth::{Pass, User, Userlist};

impl Mapper<'_> {
    pub(super) fn userlist_sections(&mut self, doc: &Document) {
        for sec in &doc.sections {
            if sec.kind != SectionKind::Other("userlist".into()) {
                continue;
            }
            let Some(name) = sec.name.clone() else {
                self.err(sec.line, "'userlist' expects <name> as argument");
                continue;
            };
            if self.names.userlist(&name).is_some() {
                self.err(sec.line, format!("userlist '{name}' is declared twice"));
                continue;
            }
            if let Some(ul) = self.userlist(&name, &sec.lines) {
                self.names.userlists.push(Arc::new(ul));
            }
        }
    }

    fn userlist(&mut self, name: &str, lines: &[Line]) -> Option<Userlist> {
        let mut groups: Vec<Box<str>> = Vec::new();
        // (group, its `users` list, line)
        let mut group_users: Vec<(usize, Vec<String>, usize)> = Vec::new();
        // (user, its `groups` list, line)
        let mut users: Vec<(User, Vec<String>, usize)> = Vec::new();
        let list = |v: &str| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut ok = true;
        for l in lines {
            let a = l.args();
            match l.keyword() {
                "group" => {
                    let Some(g) = a.first() else {
                        self.err(l.line, "'group' expects <name> as argument");
                        ok = false;
                        continue;
                    };
                    if groups.iter().any(|x| **x == **g) {
                        self.err(
                            l.line,
                            format!("userlist '{name}': group '{g}' already exists"),
                        );
                        ok = false;
                        continue;
                    }
                    let members = match &a[1..] {
                        [] => Vec::new(),
                        [kw, v] if kw == "users" => list(v),
                        _ => {
                            self.err(l.line, "'group' expects 'users <user>,<user>,...'");
                            ok = false;
                            continue;
                        }
                    };
                    group_users.push((groups.len(), members, l.line));
                    groups.push(g.as_str().into());
                }
                "user" => {
                    let Some(u) = a.first() else {
                        self.err(l.line, "'user' expects <name> as argument");
                        ok = false;
                        continue;
                    };
                    if users.iter().any(|(x, _, _)| *x.name == **u) {
                        self.err(
                            l.line,
                            format!("userlist '{name}': user '{u}' already exists"),
                        );
                        ok = false;
                        continue;
                    }
                    let mut pass = None;
                    let mut bad = false;
                    let mut member_of = Vec::new();
                    let mut i = 1;
                    while i < a.len() {
                        let v = a.get(i + 1);
                        match (a[i].as_str(), v) {
                            ("password", Some(h)) => match Pass::hash(h) {
                                Ok(p) => pass = Some(p),
                                Err(e) => {
                                    self.err(l.line, format!("user '{u}': {e}"));
                                    bad = true;
                                }
                            },
                            ("insecure-password", Some(p)) => {
                                pass = Some(Pass::Plain(p.as_bytes().into()))
                            }
                            ("groups", Some(g)) => member_of = list(g),
                            (other, _) => {
                                self.err(
                                    l.line,
                                    format!("'user' : unexpected '{other}' (expects password, insecure-password or groups with a value)"),
                                );
                                bad = true;
                            }
                        }
                        i += 2;
                    }
                    if bad {
                        ok = false;
                        continue;
                    }
                    let pass = pass.unwrap_or_else(|| {
                        self.warn(
                            l.line,
                            format!("user '{u}' has no password: no credentials match it (as in HAProxy)"),
                        );
                        Pass::Never
                    });
                    users.push((
                        User {
                            name: u.as_str().into(),
                            pass,
                            groups: Vec::new(),
                        },
                        member_of,
                        l.line,
                    ));
                }
                other => {
                    self.err(
                        l.line,
                        format!("unknown keyword '{other}' in 'userlist' section (user, group)"),
                    );
                    ok = false;
                }
            }
        }
        for (user, member_of, line) in users.iter_mut() {
            for g in member_of.iter() {
                match groups.iter().position(|x| **x == **g) {
                    Some(gi) => user.groups.push(gi),
                    None => {
                        self.errors.push(format!(
                            "line {line}: userlist '{name}': no such group '{g}' specified in user '{}'",
                            user.name
                        ));
                        ok = false;
                    }
                }
            }
        }
        for (gi, members, line) in &group_users {
            for m in members {
                match users.iter_mut().find(|(u, _, _)| *u.name == **m) {
                    Some((u, _, _)) if !u.groups.contains(gi) => u.groups.push(*gi),
                    Some(_) => {}
                    None => {
                        self.errors.push(format!(
                            "line {line}: userlist '{name}': no such user '{m}' specified in group '{}'",
                            groups[*gi]
                        ));
                        ok = false;
                    }
                }
            }
        }
        ok.then(|| Userlist {
            name: name.into(),
            users: users.into_iter().map(|(u, _, _)| u).collect(),
            groups,
        })
    }
}
