//! OpenSSL's names (cipher strings, TLS 1.3 suites, curves, versions) mapped onto what
//! the crypto provider offers. rustls has no TLS 1.0/1.1, no DHE, CBC, static-RSA,
//! CCM or NULL suites, and no P-521 or X448 key exchange: such names are dropped with
//! a warning that says so; a list with nothing usable left is an error.
//!
//! TLS ≤ 1.2 cipher strings follow OpenSSL's grammar closely enough for real configs
//! (Mozilla's lists, `EECDH+AESGCM:EDH+AESGCM`, `HIGH:!aNULL:!MD5`): elements split on
//! `:`, `,` or spaces; `A+B` is the intersection of aliases; `!X` and `-X` remove;
//! `+X` (reordering) and `@STRENGTH`/`@SECLEVEL=n` do not change the set.

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

use super::store::TlsVersion;

/// Attributes of a TLS 1.2 suite rustls offers, for OpenSSL's aliases.
struct Tls12 {
    openssl: &'static str,
    suite: CipherSuite,
    ecdsa: bool,
    /// 128 = AES-128-GCM, 256 = AES-256-GCM, 20 = ChaCha20-Poly1305.
    enc: u16,
}

const TLS12: &[Tls12] = &[
    Tls12 {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ecdsa: true,
        enc: 128,
    },
    Tls12 {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ecdsa: false,
        enc: 128,
    },
    Tls12 {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ecdsa: true,
        enc: 256,
    },
    Tls12 {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ecdsa: false,
        enc: 256,
    },
    Tls12 {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ecdsa: true,
        enc: 20,
    },
    Tls12 {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ecdsa: false,
        enc: 20,
    },
];

/// The TLS 1.2 suites an OpenSSL alias or name stands for (bit i = `TLS12[i]`);
/// `None`: not a name OpenSSL knows.
fn alias(word: &str) -> Option<u8> {
    let all = (1u8 << TLS12.len()) - 1;
    let by = |f: &dyn Fn(&Tls12) -> bool| {
        TLS12
            .iter()
            .enumerate()
            .filter(|(_, s)| f(s))
            .fold(0u8, |m, (i, _)| m | 1 << i)
    };
    if let Some(i) = TLS12.iter().position(|s| s.openssl == word) {
        return Some(1 << i);
    }
    Some(match word {
        "ALL" | "DEFAULT" | "HIGH" | "TLSv1.2" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH"
        | "ECDH" | "AEAD" | "FIPS" | "SUITEB128" | "SUITEB192" => all,
        "aECDSA" | "ECDSA" => by(&|s| s.ecdsa),
        "aRSA" => by(&|s| !s.ecdsa),
        "AESGCM" | "AES" => by(&|s| s.enc != 20),
        "AES128" => by(&|s| s.enc == 128),
        "AES256" => by(&|s| s.enc == 256),
        "CHACHA20" => by(&|s| s.enc == 20),
        "SHA256" => by(&|s| s.enc != 256),
        "SHA384" => by(&|s| s.enc == 256),
        // Names OpenSSL knows that stand for nothing rustls has.
        "RSA"
        | "kRSA"
        | "DHE"
        | "EDH"
        | "kDHE"
        | "kEDH"
        | "DH"
        | "kDH"
        | "ADH"
        | "AECDH"
        | "aECDH"
        | "kECDH"
        | "aNULL"
        | "eNULL"
        | "NULL"
        | "COMPLEMENTOFALL"
        | "COMPLEMENTOFDEFAULT"
        | "MEDIUM"
        | "LOW"
        | "EXP"
        | "EXPORT"
        | "MD5"
        | "SHA1"
        | "SHA"
        | "DSS"
        | "aDSS"
        | "DES"
        | "3DES"
        | "RC4"
        | "RC2"
        | "IDEA"
        | "SEED"
        | "CAMELLIA"
        | "CAMELLIA128"
        | "CAMELLIA256"
        | "ARIA"
        | "ARIA128"
        | "ARIA256"
        | "PSK"
        | "kPSK"
        | "aPSK"
        | "ECDHEPSK"
        | "DHEPSK"
        | "RSAPSK"
        | "SRP"
        | "kSRP"
        | "aSRP"
        | "CBC"
        | "AESCCM"
        | "AESCCM8"
        | "AES128CCM"
        | "AES256CCM"
        | "GOST"
        | "SSLv3"
        | "TLSv1"
        | "TLSv1.0"
        | "aGOST"
        | "kGOST" => 0,
        w if looks_like_cipher(w) => 0,
        _ => return None,
    })
}

/// An OpenSSL suite name rustls lacks (`DHE-RSA-AES128-GCM-SHA256`, `AES128-SHA`).
fn looks_like_cipher(w: &str) -> bool {
    w.contains('-') && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The result of mapping one list: the suites, and names dropped or unknown.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapped<T> {
    pub items: Vec<T>,
    /// Names that stand for nothing ringlb can offer.
    pub unsupported: Vec<String>,
    /// Names OpenSSL itself does not know.
    pub unknown: Vec<String>,
}

impl<T> Default for Mapped<T> {
    fn default() -> Self {
        Mapped {
            items: Vec::new(),
            unsupported: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

/// An OpenSSL TLS ≤ 1.2 cipher string → rustls TLS 1.2 suites, in the list's order.
pub fn map_ciphers(list: &str) -> Mapped<CipherSuite> {
    let mut out = Mapped::default();
    let mut chosen: Vec<usize> = Vec::new();
    let mut removed = 0u8;
    for elem in list.split([':', ',', ' ']).filter(|e| !e.is_empty()) {
        if elem.starts_with('@') {
            continue;
        }
        let (negate, body) = match elem.as_bytes()[0] {
            b'!' | b'-' => (true, &elem[1..]),
            b'+' => continue,
            _ => (false, elem),
        };
        let mut set = 0xffu8;
        let mut known = true;
        for atom in body.split('+') {
            match alias(atom) {
                Some(m) => {
                    if m == 0 && !negate {
                        out.unsupported.push(atom.to_string());
                    }
                    set &= m;
                }
                None => {
                    known = false;
                    if !negate {
                        out.unknown.push(atom.to_string());
                    }
                    set = 0;
                }
            }
        }
        if !known {
            continue;
        }
        if negate {
            // `!X` removes for good, `-X` only for now; the difference needs a later
            // re-add of a `!`-removed suite, which a set cannot express: treat both as `!`.
            removed |= set;
            chosen.retain(|&i| set & (1 << i) == 0);
        } else {
            for (i, _) in TLS12.iter().enumerate() {
                if set & (1 << i) != 0 && removed & (1 << i) == 0 && !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
        }
    }
    out.items = chosen.into_iter().map(|i| TLS12[i].suite).collect();
    out
}

/// An OpenSSL TLS 1.3 `ciphersuites` list → rustls suites.
pub fn map_ciphersuites(list: &str) -> Mapped<CipherSuite> {
    let mut out = Mapped::default();
    for name in list.split(':').filter(|e| !e.is_empty()) {
        let suite = match name {
            "TLS_AES_128_GCM_SHA256" => CipherSuite::TLS13_AES_128_GCM_SHA256,
            "TLS_AES_256_GCM_SHA384" => CipherSuite::TLS13_AES_256_GCM_SHA384,
            "TLS_CHACHA20_POLY1305_SHA256" => CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            "TLS_AES_128_CCM_SHA256" | "TLS_AES_128_CCM_8_SHA256" => {
                out.unsupported.push(name.to_string());
                continue;
            }
            _ => {
                out.unknown.push(name.to_string());
                continue;
            }
        };
        if !out.items.contains(&suite) {
            out.items.push(suite);
        }
    }
    out
}

/// An OpenSSL curve list (`X25519:P-256`) → the provider's key exchange groups.
pub fn map_curves(provider: &CryptoProvider, list: &str) -> Mapped<&'static dyn SupportedKxGroup> {
    use rustls::NamedGroup;
    let mut out = Mapped::default();
    for name in list.split(':').filter(|e| !e.is_empty()) {
        let group = match name {
            "X25519" | "x25519" => NamedGroup::X25519,
            "P-256" | "prime256v1" | "secp256r1" => NamedGroup::secp256r1,
            "P-384" | "secp384r1" => NamedGroup::secp384r1,
            "P-521" | "secp521r1" => NamedGroup::secp521r1,
            "X448" | "x448" => NamedGroup::X448,
            "X25519MLKEM768" => NamedGroup::X25519MLKEM768,
            "SecP256r1MLKEM768" => NamedGroup::secp256r1MLKEM768,
            "MLKEM768" => NamedGroup::MLKEM768,
            "MLKEM1024" => NamedGroup::MLKEM1024,
            "ffdhe2048" | "ffdhe3072" | "ffdhe4096" | "ffdhe6144" | "ffdhe8192" | "secp224r1"
            | "brainpoolP256r1" | "brainpoolP384r1" | "brainpoolP512r1" => {
                out.unsupported.push(name.to_string());
                continue;
            }
            _ => {
                out.unknown.push(name.to_string());
                continue;
            }
        };
        let found = provider
            .kx_groups
            .iter()
            .copied()
            .chain(all_kx_groups().copied())
            .find(|g| g.name() == group);
        match found {
            Some(g)
                if !out
                    .items
                    .iter()
                    .any(|x: &&dyn SupportedKxGroup| x.name() == group) =>
            {
                out.items.push(g)
            }
            Some(_) => {}
            None => out.unsupported.push(name.to_string()),
        }
    }
    out
}

fn all_kx_groups() -> impl Iterator<Item = &'static &'static dyn SupportedKxGroup> {
    #[cfg(feature = "aws-lc-rs")]
    let all = rustls::crypto::aws_lc_rs::ALL_KX_GROUPS;
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let all = rustls::crypto::ring::ALL_KX_GROUPS;
    all.iter()
}

/// The provider's suites with these ids, in this order.
pub fn suites_by_id(provider: &CryptoProvider, ids: &[CipherSuite]) -> Vec<SupportedCipherSuite> {
    ids.iter()
        .filter_map(|id| {
            provider
                .cipher_suites
                .iter()
                .copied()
                .chain(all_cipher_suites().copied())
                .find(|s| s.suite() == *id)
        })
        .collect()
}

fn all_cipher_suites() -> impl Iterator<Item = &'static SupportedCipherSuite> {
    #[cfg(feature = "aws-lc-rs")]
    let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    all.iter()
}

/// The versions a context offers: [min, max] (default TLSv1.2 .. TLSv1.3, as HAProxy
/// 2.6) without the `no-tlsv1x` ones, restricted to what rustls has. The flag says
/// whether the range asked for TLS 1.0/1.1 (or SSLv3), which cannot be offered.
pub fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
    no: &[TlsVersion],
) -> (Vec<&'static SupportedProtocolVersion>, bool) {
    let min = min.unwrap_or(TlsVersion::Tls12);
    let max = max.unwrap_or(TlsVersion::Tls13);
    let wanted_old = min < TlsVersion::Tls12
        && [TlsVersion::Ssl3, TlsVersion::Tls10, TlsVersion::Tls11]
            .iter()
            .any(|v| *v >= min && *v <= max && !no.contains(v));
    let mut out = Vec::new();
    if max >= TlsVersion::Tls13 && min <= TlsVersion::Tls13 && !no.contains(&TlsVersion::Tls13) {
        out.push(&rustls::version::TLS13);
    }
    if max >= TlsVersion::Tls12 && min <= TlsVersion::Tls12 && !no.contains(&TlsVersion::Tls12) {
        out.push(&rustls::version::TLS12);
    }
    (out, wanted_old)
}

/// A suite's name as OpenSSL (and so HAProxy's `ssl_fc_cipher`) prints it.
pub fn openssl_name(suite: CipherSuite) -> &'static str {
    if let Some(s) = TLS12.iter().find(|s| s.suite == suite) {
        return s.openssl;
    }
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        _ => "(unknown)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite as C;

    #[test]
    fn openssl_cipher_strings() {
        let mozilla = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
        let m = map_ciphers(mozilla);
        assert_eq!(m.items.len(), 6);
        assert_eq!(m.items[0], C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(
            m.unsupported,
            vec![
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
                "DHE-RSA-CHACHA20-POLY1305"
            ]
        );
        let cases: &[(&str, &[C])] = &[
            (
                "ECDHE-RSA-AES128-GCM-SHA256",
                &[C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256],
            ),
            (
                "EECDH+AESGCM:EDH+AESGCM",
                &[
                    C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                ],
            ),
            (
                "ECDH+CHACHA20:!aRSA",
                &[C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
            ),
            (
                "HIGH:!aNULL:!MD5:!ECDSA",
                &[
                    C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                ],
            ),
            (
                "AES256+EECDH:@STRENGTH",
                &[
                    C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                ],
            ),
            ("DHE-RSA-AES128-GCM-SHA256:AES128-SHA", &[]),
            ("!ALL:ECDHE-RSA-AES128-GCM-SHA256", &[]),
        ];
        for (list, want) in cases {
            assert_eq!(map_ciphers(list).items, *want, "{list}");
        }
        assert_eq!(map_ciphers("FOO-BAR:NOPE").unknown, vec!["NOPE"]);
    }

    #[test]
    fn tls13_suites_curves_and_versions() {
        let m = map_ciphersuites(
            "TLS_AES_128_CCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
        );
        assert_eq!(
            m.items,
            vec![
                C::TLS13_CHACHA20_POLY1305_SHA256,
                C::TLS13_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(m.unsupported, vec!["TLS_AES_128_CCM_SHA256"]);
        let p = crate::tls::provider();
        let c = map_curves(&p, "X448:prime256v1:X25519:P-521:bogus");
        let names: Vec<_> = c.items.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            vec![rustls::NamedGroup::secp256r1, rustls::NamedGroup::X25519]
        );
        assert_eq!(c.unsupported, vec!["X448", "P-521"]);
        assert_eq!(c.unknown, vec!["bogus"]);
        use TlsVersion::*;
        let v = |min, max, no: &[TlsVersion]| {
            let (list, old) = versions(min, max, no);
            (list.iter().map(|v| v.version).collect::<Vec<_>>(), old)
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(v(None, None, &[]), (vec![TLSv1_3, TLSv1_2], false));
        assert_eq!(v(Some(Tls13), None, &[]), (vec![TLSv1_3], false));
        assert_eq!(v(Some(Tls10), None, &[]), (vec![TLSv1_3, TLSv1_2], true));
        assert_eq!(
            v(Some(Tls10), None, &[Tls10, Tls11]),
            (vec![TLSv1_3, TLSv1_2], false)
        );
        assert_eq!(v(None, Some(Tls12), &[]), (vec![TLSv1_2], false));
        assert_eq!(v(None, None, &[Tls12, Tls13]), (vec![], false));
        assert_eq!(v(Some(Tls10), Some(Tls11), &[]), (vec![], true));
    }

    #[test]
    fn openssl_names_of_suites() {
        assert_eq!(
            openssl_name(C::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            openssl_name(C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
    }
}
