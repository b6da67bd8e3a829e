//! haproxy.cfg `peers` sections. HAProxy keeps a section only when one of its peers is
//! this node (named as `localpeer` says, else as the host is named): that node then
//! listens there and syncs its stick tables with the other peers over HAProxy's peers
//! protocol. ringlb does not speak that protocol, so such a section is refused with
//! its line (the tables would silently stay local); one without a local peer is removed
//! with HAProxy's own warning, as HAProxy does, and tables naming it stay local there
//! too.

use super::*;

impl Mapper<'_> {
    pub(super) fn peers_sections(&mut self, doc: &Document) {
        let local = doc
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::Global)
            .flat_map(|s| &s.lines)
            .filter(|l| l.keyword() == "localpeer")
            .find_map(|l| l.args().first().cloned())
            .unwrap_or_else(super::global::system_hostname);
        for sec in &doc.sections {
            if sec.kind != SectionKind::Other("peers".into()) {
                continue;
            }
            let name = sec.name.clone().unwrap_or_default();
            let mut this_node = None;
            let mut disabled = false;
            for l in &sec.lines {
                let a = l.args();
                match l.keyword() {
                    // `peer NAME ADDR:PORT`, or `server NAME [ADDR:PORT]` (2.5+).
                    "peer" | "server" => match a.first() {
                        Some(n) if *n == local => this_node = Some(l.line),
                        Some(_) => {}
                        None => self.err(
                            l.line,
                            format!("'{}' expects <name> as argument", l.keyword()),
                        ),
                    },
                    "disabled" => disabled = true,
                    "enable" | "bind" | "default-bind" | "default-server" | "log" | "shards"
                    | "table" => {}
                    other => self.err(
                        l.line,
                        format!("unknown keyword '{other}' in 'peers' section"),
                    ),
                }
            }
            match this_node {
                Some(line) if !disabled => self.err(
                    line,
                    format!(
                        "peers '{name}': peer '{local}' is this node, which would sync its stick tables with the other peers over HAProxy's peers protocol; ringlb does not speak it (share tables between nodes with the TOML [cluster] redis setting)"
                    ),
                ),
                Some(_) => self.warn(sec.line, format!("peers '{name}' is disabled: ignored")),
                None => self.warn(
                    sec.line,
                    format!("Removing incomplete section 'peers {name}' (no peer named '{local}')."),
                ),
            }
        }
    }
}
