//! Numbers and ranges as a site radiographer reads them.

use crate::charter::Range;

/// At most three decimals, trailing zeros dropped, at least one decimal: 7 -> "7.0",
/// 0.625 -> "0.625", 2.89362 -> "2.894".
pub(crate) fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') { format!("{s}0") } else { s.to_string() }
}

/// Whole numbers without decimals (kV, pixels), others as [`num`].
pub(crate) fn whole(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 { format!("{v:.0}") } else { num(v) }
}

/// A value with its unit, e.g. "7.0 mm", "120 kV".
pub(crate) fn with_unit(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Kv => format!("{} kV", whole(v)),
        Unit::Mm => format!("{} mm", num(v)),
        Unit::Tesla => format!("{} T", num(v)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Mm,
    Kv,
    Tesla,
}

/// "at most 5.0 mm", "at least 80 kV", "between 1.5 and 3.0 T", "exactly 3.0 T".
pub(crate) fn range_text(r: &Range, unit: Unit) -> String {
    match (r.min, r.max) {
        (Some(a), Some(b)) if a == b => format!("exactly {}", with_unit(a, unit)),
        (Some(a), Some(b)) => {
            let b = with_unit(b, unit);
            let a = match unit {
                Unit::Kv => whole(a),
                _ => num(a),
            };
            format!("between {a} and {b}")
        }
        (None, Some(b)) => format!("at most {}", with_unit(b, unit)),
        (Some(a), None) => format!("at least {}", with_unit(a, unit)),
        (None, None) => "any value".to_string(),
    }
}

/// One value, or "a to b" when the images disagree.
pub(crate) fn span_text(min: f64, max: f64, unit: Unit) -> String {
    if (max - min).abs() <= 1e-9 {
        with_unit(min, unit)
    } else {
        let a = match unit {
            Unit::Kv => whole(min),
            _ => num(min),
        };
        format!("{a} to {}", with_unit(max, unit))
    }
}

/// "1 slice", "2 slices".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// What to do about a value outside its range: "at 5.0 mm or thinner", "of at least 80 kV".
pub(crate) fn fix_hint(r: &Range, unit: Unit, below: &str, above: &str) -> String {
    match (r.min, r.max) {
        (Some(a), Some(b)) => format!("between {} and {}", num_in(a, unit), with_unit(b, unit)),
        (None, Some(b)) => format!("{} or {above}", with_unit(b, unit)),
        (Some(a), None) => format!("{} or {below}", with_unit(a, unit)),
        (None, None) => String::new(),
    }
}

fn num_in(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Kv => whole(v),
        _ => num(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(num(7.0), "7.0");
        assert_eq!(num(0.625), "0.625");
        assert_eq!(num(2.89362), "2.894");
        assert_eq!(num(1.25), "1.25");
        assert_eq!(whole(120.0), "120");
        assert_eq!(whole(119.5), "119.5");
        let r = Range { min: None, max: Some(5.0) };
        assert_eq!(range_text(&r, Unit::Mm), "at most 5.0 mm");
        assert_eq!(range_text(&Range { min: Some(80.0), max: Some(140.0) }, Unit::Kv), "between 80 and 140 kV");
        assert_eq!(range_text(&Range { min: Some(3.0), max: Some(3.0) }, Unit::Tesla), "exactly 3.0 T");
        assert_eq!(range_text(&Range { min: Some(1.0), max: None }, Unit::Mm), "at least 1.0 mm");
        assert_eq!(span_text(5.0, 7.0, Unit::Mm), "5.0 to 7.0 mm");
        assert_eq!(span_text(7.0, 7.0, Unit::Mm), "7.0 mm");
        assert_eq!(count(1, "slice", "slices"), "1 slice");
        assert_eq!(count(2, "slice", "slices"), "2 slices");
        assert_eq!(fix_hint(&r, Unit::Mm, "thicker", "thinner"), "5.0 mm or thinner");
    }
}
