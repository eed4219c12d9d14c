//! Table-driven tests of every QC rule, through the one `check()` below.
//!
//! Each case starts from a visit that passes every rule (a CT and an MR series, or the fuller
//! `FULL` charter, or the cardiology example), applies one edit, and states the exact findings
//! (rule, severity) the rule asks for: at a limit (passes) and one step over (fails), not
//! recorded (warning), and the odd cases. Expectations are written from the rule text in
//! `corelab_domain::qc` docs, not from the engine's output.

// Test helpers outside #[test] functions: clippy.toml's test allowances do not reach them.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod qc_support;

use corelab_domain::charter::VisitCalendar;
use corelab_domain::qc::{
    BurnedInFlag, PixelDecode, PixelSpacing, QcResult, Rule, Severity, Verdict, VisitFacts, VisitWindow, evaluate_visit,
};
use qc_support::*;

use Rule::*;
use Severity::{Error as E, Warning as W};

/// One CT series (`CT_MAIN`, descriptions `*BODY*`) and one MR series (`MR_MAIN`, `*BRAIN*`) at
/// baseline and week 8; each case fills in the constraints under test.
const TEMPLATE: &str = r#"
format = 1
version = "1.0"

[trial]
sponsor = "QC Test Sponsor"
protocol_id = "QC-TEST"
protocol_name = "QC rule tests"
therapeutic_area = "other"

[trial.blinding]
readers_blinded_to_dates = true
timepoint_labels = "pseudo"
sponsor_blinded = true

[dimse]
called_ae_titles = ["QCTEST"]

[[sites]]
id = "S1"
name = "Site one"
country = "GB"

[subjects]
id_pattern = "{site}-{nnn}"

[schedule]
anchor = "randomization"
unscheduled_visits_allowed = false

[[visits]]
id = "BL"
label = "Baseline"
baseline = true
window = { minus_days = 28, plus_days = 0 }
imaging = ["CT_BODY", "MR_BRAIN"]

[[visits]]
id = "W8"
label = "Week 8"
day = 56
window = { minus_days = 7, plus_days = 7 }
imaging = ["CT_BODY", "MR_BRAIN"]

[[imaging]]
id = "CT_BODY"
modality = "CT"
body_region = "chest"
body_part_examined = ["CHEST"]

[[imaging.series]]
id = "CT_MAIN"
description = "Axial CT chest"
identify = { series_description = ["*BODY*"] }

[imaging.series.constraints]
CT_CONSTRAINTS

[[imaging]]
id = "MR_BRAIN"
modality = "MR"
body_region = "brain"
body_part_examined = ["BRAIN"]

[[imaging.series]]
id = "MR_MAIN"
description = "3D T1 brain"
identify = { series_description = ["*BRAIN*"] }

[imaging.series.constraints]
MR_CONSTRAINTS

[deidentification]
dates = "shift"
max_shift_days = 30
retain_device_identity = true
clean_descriptors = true
descriptor_allow_list = ["*BODY*", "*BRAIN*"]

[qc]
stages = "automated+qc1"

[reads]
criteria = ["RECIST1.1"]
readers_per_case = 1
paradigm = "sequential_locked"
sd_min_days = 42

[reads.reader_qualifications]
training_current = true
"#;

/// Several series per requirement: identification by description and contrast, optional and
/// visit-specific series.
const FULL: &str = r#"
format = 1
version = "1.0"

[trial]
sponsor = "QC Test Sponsor"
protocol_id = "QC-FULL"
protocol_name = "QC identification tests"
therapeutic_area = "other"

[trial.blinding]
readers_blinded_to_dates = true
timepoint_labels = "pseudo"
sponsor_blinded = true

[dimse]
called_ae_titles = ["QCFULL"]

[[sites]]
id = "S1"
name = "Site one"
country = "GB"

[subjects]
id_pattern = "{site}-{nnn}"

[schedule]
anchor = "randomization"
unscheduled_visits_allowed = true

[[visits]]
id = "BL"
label = "Baseline"
baseline = true
window = { minus_days = 28, plus_days = 0 }
imaging = ["CT_BODY", "MR_BRAIN"]

[[visits]]
id = "W8"
label = "Week 8"
day = 56
window = { minus_days = 7, plus_days = 7 }
imaging = ["CT_BODY", "MR_BRAIN"]
series = ["CT_PV", "CT_LUNG", "T1_PRE", "T1_GD"]

[[imaging]]
id = "CT_BODY"
modality = "CT"
body_region = "chest"
body_part_examined = ["CHEST"]

[[imaging.series]]
id = "CT_PV"
description = "Axial CT chest, portal venous"
identify = { series_description = ["*BODY*"], image_type = ["ORIGINAL", "AXIAL"] }

[[imaging.series]]
id = "CT_LUNG"
description = "Axial CT chest, lung kernel"
required = false
identify = { series_description = ["*LUNG*"] }

[[imaging]]
id = "MR_BRAIN"
modality = "MR"
body_region = "brain"
body_part_examined = ["BRAIN"]

[[imaging.series]]
id = "T1_PRE"
description = "3D T1 before gadolinium"
identify = { series_description = ["*T1*"], contrast = false }

[[imaging.series]]
id = "T1_GD"
description = "3D T1 after gadolinium"
identify = { series_description = ["*T1*"], contrast = true }

[[imaging.series]]
id = "DWI_BL"
description = "Diffusion, baseline only"
required = false
identify = { series_description = ["*DWI*"] }

[deidentification]
dates = "shift"
max_shift_days = 30
retain_device_identity = true
clean_descriptors = true
descriptor_allow_list = ["*BODY*", "*LUNG*", "*T1*", "*DWI*"]

[qc]
stages = "automated+qc1"

[reads]
criteria = ["RECIST1.1"]
readers_per_case = 1
paradigm = "sequential_locked"
sd_min_days = 42

[reads.reader_qualifications]
training_current = true
"#;

const CARDIOLOGY: &str = include_str!("../../../charters/cardiology-lvef.toml");

/// Randomisation on 2026-01-05: baseline window 2025-12-08..2026-01-05, week 8 on 2026-03-02
/// (window 2026-02-23..2026-03-09).
const ANCHOR: &str = "2026-01-05";
const BASELINE_DAY: &str = "2026-01-02";
const VISIT_DAY: &str = "2026-03-02";

enum Setup {
    /// TEMPLATE with these CT and MR constraints.
    Template(&'static str, &'static str),
    Full,
    Cardiology,
}

struct World {
    charter_text: String,
    visit_id: String,
    window: Option<VisitWindow>,
    visit: VisitFacts,
    baseline: Option<VisitFacts>,
}

impl World {
    fn ct(&mut self) -> &mut corelab_domain::qc::SeriesFacts {
        &mut self.visit.series[0]
    }
    fn mr(&mut self) -> &mut corelab_domain::qc::SeriesFacts {
        &mut self.visit.series[1]
    }
    fn base(&mut self, k: usize) -> &mut corelab_domain::qc::SeriesFacts {
        &mut self.baseline.as_mut().expect("baseline").series[k]
    }
}

fn world(setup: &Setup) -> World {
    let (text, visit, baseline) = match setup {
        Setup::Template(ct, mr) => {
            let text = TEMPLATE.replace("CT_CONSTRAINTS", ct).replace("MR_CONSTRAINTS", mr);
            let visit = |day| VisitFacts {
                series: vec![
                    ct_series("1.2.9.1", "BODY 5mm", 20, date(day)),
                    mr_series("1.2.9.2", "BRAIN 3D T1", 30, date(day)),
                ],
            };
            (text, visit(VISIT_DAY), visit(BASELINE_DAY))
        }
        Setup::Full => {
            let visit = |day| {
                let mut pre = mr_series("1.2.9.3", "T1 MPRAGE PRE", 30, date(day));
                let mut post = mr_series("1.2.9.4", "T1 MPRAGE POST", 30, date(day));
                each(&mut pre, |i| i.series_number = Some(3));
                each(&mut post, |i| {
                    i.series_number = Some(4);
                    i.contrast_agent = Some("GADOBUTROL".into());
                });
                VisitFacts { series: vec![ct_series("1.2.9.1", "BODY PV 5mm", 20, date(day)), pre, post] }
            };
            (FULL.to_string(), visit(VISIT_DAY), visit(BASELINE_DAY))
        }
        Setup::Cardiology => {
            let visit = |day| {
                let mut a4c = ct_series("1.2.8.1", "ECHO A4C", 1, date(day));
                let mut a2c = ct_series("1.2.8.2", "ECHO A2C", 1, date(day));
                for (s, n) in [(&mut a4c, 1), (&mut a2c, 2)] {
                    each(s, |i| {
                        i.modality = Some("US".into());
                        i.series_number = Some(n);
                        i.number_of_frames = Some(90);
                    });
                }
                VisitFacts { series: vec![a4c, a2c] }
            };
            (CARDIOLOGY.to_string(), visit("2026-03-30"), visit(BASELINE_DAY))
        }
    };
    let (visit_id, window) = match setup {
        // Cardiology: enrollment 2026-01-05, week 12 on 2026-03-30 (window +/- 14 days).
        Setup::Cardiology => ("W12", Some(VisitWindow { opens: date("2026-03-16"), closes: date("2026-04-13") })),
        _ => {
            let c = charter(&text);
            let calendar = VisitCalendar::new(&c, date(ANCHOR));
            let w = calendar.visit("W8").map(VisitWindow::from);
            assert_eq!(w, Some(VisitWindow { opens: date("2026-02-23"), closes: date("2026-03-09") }));
            ("W8", w)
        }
    };
    World { charter_text: text, visit_id: visit_id.into(), window, visit, baseline: Some(baseline) }
}

struct Case {
    name: &'static str,
    setup: Setup,
    edit: fn(&mut World),
    expect: &'static [(Rule, Severity)],
    /// Text some finding's message must contain.
    says: &'static str,
}

fn case(name: &'static str, setup: Setup, edit: fn(&mut World), expect: &'static [(Rule, Severity)]) -> Case {
    Case { name, setup, edit, expect, says: "" }
}

fn says(mut c: Case, text: &'static str) -> Case {
    c.says = text;
    c
}

const CT_ONLY: fn(&mut World) = |_| {};

fn run(w: &World) -> QcResult {
    let c = charter(&w.charter_text);
    evaluate_visit(&c, &w.visit_id, w.window, &w.visit, w.baseline.as_ref())
}

fn check(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let mut w = world(&case.setup);
        (case.edit)(&mut w);
        let result = run(&w);
        let mut got: Vec<(Rule, Severity)> = result.findings.iter().map(|f| (f.rule, f.severity)).collect();
        let mut want = case.expect.to_vec();
        got.sort();
        want.sort();
        let shown = || {
            result
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "    {:?} {}: {} [expected {:?}, found {:?}]",
                        f.severity, f.rule, f.message, f.expected, f.found
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if got != want {
            failures.push(format!("{}: want {want:?}, got {got:?}\n{}", case.name, shown()));
            continue;
        }
        let verdict = if want.iter().any(|(_, s)| *s == E) {
            Verdict::Fail
        } else if want.is_empty() {
            Verdict::Pass
        } else {
            Verdict::PassWithWarnings
        };
        if result.verdict != verdict {
            failures.push(format!("{}: verdict {:?}, want {verdict:?}", case.name, result.verdict));
        }
        if !case.says.is_empty() && !result.findings.iter().any(|f| f.message.contains(case.says)) {
            failures.push(format!("{}: no message says {:?}\n{}", case.name, case.says, shown()));
        }
        for f in &result.findings {
            if f.message.is_empty() || f.expected.is_empty() || f.found.is_empty() {
                failures.push(format!("{}: incomplete finding {f:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

use Setup::Template as T;

#[test]
fn clean_visits_pass() {
    check(vec![
        case("template, no constraints", T("", ""), CT_ONLY, &[]),
        case("full charter: PV CT, T1 before and after gadolinium", Setup::Full, CT_ONLY, &[]),
        case("cardiology: echo at baseline and week 12", Setup::Cardiology, CT_ONLY, &[]),
        case(
            "every constraint at once, all met",
            T(
                "slice_thickness_mm = { min = 1.0, max = 5.0 }\nslice_spacing_mm = { max = 5.0 }\nslice_gap_mm = { max = 0.0 }\npixel_spacing_mm = { max = 1.0 }\nmatrix_min = 512\nkvp = { min = 80, max = 140 }\ncontrast = { agent = \"required\", phase = \"portal_venous\" }\nsame_scanner_as_baseline = true\nbaseline_tolerance = { slice_thickness_mm = 1.0, kvp = 20, pixel_spacing_mm = 0.1 }",
                "field_strength_t = { min = 3.0, max = 3.0 }\nmr_sequence = \"T1\"\nmr_acquisition = \"3D\"\ncontrast = { agent = \"forbidden\" }\nsame_scanner_as_baseline = true\nbaseline_tolerance = { field_strength_t = 0.0, slice_thickness_mm = 0.2 }",
            ),
            CT_ONLY,
            &[],
        ),
    ]);
}

#[test]
fn slice_thickness() {
    let max = "slice_thickness_mm = { max = 5.0 }";
    let min = "slice_thickness_mm = { min = 1.0 }";
    check(vec![
        case("at the maximum", T(max, ""), |w| each(w.ct(), |i| i.slice_thickness_mm = Some(5.0)), &[]),
        says(
            case(
                "one step over the maximum",
                T(max, ""),
                |w| each(w.ct(), |i| i.slice_thickness_mm = Some(5.01)),
                &[(SliceThickness, E)],
            ),
            "has 5.01 mm slices; the charter allows at most 5.0 mm. Reconstruct at 5.0 mm or thinner and resend.",
        ),
        case("at the minimum", T(min, ""), |w| each(w.ct(), |i| i.slice_thickness_mm = Some(1.0)), &[]),
        case(
            "one step under the minimum",
            T(min, ""),
            |w| each(w.ct(), |i| i.slice_thickness_mm = Some(0.99)),
            &[(SliceThickness, E)],
        ),
        says(
            case(
                "one image of twenty thicker",
                T(max, ""),
                |w| w.ct().instances[7].slice_thickness_mm = Some(7.0),
                &[(SliceThickness, E)],
            ),
            "5.0 to 7.0 mm",
        ),
        says(
            case("not recorded", T(max, ""), |w| each(w.ct(), |i| i.slice_thickness_mm = None), &[(SliceThickness, W)]),
            "no slice thickness recorded",
        ),
        case(
            "recorded on some images only: those are checked",
            T(max, ""),
            |w| w.ct().instances[0].slice_thickness_mm = None,
            &[],
        ),
        case("not constrained: 7 mm passes", T("", ""), |w| each(w.ct(), |i| i.slice_thickness_mm = Some(7.0)), &[]),
    ]);
}

#[test]
fn slice_spacing_and_gap() {
    let max = "slice_spacing_mm = { max = 5.0 }";
    let min = "slice_spacing_mm = { min = 5.0 }";
    let gap = "slice_gap_mm = { max = 0.0 }";
    let overlap = "slice_gap_mm = { min = -1.0, max = 0.0 }";
    check(vec![
        case("positions 5.0 apart at the maximum", T(max, ""), |w| spaced(w.ct(), 5.0), &[]),
        says(
            case("positions 5.01 apart", T(max, ""), |w| spaced(w.ct(), 5.01), &[(SliceSpacing, E)]),
            "slices 5.01 mm apart",
        ),
        case("positions 4.99 apart under the minimum", T(min, ""), |w| spaced(w.ct(), 4.99), &[(SliceSpacing, E)]),
        case(
            "positions win over Spacing Between Slices",
            T(max, ""),
            |w| each(w.ct(), |i| i.spacing_between_slices_mm = Some(9.0)),
            &[],
        ),
        case(
            "multi-frame: Spacing Between Slices used, geometry not checkable",
            T(max, ""),
            |w| {
                w.ct().instances.truncate(1);
                each(w.ct(), |i| i.number_of_frames = Some(20));
            },
            &[(SliceGeometry, W)],
        ),
        case(
            "multi-frame with Spacing Between Slices over the limit",
            T(max, ""),
            |w| {
                w.ct().instances.truncate(1);
                each(w.ct(), |i| {
                    i.number_of_frames = Some(20);
                    i.spacing_between_slices_mm = Some(6.0);
                });
            },
            &[(SliceGeometry, W), (SliceSpacing, E)],
        ),
        case(
            "no positions and no Spacing Between Slices",
            T(max, ""),
            |w| {
                each(w.ct(), |i| {
                    i.image_position_patient_mm = None;
                    i.spacing_between_slices_mm = None;
                })
            },
            &[(SliceGeometry, W), (SliceSpacing, W)],
        ),
        case("contiguous: gap 0 at the limit", T(gap, ""), CT_ONLY, &[]),
        says(
            case(
                "gap of 0.01 mm",
                T(gap, ""),
                |w| each(w.ct(), |i| i.slice_thickness_mm = Some(4.99)),
                &[(SliceGap, E)],
            ),
            "a gap of 0.01 mm between slices",
        ),
        case("overlap passes a max-only gap", T(gap, ""), |w| each(w.ct(), |i| i.slice_thickness_mm = Some(6.0)), &[]),
        case(
            "overlap of 1.0 mm at the minimum",
            T(overlap, ""),
            |w| each(w.ct(), |i| i.slice_thickness_mm = Some(6.0)),
            &[],
        ),
        says(
            case(
                "overlap of 1.01 mm",
                T(overlap, ""),
                |w| each(w.ct(), |i| i.slice_thickness_mm = Some(6.01)),
                &[(SliceGap, E)],
            ),
            "overlapping by 1.01 mm",
        ),
        case(
            "gap with thickness unknown",
            T(gap, ""),
            |w| each(w.ct(), |i| i.slice_thickness_mm = None),
            &[(SliceGap, W)],
        ),
    ]);
}

fn drop_instances(w: &mut World, numbers: &[i64]) {
    w.ct().instances.retain(|i| !i.instance_number.is_some_and(|n| numbers.contains(&n)));
}

#[test]
fn missing_slices_uneven_spacing_duplicates() {
    check(vec![
        says(
            case("two slices skipped mid-series", T("", ""), |w| drop_instances(w, &[10, 11]), &[(MissingSlices, E)]),
            "is missing 2 slices where the slices are 5.0 mm apart: 2 between image 9 and image 12 (a 15.0 mm step)",
        ),
        says(
            case("one slice skipped", T("", ""), |w| drop_instances(w, &[5]), &[(MissingSlices, E)]),
            "missing 1 slice ",
        ),
        says(
            case("two separate gaps", T("", ""), |w| drop_instances(w, &[3, 15, 16, 17]), &[(MissingSlices, E)]),
            "missing 4 slices",
        ),
        case("first and last slices absent: not a gap", T("", ""), |w| drop_instances(w, &[1, 20]), &[]),
        case(
            "reverse and shuffled order, renumbered: positions decide",
            T("", ""),
            |w| {
                w.ct().instances.reverse();
                w.ct().instances.swap(3, 11);
                for (k, i) in w.ct().instances.iter_mut().enumerate() {
                    i.instance_number = Some(100 - k as i64);
                }
            },
            &[],
        ),
        says(
            case(
                "a step of exactly 1.5 spacings is uneven, not missing",
                T("", ""),
                |w| {
                    for i in w.ct().instances.iter_mut().skip(10) {
                        if let Some(p) = i.image_position_patient_mm.as_mut() {
                            p[2] -= 2.5;
                        }
                    }
                },
                &[(UnevenSpacing, W)],
            ),
            "1 step of 7.5 mm instead of 5.0 mm, first between images 10 and 11",
        ),
        case(
            "a step just over 1.5 spacings holds one missing slice",
            T("", ""),
            |w| {
                for i in w.ct().instances.iter_mut().skip(10) {
                    if let Some(p) = i.image_position_patient_mm.as_mut() {
                        p[2] -= 2.51;
                    }
                }
            },
            &[(MissingSlices, E)],
        ),
        case(
            "a 10 % deviation is still even",
            T("", ""),
            |w| {
                for i in w.ct().instances.iter_mut().skip(10) {
                    if let Some(p) = i.image_position_patient_mm.as_mut() {
                        p[2] -= 0.5;
                    }
                }
            },
            &[],
        ),
        case(
            "an 11 % deviation is uneven",
            T("", ""),
            |w| {
                for i in w.ct().instances.iter_mut().skip(10) {
                    if let Some(p) = i.image_position_patient_mm.as_mut() {
                        p[2] -= 0.55;
                    }
                }
            },
            &[(UnevenSpacing, W)],
        ),
        says(
            case(
                "the same position twice under another SOP Instance UID",
                T("", ""),
                |w| {
                    let mut copy = w.ct().instances[4].clone();
                    copy.sop_instance_uid.push_str(".copy");
                    w.ct().instances.push(copy);
                },
                &[(DuplicateSlices, W)],
            ),
            "has 1 image at the same position as another image (1 position)",
        ),
        case(
            "the same instance received twice counts once",
            T("", ""),
            |w| {
                let copy = w.ct().instances[4].clone();
                w.ct().instances.push(copy);
            },
            &[],
        ),
        case(
            "twenty instances hiding two duplicates and two gaps: positions, not counts",
            T("", ""),
            |w| {
                drop_instances(w, &[10, 11]);
                for k in [2, 5] {
                    let mut copy = w.ct().instances[k].clone();
                    copy.sop_instance_uid.push_str(".again");
                    w.ct().instances.push(copy);
                }
                assert_eq!(w.ct().instances.len(), 20);
            },
            &[(MissingSlices, E), (DuplicateSlices, W)],
        ),
        case(
            "cardiac phases at each position are not duplicates",
            T("", ""),
            |w| {
                let phases: Vec<_> = w
                    .ct()
                    .instances
                    .iter()
                    .flat_map(|i| {
                        (0..3).map(move |p| {
                            let mut c = i.clone();
                            c.sop_instance_uid = format!("{}.{p}", i.sop_instance_uid);
                            c.trigger_time_ms = Some(40.0 * f64::from(p));
                            c
                        })
                    })
                    .collect();
                w.ct().instances = phases;
            },
            &[],
        ),
        case(
            "oblique stack (20 degrees) with two missing slices",
            T("", ""),
            |w| {
                let (c, s) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
                let ori = [1.0, 0.0, 0.0, 0.0, c, -s];
                // normal = row x column = (0, s, c)
                for (k, i) in w.ct().instances.iter_mut().enumerate() {
                    let d = 5.0 * k as f64;
                    i.image_orientation_patient = Some(ori);
                    i.image_position_patient_mm = Some([-200.0 + 0.3 * k as f64, -200.0 + s * d, -100.0 + c * d]);
                }
                drop_instances(w, &[8, 9]);
            },
            &[(MissingSlices, E)],
        ),
        case(
            "oblique stack without gaps",
            T("", ""),
            |w| {
                let (c, s) = (35f64.to_radians().cos(), 35f64.to_radians().sin());
                for (k, i) in w.ct().instances.iter_mut().enumerate() {
                    let d = 5.0 * k as f64;
                    i.image_orientation_patient = Some([c, s, 0.0, 0.0, 0.0, -1.0]);
                    // normal = (-s, c, 0)
                    i.image_position_patient_mm = Some([-s * d, c * d, 50.0]);
                }
            },
            &[],
        ),
        says(
            case(
                "enhanced multi-frame: not checkable",
                T("", ""),
                |w| {
                    w.ct().instances.truncate(1);
                    each(w.ct(), |i| i.number_of_frames = Some(300));
                },
                &[(SliceGeometry, W)],
            ),
            "multi-frame",
        ),
        case(
            "orientation changes within the series: not checkable",
            T("", ""),
            |w| w.ct().instances[3].image_orientation_patient = Some(SAGITTAL),
            &[(SliceGeometry, W)],
        ),
        case(
            "a position missing: not checkable",
            T("", ""),
            |w| w.ct().instances[3].image_position_patient_mm = None,
            &[(SliceGeometry, W)],
        ),
        case("a single slice: nothing to compare", T("", ""), |w| w.ct().instances.truncate(1), &[]),
        case(
            "ultrasound is not a slice stack",
            Setup::Cardiology,
            |w| each(&mut w.visit.series[0], |i| i.image_position_patient_mm = None),
            &[],
        ),
    ]);
}

#[test]
fn pixel_spacing_and_matrix() {
    let max = "pixel_spacing_mm = { max = 1.0 }";
    let min = "pixel_spacing_mm = { min = 0.5 }";
    let matrix = "matrix_min = 512";
    check(vec![
        case(
            "1.0 mm at the maximum",
            T(max, ""),
            |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 1.0, column_mm: 1.0 })),
            &[],
        ),
        says(
            case(
                "columns 1.01 mm",
                T(max, ""),
                |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 1.0, column_mm: 1.01 })),
                &[(PixelSpacing, E)],
            ),
            "pixels of 1.0 to 1.01 mm",
        ),
        case(
            "0.5 mm at the minimum",
            T(min, ""),
            |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 0.5, column_mm: 0.5 })),
            &[],
        ),
        case(
            "rows 0.49 mm",
            T(min, ""),
            |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 0.49, column_mm: 0.5 })),
            &[(PixelSpacing, E)],
        ),
        case("not recorded", T(max, ""), |w| each(w.ct(), |i| i.pixel_spacing_mm = None), &[(PixelSpacing, W)]),
        case("512 x 512 at the minimum", T(matrix, ""), CT_ONLY, &[]),
        says(
            case("511 rows", T(matrix, ""), |w| each(w.ct(), |i| i.rows = Some(511)), &[(Matrix, E)]),
            "a 511 x 512 matrix",
        ),
        case("columns missing", T(matrix, ""), |w| each(w.ct(), |i| i.columns = None), &[(Matrix, W)]),
    ]);
}

#[test]
fn kvp() {
    let r = "kvp = { min = 80, max = 140 }";
    check(vec![
        case("140 kV at the maximum", T(r, ""), |w| each(w.ct(), |i| i.kvp = Some(140.0)), &[]),
        says(
            case("141 kV", T(r, ""), |w| each(w.ct(), |i| i.kvp = Some(141.0)), &[(Kvp, E)]),
            "acquired at 141 kV; the charter allows between 80 and 140 kV",
        ),
        case("80 kV at the minimum", T(r, ""), |w| each(w.ct(), |i| i.kvp = Some(80.0)), &[]),
        case("79 kV", T(r, ""), |w| each(w.ct(), |i| i.kvp = Some(79.0)), &[(Kvp, E)]),
        case("not recorded", T(r, ""), |w| each(w.ct(), |i| i.kvp = None), &[(Kvp, W)]),
    ]);
}

#[test]
fn contrast_presence() {
    let required = "contrast = { agent = \"required\" }";
    let forbidden = "contrast = { agent = \"forbidden\" }";
    let optional = "contrast = { agent = \"optional\" }";
    check(vec![
        case("required, agent recorded", T(required, ""), CT_ONLY, &[]),
        says(
            case(
                "required, no contrast attributes",
                T(required, ""),
                |w| {
                    each(w.ct(), |i| {
                        i.contrast_agent = None;
                        i.contrast_route = None;
                    })
                },
                &[(Contrast, E)],
            ),
            "shows no contrast: no contrast agent is recorded in the images",
        ),
        case(
            "required, agent NONE",
            T(required, ""),
            |w| each(w.ct(), |i| i.contrast_agent = Some("NONE".into())),
            &[(Contrast, E)],
        ),
        case(
            "required, agent emptied by de-identification, route kept",
            T(required, ""),
            |w| each(w.ct(), |i| i.contrast_agent = Some(String::new())),
            &[],
        ),
        case(
            "required, agent emptied, no route, description silent",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = Some(String::new());
                    i.contrast_route = None;
                })
            },
            &[(Contrast, W)],
        ),
        case(
            "required, agent emptied, description says PV",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = Some(String::new());
                    i.contrast_route = None;
                    i.series_description = Some("BODY PV 5mm".into());
                })
            },
            &[],
        ),
        case(
            "required, agent emptied, description says non-contrast",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = Some(String::new());
                    i.contrast_route = None;
                    i.series_description = Some("BODY NON CONTRAST".into());
                })
            },
            &[(Contrast, E)],
        ),
        case(
            "required, agent emptied, original header named one",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = Some(String::new());
                    i.contrast_route = None;
                    i.original_contrast_agent_recorded = Some(true);
                })
            },
            &[],
        ),
        says(
            case(
                "required, agent emptied, original header had none",
                T(required, ""),
                |w| {
                    each(w.ct(), |i| {
                        i.contrast_agent = Some(String::new());
                        i.series_description = Some("BODY PV".into());
                        i.original_contrast_agent_recorded = Some(false);
                    })
                },
                &[(Contrast, E)],
            ),
            "no contrast agent was recorded at the scanner",
        ),
        case(
            "required, volume 0 ml",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = Some(String::new());
                    i.contrast_route = None;
                    i.contrast_volume_ml = Some(0.0);
                })
            },
            &[(Contrast, E)],
        ),
        case(
            "required, ingredient only",
            T(required, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = None;
                    i.contrast_route = None;
                    i.contrast_ingredient = Some("IODINE".into());
                })
            },
            &[],
        ),
        says(
            case("forbidden, agent recorded", T(forbidden, ""), CT_ONLY, &[(Contrast, E)]),
            "acquired with contrast (contrast agent 'IOHEXOL 350' is recorded)",
        ),
        case("forbidden, nothing recorded", T("", forbidden), CT_ONLY, &[]),
        case("optional: either way", T(optional, optional), CT_ONLY, &[]),
    ]);
}

fn delay(w: &mut World, seconds: f64) {
    each(w.ct(), |i| i.acquisition_time_s = Some(36_000.0 + seconds));
}

#[test]
fn contrast_phase_and_delay() {
    let pv = "contrast = { agent = \"required\", phase = \"portal_venous\" }";
    let gd = "contrast = { agent = \"required\", min_delay_minutes = 5 }";
    check(vec![
        case("70 s after injection: portal venous", T(pv, ""), CT_ONLY, &[]),
        case("50 s: portal venous, lower bound", T(pv, ""), |w| delay(w, 50.0), &[]),
        case("100 s: portal venous, upper bound", T(pv, ""), |w| delay(w, 100.0), &[]),
        case("49 s fits no phase", T(pv, ""), |w| delay(w, 49.0), &[(ContrastPhase, W)]),
        case("101 s fits no phase", T(pv, ""), |w| delay(w, 101.0), &[(ContrastPhase, W)]),
        says(
            case("30 s: arterial", T(pv, ""), |w| delay(w, 30.0), &[(ContrastPhase, E)]),
            "looks like the arterial phase",
        ),
        case(
            "description says arterial",
            T(pv, ""),
            |w| each(w.ct(), |i| i.series_description = Some("BODY ARTERIAL".into())),
            &[(ContrastPhase, E)],
        ),
        case(
            "description beats timing",
            T(pv, ""),
            |w| {
                delay(w, 30.0);
                each(w.ct(), |i| i.series_description = Some("BODY PORTAL".into()));
            },
            &[],
        ),
        case(
            "description names two phases",
            T(pv, ""),
            |w| each(w.ct(), |i| i.series_description = Some("BODY ART PV".into())),
            &[(ContrastPhase, W)],
        ),
        case(
            "no times, no description",
            T(pv, ""),
            |w| each(w.ct(), |i| i.contrast_start_time_s = None),
            &[(ContrastPhase, W)],
        ),
        case(
            "no contrast: only the contrast finding",
            T(pv, ""),
            |w| {
                each(w.ct(), |i| {
                    i.contrast_agent = None;
                    i.contrast_route = None;
                })
            },
            &[(Contrast, E)],
        ),
        case(
            "gadolinium 5 min before acquisition: at the limit",
            T("", gd),
            |w| {
                each(w.mr(), |i| {
                    i.contrast_agent = Some("GADOBUTROL".into());
                    i.contrast_start_time_s = Some(36_000.0);
                    i.acquisition_time_s = Some(36_300.0);
                })
            },
            &[],
        ),
        says(
            case(
                "4 min 59 s",
                T("", gd),
                |w| {
                    each(w.mr(), |i| {
                        i.contrast_agent = Some("GADOBUTROL".into());
                        i.contrast_start_time_s = Some(36_000.0);
                        i.acquisition_time_s = Some(36_299.0);
                    })
                },
                &[(ContrastDelay, E)],
            ),
            "acquired 4 min 59 s after injection",
        ),
        case(
            "acquired before the injection",
            T("", gd),
            |w| {
                each(w.mr(), |i| {
                    i.contrast_agent = Some("GADOBUTROL".into());
                    i.contrast_start_time_s = Some(36_000.0);
                    i.acquisition_time_s = Some(35_000.0);
                })
            },
            &[(ContrastDelay, E)],
        ),
        case(
            "injection at 23:58, acquisition 00:04",
            T("", gd),
            |w| {
                each(w.mr(), |i| {
                    i.contrast_agent = Some("GADOBUTROL".into());
                    i.contrast_start_time_s = Some(86_280.0);
                    i.acquisition_time_s = Some(240.0);
                })
            },
            &[],
        ),
        case(
            "start time removed by de-identification",
            T("", gd),
            |w| each(w.mr(), |i| i.contrast_agent = Some("GADOBUTROL".into())),
            &[(ContrastDelay, W)],
        ),
    ]);
}

#[test]
fn mr_field_strength_sequence_acquisition() {
    let three = "field_strength_t = { min = 3.0, max = 3.0 }";
    let upto = "field_strength_t = { max = 1.5 }";
    let t1 = "mr_sequence = \"T1\"";
    let swi = "mr_sequence = \"SWI\"";
    let three_d = "mr_acquisition = \"3D\"";
    check(vec![
        case("2.89362 T reads as nominal 3 T", T("", three), CT_ONLY, &[]),
        case("3.0 T", T("", three), |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(3.0)), &[]),
        case("30000 gauss", T("", three), |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(30_000.0)), &[]),
        says(
            case(
                "1.5 T",
                T("", three),
                |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(1.5)),
                &[(FieldStrength, E)],
            ),
            "acquired at 1.5 T; the charter allows exactly 3.0 T",
        ),
        case(
            "1.5 T at a maximum of 1.5",
            T("", upto),
            |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(1.5)),
            &[],
        ),
        case("3 T over a maximum of 1.5", T("", upto), CT_ONLY, &[(FieldStrength, E)]),
        case(
            "field strength not recorded",
            T("", three),
            |w| each(w.mr(), |i| i.magnetic_field_strength_t = None),
            &[(FieldStrength, W)],
        ),
        case("T1 by description", T("", t1), CT_ONLY, &[]),
        says(
            case(
                "FLAIR by description",
                T("", t1),
                |w| each(w.mr(), |i| i.series_description = Some("BRAIN 3D FLAIR".into())),
                &[(MrSequence, E)],
            ),
            "looks like a FLAIR sequence (the description 'BRAIN 3D FLAIR'); the charter asks for a T1-weighted sequence",
        ),
        case(
            "T1 by physics (MPRAGE timing)",
            T("", t1),
            |w| each(w.mr(), |i| i.series_description = Some("BRAIN 3D".into())),
            &[],
        ),
        case(
            "T2 by physics (spin echo TR 4000, TE 100)",
            T("", t1),
            |w| {
                each(w.mr(), |i| {
                    i.series_description = Some("BRAIN AX".into());
                    i.scanning_sequence = vec!["SE".into()];
                    i.sequence_variant = vec!["SK".into()];
                    i.repetition_time_ms = Some(4000.0);
                    i.echo_time_ms = Some(100.0);
                    i.inversion_time_ms = None;
                })
            },
            &[(MrSequence, E)],
        ),
        case(
            "nothing to tell from",
            T("", t1),
            |w| {
                each(w.mr(), |i| {
                    i.series_description = Some("BRAIN".into());
                    i.scanning_sequence.clear();
                })
            },
            &[(MrSequence, W)],
        ),
        case(
            "SWI by description",
            T("", swi),
            |w| each(w.mr(), |i| i.series_description = Some("BRAIN SWI".into())),
            &[],
        ),
        case(
            "SWI required, physics says T2*: cannot confirm",
            T("", swi),
            |w| {
                each(w.mr(), |i| {
                    i.series_description = Some("BRAIN".into());
                    i.scanning_sequence = vec!["GR".into()];
                    i.sequence_variant = vec!["NONE".into()];
                    i.echo_time_ms = Some(20.0);
                    i.repetition_time_ms = Some(30.0);
                    i.inversion_time_ms = None;
                })
            },
            &[(MrSequence, W)],
        ),
        case("SWI required, description says T1", T("", swi), CT_ONLY, &[(MrSequence, E)]),
        case("3D", T("", three_d), CT_ONLY, &[]),
        case(
            "2D",
            T("", three_d),
            |w| each(w.mr(), |i| i.mr_acquisition_type = Some("2D".into())),
            &[(MrAcquisition, E)],
        ),
        case(
            "acquisition type missing",
            T("", three_d),
            |w| each(w.mr(), |i| i.mr_acquisition_type = None),
            &[(MrAcquisition, W)],
        ),
    ]);
}

#[test]
fn modality_and_body_part() {
    check(vec![
        says(
            case(
                "MR sent for a CT requirement",
                T("", ""),
                |w| each(w.ct(), |i| i.modality = Some("MR".into())),
                &[(Modality, E)],
            ),
            "is MR; the charter asks for CT",
        ),
        case("modality not recorded", T("", ""), |w| each(w.ct(), |i| i.modality = None), &[(Modality, W)]),
        case(
            "body part in other case",
            T("", ""),
            |w| each(w.ct(), |i| i.body_part_examined = Some("chest".into())),
            &[],
        ),
        case(
            "body part not accepted",
            T("", ""),
            |w| each(w.ct(), |i| i.body_part_examined = Some("ABDOMEN".into())),
            &[(BodyPart, W)],
        ),
        case("body part not recorded", T("", ""), |w| each(w.ct(), |i| i.body_part_examined = None), &[(BodyPart, W)]),
    ]);
}

#[test]
fn baseline_comparison() {
    let same = "same_scanner_as_baseline = true";
    let tol = "baseline_tolerance = { slice_thickness_mm = 1.0, kvp = 20, pixel_spacing_mm = 0.1 }";
    let field = "baseline_tolerance = { field_strength_t = 0.0 }";
    check(vec![
        case("same scanner", T(same, ""), CT_ONLY, &[]),
        says(
            case(
                "another model",
                T(same, ""),
                |w| each(w.ct(), |i| i.manufacturer_model_name = Some("SOMATOM Drive".into())),
                &[(SameScanner, E)],
            ),
            "acquired on SIEMENS SOMATOM Drive, station CT1, serial 1001; the subject's baseline was on SIEMENS SOMATOM Force, station CT1, serial 1001 (model differ)",
        ),
        case(
            "another station",
            T(same, ""),
            |w| each(w.ct(), |i| i.station_name = Some("CT2".into())),
            &[(SameScanner, E)],
        ),
        case(
            "another serial number",
            T(same, ""),
            |w| each(w.ct(), |i| i.device_serial_number = Some("1002".into())),
            &[(SameScanner, E)],
        ),
        case(
            "manufacturer in other case",
            T(same, ""),
            |w| each(w.ct(), |i| i.manufacturer = Some("Siemens".into())),
            &[],
        ),
        case(
            "station and serial removed by de-identification: model compared",
            T(same, ""),
            |w| {
                let strip = |i: &mut corelab_domain::qc::InstanceFacts| {
                    i.station_name = None;
                    i.device_serial_number = None;
                };
                each(w.ct(), strip);
                each(w.base(0), strip);
            },
            &[],
        ),
        case(
            "model not recorded",
            T(same, ""),
            |w| each(w.ct(), |i| i.manufacturer_model_name = None),
            &[(SameScanner, W)],
        ),
        says(
            case("no baseline given", T(same, ""), |w| w.baseline = None, &[(SameScanner, W)]),
            "baseline is not available",
        ),
        case(
            "baseline without that series",
            T(same, ""),
            |w| w.baseline.as_mut().unwrap().series.remove(0).series_instance_uid.clear(),
            &[(SameScanner, W)],
        ),
        case(
            "at the baseline visit itself nothing is compared",
            T(same, ""),
            |w| {
                w.visit_id = "BL".into();
                w.window = Some(VisitWindow { opens: date("2025-12-08"), closes: date("2026-01-05") });
                w.baseline = None;
                for s in &mut w.visit.series {
                    each(s, |i| i.acquisition_date = Some(date(BASELINE_DAY)));
                }
            },
            &[],
        ),
        case(
            "thickness 1.0 mm from baseline: at the tolerance",
            T(tol, ""),
            |w| each(w.ct(), |i| i.slice_thickness_mm = Some(6.0)),
            &[],
        ),
        says(
            case(
                "thickness 1.01 mm from baseline",
                T(tol, ""),
                |w| each(w.ct(), |i| i.slice_thickness_mm = Some(6.01)),
                &[(BaselineParameters, E)],
            ),
            "has a slice thickness of 6.01 mm; the subject's baseline had 5.0 mm. The charter allows a difference of at most 1.0 mm.",
        ),
        case("kVp 20 from baseline", T(tol, ""), |w| each(w.ct(), |i| i.kvp = Some(140.0)), &[]),
        case("kVp 21 from baseline", T(tol, ""), |w| each(w.ct(), |i| i.kvp = Some(99.0)), &[(BaselineParameters, E)]),
        case(
            "pixels 0.1 mm larger",
            T(tol, ""),
            |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 0.88, column_mm: 0.88 })),
            &[],
        ),
        case(
            "pixels 0.11 mm larger",
            T(tol, ""),
            |w| each(w.ct(), |i| i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 0.89, column_mm: 0.89 })),
            &[(BaselineParameters, E)],
        ),
        case("kVp missing at baseline", T(tol, ""), |w| each(w.base(0), |i| i.kvp = None), &[(BaselineParameters, W)]),
        case(
            "3 T at both (recorded 2.89362 and 3.0)",
            T("", field),
            |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(3.0)),
            &[],
        ),
        case(
            "1.5 T now, 3 T at baseline",
            T("", field),
            |w| each(w.mr(), |i| i.magnetic_field_strength_t = Some(1.5)),
            &[(BaselineParameters, E)],
        ),
    ]);
}

#[test]
fn visit_window() {
    check(vec![
        case(
            "on the day the window closes",
            T("", ""),
            |w| {
                for s in &mut w.visit.series {
                    each(s, |i| i.acquisition_date = Some(date("2026-03-09")));
                }
            },
            &[],
        ),
        says(
            case(
                "one day late",
                T("", ""),
                |w| {
                    for s in &mut w.visit.series {
                        each(s, |i| i.acquisition_date = Some(date("2026-03-10")));
                    }
                },
                &[(VisitWindow, E)],
            ),
            "The images were acquired on 2026-03-10, 1 day after the Week 8 window closed (2026-02-23 to 2026-03-09)",
        ),
        case(
            "on the day the window opens",
            T("", ""),
            |w| {
                for s in &mut w.visit.series {
                    each(s, |i| i.acquisition_date = Some(date("2026-02-23")));
                }
            },
            &[],
        ),
        says(
            case(
                "one series a day early",
                T("", ""),
                |w| each(w.mr(), |i| i.acquisition_date = Some(date("2026-02-22"))),
                &[(VisitWindow, E)],
            ),
            "Series 3 'BRAIN 3D T1' were acquired on 2026-02-22, 1 day before",
        ),
        case(
            "date not known (shifted dates, none given)",
            T("", ""),
            |w| {
                for s in &mut w.visit.series {
                    each(s, |i| i.acquisition_date = None);
                }
            },
            &[(VisitWindow, W)],
        ),
        case(
            "date not given, full dates kept: header date used",
            T("", ""),
            |w| {
                w.charter_text =
                    w.charter_text.replace("dates = \"shift\"\nmax_shift_days = 30\n", "dates = \"keep\"\n");
                for s in &mut w.visit.series {
                    each(s, |i| {
                        i.acquisition_date = None;
                        i.header_dates.study = Some(date("2026-03-20"));
                    });
                }
            },
            &[(VisitWindow, E)],
        ),
        case(
            "shifted header date is not used",
            T("", ""),
            |w| {
                for s in &mut w.visit.series {
                    each(s, |i| {
                        i.acquisition_date = None;
                        i.header_dates.acquisition = Some(date("2025-01-01"));
                    });
                }
            },
            &[(VisitWindow, W)],
        ),
        case(
            "no window given",
            T("", ""),
            |w| {
                w.window = None;
                for s in &mut w.visit.series {
                    each(s, |i| i.acquisition_date = Some(date("2027-01-01")));
                }
            },
            &[],
        ),
    ]);
}

#[test]
fn series_presence_and_identification() {
    check(vec![
        says(
            case(
                "required CT missing",
                T("", ""),
                |w| {
                    w.visit.series.remove(0);
                },
                &[(RequiredSeries, E)],
            ),
            "Required series 'Axial CT chest' (CT_MAIN) was not received for Week 8",
        ),
        case("optional lung series missing", Setup::Full, CT_ONLY, &[]),
        case(
            "optional lung series present",
            Setup::Full,
            |w| {
                let mut lung = ct_series("1.2.9.9", "LUNG 1mm", 20, date(VISIT_DAY));
                each(&mut lung, |i| i.series_number = Some(5));
                w.visit.series.push(lung);
            },
            &[],
        ),
        says(
            case(
                "an extra localizer",
                T("", ""),
                |w| {
                    let mut loc = ct_series("1.2.9.7", "TOPOGRAM", 1, date(VISIT_DAY));
                    each(&mut loc, |i| i.series_number = Some(1));
                    w.visit.series.push(loc);
                },
                &[(UnexpectedSeries, W)],
            ),
            "Series 1 'TOPOGRAM' matches none of the series Week 8 asks for",
        ),
        says(
            case(
                "a baseline-only series at week 8",
                Setup::Full,
                |w| {
                    let mut dwi = mr_series("1.2.9.8", "AX DWI", 20, date(VISIT_DAY));
                    each(&mut dwi, |i| i.series_number = Some(9));
                    w.visit.series.push(dwi);
                },
                &[(UnexpectedSeries, W)],
            ),
            "looks like the charter's 'Diffusion, baseline only' (DWI_BL), which Week 8 does not ask for",
        ),
        says(
            case(
                "description removed by de-identification",
                T("", ""),
                |w| each(w.ct(), |i| i.series_description = None),
                &[(UnexpectedSeries, W), (RequiredSeries, E)],
            ),
            "its description may have been removed during de-identification",
        ),
        case(
            "Clinical Trial Series ID identifies a series without description",
            T("", ""),
            |w| {
                each(w.ct(), |i| {
                    i.series_description = None;
                    i.clinical_trial_series_id = Some("CT_MAIN".into());
                })
            },
            &[],
        ),
        case(
            "a site's own Clinical Trial Series ID is ignored",
            T("", ""),
            |w| each(w.ct(), |i| i.clinical_trial_series_id = Some("SITE-SERIES-7".into())),
            &[],
        ),
        says(
            case(
                "the CT sent twice",
                T("", ""),
                |w| {
                    let mut again = ct_series("1.2.9.5", "BODY 5mm RETRY", 20, date(VISIT_DAY));
                    each(&mut again, |i| i.series_number = Some(6));
                    w.visit.series.push(again);
                },
                &[(RepeatedSeries, W)],
            ),
            "Series 6 'BODY 5mm RETRY' is another series for 'Axial CT chest' (CT_MAIN), already received as Series 2 'BODY 5mm'",
        ),
        says(
            case(
                "the retry received first: the lower Series Number is the original",
                T("", ""),
                |w| {
                    let mut again = ct_series("1.2.9.5", "BODY 5mm RETRY", 20, date(VISIT_DAY));
                    each(&mut again, |i| i.series_number = Some(6));
                    w.visit.series.insert(0, again);
                },
                &[(RepeatedSeries, W)],
            ),
            "Series 6 'BODY 5mm RETRY' is another series for 'Axial CT chest' (CT_MAIN), already received as Series 2 'BODY 5mm'",
        ),
        case(
            "T1 before and after: contrast tells them apart, in any order",
            Setup::Full,
            |w| w.visit.series.swap(1, 2),
            &[],
        ),
        case(
            "T1 before and after, contrast unknown: QC chooses by series number",
            Setup::Full,
            |w| {
                for s in &mut w.visit.series[1..] {
                    each(s, |i| {
                        i.contrast_agent = Some(String::new());
                        i.series_description = Some(
                            i.series_description.clone().unwrap_or_default().replace(" PRE", "").replace(" POST", ""),
                        );
                    });
                }
                w.visit.series[2].series_instance_uid = "1.2.9.4".into();
            },
            &[(AmbiguousSeries, W), (AmbiguousSeries, W), (Contrast, W), (Contrast, W)],
        ),
        case(
            "only the pre-contrast T1 sent twice: post-contrast missing",
            Setup::Full,
            |w| each(&mut w.visit.series[2], |i| i.contrast_agent = None),
            &[(RepeatedSeries, W), (RequiredSeries, E)],
        ),
        says(
            case(
                "the only T1 has no contrast: taken for the pre-contrast T1, the post-contrast one is missing",
                Setup::Full,
                |w| {
                    w.visit.series.remove(1);
                    each(&mut w.visit.series[1], |i| i.contrast_agent = None);
                },
                &[(RequiredSeries, E)],
            ),
            "'3D T1 after gadolinium' (T1_GD) was not received",
        ),
    ]);
}

#[test]
fn unscheduled_and_one_of_visits() {
    check(vec![
        says(
            case(
                "visit not in the schedule, unscheduled not allowed",
                T("", ""),
                |w| w.visit_id = "UNS1".into(),
                &[(Visit, E)],
            ),
            "Visit 'UNS1' is not in the charter's schedule",
        ),
        case(
            "visit not in the schedule, unscheduled allowed: nothing required",
            Setup::Full,
            |w| {
                w.visit_id = "UNS1".into();
                w.window = None;
                w.visit.series.truncate(1);
            },
            &[(Visit, W)],
        ),
        case("echo at baseline, echo now", Setup::Cardiology, CT_ONLY, &[]),
        says(
            case(
                "echo at baseline, cardiac MR now",
                Setup::Cardiology,
                |w| {
                    let mut cine = mr_series("1.2.8.5", "SAX CINE", 12, date("2026-03-30"));
                    each(&mut cine, |i| {
                        i.body_part_examined = Some("HEART".into());
                        i.slice_thickness_mm = Some(8.0);
                        i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 1.5, column_mm: 1.5 });
                        i.magnetic_field_strength_t = Some(1.5);
                        i.scanning_sequence = vec!["GR".into()];
                        i.sequence_variant = vec!["SS".into()];
                        i.mr_acquisition_type = Some("2D".into());
                        i.repetition_time_ms = Some(3.2);
                        i.echo_time_ms = Some(1.4);
                        i.inversion_time_ms = None;
                    });
                    spaced(&mut cine, 10.0);
                    w.visit.series = vec![cine];
                },
                &[(ImagingChoice, E), (BaselineParameters, W)],
            ),
            "This subject was imaged with ECHO at baseline, but Week 12 has CMR",
        ),
        case(
            "echo plus an extra MR",
            Setup::Cardiology,
            |w| {
                let mut cine = mr_series("1.2.8.5", "SAX CINE", 1, date("2026-03-30"));
                each(&mut cine, |i| {
                    i.series_number = Some(7);
                    i.body_part_examined = Some("HEART".into());
                    i.slice_thickness_mm = Some(8.0);
                    i.pixel_spacing_mm = Some(PixelSpacing { row_mm: 1.5, column_mm: 1.5 });
                    i.magnetic_field_strength_t = Some(1.5);
                    i.sequence_variant = vec!["SS".into()];
                    i.scanning_sequence = vec!["GR".into()];
                    i.repetition_time_ms = Some(3.2);
                    i.echo_time_ms = Some(1.4);
                    i.inversion_time_ms = None;
                });
                w.visit.series.push(cine);
            },
            &[(ImagingChoice, W), (BaselineParameters, W)],
        ),
        case("nothing received", Setup::Cardiology, |w| w.visit.series.clear(), &[(RequiredSeries, E)]),
        case(
            "echo with only one view",
            Setup::Cardiology,
            |w| {
                w.visit.series.truncate(1);
            },
            &[(RequiredSeries, E)],
        ),
    ]);
}

#[test]
fn deidentification_burned_in_and_pixels() {
    check(vec![
        case(
            "one image not marked de-identified",
            T("", ""),
            |w| w.ct().instances[3].patient_identity_removed = false,
            &[(Deidentification, E)],
        ),
        says(
            case(
                "method codes missing",
                T("", ""),
                |w| each(w.mr(), |i| i.deidentification_method_codes.clear()),
                &[(Deidentification, E)],
            ),
            "30 of 30 without the Basic Profile method code 113100",
        ),
        case(
            "an unexpected series is checked too",
            T("", ""),
            |w| {
                let mut extra = ct_series("1.2.9.7", "SCOUT", 1, date(VISIT_DAY));
                each(&mut extra, |i| {
                    i.series_number = Some(1);
                    i.patient_identity_removed = false;
                });
                w.visit.series.push(extra);
            },
            &[(UnexpectedSeries, W), (Deidentification, E)],
        ),
        case(
            "burned-in annotation YES",
            T("", ""),
            |w| w.ct().instances[0].burned_in_flags = vec![BurnedInFlag::AnnotationYes],
            &[(BurnedInPhi, E)],
        ),
        says(
            case(
                "possible burned-in text on every echo frame: one warning",
                Setup::Cardiology,
                |w| {
                    each(&mut w.visit.series[0], |i| {
                        i.burned_in_flags = vec![BurnedInFlag::AnnotationUnknown { reason: "modality US".into() }]
                    })
                },
                &[(BurnedInPhi, W)],
            ),
            "1 of 1 images of Series 1 'ECHO A4C' may carry burned-in text (modality US)",
        ),
        case(
            "charter mask not applied",
            T("", ""),
            |w| {
                w.ct().instances[0].burned_in_flags =
                    vec![BurnedInFlag::MaskNotApplied { reason: "compressed pixel data".into() }]
            },
            &[(BurnedInPhi, E)],
        ),
        says(
            case(
                "pixel data undecodable",
                T("", ""),
                |w| w.ct().pixel_decode = PixelDecode::Failed { message: "JPEG 2000: truncated codestream".into() },
                &[(PixelData, E)],
            ),
            "could not be decoded (JPEG 2000: truncated codestream)",
        ),
        case(
            "no decoder on this server",
            T("", ""),
            |w| {
                w.mr().pixel_decode =
                    PixelDecode::Unsupported { message: "JPEG-LS decoding not available on this server".into() }
            },
            &[(PixelData, W)],
        ),
        case("decoding not checked", T("", ""), |w| w.mr().pixel_decode = PixelDecode::NotChecked, &[]),
    ]);
}

#[test]
fn odd_facts_never_panic() {
    check(vec![
        case(
            "a series without instances was not received",
            T("slice_thickness_mm = { max = 5.0 }\nkvp = { max = 140 }", ""),
            |w| w.ct().instances.clear(),
            &[(RequiredSeries, E)],
        ),
        case(
            "not-a-number values",
            T("slice_thickness_mm = { max = 5.0 }", ""),
            |w| {
                each(w.ct(), |i| {
                    i.slice_thickness_mm = Some(f64::NAN);
                    i.image_position_patient_mm = Some([f64::NAN, 0.0, 1.0]);
                })
            },
            &[(SliceThickness, W), (SliceGeometry, W)],
        ),
        case("no series at all", T("", ""), |w| w.visit.series.clear(), &[(RequiredSeries, E), (RequiredSeries, E)]),
    ]);
}

#[test]
fn rule_ids_are_stable_and_unique() {
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    for r in Rule::ALL {
        assert_eq!(Rule::from_id(r.as_str()), Some(*r));
        assert_eq!(serde_json::to_value(r).unwrap(), serde_json::Value::String(r.as_str().into()));
    }
    assert_eq!(SliceThickness.as_str(), "slice_thickness");
    assert_eq!(MissingSlices.as_str(), "missing_slices");
}
