//! haproxy.cfg `global` keywords about the process itself: `daemon`, `ulimit-n`,
//! `chroot`, `user`/`uid`, `group`/`gid` (applied by the `process` module). A user or group
//! name is looked up at load, so a name the system does not know is an error on its
//! line, as in HAProxy.

use super::*;
use crate::config::ProcessSettings;

impl Mapper<'_> {
    /// Reads `l` into `p` when it is one of these keywords; false otherwise.
    pub(super) fn process_keyword(&mut self, l: &Line, p: &mut ProcessSettings) -> bool {
        let a = l.args();
        let kw = l.keyword();
        if !matches!(
            kw,
            "daemon" | "ulimit-n" | "chroot" | "user" | "uid" | "group" | "gid"
        ) {
            return false;
        }
        let max_args = usize::from(kw != "daemon");
        if a.len() > max_args {
            self.err(
                l.line,
                format!("'{kw}' cannot handle unexpected argument '{}'", a[max_args]),
            );
            return true;
        }
        let arg = a.first().map(String::as_str).unwrap_or("");
        if kw != "daemon" && arg.is_empty() {
            self.err(l.line, format!("'{kw}' expects an argument"));
            return true;
        }
        match kw {
            "daemon" => p.daemon = true,
            "ulimit-n" => match arg.parse::<u64>() {
                _ if p.ulimit_n.is_some() => self.already(l.line, kw),
                // 0: the limit is left to ringlb, as HAProxy reads it.
                Ok(n) => p.ulimit_n = (n > 0).then_some(n),
                Err(_) => self.err(l.line, "'ulimit-n' expects an integer"),
            },
            "chroot" if p.chroot.is_some() => self.already(l.line, kw),
            "chroot" => p.chroot = Some(arg.into()),
            "user" | "uid" if p.uid.is_some() => self.already(l.line, "user/uid"),
            "group" | "gid" if p.gid.is_some() => self.already(l.line, "group/gid"),
            // HAProxy warns about a uid that is no number and keeps running as the
            // user that started it: refused here, rather than serve as root.
            "uid" | "gid" => match arg.parse::<u32>() {
                Ok(n) if kw == "uid" => p.uid = Some(n),
                Ok(n) => p.gid = Some(n),
                Err(_) => self.err(
                    l.line,
                    format!(
                        "'{kw}' expects a number, not '{arg}' (use '{}' for a name)",
                        if kw == "uid" { "user" } else { "group" }
                    ),
                ),
            },
            "user" => match nix::unistd::User::from_name(arg) {
                Ok(Some(u)) => p.uid = Some(u.uid.as_raw()),
                Ok(None) => self.err(l.line, format!("cannot find user id for '{arg}'")),
                Err(e) => self.err(l.line, format!("cannot find user id for '{arg}' ({e})")),
            },
            _ => match nix::unistd::Group::from_name(arg) {
                Ok(Some(g)) => p.gid = Some(g.gid.as_raw()),
                Ok(None) => self.err(l.line, format!("cannot find group id for '{arg}'")),
                Err(e) => self.err(l.line, format!("cannot find group id for '{arg}' ({e})")),
            },
        }
        true
    }

    /// A second `user`, `chroot`... line: HAProxy keeps the first one, and says so.
    fn already(&mut self, line: usize, what: &str) {
        self.warn(
            line,
            format!("'{what}' already specified: the first one is kept"),
        );
    }
}
