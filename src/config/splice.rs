//! Which directions of a connection may be spliced (socket → pipe → socket, the bytes
//! staying in the kernel), and when: haproxy.cfg's `option splice-auto|splice-request|
//! splice-response` and global `nosplice`, TOML's `splice_auto|splice_request|
//! splice_response` on a frontend or backend and `runtime.splice`.
//!
//! The mapping. HAProxy splices nothing unless told; ringlb splices adaptively unless
//! told not to, since splicing changes no byte exchanged, only who copies them. So a
//! section that says nothing about `splice-auto` counts as `option splice-auto`; `no
//! option splice-auto` turns it off. As in HAProxy, a connection takes the options of
//! its frontend and its backend together: one of them asking for splicing is enough
//! (a `listen` is both at once, `defaults` sets both). `splice-request` /
//! `splice-response` splice that direction from its first byte, whatever the traffic
//! looks like; `no option splice-request|response` only withdraws that. Global
//! `nosplice` (TOML `runtime.splice = false`) turns every splice off, HTTP bodies too.

/// A frontend's or backend's splice options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpliceOpts {
    /// `option splice-auto` (`Some(true)`), `no option splice-auto` (`Some(false)`), or
    /// neither (the default: adaptive, unless the other section says no).
    pub auto: Option<bool>,
    /// `option splice-request`: client → server spliced from the start.
    pub request: bool,
    /// `option splice-response`: server → client spliced from the start.
    pub response: bool,
}

/// When one direction splices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceMode {
    /// Never: every byte is copied through user space.
    Off,
    /// Once its reads keep filling the buffer (bulk), back to copies when traffic
    /// turns interactive (HAProxy's `splice-auto`).
    Auto,
    /// From the first byte on (`splice-request` / `splice-response`).
    Always,
}

/// What a connection of a frontend and a backend does in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    pub request: SpliceMode,
    pub response: SpliceMode,
}

impl Splice {
    pub const OFF: Splice = Splice {
        request: SpliceMode::Off,
        response: SpliceMode::Off,
    };

    /// The options of a connection's frontend and backend together; `enabled` is false
    /// under global `nosplice`.
    pub fn resolve(fe: SpliceOpts, be: SpliceOpts, enabled: bool) -> Splice {
        if !enabled {
            return Splice::OFF;
        }
        let auto = fe.auto == Some(true)
            || be.auto == Some(true)
            || (fe.auto.is_none() && be.auto.is_none());
        let mode = |always: bool| match (always, auto) {
            (true, _) => SpliceMode::Always,
            (false, true) => SpliceMode::Auto,
            (false, false) => SpliceMode::Off,
        };
        Splice {
            request: mode(fe.request || be.request),
            response: mode(fe.response || be.response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENT: SpliceOpts = SpliceOpts {
        auto: None,
        request: false,
        response: false,
    };

    fn opts(auto: Option<bool>, request: bool, response: bool) -> SpliceOpts {
        SpliceOpts {
            auto,
            request,
            response,
        }
    }

    #[test]
    fn resolution() {
        use SpliceMode::*;
        let m = |fe, be, on| {
            let s = Splice::resolve(fe, be, on);
            (s.request, s.response)
        };
        // Said nothing: adaptive both ways.
        assert_eq!(m(SILENT, SILENT, true), (Auto, Auto));
        // `no option splice-auto` on either side, the other silent: off.
        assert_eq!(m(opts(Some(false), false, false), SILENT, true), (Off, Off));
        assert_eq!(m(SILENT, opts(Some(false), false, false), true), (Off, Off));
        // One side asking is enough (HAProxy ORs the frontend's and backend's options).
        let no = opts(Some(false), false, false);
        assert_eq!(m(no, opts(Some(true), false, false), true), (Auto, Auto));
        assert_eq!(m(no, opts(None, false, true), true), (Off, Always));
        assert_eq!(m(opts(None, true, false), SILENT, true), (Always, Auto));
        // `nosplice` wins over everything.
        assert_eq!(m(opts(Some(true), true, true), SILENT, false), (Off, Off));
    }

    /// haproxy.cfg: (request, response) of the connections of frontend `fe` to backend
    /// `be`, and the warnings.
    fn cfg_modes(text: &str) -> ((SpliceMode, SpliceMode), Vec<String>) {
        let (cfg, warnings) = crate::config::from_haproxy_str(text, &|_| None)
            .unwrap_or_else(|e| panic!("{text}\n{e:?}"));
        let s = cfg.splice(0, 0);
        ((s.request, s.response), warnings)
    }

    #[test]
    fn haproxy_cfg_options() {
        use SpliceMode::*;
        let cfg = |global: &str, defaults: &str, fe: &str, be: &str| {
            format!(
                "global\n{global}\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n{defaults}\nfrontend f\n    bind 127.0.0.1:0\n{fe}\n    default_backend b\nbackend b\n{be}\n    server s 127.0.0.1:1\n"
            )
        };
        let o = "    option splice-auto";
        let no = "    no option splice-auto";
        for (text, want) in [
            (cfg("", "", "", ""), (Auto, Auto)),
            (cfg("", o, "", ""), (Auto, Auto)),
            (cfg("", no, "", ""), (Off, Off)),
            (cfg("", no, o, ""), (Auto, Auto)),
            (cfg("", "", "", no), (Off, Off)),
            (cfg("", no, "    option splice-request", ""), (Always, Off)),
            (
                cfg("", "", "", "    option splice-response"),
                (Auto, Always),
            ),
            (
                cfg(
                    "",
                    "    option splice-response",
                    "",
                    "    no option splice-response",
                ),
                (Auto, Always),
            ),
            (
                cfg(
                    "",
                    "    option splice-response",
                    "    no option splice-response",
                    "    no option splice-response",
                ),
                (Auto, Auto),
            ),
            (
                cfg("    nosplice", o, "    option splice-request", ""),
                (Off, Off),
            ),
        ] {
            let (modes, warnings) = cfg_modes(&text);
            assert_eq!(modes, want, "{text}");
            assert!(
                !warnings.iter().any(|w| w.contains("splice")),
                "{warnings:?}"
            );
        }
        let err = crate::config::from_haproxy_str(&cfg("    nosplice now", "", "", ""), &|_| None)
            .expect_err("nosplice takes no argument");
        assert!(
            err.0.iter().any(|e| e.contains("line 2")
                && e.contains("'nosplice' cannot handle unexpected argument 'now'")),
            "{err:?}"
        );
    }

    #[test]
    fn toml_keys() {
        use SpliceMode::*;
        let cfg = |runtime: &str, fe: &str, be: &str| {
            format!(
                "[runtime]\n{runtime}\n[frontend.f]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"b\"\n{fe}\n[backend.b]\n{be}\n[[backend.b.server]]\naddr = \"127.0.0.1:1\"\n"
            )
        };
        for (text, want) in [
            (cfg("", "", ""), (Auto, Auto)),
            (cfg("", "splice_auto = false", ""), (Off, Off)),
            (
                cfg("", "splice_auto = false", "splice_auto = true"),
                (Auto, Auto),
            ),
            (
                cfg("", "splice_auto = false", "splice_request = true"),
                (Always, Off),
            ),
            (cfg("", "splice_response = true", ""), (Auto, Always)),
            (cfg("splice = false", "splice_auto = true", ""), (Off, Off)),
        ] {
            let c = crate::config::from_toml_str(&text).unwrap_or_else(|e| panic!("{text}\n{e:?}"));
            let s = c.splice(0, 0);
            assert_eq!((s.request, s.response), want, "{text}");
        }
        let err = crate::config::from_toml_str(&cfg("", "splice_auto = \"yes\"", ""))
            .expect_err("a string is no bool");
        assert!(
            err.0
                .iter()
                .any(|e| e.contains("line 7") && e.contains("expected a boolean")),
            "{err:?}"
        );
    }
}
