//! A civil (calendar) date with day arithmetic: enough for visit calendars, with no time zone and no
//! clock. Proleptic Gregorian calendar (as DICOM DA and ISO 8601 dates).

use std::fmt;

use serde::{Serialize, Serializer};

/// A calendar date, stored as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    days: i32,
}

impl Date {
    /// 1970-01-01.
    pub const EPOCH: Date = Date { days: 0 };

    /// The date, if `year` is 1..=9999 and month/day exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { days: days_from_civil(year, month, day) })
    }

    /// `YYYY-MM-DD`.
    pub fn parse_iso(text: &str) -> Option<Date> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        Self::from_digits(&text[0..4], &text[5..7], &text[8..10])
    }

    /// DICOM DA: `YYYYMMDD`.
    pub fn parse_dicom(text: &str) -> Option<Date> {
        let text = text.trim_end_matches([' ', '\0']);
        if text.len() != 8 {
            return None;
        }
        Self::from_digits(text.get(0..4)?, text.get(4..6)?, text.get(6..8)?)
    }

    fn from_digits(y: &str, m: &str, d: &str) -> Option<Date> {
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !(all_digits(y) && all_digits(m) && all_digits(d)) {
            return None;
        }
        Date::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    pub fn year(self) -> i32 {
        civil_from_days(self.days).0
    }
    pub fn month(self) -> u32 {
        civil_from_days(self.days).1
    }
    pub fn day(self) -> u32 {
        civil_from_days(self.days).2
    }

    /// The date `days` later (earlier when negative); saturates at the ends of the range.
    pub fn add_days(self, days: i32) -> Date {
        Date { days: self.days.saturating_add(days) }
    }

    /// Days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Date) -> i32 {
        later.days.saturating_sub(self.days)
    }

    /// DICOM DA form, `YYYYMMDD`.
    pub fn to_dicom(self) -> String {
        let (y, m, d) = civil_from_days(self.days);
        format!("{y:04}{m:02}{d:02}")
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.days);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days, in i64 to avoid overflow.
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(i32::MAX), u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Date {
        Date::parse_iso(text).unwrap()
    }

    #[test]
    fn known_days() {
        assert_eq!(d("1970-01-01").days, 0);
        assert_eq!(d("2000-03-01").days, 11_017);
        assert_eq!(d("1969-12-31").days, -1);
        assert_eq!(d("2026-11-27").to_string(), "2026-11-27");
        assert_eq!(d("2024-02-29").add_days(365).to_string(), "2025-02-28");
        assert_eq!(d("2026-01-31").add_days(28).to_string(), "2026-02-28");
        assert_eq!(d("2026-03-01").add_days(-1).to_string(), "2026-02-28");
        assert_eq!(d("2028-03-01").add_days(-1).to_string(), "2028-02-29");
        assert_eq!(d("2026-01-01").days_until(d("2027-01-01")), 365);
        assert_eq!(d("2028-01-01").days_until(d("2029-01-01")), 366);
        assert_eq!(d("2026-05-10").days_until(d("2026-05-01")), -9);
    }

    #[test]
    fn round_trip_every_day_of_four_centuries() {
        let start = d("1900-01-01");
        let mut prev = start;
        for i in 1..(400 * 366) {
            let next = start.add_days(i);
            let again = Date::from_ymd(next.year(), next.month(), next.day()).unwrap();
            assert_eq!(again, next);
            assert_eq!(prev.days_until(next), 1);
            prev = next;
        }
    }

    #[test]
    fn parsing_rejects_impossible_dates() {
        assert_eq!(Date::parse_dicom("20260227"), Some(d("2026-02-27")));
        assert_eq!(Date::parse_dicom("20260227 "), Some(d("2026-02-27")));
        assert_eq!(d("2026-02-27").to_dicom(), "20260227");
        for bad in ["2026-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "0000-01-01", "2026-04-31"] {
            assert_eq!(Date::parse_iso(bad), None, "{bad}");
        }
        assert_eq!(Date::parse_dicom("2026022"), None);
        assert_eq!(Date::parse_dicom("2026-2-27"), None);
        assert_eq!(Date::parse_iso("+026-02-27"), None);
    }
}
