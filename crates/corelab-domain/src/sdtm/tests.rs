//! Data-table tests of the SDTM derivation, written from domain.md sections 1.3, 1.4, 3 and 7.

use std::collections::BTreeMap;

use super::*;
use crate::response::{
    Baseline, BaselineNonTarget, BaselineTarget, Criteria, NewLesion, NonTargetStatus, Protocol, TargetMeasurement,
    Tenths, Timepoint,
};

fn study() -> Study {
    Study { studyid: "ONC-001".into(), criteria: Criteria::Recist11, protocol: Protocol::new(false, 42) }
}

fn visits() -> Vec<Visit> {
    [("BL", "Baseline", -3), ("W8", "Week 8", 56), ("W16", "Week 16", 112)]
        .iter()
        .enumerate()
        .map(|(i, (key, name, day))| Visit {
            key: (*key).into(),
            visitnum: i as u32 + 1,
            name: (*name).into(),
            dtc: Some(format!("2026-01-{:02}", i + 1)),
            study_day: Some(if *day >= 0 { day + 1 } else { *day }),
            method: Some("CT SCAN".into()),
        })
        .collect()
}

fn target(id: &str, organ: &str, node: bool, mm: u32) -> BaselineTarget {
    BaselineTarget { id: id.into(), organ: organ.into(), is_node: node, diameter_mm: Tenths::units(mm) }
}

fn baseline(targets: Vec<BaselineTarget>) -> Baseline {
    Baseline {
        slice_thickness_mm: Some(Tenths::units(5)),
        targets,
        non_targets: vec![BaselineNonTarget {
            id: "NT1".into(),
            organ: "bone".into(),
            is_node: false,
            diameter_mm: None,
        }],
    }
}

fn tp(day: u32, targets: &[(&str, TargetMeasurement)], nt: NonTargetStatus) -> Timepoint {
    Timepoint {
        days_from_baseline: day,
        targets: targets.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect(),
        non_targets: BTreeMap::from([("NT1".to_string(), nt)]),
        new_lesions: vec![],
    }
}

fn m(tenths: u32) -> TargetMeasurement {
    TargetMeasurement::Measured(Tenths::new(tenths))
}

fn read(reader: Reader, b: Baseline, fus: Vec<(&str, Timepoint)>) -> ReaderRead {
    ReaderRead {
        reader,
        baseline_visit: "BL".into(),
        baseline: b,
        follow_ups: fus.into_iter().map(|(k, t)| (k.to_string(), t)).collect(),
        image_refs: BTreeMap::from([(("BL".to_string(), "T1".to_string()), "2.25.777".to_string())]),
    }
}

fn acceptance(adjudicated: bool, reader: Reader, visits: &[&str]) -> Acceptance {
    Acceptance {
        adjudicated,
        measurements: reader,
        responses: visits.iter().map(|v| ((*v).to_string(), reader)).collect(),
        best_response: reader,
    }
}

fn subject(accepted: Option<AcceptedReads>, others: Vec<ReaderRead>) -> SubjectReads {
    SubjectReads { usubjid: "ONC-001-101-001".into(), visits: visits(), accepted, other_reads: others }
}

/// Rows of `ds` as maps of the named variables, filtered by `pred`.
fn rows(ds: &Dataset, names: &[&str], pred: impl Fn(&Dataset, usize) -> bool) -> Vec<Vec<String>> {
    (0..ds.rows.len())
        .filter(|i| pred(ds, *i))
        .map(|i| {
            names
                .iter()
                .map(|n| match ds.get(i, n) {
                    Some(Cell::Char(s)) => s.clone(),
                    Some(Cell::Num(Some(x))) => format!("{x}"),
                    _ => String::new(),
                })
                .collect()
        })
        .collect()
}

fn two_readers_agree() -> SubjectReads {
    let b1 = baseline(vec![target("T1", "liver", false, 30), target("T2", "mediastinal node", true, 20)]);
    let r1 = read(
        Reader::One,
        b1.clone(),
        vec![
            ("W8", tp(56, &[("T1", m(200)), ("T2", TargetMeasurement::TooSmall)], NonTargetStatus::Present)),
            ("W16", tp(112, &[("T1", m(400)), ("T2", m(80))], NonTargetStatus::Present)),
        ],
    );
    let r2 = read(
        Reader::Two,
        b1,
        vec![
            ("W8", tp(56, &[("T1", m(210)), ("T2", m(60))], NonTargetStatus::Present)),
            ("W16", tp(112, &[("T1", m(410)), ("T2", m(90))], NonTargetStatus::Present)),
        ],
    );
    let acc = AcceptedReads {
        reads: vec![r1.clone(), r2.clone()],
        acceptance: acceptance(false, Reader::One, &["W8", "W16"]),
    };
    subject(Some(acc), vec![r1, r2])
}

#[test]
fn accepted_export_holds_the_accepted_readers_records_only() {
    let out = derive(&study(), &[two_readers_agree()], Mode::Accepted).unwrap();
    for ds in out.all() {
        let flag = format!("{}ACPTFL", ds.name);
        let evalid = format!("{}EVALID", ds.name);
        assert!(!ds.rows.is_empty());
        for i in 0..ds.rows.len() {
            assert_eq!(ds.text(i, &flag), "Y", "{} row {i}", ds.name);
            assert_eq!(ds.text(i, &evalid), "RADIOLOGIST 1");
            assert_eq!(ds.text(i, &format!("{}EVAL", ds.name)), "INDEPENDENT ASSESSOR");
            assert_eq!(ds.text(i, "STUDYID"), "ONC-001");
            assert_eq!(ds.text(i, "DOMAIN"), ds.name);
        }
    }
    // Baseline 30 + 20 = 50; W8: 20 + too small (5) = 25 -> PR (10*25 <= 7*50); W16: 40 + 8 = 48,
    // nadir 25: 48 >= 1.2*25 and +23 mm -> PD. Sum of diameters per visit:
    let sums = rows(&out.tr, &["VISIT", "TRSTRESN", "TRORRES"], |d, i| d.text(i, "TRTESTCD") == "SUMDIAM");
    assert_eq!(sums, vec![vec!["Baseline", "50", "50.0"], vec!["Week 8", "25", "25.0"], vec!["Week 16", "48", "48.0"]]);
    let overall = rows(&out.rs, &["VISIT", "RSORRES", "RSCAT", "RSLNKGRP"], |d, i| d.text(i, "RSTESTCD") == "OVRLRESP");
    assert_eq!(
        overall,
        vec![vec!["Week 8", "PR", "RECIST 1.1", "R1-W8"], vec!["Week 16", "PD", "RECIST 1.1", "R1-W16"]]
    );
    let bor = rows(&out.rs, &["RSORRES", "VISIT", "RSTEST"], |d, i| d.text(i, "RSTESTCD") == "BESTRESP");
    assert_eq!(bor, vec![vec!["PR", "", "Best Overall Response"]]);
    // Too small to measure: 5 mm standard value; the node is measured in short axis (LPERP).
    let t2 = rows(&out.tr, &["TRTESTCD", "TRORRES", "TRSTRESC", "TRSTRESN", "TRSTRESU", "TRLNKGRP"], |d, i| {
        d.text(i, "TRLNKID") == "T2" && d.text(i, "VISIT") == "Week 8"
    });
    assert_eq!(t2, vec![vec!["LPERP", "TOO SMALL TO MEASURE", "5", "5", "mm", "R1-W8"]]);
    // TU: one identification per baseline lesion, with location, method and image reference.
    let tu =
        rows(&out.tu, &["TULNKID", "TUORRES", "TULOC", "TUMETHOD", "TUREFID", "VISIT", "TUDTC", "TUDY"], |_, _| true);
    assert_eq!(
        tu,
        vec![
            vec!["T1", "TARGET", "LIVER", "CT SCAN", "2.25.777", "Baseline", "2026-01-01", "-3"],
            vec!["T2", "TARGET", "MEDIASTINAL NODE", "CT SCAN", "", "Baseline", "2026-01-01", "-3"],
            vec!["NT1", "NON-TARGET", "BONE", "CT SCAN", "", "Baseline", "2026-01-01", "-3"],
        ]
    );
    // Sequence numbers are 1..n per subject.
    let seq: Vec<f64> = (0..out.rs.rows.len()).filter_map(|i| out.rs.get(i, "RSSEQ").and_then(Cell::number)).collect();
    assert_eq!(seq, (1..=out.rs.rows.len()).map(|n| n as f64).collect::<Vec<_>>());
}

#[test]
fn all_reads_export_both_readers_and_flags_the_accepted_one() {
    let out = derive(&study(), &[two_readers_agree()], Mode::AllReads).unwrap();
    let overall =
        rows(&out.rs, &["RSEVALID", "VISIT", "RSORRES", "RSACPTFL"], |d, i| d.text(i, "RSTESTCD") == "OVRLRESP");
    // Reader 2: W8 21 + 6 = 27 -> PR; W16 41 + 9 = 50 vs nadir 27 -> PD.
    assert_eq!(
        overall,
        vec![
            vec!["RADIOLOGIST 1", "Week 8", "PR", "Y"],
            vec!["RADIOLOGIST 1", "Week 16", "PD", "Y"],
            vec!["RADIOLOGIST 2", "Week 8", "PR", ""],
            vec!["RADIOLOGIST 2", "Week 16", "PD", ""],
        ]
    );
    // The accepted and the current reads are the same reads: each record is written once.
    let r1_sums = rows(&out.tr, &["TRSTRESN"], |d, i| {
        d.text(i, "TRTESTCD") == "SUMDIAM" && d.text(i, "TREVALID") == "RADIOLOGIST 1"
    });
    assert_eq!(r1_sums.len(), 3);
    let seq: Vec<f64> = (0..out.tr.rows.len()).filter_map(|i| out.tr.get(i, "TRSEQ").and_then(Cell::number)).collect();
    assert_eq!(seq, (1..=out.tr.rows.len()).map(|n| n as f64).collect::<Vec<_>>());
}

#[test]
fn adjudicator_records_carry_the_chosen_read_and_the_accepted_flag() {
    let b = baseline(vec![target("T1", "liver", false, 30), target("T2", "lung", false, 20)]);
    // Reader 1: PD at W8 (66 vs 50); reader 2: SD at W8, PD at W16. The adjudicator chose reader 2.
    let r1 =
        read(Reader::One, b.clone(), vec![("W8", tp(56, &[("T1", m(412)), ("T2", m(249))], NonTargetStatus::Present))]);
    let r2 = read(Reader::Two, b, vec![("W8", tp(56, &[("T1", m(331)), ("T2", m(224))], NonTargetStatus::Present))]);
    let acc = AcceptedReads { reads: vec![r1, r2], acceptance: acceptance(true, Reader::Two, &["W8"]) };
    let s = subject(Some(acc), vec![]);
    let all = derive(&study(), std::slice::from_ref(&s), Mode::AllReads).unwrap();
    let overall =
        rows(&all.rs, &["RSEVALID", "RSORRES", "RSACPTFL", "RSLNKGRP"], |d, i| d.text(i, "RSTESTCD") == "OVRLRESP");
    assert_eq!(
        overall,
        vec![
            vec!["RADIOLOGIST 1", "PD", "", "R1-W8"],
            vec!["RADIOLOGIST 2", "SD", "", "R2-W8"],
            vec!["ADJUDICATOR", "SD", "Y", "R2-W8"],
        ]
    );
    let bor = rows(&all.rs, &["RSEVALID", "RSORRES", "RSACPTFL"], |d, i| d.text(i, "RSTESTCD") == "BESTRESP");
    assert_eq!(
        bor,
        vec![vec!["RADIOLOGIST 1", "PD", ""], vec!["RADIOLOGIST 2", "SD", ""], vec!["ADJUDICATOR", "SD", "Y"]]
    );
    // The adjudicator measures nothing: TU/TR come from the readers, the chosen one accepted.
    assert!((0..all.tr.rows.len()).all(|i| all.tr.text(i, "TREVALID") != "ADJUDICATOR"));
    let accepted_sums = rows(&all.tr, &["TREVALID", "VISIT", "TRSTRESN"], |d, i| {
        d.text(i, "TRTESTCD") == "SUMDIAM" && d.text(i, "TRACPTFL") == "Y"
    });
    assert_eq!(accepted_sums, vec![vec!["RADIOLOGIST 2", "Baseline", "50"], vec!["RADIOLOGIST 2", "Week 8", "55.5"]]);
    let accepted = derive(&study(), &[s], Mode::Accepted).unwrap();
    let evaluators: Vec<String> =
        (0..accepted.rs.rows.len()).map(|i| accepted.rs.text(i, "RSEVALID").to_string()).collect();
    assert!(evaluators.iter().all(|e| e == "ADJUDICATOR"), "{evaluators:?}");
    assert_eq!(accepted.rs.rows.len(), 5, "TRGRESP, NTRGRESP, NEWLIND, OVRLRESP at W8 and BESTRESP");
}

#[test]
fn split_and_merged_lesions_are_grouped_and_summed() {
    let b = baseline(vec![
        target("T1", "liver", false, 30),
        target("T2", "liver", false, 20),
        target("T3", "lung", false, 25),
    ]);
    let r = read(
        Reader::One,
        b,
        vec![
            (
                "W8",
                tp(
                    56,
                    &[
                        ("T1", TargetMeasurement::Fragments(vec![Tenths::units(12), Tenths::new(85)])),
                        ("T2", m(300)),
                        ("T3", TargetMeasurement::MergedInto("T2".into())),
                    ],
                    NonTargetStatus::Present,
                ),
            ),
            (
                "W16",
                tp(
                    112,
                    &[
                        (
                            "T1",
                            TargetMeasurement::Fragments(vec![Tenths::units(10), Tenths::units(8), Tenths::units(4)]),
                        ),
                        ("T2", m(280)),
                        ("T3", TargetMeasurement::MergedInto("T2".into())),
                    ],
                    NonTargetStatus::Present,
                ),
            ),
        ],
    );
    let acc = AcceptedReads { reads: vec![r], acceptance: acceptance(false, Reader::One, &["W8", "W16"]) };
    let out = derive(&study(), &[subject(Some(acc), vec![])], Mode::Accepted).unwrap();
    // TU: fragments are identified when they first appear, grouped with their parent; the merged
    // lesion and the one carrying the mass share a group.
    let tu = rows(&out.tu, &["TULNKID", "TUGRPID", "VISIT"], |_, _| true);
    assert_eq!(
        tu,
        vec![
            vec!["T1", "T1-SPLIT", "Baseline"],
            vec!["T2", "T2-MERGE", "Baseline"],
            vec!["T3", "T2-MERGE", "Baseline"],
            vec!["NT1", "", "Baseline"],
            vec!["T1.1", "T1-SPLIT", "Week 8"],
            vec!["T1.2", "T1-SPLIT", "Week 8"],
            vec!["T1.3", "T1-SPLIT", "Week 16"],
        ]
    );
    // TR: fragments measured on their own; the merged lesion is 0 mm; SoD = 12 + 8.5 + 30 + 0.
    let w8 = rows(&out.tr, &["TRLNKID", "TRTESTCD", "TRSTRESN", "TRGRPID"], |d, i| {
        d.text(i, "VISIT") == "Week 8" && d.text(i, "TRGRPID") == "TARGET"
    });
    assert_eq!(
        w8,
        vec![
            vec!["T1.1", "LDIAM", "12", "TARGET"],
            vec!["T1.2", "LDIAM", "8.5", "TARGET"],
            vec!["T2", "LDIAM", "30", "TARGET"],
            vec!["T3", "LDIAM", "0", "TARGET"],
            vec!["", "SUMDIAM", "50.5", "TARGET"],
        ]
    );
    // The per-lesion values of a visit add up to its SUMDIAM.
    for visit in ["Week 8", "Week 16"] {
        let vals: Vec<f64> = (0..out.tr.rows.len())
            .filter(|&i| out.tr.text(i, "VISIT") == visit && out.tr.text(i, "TRGRPID") == "TARGET")
            .filter_map(|i| Some((out.tr.text(i, "TRTESTCD").to_string(), out.tr.get(i, "TRSTRESN")?.number()?)))
            .map(|(code, v)| if code == "SUMDIAM" { -v } else { v })
            .collect();
        assert!(vals.iter().sum::<f64>().abs() < 1e-9, "{visit}: {vals:?}");
    }
}

#[test]
fn not_evaluated_lesions_and_ne_responses_carry_reasons() {
    let b = baseline(vec![target("T1", "liver", false, 30), target("T2", "lung", false, 20)]);
    let r = read(
        Reader::One,
        b,
        vec![("W8", tp(56, &[("T1", m(280)), ("T2", TargetMeasurement::NotEvaluated)], NonTargetStatus::NotEvaluated))],
    );
    let acc = AcceptedReads { reads: vec![r], acceptance: acceptance(false, Reader::One, &["W8"]) };
    let out = derive(&study(), &[subject(Some(acc), vec![])], Mode::Accepted).unwrap();
    let nd = rows(&out.tr, &["TRLNKID", "TRTESTCD", "TRORRES", "TRSTAT", "TRREASND"], |d, i| {
        d.text(i, "VISIT") == "Week 8" && d.text(i, "TRSTAT") == "NOT DONE"
    });
    assert_eq!(
        nd,
        vec![
            vec!["T2", "LDIAM", "", "NOT DONE", "NOT EVALUATED"],
            vec!["NT1", "TUMSTATE", "", "NOT DONE", "NOT EVALUATED"],
            vec!["", "SUMDIAM", "", "NOT DONE", "NOT ALL TARGET LESIONS EVALUATED"],
        ]
    );
    let rs = rows(&out.rs, &["RSTESTCD", "RSORRES", "RSREASND"], |d, i| d.text(i, "VISIT") == "Week 8");
    assert_eq!(rs[0], vec!["TRGRESP", "NE", "NOT ALL TARGET LESIONS EVALUATED"]);
    assert_eq!(rs[1], vec!["NTRGRESP", "NE", "NOT ALL NON-TARGET LESIONS EVALUATED"]);
    assert_eq!(rs[2], vec!["NEWLIND", "N", ""]);
    assert_eq!(rs[3][..2], ["OVRLRESP".to_string(), "NE".to_string()]);
    assert!(rs[3][2].contains("TARGETS NOT EVALUATED: T2"), "{:?}", rs[3]);
}

#[test]
fn new_lesions_are_identified_once_and_make_progression() {
    let b = baseline(vec![target("T1", "liver", false, 30)]);
    let mut w8 = tp(56, &[("T1", m(250))], NonTargetStatus::Present);
    w8.new_lesions.push(NewLesion {
        id: "NEW1".into(),
        organ: "brain".into(),
        is_node: false,
        diameter_mm: Some(Tenths::units(7)),
        category: None,
        equivocal: false,
        further_increase: false,
    });
    let w16 = tp(112, &[("T1", m(250))], NonTargetStatus::Present);
    let r = read(Reader::One, b, vec![("W8", w8), ("W16", w16)]);
    let acc = AcceptedReads { reads: vec![r], acceptance: acceptance(false, Reader::One, &["W8", "W16"]) };
    let out = derive(&study(), &[subject(Some(acc), vec![])], Mode::Accepted).unwrap();
    let tu = rows(&out.tu, &["TULNKID", "TUORRES", "VISIT"], |d, i| d.text(i, "TUORRES") == "NEW");
    assert_eq!(tu, vec![vec!["NEW1", "NEW", "Week 8"]]);
    let states = rows(&out.tr, &["VISIT", "TRTESTCD", "TRORRES"], |d, i| d.text(i, "TRLNKID") == "NEW1");
    assert_eq!(
        states,
        vec![
            vec!["Week 8", "TUMSTATE", "PRESENT"],
            vec!["Week 8", "LDIAM", "7.0"],
            vec!["Week 16", "TUMSTATE", "ABSENT"]
        ]
    );
    let rs = rows(&out.rs, &["VISIT", "RSTESTCD", "RSORRES"], |d, i| {
        ["NEWLIND", "OVRLRESP"].contains(&d.text(i, "RSTESTCD")) && d.text(i, "VISIT") == "Week 8"
    });
    assert_eq!(rs, vec![vec!["Week 8", "NEWLIND", "Y"], vec!["Week 8", "OVRLRESP", "PD"]]);
}

#[test]
fn an_unknown_visit_or_an_invalid_read_is_an_error_naming_the_subject() {
    let b = baseline(vec![target("T1", "liver", false, 30)]);
    let r = read(Reader::One, b.clone(), vec![("W99", tp(56, &[("T1", m(250))], NonTargetStatus::Present))]);
    let acc = AcceptedReads { reads: vec![r], acceptance: acceptance(false, Reader::One, &["W99"]) };
    let e = derive(&study(), &[subject(Some(acc), vec![])], Mode::Accepted).unwrap_err();
    assert_eq!(e.to_string(), "subject ONC-001-101-001: visit W99 is not in the visit list");
    let r = read(Reader::One, b, vec![("W8", tp(56, &[("T9", m(250))], NonTargetStatus::Present))]);
    let e = derive(&study(), &[subject(None, vec![r])], Mode::AllReads).unwrap_err();
    assert!(e.to_string().starts_with("subject ONC-001-101-001: the reads do not evaluate"), "{e}");
}

#[test]
fn datasets_write_as_xpt_csv_and_define() {
    let out = derive(&study(), &[two_readers_agree()], Mode::AllReads).unwrap();
    for ds in out.all() {
        let bytes = write_xpt(ds, "27NOV26:10:15:00").unwrap();
        assert_eq!(bytes.len() % 80, 0);
        let csv = write_csv(ds);
        assert_eq!(csv.lines().count(), ds.rows.len() + 1);
    }
    let listing = define_csv(&out.all());
    assert!(listing.starts_with("Dataset,Variable,Label,Type,Length,Origin\r\n"));
    assert!(listing.contains("TR,TRSTRESN,Numeric Result/Finding in Standard Units,Num,8,Derived\r\n"), "{listing}");
    assert!(listing.contains("RS,RSEVALID,Evaluator Identifier,Char,13,Assigned\r\n"), "{listing}");
    let xml = define_xml("ONC-001", "2026-11-27T10:15:00Z", &out.all());
    assert!(xml.contains("<ItemGroupDef OID=\"IG.RS\" Name=\"RS\""));
    assert!(xml.contains("<ItemDef OID=\"IT.TU.TULNKID\" Name=\"TULNKID\" DataType=\"text\""));
}

#[test]
fn irecist_reads_use_irecist_codes_and_new_lesion_kinds() {
    let irecist = Study { studyid: "IO-002".into(), criteria: Criteria::IRecist, protocol: Protocol::new(false, 42) };
    let b = baseline(vec![target("T1", "liver", false, 30)]);
    let mut w8 = tp(56, &[("T1", m(300))], NonTargetStatus::Present);
    w8.new_lesions.push(NewLesion {
        id: "NL1".into(),
        organ: "lung".into(),
        is_node: false,
        diameter_mm: Some(Tenths::units(12)),
        category: Some(crate::response::NewLesionCategory::Target),
        equivocal: false,
        further_increase: false,
    });
    let r = read(Reader::One, b, vec![("W8", w8)]);
    let acc = AcceptedReads { reads: vec![r], acceptance: acceptance(false, Reader::One, &["W8"]) };
    let out = derive(&irecist, &[subject(Some(acc), vec![])], Mode::Accepted).unwrap();
    let tu = rows(&out.tu, &["TULNKID", "TUORRES", "VISIT"], |d, i| d.text(i, "TULNKID") == "NL1");
    assert_eq!(tu, vec![vec!["NL1", "NEW TARGET", "Week 8"]]);
    let rs = rows(&out.rs, &["RSTESTCD", "RSORRES", "RSCAT"], |_, _| true);
    assert_eq!(
        rs,
        vec![
            vec!["TRGRESP", "iSD", "iRECIST"],
            vec!["NTRGRESP", "NON-iCR/NON-iUPD", "iRECIST"],
            vec!["NEWLIND", "Y", "iRECIST"],
            vec!["OVRLRESP", "iUPD", "iRECIST"],
            vec!["BESTRESP", "iUPD", "iRECIST"],
        ]
    );
}
