//! Tumour response over time from accepted results: best % change in the sum of target diameters
//! per subject (waterfall) and % change at every timepoint (spider).
//!
//! Sums are exact tenths of a millimetre; a change is (sum - baseline sum) / baseline sum x 100
//! rounded half away from zero to 0.1 %, the engine's own rounding. A timepoint without a fully
//! evaluated sum (a target not evaluated) has no change. The best change is the smallest (most
//! negative) change over the follow-ups; a subject with no follow-up change is "not evaluable"
//! and listed apart. Response words are the accepted result's (RECIST 1.1 or iRECIST).

use std::collections::BTreeMap;

use serde::Serialize;

/// One accepted follow-up of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimepointSum {
    pub days_from_baseline: u32,
    /// Tenths of a millimetre; None when a target was not evaluated.
    pub sum_tenths: Option<i64>,
    /// Overall timepoint response (`PR`, `PD`, `iUPD`, ...).
    pub overall: String,
}

/// A subject's accepted result, as the response report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSums {
    /// How the subject is shown (subject ID, or a neutral number for aggregate viewers).
    pub label: String,
    pub baseline_sum_tenths: Option<i64>,
    pub timepoints: Vec<TimepointSum>,
    pub best_overall_response: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaterfallBar {
    pub label: String,
    /// Best % change in tenths of a percent (-305 = -30.5 %).
    pub best_change_tenths: i64,
    pub best_overall_response: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpiderPoint {
    pub days_from_baseline: u32,
    pub change_tenths: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpiderLine {
    pub label: String,
    pub best_overall_response: String,
    /// Starts at day 0, 0 %; then every follow-up with a sum.
    pub points: Vec<SpiderPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseSummary {
    /// Sorted from the largest increase to the largest decrease (ties by label).
    pub waterfall: Vec<WaterfallBar>,
    pub spider: Vec<SpiderLine>,
    /// Subjects with no measurable change (no baseline sum, a zero baseline sum, or no follow-up sum).
    pub not_evaluable: Vec<String>,
    /// Best overall response -> subjects.
    pub best_response_counts: BTreeMap<String, u64>,
}

/// (sum - baseline) / baseline x 100 in tenths of a percent, rounded half away from zero; None
/// when the baseline sum is 0.
pub fn pct_change_tenths(sum_tenths: i64, baseline_tenths: i64) -> Option<i64> {
    if baseline_tenths == 0 {
        return None;
    }
    let num = i128::from(sum_tenths - baseline_tenths) * 1000;
    let den = i128::from(baseline_tenths);
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    let q = if num >= 0 { (2 * num + den) / (2 * den) } else { -((-2 * num + den) / (2 * den)) };
    i64::try_from(q).ok()
}

/// Waterfall, spider lines and the best-response distribution of `subjects`.
pub fn response_summary(subjects: &[SubjectSums]) -> ResponseSummary {
    let mut waterfall = Vec::new();
    let mut spider = Vec::new();
    let mut not_evaluable = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for s in subjects {
        *counts.entry(s.best_overall_response.clone()).or_default() += 1;
        let changes: Vec<SpiderPoint> = match s.baseline_sum_tenths {
            Some(base) => s
                .timepoints
                .iter()
                .filter_map(|t| {
                    Some(SpiderPoint {
                        days_from_baseline: t.days_from_baseline,
                        change_tenths: pct_change_tenths(t.sum_tenths?, base)?,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let Some(best) = changes.iter().map(|p| p.change_tenths).min() else {
            not_evaluable.push(s.label.clone());
            continue;
        };
        waterfall.push(WaterfallBar {
            label: s.label.clone(),
            best_change_tenths: best,
            best_overall_response: s.best_overall_response.clone(),
        });
        let mut points = vec![SpiderPoint { days_from_baseline: 0, change_tenths: 0 }];
        points.extend(changes);
        spider.push(SpiderLine {
            label: s.label.clone(),
            best_overall_response: s.best_overall_response.clone(),
            points,
        });
    }
    waterfall.sort_by(|a, b| b.best_change_tenths.cmp(&a.best_change_tenths).then_with(|| a.label.cmp(&b.label)));
    ResponseSummary { waterfall, spider, not_evaluable, best_response_counts: counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_change_rounds_half_away_from_zero() {
        // (sum, baseline, expected tenths of a percent)
        let cases: &[(i64, i64, Option<i64>)] = &[
            (510, 510, Some(0)),
            (357, 510, Some(-300)), // exactly -30 %
            (612, 510, Some(200)),  // exactly +20 %
            (661, 510, Some(296)),  // 29.607 -> 29.6
            (1, 3, Some(-667)),     // -66.666 -> -66.7
            (2, 3, Some(-333)),     // -33.333 -> -33.3
            (201, 200, Some(5)),    // 0.5 exactly
            (199, 200, Some(-5)),   // -0.5 exactly
            (2001, 2000, Some(1)),  // 0.05 -> 0.1 (half away from zero)
            (1999, 2000, Some(-1)), // -0.05 -> -0.1
            (0, 510, Some(-1000)),  // complete response of targets
            (100, 0, None),
        ];
        for (sum, base, expected) in cases {
            assert_eq!(pct_change_tenths(*sum, *base), *expected, "{sum} vs {base}");
        }
    }

    fn subject(label: &str, base: Option<i64>, sums: &[(u32, Option<i64>)], bor: &str) -> SubjectSums {
        SubjectSums {
            label: label.into(),
            baseline_sum_tenths: base,
            timepoints: sums
                .iter()
                .map(|(d, s)| TimepointSum { days_from_baseline: *d, sum_tenths: *s, overall: "SD".into() })
                .collect(),
            best_overall_response: bor.into(),
        }
    }

    #[test]
    fn waterfall_takes_the_smallest_change_and_sorts_descending() {
        let subjects = vec![
            subject("A", Some(510), &[(56, Some(357)), (112, Some(420))], "PR"),
            subject("B", Some(400), &[(56, Some(440)), (112, Some(520))], "PD"),
            subject("C", Some(300), &[(56, None)], "NE"),
            subject("D", None, &[], "NE"),
            subject("E", Some(400), &[(56, Some(440))], "SD"),
            subject("F", Some(200), &[(56, None), (112, Some(180))], "SD"),
        ];
        let r = response_summary(&subjects);
        let bars: Vec<(&str, i64)> = r.waterfall.iter().map(|b| (b.label.as_str(), b.best_change_tenths)).collect();
        // B: +10 % and +30 % -> best +10 %; E: +10 %; F: -10 %; A: -30 % and -17.6 % -> -30 %.
        assert_eq!(bars, [("B", 100), ("E", 100), ("F", -100), ("A", -300)]);
        assert_eq!(r.not_evaluable, ["C", "D"]);
        assert_eq!(r.best_response_counts.get("NE"), Some(&2));
        assert_eq!(r.best_response_counts.get("SD"), Some(&2));
        let a = r.spider.iter().find(|l| l.label == "A").unwrap();
        let pts: Vec<(u32, i64)> = a.points.iter().map(|p| (p.days_from_baseline, p.change_tenths)).collect();
        assert_eq!(pts, [(0, 0), (56, -300), (112, -176)]);
        let f = r.spider.iter().find(|l| l.label == "F").unwrap();
        assert_eq!(f.points.len(), 2, "the timepoint without a sum is left out");
    }
}
