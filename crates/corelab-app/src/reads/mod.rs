//! Blinded independent central review (BICR): read tasks when a visit passes QC, readers chosen by
//! qualification and workload and fixed per subject, sequential locked reads that run the response
//! engine and are e-signed, corrections as new versions, adjudication when the two readers
//! disagree on what the charter adjudicates, the accepted result, and reader metrics.
//!
//! Readers and adjudicators only ever get the types of [`views`]: no site, arm, subject ID, name,
//! scan date or other reader's work can reach them. Every change is audited in its transaction.
//! docs/reads.md describes the workflow and every interpretation choice.

mod adjudicate;
pub mod assessment;
pub mod assign;
mod manage;
pub mod measured;
pub mod sr;
pub mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use corelab_domain::access::Role;
use corelab_domain::charter::{
    AdjudicationChoice, Charter, Criteria as CharterCriteria, Measure, ReadParadigm, ReaderQualifications,
    TherapeuticArea, TimepointLabels,
};
use corelab_domain::response::adjudication::AdjudicationTrigger;
use corelab_domain::response::lvef::DEFAULT_EF_TOLERANCE_POINTS;
use corelab_domain::response::{CaseInput, CaseResult, Criteria, Protocol, ResponseError, Tenths, evaluate_case};
use corelab_store::Tx;
use corelab_store::reads::{ReadCaseRow, ReadTaskRow, ReadVersionRow};
use corelab_store::trials::SubjectRow;
use serde_json::{Value, json};
use uuid::Uuid;

pub use adjudicate::DecisionInput;
pub use manage::{
    AcceptedView, AdjudicationOverview, PairKappa, ProfileInput, ReadMetricsView, ReadOverview, ReaderMetricsRow,
    ReaderProfileView, TaskOverview, Turnaround,
};

use self::assessment::{Assessment, BaselineAssessment, FollowUpAssessment};
use self::assign::{Candidate, Profile};
use self::measured::{MeasuredRead, MsMeasures};
use self::views::{
    BlindedReadCase, BlindedReadVersion, BlindedResult, BlindedSeries, BlindedStudy, BlindedTaskSummary,
    BlindedTimepoint, Label,
};
use crate::access::TrialAccess;
use crate::audit::{change, trial_record};
use crate::signatures::SigningCredentials;
use crate::{Actor, App, AppError};

/// States of a read task.
pub mod task_state {
    /// No qualified reader could be given the task; the trial manager sees why.
    pub const UNASSIGNED: &str = "unassigned";
    pub const OPEN: &str = "open";
    pub const SUBMITTED: &str = "submitted";
}

/// States of an adjudication.
pub mod adjudication_state {
    pub const UNASSIGNED: &str = "unassigned";
    pub const OPEN: &str = "open";
    pub const DECIDED: &str = "decided";
    /// Replaced by a later comparison (more timepoints read, a correction, or agreement).
    pub const SUPERSEDED: &str = "superseded";
}

/// Meaning of the e-signature on a submitted read.
pub const READ_COMPLETED: &str = "read completed";
/// Meaning of the e-signature on a corrected read.
pub const READ_CORRECTED: &str = "read corrected";
/// Meaning of the e-signature on an adjudication decision.
pub const ADJUDICATION_DECIDED: &str = "adjudication decided";

/// What a read records and which engine evaluates it: the first of the charter's read criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadForm {
    /// Lesion selection and measurements (RECIST 1.1 or iRECIST).
    Recist(Criteria),
    /// LV volumes or a reported ejection fraction.
    Lvef,
    /// MS MRI lesion counts and brain volume change, as the charter measures them.
    Ms(MsMeasures),
}

impl ReadForm {
    /// The criteria's name as the charter spells it.
    pub fn name(self) -> &'static str {
        match self {
            ReadForm::Recist(c) => c.as_str(),
            ReadForm::Lvef => "LVEF",
            ReadForm::Ms(_) => "MS",
        }
    }
}

/// The charter's read design as the workflow uses it.
pub(crate) struct Design {
    pub form: ReadForm,
    /// RECIST/iRECIST only.
    pub protocol: Protocol,
    /// LVEF: readers' EFs further apart than this (percentage points) are adjudicated.
    pub ef_tolerance: Tenths,
    pub readers: i64,
    pub sequential: bool,
    pub adjudicated: bool,
    pub triggers: Vec<AdjudicationTrigger>,
    pub per_variable: bool,
    pub labels: TimepointLabels,
    pub qualifications: ReaderQualifications,
    pub visit_labels: HashMap<String, String>,
    pub baseline_visit: Option<String>,
    pub nominal_days: HashMap<String, i64>,
}

impl Design {
    /// The read design of a charter: reads are evaluated under the first of its read criteria
    /// (RECIST 1.1, iRECIST, LVEF or MS); `None` when it lists none.
    pub fn of(charter: &Charter) -> Option<Design> {
        let r = &charter.reads;
        let form = r
            .criteria
            .iter()
            .map(|c| match c {
                CharterCriteria::Recist11 => ReadForm::Recist(Criteria::Recist11),
                CharterCriteria::Irecist => ReadForm::Recist(Criteria::IRecist),
                CharterCriteria::Lvef => ReadForm::Lvef,
                CharterCriteria::Ms => ReadForm::Ms(MsMeasures {
                    new_enlarging_t2: r.measures.contains(&Measure::NewEnlargingT2Lesions),
                    gd_enhancing: r.measures.contains(&Measure::GdEnhancingLesions),
                    brain_volume_change: r.measures.contains(&Measure::BrainVolumeChange),
                }),
            })
            .next()?;
        let mut protocol = Protocol::new(r.confirmation_required, r.sd_min_days.unwrap_or(0));
        if let Some(d) = r.confirmation_min_days {
            protocol.confirmation_min_days = d;
        }
        let triggers = r
            .adjudication
            .as_ref()
            .map(|a| {
                a.triggers
                    .iter()
                    .map(|t| match t {
                        corelab_domain::charter::AdjudicationTrigger::AnyTimepoint => {
                            AdjudicationTrigger::OverallResponseAnyTimepoint
                        }
                        corelab_domain::charter::AdjudicationTrigger::ProgressionDate => {
                            AdjudicationTrigger::ProgressionDate
                        }
                        corelab_domain::charter::AdjudicationTrigger::BestOverallResponse => {
                            AdjudicationTrigger::BestOverallResponse
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let visits = charter.scheduled_visits();
        Some(Design {
            form,
            protocol,
            ef_tolerance: r
                .adjudication
                .as_ref()
                .and_then(|a| a.ef_tolerance_points)
                .unwrap_or(DEFAULT_EF_TOLERANCE_POINTS),
            readers: i64::from(r.readers_per_case.clamp(1, 2)),
            sequential: r.paradigm == ReadParadigm::SequentialLocked,
            adjudicated: r.adjudication.is_some() && r.readers_per_case >= 2,
            triggers,
            per_variable: r.adjudication.as_ref().is_some_and(|a| a.choice == AdjudicationChoice::PerVariable),
            labels: charter.trial.blinding.timepoint_labels,
            qualifications: r.reader_qualifications.clone(),
            visit_labels: visits.iter().map(|v| (v.id.clone(), v.label.clone())).collect(),
            baseline_visit: visits.iter().find(|v| v.baseline).map(|v| v.id.clone()),
            nominal_days: visits.iter().map(|v| (v.id.clone(), i64::from(v.day))).collect(),
        })
    }
}

/// The charter in force for a trial, read inside `tx`.
pub(crate) async fn charter_in(tx: &mut Tx, trial_id: Uuid) -> Result<Charter, AppError> {
    let trial = tx.trial(trial_id).await?.ok_or_else(|| AppError::NotFound(format!("no trial {trial_id}")))?;
    let row = tx
        .charter_version(trial_id, trial.current_version)
        .await?
        .ok_or_else(|| AppError::internal(std::io::Error::other("current charter version missing")))?;
    crate::trials::parse_checked(&row.charter_text)
}

/// Everyone holding `role` in the trial, with what the assignment rules need.
pub(crate) async fn candidates(tx: &mut Tx, trial_id: Uuid, role: Role) -> Result<Vec<Candidate>, AppError> {
    let grants = tx.trial_grants(trial_id).await?;
    let profiles: HashMap<Uuid, Profile> =
        tx.reader_profiles(trial_id).await?.into_iter().map(|p| (p.user_id, profile_of(&p))).collect();
    let open: HashMap<Uuid, i64> = if role == Role::Adjudicator {
        tx.open_adjudication_counts().await?
    } else {
        tx.open_read_task_counts().await?
    }
    .into_iter()
    .collect();
    let mut users: Vec<Uuid> = grants.iter().filter(|g| g.role == role.as_str()).map(|g| g.user_id).collect();
    users.sort();
    users.dedup();
    let mut out = Vec::new();
    for uid in users {
        let Some(user) = tx.user_by_id(uid).await? else { continue };
        out.push(Candidate {
            user_id: uid,
            username: user.username,
            disabled: user.disabled,
            site_role: grants.iter().any(|g| g.user_id == uid && g.role == Role::SiteUser.as_str()),
            profile: profiles.get(&uid).cloned(),
            open: open.get(&uid).copied().unwrap_or(0),
        });
    }
    Ok(out)
}

pub(crate) fn profile_of(p: &corelab_store::reads::ReaderProfileRow) -> Profile {
    let words = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
    Profile {
        therapeutic_areas: words(&p.therapeutic_areas)
            .iter()
            .filter_map(|w| TherapeuticArea::from_charter_str(w))
            .collect(),
        criteria: words(&p.criteria).iter().filter_map(|w| CharterCriteria::from_charter_str(w)).collect(),
        training_valid_until: p.training_valid_until,
    }
}

/// Why `user` cannot read (or adjudicate) now; empty when they can.
pub(crate) fn gaps_of(design: &Design, cands: &[Candidate], user: Uuid, today: NaiveDate) -> Vec<String> {
    match cands.iter().find(|c| c.user_id == user) {
        Some(c) => assign::candidate_gaps(&design.qualifications, c, today, &[]),
        None => vec!["no longer holds the role in this trial".into()],
    }
}

pub(crate) fn username_of(cands: &[Candidate], user: Option<Uuid>) -> Value {
    match user {
        Some(u) => {
            cands.iter().find(|c| c.user_id == u).map(|c| Value::from(c.username.clone())).unwrap_or(Value::Null)
        }
        None => Value::Null,
    }
}

/// A random reader case ID, e.g. `RC-7KQ2-M9XD`: no subject, site or order is in it.
fn new_case_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let n: u64 = rand::random();
    let chars: String =
        (0..8).map(|i| ALPHABET.get(((n >> (i * 5)) & 31) as usize).copied().map(char::from).unwrap_or('X')).collect();
    format!("RC-{}-{}", &chars[..4], &chars[4..])
}

/// A task open for reading, as [`App::open_for_reading`] found it.
struct OpenRead {
    role: String,
    task: ReadTaskRow,
    design: Design,
    data: CaseData,
    labels: HashMap<String, Label>,
}

/// A case with its tasks and every version of every task, read in one transaction.
pub(crate) struct CaseData {
    pub case: ReadCaseRow,
    pub subject: SubjectRow,
    /// In reading order: baseline first, then by scan day.
    pub tasks: Vec<ReadTaskRow>,
    pub versions: HashMap<Uuid, Vec<ReadVersionRow>>,
}

pub(crate) async fn case_data(tx: &mut Tx, case_id: Uuid) -> Result<CaseData, AppError> {
    let case = tx.read_case(case_id).await?.ok_or_else(|| AppError::NotFound(format!("no read case {case_id}")))?;
    let subject = tx
        .subject(case.subject_id)
        .await?
        .ok_or_else(|| AppError::internal(std::io::Error::other("read case without subject")))?;
    let tasks = tx.case_read_tasks(case_id).await?;
    let mut versions = HashMap::new();
    for t in &tasks {
        versions.insert(t.id, tx.read_versions(t.id).await?);
    }
    Ok(CaseData { case, subject, tasks, versions })
}

impl CaseData {
    /// The case's timepoints in reading order: (visit id, baseline, scan day).
    pub fn visits(&self) -> Vec<(String, bool, i64)> {
        let mut out: Vec<(String, bool, i64)> = Vec::new();
        for t in &self.tasks {
            if !out.iter().any(|(v, _, _)| *v == t.visit_id) {
                out.push((t.visit_id.clone(), t.baseline, t.day));
            }
        }
        out
    }

    pub fn labels(&self, design: &Design) -> HashMap<String, Label> {
        views::labels(design.labels, &self.visits(), &design.visit_labels)
    }

    /// The version in force of a task: its latest submitted version.
    pub fn current(&self, task: Uuid) -> Option<&ReadVersionRow> {
        self.versions.get(&task)?.iter().rev().find(|v| v.state == "submitted")
    }

    pub fn draft(&self, task: Uuid) -> Option<&ReadVersionRow> {
        self.versions.get(&task)?.iter().rev().find(|v| v.state == "draft")
    }

    pub fn slot_tasks(&self, slot: i64) -> Vec<&ReadTaskRow> {
        self.tasks.iter().filter(|t| t.slot == slot).collect()
    }

    /// Visits of `slot` with a submitted read.
    pub fn submitted_visits(&self, slot: i64) -> BTreeSet<String> {
        self.slot_tasks(slot).into_iter().filter(|t| self.current(t.id).is_some()).map(|t| t.visit_id.clone()).collect()
    }

    /// The label of the earliest timepoint `task` has to wait for, if any: the reader's baseline
    /// always; under sequential locked reads every earlier timepoint.
    pub fn waiting_for(&self, task: &ReadTaskRow, design: &Design, labels: &HashMap<String, Label>) -> Option<String> {
        if task.baseline {
            return None;
        }
        let mine = self.slot_tasks(task.slot);
        let label = |visit: &str| labels.get(visit).map(|l| l.label.clone()).unwrap_or_default();
        match mine.iter().find(|t| t.baseline) {
            None => return Some("the baseline (its images have not passed QC yet)".into()),
            Some(b) if self.current(b.id).is_none() => return Some(label(&b.visit_id)),
            Some(_) => {}
        }
        if design.sequential {
            for t in mine.iter().take_while(|t| t.id != task.id) {
                if self.current(t.id).is_none() {
                    return Some(label(&t.visit_id));
                }
            }
        }
        None
    }

    /// The state a reader sees: waiting, open, draft or submitted.
    pub fn reader_state(&self, task: &ReadTaskRow, design: &Design, labels: &HashMap<String, Label>) -> String {
        if task.state == task_state::SUBMITTED {
            "submitted".into()
        } else if self.waiting_for(task, design, labels).is_some() {
            "waiting".into()
        } else if self.draft(task.id).is_some() {
            "draft".into()
        } else {
            "open".into()
        }
    }
}

/// One reader's reads of a case, parsed: the baseline and the follow-ups in reading order.
pub(crate) struct SlotReads {
    pub baseline: (ReadTaskRow, ReadVersionRow, BaselineAssessment),
    pub follow_ups: Vec<(ReadTaskRow, ReadVersionRow, FollowUpAssessment)>,
}

impl SlotReads {
    /// Builds from (task, version) pairs; `None` without a baseline.
    pub fn from_versions(pairs: Vec<(ReadTaskRow, ReadVersionRow)>) -> Result<Option<SlotReads>, AppError> {
        let mut baseline = None;
        let mut follow_ups = Vec::new();
        for (t, v) in pairs {
            match Assessment::from_stored(&v.assessment, t.baseline).map_err(stored_error)? {
                Assessment::Baseline(b) => baseline = Some((t, v, b)),
                Assessment::FollowUp(f) => follow_ups.push((t, v, f)),
            }
        }
        follow_ups.sort_by(|a, b| (a.0.day, &a.0.visit_id).cmp(&(b.0.day, &b.0.visit_id)));
        Ok(baseline.map(|baseline| SlotReads { baseline, follow_ups }))
    }

    /// The current versions of a reader's submitted reads, optionally only of `visits`.
    pub fn current(
        data: &CaseData,
        slot: i64,
        visits: Option<&BTreeSet<String>>,
    ) -> Result<Option<SlotReads>, AppError> {
        let pairs = data
            .slot_tasks(slot)
            .into_iter()
            .filter(|t| visits.is_none_or(|v| v.contains(&t.visit_id)))
            .filter_map(|t| data.current(t.id).map(|v| (t.clone(), v.clone())))
            .collect();
        SlotReads::from_versions(pairs)
    }

    pub fn evaluate(&self, design: &Design, labels: &HashMap<String, Label>) -> Result<CaseResult, AppError> {
        let fus: Vec<(&ReadTaskRow, &FollowUpAssessment)> = self.follow_ups.iter().map(|(t, _, f)| (t, f)).collect();
        evaluate_reads(design, &self.baseline.2, &fus, labels)
    }

    /// visit id -> version id.
    pub fn version_ids(&self) -> BTreeMap<String, Uuid> {
        let mut m = BTreeMap::new();
        m.insert(self.baseline.0.visit_id.clone(), self.baseline.1.id);
        for (t, v, _) in &self.follow_ups {
            m.insert(t.visit_id.clone(), v.id);
        }
        m
    }
}

fn stored_error(e: String) -> AppError {
    AppError::internal(std::io::Error::other(format!("a stored read does not parse: {e}")))
}

/// A read's content under the trial's read form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read {
    Recist(Assessment),
    Measured(MeasuredRead),
}

impl Read {
    /// Reads `value` as the assessment of a baseline (`baseline`) or follow-up timepoint; the
    /// error names the key at fault.
    pub fn parse(value: &Value, form: ReadForm, baseline: bool) -> Result<Read, AppError> {
        match form {
            ReadForm::Recist(_) => {
                Assessment::parse(value, baseline).map(Read::Recist).map_err(|m| AppError::invalid("assessment", m))
            }
            ReadForm::Lvef | ReadForm::Ms(_) => measured::parse(value, form, baseline).map(Read::Measured),
        }
    }

    /// Parses the stored text of a version.
    pub fn from_stored(text: &str, form: ReadForm, baseline: bool) -> Result<Read, AppError> {
        match form {
            ReadForm::Recist(_) => Assessment::from_stored(text, baseline).map(Read::Recist).map_err(stored_error),
            ReadForm::Lvef | ReadForm::Ms(_) => measured::parse_stored(text, form, baseline).map(Read::Measured),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Read::Recist(a) => a.to_value(),
            Read::Measured(m) => m.to_value(),
        }
    }
}

/// Runs the response engine on a reader's baseline and follow-ups (in reading order). Errors name
/// the timepoint by its blinded label and never show a day or a date.
pub(crate) fn evaluate_reads(
    design: &Design,
    baseline: &BaselineAssessment,
    follow_ups: &[(&ReadTaskRow, &FollowUpAssessment)],
    labels: &HashMap<String, Label>,
) -> Result<CaseResult, AppError> {
    let problems = baseline.selection_problems();
    if !problems.is_empty() {
        return Err(AppError::invalid(
            "assessment",
            format!("the baseline lesion selection breaks RECIST 1.1: {}", problems.join("; ")),
        ));
    }
    let out_of_order = || {
        AppError::Conflict(
            "the timepoints of this case cannot be put in order by scan date; the trial manager has to correct the visit data"
                .into(),
        )
    };
    let mut timepoints = Vec::new();
    for (t, f) in follow_ups {
        let day = u32::try_from(t.day).ok().filter(|d| *d >= 1).ok_or_else(out_of_order)?;
        timepoints.push(f.to_engine(day));
    }
    let ReadForm::Recist(criteria) = design.form else {
        return Err(AppError::internal(std::io::Error::other("RECIST evaluation of a measured read")));
    };
    let case = CaseInput { id: None, criteria, protocol: design.protocol, baseline: baseline.to_engine(), timepoints };
    evaluate_case(&case).map_err(|e| match e {
        ResponseError::Invalid { key, .. } if key == "days_from_baseline" => out_of_order(),
        ResponseError::Invalid { timepoint, key, message, .. } => {
            // "timepoint 2 (day 84)" -> the blinded label of the second follow-up.
            let label = timepoint
                .as_deref()
                .and_then(|t| t.split_whitespace().nth(1)?.parse::<usize>().ok())
                .and_then(|n| follow_ups.get(n.checked_sub(1)?))
                .and_then(|(t, _)| labels.get(&t.visit_id))
                .map(|l| format!("{}: ", l.label))
                .unwrap_or_default();
            AppError::invalid("assessment", format!("{label}{key}: {message}"))
        }
        ResponseError::BaselineSelection { violations, .. } => AppError::invalid(
            "assessment",
            format!(
                "the baseline lesion selection breaks RECIST 1.1: {}",
                violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
        ),
        other => AppError::internal(other),
    })
}

/// The canonical content an e-signature on a read version binds to.
pub(crate) fn version_content(v: &ReadVersionRow) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "read_task": v.task_id,
        "version": v.version,
        "assessment": parse(&v.assessment),
        "result": v.result.as_deref().map(parse),
        "reason": v.reason,
    })
}

/// The stored engine result of a version, blinded.
fn blinded_result(v: &ReadVersionRow) -> Option<BlindedResult> {
    let r: Value = serde_json::from_str(v.result.as_deref()?).ok()?;
    blinded_result_of(&r)
}

/// A computed result (as stored with a read) as the reader sees it.
fn blinded_result_of(r: &Value) -> Option<BlindedResult> {
    if r.get("lvef").is_some() || r.get("ms").is_some() {
        return measured::blinded_result(r);
    }
    let base: Option<corelab_domain::response::Tenths> =
        serde_json::from_value(r.get("baseline_sum_mm").cloned().unwrap_or(Value::Null)).ok().flatten();
    match r.get("timepoint") {
        Some(t) if !t.is_null() => {
            let tp: corelab_domain::response::TimepointResult = serde_json::from_value(t.clone()).ok()?;
            Some(BlindedResult::follow_up(base, &tp))
        }
        _ => Some(BlindedResult::baseline(base)),
    }
}

/// The de-identified studies and series of a visit, without the series a resubmission superseded.
pub(crate) async fn visit_images(tx: &mut Tx, subject: Uuid, visit_id: &str) -> Result<Vec<BlindedStudy>, AppError> {
    let mut superseded: BTreeSet<String> = BTreeSet::new();
    if let Some(vqc) = tx.visit_qc(subject, visit_id).await?
        && let Some(eval) = tx.evaluation(vqc.evaluation_id).await?
        && let Ok(v) = serde_json::from_str::<Value>(&eval.series)
        && let Some(list) = v.get("superseded").and_then(Value::as_array)
    {
        superseded.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let mut out = Vec::new();
    for study in tx.subject_studies(subject).await?.into_iter().filter(|s| s.visit_id == visit_id) {
        let series = tx
            .study_series(study.id)
            .await?
            .into_iter()
            .filter(|s| !superseded.contains(&s.series_instance_uid))
            .map(|s| BlindedSeries {
                series_instance_uid: s.series_instance_uid,
                modality: s.modality,
                series_number: s.series_number,
                series_description: s.series_description,
                instance_count: s.instance_count,
            })
            .collect();
        out.push(BlindedStudy { study_instance_uid: study.study_instance_uid, series });
    }
    Ok(out)
}

/// A follow-up must answer for every baseline lesion of the reader's own baseline.
fn check_complete(f: &FollowUpAssessment, baseline: &BaselineAssessment, label: &str) -> Result<(), AppError> {
    let missing = f.missing(baseline);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid(
            "assessment",
            format!(
                "{label}: every baseline lesion needs a reading (NOT_EVALUATED when it could not be assessed); missing {}",
                missing.join(", ")
            ),
        ))
    }
}

impl App {
    /// Called where a visit's QC state changes, in that transaction: when the visit has passed QC,
    /// creates its read tasks as the charter's read design says (readers fixed per subject and
    /// chosen by qualification and workload; without a qualified reader the task waits, and the
    /// trial manager sees why). Does nothing for other states and for visits that already have
    /// tasks.
    pub(crate) async fn visit_ready_for_reading(
        &self,
        tx: &mut Tx,
        subject: &SubjectRow,
        visit_id: &str,
        qc_state: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if qc_state != crate::qc::state::PASSED {
            return Ok(());
        }
        let charter = charter_in(tx, subject.trial_id).await?;
        let Some(design) = Design::of(&charter) else { return Ok(()) };
        let system = Actor::system();
        let today = now.date_naive();
        let mut cands = candidates(tx, subject.trial_id, Role::Reader).await?;
        let mut case = match tx.read_case_of_subject(subject.id).await? {
            Some(c) => c,
            None => {
                let mut code = new_case_code();
                while tx.case_code_taken(subject.trial_id, &code).await? {
                    code = new_case_code();
                }
                let c = ReadCaseRow {
                    id: Uuid::new_v4(),
                    trial_id: subject.trial_id,
                    subject_id: subject.id,
                    case_code: code,
                    reader_1: None,
                    reader_2: None,
                    created_at: now,
                };
                tx.insert_read_case(&c).await?;
                tx.append_audit(trial_record(
                    &system,
                    "system",
                    subject.trial_id,
                    Some(&subject.site_id),
                    now,
                    "create",
                    "read_case",
                    c.id,
                    vec![
                        change("case_code", Value::Null, c.case_code.clone()),
                        change("subject", Value::Null, subject.subject_id.clone()),
                    ],
                ))
                .await?;
                c
            }
        };
        self.fill_slots(tx, &design, &mut case, &mut cands, &system, "system", Some(&subject.site_id), today, now)
            .await?;
        let existing = tx.case_read_tasks(case.id).await?;
        let scan_day = tx
            .subject_studies(subject.id)
            .await?
            .iter()
            .filter(|s| s.visit_id == visit_id)
            .filter_map(|s| s.anchor_day)
            .min()
            .or_else(|| design.nominal_days.get(visit_id).copied())
            .unwrap_or(0);
        let baseline = design.baseline_visit.as_deref() == Some(visit_id);
        for slot in 1..=design.readers {
            if existing.iter().any(|t| t.visit_id == visit_id && t.slot == slot) {
                continue;
            }
            let fixed = if slot == 1 { case.reader_1 } else { case.reader_2 };
            let (reader, note) = match fixed {
                Some(r) => {
                    let gaps = gaps_of(&design, &cands, r, today);
                    if gaps.is_empty() {
                        (Some(r), None)
                    } else {
                        let name = username_of(&cands, Some(r));
                        (
                            None,
                            Some(format!(
                                "reader {slot} of this case ({}) cannot take it now: {}",
                                name.as_str().unwrap_or("unknown"),
                                gaps.join(", ")
                            )),
                        )
                    }
                }
                None => {
                    let other = if slot == 1 { case.reader_2 } else { case.reader_1 };
                    let exclude: Vec<Uuid> = other.into_iter().collect();
                    let (_, passed_over) = assign::rank(&design.qualifications, &cands, today, &exclude);
                    (None, Some(assign::none_available("reader", &passed_over)))
                }
            };
            let task = ReadTaskRow {
                id: Uuid::new_v4(),
                trial_id: subject.trial_id,
                case_id: case.id,
                visit_id: visit_id.to_string(),
                slot,
                reader_id: reader,
                baseline,
                day: scan_day,
                state: if reader.is_some() { task_state::OPEN } else { task_state::UNASSIGNED }.into(),
                note: note.clone(),
                qc_passed_at: now,
                assigned_at: reader.map(|_| now),
                submitted_at: None,
            };
            tx.insert_read_task(&task).await?;
            let mut rec = trial_record(
                &system,
                "system",
                subject.trial_id,
                Some(&subject.site_id),
                now,
                "create",
                "read_task",
                task.id,
                vec![
                    change("case_code", Value::Null, case.case_code.clone()),
                    change("visit_id", Value::Null, visit_id),
                    change("slot", Value::Null, slot),
                    change("reader", Value::Null, username_of(&cands, reader)),
                    change("state", Value::Null, task.state.clone()),
                ],
            );
            rec.reason = note;
            tx.append_audit(rec).await?;
        }
        Ok(())
    }

    /// Gives each empty reader slot of a case the least busy qualified reader (never the other
    /// slot's reader), audited. `cands` workloads are updated as readers are chosen.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fill_slots(
        &self,
        tx: &mut Tx,
        design: &Design,
        case: &mut ReadCaseRow,
        cands: &mut [Candidate],
        actor: &Actor,
        role: &str,
        site_id: Option<&str>,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let mut changes = Vec::new();
        for slot in 1..=design.readers {
            let (mine, other) = if slot == 1 { (case.reader_1, case.reader_2) } else { (case.reader_2, case.reader_1) };
            if mine.is_some() {
                continue;
            }
            let exclude: Vec<Uuid> = other.into_iter().collect();
            let (ranked, _) = assign::rank(&design.qualifications, cands, today, &exclude);
            if let Some(chosen) = ranked.first().copied() {
                if slot == 1 {
                    case.reader_1 = Some(chosen);
                } else {
                    case.reader_2 = Some(chosen);
                }
                if let Some(c) = cands.iter_mut().find(|c| c.user_id == chosen) {
                    c.open += 1;
                }
                changes.push(change(&format!("reader_{slot}"), Value::Null, username_of(cands, Some(chosen))));
            }
        }
        if !changes.is_empty() {
            tx.set_case_readers(case.id, case.reader_1, case.reader_2).await?;
            tx.append_audit(trial_record(
                actor,
                role,
                case.trial_id,
                site_id,
                now,
                "assign",
                "read_case",
                case.id,
                changes,
            ))
            .await?;
        }
        Ok(())
    }

    /// A task of the caller's, with the caller's access; 404 for anyone else's.
    async fn own_task(&self, actor: &Actor, task_id: Uuid, action: &str) -> Result<(String, ReadTaskRow), AppError> {
        let not_found = || AppError::NotFound(format!("no read task {task_id}"));
        let mut tx = self.db().read().await?;
        let task = tx.read_task(task_id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, task.trial_id).await.map_err(|_| not_found())?;
        let role = self.require(actor, &access, &[Role::Reader], action, "read_task", &task_id.to_string()).await?;
        if actor.user_id.is_none() || task.reader_id != actor.user_id {
            return Err(not_found());
        }
        Ok((role, task))
    }

    /// The caller's read tasks in a trial (readers), blinded.
    pub async fn my_read_tasks(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<BlindedTaskSummary>, AppError> {
        let access: TrialAccess = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::Reader], "see read tasks", "read_task", "*").await?;
        let Some(me) = actor.user_id else { return Ok(Vec::new()) };
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, trial_id).await?;
        let Some(design) = Design::of(&charter) else { return Ok(Vec::new()) };
        let tasks = tx.reader_tasks(trial_id, me).await?;
        let mut cases: Vec<Uuid> = tasks.iter().map(|t| t.case_id).collect();
        cases.dedup();
        let mut out = Vec::new();
        for case_id in cases {
            let data = case_data(&mut tx, case_id).await?;
            let labels = data.labels(&design);
            for t in data.tasks.iter().filter(|t| t.reader_id == Some(me)) {
                let l = labels.get(&t.visit_id);
                out.push(BlindedTaskSummary {
                    task_id: t.id,
                    case_code: data.case.case_code.clone(),
                    timepoint: l.map(|l| l.label.clone()).unwrap_or_default(),
                    days_from_baseline: l.and_then(|l| l.days),
                    kind: if t.baseline { "baseline" } else { "follow_up" },
                    state: data.reader_state(t, &design, &labels),
                    waiting_for: data.waiting_for(t, &design, &labels),
                    assigned_at: t.assigned_at,
                    last_saved_at: data.versions.get(&t.id).and_then(|v| v.iter().map(|v| v.saved_at).max()),
                });
            }
        }
        Ok(out)
    }

    /// The caller's own task that is open for reading (neither submitted nor waiting for an
    /// earlier timepoint), with what checking a read of it needs.
    async fn open_for_reading(&self, actor: &Actor, task_id: Uuid, action: &str) -> Result<OpenRead, AppError> {
        let (role, task) = self.own_task(actor, task_id, action).await?;
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, task.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(no_read_form)?;
        let data = case_data(&mut tx, task.case_id).await?;
        drop(tx);
        refuse_submitted(&task)?;
        let labels = data.labels(&design);
        refuse_waiting(&data, &task, &design, &labels)?;
        Ok(OpenRead { role, task, design, data, labels })
    }

    /// Opens a read task as its blinded case. A timepoint that waits for an earlier one is refused.
    pub async fn open_read_task(&self, actor: &Actor, task_id: Uuid) -> Result<BlindedReadCase, AppError> {
        let (_, task) = self.own_task(actor, task_id, "open read tasks").await?;
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, task.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(no_read_form)?;
        let data = case_data(&mut tx, task.case_id).await?;
        let labels = data.labels(&design);
        refuse_waiting(&data, &task, &design, &labels)?;
        drop(tx);
        self.blinded_case(&design, task.id).await
    }

    /// Saves the reader's draft of a timepoint (not yet submitted; checked for shape only).
    pub async fn save_read_draft(
        &self,
        actor: &Actor,
        task_id: Uuid,
        assessment: &Value,
    ) -> Result<BlindedReadCase, AppError> {
        let (role, task) = self.own_task(actor, task_id, "save reads").await?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let charter = charter_in(&mut tx, task.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(no_read_form)?;
        let parsed = Read::parse(assessment, design.form, task.baseline)?;
        let data = case_data(&mut tx, task.case_id).await?;
        let task = data
            .tasks
            .iter()
            .find(|t| t.id == task_id)
            .cloned()
            .ok_or_else(|| AppError::NotFound("no read task".into()))?;
        refuse_submitted(&task)?;
        let labels = data.labels(&design);
        refuse_waiting(&data, &task, &design, &labels)?;
        crate::locks::refuse_locked_blinded(
            &mut tx,
            task.trial_id,
            data.subject.id,
            &[&task.visit_id],
            "saving this read",
        )
        .await?;
        let author = actor.user_id.ok_or_else(|| AppError::Forbidden("only a person can read".into()))?;
        let text = parsed.to_value().to_string();
        let version = match data.draft(task.id) {
            Some(d) => {
                let v = ReadVersionRow { assessment: text, saved_at: now, ..d.clone() };
                tx.update_read_version(&v).await?;
                v
            }
            None => {
                let v = ReadVersionRow {
                    id: Uuid::new_v4(),
                    task_id: task.id,
                    version: next_version(&data, task.id),
                    state: "draft".into(),
                    assessment: text,
                    result: None,
                    reason: None,
                    author_id: author,
                    saved_at: now,
                    submitted_at: None,
                };
                tx.insert_read_version(&v).await?;
                v
            }
        };
        tx.append_audit(trial_record(
            actor,
            &role,
            task.trial_id,
            Some(&data.subject.site_id),
            now,
            "save_draft",
            "read",
            task.id,
            vec![change("version", Value::Null, version.version)],
        ))
        .await?;
        tx.commit().await?;
        self.blinded_case(&design, task.id).await
    }

    /// Submits a read (the given assessment, or the saved draft): checks it, runs the response
    /// engine, stores the computed response, e-signs it ("read completed") and locks it. Then
    /// compares the two readers when both have read the same timepoints.
    pub async fn submit_read(
        &self,
        actor: &Actor,
        task_id: Uuid,
        assessment: Option<&Value>,
        creds: SigningCredentials,
    ) -> Result<BlindedReadCase, AppError> {
        let OpenRead { role, task, design, data, labels } =
            self.open_for_reading(actor, task_id, "submit reads").await?;
        let parsed = match assessment {
            Some(v) => Read::parse(v, design.form, task.baseline)?,
            None => match data.draft(task.id) {
                // Checked as if sent now: the charter may have changed since the draft was saved.
                Some(d) => Read::parse(
                    &serde_json::from_str(&d.assessment).map_err(|e| stored_error(e.to_string()))?,
                    design.form,
                    task.baseline,
                )?,
                None => {
                    return Err(AppError::invalid(
                        "assessment",
                        "nothing to submit: send the assessment, or save a draft first",
                    ));
                }
            },
        };
        self.check_image_refs(&task, data.subject.id, &parsed).await?;
        let result = self.check_read(&design, &data, &task, &parsed, &labels)?;
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let data = case_data(&mut tx, task.case_id).await?;
        let task = data
            .tasks
            .iter()
            .find(|t| t.id == task_id)
            .cloned()
            .ok_or_else(|| AppError::NotFound("no read task".into()))?;
        refuse_submitted(&task)?;
        crate::locks::refuse_locked_blinded(
            &mut tx,
            task.trial_id,
            data.subject.id,
            &[&task.visit_id],
            "submitting this read",
        )
        .await?;
        let author = actor.user_id.ok_or_else(|| AppError::Forbidden("only a person can read".into()))?;
        let text = parsed.to_value().to_string();
        let version = match data.draft(task.id) {
            Some(d) => {
                let v = ReadVersionRow {
                    state: "submitted".into(),
                    assessment: text,
                    result: Some(result.to_string()),
                    saved_at: now,
                    submitted_at: Some(now),
                    ..d.clone()
                };
                tx.update_read_version(&v).await?;
                v
            }
            None => {
                let v = ReadVersionRow {
                    id: Uuid::new_v4(),
                    task_id: task.id,
                    version: next_version(&data, task.id),
                    state: "submitted".into(),
                    assessment: text,
                    result: Some(result.to_string()),
                    reason: None,
                    author_id: author,
                    saved_at: now,
                    submitted_at: Some(now),
                };
                tx.insert_read_version(&v).await?;
                v
            }
        };
        tx.update_read_task(&ReadTaskRow {
            state: task_state::SUBMITTED.into(),
            submitted_at: Some(now),
            ..task.clone()
        })
        .await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            task.trial_id,
            Some(&data.subject.site_id),
            now,
            "submit",
            "read",
            task.id,
            vec![
                change("version", Value::Null, version.version),
                change("state", "open", task_state::SUBMITTED),
                audit_result(&result),
            ],
        ))
        .await?;
        self.sign_and_settle(tx, actor, &design, &task, &version, READ_COMPLETED, now).await
    }

    /// What the response engine computes for `assessment` at this task, as submitting it would
    /// store: the same checks and evaluation as [`App::submit_read`], nothing written and nothing
    /// signed. The workstation shows it before the reader signs.
    pub async fn evaluate_read(
        &self,
        actor: &Actor,
        task_id: Uuid,
        assessment: &Value,
    ) -> Result<BlindedResult, AppError> {
        let OpenRead { task, design, data, labels, .. } =
            self.open_for_reading(actor, task_id, "evaluate reads").await?;
        let parsed = Read::parse(assessment, design.form, task.baseline)?;
        self.check_image_refs(&task, data.subject.id, &parsed).await?;
        let result = self.check_read(&design, &data, &task, &parsed, &labels)?;
        blinded_result_of(&result).ok_or_else(|| stored_error("the computed result has an unexpected shape".into()))
    }

    /// Corrects a submitted read: a new, e-signed version with the reason; earlier versions stay.
    pub async fn correct_read(
        &self,
        actor: &Actor,
        task_id: Uuid,
        assessment: &Value,
        reason: &str,
        creds: SigningCredentials,
    ) -> Result<BlindedReadCase, AppError> {
        let (role, task) = self.own_task(actor, task_id, "correct reads").await?;
        if task.state != task_state::SUBMITTED {
            return Err(AppError::Conflict(
                "this read is not submitted yet: save a draft or submit it; a correction is for locked reads".into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid("reason", "say why the locked read is corrected"));
        }
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, task.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(no_read_form)?;
        let data = case_data(&mut tx, task.case_id).await?;
        drop(tx);
        let parsed = Read::parse(assessment, design.form, task.baseline)?;
        let labels = data.labels(&design);
        if let Some(cur) = data.current(task.id)
            && Read::from_stored(&cur.assessment, design.form, task.baseline)? == parsed
        {
            return Err(AppError::invalid("assessment", "the correction changes nothing in the read"));
        }
        self.check_image_refs(&task, data.subject.id, &parsed).await?;
        let result = self.check_read(&design, &data, &task, &parsed, &labels)?;
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let author = actor.user_id.ok_or_else(|| AppError::Forbidden("only a person can read".into()))?;
        let mut tx = self.db().begin().await?;
        let data = case_data(&mut tx, task.case_id).await?;
        crate::locks::refuse_locked_blinded(
            &mut tx,
            task.trial_id,
            data.subject.id,
            &[&task.visit_id],
            "correcting this read",
        )
        .await?;
        let previous = data.current(task.id).map(|v| v.version).unwrap_or(0);
        let version = ReadVersionRow {
            id: Uuid::new_v4(),
            task_id: task.id,
            version: next_version(&data, task.id),
            state: "submitted".into(),
            assessment: parsed.to_value().to_string(),
            result: Some(result.to_string()),
            reason: Some(reason.to_string()),
            author_id: author,
            saved_at: now,
            submitted_at: Some(now),
        };
        tx.insert_read_version(&version).await?;
        let mut rec = trial_record(
            actor,
            &role,
            task.trial_id,
            Some(&data.subject.site_id),
            now,
            "correct",
            "read",
            task.id,
            vec![change("version", previous, version.version), audit_result(&result)],
        );
        rec.reason = Some(reason.to_string());
        tx.append_audit(rec).await?;
        self.sign_and_settle(tx, actor, &design, &task, &version, READ_CORRECTED, now).await
    }

    /// The end of locking a read version (submission or correction): e-sign it with `meaning`,
    /// let the case react (reader comparison, adjudication), commit, and answer the blinded view.
    #[allow(clippy::too_many_arguments)]
    async fn sign_and_settle(
        &self,
        mut tx: Tx,
        actor: &Actor,
        design: &Design,
        task: &ReadTaskRow,
        version: &ReadVersionRow,
        meaning: &str,
        now: DateTime<Utc>,
    ) -> Result<BlindedReadCase, AppError> {
        self.write_signature(
            &mut tx,
            actor,
            Some(task.trial_id),
            "read",
            &version.id.to_string(),
            meaning,
            &version_content(version),
        )
        .await?;
        self.settle_case(&mut tx, design, task.case_id, now).await?;
        tx.commit().await?;
        self.blinded_case(design, task.id).await
    }

    /// Every image a read points at must be one of the subject's stored instances of the task's
    /// visit: a measurement recorded on another visit's or another subject's image would put the
    /// wrong image behind the number (and into the SR export).
    async fn check_image_refs(&self, task: &ReadTaskRow, subject: Uuid, parsed: &Read) -> Result<(), AppError> {
        let Read::Recist(a) = parsed else { return Ok(()) };
        let refs = a.image_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let mut tx = self.db().read().await?;
        for (key, image) in refs {
            let here = match tx.instance_by_uid(task.trial_id, &image.sop_instance_uid).await? {
                Some(i) => {
                    tx.study(i.study_id).await?.is_some_and(|s| s.subject_id == subject && s.visit_id == task.visit_id)
                }
                None => false,
            };
            if !here {
                return Err(AppError::invalid(
                    &format!("{key}.image.sop_instance_uid"),
                    format!(
                        "{key}: the image it refers to is not one of this timepoint's images; measure it on the \
                         images shown for this read"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a read about to be locked and computes what is stored with it: every selection
    /// rule at baseline, every baseline lesion answered at a follow-up, and the whole case of
    /// this reader (with this read in place) accepted by the engine.
    fn check_read(
        &self,
        design: &Design,
        data: &CaseData,
        task: &ReadTaskRow,
        parsed: &Read,
        labels: &HashMap<String, Label>,
    ) -> Result<Value, AppError> {
        let parsed = match parsed {
            Read::Recist(a) => a,
            Read::Measured(m) => return measured::check(design, data, task, m, labels),
        };
        let mine = SlotReads::current(data, task.slot, None)?;
        let label = labels.get(&task.visit_id).map(|l| l.label.clone()).unwrap_or_default();
        match parsed {
            Assessment::Baseline(b) => {
                let fus: Vec<(&ReadTaskRow, &FollowUpAssessment)> = match &mine {
                    Some(m) => m.follow_ups.iter().map(|(t, _, f)| (t, f)).collect(),
                    None => Vec::new(),
                };
                for (t, f) in &fus {
                    let l = labels.get(&t.visit_id).map(|l| l.label.clone()).unwrap_or_default();
                    check_complete(f, b, &l)?;
                }
                let r = evaluate_reads(design, b, &fus, labels)?;
                Ok(json!({"baseline_sum_mm": r.baseline_sum_mm, "timepoint": null}))
            }
            Assessment::FollowUp(f) => {
                let m = mine.ok_or_else(|| AppError::Conflict("submit the baseline first".into()))?;
                check_complete(f, &m.baseline.2, &label)?;
                let mut fus: Vec<(&ReadTaskRow, &FollowUpAssessment)> =
                    m.follow_ups.iter().filter(|(t, _, _)| t.id != task.id).map(|(t, _, f)| (t, f)).collect();
                fus.push((task, f));
                fus.sort_by(|a, b| (a.0.day, &a.0.visit_id).cmp(&(b.0.day, &b.0.visit_id)));
                let r = evaluate_reads(design, &m.baseline.2, &fus, labels)?;
                let index = fus.iter().position(|(t, _)| t.id == task.id).unwrap_or(0);
                Ok(json!({"baseline_sum_mm": r.baseline_sum_mm, "timepoint": r.per_timepoint.get(index)}))
            }
        }
    }

    /// A task as its reader sees it.
    async fn blinded_case(&self, design: &Design, task_id: Uuid) -> Result<BlindedReadCase, AppError> {
        let mut tx = self.db().read().await?;
        let task = tx.read_task(task_id).await?.ok_or_else(|| AppError::NotFound("no read task".into()))?;
        let data = case_data(&mut tx, task.case_id).await?;
        let labels = data.labels(design);
        let label = labels.get(&task.visit_id).cloned();
        let images = visit_images(&mut tx, data.subject.id, &task.visit_id).await?;
        let mut earlier = Vec::new();
        for t in data.slot_tasks(task.slot).into_iter().filter(|t| t.id != task.id && t.reader_id == task.reader_id) {
            let Some(v) = data.current(t.id) else { continue };
            let l = labels.get(&t.visit_id);
            earlier.push(BlindedTimepoint {
                timepoint: l.map(|l| l.label.clone()).unwrap_or_default(),
                days_from_baseline: l.and_then(|l| l.days),
                kind: if t.baseline { "baseline" } else { "follow_up" },
                version: v.version,
                assessment: serde_json::from_str(&v.assessment).unwrap_or(Value::Null),
                result: blinded_result(v),
                images: visit_images(&mut tx, data.subject.id, &t.visit_id).await?,
            });
        }
        drop(tx);
        let mut versions = Vec::new();
        for v in data.versions.get(&task.id).into_iter().flatten().filter(|v| v.state == "submitted") {
            versions.push(BlindedReadVersion {
                version: v.version,
                reason: v.reason.clone(),
                assessment: serde_json::from_str(&v.assessment).unwrap_or(Value::Null),
                result: blinded_result(v),
                signatures: self.signature_views("read", &v.id.to_string(), &version_content(v)).await?,
            });
        }
        Ok(BlindedReadCase {
            task_id: task.id,
            trial_id: task.trial_id,
            case_code: data.case.case_code.clone(),
            criteria: design.form.name().to_string(),
            timepoint: label.as_ref().map(|l| l.label.clone()).unwrap_or_default(),
            days_from_baseline: label.as_ref().and_then(|l| l.days),
            kind: if task.baseline { "baseline" } else { "follow_up" },
            state: data.reader_state(&task, design, &labels),
            images,
            draft: data.draft(task.id).and_then(|d| serde_json::from_str(&d.assessment).ok()),
            versions,
            earlier,
        })
    }
}

/// What the audit record of a locked read says about its computed result: the overall response
/// (RECIST), the EF (LVEF) or the MRI activity (MS; null at baseline).
fn audit_result(result: &Value) -> Value {
    let at = |pointer: &str| result.pointer(pointer).cloned().unwrap_or(Value::Null);
    if result.get("lvef").is_some() {
        change("ef_pct", Value::Null, at("/lvef/ef_pct"))
    } else if result.get("ms").is_some() {
        change("mri_activity", Value::Null, at("/ms/mri_activity"))
    } else {
        change("overall_response", Value::Null, at("/timepoint/overall"))
    }
}

fn next_version(data: &CaseData, task: Uuid) -> i64 {
    data.versions.get(&task).and_then(|v| v.iter().map(|v| v.version).max()).unwrap_or(0) + 1
}

fn no_read_form() -> AppError {
    AppError::Conflict("this trial's charter names no read criteria".into())
}

fn refuse_submitted(task: &ReadTaskRow) -> Result<(), AppError> {
    if task.state == task_state::SUBMITTED {
        Err(AppError::Conflict("this read is submitted and locked; correct it with a reason instead".into()))
    } else {
        Ok(())
    }
}

fn refuse_waiting(
    data: &CaseData,
    task: &ReadTaskRow,
    design: &Design,
    labels: &HashMap<String, Label>,
) -> Result<(), AppError> {
    match data.waiting_for(task, design, labels) {
        Some(first) => {
            let this = labels.get(&task.visit_id).map(|l| l.label.clone()).unwrap_or_default();
            Err(AppError::Conflict(format!(
                "{this} opens once you have submitted {first}: timepoints are read in order"
            )))
        }
        None => Ok(()),
    }
}
