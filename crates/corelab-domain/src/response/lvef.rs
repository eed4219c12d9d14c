//! Left ventricular ejection fraction (domain.md section 8, cardiology).
//!
//! EF = (EDV - ESV) / EDV x 100 and stroke volume = EDV - ESV. EF is held as an exact fraction, so
//! a protocol rule such as "a fall of more than 10 points to below 53 %" is decided without
//! rounding; the one-decimal percentages in the result are for display.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::decimal::{SignedTenths, Tenths};

/// End-diastolic and end-systolic volumes in ml (one decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvVolumes {
    pub edv_ml: Tenths,
    pub esv_ml: Tenths,
}

/// Plausibility limits. Outside them a value is flagged, not refused: dilated ventricles exist.
/// Defaults: EDV 20-500 ml, ESV 5-400 ml, EF 5-90 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlausibilityLimits {
    pub edv_min_ml: Tenths,
    pub edv_max_ml: Tenths,
    pub esv_min_ml: Tenths,
    pub esv_max_ml: Tenths,
    pub ef_min_pct: Tenths,
    pub ef_max_pct: Tenths,
}

impl Default for PlausibilityLimits {
    fn default() -> Self {
        PlausibilityLimits {
            edv_min_ml: Tenths::units(20),
            edv_max_ml: Tenths::units(500),
            esv_min_ml: Tenths::units(5),
            esv_max_ml: Tenths::units(400),
            ef_min_pct: Tenths::units(5),
            ef_max_pct: Tenths::units(90),
        }
    }
}

/// Values that cannot be a left ventricle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LvefError {
    #[error("{which} must be greater than 0 ml")]
    VolumeNotPositive { which: String },
    #[error("ESV {esv_ml} ml must be smaller than EDV {edv_ml} ml")]
    EsvNotBelowEdv { edv_ml: Tenths, esv_ml: Tenths },
    #[error("reported EF {ef_pct} % must be between 0 and 100 %")]
    EfNotAPercentage { ef_pct: Tenths },
}

/// Values that are possible but implausible: check the tracing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LvefWarning {
    EdvOutsideRange { edv_ml: Tenths, min_ml: Tenths, max_ml: Tenths },
    EsvOutsideRange { esv_ml: Tenths, min_ml: Tenths, max_ml: Tenths },
    EfOutsideRange { ef_pct: SignedTenths, min_pct: Tenths, max_pct: Tenths },
}

/// An ejection fraction as the exact fraction `num / den` (of 1, not of 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ef {
    num: u64,
    den: u64,
}

impl Ef {
    /// Compares with a percentage given in tenths (e.g. 530 = 53.0 %).
    pub fn cmp_percent(self, pct: Tenths) -> Ordering {
        (u128::from(self.num) * 1000).cmp(&(u128::from(pct.get()) * u128::from(self.den)))
    }

    /// Rounded to 0.1 % (half away from zero), for display.
    pub fn percent(self) -> SignedTenths {
        SignedTenths::ratio(i128::from(self.num) * 100, i128::from(self.den))
    }
}

/// One LVEF reading: from volumes, or an EF reported directly (e.g. MUGA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LvefMeasurement {
    pub edv_ml: Option<Tenths>,
    pub esv_ml: Option<Tenths>,
    pub stroke_volume_ml: Option<Tenths>,
    /// EF rounded to 0.1 %.
    pub ef_pct: SignedTenths,
    pub warnings: Vec<LvefWarning>,
    #[serde(skip)]
    pub ef: Ef,
}

fn ef_warning(ef: Ef, limits: &PlausibilityLimits) -> Option<LvefWarning> {
    (ef.cmp_percent(limits.ef_min_pct) == Ordering::Less || ef.cmp_percent(limits.ef_max_pct) == Ordering::Greater)
        .then(|| LvefWarning::EfOutsideRange {
            ef_pct: ef.percent(),
            min_pct: limits.ef_min_pct,
            max_pct: limits.ef_max_pct,
        })
}

/// EF and stroke volume from EDV and ESV, with plausibility checks.
pub fn lvef_from_volumes(volumes: LvVolumes, limits: &PlausibilityLimits) -> Result<LvefMeasurement, LvefError> {
    let LvVolumes { edv_ml, esv_ml } = volumes;
    if edv_ml == Tenths::ZERO {
        return Err(LvefError::VolumeNotPositive { which: "EDV".into() });
    }
    if esv_ml == Tenths::ZERO {
        return Err(LvefError::VolumeNotPositive { which: "ESV".into() });
    }
    if esv_ml >= edv_ml {
        return Err(LvefError::EsvNotBelowEdv { edv_ml, esv_ml });
    }
    let stroke = Tenths::new(edv_ml.get() - esv_ml.get());
    let ef = Ef { num: u64::from(stroke.get()), den: u64::from(edv_ml.get()) };
    let mut warnings = Vec::new();
    if edv_ml < limits.edv_min_ml || edv_ml > limits.edv_max_ml {
        warnings.push(LvefWarning::EdvOutsideRange { edv_ml, min_ml: limits.edv_min_ml, max_ml: limits.edv_max_ml });
    }
    if esv_ml < limits.esv_min_ml || esv_ml > limits.esv_max_ml {
        warnings.push(LvefWarning::EsvOutsideRange { esv_ml, min_ml: limits.esv_min_ml, max_ml: limits.esv_max_ml });
    }
    warnings.extend(ef_warning(ef, limits));
    Ok(LvefMeasurement {
        edv_ml: Some(edv_ml),
        esv_ml: Some(esv_ml),
        stroke_volume_ml: Some(stroke),
        ef_pct: ef.percent(),
        warnings,
        ef,
    })
}

/// An EF reported as a percentage (one decimal), e.g. from MUGA.
pub fn lvef_from_reported(ef_pct: Tenths, limits: &PlausibilityLimits) -> Result<LvefMeasurement, LvefError> {
    if ef_pct == Tenths::ZERO || ef_pct > Tenths::units(100) {
        return Err(LvefError::EfNotAPercentage { ef_pct });
    }
    let ef = Ef { num: u64::from(ef_pct.get()), den: 1000 };
    Ok(LvefMeasurement {
        edv_ml: None,
        esv_ml: None,
        stroke_volume_ml: None,
        ef_pct: ef.percent(),
        warnings: ef_warning(ef, limits).into_iter().collect(),
        ef,
    })
}

/// A protocol's definition of LV dysfunction: EF falls by more than (or at least) `drop_points`
/// from baseline **and** ends below (or at most) `below_pct`. Default: a fall of > 10 points to
/// < 53 % (ASE/EACVI 2014).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DysfunctionRule {
    pub drop_points: Tenths,
    /// true: a fall of exactly `drop_points` qualifies (>=); false: it must be larger (>).
    pub drop_inclusive: bool,
    pub below_pct: Tenths,
    /// true: an EF of exactly `below_pct` qualifies (<=); false: it must be lower (<).
    pub below_inclusive: bool,
}

impl Default for DysfunctionRule {
    fn default() -> Self {
        DysfunctionRule {
            drop_points: Tenths::units(10),
            drop_inclusive: false,
            below_pct: Tenths::units(53),
            below_inclusive: false,
        }
    }
}

/// A follow-up EF against baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LvefChange {
    pub baseline_ef_pct: SignedTenths,
    pub follow_up_ef_pct: SignedTenths,
    /// Follow-up minus baseline in percentage points, rounded to 0.1.
    pub change_points: SignedTenths,
    pub drop_meets_rule: bool,
    pub below_threshold: bool,
    pub dysfunction: bool,
}

pub fn lvef_change(baseline: &LvefMeasurement, follow_up: &LvefMeasurement, rule: &DysfunctionRule) -> LvefChange {
    let (b, f) = (baseline.ef, follow_up.ef);
    let (bn, bd) = (i128::from(b.num), i128::from(b.den));
    let (fn_, fd) = (i128::from(f.num), i128::from(f.den));
    // drop (fraction of 1) = (bn*fd - fn*bd) / (bd*fd); compare drop*1000 with drop_points tenths.
    let drop_num = (bn * fd - fn_ * bd) * 1000;
    let drop_ref = i128::from(rule.drop_points.get()) * bd * fd;
    let drop_meets_rule = if rule.drop_inclusive { drop_num >= drop_ref } else { drop_num > drop_ref };
    let below = f.cmp_percent(rule.below_pct);
    let below_threshold = if rule.below_inclusive { below != Ordering::Greater } else { below == Ordering::Less };
    LvefChange {
        baseline_ef_pct: b.percent(),
        follow_up_ef_pct: f.percent(),
        change_points: SignedTenths::ratio((fn_ * bd - bn * fd) * 100, bd * fd),
        drop_meets_rule,
        below_threshold,
        dysfunction: drop_meets_rule && below_threshold,
    }
}

/// One timepoint of a reader's LVEF reads: the reading and, at a follow-up, its change from the
/// same reader's baseline under the protocol's dysfunction rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LvefTimepoint {
    pub measurement: LvefMeasurement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<LvefChange>,
}

impl LvefTimepoint {
    /// Dysfunction at a follow-up; `None` at baseline.
    pub fn dysfunction(&self) -> Option<bool> {
        self.change.as_ref().map(|c| c.dysfunction)
    }
}

/// A reader's series: `readings` baseline first, then the follow-ups in order.
pub fn lvef_series(readings: &[LvefMeasurement], rule: &DysfunctionRule) -> Vec<LvefTimepoint> {
    let Some(baseline) = readings.first() else { return Vec::new() };
    readings
        .iter()
        .enumerate()
        .map(|(i, m)| LvefTimepoint { measurement: m.clone(), change: (i > 0).then(|| lvef_change(baseline, m, rule)) })
        .collect()
}

/// The adjudication tolerance when the charter sets none: readers' EFs more than 5.0 points apart.
pub const DEFAULT_EF_TOLERANCE_POINTS: Tenths = Tenths::units(5);

/// Whether two EFs are more than `tolerance_points` percentage points apart, decided exactly.
pub fn ef_differs_by_more_than(a: Ef, b: Ef, tolerance_points: Tenths) -> bool {
    // |a - b| (fraction of 1) > tolerance / 1000 (tenths of a percentage point).
    let (an, ad, bn, bd) = (u128::from(a.num), u128::from(a.den), u128::from(b.num), u128::from(b.den));
    (an * bd).abs_diff(bn * ad) * 1000 > u128::from(tolerance_points.get()) * ad * bd
}

/// A timepoint at which two readers' LVEF reads disagree (domain.md section 3 "2 + 1", section 8):
/// their EFs are more than the tolerance apart, or (at a follow-up) one finds dysfunction under
/// the protocol's rule and the other does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvefDisagreement {
    /// The timepoint's index in reading order: 0 is the baseline.
    pub timepoint: usize,
    pub reader_1_ef_pct: SignedTenths,
    pub reader_2_ef_pct: SignedTenths,
    pub reader_1_dysfunction: Option<bool>,
    pub reader_2_dysfunction: Option<bool>,
    pub ef_differs: bool,
    pub category_differs: bool,
}

/// Compares two readers' series timepoint by timepoint (both read the same timepoints in the same
/// order; extra timepoints of one reader are not compared).
pub fn lvef_disagreements(
    reader_1: &[LvefTimepoint],
    reader_2: &[LvefTimepoint],
    tolerance_points: Tenths,
) -> Vec<LvefDisagreement> {
    reader_1
        .iter()
        .zip(reader_2)
        .enumerate()
        .filter_map(|(i, (a, b))| {
            let ef_differs = ef_differs_by_more_than(a.measurement.ef, b.measurement.ef, tolerance_points);
            let category_differs = a.dysfunction() != b.dysfunction();
            (ef_differs || category_differs).then(|| LvefDisagreement {
                timepoint: i,
                reader_1_ef_pct: a.measurement.ef_pct,
                reader_2_ef_pct: b.measurement.ef_pct,
                reader_1_dysfunction: a.dysfunction(),
                reader_2_dysfunction: b.dysfunction(),
                ef_differs,
                category_differs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(edv: u32, esv: u32) -> LvefMeasurement {
        lvef_from_volumes(
            LvVolumes { edv_ml: Tenths::units(edv), esv_ml: Tenths::units(esv) },
            &PlausibilityLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn ef_is_exact_at_the_threshold() {
        // 53/100 is exactly 53 %: not below 53 %.
        let f = m(100, 47);
        assert_eq!(f.ef.cmp_percent(Tenths::units(53)), Ordering::Equal);
        let change = lvef_change(&m(100, 36), &f, &DysfunctionRule::default());
        assert!(change.drop_meets_rule);
        assert!(!change.below_threshold);
        assert!(!change.dysfunction);
    }

    fn reported(tenths: u32) -> LvefMeasurement {
        lvef_from_reported(Tenths::new(tenths), &PlausibilityLimits::default()).unwrap()
    }

    #[test]
    fn volumes_are_checked_and_the_error_names_the_value() {
        let limits = PlausibilityLimits::default();
        let v = |edv: u32, esv: u32| LvVolumes { edv_ml: Tenths::new(edv), esv_ml: Tenths::new(esv) };
        // (EDV, ESV in tenths of ml) -> error
        let rows: [(u32, u32, Option<LvefError>); 4] = [
            (0, 500, Some(LvefError::VolumeNotPositive { which: "EDV".into() })),
            (1200, 0, Some(LvefError::VolumeNotPositive { which: "ESV".into() })),
            (1000, 1000, Some(LvefError::EsvNotBelowEdv { edv_ml: Tenths::new(1000), esv_ml: Tenths::new(1000) })),
            (1000, 999, None),
        ];
        for (edv, esv, want) in rows {
            assert_eq!(lvef_from_volumes(v(edv, esv), &limits).err(), want, "EDV {edv} ESV {esv}");
        }
        // Implausible but possible: a warning, not an error.
        let dilated = lvef_from_volumes(v(5500, 4500), &limits).unwrap();
        assert!(matches!(dilated.warnings[0], LvefWarning::EdvOutsideRange { .. }), "{:?}", dilated.warnings);
        assert_eq!(
            lvef_from_reported(Tenths::new(1001), &limits).err(),
            Some(LvefError::EfNotAPercentage { ef_pct: Tenths::new(1001) })
        );
    }

    #[test]
    fn ef_tolerance_is_strict_and_exact() {
        // (EF reader 1, EF reader 2 in tenths of %, tolerance in tenths) -> more than the tolerance apart
        let rows: [(u32, u32, u32, bool); 6] = [
            (600, 550, 50, false), // exactly 5.0 points: not more
            (600, 549, 50, true),
            (549, 600, 50, true), // symmetric
            (600, 600, 0, false),
            (601, 600, 0, true),
            (600, 500, 100, false),
        ];
        for (a, b, tol, want) in rows {
            assert_eq!(
                ef_differs_by_more_than(reported(a).ef, reported(b).ef, Tenths::new(tol)),
                want,
                "{a} vs {b}, tolerance {tol}"
            );
        }
        // 70/120 = 58.333...% vs 53.3 %: 5.0333 points apart -> more than 5.0 (rounded display would say 5.0).
        assert!(ef_differs_by_more_than(m(120, 50).ef, reported(533).ef, Tenths::units(5)));
    }

    #[test]
    fn readers_disagree_on_ef_or_dysfunction_per_timepoint() {
        let rule = DysfunctionRule::default();
        let tol = DEFAULT_EF_TOLERANCE_POINTS;
        // (reader 1 EFs, reader 2 EFs, baseline first) -> disagreeing timepoints (index, ef_differs, category_differs)
        type Row = (Vec<u32>, Vec<u32>, Vec<(usize, bool, bool)>);
        let rows: Vec<Row> = vec![
            (vec![600, 580], vec![610, 575], vec![]),
            // baseline EFs 6 points apart
            (vec![600, 580], vec![660, 600], vec![(0, true, false)]),
            // reader 1: 60 -> 49.9 (fall of 10.1 to below 53: dysfunction); reader 2: 60 -> 51 (fall of 9)
            (vec![600, 499], vec![600, 510], vec![(1, false, true)]),
            // both find dysfunction, 8 points apart
            (vec![650, 450], vec![650, 530 - 160], vec![(1, true, false)]),
            // both: EF 10 points apart and only reader 1 finds dysfunction
            (vec![600, 450], vec![600, 550], vec![(1, true, true)]),
        ];
        for (r1, r2, want) in rows {
            let s1 = lvef_series(&r1.iter().map(|e| reported(*e)).collect::<Vec<_>>(), &rule);
            let s2 = lvef_series(&r2.iter().map(|e| reported(*e)).collect::<Vec<_>>(), &rule);
            let got: Vec<(usize, bool, bool)> = lvef_disagreements(&s1, &s2, tol)
                .iter()
                .map(|d| (d.timepoint, d.ef_differs, d.category_differs))
                .collect();
            assert_eq!(got, want, "{r1:?} vs {r2:?}");
        }
        let s = lvef_series(&[reported(600), reported(499)], &rule);
        assert_eq!(s[0].dysfunction(), None);
        assert_eq!(s[1].dysfunction(), Some(true));
        assert_eq!(s[1].change.as_ref().unwrap().change_points, SignedTenths::new(-101));
    }

    #[test]
    fn rounding_is_for_display_only() {
        // 70/120 = 58.333... %
        assert_eq!(m(120, 50).ef_pct, SignedTenths::new(583));
    }
}
