//! Timestamps as the API writes them: RFC 3339 in UTC with `Z`, the fraction in 0, 3, 6
//! or 9 digits as the value needs (chrono's `SecondsFormat::AutoSi`), byte for byte what
//! chrono's own `Serialize` writes.
//!
//! chrono's `Serialize` formats through `collect_str`, and serde_json escapes what a
//! `Display` writes piece by piece: a timestamp is a dozen `write_str` calls, each escaped
//! on its own (`format_escaped_str_contents`, `fmt::Write::write_char` and chrono's
//! number formatting were ~6 % of an uncached product list's server CPU). Here it is
//! written into a stack buffer and serialized as one string. For
//! `#[serde(serialize_with = "...")]` on the fields the API serializes.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The longest form written here: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// A UTC timestamp as chrono serializes it (years outside 0..=9999 and leap seconds are
/// left to chrono itself).
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write(t, &mut buf) {
        Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
        None => t.serialize(s),
    }
}

/// Writes `t` into `buf`, returning its length; `None` where chrono's form differs from
/// the fixed one (a year outside 0..=9999 takes a sign, a leap second a nanosecond field
/// of 1e9 and more).
fn write(t: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let date = t.date_naive();
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    put(buf, 0, year, 4);
    buf[4] = b'-';
    put(buf, 5, date.month(), 2);
    buf[7] = b'-';
    put(buf, 8, date.day(), 2);
    buf[10] = b'T';
    put(buf, 11, t.hour(), 2);
    buf[13] = b':';
    put(buf, 14, t.minute(), 2);
    buf[16] = b':';
    put(buf, 17, t.second(), 2);
    let mut n = 19;
    let (digits, fraction) = if nanos == 0 {
        (0, 0)
    } else if nanos % 1_000_000 == 0 {
        (3, nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        (6, nanos / 1_000)
    } else {
        (9, nanos)
    };
    if digits > 0 {
        buf[n] = b'.';
        put(buf, n + 1, fraction, digits);
        n += 1 + digits;
    }
    buf[n] = b'Z';
    Some(n + 1)
}

/// `v` in exactly `width` decimal digits at `buf[at..]`, zero-padded.
fn put(buf: &mut [u8], at: usize, mut v: u32, width: usize) {
    for slot in buf[at..at + width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    fn same(t: DateTime<Utc>) {
        let chrono = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::to_string(&Ours(t)).unwrap(), chrono, "{t:?}");
    }

    #[test]
    fn writes_what_chrono_writes() {
        let at = |y, mo, d, h, mi, s, ns| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::Duration::nanoseconds(ns)
        };
        // Each fraction width, the edges of the fixed form, and the forms chrono writes
        // itself (a signed or five-digit year, a leap second).
        for t in [
            at(2026, 12, 4, 19, 43, 7, 0),
            at(2026, 12, 4, 19, 43, 7, 120_000_000),
            at(2026, 12, 4, 19, 43, 7, 123_456_000),
            at(2026, 12, 4, 19, 43, 7, 1_000),
            at(2026, 12, 4, 19, 43, 7, 123_456_789),
            at(2026, 12, 4, 19, 43, 7, 1),
            at(1970, 1, 1, 0, 0, 0, 0),
            at(0, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(10000, 1, 1, 0, 0, 0, 5_000),
            at(-1, 6, 30, 12, 0, 0, 0),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
        ] {
            same(t);
        }
        // Microsecond timestamps (what both stores keep) across two centuries.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = (x % 6_311_433_600_000_000) as i64; // 1970 to 2170
            same(DateTime::from_timestamp_micros(micros).unwrap());
            let nanos = (x >> 34) as u32 % 1_000_000_000;
            same(DateTime::from_timestamp(micros / 1_000_000, nanos).unwrap());
        }
    }
}
