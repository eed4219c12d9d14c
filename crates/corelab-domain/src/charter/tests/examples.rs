use super::super::*;
use super::*;

#[test]
fn examples_have_no_problems() {
    for (name, text) in EXAMPLES {
        let check = check_charter(text);
        let shown: Vec<String> = check.problems.iter().map(|p| format!("{name}:{p}")).collect();
        assert!(shown.is_empty(), "{}", shown.join("\n"));
        assert!(check.charter.is_some(), "{name}");
    }
}

#[test]
fn oncology_example_reads_into_the_model() {
    let c = parse_ok(ONCOLOGY);
    assert_eq!(c.trial.protocol_id, "ACME-101");
    assert_eq!(c.trial.therapeutic_area, TherapeuticArea::Oncology);
    assert_eq!(c.sites.len(), 3);
    assert_eq!(c.schedule.anchor, Anchor::Randomization);
    let visits = c.scheduled_visits();
    let ids: Vec<&str> = visits.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["BL", "W8", "W16", "W24", "W32", "W40", "W48", "W56", "W64", "W72", "W80", "W88", "W96"]);
    assert_eq!(visits[1].day, 56);
    assert_eq!(visits[1].label, "Week 8");
    assert!(visits[0].baseline && !visits[1].baseline);

    let (req, pv) = c.series("CT_CAP_PV").unwrap();
    assert_eq!(req.id, "CT_CAP");
    assert_eq!(req.modality, Modality::Ct);
    let k = &pv.constraints;
    assert_eq!(k.slice_thickness_mm, Some(Range { min: None, max: Some(5.0) }));
    assert_eq!(k.kvp, Some(Range { min: Some(80.0), max: Some(140.0) }));
    assert_eq!(k.matrix_min, Some(512));
    assert_eq!(
        k.contrast,
        Some(ContrastRule {
            agent: ContrastAgent::Required,
            phase: Some(ContrastPhase::PortalVenous),
            min_delay_minutes: None
        })
    );
    assert!(k.slice_thickness_mm.is_some_and(|r| r.contains(5.0) && !r.contains(5.01)));
    assert!(!c.series("CT_CHEST_LUNG").unwrap().1.required);
    assert_eq!(pv.identify.contrast, Some(true));

    let r = &c.reads;
    assert_eq!(r.criteria, [Criteria::Recist11]);
    assert_eq!(r.readers_per_case, 2);
    assert_eq!(r.sd_min_days, Some(42));
    assert_eq!(
        r.adjudication,
        Some(Adjudication {
            triggers: vec![AdjudicationTrigger::ProgressionDate],
            choice: AdjudicationChoice::PerSubject,
            ef_tolerance_points: None
        })
    );
    assert_eq!(c.qc.stages, QcStages::AutomatedQc1Qc2);
    assert!(c.qc.stages.has_qc1() && c.qc.stages.has_qc2());
    assert_eq!(c.deidentification.dates, crate::deid_profile::DateHandling::Shift);
    assert_eq!(c.deidentification.max_shift_days, 365);
    assert!(c.deidentification.retain_patient_characteristics);
    assert!(!c.deidentification.retain_device_identity);
}

#[test]
fn cardiology_and_neurology_examples_read_into_the_model() {
    let c = parse_ok(CARDIOLOGY);
    assert_eq!(c.schedule.anchor, Anchor::Enrollment);
    let visits = c.scheduled_visits();
    let ids: Vec<(&str, i32)> = visits.iter().map(|v| (v.id.as_str(), v.day)).collect();
    assert_eq!(ids, [("BL", 0), ("W12", 84), ("W26", 182), ("W52", 364)]);
    assert!(visits.iter().all(|v| v.imaging_rule == ImagingRule::OneOf));
    let (cmr, sax) = c.series("CMR_CINE_SAX").unwrap();
    assert_eq!(cmr.modality, Modality::Mr);
    assert_eq!(sax.constraints.mr_sequence, Some(MrSequence::CineSsfp));
    assert_eq!(sax.constraints.field_strength_t, Some(Range { min: Some(1.5), max: Some(3.0) }));
    assert_eq!(c.reads.measures, [Measure::Lvef, Measure::LvEdv, Measure::LvEsv]);
    assert_eq!(
        c.reads.adjudication.as_ref().and_then(|a| a.ef_tolerance_points),
        Some(crate::response::Tenths::units(5))
    );

    let n = parse_ok(NEUROLOGY);
    let t1 = n.series("T1_3D_GD").unwrap().1;
    assert!(t1.constraints.same_scanner_as_baseline);
    assert_eq!(t1.constraints.mr_acquisition, Some(MrAcquisition::ThreeD));
    assert_eq!(t1.constraints.contrast.and_then(|c| c.min_delay_minutes), Some(5));
    assert_eq!(n.visits[0].window, Window { minus_days: 21, plus_days: -1 });
    let follow_up = &n.scheduled_visits()[1];
    assert_eq!((follow_up.id.as_str(), follow_up.day), ("W12", 84));
    assert_eq!(follow_up.series, ["T1_3D_PRE", "T1_3D_GD", "FLAIR_3D", "T2_AX"]);
    assert!(n.deidentification.retain_device_identity);
    assert_eq!(n.reads.readers_per_case, 1);
    assert_eq!(n.reads.adjudication, None);
}

#[test]
fn lookups_for_the_dimse_and_app_layers() {
    let c = parse_ok(ONCOLOGY);
    assert_eq!(c.site_for_ae_title("SLS_PACS").map(|s| s.id.as_str()), Some("101"));
    assert_eq!(c.site_for_ae_title(" sls_pacs ").map(|s| s.id.as_str()), Some("101"));
    assert_eq!(c.site_for_ae_title("MGH_ONCO_PACS").map(|s| s.id.as_str()), Some("201"));
    assert!(c.site_for_ae_title("UNKNOWN_AE").is_none());
    assert!(c.is_called_ae_title("ACME101"));
    assert!(!c.is_called_ae_title("CARDIO22"));
    assert!(c.subject_id_matches("101", "101-001"));
    assert!(!c.subject_id_matches("101", "102-001"));
    assert!(!c.subject_id_matches("999", "999-001"), "unknown site");
    assert_eq!(c.site_for_subject("102-017").map(|s| s.id.as_str()), Some("102"));
    assert!(c.site_for_subject("103-017").is_none());
    assert_eq!(c.subjects.id_pattern.as_str(), "{site}-{nnn}");
    assert_eq!(c.arms.len(), 2);
    let blinded = c.without_arms();
    assert!(blinded.arms.is_empty());
    assert_eq!(blinded.sites, c.sites);
}

#[test]
fn broken_copy_reports_one_clear_message_per_problem() {
    let text = replace_once(ONCOLOGY, "kvp = { min = 80, max = 140 }", "kvp = \"80-140\"");
    let text =
        replace_once(&text, "confirmation_required = false", "confirmation_required = false\nconfirmation_days = 28");
    let text = replace_once(
        &text,
        "window = { minus_days = 7, plus_days = 7 }",
        "window = { minus_days = 7, plus_days = -9 }",
    );
    let text = replace_once(&text, "until_week = 96", "until_week = 96\nseries = [\"CT_CAP_ART\"]");

    let problems = match parse_charter(&text) {
        Ok(_) => panic!("a broken charter was accepted"),
        Err(p) => p,
    };
    let shown = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(problems.len(), 4, "{shown}");
    let expect = [
        (
            "visits[1].series[0]",
            line_of(&text, "series = [\"CT_CAP_ART\"]"),
            ProblemCode::UnknownReference,
            "visit refers to unknown series \"CT_CAP_ART\"",
        ),
        (
            "visits[1].window.plus_days",
            line_of(&text, "plus_days = -9"),
            ProblemCode::WindowEndsBeforeStart,
            "window ends before it starts: for day 56 it opens on day 49 and closes on day 47",
        ),
        (
            "imaging[0].series[0].constraints.kvp",
            line_of(&text, "kvp = \"80-140\""),
            ProblemCode::WrongType,
            "expected a table, found a string",
        ),
        (
            "reads.confirmation_days",
            line_of(&text, "confirmation_days = 28"),
            ProblemCode::UnknownKey,
            "unknown key `confirmation_days`",
        ),
    ];
    for (p, (key, line, code, message)) in problems.iter().zip(expect) {
        assert_eq!((p.key.as_str(), p.line, p.code), (key, line, code), "{shown}");
        assert_eq!(p.message, message);
        assert!(p.is_error());
    }
    assert_eq!(problems[0].hint, "did you mean \"CT_CAP_PV\"?");
    assert_eq!(problems[3].hint, "did you mean `confirmation_min_days`?");
    assert_eq!(
        problems[1].to_string(),
        format!(
            "{}:28: visits[1].window.plus_days: window ends before it starts: for day 56 it opens on day 49 and closes on day 47 (hint: the window is [day - minus_days, day + plus_days]; plus_days must be at least -7)",
            problems[1].line
        )
    );
}
