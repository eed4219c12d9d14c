//! Comparing the two readers, adjudication, and the accepted result.
//!
//! A comparison happens when both readers have locked reads of exactly the same timepoints (with
//! at least one follow-up). Agreement on the charter's adjudication variables: reader 1's read is
//! accepted. Disagreement: an adjudication opens (an open one is replaced when the readers have
//! read more or corrected; a decided one carries forward while the readers disagree on nothing
//! new). The adjudicator chooses a reader per subject, or per variable where the charter allows,
//! with a rationale and an e-signature; the chosen read becomes the accepted result.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use corelab_domain::access::Role;
use corelab_domain::response::adjudication::{Disagreement, ReaderOutcome, adjudication_decision};
use corelab_domain::response::{CaseResult, Response};
use corelab_store::Tx;
use corelab_store::reads::{AcceptedResultRow, AdjudicationRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::measured::{self, MeasuredDisagreement, MeasuredPair, Series};
use super::views::{
    AdjudicationCase, AdjudicationSummary, BlindedAssessment, BlindedDisagreement, BlindedResult, BlindedTimepoint,
    BlindedTimepointImages, Label,
};
use super::{
    ADJUDICATION_DECIDED, CaseData, Design, ReadForm, SlotReads, adjudication_state, assign, candidates, case_data,
    charter_in, username_of, visit_images,
};
use crate::audit::{change, trial_record};
use crate::signatures::SigningCredentials;
use crate::{Actor, App, AppError};

/// What the adjudicator chose. Variable keys are internal (`overall_response:<visit id>`,
/// `progression_date`, `best_overall_response`, `first_response_date`); readers are 1 or 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    PerSubject { reader: i64 },
    PerVariable { variables: BTreeMap<String, i64> },
}

impl Decision {
    pub(super) fn reader_for(&self, variable: &str) -> i64 {
        match self {
            Decision::PerSubject { reader } => *reader,
            Decision::PerVariable { variables } => variables.get(variable).copied().unwrap_or(1),
        }
    }

    /// The reader lesion measurements come from: the chosen one, or reader 1 per variable.
    fn measurements(&self) -> i64 {
        match self {
            Decision::PerSubject { reader } => *reader,
            Decision::PerVariable { .. } => 1,
        }
    }

    /// The reader who "won" for reader metrics: per subject the chosen one; per variable the one
    /// chosen for more variables (none on a tie).
    pub(crate) fn winner(&self) -> Option<i64> {
        match self {
            Decision::PerSubject { reader } => Some(*reader),
            Decision::PerVariable { variables } => {
                let ones = variables.values().filter(|r| **r == 1).count();
                let twos = variables.len() - ones;
                match ones.cmp(&twos) {
                    std::cmp::Ordering::Greater => Some(1),
                    std::cmp::Ordering::Less => Some(2),
                    std::cmp::Ordering::Equal => None,
                }
            }
        }
    }
}

/// The adjudicator's decision as sent: one reader for the subject (`chosen`), or one per
/// variable (`variables`, keys as listed in the adjudication's disagreements).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DecisionInput {
    #[serde(default)]
    pub chosen: Option<String>,
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

fn reader_number(text: &str, field: &str) -> Result<i64, AppError> {
    match text {
        "reader_1" => Ok(1),
        "reader_2" => Ok(2),
        _ => Err(AppError::invalid(field, format!("\"{text}\" is not a reader; choose \"reader_1\" or \"reader_2\""))),
    }
}

/// The internal key of a disagreement (timepoints by visit id).
fn variable_key(d: &Disagreement, day_visit: &HashMap<u32, String>) -> String {
    match d {
        Disagreement::OverallResponse { days_from_baseline, .. } => format!(
            "overall_response:{}",
            day_visit.get(days_from_baseline).cloned().unwrap_or_else(|| days_from_baseline.to_string())
        ),
        Disagreement::ProgressionDate { .. } => "progression_date".into(),
        Disagreement::BestOverallResponse { .. } => "best_overall_response".into(),
        Disagreement::FirstResponseDate { .. } => "first_response_date".into(),
    }
}

/// The key as the adjudicator sees it (timepoints by blinded label): `overall_response:<visit>`,
/// `lvef:<visit>` and `mri_activity:<visit>` name a timepoint.
fn blinded_key(key: &str, labels: &HashMap<String, Label>) -> String {
    match key.split_once(':') {
        Some((variable, visit)) => {
            format!("{variable}:{}", labels.get(visit).map(|l| l.label.clone()).unwrap_or_else(|| "?".into()))
        }
        None => key.to_string(),
    }
}

/// What a compared pair of reads is: per reader, visit id -> version id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Compared {
    reader_1: BTreeMap<String, Uuid>,
    reader_2: BTreeMap<String, Uuid>,
}

/// Both readers' reads of a comparison, evaluated.
struct Pair {
    reads: [SlotReads; 2],
    results: [CaseResult; 2],
}

impl Pair {
    fn day_visit(&self) -> HashMap<u32, String> {
        self.reads[0]
            .follow_ups
            .iter()
            .filter_map(|(t, _, _)| Some((u32::try_from(t.day).ok()?, t.visit_id.clone())))
            .collect()
    }
}

/// Both readers' reads of a comparison, evaluated under the trial's read form.
enum Evaluated {
    Recist(Box<Pair>),
    Measured(MeasuredPair),
}

/// What comparing two readers found: whether adjudication is needed, the disagreements as
/// stored with an adjudication, and their variable keys.
struct Comparison {
    required: bool,
    stored: String,
    variables: Vec<String>,
}

impl Evaluated {
    fn compared(&self) -> Compared {
        match self {
            Evaluated::Recist(p) => Compared { reader_1: p.reads[0].version_ids(), reader_2: p.reads[1].version_ids() },
            Evaluated::Measured(p) => {
                Compared { reader_1: p.series[0].version_ids(), reader_2: p.series[1].version_ids() }
            }
        }
    }

    /// The compared visits in reading order: (visit id, baseline).
    fn visits(&self) -> Vec<(String, bool)> {
        match self {
            Evaluated::Recist(p) => {
                let mut v = vec![(p.reads[0].baseline.0.visit_id.clone(), true)];
                v.extend(p.reads[0].follow_ups.iter().map(|(t, _, _)| (t.visit_id.clone(), false)));
                v
            }
            Evaluated::Measured(p) => p.visits(),
        }
    }

    fn compare(&self, design: &Design) -> Result<Comparison, AppError> {
        match self {
            Evaluated::Recist(pair) => {
                let decision = adjudication_decision(
                    &ReaderOutcome::from(&pair.results[0]),
                    &ReaderOutcome::from(&pair.results[1]),
                    &design.triggers,
                );
                let day_visit = pair.day_visit();
                Ok(Comparison {
                    required: decision.required,
                    stored: serde_json::to_string(&decision.disagreements).map_err(AppError::internal)?,
                    variables: decision.disagreements.iter().map(|d| variable_key(d, &day_visit)).collect(),
                })
            }
            Evaluated::Measured(pair) => {
                let ds = if design.triggers.is_empty() { Vec::new() } else { pair.disagreements(design) };
                Ok(Comparison {
                    required: !ds.is_empty(),
                    stored: serde_json::to_string(&ds).map_err(AppError::internal)?,
                    variables: ds.iter().map(|d| d.variable.clone()).collect(),
                })
            }
        }
    }

    /// The variable keys of disagreements stored with an adjudication.
    fn keys(&self, stored: &str) -> Result<Vec<String>, AppError> {
        match self {
            Evaluated::Recist(pair) => {
                let day_visit = pair.day_visit();
                let ds: Vec<Disagreement> = serde_json::from_str(stored).map_err(AppError::internal)?;
                Ok(ds.iter().map(|d| variable_key(d, &day_visit)).collect())
            }
            Evaluated::Measured(_) => {
                let ds: Vec<MeasuredDisagreement> = serde_json::from_str(stored).map_err(AppError::internal)?;
                Ok(ds.into_iter().map(|d| d.variable).collect())
            }
        }
    }

    fn compose(&self, decision: &Decision, design: &Design) -> Value {
        match self {
            Evaluated::Recist(p) => {
                compose(&[&p.reads[0], &p.reads[1]], &[&p.results[0], &p.results[1]], decision, design)
            }
            Evaluated::Measured(p) => {
                let whole = match decision {
                    Decision::PerSubject { reader } => Some(*reader),
                    Decision::PerVariable { .. } => None,
                };
                p.compose(design, whole, &|key| decision.reader_for(key))
            }
        }
    }
}

/// The accepted result of a case from reads and results (one reader, or two with a decision).
fn compose(reads: &[&SlotReads], results: &[&CaseResult], decision: &Decision, design: &Design) -> Value {
    let pick = |slot: i64| -> usize { usize::try_from(slot - 1).unwrap_or(0).min(reads.len().saturating_sub(1)) };
    let m = pick(decision.measurements());
    let mut timepoints = Vec::new();
    let b = &reads[m].baseline;
    timepoints.push(json!({
        "visit_id": b.0.visit_id, "baseline": true, "reader": m + 1, "measurements_reader": m + 1,
        "read_version_id": b.1.id, "version": b.1.version,
        "baseline_sum_mm": results[m].baseline_sum_mm,
    }));
    for (i, (t, _, _)) in reads[m].follow_ups.iter().enumerate() {
        let r = pick(decision.reader_for(&format!("overall_response:{}", t.visit_id)));
        let tr = results[r].per_timepoint.get(i);
        let mv = &reads[m].follow_ups[i].1;
        timepoints.push(json!({
            "visit_id": t.visit_id, "baseline": false, "days_from_baseline": t.day,
            "reader": r + 1, "measurements_reader": m + 1,
            "read_version_id": mv.id, "version": mv.version,
            "overall": tr.map(|x| x.overall), "target_response": tr.map(|x| x.target_response),
            "non_target_response": tr.map(|x| x.non_target_response), "new_lesions": tr.map(|x| x.new_lesions),
            "sum_mm": tr.and_then(|x| x.sum_mm),
        }));
    }
    let var = |key: &str| pick(decision.reader_for(key));
    let (bor, prog, first) = (var("best_overall_response"), var("progression_date"), var("first_response_date"));
    let whole = match decision {
        Decision::PerSubject { reader } => json!(reader),
        Decision::PerVariable { .. } => Value::Null,
    };
    json!({
        "criteria": design.form.name(),
        "reader": whole,
        "timepoints": timepoints,
        "best_overall_response": {"value": results[bor].best_overall_response, "reader": bor + 1},
        "progression_day_from_baseline": {"value": results[prog].progression_day_from_baseline, "reader": prog + 1},
        "first_response_day_from_baseline": {"value": results[first].first_response_day_from_baseline, "reader": first + 1},
    })
}

impl App {
    /// After a read was locked or corrected: single reads are accepted as they are; double reads
    /// are compared when both readers have read the same timepoints, opening, replacing or
    /// closing adjudications and recording the accepted result.
    pub(crate) async fn settle_case(
        &self,
        tx: &mut Tx,
        design: &Design,
        case_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let data = case_data(tx, case_id).await?;
        let labels = data.labels(design);
        let reader_1 = Decision::PerSubject { reader: 1 };
        if design.readers == 1 {
            let result = match design.form {
                ReadForm::Recist(_) => {
                    let Some(r) = SlotReads::current(&data, 1, None)? else { return Ok(()) };
                    if r.follow_ups.is_empty() {
                        return Ok(());
                    }
                    let res = r.evaluate(design, &labels)?;
                    compose(&[&r], &[&res], &reader_1, design)
                }
                ReadForm::Lvef | ReadForm::Ms(_) => {
                    let Some(r) = Series::current(&data, 1, None, design)? else { return Ok(()) };
                    if r.follow_ups() == 0 {
                        return Ok(());
                    }
                    let res = r.evaluate(design, &labels)?;
                    measured::compose(&[&r], &[&res], design, Some(1), &|_| 1)
                }
            };
            return self.record_accepted(tx, &data, "single_read", None, result, now).await;
        }
        let (s1, s2) = (data.submitted_visits(1), data.submitted_visits(2));
        let baseline_in = data.tasks.iter().any(|t| t.baseline && s1.contains(&t.visit_id));
        if s1 != s2 || !baseline_in || s1.len() < 2 {
            return Ok(());
        }
        let pair = match design.form {
            ReadForm::Recist(_) => {
                let (Some(r1), Some(r2)) = (SlotReads::current(&data, 1, None)?, SlotReads::current(&data, 2, None)?)
                else {
                    return Ok(());
                };
                Evaluated::Recist(Box::new(Pair {
                    results: [r1.evaluate(design, &labels)?, r2.evaluate(design, &labels)?],
                    reads: [r1, r2],
                }))
            }
            ReadForm::Lvef | ReadForm::Ms(_) => {
                let (Some(r1), Some(r2)) =
                    (Series::current(&data, 1, None, design)?, Series::current(&data, 2, None, design)?)
                else {
                    return Ok(());
                };
                Evaluated::Measured(MeasuredPair::new(r1, r2, design, &labels)?)
            }
        };
        let compared_text = serde_json::to_string(&pair.compared()).map_err(AppError::internal)?;
        if !design.adjudicated {
            let result = pair.compose(&reader_1, design);
            return self.record_accepted(tx, &data, "no_adjudication", None, result, now).await;
        }
        let comparison = pair.compare(design)?;
        let adjs = tx.case_adjudications(case_id).await?;
        let pending = adjs
            .iter()
            .rev()
            .find(|a| a.state == adjudication_state::OPEN || a.state == adjudication_state::UNASSIGNED)
            .cloned();
        let decided = adjs.iter().rev().find(|a| a.state == adjudication_state::DECIDED).cloned();
        if !comparison.required {
            if let Some(p) = pending {
                self.supersede(tx, &data, &p, "the readers agree at the latest comparison", now).await?;
            }
            let result = pair.compose(&reader_1, design);
            return self.record_accepted(tx, &data, "agreement", None, result, now).await;
        }
        if let Some(p) = pending {
            if p.compared == compared_text {
                return Ok(());
            }
            self.supersede(tx, &data, &p, "replaced by a comparison of more or corrected reads", now).await?;
        } else if let Some(d) = decided {
            let before: Vec<Value> = serde_json::from_str(&d.disagreements).unwrap_or_default();
            let current: Vec<Value> = serde_json::from_str(&comparison.stored).map_err(AppError::internal)?;
            if current.iter().all(|x| before.contains(x))
                && let Some(text) = &d.decision
            {
                let chosen: Decision = serde_json::from_str(text).map_err(AppError::internal)?;
                let result = pair.compose(&chosen, design);
                return self.record_accepted(tx, &data, "adjudication", Some(d.id), result, now).await;
            }
        }
        // A new adjudication, given to the least busy qualified adjudicator who reads neither side.
        let cands = candidates(tx, data.case.trial_id, Role::Adjudicator).await?;
        let exclude: Vec<Uuid> = [data.case.reader_1, data.case.reader_2].into_iter().flatten().collect();
        let (ranked, passed_over) = assign::rank(&design.qualifications, &cands, now.date_naive(), &exclude);
        let adjudicator = ranked.first().copied();
        let variables = comparison.variables;
        let row = AdjudicationRow {
            id: Uuid::new_v4(),
            trial_id: data.case.trial_id,
            case_id,
            state: if adjudicator.is_some() { adjudication_state::OPEN } else { adjudication_state::UNASSIGNED }.into(),
            adjudicator_id: adjudicator,
            note: adjudicator.is_none().then(|| assign::none_available("adjudicator", &passed_over)),
            compared: compared_text,
            disagreements: comparison.stored,
            choice: if design.per_variable { "per_variable" } else { "per_subject" }.into(),
            decision: None,
            rationale: None,
            created_at: now,
            decided_at: None,
        };
        tx.insert_adjudication(&row).await?;
        let mut rec = trial_record(
            &Actor::system(),
            "system",
            data.case.trial_id,
            Some(&data.subject.site_id),
            now,
            "create",
            "adjudication",
            row.id,
            vec![
                change("case_code", Value::Null, data.case.case_code.clone()),
                change("variables", Value::Null, variables),
                change("adjudicator", Value::Null, username_of(&cands, adjudicator)),
                change("state", Value::Null, row.state.clone()),
            ],
        );
        rec.reason = row.note.clone();
        tx.append_audit(rec).await?;
        Ok(())
    }

    async fn supersede(
        &self,
        tx: &mut Tx,
        data: &CaseData,
        a: &AdjudicationRow,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        tx.update_adjudication(&AdjudicationRow { state: adjudication_state::SUPERSEDED.into(), ..a.clone() }).await?;
        let mut rec = trial_record(
            &Actor::system(),
            "system",
            a.trial_id,
            Some(&data.subject.site_id),
            now,
            "supersede",
            "adjudication",
            a.id,
            vec![change("state", a.state.clone(), adjudication_state::SUPERSEDED)],
        );
        rec.reason = Some(why.into());
        tx.append_audit(rec).await?;
        Ok(())
    }

    /// Records `result` as the case's accepted result unless it is already the one in force.
    async fn record_accepted(
        &self,
        tx: &mut Tx,
        data: &CaseData,
        basis: &str,
        adjudication_id: Option<Uuid>,
        result: Value,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let history = tx.accepted_results(data.case.id).await?;
        let text = result.to_string();
        if let Some(last) = history.last()
            && last.basis == basis
            && last.adjudication_id == adjudication_id
            && last.result == text
        {
            return Ok(());
        }
        let row = AcceptedResultRow {
            id: Uuid::new_v4(),
            trial_id: data.case.trial_id,
            case_id: data.case.id,
            seq: history.last().map(|r| r.seq).unwrap_or(0) + 1,
            basis: basis.into(),
            adjudication_id,
            result: text,
            recorded_at: now,
        };
        tx.insert_accepted_result(&row).await?;
        let mut changes =
            vec![change("basis", Value::Null, basis), change("reader", Value::Null, result["reader"].clone())];
        match result.get("summary") {
            // LVEF and MS results.
            Some(summary) => changes.push(change("summary", Value::Null, summary.clone())),
            None => {
                changes.push(change(
                    "best_overall_response",
                    Value::Null,
                    result["best_overall_response"]["value"].clone(),
                ));
                changes.push(change(
                    "progression_day_from_baseline",
                    Value::Null,
                    result["progression_day_from_baseline"]["value"].clone(),
                ));
            }
        }
        changes.push(change("adjudication", Value::Null, adjudication_id.map(|a| a.to_string())));
        tx.append_audit(trial_record(
            &Actor::system(),
            "system",
            data.case.trial_id,
            Some(&data.subject.site_id),
            now,
            "accept",
            "read_case",
            data.case.id,
            changes,
        ))
        .await?;
        Ok(())
    }

    /// The compared reads of an adjudication, evaluated.
    async fn compared_pair(
        &self,
        tx: &mut Tx,
        design: &Design,
        data: &CaseData,
        a: &AdjudicationRow,
    ) -> Result<Evaluated, AppError> {
        let compared: Compared = serde_json::from_str(&a.compared).map_err(AppError::internal)?;
        let labels = data.labels(design);
        let mut per_reader = Vec::new();
        for ids in [&compared.reader_1, &compared.reader_2] {
            let mut pairs = Vec::new();
            for vid in ids.values() {
                let v = tx
                    .read_version(*vid)
                    .await?
                    .ok_or_else(|| AppError::internal(std::io::Error::other("compared read missing")))?;
                let t = data
                    .tasks
                    .iter()
                    .find(|t| t.id == v.task_id)
                    .cloned()
                    .ok_or_else(|| AppError::internal(std::io::Error::other("compared task missing")))?;
                pairs.push((t, v));
            }
            per_reader.push(pairs);
        }
        let missing = |what: &str| AppError::internal(std::io::Error::other(format!("compared reads: {what}")));
        let p2 = per_reader.pop().ok_or_else(|| missing("no reader 2"))?;
        let p1 = per_reader.pop().ok_or_else(|| missing("no reader 1"))?;
        match design.form {
            ReadForm::Recist(_) => {
                let r1 = SlotReads::from_versions(p1)?.ok_or_else(|| missing("no baseline"))?;
                let r2 = SlotReads::from_versions(p2)?.ok_or_else(|| missing("no baseline"))?;
                Ok(Evaluated::Recist(Box::new(Pair {
                    results: [r1.evaluate(design, &labels)?, r2.evaluate(design, &labels)?],
                    reads: [r1, r2],
                })))
            }
            ReadForm::Lvef | ReadForm::Ms(_) => {
                let r1 = Series::from_versions(p1, design)?.ok_or_else(|| missing("no baseline"))?;
                let r2 = Series::from_versions(p2, design)?.ok_or_else(|| missing("no baseline"))?;
                Ok(Evaluated::Measured(MeasuredPair::new(r1, r2, design, &labels)?))
            }
        }
    }

    /// An adjudication of the caller's, with the role acted in; 404 for anyone else's.
    async fn own_adjudication(
        &self,
        actor: &Actor,
        id: Uuid,
        action: &str,
    ) -> Result<(String, AdjudicationRow), AppError> {
        let not_found = || AppError::NotFound(format!("no adjudication {id}"));
        let mut tx = self.db().read().await?;
        let a = tx.adjudication(id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, a.trial_id).await.map_err(|_| not_found())?;
        let role = self.require(actor, &access, &[Role::Adjudicator], action, "adjudication", &id.to_string()).await?;
        if actor.user_id.is_none() || a.adjudicator_id != actor.user_id {
            return Err(not_found());
        }
        Ok((role, a))
    }

    /// The caller's adjudications in a trial (adjudicators): open and decided ones.
    pub async fn my_adjudications(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<AdjudicationSummary>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::Adjudicator], "see adjudications", "adjudication", "*").await?;
        let Some(me) = actor.user_id else { return Ok(Vec::new()) };
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, trial_id).await?;
        let Some(design) = Design::of(&charter) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for a in tx.trial_adjudications(trial_id).await?.into_iter().filter(|a| {
            a.adjudicator_id == Some(me)
                && (a.state == adjudication_state::OPEN || a.state == adjudication_state::DECIDED)
        }) {
            let data = case_data(&mut tx, a.case_id).await?;
            let labels = data.labels(&design);
            let pair = self.compared_pair(&mut tx, &design, &data, &a).await?;
            out.push(AdjudicationSummary {
                adjudication_id: a.id,
                case_code: data.case.case_code.clone(),
                state: a.state.clone(),
                variables: pair.keys(&a.disagreements)?.iter().map(|k| blinded_key(k, &labels)).collect(),
            });
        }
        Ok(out)
    }

    /// An adjudication as its adjudicator sees it: both readers' complete assessments, blinded.
    pub async fn open_adjudication(&self, actor: &Actor, id: Uuid) -> Result<AdjudicationCase, AppError> {
        let (_, a) = self.own_adjudication(actor, id, "open adjudications").await?;
        self.adjudication_case(&a).await
    }

    async fn adjudication_case(&self, a: &AdjudicationRow) -> Result<AdjudicationCase, AppError> {
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, a.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(super::no_read_form)?;
        let data = case_data(&mut tx, a.case_id).await?;
        let labels = data.labels(&design);
        let pair = self.compared_pair(&mut tx, &design, &data, a).await?;
        let mut timepoints = Vec::new();
        for (visit, baseline) in pair.visits() {
            let l = labels.get(&visit);
            timepoints.push(BlindedTimepointImages {
                timepoint: l.map(|l| l.label.clone()).unwrap_or_default(),
                days_from_baseline: l.and_then(|l| l.days),
                kind: if baseline { "baseline" } else { "follow_up" },
                images: visit_images(&mut tx, data.subject.id, &visit).await?,
            });
        }
        drop(tx);
        let (reader_1, reader_2, disagreements) = match &pair {
            Evaluated::Recist(p) => recist_sides(p, &labels, &a.disagreements)?,
            Evaluated::Measured(p) => measured_sides(p, &labels, &a.disagreements)?,
        };
        let decision = match &a.decision {
            Some(text) => {
                let d: Decision = serde_json::from_str(text).map_err(AppError::internal)?;
                Some(match d {
                    Decision::PerSubject { reader } => json!({"chosen": format!("reader_{reader}")}),
                    Decision::PerVariable { variables } => json!({"variables": variables
                        .iter()
                        .map(|(k, r)| (blinded_key(k, &labels), Value::from(format!("reader_{r}"))))
                        .collect::<serde_json::Map<String, Value>>()}),
                })
            }
            None => None,
        };
        let content = decision_content(a);
        Ok(AdjudicationCase {
            adjudication_id: a.id,
            trial_id: a.trial_id,
            case_code: data.case.case_code.clone(),
            criteria: design.form.name().to_string(),
            state: a.state.clone(),
            choice: a.choice.clone(),
            timepoints,
            disagreements,
            reader_1,
            reader_2,
            decision,
            rationale: a.rationale.clone(),
            signatures: self.signature_views("adjudication", &a.id.to_string(), &content).await?,
        })
    }

    /// The adjudicator's decision: a reader per subject (or per variable where the charter
    /// allows), a rationale, an e-signature ("adjudication decided"); the chosen read becomes the
    /// accepted result.
    pub async fn decide_adjudication(
        &self,
        actor: &Actor,
        id: Uuid,
        input: DecisionInput,
        rationale: &str,
        creds: SigningCredentials,
    ) -> Result<AdjudicationCase, AppError> {
        let (role, a) = self.own_adjudication(actor, id, "decide adjudications").await?;
        match a.state.as_str() {
            adjudication_state::OPEN => {}
            adjudication_state::DECIDED => {
                return Err(AppError::Conflict("this adjudication is already decided".into()));
            }
            _ => {
                return Err(AppError::Conflict(
                    "this adjudication was replaced by a newer comparison of the readers; open the current one".into(),
                ));
            }
        }
        let rationale = rationale.trim();
        if rationale.is_empty() {
            return Err(AppError::invalid("rationale", "give the rationale for the reader you chose"));
        }
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, a.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(super::no_read_form)?;
        let data = case_data(&mut tx, a.case_id).await?;
        let visits: Vec<String> = data.visits().into_iter().map(|(v, _, _)| v).collect();
        let visit_refs: Vec<&str> = visits.iter().map(String::as_str).collect();
        crate::locks::refuse_locked_blinded(
            &mut tx,
            a.trial_id,
            data.subject.id,
            &visit_refs,
            "deciding this adjudication",
        )
        .await?;
        let labels = data.labels(&design);
        let pair = self.compared_pair(&mut tx, &design, &data, &a).await?;
        drop(tx);
        let keys = pair.keys(&a.disagreements)?;
        let decision = match (input.chosen.as_deref(), input.variables) {
            (Some(c), None) => Decision::PerSubject { reader: reader_number(c, "chosen")? },
            (None, Some(vars)) => {
                if !design.per_variable {
                    return Err(AppError::invalid(
                        "variables",
                        "this charter has the adjudicator choose one reader per subject: give chosen",
                    ));
                }
                let mut chosen = BTreeMap::new();
                for (given, reader) in &vars {
                    let key = keys.iter().find(|k| blinded_key(k, &labels) == *given).ok_or_else(|| {
                        AppError::invalid("variables", format!("{given} is not a variable the readers disagree on"))
                    })?;
                    chosen.insert(key.clone(), reader_number(reader, "variables")?);
                }
                let missing: Vec<String> =
                    keys.iter().filter(|k| !chosen.contains_key(*k)).map(|k| blinded_key(k, &labels)).collect();
                if !missing.is_empty() {
                    return Err(AppError::invalid(
                        "variables",
                        format!("choose a reader for every variable in disagreement; missing {}", missing.join(", ")),
                    ));
                }
                Decision::PerVariable { variables: chosen }
            }
            _ => {
                return Err(AppError::invalid(
                    "chosen",
                    "choose one reader: chosen = \"reader_1\" or \"reader_2\" (or, where the charter allows, variables)",
                ));
            }
        };
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let current = tx.adjudication(id).await?.ok_or_else(|| AppError::NotFound(format!("no adjudication {id}")))?;
        if current.state != adjudication_state::OPEN {
            return Err(AppError::Conflict("this adjudication changed meanwhile; open it again".into()));
        }
        let decided = AdjudicationRow {
            state: adjudication_state::DECIDED.into(),
            decision: Some(serde_json::to_string(&decision).map_err(AppError::internal)?),
            rationale: Some(rationale.to_string()),
            decided_at: Some(now),
            ..current
        };
        tx.update_adjudication(&decided).await?;
        let readers = [data.case.reader_1, data.case.reader_2];
        let cands = candidates(&mut tx, a.trial_id, Role::Reader).await?;
        let chosen_text = match &decision {
            Decision::PerSubject { reader } => {
                let who = readers.get(usize::try_from(reader - 1).unwrap_or(0)).copied().flatten();
                vec![
                    change("decision", Value::Null, format!("reader_{reader}")),
                    change("reader", Value::Null, username_of(&cands, who)),
                ]
            }
            Decision::PerVariable { variables } => vec![change(
                "decision",
                Value::Null,
                variables
                    .iter()
                    .map(|(k, r)| (k.clone(), Value::from(format!("reader_{r}"))))
                    .collect::<serde_json::Map<_, _>>(),
            )],
        };
        let mut rec = trial_record(
            actor,
            &role,
            a.trial_id,
            Some(&data.subject.site_id),
            now,
            "decide",
            "adjudication",
            a.id,
            chosen_text,
        );
        rec.reason = Some(rationale.to_string());
        tx.append_audit(rec).await?;
        self.write_signature(
            &mut tx,
            actor,
            Some(a.trial_id),
            "adjudication",
            &a.id.to_string(),
            ADJUDICATION_DECIDED,
            &decision_content(&decided),
        )
        .await?;
        let result = pair.compose(&decision, &design);
        self.record_accepted(&mut tx, &data, "adjudication", Some(a.id), result, now).await?;
        tx.commit().await?;
        self.adjudication_case(&decided).await
    }
}

/// Both RECIST readers' complete assessments and the disagreements, blinded.
fn recist_sides(
    pair: &Pair,
    labels: &HashMap<String, Label>,
    stored: &str,
) -> Result<(BlindedAssessment, BlindedAssessment, Vec<BlindedDisagreement>), AppError> {
    let day_visit = pair.day_visit();
    let label_of_day = |day: Option<u32>| -> Option<String> {
        let d = day?;
        Some(
            day_visit
                .get(&d)
                .and_then(|v| labels.get(v))
                .map(|l| l.label.clone())
                .unwrap_or_else(|| "an earlier timepoint".into()),
        )
    };
    let assessment = |k: usize| -> BlindedAssessment {
        let reads = &pair.reads[k];
        let res = &pair.results[k];
        let mut tps = Vec::new();
        let bl = labels.get(&reads.baseline.0.visit_id);
        tps.push(BlindedTimepoint {
            timepoint: bl.map(|l| l.label.clone()).unwrap_or_default(),
            days_from_baseline: None,
            kind: "baseline",
            version: reads.baseline.1.version,
            assessment: serde_json::to_value(&reads.baseline.2).unwrap_or(Value::Null),
            result: Some(BlindedResult::baseline(res.baseline_sum_mm)),
            images: Vec::new(),
        });
        for (i, (t, v, f)) in reads.follow_ups.iter().enumerate() {
            let l = labels.get(&t.visit_id);
            tps.push(BlindedTimepoint {
                timepoint: l.map(|l| l.label.clone()).unwrap_or_default(),
                days_from_baseline: l.and_then(|l| l.days),
                kind: "follow_up",
                version: v.version,
                assessment: serde_json::to_value(f).unwrap_or(Value::Null),
                result: res.per_timepoint.get(i).map(|tr| BlindedResult::follow_up(res.baseline_sum_mm, tr)),
                images: Vec::new(),
            });
        }
        BlindedAssessment {
            timepoints: tps,
            best_overall_response: Some(res.best_overall_response),
            progression_at: label_of_day(res.progression_day_from_baseline),
            first_response_at: label_of_day(res.first_response_day_from_baseline),
        }
    };
    let ds: Vec<Disagreement> = serde_json::from_str(stored).map_err(AppError::internal)?;
    let show = |r: Option<Response>| r.map(|r| r.as_str().to_string());
    let disagreements = ds
        .iter()
        .map(|d| {
            let variable = blinded_key(&variable_key(d, &day_visit), labels);
            let (r1, r2) = match d {
                Disagreement::OverallResponse { reader_1, reader_2, .. } => (show(*reader_1), show(*reader_2)),
                Disagreement::ProgressionDate { reader_1, reader_2 }
                | Disagreement::FirstResponseDate { reader_1, reader_2 } => {
                    (label_of_day(*reader_1), label_of_day(*reader_2))
                }
                Disagreement::BestOverallResponse { reader_1, reader_2 } => {
                    (show(Some(*reader_1)), show(Some(*reader_2)))
                }
            };
            BlindedDisagreement { variable, reader_1: r1, reader_2: r2 }
        })
        .collect();
    Ok((assessment(0), assessment(1), disagreements))
}

/// Both LVEF/MS readers' complete assessments and the disagreements, blinded.
fn measured_sides(
    pair: &MeasuredPair,
    labels: &HashMap<String, Label>,
    stored: &str,
) -> Result<(BlindedAssessment, BlindedAssessment, Vec<BlindedDisagreement>), AppError> {
    let assessment = |k: usize| -> BlindedAssessment {
        let timepoints = pair.series[k]
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let l = labels.get(&e.task.visit_id);
                BlindedTimepoint {
                    timepoint: l.map(|l| l.label.clone()).unwrap_or_default(),
                    days_from_baseline: l.and_then(|l| l.days),
                    kind: if e.task.baseline { "baseline" } else { "follow_up" },
                    version: e.version.as_ref().map(|v| v.version).unwrap_or(0),
                    assessment: e.read.to_value(),
                    result: Some(pair.results[k].view(i)),
                    images: Vec::new(),
                }
            })
            .collect();
        BlindedAssessment { timepoints, best_overall_response: None, progression_at: None, first_response_at: None }
    };
    let ds: Vec<MeasuredDisagreement> = serde_json::from_str(stored).map_err(AppError::internal)?;
    let disagreements = ds
        .into_iter()
        .map(|d| BlindedDisagreement {
            variable: blinded_key(&d.variable, labels),
            reader_1: Some(d.reader_1),
            reader_2: Some(d.reader_2),
        })
        .collect();
    Ok((assessment(0), assessment(1), disagreements))
}

/// The canonical content an adjudication decision's e-signature binds to.
fn decision_content(a: &AdjudicationRow) -> Value {
    json!({
        "adjudication": a.id,
        "compared": serde_json::from_str::<Value>(&a.compared).unwrap_or(Value::Null),
        "decision": a.decision.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
        "rationale": a.rationale,
    })
}
