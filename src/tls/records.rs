//! The TLS record layer of a client connection once its handshake is done: records
//! sealed into and opened in ringlb's own buffers with the provider's AEAD, so a
//! keep-alive exchange allocates nothing (rustls 0.23 allocates a `Vec` per record
//! each way, buffered or not). rustls runs the handshake and hands over the traffic
//! keys (`dangerous_extract_secrets`); this is the user-space twin of kernel TLS,
//! which the kernel here lacks.
//!
//! What it does, per RFC 8446 §5 and RFC 5246 §6.2.3.3 / RFC 7905:
//! - the suites ringlb offers: AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, in
//!   TLS 1.3 and 1.2 (no CBC, no compression);
//! - TLS 1.3 KeyUpdate both ways: the traffic secrets come from the handshake through
//!   rustls' key log hook (`capture`), and a sender's keys are also renewed before
//!   AES-GCM's confidentiality limit;
//! - alerts: close_notify ends the stream, a TLS 1.2 warning is ignored, anything else
//!   fails it; a TLS 1.2 renegotiation is refused with a `no_renegotiation` warning, as
//!   rustls does.
//!
//! The sequence numbers start where rustls left them (its session tickets went out
//! under the same keys).

use std::cell::RefCell;
use std::io;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as crypto;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as crypto;

use crypto::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use crypto::hkdf;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};

pub const HEADER: usize = 5;
pub const TAG: usize = 16;
/// The most plaintext a record carries.
pub const MAX_PLAIN: usize = 16 * 1024;
/// The longest ciphertext a peer may send in one record (TLS 1.2's bound; TLS 1.3's
/// is 256 bytes over the plaintext).
const MAX_CIPHER_12: usize = MAX_PLAIN + 2048;
const MAX_CIPHER_13: usize = MAX_PLAIN + 256;

/// Records sealed under one AES-GCM key before it is renewed (TLS 1.3) or the
/// connection refused to go on (TLS 1.2): under the 2^24.5 of RFC 8446 §5.5.
const GCM_LIMIT: u64 = 1 << 24;
/// Records in a row that carry no plaintext (empty application data, warning alerts,
/// KeyUpdates) before the connection is ended: a peer cannot keep the shard opening
/// records that make no progress. OpenSSL (HAProxy's TLS) ends a connection after 32
/// empty records in a row, rustls after 32 empty fragments. (OpenSSL counts warning
/// alerts apart and ends the connection at the 5th in a row; here they count among
/// the 32.)
const MAX_RECORDS_WITHOUT_DATA: u8 = 32;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

const KEY_UPDATE: u8 = 24;
const CLIENT_HELLO: u8 = 1;

/// Alert descriptions sent or read.
pub const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;
const USER_CANCELED: u8 = 90;
const NO_RENEGOTIATION: u8 = 100;

/// A record the peer sent that cannot be accepted: the alert to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal {
    pub alert: u8,
    pub why: &'static str,
}

impl Fatal {
    fn new(alert: u8, why: &'static str) -> Fatal {
        Fatal { alert, why }
    }

    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {}", self.why))
    }
}

/// What one opened record was.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Application data: `rx[start..end]` of the buffer passed in (maybe empty).
    Data { start: usize, end: usize },
    /// close_notify: the peer's end of data.
    Closed,
    /// Nothing for the reader (a KeyUpdate, an ignored warning, a refused
    /// renegotiation whose answer is queued).
    Control,
}

/// One direction's key, nonce base, sequence number and (TLS 1.3) traffic secret.
struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
    secret: Option<Secret>,
    alg: &'static crypto::aead::Algorithm,
}

/// A TLS 1.3 application traffic secret (32 bytes: SHA-256 suites, 48: SHA-384).
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; 48],
    len: usize,
}

impl Drop for Secret {
    /// Traffic secrets do not outlive their connection in freed memory.
    fn drop(&mut self) {
        for b in &mut self.bytes {
            // SAFETY: a valid, aligned byte of this secret.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Secret {
    fn new(b: &[u8]) -> Option<Secret> {
        if b.len() != 32 && b.len() != 48 {
            return None;
        }
        let mut bytes = [0; 48];
        bytes[..b.len()].copy_from_slice(b);
        Some(Secret {
            bytes,
            len: b.len(),
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn hkdf(&self) -> hkdf::Algorithm {
        if self.len == 48 {
            hkdf::HKDF_SHA384
        } else {
            hkdf::HKDF_SHA256
        }
    }

    /// HKDF-Expand-Label(secret, label, "", out.len()) (RFC 8446 §7.1).
    fn expand_label(&self, label: &[u8], out: &mut [u8]) -> Result<(), ()> {
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = hkdf::Prk::new_less_safe(self.hkdf(), self.as_slice());
        let len = (out.len() as u16).to_be_bytes();
        let label_len = [(6 + label.len()) as u8];
        let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
        prk.expand(&info, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(drop)
    }

    /// The next generation's secret ("traffic upd").
    fn next(&self) -> Result<Secret, ()> {
        let mut next = self.clone();
        self.expand_label(b"traffic upd", &mut next.bytes[..self.len])?;
        Ok(next)
    }

    /// This secret's key (the first `key_len` bytes) and IV.
    fn key_iv_bytes(&self, key_len: usize) -> Result<([u8; 32], [u8; NONCE_LEN]), ()> {
        let mut key = [0; 32];
        self.expand_label(b"key", &mut key[..key_len])?;
        let mut iv = [0; NONCE_LEN];
        self.expand_label(b"iv", &mut iv)?;
        Ok((key, iv))
    }

    /// This secret's key and IV for `alg`.
    fn key_iv(
        &self,
        alg: &'static crypto::aead::Algorithm,
    ) -> Result<(LessSafeKey, [u8; NONCE_LEN]), ()> {
        let (key, iv) = self.key_iv_bytes(alg.key_len())?;
        let key = LessSafeKey::new(UnboundKey::new(alg, &key[..alg.key_len()]).map_err(drop)?);
        Ok((key, iv))
    }
}

impl Direction {
    fn new(
        (seq, s): (u64, ConnectionTrafficSecrets),
        secret: Option<Secret>,
    ) -> Result<Direction, ()> {
        let (alg, key, iv) = match &s {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (&crypto::aead::AES_128_GCM, key, iv)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (&crypto::aead::AES_256_GCM, key, iv)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&crypto::aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(()),
        };
        let iv: [u8; NONCE_LEN] = iv.as_ref().try_into().map_err(drop)?;
        // The captured secret must be the one rustls derived these keys from: if not,
        // it is dropped (and a KeyUpdate would fail the connection).
        let secret = secret.filter(|sec| {
            sec.key_iv_bytes(alg.key_len())
                .is_ok_and(|(k, v)| k[..alg.key_len()] == *key.as_ref() && v == iv)
        });
        Ok(Direction {
            key: LessSafeKey::new(UnboundKey::new(alg, key.as_ref()).map_err(drop)?),
            iv,
            seq,
            secret,
            alg,
        })
    }

    fn nonce(&self, seq: u64) -> [u8; NONCE_LEN] {
        let mut n = self.iv;
        for (b, s) in n[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// TLS 1.2 AES-GCM: an explicit nonce travels in each record.
    fn explicit(&self, tls13: bool) -> bool {
        !tls13 && self.is_gcm()
    }

    fn is_gcm(&self) -> bool {
        !std::ptr::eq(self.alg, &crypto::aead::CHACHA20_POLY1305)
    }

    /// Moves to the next generation of keys (TLS 1.3 KeyUpdate).
    fn update(&mut self) -> Result<(), ()> {
        let next = self.secret.as_ref().ok_or(())?.next()?;
        let (key, iv) = next.key_iv(self.alg)?;
        self.key = key;
        self.iv = iv;
        self.seq = 0;
        self.secret = Some(next);
        Ok(())
    }
}

/// Both directions' state.
pub struct Records {
    tls13: bool,
    tx: Direction,
    rx: Direction,
    /// The peer asked for our KeyUpdate (sent before our next record).
    key_update_due: bool,
    /// A `no_renegotiation` warning to send before our next record.
    refuse_due: bool,
    /// Records opened in a row that carried no plaintext.
    without_data: u8,
}

/// The TLS 1.3 application traffic secrets rustls logged during a handshake step run
/// under `capture` on this thread.
#[derive(Default)]
pub struct Captured {
    pub client: Option<Secret>,
    pub server: Option<Secret>,
}

impl Captured {
    /// Keeps what a later step logged.
    pub fn merge(&mut self, later: Captured) {
        if later.client.is_some() {
            self.client = later.client;
        }
        if later.server.is_some() {
            self.server = later.server;
        }
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// rustls' key log hook, installed on every server config: it keeps the application
/// traffic secrets only inside `capture` (the handshake steps of `TlsStream`), and
/// logs nothing anywhere else.
#[derive(Debug)]
pub struct SecretHook;

impl rustls::KeyLog for SecretHook {
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_TRAFFIC_SECRET_0" | "SERVER_TRAFFIC_SECRET_0")
            && CAPTURE.with(|c| c.borrow().is_some())
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        CAPTURE.with(|c| {
            if let Some(cap) = c.borrow_mut().as_mut() {
                match label {
                    "CLIENT_TRAFFIC_SECRET_0" => cap.client = Secret::new(secret),
                    "SERVER_TRAFFIC_SECRET_0" => cap.server = Secret::new(secret),
                    _ => {}
                }
            }
        });
    }
}

/// Runs one synchronous rustls step and returns what it logged (nothing, mostly).
pub fn capture<T>(step: impl FnOnce() -> T) -> (T, Captured) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Captured::default()));
    let out = step();
    let cap = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, cap)
}

/// The length of the record at the front of `buf`, header included, if its header is
/// there.
pub fn record_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= HEADER).then(|| HEADER + u16::from_be_bytes([buf[3], buf[4]]) as usize)
}

/// The length of the whole record at the front of `buf` once all of it is there; a
/// header announcing more than any version allows fails at once (`open` checks each
/// version's own bound).
pub fn whole_record(buf: &[u8]) -> Result<Option<usize>, Fatal> {
    match record_len(buf) {
        Some(n) if n > HEADER + MAX_CIPHER_12 => {
            Err(Fatal::new(RECORD_OVERFLOW, "a record over the size limit"))
        }
        Some(n) if n <= buf.len() => Ok(Some(n)),
        _ => Ok(None),
    }
}

impl Records {
    /// The record layer of a server connection whose handshake is done, from rustls'
    /// extracted keys and (TLS 1.3) the captured traffic secrets.
    pub fn server(tls13: bool, s: ExtractedSecrets, cap: &Captured) -> io::Result<Records> {
        let bad = || io::Error::other("TLS: keys of an unsupported suite");
        Ok(Records {
            tls13,
            tx: Direction::new(s.tx, cap.server.clone().filter(|_| tls13)).map_err(|_| bad())?,
            rx: Direction::new(s.rx, cap.client.clone().filter(|_| tls13)).map_err(|_| bad())?,
            key_update_due: false,
            refuse_due: false,
            without_data: 0,
        })
    }

    /// The most ciphertext `plain` bytes of application data take, with what
    /// `seal_data` may put in front of them (a refusal, up to two KeyUpdates).
    pub fn sealed_len(plain: usize) -> usize {
        let records = plain.div_ceil(MAX_PLAIN).max(1);
        plain + records * (HEADER + 8 + 1 + TAG) + 3 * (HEADER + 5 + 1 + TAG)
    }

    /// Seals `src` as application data records appended to `out`, after anything the
    /// read side queued (a KeyUpdate, a refusal).
    pub fn seal_data(&mut self, src: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_queued(out)?;
        for chunk in src.chunks(MAX_PLAIN) {
            self.seal(APPLICATION_DATA, chunk, out)?;
        }
        Ok(())
    }

    /// Seals an alert (close_notify, or a fatal one).
    pub fn seal_alert(&mut self, desc: u8, out: &mut Vec<u8>) -> io::Result<()> {
        let level = if desc == CLOSE_NOTIFY { 1 } else { 2 };
        self.seal(ALERT, &[level, desc], out)
    }

    /// The alert for a failure on our side (keys, limits).
    pub fn seal_internal_error(&mut self, out: &mut Vec<u8>) {
        let _ = self.seal_alert(INTERNAL_ERROR, out);
    }

    /// Records the read side owes the peer.
    pub fn seal_queued(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.refuse_due {
            self.refuse_due = false;
            self.seal(ALERT, &[1, NO_RENEGOTIATION], out)?;
        }
        if self.key_update_due {
            self.key_update_due = false;
            self.send_key_update(out)?;
        }
        Ok(())
    }

    pub fn has_queued(&self) -> bool {
        self.refuse_due || self.key_update_due
    }

    /// Our KeyUpdate (update_not_requested), then our keys move on.
    fn send_key_update(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        self.tx
            .update()
            .map_err(|_| io::Error::other("TLS: no traffic secret to update the keys"))
    }

    fn seal(&mut self, typ: u8, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        // Our own KeyUpdate is the one record sealed past the limit.
        if self.tx.is_gcm() && self.tx.seq >= GCM_LIMIT && typ != HANDSHAKE {
            if !self.tls13 {
                return Err(io::Error::other("TLS: AES-GCM record limit reached"));
            }
            self.send_key_update(out)?;
        }
        let seq = self.tx.seq;
        self.tx.seq = seq
            .checked_add(1)
            .ok_or_else(|| io::Error::other("TLS: sequence numbers exhausted"))?;
        let nonce = self.tx.nonce(seq);
        let explicit = self.tx.explicit(self.tls13);
        let (outer, inner) = if self.tls13 {
            (APPLICATION_DATA, 1)
        } else {
            (typ, 0)
        };
        let body = if explicit { 8 } else { 0 } + payload.len() + inner + TAG;
        out.extend_from_slice(&[outer, 3, 3]);
        out.extend_from_slice(&(body as u16).to_be_bytes());
        let aad_13 = [outer, 3, 3, (body >> 8) as u8, body as u8];
        if explicit {
            out.extend_from_slice(&nonce[4..]);
        }
        let aad_12;
        let aad: &[u8] = if self.tls13 {
            &aad_13
        } else {
            aad_12 = tls12_aad(seq, typ, payload.len());
            &aad_12
        };
        seal_into(&self.tx.key, nonce, aad, payload, &[typ][..inner], out)
            .map_err(|_| io::Error::other("TLS: sealing failed"))
    }

    /// Opens the whole record at the front of `buf` in place (`record_len` said it is
    /// all there).
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Opened, Fatal> {
        let opened = self.open_one(buf)?;
        match opened {
            Opened::Data { start, end } if start < end => self.without_data = 0,
            Opened::Data { .. } | Opened::Control => {
                self.without_data += 1;
                if self.without_data > MAX_RECORDS_WITHOUT_DATA {
                    return Err(Fatal::new(
                        UNEXPECTED_MESSAGE,
                        "too many records in a row without data",
                    ));
                }
            }
            Opened::Closed => {}
        }
        Ok(opened)
    }

    fn open_one(&mut self, buf: &mut [u8]) -> Result<Opened, Fatal> {
        let (typ, len) = (buf[0], buf.len() - HEADER);
        if buf[1] != 3 {
            return Err(Fatal::new(DECODE_ERROR, "a record of an unknown version"));
        }
        let max = if self.tls13 {
            MAX_CIPHER_13
        } else {
            MAX_CIPHER_12
        };
        if len > max {
            return Err(Fatal::new(RECORD_OVERFLOW, "a record over the size limit"));
        }
        if self.tls13 && typ != APPLICATION_DATA {
            return Err(Fatal::new(
                UNEXPECTED_MESSAGE,
                "an unprotected record after the handshake",
            ));
        }
        let seq = self.rx.seq;
        let mut nonce = self.rx.nonce(seq);
        let mut start = HEADER;
        if self.rx.explicit(self.tls13) {
            if len < 8 {
                return Err(Fatal::new(BAD_RECORD_MAC, "a record too short"));
            }
            nonce[4..].copy_from_slice(&buf[HEADER..HEADER + 8]);
            start += 8;
        }
        let cipher_len = buf.len() - start;
        if cipher_len < TAG {
            return Err(Fatal::new(BAD_RECORD_MAC, "a record too short"));
        }
        let opened = if self.tls13 {
            let aad = [buf[0], buf[1], buf[2], buf[3], buf[4]];
            self.rx.key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[start..],
            )
        } else {
            let aad = tls12_aad(seq, typ, cipher_len - TAG);
            self.rx.key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[start..],
            )
        };
        let plain_len = match opened {
            Ok(p) => p.len(),
            Err(_) => return Err(Fatal::new(BAD_RECORD_MAC, "a record that does not decrypt")),
        };
        self.rx.seq = seq
            .checked_add(1)
            .ok_or(Fatal::new(INTERNAL_ERROR, "sequence numbers exhausted"))?;
        let mut end = start + plain_len;
        let typ = if self.tls13 {
            // The inner type is the last non-zero byte; zeros after it are padding.
            match buf[start..end].iter().rposition(|&b| b != 0) {
                Some(i) => {
                    end = start + i;
                    buf[end]
                }
                None => return Err(Fatal::new(UNEXPECTED_MESSAGE, "a record of padding only")),
            }
        } else {
            typ
        };
        if end - start > MAX_PLAIN {
            return Err(Fatal::new(RECORD_OVERFLOW, "a record over the size limit"));
        }
        match typ {
            APPLICATION_DATA => Ok(Opened::Data { start, end }),
            ALERT => self.alert(&buf[start..end]),
            HANDSHAKE => self.handshake(&buf[start..end]),
            CHANGE_CIPHER_SPEC => Err(Fatal::new(
                UNEXPECTED_MESSAGE,
                "a ChangeCipherSpec after the handshake",
            )),
            _ => Err(Fatal::new(
                UNEXPECTED_MESSAGE,
                "a record of an unknown type",
            )),
        }
    }

    fn alert(&mut self, body: &[u8]) -> Result<Opened, Fatal> {
        let &[level, desc] = body else {
            return Err(Fatal::new(DECODE_ERROR, "a malformed alert"));
        };
        match (level, desc) {
            (_, CLOSE_NOTIFY) => Ok(Opened::Closed),
            (_, USER_CANCELED) => Ok(Opened::Control),
            (1, _) if !self.tls13 => Ok(Opened::Control),
            _ => Err(Fatal::new(
                UNEXPECTED_MESSAGE,
                "the peer sent a fatal alert",
            )),
        }
    }

    fn handshake(&mut self, body: &[u8]) -> Result<Opened, Fatal> {
        if body.len() < 4 {
            return Err(Fatal::new(DECODE_ERROR, "a truncated handshake message"));
        }
        let len = u32::from_be_bytes([0, body[1], body[2], body[3]]) as usize;
        match body[0] {
            // One KeyUpdate, alone in its record (it must end at a record boundary).
            KEY_UPDATE if self.tls13 => {
                if len != 1 || body.len() != 5 || body[4] > 1 {
                    return Err(Fatal::new(DECODE_ERROR, "a malformed KeyUpdate"));
                }
                self.rx
                    .update()
                    .map_err(|_| Fatal::new(INTERNAL_ERROR, "no traffic secret for a KeyUpdate"))?;
                if body[4] == 1 {
                    self.key_update_due = true;
                }
                Ok(Opened::Control)
            }
            CLIENT_HELLO if !self.tls13 => {
                self.refuse_due = true;
                Ok(Opened::Control)
            }
            _ => Err(Fatal::new(
                UNEXPECTED_MESSAGE,
                "an unexpected handshake message after the handshake",
            )),
        }
    }
}

/// Appends `payload` and `extra` (TLS 1.3's inner type) sealed, and the tag, to `out`:
/// encrypted from where they are into `out` in one pass (no copy first).
#[cfg(feature = "aws-lc-rs")]
fn seal_into(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    payload: &[u8],
    extra: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let start = out.len();
    out.resize(start + payload.len() + extra.len() + TAG, 0);
    let (ct, extra_and_tag) = out[start..].split_at_mut(payload.len());
    key.seal_out_of_place_scatter(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        payload,
        ct,
        extra,
        extra_and_tag,
    )
    .map_err(drop)
}

/// *ring* has no out-of-place sealing: copy, then seal in place.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn seal_into(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    payload: &[u8],
    extra: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let start = out.len();
    out.extend_from_slice(payload);
    out.extend_from_slice(extra);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[start..],
        )
        .map_err(drop)?;
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// TLS 1.2's additional data: seq, type, version, plaintext length.
fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut a = [0; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = typ;
    a[9] = 3;
    a[10] = 3;
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

#[cfg(test)]
mod tests {
    //! The record layer against rustls itself as the peer, in memory: every suite and
    //! version ringlb offers, both directions, KeyUpdates, tampering and alerts.

    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConnection, ServerConnection, SupportedCipherSuite};

    use super::*;

    struct Pair {
        client: ClientConnection,
        rec: Records,
    }

    /// A handshake with one suite, in memory; the server side then moves to `Records`.
    fn pair(suite: SupportedCipherSuite) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut provider = Arc::unwrap_or_clone(crate::tls::provider());
        provider.cipher_suites = vec![suite];
        let provider = Arc::new(provider);
        let tls13 = matches!(suite, SupportedCipherSuite::Tls13(_));
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS12]
        };
        let mut scfg = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        scfg.enable_secret_extraction = true;
        scfg.key_log = Arc::new(SecretHook);
        let ccfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::tls::client::AcceptAny(
                crate::tls::provider(),
            )))
            .with_no_client_auth();
        let mut client =
            ClientConnection::new(Arc::new(ccfg), ServerName::try_from("a.test").unwrap()).unwrap();
        client.set_buffer_limit(None);
        let mut server = ServerConnection::new(Arc::new(scfg)).unwrap();
        let mut cap = Captured::default();
        let mut buf = Vec::new();
        while client.is_handshaking() || server.is_handshaking() || server.wants_write() {
            buf.clear();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            let (r, got) = capture(|| server.process_new_packets().map(drop));
            r.unwrap();
            cap.merge(got);
            buf.clear();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            client.process_new_packets().unwrap();
        }
        assert_eq!(cap.client.is_some(), tls13);
        let secrets = server.dangerous_extract_secrets().unwrap();
        let rec = Records::server(tls13, secrets, &cap).unwrap();
        assert_eq!(
            rec.tx.secret.is_some(),
            tls13,
            "the captured secret matches the keys"
        );
        assert_eq!(rec.rx.secret.is_some(), tls13);
        Pair { client, rec }
    }

    impl Pair {
        /// The client's plaintext through our opening side; what we read.
        fn client_sends(&mut self, data: &[u8]) -> Vec<u8> {
            self.client.writer().write_all(data).unwrap();
            let mut wire = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut wire).unwrap();
            }
            self.open_all(&mut wire).unwrap()
        }

        fn open_all(&mut self, wire: &mut [u8]) -> Result<Vec<u8>, Fatal> {
            let mut got = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let n = record_len(&wire[at..]).unwrap();
                match self.rec.open(&mut wire[at..at + n])? {
                    Opened::Data { start, end } => {
                        got.extend_from_slice(&wire[at + start..at + end])
                    }
                    Opened::Closed => got.extend_from_slice(b"<close>"),
                    Opened::Control => {}
                }
                at += n;
            }
            Ok(got)
        }

        /// Our sealed records into the client; what it reads.
        fn server_sends(&mut self, data: &[u8]) -> Vec<u8> {
            let mut wire = Vec::new();
            self.rec.seal_data(data, &mut wire).unwrap();
            self.client_reads(&wire)
        }

        fn client_reads(&mut self, wire: &[u8]) -> Vec<u8> {
            let mut rd = wire;
            let mut got = Vec::new();
            while !rd.is_empty() {
                self.client.read_tls(&mut rd).unwrap();
                self.client.process_new_packets().unwrap();
                let mut b = vec![0; 70000];
                loop {
                    match self.client.reader().read(&mut b) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(_) => break,
                    }
                }
            }
            got
        }
    }

    /// The suites an ECDSA certificate can use.
    fn suites() -> Vec<SupportedCipherSuite> {
        crate::tls::provider()
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
            .collect()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn every_suite_both_ways_with_odd_sizes() {
        for suite in suites() {
            let mut p = pair(suite);
            for n in [1, 100, 16383, 16384, 16385, 65536, 100_000] {
                let d = data(n);
                assert_eq!(
                    p.client_sends(&d),
                    d,
                    "{suite:?} client → server, {n} bytes"
                );
                assert_eq!(
                    p.server_sends(&d),
                    d,
                    "{suite:?} server → client, {n} bytes"
                );
            }
            p.client.send_close_notify();
            assert_eq!(p.client_sends(b""), b"<close>");
        }
    }

    #[test]
    fn key_updates_both_ways_in_tls13() {
        for suite in suites() {
            if !matches!(suite, SupportedCipherSuite::Tls13(_)) {
                continue;
            }
            let mut p = pair(suite);
            for round in 0..3 {
                // The client's KeyUpdate asks for ours: it leaves before our next data.
                p.client.refresh_traffic_keys().unwrap();
                let d = data(1000 + round);
                assert_eq!(p.client_sends(&d), d, "{suite:?} round {round}");
                assert!(p.rec.has_queued());
                assert_eq!(p.server_sends(&d), d, "{suite:?} round {round}");
                assert!(!p.rec.has_queued());
                assert_eq!(p.rec.rx.seq, 1);
                assert_eq!(p.rec.tx.seq, 1);
            }
        }
    }

    #[test]
    fn the_aes_gcm_limit_renews_our_keys_in_tls13() {
        let suite = suites()
            .into_iter()
            .find(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
            .unwrap();
        let mut p = pair(suite);
        // (The client cannot follow a jump of its sequence number: the records are
        // only counted here; `key_updates_both_ways_in_tls13` has the client read ours.)
        p.rec.tx.seq = GCM_LIMIT;
        let mut wire = Vec::new();
        p.rec.seal_data(b"after the limit", &mut wire).unwrap();
        let first = record_len(&wire).unwrap();
        assert_eq!(first, HEADER + 5 + 1 + TAG, "a KeyUpdate first");
        assert_eq!(record_len(&wire[first..]), Some(wire.len() - first));
        assert_eq!(p.rec.tx.seq, 1, "the data went under the new keys");
    }

    #[test]
    fn a_flipped_byte_an_oversized_record_and_a_fatal_alert_fail() {
        for suite in suites() {
            let mut p = pair(suite);
            p.client.writer().write_all(b"hello").unwrap();
            let mut wire = Vec::new();
            p.client.write_tls(&mut wire).unwrap();
            let last = wire.len() - 1;
            wire[last] ^= 1;
            assert_eq!(p.open_all(&mut wire).unwrap_err().alert, BAD_RECORD_MAC);

            let mut p = pair(suite);
            let mut big = vec![APPLICATION_DATA, 3, 3, 0, 0];
            big.resize(HEADER + MAX_CIPHER_12 + 1, 0);
            let n = (big.len() - HEADER) as u16;
            big[3..5].copy_from_slice(&n.to_be_bytes());
            assert_eq!(p.rec.open(&mut big).unwrap_err().alert, RECORD_OVERFLOW);

            // A fatal alert from the peer (rustls sends one for a bad record it got).
            let mut p = pair(suite);
            let mut wire = Vec::new();
            p.rec.seal_data(b"x", &mut wire).unwrap();
            let last = wire.len() - 1;
            wire[last] ^= 1;
            let mut rd = &wire[..];
            p.client.read_tls(&mut rd).unwrap();
            assert!(p.client.process_new_packets().is_err());
            let mut alert = Vec::new();
            while p.client.wants_write() {
                p.client.write_tls(&mut alert).unwrap();
            }
            assert!(p.open_all(&mut alert).is_err(), "{suite:?}");
        }
    }

    #[test]
    fn close_notify_from_us_reads_as_the_end_at_the_client() {
        let suite = crate::tls::provider().cipher_suites[0];
        let mut p = pair(suite);
        let mut wire = Vec::new();
        p.rec.seal_alert(CLOSE_NOTIFY, &mut wire).unwrap();
        let mut rd = &wire[..];
        p.client.read_tls(&mut rd).unwrap();
        let st = p.client.process_new_packets().unwrap();
        assert!(st.peer_has_closed());
    }
}
