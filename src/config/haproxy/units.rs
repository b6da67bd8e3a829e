//! haproxy.cfg time and size values (configuration manual 2.5 "Time format", and the
//! "Size format" section later manuals added), for the mapper to apply to keyword
//! arguments. Part of `config::haproxy`; ports of HAProxy 2.6's `parse_time_err()`
//! (milliseconds unit) and `parse_size_err()`.

use std::time::Duration;

/// HAProxy's timers are signed 32-bit milliseconds.
const MAX_TIMER_MS: u128 = i32::MAX as u128;

/// Parses a time value `<digits>[us|ms|s|m|h|d]`; a bare number is milliseconds.
///
/// As in HAProxy, the result has millisecond resolution (a sub-millisecond value is
/// rounded up: `1us` is 1ms, `1500us` is 2ms) and may not exceed 2147483647 ms
/// (~24.8 days). No sign, no decimal point, no space, upper-case units are errors.
///
/// Deviation: HAProxy 2.6 only warns about characters after a valid unit (`10sec` is 10s
/// there, "will be reported as an error in next versions"); this rejects them.
pub fn parse_time(word: &str) -> Result<Duration, String> {
    const UNITS: &str = "us=microseconds, ms=milliseconds, s=seconds, m=minutes, h=hours, d=days";
    let b = word.as_bytes();
    if b.is_empty() {
        return Err(
            "expects an integer time value (in milliseconds unless a unit is given)".into(),
        );
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!(
            "unexpected character '{}' in time value '{word}'",
            first_char(word, 0)
        ));
    }
    let overflow =
        || format!("timer overflow in '{word}' (maximum value is 2147483647 ms or ~24.8 days)");
    // Beyond 39 digits not even u128 holds it; it overflows the timer anyway.
    let value: u128 = word[..digits].parse().map_err(|_| overflow())?;
    // (multiplier, divisor) to milliseconds, and the unit's length.
    let ((mul, div), unit_len) = match &b[digits..] {
        [] => ((1, 1), 0),
        [b'u', b's', ..] => ((1, 1000), 2),
        [b'm', b's', ..] => ((1, 1), 2),
        [b's', ..] => ((1000, 1), 1),
        [b'm', ..] => ((60_000, 1), 1),
        [b'h', ..] => ((3_600_000, 1), 1),
        [b'd', ..] => ((86_400_000, 1), 1),
        _ => {
            return Err(format!(
                "unexpected character '{}' in time value '{word}' (units: {UNITS})",
                first_char(word, digits)
            ))
        }
    };
    let after = digits + unit_len;
    if after < b.len() {
        return Err(format!(
            "unexpected character '{}' after the timer value '{word}', only ({UNITS}) are supported",
            first_char(word, after)
        ));
    }
    let ms = value.checked_mul(mul).ok_or_else(overflow)?.div_ceil(div);
    if ms > MAX_TIMER_MS {
        return Err(overflow());
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Parses a size `<digits>[k|K|m|M|g|G]`: bytes, or powers of 1024.
///
/// As HAProxy's `parse_size_err()`, the result must fit 32 bits (at most 4294967295, so
/// `4g` is too large) and nothing may follow the unit (`1kb`, `1t`, `1.5k` are errors).
pub fn parse_size(word: &str) -> Result<u64, String> {
    let b = word.as_bytes();
    if b.is_empty() {
        return Err("expects a size value (bytes, or a number followed by k, m or g)".into());
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!(
            "unexpected character '{}' in size value '{word}'",
            first_char(word, 0)
        ));
    }
    let too_large = || format!("size '{word}' is too large (maximum value is 4294967295 bytes)");
    let value: u64 = word[..digits].parse().map_err(|_| too_large())?;
    let shift = match &b[digits..] {
        [] => 0,
        [b'k' | b'K', ..] => 10,
        [b'm' | b'M', ..] => 20,
        [b'g' | b'G', ..] => 30,
        _ => {
            return Err(format!(
                "unexpected character '{}' in size value '{word}' (units: k, m, g)",
                first_char(word, digits)
            ))
        }
    };
    if b.len() > digits + 1 {
        return Err(format!(
            "unexpected character '{}' after the unit in size value '{word}'",
            first_char(word, digits + 1)
        ));
    }
    if value > u64::from(u32::MAX) >> shift {
        return Err(too_large());
    }
    Ok(value << shift)
}

fn first_char(word: &str, at: usize) -> char {
    word[at..].chars().next().unwrap_or('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted values. Every input was also given to `timeout connect` under
    /// `haproxy -c` 2.6.12 on this machine, which accepted it.
    #[test]
    fn times() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Duration)] = &[
            ("0", ms(0)),
            ("10", ms(10)),
            ("10ms", ms(10)),
            ("10s", ms(10_000)),
            ("10m", ms(600_000)),
            ("10h", ms(36_000_000)),
            ("10d", ms(864_000_000)),
            ("0us", ms(0)),
            ("1us", ms(1)),
            ("1000us", ms(1)),
            ("1500us", ms(2)),
            ("9999999999us", ms(10_000_000)),
            ("2147483647", ms(2_147_483_647)),
            ("2147483647ms", ms(2_147_483_647)),
            ("24d", ms(2_073_600_000)),
            ("596h", ms(2_145_600_000)),
            ("35791m", ms(2_147_460_000)),
            ("007s", ms(7_000)),
        ];
        for (word, want) in cases {
            assert_eq!(parse_time(word), Ok(*want), "time {word:?}");
        }
    }

    /// Rejected values and the start of the message. All of them are errors for
    /// `haproxy -c` 2.6.12 too, except the `after the timer value` ones, which 2.6 only
    /// warns about (see `parse_time`).
    #[test]
    fn bad_times() {
        let cases: &[(&str, &str)] = &[
            ("", "expects an integer time value"),
            ("s", "unexpected character 's' in time value 's'"),
            ("-1", "unexpected character '-'"),
            ("+5", "unexpected character '+'"),
            (" 10", "unexpected character ' '"),
            ("10S", "unexpected character 'S' in time value '10S'"),
            ("10Ms", "unexpected character 'M'"),
            ("1.5s", "unexpected character '.'"),
            ("5x", "unexpected character 'x'"),
            ("5u", "unexpected character 'u'"),
            ("0x10", "unexpected character 'x'"),
            ("10 s", "unexpected character ' '"),
            (
                "10sec",
                "unexpected character 'e' after the timer value '10sec'",
            ),
            (
                "10mss",
                "unexpected character 's' after the timer value '10mss'",
            ),
            (
                "10usx",
                "unexpected character 'x' after the timer value '10usx'",
            ),
            (
                "1min",
                "unexpected character 'i' after the timer value '1min'",
            ),
            ("2147483648", "timer overflow in '2147483648'"),
            ("25d", "timer overflow in '25d'"),
            ("597h", "timer overflow in '597h'"),
            ("4294967296", "timer overflow"),
            ("99999999999999999999", "timer overflow"),
            (
                "9999999999999999999999999999999999999999999",
                "timer overflow",
            ),
        ];
        for (word, want) in cases {
            let err = parse_time(word).expect_err(word);
            assert!(
                err.starts_with(want),
                "time {word:?}: got {err:?}, want {want:?}..."
            );
        }
    }

    /// Accepted sizes; each was also accepted by `stick-table ... size` under
    /// `haproxy -c` 2.6.12.
    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("100", 100),
            ("1k", 1024),
            ("1K", 1024),
            ("1m", 1 << 20),
            ("1M", 1 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("3g", 3 << 30),
            ("4095m", 4095 << 20),
            ("4194303k", 4_194_303 << 10),
            ("4294967295", 4_294_967_295),
            ("0", 0),
        ];
        for (word, want) in cases {
            assert_eq!(parse_size(word), Ok(*want), "size {word:?}");
        }
    }

    /// Rejected sizes; each was also rejected by `stick-table ... size` under
    /// `haproxy -c` 2.6.12 (except the empty word, which cannot reach it).
    #[test]
    fn bad_sizes() {
        let cases: &[(&str, &str)] = &[
            ("", "expects a size value"),
            ("k", "unexpected character 'k' in size value 'k'"),
            ("-1", "unexpected character '-'"),
            ("0x10", "unexpected character 'x'"),
            ("1t", "unexpected character 't' in size value '1t'"),
            ("1x", "unexpected character 'x'"),
            ("10B", "unexpected character 'B'"),
            ("1.5k", "unexpected character '.'"),
            (
                "1kb",
                "unexpected character 'b' after the unit in size value '1kb'",
            ),
            ("4294967296", "size '4294967296' is too large"),
            ("4194304k", "size '4194304k' is too large"),
            ("4096m", "size '4096m' is too large"),
            ("4g", "size '4g' is too large"),
            (
                "99999999999999999999999",
                "size '99999999999999999999999' is too large",
            ),
        ];
        for (word, want) in cases {
            let err = parse_size(word).expect_err(word);
            assert!(
                err.starts_with(want),
                "size {word:?}: got {err:?}, want {want:?}..."
            );
        }
    }
}
