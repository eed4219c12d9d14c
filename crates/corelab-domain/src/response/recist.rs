//! RECIST 1.1 (domain.md section 1): target, non-target and new-lesion categories, the timepoint
//! response of Tables 1 and 2, nadir, best overall response and the progression date.
//!
//! All thresholds are decided on integers in tenths of mm:
//! PR iff `10*sum <= 7*baseline`; PD iff `5*sum >= 6*nadir && sum - nadir >= 50` (5.0 mm).

use std::collections::{BTreeMap, BTreeSet};

use super::bor::{self, BorClass, BorOutcome};
use super::case::{
    Baseline, CaseInput, CaseResult, Criteria, Flag, NonTargetStatus, Response, TargetMeasurement, Timepoint,
    TimepointResult,
};
use super::decimal::{SignedTenths, Tenths};

/// "Too small to measure" counts as 5.0 mm.
pub const TOO_SMALL_TENTHS: i64 = 50;
/// The absolute part of the PD rule: 5.0 mm.
pub const PD_ABSOLUTE_TENTHS: i64 = 50;
/// A target node is "normal" (CR-compatible) below 10.0 mm short axis.
pub const NODE_NORMAL_BELOW_TENTHS: i64 = 100;

/// Target readings of one timepoint, per lesion, in tenths of mm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetReadings {
    /// Evaluated lesions and their value (merged: 0; too small: 50; split: sum of fragments).
    pub values: BTreeMap<String, i64>,
    /// Targets not evaluated, in baseline order.
    pub missing: Vec<String>,
    /// Every evaluated non-nodal target is 0 and every evaluated nodal target < 10 mm.
    pub cr_sizes: bool,
}

impl TargetReadings {
    pub fn evaluated_sum(&self) -> i64 {
        self.values.values().sum()
    }

    pub fn complete_sum(&self) -> Option<i64> {
        self.missing.is_empty().then(|| self.evaluated_sum())
    }
}

pub(crate) fn read_targets(baseline: &Baseline, tp: &Timepoint) -> TargetReadings {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    let mut cr_sizes = true;
    for t in &baseline.targets {
        let value = match tp.targets.get(&t.id) {
            None | Some(TargetMeasurement::NotEvaluated) => None,
            Some(TargetMeasurement::Measured(v)) => Some(v.as_i64()),
            Some(TargetMeasurement::TooSmall) => Some(TOO_SMALL_TENTHS),
            Some(TargetMeasurement::Fragments(parts)) => Some(parts.iter().map(|p| p.as_i64()).sum()),
            Some(TargetMeasurement::MergedInto(_)) => Some(0),
        };
        match value {
            Some(v) => {
                let normal = if t.is_node { v < NODE_NORMAL_BELOW_TENTHS } else { v == 0 };
                cr_sizes &= normal;
                values.insert(t.id.clone(), v);
            }
            None => missing.push(t.id.clone()),
        }
    }
    TargetReadings { values, missing, cr_sizes }
}

/// The +20 % and +5 mm rule against the nadir, both inclusive.
pub(crate) fn meets_pd(sum: i64, nadir: i64) -> bool {
    5 * sum >= 6 * nadir && sum - nadir >= PD_ABSOLUTE_TENTHS
}

/// At least a 30 % decrease from baseline, inclusive.
pub(crate) fn meets_pr(sum: i64, baseline: i64) -> bool {
    10 * sum <= 7 * baseline
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetCat {
    Cr,
    Pr,
    Sd,
    Pd,
    Ne,
    /// No targets at baseline.
    Na,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetCall {
    pub cat: TargetCat,
    pub pd_from_partial: bool,
    pub cr_pd_conflict: bool,
}

/// Domain.md 1.4, in its order: NE unless the evaluated targets already prove PD; PD; CR; PR; SD.
pub(crate) fn classify_targets(has_targets: bool, r: &TargetReadings, baseline_sum: i64, nadir: i64) -> TargetCall {
    let call = |cat| TargetCall { cat, pd_from_partial: false, cr_pd_conflict: false };
    if !has_targets {
        return call(TargetCat::Na);
    }
    match r.complete_sum() {
        None => {
            if meets_pd(r.evaluated_sum(), nadir) {
                TargetCall { cat: TargetCat::Pd, pd_from_partial: true, cr_pd_conflict: false }
            } else {
                call(TargetCat::Ne)
            }
        }
        Some(sum) => {
            if meets_pd(sum, nadir) {
                TargetCall { cat: TargetCat::Pd, pd_from_partial: false, cr_pd_conflict: r.cr_sizes }
            } else if r.cr_sizes {
                call(TargetCat::Cr)
            } else if meets_pr(sum, baseline_sum) {
                call(TargetCat::Pr)
            } else {
                call(TargetCat::Sd)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NtCat {
    Cr,
    NonCrNonPd,
    Pd,
    Ne,
    /// No non-targets at baseline (section 9 item 3).
    Na,
}

/// Non-target category from per-lesion statuses (after any iRECIST re-reading of
/// FURTHER_INCREASE). Unequivocal progression of any lesion is PD even if others were not
/// evaluated; otherwise any not-evaluated lesion makes the category NE (section 9 item 4).
pub(crate) fn classify_non_targets(statuses: &[(String, NonTargetStatus)]) -> (NtCat, Vec<String>) {
    if statuses.is_empty() {
        return (NtCat::Na, Vec::new());
    }
    let missing: Vec<String> =
        statuses.iter().filter(|(_, s)| *s == NonTargetStatus::NotEvaluated).map(|(id, _)| id.clone()).collect();
    let cat = if statuses
        .iter()
        .any(|(_, s)| matches!(s, NonTargetStatus::UnequivocalProgression | NonTargetStatus::FurtherIncrease))
    {
        NtCat::Pd
    } else if !missing.is_empty() {
        NtCat::Ne
    } else if statuses.iter().all(|(_, s)| *s == NonTargetStatus::Absent) {
        NtCat::Cr
    } else {
        NtCat::NonCrNonPd
    };
    (cat, missing)
}

/// Per-lesion non-target statuses in baseline order; a missing key is NOT_EVALUATED.
pub(crate) fn non_target_statuses(baseline: &Baseline, tp: &Timepoint) -> Vec<(String, NonTargetStatus)> {
    baseline
        .non_targets
        .iter()
        .map(|n| (n.id.clone(), tp.non_targets.get(&n.id).copied().unwrap_or(NonTargetStatus::NotEvaluated)))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverallCat {
    Cr,
    Pr,
    Sd,
    NonCrNonPd,
    Pd,
    Ne,
}

/// Table 1 (target disease) and Table 2 (non-target disease only).
pub(crate) fn combine(t: TargetCat, nt: NtCat, new_lesion: bool) -> OverallCat {
    if t == TargetCat::Pd || nt == NtCat::Pd || new_lesion {
        return OverallCat::Pd;
    }
    match t {
        TargetCat::Ne => OverallCat::Ne,
        TargetCat::Cr => match nt {
            NtCat::Cr | NtCat::Na => OverallCat::Cr,
            NtCat::NonCrNonPd | NtCat::Ne => OverallCat::Pr,
            NtCat::Pd => OverallCat::Pd,
        },
        TargetCat::Pr => OverallCat::Pr,
        TargetCat::Sd => OverallCat::Sd,
        TargetCat::Pd => OverallCat::Pd,
        TargetCat::Na => match nt {
            NtCat::Cr => OverallCat::Cr,
            NtCat::NonCrNonPd => OverallCat::NonCrNonPd,
            NtCat::Pd => OverallCat::Pd,
            NtCat::Ne | NtCat::Na => OverallCat::Ne,
        },
    }
}

/// The reason an overall NE was given.
pub(crate) fn ne_reason(
    tp: &Timepoint,
    target_missing: &[String],
    t: TargetCat,
    nt_missing: &[String],
    nt: NtCat,
) -> String {
    if tp.targets.is_empty() && tp.non_targets.is_empty() && tp.new_lesions.is_empty() {
        return "no assessment recorded at this timepoint".to_string();
    }
    let mut parts = Vec::new();
    if t == TargetCat::Ne && !target_missing.is_empty() {
        parts
            .push(format!("targets not evaluated: {} (the evaluated ones do not prove PD)", target_missing.join(", ")));
    }
    if nt == NtCat::Ne && !nt_missing.is_empty() {
        parts.push(format!("non-targets not evaluated: {}", nt_missing.join(", ")));
    }
    if parts.is_empty() { "not all lesions evaluated".to_string() } else { parts.join("; ") }
}

pub(crate) fn tenths(value: i64) -> Option<Tenths> {
    u32::try_from(value).ok().map(Tenths::new)
}

pub(crate) fn pct_change(sum: i64, reference: i64) -> Option<SignedTenths> {
    (reference > 0).then(|| SignedTenths::ratio(100 * i128::from(sum - reference), i128::from(reference)))
}

pub(crate) fn target_response(cat: TargetCat) -> Response {
    match cat {
        TargetCat::Cr => Response::Cr,
        TargetCat::Pr => Response::Pr,
        TargetCat::Sd => Response::Sd,
        TargetCat::Pd => Response::Pd,
        TargetCat::Ne => Response::Ne,
        TargetCat::Na => Response::Na,
    }
}

fn nt_response(cat: NtCat) -> Response {
    match cat {
        NtCat::Cr => Response::Cr,
        NtCat::NonCrNonPd => Response::NonCrNonPd,
        NtCat::Pd => Response::Pd,
        NtCat::Ne => Response::Ne,
        NtCat::Na => Response::Na,
    }
}

fn overall_response(cat: OverallCat) -> Response {
    match cat {
        OverallCat::Cr => Response::Cr,
        OverallCat::Pr => Response::Pr,
        OverallCat::Sd => Response::Sd,
        OverallCat::NonCrNonPd => Response::NonCrNonPd,
        OverallCat::Pd => Response::Pd,
        OverallCat::Ne => Response::Ne,
    }
}

pub(crate) fn bor_class(cat: OverallCat) -> BorClass {
    match cat {
        OverallCat::Cr => BorClass::Cr,
        OverallCat::Pr => BorClass::Pr,
        OverallCat::Sd | OverallCat::NonCrNonPd => BorClass::Sd,
        OverallCat::Pd => BorClass::Pd,
        OverallCat::Ne => BorClass::Ne,
    }
}

/// Evaluates a validated RECIST 1.1 case.
pub(crate) fn evaluate(case: &CaseInput) -> CaseResult {
    let baseline = &case.baseline;
    let has_targets = !baseline.targets.is_empty();
    let baseline_sum: i64 = baseline.targets.iter().map(|t| t.diameter_mm.as_i64()).sum();
    let mut nadir = baseline_sum;

    let mut rows = Vec::with_capacity(case.timepoints.len());
    let mut classes: Vec<(u32, BorClass)> = Vec::with_capacity(case.timepoints.len());
    // First timepoint showing each new lesion (equivocal or not), and the ones ever unequivocal.
    let mut first_seen: BTreeMap<&str, u32> = BTreeMap::new();
    let mut confirmed_new: BTreeSet<&str> = BTreeSet::new();

    for tp in &case.timepoints {
        let day = tp.days_from_baseline;
        let readings = read_targets(baseline, tp);
        let t = classify_targets(has_targets, &readings, baseline_sum, nadir);
        let statuses = non_target_statuses(baseline, tp);
        let (nt, nt_missing) = classify_non_targets(&statuses);
        let mut new_lesion = false;
        let mut equivocal = false;
        for l in &tp.new_lesions {
            first_seen.entry(l.id.as_str()).or_insert(day);
            if l.equivocal {
                equivocal = true;
            } else {
                new_lesion = true;
                confirmed_new.insert(l.id.as_str());
            }
        }
        let overall = combine(t.cat, nt, new_lesion);

        let mut flags = Vec::new();
        if t.cr_pd_conflict {
            flags.push(Flag::NodalCrPdConflict);
        }
        if t.pd_from_partial {
            flags.push(Flag::PdFromPartialTargets);
        }
        if equivocal {
            flags.push(Flag::EquivocalNewLesion);
        }
        if matches!(overall, OverallCat::Sd | OverallCat::NonCrNonPd) && day < case.protocol.sd_min_days_from_baseline {
            flags.push(Flag::BeforeSdMinimum);
        }
        let sum = readings.complete_sum().filter(|_| has_targets);
        rows.push(TimepointResult {
            days_from_baseline: day,
            sum_mm: sum.and_then(tenths),
            partial_sum_mm: if has_targets && sum.is_none() && !readings.values.is_empty() {
                tenths(readings.evaluated_sum())
            } else {
                None
            },
            target_response: target_response(t.cat),
            non_target_response: nt_response(nt),
            new_lesions: new_lesion,
            overall: overall_response(overall),
            nadir_ref_mm: if has_targets { tenths(nadir) } else { None },
            pct_change_from_baseline: sum.and_then(|s| pct_change(s, baseline_sum)),
            pct_change_from_nadir: sum.and_then(|s| pct_change(s, nadir)),
            new_lesion_target_sum_mm: None,
            ne_reason: (overall == OverallCat::Ne).then(|| ne_reason(tp, &readings.missing, t.cat, &nt_missing, nt)),
            flags,
        });
        classes.push((day, bor_class(overall)));
        // NE timepoints never set the nadir: only a fully evaluated sum does.
        if let Some(s) = sum {
            nadir = nadir.min(s);
        }
    }

    let first_pd = classes.iter().position(|(_, c)| *c == BorClass::Pd);
    let window_end = first_pd.map_or(classes.len(), |i| i + 1);
    for row in rows.iter_mut().skip(window_end) {
        row.flags.push(Flag::AfterProgression);
    }
    let window = classes.get(..window_end).unwrap_or(&classes);
    let bor = bor::best_overall(window, &case.protocol);
    let mut notes = bor.notes;

    let first_pd_day = first_pd.and_then(|i| classes.get(i)).map(|(d, _)| *d);
    let backdated = confirmed_new.iter().filter_map(|id| first_seen.get(id).map(|d| (*id, *d))).min_by_key(|(_, d)| *d);
    let progression_day = match (first_pd_day, backdated) {
        (Some(pd), Some((id, seen))) if seen < pd => {
            notes.push(format!(
                "progression dated to day {seen}, the first scan showing new lesion {id} (equivocal then, confirmed later); timepoint labels are unchanged"
            ));
            Some(seen)
        }
        (Some(pd), _) => Some(pd),
        (None, _) => None,
    };

    CaseResult {
        id: case.id.clone(),
        criteria: Criteria::Recist11,
        baseline_sum_mm: if has_targets { tenths(baseline_sum) } else { None },
        per_timepoint: rows,
        best_overall_response: match bor.outcome {
            BorOutcome::Cr => Response::Cr,
            BorOutcome::Pr => Response::Pr,
            BorOutcome::Sd if has_targets => Response::Sd,
            BorOutcome::Sd => Response::NonCrNonPd,
            BorOutcome::Pd => Response::Pd,
            BorOutcome::Iupd | BorOutcome::Ne => Response::Ne,
        },
        progression_day_from_baseline: progression_day,
        first_response_day_from_baseline: bor.first_response_day,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pd_needs_both_twenty_percent_and_five_mm() {
        assert!(!meets_pd(240, 200)); // +20 %, +4 mm
        assert!(meets_pd(300, 250)); // +20 %, +5 mm
        assert!(!meets_pd(299, 250)); // +19.6 %, +4.9 mm
        assert!(!meets_pd(550, 500)); // +10 %, +5 mm
        assert!(meets_pd(50, 0)); // from a nadir of 0, 5 mm is PD
        assert!(!meets_pd(49, 0));
    }

    #[test]
    fn pr_is_thirty_percent_inclusive() {
        assert!(meets_pr(350, 500));
        assert!(!meets_pr(351, 500));
    }

    #[test]
    fn table1_cr_with_unevaluated_non_targets_is_pr() {
        assert_eq!(combine(TargetCat::Cr, NtCat::Ne, false), OverallCat::Pr);
        assert_eq!(combine(TargetCat::Cr, NtCat::Na, false), OverallCat::Cr);
        assert_eq!(combine(TargetCat::Ne, NtCat::Cr, false), OverallCat::Ne);
        assert_eq!(combine(TargetCat::Ne, NtCat::Cr, true), OverallCat::Pd);
        assert_eq!(combine(TargetCat::Na, NtCat::NonCrNonPd, false), OverallCat::NonCrNonPd);
    }
}
