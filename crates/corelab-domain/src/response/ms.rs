//! Multiple sclerosis MRI outcomes (domain.md section 8, neurology): new or enlarging T2 lesions and
//! gadolinium-enhancing (Gd+) lesions per scan and cumulatively, percentage brain volume change
//! (PBVC) per interval, compounded from baseline and annualised, and "no evidence of MRI activity"
//! (the MRI part of NEDA-3: no new/enlarging T2 and no Gd+ lesion).
//!
//! What counts as "enlarging" is charter-defined and decided by the reader; the engine takes counts.

use serde::{Deserialize, Serialize};

use super::decimal::{Hundredths, div_round};

/// One follow-up scan, compared with the previous scan (the baseline for the first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsScan {
    /// Days from the baseline scan (day 0); strictly increasing, >= 1.
    pub days_from_baseline: u32,
    /// New or enlarging T2/FLAIR lesions versus the previous scan.
    pub new_or_enlarging_t2: u32,
    /// Gd-enhancing T1 lesions on this scan.
    pub gd_enhancing: u32,
    /// New or enlarging T2 lesions read directly against baseline, when the charter asks for it.
    #[serde(default)]
    pub new_or_enlarging_t2_vs_baseline: Option<u32>,
    /// PBVC versus the previous scan in % (two decimals), e.g. SIENA; -0.45 = 0.45 % loss.
    #[serde(default)]
    pub pbvc_pct: Option<Hundredths>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsSeries {
    /// Gd+ lesions on the baseline scan (reported, not counted as on-study activity).
    #[serde(default)]
    pub baseline_gd_enhancing: Option<u32>,
    pub scans: Vec<MsScan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MsSettings {
    /// Flag an interval whose annualised PBVC is at or below this value (e.g. -0.40 for the NEDA-4
    /// "loss of 0.4 %/year or more"). None: no atrophy flag.
    pub atrophy_threshold_annualised_pbvc_pct: Option<Hundredths>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CumulativeSource {
    /// From `new_or_enlarging_t2_vs_baseline` as read.
    VsBaselineRead,
    /// Sum of the per-interval counts (a lesion that enlarges twice is counted twice).
    SumOfIntervals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MsScanResult {
    pub days_from_baseline: u32,
    pub interval_days: u32,
    pub new_or_enlarging_t2: u32,
    pub cumulative_new_or_enlarging_t2: u32,
    pub cumulative_source: CumulativeSource,
    pub gd_enhancing: u32,
    /// Sum of Gd+ counts over the follow-up scans so far.
    pub cumulative_gd_enhancing: u32,
    pub pbvc_pct: Option<Hundredths>,
    /// PBVC x 365.25 / interval days, rounded to 0.01.
    pub annualised_pbvc_pct: Option<Hundredths>,
    /// Interval PBVCs compounded from baseline: (1+a)(1+b)... - 1, rounded to 0.01. Null once an
    /// interval has no PBVC.
    pub pbvc_vs_baseline_pct: Option<Hundredths>,
    /// New/enlarging T2 or Gd+ lesion on this scan.
    pub mri_activity: bool,
    pub no_evidence_of_mri_activity: bool,
    /// No MRI activity on this scan or any earlier follow-up scan.
    pub no_evidence_of_mri_activity_since_baseline: bool,
    /// Annualised PBVC at or below the settings' threshold; null without a threshold or PBVC.
    pub atrophy_at_or_beyond_threshold: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MsResult {
    pub scans: Vec<MsScanResult>,
    pub no_evidence_of_mri_activity: bool,
    /// PBVC from baseline to the last scan, annualised over the whole follow-up.
    pub annualised_pbvc_baseline_to_last_pct: Option<Hundredths>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsError {
    #[error("scan {index}: days_from_baseline must be at least 1 (day 0 is the baseline scan)")]
    DayZero { index: usize },
    #[error("scan {index}: day {day} is not after the previous scan (day {previous})")]
    NotAfterPrevious { index: usize, day: u32, previous: u32 },
}

/// Fixed point for compounding PBVC: 1.0 = 10^12.
const ONE: i128 = 1_000_000_000_000;

fn annualise(pbvc: Hundredths, days: u32) -> Hundredths {
    Hundredths::new(i64::try_from(div_round(i128::from(pbvc.get()) * 36525, i128::from(days) * 100)).unwrap_or(0))
}

pub fn evaluate_ms(series: &MsSeries, settings: &MsSettings) -> Result<MsResult, MsError> {
    let mut out = Vec::with_capacity(series.scans.len());
    let mut previous_day = 0_u32;
    let mut sum_t2 = 0_u32;
    let mut sum_gd = 0_u32;
    let mut quiet_so_far = true;
    let mut factor: Option<i128> = Some(ONE);
    for (i, scan) in series.scans.iter().enumerate() {
        let index = i + 1;
        if scan.days_from_baseline == 0 {
            return Err(MsError::DayZero { index });
        }
        if i > 0 && scan.days_from_baseline <= previous_day {
            return Err(MsError::NotAfterPrevious { index, day: scan.days_from_baseline, previous: previous_day });
        }
        let interval = scan.days_from_baseline - previous_day;
        previous_day = scan.days_from_baseline;
        sum_t2 = sum_t2.saturating_add(scan.new_or_enlarging_t2);
        sum_gd = sum_gd.saturating_add(scan.gd_enhancing);
        let (cumulative, source) = match scan.new_or_enlarging_t2_vs_baseline {
            Some(n) => (n, CumulativeSource::VsBaselineRead),
            None => (sum_t2, CumulativeSource::SumOfIntervals),
        };
        let activity = scan.new_or_enlarging_t2 > 0 || scan.gd_enhancing > 0;
        quiet_so_far &= !activity;
        factor = match (factor, scan.pbvc_pct) {
            (Some(f), Some(p)) => Some(div_round(f * (10_000 + i128::from(p.get())), 10_000)),
            _ => None,
        };
        let annualised = scan.pbvc_pct.map(|p| annualise(p, interval));
        let atrophy = match (settings.atrophy_threshold_annualised_pbvc_pct, scan.pbvc_pct) {
            (Some(threshold), Some(p)) => {
                Some(i128::from(p.get()) * 36525 <= i128::from(threshold.get()) * i128::from(interval) * 100)
            }
            _ => None,
        };
        out.push(MsScanResult {
            days_from_baseline: scan.days_from_baseline,
            interval_days: interval,
            new_or_enlarging_t2: scan.new_or_enlarging_t2,
            cumulative_new_or_enlarging_t2: cumulative,
            cumulative_source: source,
            gd_enhancing: scan.gd_enhancing,
            cumulative_gd_enhancing: sum_gd,
            pbvc_pct: scan.pbvc_pct,
            annualised_pbvc_pct: annualised,
            pbvc_vs_baseline_pct: factor.map(to_pct),
            mri_activity: activity,
            no_evidence_of_mri_activity: !activity,
            no_evidence_of_mri_activity_since_baseline: quiet_so_far,
            atrophy_at_or_beyond_threshold: atrophy,
        });
    }
    let annualised_total = match (factor, series.scans.last()) {
        (Some(f), Some(last)) => Some(annualise(to_pct(f), last.days_from_baseline)),
        _ => None,
    };
    Ok(MsResult {
        scans: out,
        no_evidence_of_mri_activity: quiet_so_far,
        annualised_pbvc_baseline_to_last_pct: annualised_total,
    })
}

fn to_pct(factor: i128) -> Hundredths {
    Hundredths::new(i64::try_from(div_round((factor - ONE) * 10_000, ONE)).unwrap_or(0))
}

/// A follow-up scan on which two readers disagree about MRI activity (a new/enlarging T2 or a Gd+
/// lesion seen by one reader and not by the other). Counts that differ without changing the
/// active/not active call do not disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsDisagreement {
    /// The follow-up scan's index (0 is the first follow-up).
    pub scan: usize,
    pub reader_1_active: bool,
    pub reader_2_active: bool,
}

/// Compares two readers' results scan by scan (both read the same scans in the same order).
pub fn ms_disagreements(reader_1: &MsResult, reader_2: &MsResult) -> Vec<MsDisagreement> {
    reader_1
        .scans
        .iter()
        .zip(&reader_2.scans)
        .enumerate()
        .filter(|(_, (a, b))| a.mri_activity != b.mri_activity)
        .map(|(i, (a, b))| MsDisagreement { scan: i, reader_1_active: a.mri_activity, reader_2_active: b.mri_activity })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(day: u32, t2: u32, gd: u32) -> MsScan {
        MsScan {
            days_from_baseline: day,
            new_or_enlarging_t2: t2,
            gd_enhancing: gd,
            new_or_enlarging_t2_vs_baseline: None,
            pbvc_pct: None,
        }
    }

    #[test]
    fn readers_disagree_on_activity_not_on_counts() {
        // (reader 1 (T2, Gd+) per scan, reader 2) -> scans in disagreement (index, r1 active, r2 active)
        type Row = (Vec<(u32, u32)>, Vec<(u32, u32)>, Vec<(usize, bool, bool)>);
        let rows: Vec<Row> = vec![
            (vec![(0, 0), (0, 0)], vec![(0, 0), (0, 0)], vec![]),
            (vec![(2, 0), (0, 1)], vec![(5, 0), (0, 3)], vec![]), // counts differ, both active
            (vec![(1, 0), (0, 0)], vec![(0, 0), (0, 0)], vec![(0, true, false)]), // one new T2 lesion
            (vec![(0, 0), (0, 0)], vec![(0, 0), (0, 1)], vec![(1, false, true)]), // one Gd+ lesion
            (vec![(0, 1), (1, 0)], vec![(0, 0), (0, 0)], vec![(0, true, false), (1, true, false)]),
        ];
        for (r1, r2, want) in rows {
            let run = |r: &[(u32, u32)]| {
                let scans = r.iter().enumerate().map(|(i, (t2, gd))| scan(84 * (i as u32 + 1), *t2, *gd)).collect();
                evaluate_ms(&MsSeries { baseline_gd_enhancing: None, scans }, &MsSettings::default()).unwrap()
            };
            let got: Vec<(usize, bool, bool)> = ms_disagreements(&run(&r1), &run(&r2))
                .iter()
                .map(|d| (d.scan, d.reader_1_active, d.reader_2_active))
                .collect();
            assert_eq!(got, want, "{r1:?} vs {r2:?}");
        }
    }

    #[test]
    fn compounding_two_losses() {
        // (1 - 0.005)(1 - 0.005) - 1 = -0.9975 % -> -1.00 %
        let scans = vec![
            MsScan {
                days_from_baseline: 180,
                new_or_enlarging_t2: 0,
                gd_enhancing: 0,
                new_or_enlarging_t2_vs_baseline: None,
                pbvc_pct: Some(Hundredths::new(-50)),
            },
            MsScan {
                days_from_baseline: 365,
                new_or_enlarging_t2: 0,
                gd_enhancing: 0,
                new_or_enlarging_t2_vs_baseline: None,
                pbvc_pct: Some(Hundredths::new(-50)),
            },
        ];
        let r = evaluate_ms(&MsSeries { baseline_gd_enhancing: None, scans }, &MsSettings::default()).unwrap();
        assert_eq!(r.scans[1].pbvc_vs_baseline_pct, Some(Hundredths::new(-100)));
    }
}
