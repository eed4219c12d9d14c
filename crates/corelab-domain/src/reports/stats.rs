//! Small statistics shared by the reports.

/// The median of `values` (mean of the two middle values for an even count); None when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1).copied()? + v.get(n / 2).copied()?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let cases: &[(&[f64], Option<f64>)] = &[
            (&[], None),
            (&[5.0], Some(5.0)),
            (&[4.0, 1.0], Some(2.5)),
            (&[9.0, 1.0, 3.0], Some(3.0)),
            (&[10.0, 2.0, 4.0, 1.0], Some(3.0)),
        ];
        for (values, expected) in cases {
            assert_eq!(median(values), *expected, "{values:?}");
        }
    }
}
