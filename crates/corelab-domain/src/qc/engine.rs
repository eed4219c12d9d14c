//! `evaluate_visit`: every rule over one visit's facts.

use std::collections::BTreeMap;

use super::contrast::{self, PhaseEvidence, Presence};
use super::facts::{BurnedInFlag, InstanceFacts, PixelDecode, VisitFacts};
use super::finding::{Finding, IdentifiedBy, QcResult, Rule, SeriesMatch, Severity, Verdict, VisitWindow};
use super::geometry::{self, Geometry};
use super::identify::{self, Assignment, Expected};
use super::mr;
use super::text::{Unit, count, fix_hint, num, range_text, span_text, with_unit};
use super::view::{SeriesView, Stats};
use crate::charter::{
    AcquisitionConstraints, Charter, ContrastAgent, ImagingRule, Modality, Range, ScheduledVisit, SeriesSpec,
};
use crate::deid_profile::DateHandling;

/// Values this close to a limit count as on it (header values are decimal strings; positions give
/// spacings with rounding noise).
const EPSILON: f64 = 1e-6;

fn within(r: &Range, v: f64) -> bool {
    r.min.is_none_or(|min| v >= min - EPSILON) && r.max.is_none_or(|max| v <= max + EPSILON)
}

/// Nominal field strengths scanners are sold as; a recorded value within 5 % is read as the nominal
/// one (Siemens 3 T systems record 2.89362 T).
const NOMINAL_TESLA: &[f64] = &[0.2, 0.23, 0.3, 0.35, 0.5, 0.55, 0.6, 1.0, 1.2, 1.5, 3.0, 4.7, 7.0, 9.4, 10.5, 11.7];

/// The field strength in tesla: values above 100 are gauss (some older scanners), values near a
/// nominal strength become it.
pub(crate) fn nominal_tesla(recorded: f64) -> f64 {
    let t = if recorded > 100.0 { recorded / 10_000.0 } else { recorded };
    NOMINAL_TESLA.iter().copied().find(|n| (t - n).abs() <= 0.05 * n).unwrap_or(t)
}

fn cross_sectional(m: Modality) -> bool {
    matches!(m, Modality::Ct | Modality::Mr | Modality::Pt | Modality::Nm)
}

struct Out {
    findings: Vec<Finding>,
}

impl Out {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        severity: Severity,
        rule: Rule,
        spec: Option<&SeriesSpec>,
        view: Option<&SeriesView>,
        expected: impl Into<String>,
        found: impl Into<String>,
        message: String,
    ) {
        self.findings.push(Finding {
            severity,
            rule,
            charter_series_id: spec.map(|s| s.id.clone()),
            series_instance_uid: view.map(|v| v.uid().to_string()),
            expected: expected.into(),
            found: found.into(),
            message,
        });
    }
}

/// One series checked against its charter series.
struct Subject<'a, 'c> {
    view: &'a SeriesView<'a>,
    exp: Expected<'c>,
    label: String,
}

impl Subject<'_, '_> {
    fn k(&self) -> &AcquisitionConstraints {
        &self.exp.spec.constraints
    }
    fn error(&self, out: &mut Out, rule: Rule, expected: impl Into<String>, found: impl Into<String>, message: String) {
        out.push(Severity::Error, rule, Some(self.exp.spec), Some(self.view), expected, found, message);
    }
    fn warn(&self, out: &mut Out, rule: Rule, expected: impl Into<String>, found: impl Into<String>, message: String) {
        out.push(Severity::Warning, rule, Some(self.exp.spec), Some(self.view), expected, found, message);
    }
}

/// Evaluates one visit of one subject against the charter.
///
/// - `visit_id`: the charter visit (Clinical Trial Time Point ID); an ID not in the schedule is
///   checked as an unscheduled visit: every charter series may appear, none is required.
/// - `window`: the visit's window in the subject's calendar; None skips the date check.
/// - `baseline`: the subject's baseline visit, for `same_scanner_as_baseline`, `baseline_tolerance`
///   and the `one_of` choice; None when this is the baseline or it is not available.
///
/// Never fails: missing or odd facts become findings.
pub fn evaluate_visit(
    charter: &Charter,
    visit_id: &str,
    window: Option<VisitWindow>,
    facts: &VisitFacts,
    baseline: Option<&VisitFacts>,
) -> QcResult {
    let mut out = Out { findings: Vec::new() };
    let schedule = charter.scheduled_visits();
    let visit = schedule.iter().find(|v| v.id == visit_id);
    let visit_name = visit.map_or_else(|| format!("visit {visit_id}"), |v| v.label.clone());
    if visit.is_none() {
        let allowed = charter.schedule.unscheduled_visits_allowed;
        let (severity, tail) = if allowed {
            (
                Severity::Warning,
                "It is checked as an unscheduled visit: every charter series may appear, none is required.",
            )
        } else {
            (
                Severity::Error,
                "The charter does not allow unscheduled visits: check the time point the images were sent for.",
            )
        };
        out.push(
            severity,
            Rule::Visit,
            None,
            None,
            "a visit of the charter's schedule",
            visit_id,
            format!("Visit '{visit_id}' is not in the charter's schedule. {tail}"),
        );
    }

    let expected = expected_series(charter, visit);
    let others: Vec<&SeriesSpec> = charter
        .imaging
        .iter()
        .flat_map(|r| r.series.iter())
        .filter(|s| !expected.iter().any(|e| e.spec.id == s.id))
        .collect();
    // A series without instances was not received: it is left out.
    let views: Vec<SeriesView> = facts.series.iter().map(SeriesView::new).filter(|v| !v.images.is_empty()).collect();
    let assignments = identify::assign(&expected, &others, &views);

    let baseline_views: Vec<SeriesView> = baseline
        .map(|b| b.series.iter().map(SeriesView::new).filter(|v| !v.images.is_empty()).collect())
        .unwrap_or_default();
    let all_series = expected_series(charter, None);
    let baseline_assignments = identify::assign(&all_series, &[], &baseline_views);
    let is_baseline_visit = visit.is_some_and(|v| v.baseline);
    let base = Baseline {
        views: &baseline_views,
        assignments: &baseline_assignments,
        all: &all_series,
        given: baseline.is_some(),
    };

    if let Some(w) = window {
        check_dates(charter, &views, &visit_name, w, &mut out);
    }

    // one_of: which alternative this visit used.
    let primary = visit
        .filter(|v| v.imaging_rule == ImagingRule::OneOf)
        .map(|v| choose_alternative(v, &expected, &assignments, &base, &mut out));

    // The first series (by Series Number) taken for each charter series; later ones are repeats.
    let mut first_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_number: Vec<usize> = (0..views.len()).collect();
    by_number.sort_by_key(|&k| (views[k].number.unwrap_or(i64::MAX), k));
    for k in by_number {
        if let Some(e) = assignments[k].expected {
            first_of.entry(e).or_insert(k);
        }
    }
    for (k, (view, a)) in views.iter().zip(&assignments).enumerate() {
        match a.expected {
            Some(e) => {
                let exp = expected[e];
                let subject = Subject { view, exp, label: view.label(Some(exp.spec)) };
                identification_findings(&subject, a, &expected, &views, k, &first_of, &mut out);
                check_series(&subject, &base, is_baseline_visit, &mut out);
            }
            None => unexpected(view, a, &visit_name, &mut out),
        }
        generic_checks(view, a.expected.map(|e| expected[e].spec), &mut out);
    }

    // Required series not received.
    let unidentified = assignments.iter().filter(|a| a.expected.is_none() && a.elsewhere.is_none()).count();
    for (e, exp) in expected.iter().enumerate() {
        let in_play = match &primary {
            Some(Some(req)) => exp.requirement.id == *req,
            Some(None) => false,
            None => true,
        };
        if !exp.required || !in_play || assignments.iter().any(|a| a.expected == Some(e)) {
            continue;
        }
        let hint = if unidentified > 0 {
            format!(
                " ({} received could not be identified; if one of them is this series, its description may have been removed during de-identification.)",
                count(unidentified, "series", "series")
            )
        } else {
            String::new()
        };
        out.push(
            Severity::Error,
            Rule::RequiredSeries,
            Some(exp.spec),
            None,
            exp.spec.description.clone(),
            "not received",
            format!(
                "Required series '{}' ({}) was not received for {visit_name}. Acquire it as the charter describes and send it.{hint}",
                exp.spec.description, exp.spec.id
            ),
        );
    }

    let series = views
        .iter()
        .zip(&assignments)
        .map(|(v, a)| SeriesMatch {
            series_instance_uid: v.uid().to_string(),
            charter_series_id: a.expected.map(|e| expected[e].spec.id.clone()),
            identified_by: a.by,
            instances: v.images.len(),
        })
        .collect();
    let verdict = Verdict::of(&out.findings);
    QcResult { visit_id: visit_id.to_string(), verdict, findings: out.findings, series }
}

/// The series a visit expects; every charter series (none required) for an unknown visit.
fn expected_series<'c>(charter: &'c Charter, visit: Option<&ScheduledVisit>) -> Vec<Expected<'c>> {
    let mut out = Vec::new();
    match visit {
        Some(v) => {
            for rid in &v.imaging {
                let Some(requirement) = charter.imaging_requirement(rid) else { continue };
                for spec in &requirement.series {
                    if v.series.is_empty() || v.series.contains(&spec.id) {
                        out.push(Expected { requirement, spec, required: spec.required });
                    }
                }
            }
        }
        None => {
            for requirement in &charter.imaging {
                for spec in &requirement.series {
                    out.push(Expected { requirement, spec, required: false });
                }
            }
        }
    }
    out
}

struct Baseline<'a, 'c> {
    views: &'a [SeriesView<'a>],
    assignments: &'a [Assignment<'c>],
    all: &'a [Expected<'c>],
    given: bool,
}

impl<'a> Baseline<'a, '_> {
    /// The baseline series taken for charter series `id`, else one of the same imaging requirement.
    fn series_for(&self, exp: &Expected) -> Option<&'a SeriesView<'a>> {
        let spec_of = |a: &Assignment| a.expected.map(|e| self.all[e]);
        let same = self.assignments.iter().position(|a| spec_of(a).is_some_and(|x| x.spec.id == exp.spec.id));
        let same_req =
            || self.assignments.iter().position(|a| spec_of(a).is_some_and(|x| x.requirement.id == exp.requirement.id));
        same.or_else(same_req).map(|k| &self.views[k])
    }

    /// The requirement among `alternatives` the baseline used most.
    fn choice(&self, alternatives: &[String]) -> Option<String> {
        let mut best: Option<(usize, &String)> = None;
        for alt in alternatives {
            let n = self
                .assignments
                .iter()
                .filter(|a| a.expected.is_some_and(|e| self.all[e].requirement.id == *alt))
                .count();
            if n > 0 && best.is_none_or(|(m, _)| n > m) {
                best = Some((n, alt));
            }
        }
        best.map(|(_, a)| a.clone())
    }
}

/// For a `one_of` visit: the requirement whose required series are checked (None when nothing of
/// any alternative was received: one finding says so).
fn choose_alternative(
    visit: &ScheduledVisit,
    expected: &[Expected],
    assignments: &[Assignment],
    base: &Baseline,
    out: &mut Out,
) -> Option<String> {
    let counts: Vec<(String, usize)> = visit
        .imaging
        .iter()
        .map(|rid| {
            let n =
                assignments.iter().filter(|a| a.expected.is_some_and(|e| expected[e].requirement.id == *rid)).count();
            (rid.clone(), n)
        })
        .collect();
    let used: Vec<&(String, usize)> = counts.iter().filter(|(_, n)| *n > 0).collect();
    let baseline_choice = if visit.baseline { None } else { base.choice(&visit.imaging) };
    let alternatives = visit.imaging.join(" or ");
    if used.is_empty() {
        out.push(
            Severity::Error,
            Rule::RequiredSeries,
            None,
            None,
            format!("one of: {alternatives}"),
            "none received",
            format!(
                "No images of {alternatives} were received for {}. The charter asks for one of them{}.",
                visit.label,
                baseline_choice.as_ref().map(|b| format!(" ({b}, as at baseline)")).unwrap_or_default()
            ),
        );
        return None;
    }
    let primary = match &baseline_choice {
        Some(b) if used.iter().any(|(r, _)| r == b) => b.clone(),
        _ => used.iter().max_by_key(|(_, n)| *n).map(|(r, _)| r.clone()).unwrap_or_default(),
    };
    if used.len() > 1 {
        let names: Vec<&str> = used.iter().map(|(r, _)| r.as_str()).collect();
        out.push(
            Severity::Warning,
            Rule::ImagingChoice,
            None,
            None,
            format!("one of: {alternatives}"),
            names.join(" and "),
            format!(
                "Images of {} were received for {}; the charter asks for one of them. QC checked {primary} for completeness.",
                names.join(" and "),
                visit.label
            ),
        );
    }
    if let Some(b) = baseline_choice.filter(|b| *b != primary) {
        out.push(
            Severity::Error,
            Rule::ImagingChoice,
            None,
            None,
            format!("{b}, as at baseline"),
            primary.clone(),
            format!(
                "This subject was imaged with {b} at baseline, but {} has {primary}. The charter asks for the same choice at every visit: image the subject with {b}.",
                visit.label
            ),
        );
    }
    Some(primary)
}

fn identification_findings(
    s: &Subject,
    a: &Assignment,
    expected: &[Expected],
    views: &[SeriesView],
    k: usize,
    first_of: &BTreeMap<usize, usize>,
    out: &mut Out,
) {
    let Some(e) = a.expected else { return };
    if a.by == IdentifiedBy::Choice {
        let ids: Vec<&str> = a.candidates.iter().map(|&c| expected[c].spec.id.as_str()).collect();
        s.warn(
            out,
            Rule::AmbiguousSeries,
            format!("one of {}", ids.join(", ")),
            s.exp.spec.id.clone(),
            format!(
                "{} fits several charter series ({}); QC took it for '{}' ({}). Check the assignment in QC review.",
                s.label,
                ids.join(", "),
                s.exp.spec.description,
                s.exp.spec.id
            ),
        );
    }
    if let Some(&first) = first_of.get(&e).filter(|&&first| first != k) {
        let other = views[first].label(Some(s.exp.spec));
        s.warn(
            out,
            Rule::RepeatedSeries,
            "one series",
            "more than one",
            format!(
                "{} is another series for '{}' ({}), already received as {other}. QC checked both; tell the core lab which one to read.",
                s.label, s.exp.spec.description, s.exp.spec.id
            ),
        );
    }
}

fn unexpected(view: &SeriesView, a: &Assignment, visit_name: &str, out: &mut Out) {
    let label = view.label(None);
    let message = match a.elsewhere {
        Some(spec) => format!(
            "{label} looks like the charter's '{}' ({}), which {visit_name} does not ask for. It is kept but not used for this visit.",
            spec.description, spec.id
        ),
        None if view.description.is_none() && view.protocol.is_none() => format!(
            "{label} matches none of the series {visit_name} asks for: its description is not available (de-identification removes it unless the charter's descriptor allow-list keeps it) and it has no Clinical Trial Series ID. Check it belongs to this visit."
        ),
        None => format!(
            "{label} matches none of the series {visit_name} asks for. Check it belongs to this visit; send only the series the charter asks for."
        ),
    };
    let found = view.description.map_or_else(|| "unidentified series".to_string(), |d| format!("'{d}'"));
    out.push(
        Severity::Warning,
        Rule::UnexpectedSeries,
        a.elsewhere,
        Some(view),
        "only the series the visit asks for",
        found,
        message,
    );
}

/// Date window: one finding per acquisition date outside it, one warning when no date is known.
fn check_dates(charter: &Charter, views: &[SeriesView], visit_name: &str, w: VisitWindow, out: &mut Out) {
    let header_dates_real = charter.deidentification.dates == DateHandling::Keep;
    let mut outside: BTreeMap<crate::charter::Date, Vec<&SeriesView>> = BTreeMap::new();
    let mut unknown: Vec<&SeriesView> = Vec::new();
    for v in views {
        let dates: Vec<crate::charter::Date> = v
            .images
            .iter()
            .filter_map(|i| i.acquisition_date.or_else(|| header_dates_real.then(|| i.header_dates.best()).flatten()))
            .collect();
        if dates.is_empty() {
            unknown.push(v);
        }
        let mut distinct = dates;
        distinct.sort();
        distinct.dedup();
        for d in distinct {
            if !w.contains(d) {
                outside.entry(d).or_default().push(v);
            }
        }
    }
    let expected = format!("{} to {}", w.opens, w.closes);
    for (date, vs) in &outside {
        let when = if *date < w.opens {
            format!(
                "{} before the {visit_name} window opened",
                count(date.days_until(w.opens).unsigned_abs() as usize, "day", "days")
            )
        } else {
            format!(
                "{} after the {visit_name} window closed",
                count(w.closes.days_until(*date).unsigned_abs() as usize, "day", "days")
            )
        };
        let who = if vs.len() == views.len() {
            "The images".to_string()
        } else {
            vs.iter().map(|v| v.label(None)).collect::<Vec<_>>().join(", ")
        };
        let view = (vs.len() == 1).then(|| vs[0]);
        out.push(
            Severity::Error,
            Rule::VisitWindow,
            None,
            view,
            expected.clone(),
            date.to_string(),
            format!(
                "{who} were acquired on {date}, {when} ({} to {}). Confirm the scan date; a scan outside the window is a protocol deviation to report.",
                w.opens, w.closes
            ),
        );
    }
    if !unknown.is_empty() {
        let who = if unknown.len() == views.len() {
            "the images".to_string()
        } else {
            unknown.iter().map(|v| v.label(None)).collect::<Vec<_>>().join(", ")
        };
        let view = (unknown.len() == 1).then(|| unknown[0]);
        out.push(
            Severity::Warning,
            Rule::VisitWindow,
            None,
            view,
            expected,
            "not known",
            format!(
                "The acquisition date of {who} is not known, so QC could not check the {visit_name} window ({} to {}).",
                w.opens, w.closes
            ),
        );
    }
}

fn check_series(s: &Subject, base: &Baseline, is_baseline_visit: bool, out: &mut Out) {
    let req = s.exp.requirement;
    let want = req.modality.as_str();
    match s.view.modality {
        None => s.warn(
            out,
            Rule::Modality,
            want,
            "not recorded",
            format!("{} has no Modality recorded; the charter asks for {want} of the {}.", s.label, req.body_region),
        ),
        Some(m) if !m.eq_ignore_ascii_case(want) => s.error(
            out,
            Rule::Modality,
            want,
            m,
            format!(
                "{} is {m}; the charter asks for {want} of the {}. Send the {want} series.",
                s.label, req.body_region
            ),
        ),
        Some(_) => {}
    }
    if !req.body_part_examined.is_empty() {
        let list = req.body_part_examined.join(", ");
        match s.view.body_part {
            None => s.warn(
                out,
                Rule::BodyPart,
                format!("one of {list}"),
                "not recorded",
                format!("{} has no Body Part Examined recorded; check that it covers the {}.", s.label, req.body_region),
            ),
            Some(b) if !req.body_part_examined.iter().any(|x| x.eq_ignore_ascii_case(b)) => s.warn(
                out,
                Rule::BodyPart,
                format!("one of {list}"),
                b,
                format!(
                    "{} is labelled body part '{b}'; the charter expects {list} ({}). Check the scan covers the {} and correct the label if it is wrong.",
                    s.label, req.body_region, req.body_region
                ),
            ),
            Some(_) => {}
        }
    }

    let thickness = s.view.stats(|i| i.slice_thickness_mm);
    if let Some(r) = &s.k().slice_thickness_mm {
        check_range(
            s,
            out,
            Rule::SliceThickness,
            r,
            thickness,
            Unit::Mm,
            |found| {
                format!(
                    "{} has {found} slices; the charter allows {}. Reconstruct at {} and resend.",
                    s.label,
                    range_text(r, Unit::Mm).trim_start_matches("exactly "),
                    fix_hint(r, Unit::Mm, "thicker", "thinner")
                )
            },
            "slice thickness",
        );
    }

    let geometry = if cross_sectional(req.modality) { Some(geometry::analyse(&s.view.images)) } else { None };
    let spacing = match &geometry {
        Some(Geometry::Stack(st)) => Some(st.spacing_mm),
        _ => s.view.stats(|i| i.spacing_between_slices_mm).map(|st| st.median),
    };
    if let Some(r) = &s.k().slice_spacing_mm {
        match spacing {
            None => s.warn(
                out,
                Rule::SliceSpacing,
                range_text(r, Unit::Mm),
                "not known",
                format!(
                    "The slice spacing of {} could not be determined (no usable slice positions or Spacing Between Slices); the charter allows {}.",
                    s.label,
                    range_text(r, Unit::Mm)
                ),
            ),
            Some(x) if !within(r, x) => s.error(
                out,
                Rule::SliceSpacing,
                range_text(r, Unit::Mm),
                with_unit(x, Unit::Mm),
                format!(
                    "{} has slices {} apart (centre to centre); the charter allows {}. Reconstruct with a spacing of {} and resend.",
                    s.label,
                    with_unit(x, Unit::Mm),
                    range_text(r, Unit::Mm),
                    fix_hint(r, Unit::Mm, "more", "less")
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some(r) = &s.k().slice_gap_mm {
        let expected = if r.max == Some(0.0) && r.min.is_none() {
            "no gap (contiguous slices)".to_string()
        } else {
            format!("gap {}", range_text(r, Unit::Mm))
        };
        match (spacing, thickness) {
            (Some(sp), Some(th)) => {
                let gap = sp - th.median;
                if !within(r, gap) {
                    let what = if gap < 0.0 {
                        format!("slices overlapping by {}", with_unit(-gap, Unit::Mm))
                    } else {
                        format!("a gap of {} between slices", with_unit(gap, Unit::Mm))
                    };
                    s.error(
                        out,
                        Rule::SliceGap,
                        expected.clone(),
                        format!("{} ({} slices {} apart)", with_unit(gap, Unit::Mm), num(th.median), with_unit(sp, Unit::Mm)),
                        format!(
                            "{} has {what} ({} mm slices {} apart); the charter allows {expected}. Reconstruct with the spacing equal to the slice thickness and resend.",
                            s.label,
                            num(th.median),
                            with_unit(sp, Unit::Mm)
                        ),
                    );
                }
            }
            _ => s.warn(
                out,
                Rule::SliceGap,
                expected.clone(),
                "not known",
                format!(
                    "The gap between slices of {} could not be determined (slice {} not known); the charter allows {expected}.",
                    s.label,
                    if spacing.is_none() { "spacing" } else { "thickness" }
                ),
            ),
        }
    }
    if let Some(g) = &geometry {
        geometry_findings(s, g, out);
    }

    if let Some(r) = &s.k().pixel_spacing_mm {
        let lo = s.view.stats(|i| i.pixel_spacing_mm.map(|p| p.row_mm.min(p.column_mm)));
        let hi = s.view.stats(|i| i.pixel_spacing_mm.map(|p| p.row_mm.max(p.column_mm)));
        let both = lo.zip(hi).map(|(a, b)| Stats { min: a.min, max: b.max, median: b.median, missing: a.missing });
        check_range(
            s,
            out,
            Rule::PixelSpacing,
            r,
            both,
            Unit::Mm,
            |found| {
                format!(
                    "{} has pixels of {found}; the charter allows {}. Reconstruct (field of view and matrix) so pixels are {} and resend.",
                    s.label,
                    range_text(r, Unit::Mm),
                    fix_hint(r, Unit::Mm, "larger", "smaller")
                )
            },
            "pixel spacing",
        );
    }
    if let Some(min) = s.k().matrix_min {
        let smallest = s.view.stats(|i| i.rows.zip(i.columns).map(|(r, c)| f64::from(r.min(c))));
        let expected = format!("at least {min} x {min}");
        match smallest {
            None => s.warn(
                out,
                Rule::Matrix,
                expected,
                "not recorded",
                format!(
                    "{} has no Rows/Columns recorded; the charter asks for a matrix of at least {min} x {min}.",
                    s.label
                ),
            ),
            Some(st) if st.min < f64::from(min) => {
                let example = s
                    .view
                    .images
                    .iter()
                    .filter_map(|i| i.rows.zip(i.columns))
                    .min_by_key(|(r, c)| *r.min(c))
                    .map(|(r, c)| format!("{r} x {c}"))
                    .unwrap_or_default();
                s.error(
                    out,
                    Rule::Matrix,
                    expected,
                    example.clone(),
                    format!(
                        "{} has a {example} matrix; the charter asks for at least {min} x {min}. Reconstruct at {min} x {min} or larger and resend.",
                        s.label
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(r) = &s.k().kvp {
        check_range(
            s,
            out,
            Rule::Kvp,
            r,
            s.view.stats(|i| i.kvp),
            Unit::Kv,
            |found| {
                format!(
                    "{} was acquired at {found}; the charter allows {}. The tube voltage cannot be changed after the scan: use {} from the next visit on; QC review decides whether these images can be used.",
                    s.label,
                    range_text(r, Unit::Kv),
                    range_text(r, Unit::Kv)
                )
            },
            "tube voltage (KVP)",
        );
    }
    check_contrast(s, out);
    if let Some(r) = &s.k().field_strength_t {
        let t = s.view.stats(|i| i.magnetic_field_strength_t.map(nominal_tesla));
        check_range(
            s,
            out,
            Rule::FieldStrength,
            r,
            t,
            Unit::Tesla,
            |found| {
                format!(
                    "{} was acquired at {found}; the charter allows {}. Scan this subject on a scanner of {}.",
                    s.label,
                    range_text(r, Unit::Tesla),
                    range_text(r, Unit::Tesla).trim_start_matches("exactly ")
                )
            },
            "magnetic field strength",
        );
    }
    if let Some(want) = s.k().mr_sequence {
        let want_name = mr::name(want);
        match mr::classify(s.view) {
            Some((got, _)) if got == want => {}
            Some((got, evidence)) if mr::from_descriptors(s.view) || mr::physics_decides(want) => s.error(
                out,
                Rule::MrSequence,
                want_name,
                format!("{} ({evidence})", mr::name(got)),
                format!(
                    "{} looks like a {} sequence ({evidence}); the charter asks for a {want_name} sequence. Send the {want_name} series acquired as the charter describes.",
                    s.label,
                    mr::name(got)
                ),
            ),
            Some((got, evidence)) => s.warn(
                out,
                Rule::MrSequence,
                want_name,
                format!("{} ({evidence})", mr::name(got)),
                format!(
                    "QC could not confirm that {} is a {want_name} sequence: its parameters ({evidence}) look {} and its description does not say. QC review will check it.",
                    s.label,
                    mr::name(got)
                ),
            ),
            None => s.warn(
                out,
                Rule::MrSequence,
                want_name,
                "not determinable",
                format!(
                    "QC could not tell which kind of MR sequence {} is (no usable description or sequence parameters); the charter asks for {want_name}. QC review will check it.",
                    s.label
                ),
            ),
        }
    }
    if let Some(want) = s.k().mr_acquisition {
        let want = want.as_str();
        match s.view.text(|i| &i.mr_acquisition_type) {
            None => s.warn(
                out,
                Rule::MrAcquisition,
                want,
                "not recorded",
                format!("{} has no MR Acquisition Type recorded; the charter asks for a {want} acquisition.", s.label),
            ),
            Some(got) if !got.eq_ignore_ascii_case(want) => s.error(
                out,
                Rule::MrAcquisition,
                want,
                got,
                format!(
                    "{} is a {got} acquisition; the charter asks for {want}. A {got} acquisition cannot be turned into {want}: acquire it as {want} at the next scan.",
                    s.label
                ),
            ),
            Some(_) => {}
        }
    }
    if !is_baseline_visit {
        check_baseline(s, base, out);
    }
}

/// A numeric range check: warning when not recorded, error when any image is outside.
#[allow(clippy::too_many_arguments)]
fn check_range(
    s: &Subject,
    out: &mut Out,
    rule: Rule,
    r: &Range,
    stats: Option<Stats>,
    unit: Unit,
    message: impl Fn(&str) -> String,
    what: &str,
) {
    match stats {
        None => s.warn(
            out,
            rule,
            range_text(r, unit),
            "not recorded",
            format!(
                "{} has no {what} recorded; the charter allows {}. Check it before the images are read.",
                s.label,
                range_text(r, unit)
            ),
        ),
        Some(st) if !within(r, st.min) || !within(r, st.max) => {
            let found = span_text(st.min, st.max, unit);
            s.error(out, rule, range_text(r, unit), found.clone(), message(&found));
        }
        Some(_) => {}
    }
}

fn geometry_findings(s: &Subject, g: &Geometry, out: &mut Out) {
    match g {
        Geometry::NotCheckable(reason) => s.warn(
            out,
            Rule::SliceGeometry,
            "evenly spaced slices without gaps",
            "not checkable",
            format!("QC could not check {} for missing slices: {reason}. QC review will check it.", s.label),
        ),
        Geometry::OnePosition { duplicate_images } => {
            if *duplicate_images > 0 {
                duplicate_finding(s, *duplicate_images, 1, out);
            }
        }
        Geometry::Stack(st) => {
            if !st.gaps.is_empty() {
                let missing: usize = st.gaps.iter().map(|g| g.missing).sum();
                let image =
                    |n: Option<i64>| n.map_or_else(|| "an unnumbered image".to_string(), |n| format!("image {n}"));
                let mut details: Vec<String> = st
                    .gaps
                    .iter()
                    .take(5)
                    .map(|g| {
                        format!(
                            "{} between {} and {} (a {} step)",
                            g.missing,
                            image(g.before_instance),
                            image(g.after_instance),
                            with_unit(g.step_mm, Unit::Mm)
                        )
                    })
                    .collect();
                if st.gaps.len() > 5 {
                    details.push(format!("and {} more gaps", st.gaps.len() - 5));
                }
                s.error(
                    out,
                    Rule::MissingSlices,
                    format!("slices every {} without gaps", with_unit(st.spacing_mm, Unit::Mm)),
                    format!("{} missing", count(missing, "slice", "slices")),
                    format!(
                        "{} is missing {} where the slices are {} apart: {}. Resend the complete series.",
                        s.label,
                        count(missing, "slice", "slices"),
                        with_unit(st.spacing_mm, Unit::Mm),
                        details.join("; ")
                    ),
                );
            }
            if !st.uneven.is_empty() {
                let lo = st.uneven.iter().map(|u| u.step_mm).fold(f64::INFINITY, f64::min);
                let hi = st.uneven.iter().map(|u| u.step_mm).fold(f64::NEG_INFINITY, f64::max);
                let first = &st.uneven[0];
                let at = match (first.before_instance, first.after_instance) {
                    (Some(a), Some(b)) => format!(", first between images {a} and {b}"),
                    _ => String::new(),
                };
                s.warn(
                    out,
                    Rule::UnevenSpacing,
                    format!("every step {}", with_unit(st.spacing_mm, Unit::Mm)),
                    format!("{} of {}", count(st.uneven.len(), "step", "steps"), span_text(lo, hi, Unit::Mm)),
                    format!(
                        "{} has uneven slice spacing: {} of {} instead of {}{at}. Check the reconstruction and resend if slices were dropped or added.",
                        s.label,
                        count(st.uneven.len(), "step", "steps"),
                        span_text(lo, hi, Unit::Mm),
                        with_unit(st.spacing_mm, Unit::Mm)
                    ),
                );
            }
            if st.duplicate_images > 0 {
                duplicate_finding(s, st.duplicate_images, st.duplicate_positions, out);
            }
        }
    }
}

fn duplicate_finding(s: &Subject, images: usize, positions: usize, out: &mut Out) {
    s.warn(
        out,
        Rule::DuplicateSlices,
        "one image per slice position",
        format!("{} repeating a position", count(images, "image", "images")),
        format!(
            "{} has {} at the same position as another image ({}). Check whether the series was sent twice or mixes reconstructions, and resend a clean series.",
            s.label,
            count(images, "image", "images"),
            count(positions, "position", "positions")
        ),
    );
}

fn check_contrast(s: &Subject, out: &mut Out) {
    let rule = s.k().contrast;
    let agent = rule.map(|r| r.agent).or(match s.exp.spec.identify.contrast {
        Some(true) => Some(ContrastAgent::Required),
        Some(false) => Some(ContrastAgent::Forbidden),
        None => None,
    });
    let Some(agent) = agent else { return };
    if agent == ContrastAgent::Optional && rule.is_none_or(|r| r.phase.is_none() && r.min_delay_minutes.is_none()) {
        return;
    }
    let evidence = contrast::presence(s.view);
    let phase_note = rule.and_then(|r| r.phase).map(|p| format!(" ({})", contrast::phase_text(p))).unwrap_or_default();
    match (agent, evidence.presence) {
        (ContrastAgent::Required, Presence::Absent) => s.error(
            out,
            Rule::Contrast,
            format!("with contrast{phase_note}"),
            "no contrast",
            format!(
                "{} shows no contrast: {}. The charter requires contrast{phase_note}. If contrast was given, record it in the scanner's contrast fields and resend; otherwise the scan has to be repeated with contrast.",
                s.label, evidence.evidence
            ),
        ),
        (ContrastAgent::Forbidden, Presence::Present) => s.error(
            out,
            Rule::Contrast,
            "without contrast",
            "with contrast",
            format!(
                "{} was acquired with contrast ({}); the charter asks for this series without contrast. Send the series acquired before contrast was given.",
                s.label, evidence.evidence
            ),
        ),
        (ContrastAgent::Required | ContrastAgent::Forbidden, Presence::Unknown) => s.warn(
            out,
            Rule::Contrast,
            if agent == ContrastAgent::Required { format!("with contrast{phase_note}") } else { "without contrast".into() },
            "not determinable",
            format!(
                "QC could not tell whether {} was acquired with contrast: {}. The charter asks for it {}; QC review will check the images.",
                s.label,
                evidence.evidence,
                if agent == ContrastAgent::Required { "with contrast" } else { "without contrast" }
            ),
        ),
        _ => {}
    }
    if evidence.presence == Presence::Absent {
        return;
    }
    let Some(rule) = rule else { return };
    if let Some(want) = rule.phase {
        let want_text = contrast::phase_text(want);
        match contrast::phase(s.view) {
            PhaseEvidence::Known(got, _) if got == want => {}
            PhaseEvidence::Known(got, how) => s.error(
                out,
                Rule::ContrastPhase,
                want_text.clone(),
                format!("{} ({how})", contrast::phase_text(got)),
                format!(
                    "{} looks like the {} ({how}); the charter asks for the {want_text}. Send the {want_text} series.",
                    s.label,
                    contrast::phase_text(got)
                ),
            ),
            PhaseEvidence::Unknown(why) => s.warn(
                out,
                Rule::ContrastPhase,
                want_text.clone(),
                "not determinable",
                format!(
                    "QC could not determine the contrast phase of {}: {why}. The charter asks for the {want_text}; QC review will check the images.",
                    s.label
                ),
            ),
        }
    }
    if let Some(minutes) = rule.min_delay_minutes {
        let expected = format!("at least {minutes} min after injection");
        match contrast::delay_s(s.view) {
            Some(d) if d + EPSILON < f64::from(minutes) * 60.0 => {
                let found = if d < 0.0 {
                    "before the injection".to_string()
                } else {
                    format!("{} min {} s after injection", (d / 60.0).floor(), (d % 60.0).round())
                };
                s.error(
                    out,
                    Rule::ContrastDelay,
                    expected,
                    found.clone(),
                    format!(
                        "{} was acquired {found}; the charter asks for at least {minutes} minutes between the contrast injection and this series. Acquire it later after injection at the next scan.",
                        s.label
                    ),
                );
            }
            Some(_) => {}
            None => s.warn(
                out,
                Rule::ContrastDelay,
                expected,
                "not known",
                format!(
                    "QC could not check the time between contrast injection and {} (Contrast/Bolus Start Time or Acquisition Time not available); the charter asks for at least {minutes} minutes.",
                    s.label
                ),
            ),
        }
    }
}

fn same_text(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => true,
    }
}

fn scanner_text(v: &SeriesView) -> String {
    let mut parts = vec![
        [v.text(|i| &i.manufacturer), v.text(|i| &i.manufacturer_model_name)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
    ];
    if let Some(station) = v.text(|i| &i.station_name) {
        parts.push(format!("station {station}"));
    }
    if let Some(serial) = v.text(|i| &i.device_serial_number) {
        parts.push(format!("serial {serial}"));
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() { "an unrecorded scanner".to_string() } else { parts.join(", ") }
}

fn check_baseline(s: &Subject, base: &Baseline, out: &mut Out) {
    let k = s.k();
    if !k.same_scanner_as_baseline && k.baseline_tolerance.is_none() {
        return;
    }
    let Some(b) = base.series_for(&s.exp) else {
        let why = if base.given { "has no matching series" } else { "is not available" };
        let rules = [
            (k.same_scanner_as_baseline, Rule::SameScanner, "the same scanner as at baseline"),
            (k.baseline_tolerance.is_some(), Rule::BaselineParameters, "parameters comparable to baseline"),
        ];
        for (on, rule, expected) in rules {
            if on {
                s.warn(
                    out,
                    rule,
                    expected,
                    "no baseline",
                    format!("The subject's baseline {why}, so QC could not compare {} with it.", s.label),
                );
            }
        }
        return;
    };
    if k.same_scanner_as_baseline {
        let now = s.view;
        let fields = [
            ("manufacturer", now.text(|i| &i.manufacturer), b.text(|i| &i.manufacturer)),
            ("model", now.text(|i| &i.manufacturer_model_name), b.text(|i| &i.manufacturer_model_name)),
            ("station", now.text(|i| &i.station_name), b.text(|i| &i.station_name)),
            ("serial number", now.text(|i| &i.device_serial_number), b.text(|i| &i.device_serial_number)),
        ];
        let differ: Vec<&str> = fields.iter().filter(|(_, a, c)| !same_text(*a, *c)).map(|(n, _, _)| *n).collect();
        let unrecorded: Vec<&str> =
            fields[..2].iter().filter(|(_, a, c)| a.is_none() || c.is_none()).map(|(n, _, _)| *n).collect();
        if !differ.is_empty() {
            s.error(
                out,
                Rule::SameScanner,
                scanner_text(b),
                scanner_text(now),
                format!(
                    "{} was acquired on {}; the subject's baseline was on {} ({} differ). The charter asks for the baseline scanner at every visit: scan this subject on it.",
                    s.label,
                    scanner_text(now),
                    scanner_text(b),
                    differ.join(", ")
                ),
            );
        } else if !unrecorded.is_empty() {
            s.warn(
                out,
                Rule::SameScanner,
                scanner_text(b),
                scanner_text(now),
                format!(
                    "QC could not confirm that {} comes from the baseline scanner: the {} is not recorded.",
                    s.label,
                    unrecorded.join(" and ")
                ),
            );
        }
    }
    let Some(tol) = k.baseline_tolerance else { return };
    let median = |v: &SeriesView, f: fn(&InstanceFacts) -> Option<f64>| v.stats(f).map(|x| x.median);
    let thickness: fn(&InstanceFacts) -> Option<f64> = |i| i.slice_thickness_mm;
    let pixel: fn(&InstanceFacts) -> Option<f64> = |i| i.pixel_spacing_mm.map(|p| p.row_mm.max(p.column_mm));
    let kvp: fn(&InstanceFacts) -> Option<f64> = |i| i.kvp;
    let tesla: fn(&InstanceFacts) -> Option<f64> = |i| i.magnetic_field_strength_t.map(nominal_tesla);
    let params = [
        Param {
            tolerance: tol.slice_thickness_mm,
            what: "slice thickness",
            unit: Unit::Mm,
            value: thickness,
            fix: "Reconstruct with the baseline's slice thickness and resend.",
        },
        Param {
            tolerance: tol.pixel_spacing_mm,
            what: "pixel spacing",
            unit: Unit::Mm,
            value: pixel,
            fix: "Reconstruct with the baseline's field of view and matrix and resend.",
        },
        Param {
            tolerance: tol.kvp,
            what: "tube voltage",
            unit: Unit::Kv,
            value: kvp,
            fix: "Use the baseline's tube voltage from the next visit on.",
        },
        Param {
            tolerance: tol.field_strength_t,
            what: "field strength",
            unit: Unit::Tesla,
            value: tesla,
            fix: "Scan this subject at the baseline's field strength.",
        },
    ];
    for Param { tolerance, what, unit, value, fix } in params {
        let (now, then) = (median(s.view, value), median(b, value));
        let Some(tolerance) = tolerance else { continue };
        let allowed = if tolerance == 0.0 {
            "the same as at baseline".to_string()
        } else {
            format!("within {} of baseline", with_unit(tolerance, unit))
        };
        match (now, then) {
            (Some(now), Some(then)) if (now - then).abs() > tolerance + EPSILON => s.error(
                out,
                Rule::BaselineParameters,
                format!("{what} {allowed} ({})", with_unit(then, unit)),
                with_unit(now, unit),
                format!(
                    "{} has a {what} of {}; the subject's baseline had {}. The charter allows {}. {fix}",
                    s.label,
                    with_unit(now, unit),
                    with_unit(then, unit),
                    if tolerance == 0.0 {
                        "no difference".to_string()
                    } else {
                        format!("a difference of at most {}", with_unit(tolerance, unit))
                    }
                ),
            ),
            (Some(_), Some(_)) => {}
            (now, _) => s.warn(
                out,
                Rule::BaselineParameters,
                format!("{what} {allowed}"),
                "not recorded",
                format!(
                    "QC could not compare the {what} of {} with baseline: it is not recorded {}.",
                    s.label,
                    if now.is_none() { "in this series" } else { "in the baseline series" }
                ),
            ),
        }
    }
}

/// A parameter compared with baseline.
struct Param {
    tolerance: Option<f64>,
    what: &'static str,
    unit: Unit,
    value: fn(&InstanceFacts) -> Option<f64>,
    fix: &'static str,
}

/// Checks every stored series gets, expected or not: de-identification, burned-in PHI, pixel data.
fn generic_checks(view: &SeriesView, spec: Option<&SeriesSpec>, out: &mut Out) {
    let label = view.label(spec);
    let total = view.images.len();
    let not_removed = view.images.iter().filter(|i| !i.patient_identity_removed).count();
    let no_codes =
        view.images.iter().filter(|i| !i.deidentification_method_codes.iter().any(|c| c.trim() == "113100")).count();
    if not_removed > 0 || no_codes > 0 {
        let mut what = Vec::new();
        if not_removed > 0 {
            what.push(format!("{not_removed} of {total} without Patient Identity Removed = YES"));
        }
        if no_codes > 0 {
            what.push(format!("{no_codes} of {total} without the Basic Profile method code 113100"));
        }
        out.push(
            Severity::Error,
            Rule::Deidentification,
            spec,
            Some(view),
            "Patient Identity Removed = YES and method code 113100",
            what.join("; "),
            format!(
                "{label} is not marked as de-identified ({}). These images must not be released: de-identify them again.",
                what.join("; ")
            ),
        );
    }

    let mut yes = 0;
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    let mut not_applied: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &view.images {
        if i.burned_in_flags.contains(&BurnedInFlag::AnnotationYes) {
            yes += 1;
        }
        for f in &i.burned_in_flags {
            match f {
                BurnedInFlag::AnnotationYes => {}
                BurnedInFlag::AnnotationUnknown { reason } => *unknown.entry(reason.as_str()).or_insert(0) += 1,
                BurnedInFlag::MaskNotApplied { reason } => *not_applied.entry(reason.as_str()).or_insert(0) += 1,
            }
        }
    }
    if yes > 0 {
        out.push(
            Severity::Error,
            Rule::BurnedInPhi,
            spec,
            Some(view),
            "no burned-in annotation",
            format!("{yes} of {total} images with Burned In Annotation = YES"),
            format!(
                "{yes} of {total} images of {label} are marked as having burned-in annotation, which may show patient details. They need a charter pixel mask or manual cleaning before release."
            ),
        );
    }
    for (reason, n) in not_applied {
        out.push(
            Severity::Error,
            Rule::BurnedInPhi,
            spec,
            Some(view),
            "charter pixel mask applied",
            format!("{n} of {total} images not masked: {reason}"),
            format!(
                "The charter's pixel mask could not be applied to {n} of {total} images of {label} ({reason}); burned-in patient details may remain. Clean them before release."
            ),
        );
    }
    for (reason, n) in unknown {
        out.push(
            Severity::Warning,
            Rule::BurnedInPhi,
            spec,
            Some(view),
            "no burned-in patient details",
            format!("{n} of {total} images may carry burned-in text ({reason})"),
            format!("{n} of {total} images of {label} may carry burned-in text ({reason}). Check the pixels for patient details before release."),
        );
    }

    match &view.facts.pixel_decode {
        PixelDecode::Failed { message } => out.push(
            Severity::Error,
            Rule::PixelData,
            spec,
            Some(view),
            "decodable pixel data",
            message.clone(),
            format!(
                "The image data of {label} could not be decoded ({message}). Resend the series; if it fails again, export it uncompressed."
            ),
        ),
        PixelDecode::Unsupported { message } => out.push(
            Severity::Warning,
            Rule::PixelData,
            spec,
            Some(view),
            "decodable pixel data",
            message.clone(),
            format!(
                "{label}: {message}. The images are stored as sent; readers need a viewer that can open them. Prefer uncompressed or JPEG 2000 for future sends."
            ),
        ),
        PixelDecode::Ok | PixelDecode::NotChecked => {}
    }
}
