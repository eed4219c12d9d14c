//! Exact decimal quantities: lengths and volumes in tenths of their unit, percentages in tenths or
//! hundredths. Values are parsed from their decimal text, never through a float, so a threshold such
//! as "+20 % and +5 mm" is decided on integers.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a decimal text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a decimal number")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("has more than {0} decimal place(s); corelab does not round, enter the value as read")]
    TooManyDecimals(u32),
    #[error("is too large")]
    TooLarge,
}

/// Parses a decimal in JSON number syntax (`-?digits[.digits][e[+-]digits]`) into an integer count
/// of `10^-decimals` units. Trailing zeros beyond `decimals` are accepted (`12.30` is 12.3); any
/// other digit beyond `decimals` is an error, never rounded.
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i64, DecimalError> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(pos) => {
            let exp_text = &rest[pos + 1..];
            let exp_digits = exp_text.strip_prefix('-').or_else(|| exp_text.strip_prefix('+')).unwrap_or(exp_text);
            if exp_digits.is_empty() || exp_digits.len() > 4 || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DecimalError::NotANumber);
            }
            let exp: i64 = exp_text.parse().map_err(|_| DecimalError::NotANumber)?;
            (&rest[..pos], exp)
        }
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int_part.is_empty()
        || (mantissa.contains('.') && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DecimalError::NotANumber);
    }
    let mut digits: String = format!("{int_part}{frac_part}");
    // value = digits * 10^(exponent - frac_len); scaled = digits * 10^(shift)
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| DecimalError::TooLarge)?;
    let shift = exponent - frac_len + i64::from(decimals);
    let all_zero = digits.bytes().all(|b| b == b'0');
    if all_zero {
        return Ok(0);
    }
    if shift >= 0 {
        if shift > 18 {
            return Err(DecimalError::TooLarge);
        }
        for _ in 0..shift {
            digits.push('0');
        }
    } else {
        let drop = usize::try_from(-shift).map_err(|_| DecimalError::TooManyDecimals(decimals))?;
        if drop > digits.len() || !digits[digits.len() - drop..].bytes().all(|b| b == b'0') {
            return Err(DecimalError::TooManyDecimals(decimals));
        }
        digits.truncate(digits.len() - drop);
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 18 {
        return Err(DecimalError::TooLarge);
    }
    let value: i64 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| DecimalError::TooLarge)? };
    if negative { Ok(-value) } else { Ok(value) }
}

/// Divides and rounds half away from zero. `den` must be positive.
pub(crate) fn div_round(num: i128, den: i128) -> i128 {
    if den <= 0 {
        return 0;
    }
    if num >= 0 { (2 * num + den) / (2 * den) } else { -((2 * (-num) + den) / (2 * den)) }
}

fn format_scaled(f: &mut fmt::Formatter<'_>, value: i64, decimals: u32) -> fmt::Result {
    let scale = 10_i64.pow(decimals);
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let scale_u = scale.unsigned_abs();
    write!(f, "{sign}{}.{:0width$}", abs / scale_u, abs % scale_u, width = decimals as usize)
}

fn serialize_scaled<S: Serializer>(value: i64, decimals: u32, serializer: S) -> Result<S::Ok, S::Error> {
    // value / 10^d is correctly rounded, and serde_json prints the shortest text that reads back as
    // the same double, so 123 tenths is written as 12.3.
    #[allow(clippy::cast_precision_loss)]
    let as_float = value as f64 / 10_f64.powi(decimals as i32);
    serializer.serialize_f64(as_float)
}

struct ScaledVisitor {
    decimals: u32,
    signed: bool,
}

impl Visitor<'_> for ScaledVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a decimal number with at most {} decimal place(s)", self.decimals)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        parse_scaled(&v.to_string(), self.decimals).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        let value = parse_scaled(&v.to_string(), self.decimals).map_err(E::custom)?;
        if value < 0 && !self.signed {
            return Err(E::custom(DecimalError::Negative));
        }
        Ok(value)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // Rust prints the shortest decimal that reads back as `v`: exact for any input with up to
        // 15 significant digits. Callers who need exactness beyond that pass a string.
        if !v.is_finite() {
            return Err(E::custom(DecimalError::NotANumber));
        }
        let value = parse_scaled(&format!("{v}"), self.decimals).map_err(E::custom)?;
        if value < 0 && !self.signed {
            return Err(E::custom(DecimalError::Negative));
        }
        Ok(value)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        let value = parse_scaled(v, self.decimals).map_err(E::custom)?;
        if value < 0 && !self.signed {
            return Err(E::custom(DecimalError::Negative));
        }
        Ok(value)
    }
}

/// A non-negative length (mm) or volume (ml) with at most one decimal, held as an integer count of
/// tenths. `Tenths::new(123)` is 12.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tenths(u32);

impl Tenths {
    pub const ZERO: Tenths = Tenths(0);

    pub const fn new(tenths: u32) -> Self {
        Tenths(tenths)
    }

    /// Whole units, e.g. `Tenths::units(10)` is 10.0.
    pub const fn units(units: u32) -> Self {
        Tenths(units.saturating_mul(10))
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses decimal text exactly ("12", "12.3", "12.30", "1.23e1"); rejects negatives, more than
    /// one significant decimal, and values of 100 000 or more.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let value = parse_scaled(text, 1)?;
        Self::from_scaled(value)
    }

    pub(crate) fn from_scaled(value: i64) -> Result<Self, DecimalError> {
        if value < 0 {
            return Err(DecimalError::Negative);
        }
        if value >= 1_000_000 {
            return Err(DecimalError::TooLarge);
        }
        u32::try_from(value).map(Tenths).map_err(|_| DecimalError::TooLarge)
    }

    pub(crate) fn as_i64(self) -> i64 {
        i64::from(self.0)
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(f, self.as_i64(), 1)
    }
}

impl Serialize for Tenths {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_scaled(self.as_i64(), 1, serializer)
    }
}

impl<'de> Deserialize<'de> for Tenths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserializer.deserialize_any(ScaledVisitor { decimals: 1, signed: false })?;
        Tenths::from_scaled(value).map_err(de::Error::custom)
    }
}

/// A signed quantity with one decimal held in tenths, e.g. a percentage change of -30.0 or an LVEF
/// change of -11.1 points. Produced by rounding half away from zero where the exact value has more
/// digits; never used for a threshold decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedTenths(i64);

impl SignedTenths {
    pub const fn new(tenths: i64) -> Self {
        SignedTenths(tenths)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// `num / den` in tenths, rounded half away from zero. `den` must be positive.
    pub(crate) fn ratio(num: i128, den: i128) -> Self {
        let rounded = div_round(num * 10, den);
        SignedTenths(i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX }))
    }
}

impl fmt::Display for SignedTenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(f, self.0, 1)
    }
}

impl Serialize for SignedTenths {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_scaled(self.0, 1, serializer)
    }
}

impl<'de> Deserialize<'de> for SignedTenths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScaledVisitor { decimals: 1, signed: true }).map(SignedTenths)
    }
}

/// A signed quantity with two decimals held in hundredths, e.g. a percentage brain volume change
/// of -0.45 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hundredths(i64);

impl Hundredths {
    pub const fn new(hundredths: i64) -> Self {
        Hundredths(hundredths)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// Parses signed decimal text with at most two significant decimals.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let value = parse_scaled(text, 2)?;
        if value.unsigned_abs() >= 100_000_000 {
            return Err(DecimalError::TooLarge);
        }
        Ok(Hundredths(value))
    }
}

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(f, self.0, 2)
    }
}

impl Serialize for Hundredths {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_scaled(self.0, 2, serializer)
    }
}

impl<'de> Deserialize<'de> for Hundredths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserializer.deserialize_any(ScaledVisitor { decimals: 2, signed: true })?;
        if value.unsigned_abs() >= 100_000_000 {
            return Err(de::Error::custom(DecimalError::TooLarge));
        }
        Ok(Hundredths(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tenths_exactly() {
        assert_eq!(Tenths::parse("12"), Ok(Tenths::new(120)));
        assert_eq!(Tenths::parse("12.3"), Ok(Tenths::new(123)));
        assert_eq!(Tenths::parse("12.30"), Ok(Tenths::new(123)));
        assert_eq!(Tenths::parse("0.1"), Ok(Tenths::new(1)));
        assert_eq!(Tenths::parse("1.23e1"), Ok(Tenths::new(123)));
        assert_eq!(Tenths::parse("123E-1"), Ok(Tenths::new(123)));
        assert_eq!(Tenths::parse("0"), Ok(Tenths::ZERO));
        assert_eq!(Tenths::parse("-0"), Ok(Tenths::ZERO));
        assert_eq!(Tenths::parse("0.0e5"), Ok(Tenths::ZERO));
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        assert_eq!(Tenths::parse("12.34"), Err(DecimalError::TooManyDecimals(1)));
        assert_eq!(Tenths::parse("12.301"), Err(DecimalError::TooManyDecimals(1)));
        assert_eq!(Tenths::parse("1e-2"), Err(DecimalError::TooManyDecimals(1)));
        assert_eq!(Tenths::parse("-1"), Err(DecimalError::Negative));
        assert_eq!(Tenths::parse("1e30"), Err(DecimalError::TooLarge));
        assert_eq!(Tenths::parse("100000"), Err(DecimalError::TooLarge));
        for bad in ["", ".5", "5.", "1.2.3", "abc", "1e", "0x10", "1,5", "--1"] {
            assert_eq!(Tenths::parse(bad), Err(DecimalError::NotANumber), "{bad}");
        }
    }

    #[test]
    fn hundredths_are_signed() {
        assert_eq!(Hundredths::parse("-0.45"), Ok(Hundredths::new(-45)));
        assert_eq!(Hundredths::parse("-0.455"), Err(DecimalError::TooManyDecimals(2)));
        assert_eq!(Hundredths::new(-45).to_string(), "-0.45");
        assert_eq!(Hundredths::new(-5).to_string(), "-0.05");
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-14, 10), -1);
        assert_eq!(SignedTenths::ratio(-1, 3).get(), -3);
        assert_eq!(SignedTenths::ratio(2, 3).get(), 7);
    }

    #[test]
    fn displays_and_serialises_one_decimal() {
        assert_eq!(Tenths::new(123).to_string(), "12.3");
        assert_eq!(Tenths::new(5).to_string(), "0.5");
        assert_eq!(SignedTenths::new(-300).to_string(), "-30.0");
        assert_eq!(SignedTenths::new(-3).to_string(), "-0.3");
        assert_eq!(serde_json::to_string(&Tenths::new(123)).ok().as_deref(), Some("12.3"));
        assert_eq!(serde_json::to_string(&Tenths::new(351)).ok().as_deref(), Some("35.1"));
        let back: Tenths = serde_json::from_str("35.1").unwrap_or_default();
        assert_eq!(back, Tenths::new(351));
        assert!(serde_json::from_str::<Tenths>("35.15").is_err());
        assert!(serde_json::from_str::<Tenths>("-1").is_err());
    }
}
