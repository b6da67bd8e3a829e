//! HTTP Basic authentication against a `userlist` (the `http_auth` and
//! `http_auth_group` fetches, `http-request auth`): the users with their password or
//! its crypt(3) hash and their groups, the `Authorization: Basic` header's decoding,
//! and the password check.
//!
//! HAProxy calls crypt(3) for every check and caches nothing (`check_user()` in its
//! `auth.c`), so a hash is computed per request that asks; ringlb does the same. The
//! schemes are those of Debian's crypt(3) that HAProxy users write: SHA-512 (`$6$`)
//! and SHA-256 (`$5$`) crypt with RustCrypto's `sha-crypt`, bcrypt (`$2a$`, `$2b$`,
//! `$2y$`) with the `bcrypt` crate, and MD5-crypt (`$1$`) below on RustCrypto's
//! `md-5` (no maintained crate has it: it is 30 lines of the original algorithm,
//! checked against crypt(3)'s own output). Others (DES, yescrypt `$y$`) are refused
//! at load with their line.

use base64::Engine;
use md5::{Digest, Md5};

/// A `userlist` section.
#[derive(Debug)]
pub struct Userlist {
    pub name: Box<str>,
    pub users: Vec<User>,
    /// Group names; a user's `groups` index into it.
    pub groups: Vec<Box<str>>,
}

#[derive(Debug)]
pub struct User {
    pub name: Box<str>,
    pub pass: Pass,
    pub groups: Vec<usize>,
}

#[derive(Debug)]
pub enum Pass {
    /// `insecure-password`: compared as it is.
    Plain(Box<[u8]>),
    /// `password`: a crypt(3) hash.
    Hash(Box<str>),
    /// Neither: HAProxy accepts the user, who never authenticates.
    Never,
}

impl Pass {
    /// A `password` hash ringlb can check, or why not.
    pub fn hash(h: &str) -> Result<Pass, String> {
        let known = ["$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$"];
        if !known.iter().any(|k| h.starts_with(k)) {
            return Err(format!(
                "unsupported password hash '{h}': ringlb checks SHA-512 ($6$), SHA-256 ($5$), MD5 ($1$) and bcrypt ($2a$, $2b$, $2y$) crypt hashes"
            ));
        }
        // A hash that cannot be read would never match: refuse it now (its shape
        // only: hashing here would cost a bcrypt computation per user at load).
        if !well_formed(h) {
            return Err(format!("malformed password hash '{h}'"));
        }
        Ok(Pass::Hash(h.into()))
    }
}

impl Userlist {
    /// The user named `user` whose password is `pass`.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> Option<&User> {
        let u = self.users.iter().find(|u| u.name.as_bytes() == user)?;
        let ok = match &u.pass {
            Pass::Plain(p) => **p == *pass,
            Pass::Hash(h) => verify_hash(h, pass) == Some(true),
            Pass::Never => false,
        };
        ok.then_some(u)
    }

    /// The names of the users in group `group` (`None`: no such group).
    pub fn members(&self, group: &str) -> Option<Vec<&str>> {
        let g = self.groups.iter().position(|n| &**n == group)?;
        Some(
            self.users
                .iter()
                .filter(|u| u.groups.contains(&g))
                .map(|u| &*u.name)
                .collect(),
        )
    }

    /// The user whose credentials the request's `Authorization: Basic` header
    /// carries, if they are valid here.
    pub fn authenticate(&self, authorization: &[u8]) -> Option<&User> {
        let mut buf = [0u8; 512];
        let (user, pass) = basic_credentials(authorization, &mut buf)?;
        self.check(user, pass)
    }
}

/// `Basic base64(user:pass)` → (user, pass), decoded into `buf`.
pub fn basic_credentials<'b>(value: &[u8], buf: &'b mut [u8]) -> Option<(&'b [u8], &'b [u8])> {
    let value = super::head::trim(value);
    let sp = value.iter().position(|&c| c == b' ')?;
    if !value[..sp].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let b64 = super::head::trim(&value[sp + 1..]);
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, buf)
        .ok()?;
    let plain = &buf[..n];
    let colon = plain.iter().position(|&c| c == b':')?;
    Some((&plain[..colon], &plain[colon + 1..]))
}

/// The shape of a crypt(3) string: `$ID$[rounds=N$]SALT$HASH` with the hash's length
/// for its scheme, in crypt's base-64 alphabet; bcrypt's `$2b$CC$` + 53 characters.
fn well_formed(h: &str) -> bool {
    let b64 = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
    };
    if let Some(rest) = h.strip_prefix("$2") {
        let mut parts = rest.splitn(3, '$');
        let (Some(v), Some(cost), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        return matches!(v, "a" | "b" | "y")
            && cost.len() == 2
            && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
            && tail.len() == 53
            && b64(tail);
    }
    let (id, rest) = match h.get(..3) {
        Some(id @ ("$1$" | "$5$" | "$6$")) => (id, &h[3..]),
        _ => return false,
    };
    let mut fields: Vec<&str> = rest.split('$').collect();
    if id != "$1$" && fields.first().is_some_and(|f| f.starts_with("rounds=")) {
        if fields[0][7..].parse::<u32>().is_err() {
            return false;
        }
        fields.remove(0);
    }
    let want = match id {
        "$1$" => 22,
        "$5$" => 43,
        _ => 86,
    };
    matches!(fields.as_slice(), [salt, hash] if salt.len() <= 16 && b64(hash) && hash.len() == want)
}

/// Whether `pass` matches crypt(3) hash `h` (`None`: `h` cannot be read).
fn verify_hash(h: &str, pass: &[u8]) -> Option<bool> {
    if h.starts_with("$1$") {
        return md5_crypt(pass, h).map(|c| c == h);
    }
    if h.starts_with("$2") {
        return bcrypt::verify(pass, h).ok();
    }
    use sha_crypt::PasswordVerifier;
    match sha_crypt::ShaCrypt::default().verify_password(pass, h) {
        Ok(()) => Some(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Some(false),
        Err(_) => None,
    }
}

/// MD5-crypt (`$1$SALT$HASH`), as Poul-Henning Kamp's original and glibc compute it:
/// the whole string for `pass` with the salt of `setting`.
fn md5_crypt(pass: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix("$1$")?;
    let salt = rest.split('$').next()?;
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(pass);
    ctx.update(b"$1$");
    ctx.update(salt);
    let alt = Md5::new()
        .chain_update(pass)
        .chain_update(salt)
        .chain_update(pass)
        .finalize();
    let mut left = pass.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = pass.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pass[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pass);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pass);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pass);
        }
        fin = c.finalize();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("$1${}$", std::str::from_utf8(salt).ok()?);
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(f(11), 2);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Debian's crypt(3) (libxcrypt), for the password "s3cret".
    const SHA512: &str = "$6$nyky5Pfx5Jq6Js1G$F4yfMjlyoLhfu6aGW0yZ.YKa4hPeUqSw.2Bv23w4jVU/IzFxXY5KnBgWnnUU74tRvdAgqAX.8XzGfdtM9dMue0";
    const SHA256: &str = "$5$jqLQtKa0nexVY.Zb$AJ3cav6avvRCeNDpFF8Tbu6T6qurhoa2SD41yMyPeL8";
    const SHA256_ROUNDS: &str =
        "$5$rounds=1000$abcdefgh$n8nZhSnM6g4q4nRlzPasS.1BNBdVFR97b0op5SkmOM9";
    const MD5: &str = "$1$qZ1bd4hl$uBJjlRFZQoA.i0V2WjoXX1";
    const BCRYPT: &str = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG";

    #[test]
    fn crypt_hashes_check_as_crypt3() {
        for h in [SHA512, SHA256, SHA256_ROUNDS, MD5] {
            assert_eq!(verify_hash(h, b"s3cret"), Some(true), "{h}");
            assert_eq!(verify_hash(h, b"s3creT"), Some(false), "{h}");
        }
        assert_eq!(md5_crypt(b"s3cret", MD5).as_deref(), Some(MD5));
        assert_eq!(verify_hash(BCRYPT, b"s3cret"), Some(true));
        assert_eq!(verify_hash(BCRYPT, b"nope"), Some(false));
        let y = BCRYPT.replacen("$2b$", "$2y$", 1);
        assert_eq!(verify_hash(&y, b"s3cret"), Some(true));
        assert!(Pass::hash(BCRYPT).is_ok());
        assert!(Pass::hash("$y$j9T$abc$def").is_err());
        assert!(Pass::hash("abJnggxhB/yWI").is_err());
        assert!(Pass::hash("$6$salt").is_err());
    }

    #[test]
    fn basic_header_is_decoded() {
        let mut buf = [0u8; 64];
        // "alice:pa:ss"
        let (u, p) = basic_credentials(b"Basic YWxpY2U6cGE6c3M=", &mut buf).unwrap();
        assert_eq!((u, p), (&b"alice"[..], &b"pa:ss"[..]));
        assert!(basic_credentials(b"Bearer YWxpY2U6cGE6c3M=", &mut buf).is_none());
        assert!(basic_credentials(b"Basic !!!", &mut buf).is_none());
        assert!(basic_credentials(b"Basic YWxpY2U=", &mut buf).is_none());
    }
}
