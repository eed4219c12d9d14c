//! TU, TR and RS rows from blinded reads (domain.md section 7).
//!
//! Each reader's read is run through the response engine here, so every response and sum in the
//! datasets is the engine's. Evaluators: RADIOLOGIST 1 and RADIOLOGIST 2 (the case's reader slots)
//! and, for adjudicated cases, ADJUDICATOR: the adjudicator's RS records are the responses of the
//! read they chose, linked (RSLNKGRP) to that reader's TR records. The accepted record flag
//! (--ACPTFL = "Y") marks the accepted result: the measurements of the accepted reader (TU/TR) and
//! the accepted responses (RS; the ADJUDICATOR records when a case was adjudicated).

use std::collections::{BTreeMap, BTreeSet};

use super::dataset::{Cell, Dataset};
use super::variables::{RS_VARIABLES, TR_VARIABLES, TU_VARIABLES};
use crate::response::{
    Baseline, CaseInput, CaseResult, Criteria, NewLesionCategory, NonTargetStatus, Protocol, Response, ResponseError,
    TargetMeasurement, Tenths, Timepoint, TimepointResult, evaluate_case,
};

/// A reader slot of a read case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reader {
    One,
    Two,
}

impl Reader {
    pub fn from_slot(slot: i64) -> Option<Reader> {
        match slot {
            1 => Some(Reader::One),
            2 => Some(Reader::Two),
            _ => None,
        }
    }

    fn evaluator(self) -> Evaluator {
        match self {
            Reader::One => Evaluator::Radiologist1,
            Reader::Two => Evaluator::Radiologist2,
        }
    }
}

/// Who an SDTM record is attributed to (--EVALID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Evaluator {
    Radiologist1,
    Radiologist2,
    Adjudicator,
}

impl Evaluator {
    pub fn as_str(self) -> &'static str {
        match self {
            Evaluator::Radiologist1 => "RADIOLOGIST 1",
            Evaluator::Radiologist2 => "RADIOLOGIST 2",
            Evaluator::Adjudicator => "ADJUDICATOR",
        }
    }

    /// Prefix of link groups: R1, R2, ADJ.
    fn tag(self) -> &'static str {
        match self {
            Evaluator::Radiologist1 => "R1",
            Evaluator::Radiologist2 => "R2",
            Evaluator::Adjudicator => "ADJ",
        }
    }
}

/// --EVAL of every record: reads come from blinded independent central review.
pub const EVAL: &str = "INDEPENDENT ASSESSOR";

/// The study-level inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Study {
    pub studyid: String,
    pub criteria: Criteria,
    pub protocol: Protocol,
}

/// A visit as it appears in the datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The charter's visit id (the key reads refer to).
    pub key: String,
    /// Position in the charter's schedule, from 1.
    pub visitnum: u32,
    /// The charter's visit label.
    pub name: String,
    /// ISO 8601 date of the scan, when known.
    pub dtc: Option<String>,
    /// SDTM study day (no day 0), when known.
    pub study_day: Option<i64>,
    /// "CT SCAN", "MRI", ... from the modality of the images read.
    pub method: Option<String>,
}

/// One reader's locked reads of a subject: the baseline and the follow-ups in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRead {
    pub reader: Reader,
    pub baseline_visit: String,
    pub baseline: Baseline,
    /// (visit key, readings); `days_from_baseline` as the engine takes it.
    pub follow_ups: Vec<(String, Timepoint)>,
    /// (visit key, lesion id) -> image reference (SOP Instance UID) the reader gave.
    pub image_refs: BTreeMap<(String, String), String>,
}

/// Which reads make the accepted result of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// An adjudicator chose between the readers.
    pub adjudicated: bool,
    /// The reader whose lesion measurements are accepted (TU, TR).
    pub measurements: Reader,
    /// Visit key -> the reader whose timepoint responses are accepted (RS).
    pub responses: BTreeMap<String, Reader>,
    /// The reader whose best overall response is accepted.
    pub best_response: Reader,
}

/// The reads of the accepted result and how they were accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReads {
    pub reads: Vec<ReaderRead>,
    pub acceptance: Acceptance,
}

/// Everything exported for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectReads {
    pub usubjid: String,
    pub visits: Vec<Visit>,
    /// The accepted result in force, if any.
    pub accepted: Option<AcceptedReads>,
    /// Further reads (the current version of every locked read) for an all-reads export; records
    /// identical to accepted ones are written once, flagged.
    pub other_reads: Vec<ReaderRead>,
}

/// Which records to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the accepted records (--ACPTFL = "Y").
    Accepted,
    /// Every reader's records, and the adjudicator's; accepted ones flagged.
    AllReads,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdtmError {
    #[error("subject {usubjid}: the reads do not evaluate: {source}")]
    Engine { usubjid: String, source: ResponseError },
    #[error("subject {usubjid}: visit {visit} is not in the visit list")]
    UnknownVisit { usubjid: String, visit: String },
}

/// The three datasets.
#[derive(Debug, Clone, PartialEq)]
pub struct SdtmDatasets {
    pub tu: Dataset,
    pub tr: Dataset,
    pub rs: Dataset,
}

impl SdtmDatasets {
    pub fn all(&self) -> [&Dataset; 3] {
        [&self.tu, &self.tr, &self.rs]
    }

    pub fn by_name(&self, name: &str) -> Option<&Dataset> {
        self.all().into_iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Keeps only the records of one subject (by USUBJID), e.g. for a one-subject package.
    pub fn retain_subject(&mut self, usubjid: &str) {
        for d in [&mut self.tu, &mut self.tr, &mut self.rs] {
            if let Some(col) = d.variables.iter().position(|v| v.name == "USUBJID") {
                d.rows.retain(|r| matches!(r.get(col), Some(Cell::Char(s)) if s == usubjid));
            }
        }
    }
}

/// A record before sequencing: its sort key and its cells by variable name.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    evaluator: Evaluator,
    visitnum: u32,
    cells: BTreeMap<&'static str, Cell>,
}

impl Rec {
    fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        let v: String = value.into();
        self.cells.insert(name, Cell::Char(v));
        self
    }

    fn num(&mut self, name: &'static str, value: Option<f64>) -> &mut Self {
        self.cells.insert(name, Cell::Num(value));
        self
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.cells.get(name), Some(Cell::Char(s)) if s == "Y")
    }

    /// The record's content apart from its accepted flag.
    fn content_without(&self, flag: &str) -> Vec<(&'static str, Cell)> {
        self.cells.iter().filter(|(k, _)| **k != flag).map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// Records of one subject, per domain.
#[derive(Default)]
struct Recs {
    tu: Vec<Rec>,
    tr: Vec<Rec>,
    rs: Vec<Rec>,
}

/// Builds TU, TR and RS.
pub fn derive(study: &Study, subjects: &[SubjectReads], mode: Mode) -> Result<SdtmDatasets, SdtmError> {
    let mut tu = Dataset::new("TU", "Tumor/Lesion Identification", TU_VARIABLES);
    let mut tr = Dataset::new("TR", "Tumor/Lesion Results", TR_VARIABLES);
    let mut rs = Dataset::new("RS", "Disease Response", RS_VARIABLES);
    let mut ordered: Vec<&SubjectReads> = subjects.iter().collect();
    ordered.sort_by(|a, b| a.usubjid.cmp(&b.usubjid));
    for s in ordered {
        let mut accepted = Recs::default();
        if let Some(a) = &s.accepted {
            for read in &a.reads {
                subject_read(study, s, read, Some(&a.acceptance), &mut accepted)?;
            }
            adjudicator_records(study, s, a, &mut accepted)?;
        }
        let mut others = Recs::default();
        if mode == Mode::AllReads {
            for read in &s.other_reads {
                subject_read(study, s, read, None, &mut others)?;
            }
        }
        let pick = |acc: Vec<Rec>, oth: Vec<Rec>, flag: &str| -> Vec<Rec> {
            let mut out: Vec<Rec> = match mode {
                Mode::Accepted => acc.into_iter().filter(|r| r.flag(flag)).collect(),
                Mode::AllReads => acc,
            };
            let mut seen: Vec<Vec<(&'static str, Cell)>> = out.iter().map(|r| r.content_without(flag)).collect();
            for r in oth {
                let key = r.content_without(flag);
                if !seen.contains(&key) {
                    seen.push(key);
                    out.push(r);
                }
            }
            out
        };
        let tu_recs = pick(accepted.tu, others.tu, "TUACPTFL");
        let tr_recs = pick(accepted.tr, others.tr, "TRACPTFL");
        let rs_recs = pick(accepted.rs, others.rs, "RSACPTFL");
        emit(&mut tu, study, &s.usubjid, "TUSEQ", tu_recs);
        emit(&mut tr, study, &s.usubjid, "TRSEQ", tr_recs);
        emit(&mut rs, study, &s.usubjid, "RSSEQ", rs_recs);
    }
    Ok(SdtmDatasets { tu, tr, rs })
}

/// Sorts a subject's records (evaluator, visit, order made) and appends them with --SEQ.
fn emit(ds: &mut Dataset, study: &Study, usubjid: &str, seq: &'static str, mut recs: Vec<Rec>) {
    recs.sort_by_key(|r| (r.evaluator, r.visitnum));
    for (i, mut r) in recs.into_iter().enumerate() {
        r.set("STUDYID", study.studyid.clone()).set("DOMAIN", ds.name).set("USUBJID", usubjid);
        r.num(seq, Some((i + 1) as f64));
        let mut row = ds.blank_row();
        for (name, cell) in r.cells {
            if let Some(col) = ds.column(name)
                && let Some(slot) = row.get_mut(col)
            {
                *slot = cell;
            }
        }
        ds.rows.push(row);
    }
}

fn mm(t: Tenths) -> f64 {
    f64::from(t.get()) / 10.0
}

fn response_code(r: Response) -> Option<&'static str> {
    Some(match r {
        Response::Cr => "CR",
        Response::Pr => "PR",
        Response::Sd => "SD",
        Response::Pd => "PD",
        Response::Ne => "NE",
        Response::NonCrNonPd => "NON-CR/NON-PD",
        Response::Na => return None,
        Response::ICr => "iCR",
        Response::IPr => "iPR",
        Response::ISd => "iSD",
        Response::IUpd => "iUPD",
        Response::ICpd => "iCPD",
        Response::NonICrNonIUpd => "NON-iCR/NON-iUPD",
    })
}

fn criteria_cat(c: Criteria) -> &'static str {
    match c {
        Criteria::Recist11 => "RECIST 1.1",
        Criteria::IRecist => "iRECIST",
    }
}

pub(crate) fn evaluate(study: &Study, usubjid: &str, read: &ReaderRead) -> Result<CaseResult, SdtmError> {
    let case = CaseInput {
        id: Some(usubjid.to_string()),
        criteria: study.criteria,
        protocol: study.protocol,
        baseline: read.baseline.clone(),
        timepoints: read.follow_ups.iter().map(|(_, t)| t.clone()).collect(),
    };
    evaluate_case(&case).map_err(|source| SdtmError::Engine { usubjid: usubjid.to_string(), source })
}

struct Ctx<'a> {
    subject: &'a SubjectReads,
    evaluator: Evaluator,
}

impl Ctx<'_> {
    fn visit(&self, key: &str) -> Result<&Visit, SdtmError> {
        self.subject
            .visits
            .iter()
            .find(|v| v.key == key)
            .ok_or_else(|| SdtmError::UnknownVisit { usubjid: self.subject.usubjid.clone(), visit: key.to_string() })
    }

    /// A record of this evaluator at `visit` with the evaluator and visit variables filled.
    fn rec(&self, prefix: &str, visit: Option<&Visit>) -> Rec {
        let mut r =
            Rec { evaluator: self.evaluator, visitnum: visit.map_or(u32::MAX, |v| v.visitnum), cells: BTreeMap::new() };
        let name = |suffix: &str| -> &'static str { var_name(prefix, suffix) };
        r.set(name("EVAL"), EVAL).set(name("EVALID"), self.evaluator.as_str());
        if let Some(v) = visit {
            r.num("VISITNUM", Some(f64::from(v.visitnum))).set("VISIT", v.name.clone());
            if let Some(d) = &v.dtc {
                r.set(name("DTC"), d.clone());
            }
            r.num(name("DY"), v.study_day.map(|d| d as f64));
        }
        r
    }

    fn link_group(&self, visit: &str) -> String {
        format!("{}-{visit}", self.evaluator.tag())
    }
}

/// The variable `prefix` + `suffix` of TU/TR/RS as a static name.
fn var_name(prefix: &str, suffix: &str) -> &'static str {
    let all = TU_VARIABLES.iter().chain(TR_VARIABLES).chain(RS_VARIABLES);
    let wanted = format!("{prefix}{suffix}");
    all.map(|v| v.name).find(|n| *n == wanted).unwrap_or("")
}

/// Split and merge groups of a read: lesion id -> TUGRPID.
fn lesion_groups(read: &ReaderRead) -> BTreeMap<String, String> {
    let mut groups = BTreeMap::new();
    for (_, tp) in &read.follow_ups {
        for (id, m) in &tp.targets {
            match m {
                TargetMeasurement::Fragments(_) => {
                    groups.entry(id.clone()).or_insert_with(|| format!("{id}-SPLIT"));
                }
                TargetMeasurement::MergedInto(host) => {
                    let g = groups.get(host).cloned().unwrap_or_else(|| format!("{host}-MERGE"));
                    groups.entry(host.clone()).or_insert_with(|| g.clone());
                    groups.entry(id.clone()).or_insert(g);
                }
                _ => {}
            }
        }
    }
    groups
}

fn diameter_test(is_node: bool) -> (&'static str, &'static str) {
    if is_node { ("LPERP", "Longest Perpendicular") } else { ("LDIAM", "Longest Diameter") }
}

fn measured(r: &mut Rec, value: Tenths) {
    let text = value.to_string();
    r.set("TRORRES", text.clone())
        .set("TRORRESU", "mm")
        .set("TRSTRESC", text)
        .num("TRSTRESN", Some(mm(value)))
        .set("TRSTRESU", "mm");
}

fn not_done(r: &mut Rec, prefix: &str, reason: &str) {
    r.set(var_name(prefix, "STAT"), "NOT DONE").set(var_name(prefix, "REASND"), reason);
}

/// TU, TR and RS records of one reader's read.
fn subject_read(
    study: &Study,
    subject: &SubjectReads,
    read: &ReaderRead,
    acceptance: Option<&Acceptance>,
    out: &mut Recs,
) -> Result<(), SdtmError> {
    let result = evaluate(study, &subject.usubjid, read)?;
    let ctx = Ctx { subject, evaluator: read.reader.evaluator() };
    let measurements_accepted = acceptance.is_some_and(|a| a.measurements == read.reader);
    let groups = lesion_groups(read);
    let base_visit = ctx.visit(&read.baseline_visit)?;
    let image = |visit: &str, lesion: &str| read.image_refs.get(&(visit.to_string(), lesion.to_string())).cloned();
    let lnkgrp_base = ctx.link_group(&read.baseline_visit);

    let tu = |visit: &Visit, lnkid: &str, kind: &str, organ: &str, group: Option<&String>, refid: Option<String>| {
        let mut r = ctx.rec("TU", Some(visit));
        r.set("TULNKID", lnkid)
            .set("TUTESTCD", "TUMIDENT")
            .set("TUTEST", "Tumor Identification")
            .set("TUORRES", kind)
            .set("TUSTRESC", kind)
            .set("TULOC", organ.trim().to_uppercase());
        if let Some(g) = group {
            r.set("TUGRPID", g.clone());
        }
        if let Some(m) = &visit.method {
            r.set("TUMETHOD", m.clone());
        }
        if let Some(refid) = refid {
            r.set("TUREFID", refid);
        }
        if measurements_accepted {
            r.set("TUACPTFL", "Y");
        }
        r
    };
    let tr = |visit: &Visit, group: &str, lnkid: &str, lnkgrp: &str, test: (&str, &str)| {
        let mut r = ctx.rec("TR", Some(visit));
        r.set("TRGRPID", group).set("TRLNKGRP", lnkgrp).set("TRTESTCD", test.0).set("TRTEST", test.1);
        if !lnkid.is_empty() {
            r.set("TRLNKID", lnkid);
        }
        if let Some(m) = &visit.method {
            r.set("TRMETHOD", m.clone());
        }
        if measurements_accepted {
            r.set("TRACPTFL", "Y");
        }
        r
    };

    // Baseline: identification and measurements.
    for t in &read.baseline.targets {
        let refid = image(&read.baseline_visit, &t.id);
        out.tu.push(tu(base_visit, &t.id, "TARGET", &t.organ, groups.get(&t.id), refid.clone()));
        let mut r = tr(base_visit, "TARGET", &t.id, &lnkgrp_base, diameter_test(t.is_node));
        measured(&mut r, t.diameter_mm);
        if let Some(refid) = refid {
            r.set("TRREFID", refid);
        }
        out.tr.push(r);
    }
    for n in &read.baseline.non_targets {
        let refid = image(&read.baseline_visit, &n.id);
        out.tu.push(tu(base_visit, &n.id, "NON-TARGET", &n.organ, None, refid));
        let mut r = tr(base_visit, "NON-TARGET", &n.id, &lnkgrp_base, ("TUMSTATE", "Tumor State"));
        r.set("TRORRES", "PRESENT").set("TRSTRESC", "PRESENT");
        out.tr.push(r);
    }
    if !read.baseline.targets.is_empty() {
        let mut r = tr(base_visit, "TARGET", "", &lnkgrp_base, ("SUMDIAM", "Sum of Diameters"));
        if let Some(sum) = result.baseline_sum_mm {
            measured(&mut r, sum);
        }
        out.tr.push(r);
    }

    // Follow-ups.
    let mut fragments_known: BTreeMap<String, usize> = BTreeMap::new();
    let mut new_known: BTreeSet<String> = BTreeSet::new();
    let mut new_seen: BTreeMap<String, String> = BTreeMap::new();
    for (index, (visit_key, tp)) in read.follow_ups.iter().enumerate() {
        let visit = ctx.visit(visit_key)?;
        let lnkgrp = ctx.link_group(visit_key);
        for t in &read.baseline.targets {
            let test = diameter_test(t.is_node);
            let refid = image(visit_key, &t.id);
            match tp.targets.get(&t.id) {
                Some(TargetMeasurement::Fragments(parts)) => {
                    let known = fragments_known.get(&t.id).copied().unwrap_or(0);
                    for (i, part) in parts.iter().enumerate() {
                        let lnkid = format!("{}.{}", t.id, i + 1);
                        if i >= known {
                            out.tu.push(tu(visit, &lnkid, "TARGET", &t.organ, groups.get(&t.id), None));
                        }
                        let mut r = tr(visit, "TARGET", &lnkid, &lnkgrp, test);
                        measured(&mut r, *part);
                        out.tr.push(r);
                    }
                    fragments_known.insert(t.id.clone(), known.max(parts.len()));
                }
                other => {
                    let mut r = tr(visit, "TARGET", &t.id, &lnkgrp, test);
                    match other {
                        Some(TargetMeasurement::Measured(v)) => measured(&mut r, *v),
                        Some(TargetMeasurement::TooSmall) => {
                            r.set("TRORRES", "TOO SMALL TO MEASURE")
                                .set("TRSTRESC", "5")
                                .num("TRSTRESN", Some(5.0))
                                .set("TRSTRESU", "mm");
                        }
                        Some(TargetMeasurement::MergedInto(_)) => measured(&mut r, Tenths::ZERO),
                        Some(TargetMeasurement::NotEvaluated) | None => not_done(&mut r, "TR", "NOT EVALUATED"),
                        Some(TargetMeasurement::Fragments(_)) => {}
                    }
                    if let Some(refid) = refid {
                        r.set("TRREFID", refid);
                    }
                    out.tr.push(r);
                }
            }
        }
        for n in &read.baseline.non_targets {
            let mut r = tr(visit, "NON-TARGET", &n.id, &lnkgrp, ("TUMSTATE", "Tumor State"));
            let state = match tp.non_targets.get(&n.id) {
                Some(NonTargetStatus::Absent) => Some("ABSENT"),
                Some(NonTargetStatus::Present) => Some("PRESENT"),
                Some(NonTargetStatus::UnequivocalProgression) => Some("UNEQUIVOCAL PROGRESSION"),
                Some(NonTargetStatus::FurtherIncrease) => Some("FURTHER INCREASE"),
                Some(NonTargetStatus::NotEvaluated) | None => None,
            };
            match state {
                Some(s) => {
                    r.set("TRORRES", s).set("TRSTRESC", s);
                }
                None => not_done(&mut r, "TR", "NOT EVALUATED"),
            }
            if let Some(refid) = image(visit_key, &n.id) {
                r.set("TRREFID", refid);
            }
            out.tr.push(r);
        }
        let mut listed: BTreeSet<&str> = BTreeSet::new();
        for l in &tp.new_lesions {
            listed.insert(l.id.as_str());
            let kind = match (study.criteria, l.category) {
                (Criteria::IRecist, Some(NewLesionCategory::Target)) => "NEW TARGET",
                (Criteria::IRecist, Some(NewLesionCategory::NonTarget)) => "NEW NON-TARGET",
                _ => "NEW",
            };
            let refid = image(visit_key, &l.id);
            if new_known.insert(l.id.clone()) {
                out.tu.push(tu(visit, &l.id, kind, &l.organ, None, refid.clone()));
            }
            new_seen.insert(l.id.clone(), kind.to_string());
            let state = if l.equivocal { "EQUIVOCAL" } else { "PRESENT" };
            let mut r = tr(visit, kind, &l.id, &lnkgrp, ("TUMSTATE", "Tumor State"));
            r.set("TRORRES", state).set("TRSTRESC", state);
            if let Some(refid) = &refid {
                r.set("TRREFID", refid.clone());
            }
            out.tr.push(r);
            if let Some(d) = l.diameter_mm {
                let mut r = tr(visit, kind, &l.id, &lnkgrp, diameter_test(l.is_node));
                measured(&mut r, d);
                out.tr.push(r);
            }
        }
        // A new lesion seen earlier and not listed now is no longer present (as the engine takes it).
        for (id, kind) in new_seen.iter().filter(|(id, _)| !listed.contains(id.as_str())) {
            let mut r = tr(visit, kind, id, &lnkgrp, ("TUMSTATE", "Tumor State"));
            r.set("TRORRES", "ABSENT").set("TRSTRESC", "ABSENT");
            out.tr.push(r);
        }
        let res = result.per_timepoint.get(index);
        if !read.baseline.targets.is_empty() {
            let mut r = tr(visit, "TARGET", "", &lnkgrp, ("SUMDIAM", "Sum of Diameters"));
            match res.and_then(|x| x.sum_mm) {
                Some(sum) => measured(&mut r, sum),
                None => not_done(&mut r, "TR", "NOT ALL TARGET LESIONS EVALUATED"),
            }
            out.tr.push(r);
        }
        if let Some(res) = res {
            let accepted =
                acceptance.is_some_and(|a| !a.adjudicated && a.responses.get(visit_key) == Some(&read.reader));
            for mut r in timepoint_responses(study, &ctx, visit, &lnkgrp, tp, res) {
                if accepted {
                    r.set("RSACPTFL", "Y");
                }
                out.rs.push(r);
            }
        }
    }
    let mut bor = best_response(study, &ctx, &result);
    if acceptance.is_some_and(|a| !a.adjudicated && a.best_response == read.reader) {
        bor.set("RSACPTFL", "Y");
    }
    out.rs.push(bor);
    Ok(())
}

/// TRGRESP, NTRGRESP, NEWLIND and OVRLRESP of one timepoint.
fn timepoint_responses(
    study: &Study,
    ctx: &Ctx<'_>,
    visit: &Visit,
    lnkgrp: &str,
    tp: &Timepoint,
    res: &TimepointResult,
) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut push = |code: &str, test: &str, value: &str, reason: Option<String>| {
        let mut r = ctx.rec("RS", Some(visit));
        r.set("RSLNKGRP", lnkgrp)
            .set("RSTESTCD", code)
            .set("RSTEST", test)
            .set("RSCAT", criteria_cat(study.criteria))
            .set("RSORRES", value)
            .set("RSSTRESC", value);
        if let Some(reason) = reason {
            r.set("RSREASND", reason);
        }
        out.push(r);
    };
    if let Some(v) = response_code(res.target_response) {
        let reason = (res.target_response == Response::Ne).then(|| "NOT ALL TARGET LESIONS EVALUATED".to_string());
        push("TRGRESP", "Target Response", v, reason);
    }
    if let Some(v) = response_code(res.non_target_response) {
        let reason =
            (res.non_target_response == Response::Ne).then(|| "NOT ALL NON-TARGET LESIONS EVALUATED".to_string());
        push("NTRGRESP", "Non-target Response", v, reason);
    }
    let newlind = if res.new_lesions {
        "Y"
    } else if tp.new_lesions.iter().any(|l| l.equivocal) {
        "EQUIVOCAL"
    } else {
        "N"
    };
    push("NEWLIND", "New Lesion Indicator", newlind, None);
    if let Some(v) = response_code(res.overall) {
        let reason = (res.overall == Response::Ne).then(|| res.ne_reason.clone().unwrap_or_default().to_uppercase());
        push("OVRLRESP", "Overall Response", v, reason);
    }
    out
}

fn best_response(study: &Study, ctx: &Ctx<'_>, result: &CaseResult) -> Rec {
    let mut r = ctx.rec("RS", None);
    let v = response_code(result.best_overall_response).unwrap_or("NE");
    r.set("RSTESTCD", "BESTRESP")
        .set("RSTEST", "Best Overall Response")
        .set("RSCAT", criteria_cat(study.criteria))
        .set("RSORRES", v)
        .set("RSSTRESC", v);
    r
}

/// The adjudicator's records: per timepoint the responses of the read chosen there, and the best
/// overall response of the read chosen for it; accepted, linked to the chosen reader's TR group.
fn adjudicator_records(
    study: &Study,
    subject: &SubjectReads,
    accepted: &AcceptedReads,
    out: &mut Recs,
) -> Result<(), SdtmError> {
    let a = &accepted.acceptance;
    if !a.adjudicated {
        return Ok(());
    }
    let ctx = Ctx { subject, evaluator: Evaluator::Adjudicator };
    let mut results: BTreeMap<Reader, (&ReaderRead, CaseResult)> = BTreeMap::new();
    for read in &accepted.reads {
        results.insert(read.reader, (read, evaluate(study, &subject.usubjid, read)?));
    }
    let Some((base_read, _)) = results.get(&a.measurements) else { return Ok(()) };
    for (visit_key, _) in &base_read.follow_ups {
        let Some(chosen) = a.responses.get(visit_key) else { continue };
        let Some((read, result)) = results.get(chosen) else { continue };
        let Some(index) = read.follow_ups.iter().position(|(v, _)| v == visit_key) else { continue };
        let (Some((_, tp)), Some(res)) = (read.follow_ups.get(index), result.per_timepoint.get(index)) else {
            continue;
        };
        let visit = ctx.visit(visit_key)?;
        let lnkgrp = format!("{}-{visit_key}", chosen.evaluator().tag());
        for mut r in timepoint_responses(study, &ctx, visit, &lnkgrp, tp, res) {
            r.set("RSACPTFL", "Y");
            out.rs.push(r);
        }
    }
    if let Some((_, result)) = results.get(&a.best_response) {
        let mut r = best_response(study, &ctx, result);
        r.set("RSACPTFL", "Y");
        out.rs.push(r);
    }
    Ok(())
}
