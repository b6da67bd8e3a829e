//! haproxy.cfg `compression algo|type|offload` lines of a proxy (and `defaults`), read
//! as HAProxy 2.6 reads them: every line adds to the lists a proxy inherited from its
//! `defaults`; `offload` is not inherited (and ignored in `defaults`, with HAProxy's
//! warning).

use super::*;
use crate::config::compression::{Algo, Compression};

/// What a proxy's `compression` lines said, in config order.
#[derive(Clone, Default)]
pub(super) struct CompLines {
    algos: Vec<Algo>,
    types: Vec<String>,
    offload: bool,
}

impl CompLines {
    pub(super) fn model(&self) -> Arc<Compression> {
        Arc::new(Compression::from_lines(
            &self.algos,
            &self.types,
            self.offload,
        ))
    }
}

impl Mapper<'_> {
    pub(super) fn compression_line(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let is_defaults = p.kind == SectionKind::Defaults;
        // Any `compression` line gives the proxy compression settings (HAProxy
        // creates them on the first line, whatever it says).
        let c = p.settings.compression.get_or_insert_with(Default::default);
        match a.first().map(String::as_str) {
            Some("algo") => {
                if a.len() < 2 {
                    return self.err(l.line, "'compression' expects <algorithm>.");
                }
                for name in &a[1..] {
                    match Algo::parse(name) {
                        Some(algo) => c.algos.push(algo),
                        None => {
                            return self.err(
                                l.line,
                                format!("'compression' : '{name}' is not a supported algorithm."),
                            )
                        }
                    }
                }
            }
            Some("type") => {
                if a.len() < 2 {
                    return self.err(l.line, "'compression' expects <type>.");
                }
                c.types.extend(a[1..].iter().cloned());
            }
            Some("offload") if is_defaults => self.warn(
                l.line,
                "'compression' : 'offload' ignored in 'defaults' section.",
            ),
            Some("offload") => c.offload = true,
            _ => self.err(l.line, "'compression' expects 'algo', 'type' or 'offload'"),
        }
    }
}
