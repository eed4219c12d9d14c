//! Which charter series a received series is.
//!
//! 1. Clinical Trial Series ID (0012,0071) equal to the ID of a series the visit expects: that one.
//! 2. Otherwise the `identify` rules: series description and protocol name globs, image type values.
//!    Contrast (`identify.contrast`) only separates charter series that otherwise both fit (e.g. T1
//!    before and after gadolinium): a series with one candidate is taken for it whatever its
//!    contrast, so a missing contrast shows as a `contrast` finding, not as a missing series.
//! 3. Candidates whose imaging requirement has the series' modality are preferred.
//! 4. Still several: the first not yet taken, in charter order, with series in Series Number order
//!    (before-contrast series are usually acquired and numbered first); an `ambiguous_series`
//!    warning says so.

use super::contrast::{self, Presence};
use super::finding::IdentifiedBy;
use super::view::SeriesView;
use crate::charter::{ImagingRequirement, SeriesSpec, glob_matches};

/// A charter series a visit expects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'c> {
    pub requirement: &'c ImagingRequirement,
    pub spec: &'c SeriesSpec,
    /// Required at this visit (a known visit and `required = true`).
    pub required: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Assignment<'c> {
    /// Index into the expected list.
    pub expected: Option<usize>,
    pub by: IdentifiedBy,
    /// The expected series that fit, when there were several.
    pub candidates: Vec<usize>,
    /// A charter series the visit does not expect but whose rules hold.
    pub elsewhere: Option<&'c SeriesSpec>,
}

/// Whether the description, protocol and image type rules of `spec` hold.
fn headers_fit(spec: &SeriesSpec, v: &SeriesView) -> bool {
    let id = &spec.identify;
    let globs = |patterns: &[String], value: Option<&str>| {
        patterns.is_empty() || value.is_some_and(|t| patterns.iter().any(|p| glob_matches(p, t)))
    };
    globs(&id.series_description, v.description)
        && globs(&id.protocol_name, v.protocol)
        && id.image_type.iter().all(|want| v.image_type.iter().any(|have| have.trim().eq_ignore_ascii_case(want)))
}

fn contrast_fits(spec: &SeriesSpec, presence: Presence) -> bool {
    match (spec.identify.contrast, presence) {
        (None, _) | (_, Presence::Unknown) => true,
        (Some(want), Presence::Present) => want,
        (Some(want), Presence::Absent) => !want,
    }
}

/// Assigns every received series (same order as `views`).
pub(crate) fn assign<'c>(
    expected: &[Expected<'c>],
    others: &[&'c SeriesSpec],
    views: &[SeriesView],
) -> Vec<Assignment<'c>> {
    let mut order: Vec<usize> = (0..views.len()).collect();
    order.sort_by_key(|&k| (views[k].number.unwrap_or(i64::MAX), k));
    let mut taken = vec![false; expected.len()];
    let mut out: Vec<Assignment> = views
        .iter()
        .map(|_| Assignment { expected: None, by: IdentifiedBy::Unmatched, candidates: Vec::new(), elsewhere: None })
        .collect();
    for k in order {
        let v = &views[k];
        if let Some(id) = v.trial_series_id {
            if let Some(e) = expected.iter().position(|e| e.spec.id == id) {
                taken[e] = true;
                out[k] = Assignment {
                    expected: Some(e),
                    by: IdentifiedBy::ClinicalTrialSeriesId,
                    candidates: Vec::new(),
                    elsewhere: None,
                };
                continue;
            }
            if let Some(spec) = others.iter().find(|s| s.id == id) {
                out[k].elsewhere = Some(spec);
                continue;
            }
        }
        let mut candidates: Vec<usize> = (0..expected.len()).filter(|&e| headers_fit(expected[e].spec, v)).collect();
        if candidates.len() > 1 {
            let presence = contrast::presence(v).presence;
            let fitting: Vec<usize> =
                candidates.iter().copied().filter(|&e| contrast_fits(expected[e].spec, presence)).collect();
            if !fitting.is_empty() {
                candidates = fitting;
            }
        }
        if let (true, Some(m)) = (candidates.len() > 1, v.modality) {
            let same: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&e| expected[e].requirement.modality.as_str().eq_ignore_ascii_case(m))
                .collect();
            if !same.is_empty() {
                candidates = same;
            }
        }
        match candidates.as_slice() {
            [] => {
                out[k].elsewhere = others.iter().copied().find(|s| headers_fit(s, v));
            }
            [only] => {
                taken[*only] = true;
                out[k] = Assignment {
                    expected: Some(*only),
                    by: IdentifiedBy::Headers,
                    candidates: Vec::new(),
                    elsewhere: None,
                };
            }
            several => {
                let pick = several.iter().copied().find(|&e| !taken[e]).unwrap_or(several[0]);
                taken[pick] = true;
                out[k] = Assignment {
                    expected: Some(pick),
                    by: IdentifiedBy::Choice,
                    candidates: several.to_vec(),
                    elsewhere: None,
                };
            }
        }
    }
    out
}
