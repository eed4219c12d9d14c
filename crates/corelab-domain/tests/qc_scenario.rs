//! A mixed-site scenario on the shipped oncology charter (CT chest/abdomen/pelvis, RECIST): four
//! sites send their week-8 visit. One reconstructs 7 mm slices, one skips two slices mid-series,
//! one scans without contrast, one scans late. QC must report exactly those problems and nothing
//! else; every baseline passes.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod qc_support;

use corelab_domain::charter::{Date, VisitCalendar};
use corelab_domain::qc::{
    Finding, IdentifiedBy, PixelDecode, Rule, SeriesFacts, Severity, Verdict, VisitFacts, VisitWindow, evaluate_visit,
};
use qc_support::*;

const ONCOLOGY: &str = include_str!("../../../charters/oncology-ct-recist.toml");

/// The oncology charter with a fourth site.
fn oncology_four_sites() -> String {
    let anchor = "[subjects]";
    assert_eq!(ONCOLOGY.matches(anchor).count(), 1);
    ONCOLOGY.replacen(
        anchor,
        "[[sites]]\nid = \"301\"\nname = \"Karolinska\"\ncountry = \"SE\"\nae_titles = [\"KS_CT\"]\n\n[subjects]",
        1,
    )
}

/// A conforming portal venous CAP series: 100 slices of 5 mm, contiguous, 0.78 mm pixels, 512 x 512,
/// 120 kV, iohexol IV.
fn cap(uid: &str, day: Date, manufacturer: &str, model: &str) -> SeriesFacts {
    let mut s = ct_series(uid, "CAP PORTAL VENOUS 5mm", 100, day);
    each(&mut s, |i| {
        i.body_part_examined = Some("CHEST_TO_PELVIS".into());
        i.manufacturer = Some(manufacturer.into());
        i.manufacturer_model_name = Some(model.into());
        i.station_name = None;
        i.device_serial_number = None;
    });
    s
}

/// The optional lung-kernel series: 1.25 mm slices every 1.25 mm.
fn lung(uid: &str, day: Date) -> SeriesFacts {
    let mut s = ct_series(uid, "CHEST LUNG 1.25mm", 240, day);
    each(&mut s, |i| {
        i.series_number = Some(3);
        i.body_part_examined = Some("CHEST".into());
        i.slice_thickness_mm = Some(1.25);
        i.spacing_between_slices_mm = Some(1.25);
    });
    spaced(&mut s, 1.25);
    s
}

struct Subject {
    id: &'static str,
    randomized: &'static str,
    manufacturer: &'static str,
    model: &'static str,
    lung_series: bool,
    /// Edits the week-8 visit to carry the site's problem.
    problem: fn(&mut VisitFacts, VisitWindow),
    /// The findings the problem must cause: (rule, severity, words of the message).
    expect: &'static [(Rule, Severity, &'static str)],
}

#[test]
fn four_sites_exactly_their_findings() {
    let charter = charter(&oncology_four_sites());
    let subjects = [
        Subject {
            id: "101-001",
            randomized: "2026-01-12",
            manufacturer: "SIEMENS",
            model: "SOMATOM Force",
            lung_series: true,
            problem: |v, _| {
                // 7 mm reconstruction: 72 slices 7 mm apart.
                let uid = v.series[0].series_instance_uid.clone();
                let day = v.series[0].instances[0].acquisition_date.unwrap();
                let mut s = ct_series(&uid, "CAP PORTAL VENOUS 7mm", 72, day);
                each(&mut s, |i| {
                    i.body_part_examined = Some("CHEST_TO_PELVIS".into());
                    i.slice_thickness_mm = Some(7.0);
                    i.spacing_between_slices_mm = Some(7.0);
                    i.manufacturer_model_name = Some("SOMATOM Force".into());
                    i.station_name = None;
                    i.device_serial_number = None;
                });
                spaced(&mut s, 7.0);
                v.series[0] = s;
            },
            // The 7 mm slices break the 5 mm limit and, against the subject's 5 mm baseline, the
            // 1 mm baseline tolerance: both are what 7 mm slices mean under this charter.
            expect: &[
                (
                    Rule::SliceThickness,
                    Severity::Error,
                    "has 7.0 mm slices; the charter allows at most 5.0 mm. Reconstruct at 5.0 mm or thinner and resend.",
                ),
                (
                    Rule::BaselineParameters,
                    Severity::Error,
                    "slice thickness of 7.0 mm; the subject's baseline had 5.0 mm",
                ),
            ],
        },
        Subject {
            id: "102-001",
            randomized: "2026-02-02",
            manufacturer: "GE MEDICAL SYSTEMS",
            model: "Revolution CT",
            lung_series: false,
            problem: |v, _| v.series[0].instances.retain(|i| !matches!(i.instance_number, Some(48 | 49))),
            expect: &[(
                Rule::MissingSlices,
                Severity::Error,
                "is missing 2 slices where the slices are 5.0 mm apart: 2 between image 47 and image 50",
            )],
        },
        Subject {
            id: "201-001",
            randomized: "2026-01-20",
            manufacturer: "Philips",
            model: "Brilliance 64",
            lung_series: true,
            problem: |v, _| {
                each(&mut v.series[0], |i| {
                    i.contrast_agent = None;
                    i.contrast_route = None;
                    i.contrast_start_time_s = None;
                })
            },
            expect: &[(
                Rule::Contrast,
                Severity::Error,
                "shows no contrast: no contrast agent is recorded in the images. The charter requires contrast (portal venous phase).",
            )],
        },
        Subject {
            id: "301-001",
            randomized: "2026-01-05",
            manufacturer: "Canon Medical Systems",
            model: "Aquilion ONE",
            lung_series: false,
            problem: |v, w| {
                let late = w.closes.add_days(3);
                for s in &mut v.series {
                    each(s, |i| i.acquisition_date = Some(late));
                }
            },
            expect: &[(
                Rule::VisitWindow,
                Severity::Error,
                "The images were acquired on 2026-03-12, 3 days after the Week 8 window closed (2026-02-23 to 2026-03-09)",
            )],
        },
    ];
    assert_eq!(subjects.iter().map(|s| &s.id[..3]).collect::<Vec<_>>(), ["101", "102", "201", "301"]);
    let mut failures = Vec::new();
    for (n, s) in subjects.iter().enumerate() {
        assert!(charter.site_for_subject(s.id).is_some(), "{} belongs to a charter site", s.id);
        let calendar = VisitCalendar::new(&charter, date(s.randomized));
        let bl = calendar.visit("BL").unwrap();
        let w8 = calendar.visit("W8").unwrap();
        let visit = |day: Date, k: usize| {
            let mut series = vec![cap(&format!("2.25.{n}.{k}.1"), day, s.manufacturer, s.model)];
            if s.lung_series {
                series.push(lung(&format!("2.25.{n}.{k}.2"), day));
            }
            VisitFacts { series }
        };
        let baseline = visit(bl.expected_date.add_days(-3), 0);
        let mut week8 = visit(w8.expected_date.add_days(2), 1);
        (s.problem)(&mut week8, VisitWindow::from(w8));

        let base_result = evaluate_visit(&charter, "BL", Some(VisitWindow::from(bl)), &baseline, None);
        if base_result.verdict != Verdict::Pass {
            failures.push(format!("{} baseline: {:#?}", s.id, base_result.findings));
        }
        let result = evaluate_visit(&charter, "W8", Some(VisitWindow::from(w8)), &week8, Some(&baseline));
        let got: Vec<(Rule, Severity)> = result.findings.iter().map(|f| (f.rule, f.severity)).collect();
        let want: Vec<(Rule, Severity)> = s.expect.iter().map(|(r, sev, _)| (*r, *sev)).collect();
        if got != want {
            failures.push(format!("{}: want {want:?}, got {got:?}\n{:#?}", s.id, result.findings));
            continue;
        }
        for (f, (_, _, words)) in result.findings.iter().zip(s.expect) {
            if !f.message.contains(words) {
                failures.push(format!("{}: {:?} does not say {words:?}", s.id, f.message));
            }
        }
        assert_eq!(result.verdict, Verdict::Fail);
        // Series-level findings name the charter series and the received series.
        for f in &result.findings {
            check_reference(s.id, f, &mut failures);
        }
        assert_eq!(result.series[0].charter_series_id.as_deref(), Some("CT_CAP_PV"));
        assert_eq!(result.series[0].identified_by, IdentifiedBy::Headers);
        if s.lung_series {
            assert_eq!(result.series[1].charter_series_id.as_deref(), Some("CT_CHEST_LUNG"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_reference(subject: &str, f: &Finding, failures: &mut Vec<String>) {
    if f.rule == Rule::VisitWindow {
        return;
    }
    if f.charter_series_id.as_deref() != Some("CT_CAP_PV") || f.series_instance_uid.is_none() {
        failures.push(format!("{subject}: {} does not name its series: {f:?}", f.rule));
    }
}

#[test]
fn the_same_visits_with_every_problem_fixed_pass() {
    let charter = charter(&oncology_four_sites());
    let calendar = VisitCalendar::new(&charter, date("2026-01-05"));
    let w8 = calendar.visit("W8").unwrap();
    let visit = VisitFacts {
        series: vec![cap("2.25.9.1", w8.expected_date, "SIEMENS", "SOMATOM Force"), lung("2.25.9.2", w8.expected_date)],
    };
    let result = evaluate_visit(&charter, "W8", Some(VisitWindow::from(w8)), &visit, Some(&visit.clone()));
    assert_eq!(result.verdict, Verdict::Pass, "{:#?}", result.findings);
    // ...and an undecodable series on top is reported, with nothing else.
    let mut broken = visit.clone();
    broken.series[1].pixel_decode = PixelDecode::Failed { message: "truncated fragment".into() };
    let result = evaluate_visit(&charter, "W8", Some(VisitWindow::from(w8)), &broken, Some(&visit));
    let got: Vec<Rule> = result.findings.iter().map(|f| f.rule).collect();
    assert_eq!(got, [Rule::PixelData]);
    assert_eq!(result.findings[0].charter_series_id.as_deref(), Some("CT_CHEST_LUNG"));
}
