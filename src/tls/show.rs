//! `show ssl cert NAME`: a certificate described the way HAProxy 2.6 (OpenSSL) does,
//! line for line, so scripts that read serials and dates keep working.

use std::fmt::Write as _;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs::digest;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring::digest;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

/// HAProxy's lines for the leaf certificate `der`, shown as `name` with `status`
/// (`Used`, or `Unused` for a transaction).
pub fn details(name: &str, status: &str, der: &[u8]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Filename: {name}");
    let _ = writeln!(out, "Status: {status}");
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return out;
    };
    let serial = cert.raw_serial_as_string().replace(':', "").to_uppercase();
    let _ = writeln!(out, "Serial: {serial}");
    let v = cert.validity();
    let _ = writeln!(out, "notBefore: {}", openssl_time(v.not_before.timestamp()));
    let _ = writeln!(out, "notAfter: {}", openssl_time(v.not_after.timestamp()));
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            match g {
                GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                GeneralName::IPAddress(ip) => sans.push(format!("IP Address:{}", ip_text(ip))),
                GeneralName::RFC822Name(m) => sans.push(format!("email:{m}")),
                GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                _ => {}
            }
        }
    }
    let _ = writeln!(out, "Subject Alternative Name: {}", sans.join(", "));
    let _ = writeln!(out, "Algorithm: {}", algorithm(&cert));
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let hex: String = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let _ = writeln!(out, "SHA1 FingerPrint: {hex}");
    let _ = writeln!(out, "Subject: {}", super::certs::openssl_dn(cert.subject()));
    let _ = writeln!(out, "Issuer: {}", super::certs::openssl_dn(cert.issuer()));
    let _ = writeln!(out, "OCSP Response Key: ");
    out
}

/// `EC256`, `RSA2048`, as HAProxy names a key.
fn algorithm(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => format!("RSA{}", k.key_size()),
        Ok(PublicKey::EC(p)) => format!("EC{}", p.key_size()),
        _ => {
            let oid = &cert.public_key().algorithm.algorithm;
            if oid.to_id_string() == "1.3.101.112" {
                "ED25519".into()
            } else {
                "Unknown".into()
            }
        }
    }
}

fn ip_text(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(raw);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => String::new(),
    }
}

/// A time as OpenSSL's `ASN1_TIME_print`: `Dec  5 11:47:15 2026 GMT`.
pub fn openssl_time(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_openssl_prints_them() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        // 2026-12-05 11:47:15 UTC.
        assert_eq!(openssl_time(1_796_471_235), "Dec  5 11:47:15 2026 GMT");
        assert_eq!(openssl_time(951_782_400), "Feb 29 00:00:00 2000 GMT");
    }
}
