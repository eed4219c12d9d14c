//! Date shifting for the Retain Longitudinal Temporal Information with Modified Dates option.
//!
//! DA values (YYYYMMDD) and the date part of DT values (YYYYMMDD...) move by the same number of days;
//! times and the time part of DT stay, so intervals within a subject are preserved exactly.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn parse_ymd(s: &str) -> Option<(i64, u32, u32)> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(4..6)?.parse().ok()?;
    let d: u32 = s.get(6..8)?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

/// Shifts one DA value (YYYYMMDD, surrounding spaces allowed) by `days`. None if it is not a full
/// valid date or the result leaves years 0001-9999.
pub fn shift_da(value: &str, days: i32) -> Option<String> {
    let (y, m, d) = parse_ymd(value.trim())?;
    let (ny, nm, nd) = civil_from_days(days_from_civil(y, m, d) + i64::from(days));
    if !(1..=9999).contains(&ny) {
        return None;
    }
    Some(format!("{ny:04}{nm:02}{nd:02}"))
}

/// Shifts the date part of one DT value (YYYYMMDD followed by an optional time and offset). None when
/// the value has no full date (YYYY or YYYYMM precision cannot be shifted by days).
pub fn shift_dt(value: &str, days: i32) -> Option<String> {
    let v = value.trim();
    let date = v.get(0..8)?;
    let rest = v.get(8..)?;
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'+' || b == b'-') {
        return None;
    }
    Some(format!("{}{}", shift_da(date, days)?, rest))
}

/// Domain-separation prefix of the keyed date shift's HMAC message (see [`keyed_date_shift`]).
pub const DATE_SHIFT_LABEL: &[u8] = b"corelab deid date shift v1\0";

/// A per-subject date shift in days derived from a key, for de-identification without a server
/// (`corelab deid`) and at a site gateway: HMAC-SHA-256 keyed with `key` over
/// [`DATE_SHIFT_LABEL`] followed by the subject ID; the first 8 bytes as a big-endian u64 `h`;
/// `k = h mod 2n` with `n = max_shift_days`; the shift is `-(k + 1)` when `k < n`, else
/// `k - n + 1`. That lands in [-n, -1] or [1, n] (never 0, which would keep real dates), the
/// same for a subject every time with the same key. None when `max_shift_days` is 0.
pub fn keyed_date_shift(key: &[u8], subject_id: &str, max_shift_days: u32) -> Option<i32> {
    use hmac::{Hmac, KeyInit, Mac};
    let n = u64::from(max_shift_days);
    if n == 0 || i32::try_from(n).is_err() {
        return None;
    }
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(DATE_SHIFT_LABEL);
    mac.update(subject_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8)?);
    let k = u64::from_be_bytes(first) % (2 * n);
    let days = if k < n { -i64::try_from(k + 1).ok()? } else { i64::try_from(k - n + 1).ok()? };
    i32::try_from(days).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 10_957, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn da_shifts_across_months_years_and_leap_days() {
        assert_eq!(shift_da("20230131", 1).as_deref(), Some("20230201"));
        assert_eq!(shift_da("20240228", 1).as_deref(), Some("20240229"));
        assert_eq!(shift_da("20230228", 1).as_deref(), Some("20230301"));
        assert_eq!(shift_da("20240101", -1).as_deref(), Some("20231231"));
        assert_eq!(shift_da("20230315 ", -365).as_deref(), Some("20220315"));
        assert_eq!(shift_da("20230315", 0).as_deref(), Some("20230315"));
        assert_eq!(shift_da("20230230", 1), None);
        assert_eq!(shift_da("2023", 1), None);
        assert_eq!(shift_da("2023-03-15", 1), None);
        assert_eq!(shift_da("00010101", -1), None);
    }

    #[test]
    fn dt_keeps_time_and_offset() {
        assert_eq!(shift_dt("20231231235959.123456+0100", 1).as_deref(), Some("20240101235959.123456+0100"));
        assert_eq!(shift_dt("20230101", -1).as_deref(), Some("20221231"));
        assert_eq!(shift_dt("2023", 5), None);
        assert_eq!(shift_dt("202301", 5), None);
    }

    #[test]
    fn intervals_are_preserved() {
        let a = "20230110";
        let b = "20230321";
        for shift in [-4001, -30, 17, 900] {
            let (sa, sb) = (shift_da(a, shift).unwrap(), shift_da(b, shift).unwrap());
            let da = |s: &str| {
                let (y, m, d) = parse_ymd(s).unwrap();
                days_from_civil(y, m, d)
            };
            assert_eq!(da(&sb) - da(&sa), da(b) - da(a));
        }
    }
}
