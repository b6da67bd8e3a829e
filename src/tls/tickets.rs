//! Session-ticket keys, the same on every shard so that a client resuming on another
//! shard (SO_REUSEPORT sends each connection anywhere) or another process that reads
//! the same `tls-ticket-keys` file still resumes.
//!
//! The file is HAProxy's: one base64 key per line, 48 bytes (AES-128) or 80 bytes
//! (AES-256), at least three, all the same size. As HAProxy, the last three decrypt
//! and the middle one of them encrypts, so appending a key and reloading rotates
//! without breaking resumption. A key is `name(16) | cipher key(16|32) | hmac key`;
//! tickets are `name(16) | nonce(12) | AES-GCM(state) | tag(16)`: the HMAC half is not
//! used (GCM authenticates), so ringlb's tickets resume on ringlb, not on HAProxy.
//! Without a file, one AES-256 key is drawn at start for the whole process.
//!
//! Immutable once built: shards share it through an `Arc` without a lock.

use std::fmt;
use std::path::Path;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as crypto;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as crypto;

use crypto::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, NONCE_LEN};
use crypto::rand::{SecureRandom, SystemRandom};

/// The process's own ticket keys (binds without `tls-ticket-keys`): drawn once, so
/// that every shard, and every config a reload brings, shares them.
pub fn process_keys(lifetime: u32) -> std::sync::Arc<TicketKeys> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<HashMap<u32, Arc<TicketKeys>>>> = OnceLock::new();
    // Made during a config's build but kept by every later one: not in its region.
    crate::memory::region::outside(|| {
        let mut map = KEYS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(lifetime)
            .or_insert_with(|| {
                Arc::new(TicketKeys::generate(lifetime).expect("the system has no randomness"))
            })
            .clone()
    })
}

/// One random AES-256 key as a `tls-ticket-keys` line (80 bytes, base64).
pub fn random_key_line() -> Result<String, String> {
    use base64::Engine;
    let mut raw = [0u8; 80];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "no randomness for a ticket key".to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// How many keys of the file are used (HAProxy's TLS_TICKETS_NO).
pub const KEYS_USED: usize = 3;
const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;

struct Key {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

/// The ticket keys of a bind (or of the process).
pub struct TicketKeys {
    keys: Vec<Key>,
    /// Index of the key that encrypts new tickets.
    enc: usize,
    /// Seconds a ticket is good for (the hint sent to clients).
    lifetime: u32,
    rng: SystemRandom,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl TicketKeys {
    /// One random AES-256 key.
    pub fn generate(lifetime: u32) -> Result<TicketKeys, String> {
        let mut raw = [0u8; 80];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| "no randomness for the ticket key".to_string())?;
        Ok(TicketKeys {
            keys: vec![key(&raw)?],
            enc: 0,
            lifetime,
            rng: SystemRandom::new(),
        })
    }

    /// Reads a `tls-ticket-keys` file.
    pub fn from_file(path: &Path, lifetime: u32) -> Result<TicketKeys, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("'{}': {e}", path.display()))?;
        Self::parse(&text, lifetime).map_err(|e| format!("'{}': {e}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str, lifetime: u32) -> Result<TicketKeys, String> {
        use base64::Engine;
        let mut raw = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(l)
                .map_err(|e| format!("line {}: not base64: {e}", i + 1))?;
            if bytes.len() != 48 && bytes.len() != 80 {
                return Err(format!(
                    "line {}: a key is 48 or 80 bytes, this one is {}",
                    i + 1,
                    bytes.len()
                ));
            }
            if raw
                .first()
                .is_some_and(|f: &Vec<u8>| f.len() != bytes.len())
            {
                return Err(format!(
                    "line {}: keys of 48 and 80 bytes cannot be mixed",
                    i + 1
                ));
            }
            raw.push(bytes);
        }
        if raw.len() < KEYS_USED {
            return Err(format!(
                "at least {KEYS_USED} keys are needed, the file has {}",
                raw.len()
            ));
        }
        let used = &raw[raw.len() - KEYS_USED..];
        Ok(TicketKeys {
            keys: used.iter().map(|k| key(k)).collect::<Result<_, _>>()?,
            // The penultimate of the file: the middle of the last three.
            enc: KEYS_USED - 2,
            lifetime,
            rng: SystemRandom::new(),
        })
    }

    pub fn lifetime(&self) -> u32 {
        self.lifetime
    }
}

fn key(raw: &[u8]) -> Result<Key, String> {
    let mut name = [0u8; NAME_LEN];
    name.copy_from_slice(&raw[..NAME_LEN]);
    let (alg, len) = if raw.len() == 48 {
        (&AES_128_GCM, 16)
    } else {
        (&AES_256_GCM, 32)
    };
    let unbound = UnboundKey::new(alg, &raw[NAME_LEN..NAME_LEN + len])
        .map_err(|_| "unusable ticket key".to_string())?;
    Ok(Key {
        name,
        aead: LessSafeKey::new(unbound),
    })
}

impl rustls::server::ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = &self.keys[self.enc];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut buf)
            .ok()?
            .len();
        buf.truncate(plain_len);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use rustls::server::ProducesTickets;

    fn line(byte: u8, len: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![byte; len])
    }

    #[test]
    fn a_file_of_three_keys_encrypts_with_the_middle_one_and_decrypts_with_all() {
        let text = format!("{}\n{}\n{}\n", line(1, 80), line(2, 80), line(3, 80));
        let keys = TicketKeys::parse(&text, 300).unwrap();
        let t = keys.encrypt(b"state").unwrap();
        assert_eq!(&t[..16], &[2u8; 16], "the penultimate key encrypts");
        assert_eq!(keys.decrypt(&t).unwrap(), b"state");
        // A process whose file gained a fourth key still decrypts it (rotation).
        let rotated = format!("{text}{}\n", line(4, 80));
        let next = TicketKeys::parse(&rotated, 300).unwrap();
        assert_eq!(next.decrypt(&t).unwrap(), b"state");
        assert_eq!(&next.encrypt(b"x").unwrap()[..16], &[3u8; 16]);
        // Two rotations later the key is gone.
        let gone = format!("{rotated}{}\n", line(5, 80));
        assert!(TicketKeys::parse(&gone, 300).unwrap().decrypt(&t).is_none());
    }

    #[test]
    fn aes128_keys_work_and_tampering_is_refused() {
        let text = format!("{}\n{}\n{}\n", line(7, 48), line(8, 48), line(9, 48));
        let keys = TicketKeys::parse(&text, 300).unwrap();
        let mut t = keys.encrypt(b"hello").unwrap();
        assert_eq!(keys.decrypt(&t).unwrap(), b"hello");
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(keys.decrypt(&t).is_none());
        assert!(keys.decrypt(&t[..10]).is_none());
        assert!(keys.decrypt(&[]).is_none());
    }

    #[test]
    fn bad_files_say_why() {
        let two = format!("{}\n{}\n", line(1, 80), line(2, 80));
        assert!(TicketKeys::parse(&two, 300)
            .unwrap_err()
            .contains("at least 3"));
        let mixed = format!("{}\n{}\n{}\n", line(1, 80), line(2, 48), line(3, 80));
        assert!(TicketKeys::parse(&mixed, 300)
            .unwrap_err()
            .contains("line 2"));
        let short = format!("{}\n", line(1, 32));
        assert!(TicketKeys::parse(&short, 300)
            .unwrap_err()
            .contains("48 or 80"));
        assert!(TicketKeys::parse("!!!\n", 300)
            .unwrap_err()
            .contains("base64"));
    }

    #[test]
    fn generated_keys_differ_per_call() {
        let a = TicketKeys::generate(300).unwrap();
        let b = TicketKeys::generate(300).unwrap();
        let t = a.encrypt(b"s").unwrap();
        assert_eq!(a.decrypt(&t).unwrap(), b"s");
        assert!(b.decrypt(&t).is_none());
    }
}
