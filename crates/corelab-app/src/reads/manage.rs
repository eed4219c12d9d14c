//! The trial manager's side of reads: reader profiles, the task overview (with why a task has no
//! reader), accepted results per subject, and reader metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use corelab_domain::access::Role;
use corelab_domain::charter::{Criteria as CharterCriteria, TherapeuticArea};
use corelab_domain::response::agreement::{DoubleRead, Kappa, Rate, cohen_kappa, read_metrics};
use corelab_store::Tx;
use corelab_store::reads::{ReadTaskRow, ReaderProfileRow};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::adjudicate::Decision;
use super::assign;
use super::measured::Series;
use super::{
    Design, ReadForm, SlotReads, adjudication_state, candidates, case_data, charter_in, gaps_of, profile_of,
    task_state, username_of,
};
use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

/// A reader profile as the trial manager edits it.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub user_id: Uuid,
    pub therapeutic_areas: Vec<String>,
    pub criteria: Vec<String>,
    pub training_valid_until: Option<NaiveDate>,
}

/// A reader or adjudicator of the trial with their profile and whether it meets the charter.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderProfileView {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub therapeutic_areas: Vec<String>,
    pub criteria: Vec<String>,
    pub training_valid_until: Option<NaiveDate>,
    pub qualified: bool,
    /// Why not, when not qualified.
    pub gaps: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskOverview {
    pub task_id: Uuid,
    pub subject: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub case_code: String,
    pub visit_id: String,
    pub slot: i64,
    pub reader: Option<String>,
    /// unassigned, open, submitted
    pub state: String,
    /// For an unassigned task, why no reader has it now (e.g. "no qualified reader available").
    pub note: Option<String>,
    pub qc_passed_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdjudicationOverview {
    pub adjudication_id: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub case_code: String,
    pub state: String,
    pub adjudicator: Option<String>,
    pub note: Option<String>,
    pub decision: Option<Value>,
    pub rationale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadOverview {
    pub tasks: Vec<TaskOverview>,
    pub adjudications: Vec<AdjudicationOverview>,
    /// Tasks waiting for a reader.
    pub unassigned: usize,
}

/// A subject's accepted result (the latest recorded) with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedView {
    pub subject: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub case_code: String,
    pub reader_1: Option<String>,
    pub reader_2: Option<String>,
    /// single_read, agreement, no_adjudication or adjudication
    pub basis: String,
    pub adjudication_id: Option<Uuid>,
    /// The reader whose whole assessment was accepted (per-subject), by username.
    pub accepted_reader: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// How many accepted results were recorded for the subject (the last is this one).
    pub revisions: i64,
    pub result: Value,
}

/// Turnaround from QC passed to read submitted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Turnaround {
    pub reads: u64,
    pub mean_hours: Option<f64>,
    pub median_hours: Option<f64>,
    pub max_hours: Option<f64>,
}

impl Turnaround {
    fn of(mut hours: Vec<f64>) -> Turnaround {
        hours.sort_by(f64::total_cmp);
        let n = hours.len();
        #[allow(clippy::cast_precision_loss)]
        let mean = (n > 0).then(|| hours.iter().sum::<f64>() / n as f64);
        let median = match n {
            0 => None,
            _ if n % 2 == 1 => hours.get(n / 2).copied(),
            _ => Some((hours.get(n / 2 - 1).copied().unwrap_or(0.0) + hours.get(n / 2).copied().unwrap_or(0.0)) / 2.0),
        };
        Turnaround { reads: n as u64, mean_hours: mean, median_hours: median, max_hours: hours.last().copied() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReaderMetricsRow {
    pub reader: String,
    pub display_name: String,
    /// Subjects this reader double-read that went to adjudication / subjects double-read.
    pub adjudication_rate: Rate,
    /// Decided adjudications the adjudicator settled for this reader / decided adjudications involving them.
    pub adjudicator_agreement_rate: Rate,
    /// Subjects where the adjudicator chose the other reader / subjects read (x 100 for the index).
    pub reader_disagreement_index: Rate,
    pub open_tasks: u64,
    pub submitted_reads: u64,
    pub turnaround: Turnaround,
}

/// Cohen's kappa on timepoint overall responses between two readers.
#[derive(Debug, Clone, Serialize)]
pub struct PairKappa {
    pub reader_a: String,
    pub reader_b: String,
    pub kappa: Kappa,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadMetricsView {
    /// Subjects read by two readers with at least one follow-up in common.
    pub double_read_subjects: u64,
    /// Adjudicated subjects / double-read subjects.
    pub adjudication_rate: Rate,
    pub pending_adjudications: u64,
    pub per_reader: Vec<ReaderMetricsRow>,
    pub kappa: Vec<PairKappa>,
    pub turnaround: Turnaround,
}

fn words<T: Copy>(
    list: &[String],
    parse: impl Fn(&str) -> Option<T>,
    all: &[&str],
    field: &str,
) -> Result<Vec<T>, AppError> {
    let mut out = Vec::new();
    for w in list {
        let v = parse(w.trim())
            .ok_or_else(|| AppError::invalid(field, format!("\"{w}\" is not one of {}", all.join(", "))))?;
        out.push(v);
    }
    Ok(out)
}

fn json_words(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)
}

fn hours(t: &ReadTaskRow) -> Option<f64> {
    let s = t.submitted_at?;
    #[allow(clippy::cast_precision_loss)]
    Some((s - t.qc_passed_at).num_milliseconds() as f64 / 3_600_000.0)
}

impl App {
    /// The trial's readers and adjudicators with their profiles (trial managers, monitors).
    pub async fn reader_profiles(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<ReaderProfileView>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(
            actor,
            &access,
            &[Role::TrialManager, Role::Monitor],
            "see reader profiles",
            "reader_profile",
            "*",
        )
        .await?;
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, trial_id).await?;
        let grants = tx.trial_grants(trial_id).await?;
        let profiles: HashMap<Uuid, ReaderProfileRow> =
            tx.reader_profiles(trial_id).await?.into_iter().map(|p| (p.user_id, p)).collect();
        let today = self.clock().now().date_naive();
        let mut users: Vec<Uuid> = grants
            .iter()
            .filter(|g| g.role == Role::Reader.as_str() || g.role == Role::Adjudicator.as_str())
            .map(|g| g.user_id)
            .collect();
        users.sort();
        users.dedup();
        let mut out = Vec::new();
        for uid in users {
            let Some(user) = tx.user_by_id(uid).await? else { continue };
            let p = profiles.get(&uid);
            let parsed = p.map(profile_of);
            let gaps = assign::profile_gaps(&charter.reads.reader_qualifications, parsed.as_ref(), today);
            out.push(ReaderProfileView {
                user_id: uid,
                username: user.username,
                display_name: user.display_name,
                roles: grants.iter().filter(|g| g.user_id == uid).map(|g| g.role.clone()).collect(),
                therapeutic_areas: parsed
                    .as_ref()
                    .map(|p| p.therapeutic_areas.iter().map(|a| a.to_string()).collect())
                    .unwrap_or_default(),
                criteria: parsed
                    .as_ref()
                    .map(|p| p.criteria.iter().map(|c| c.to_string()).collect())
                    .unwrap_or_default(),
                training_valid_until: p.and_then(|p| p.training_valid_until),
                qualified: gaps.is_empty(),
                gaps,
                updated_at: p.map(|p| p.updated_at),
            });
        }
        Ok(out)
    }

    /// Creates or updates a reader profile (trial managers), audited; then gives waiting tasks
    /// and adjudications to readers who now qualify.
    pub async fn set_reader_profile(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        input: ProfileInput,
    ) -> Result<ReaderProfileView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::TrialManager],
                "manage reader profiles",
                "reader_profile",
                &input.user_id.to_string(),
            )
            .await?;
        let areas = words(
            &input.therapeutic_areas,
            TherapeuticArea::from_charter_str,
            &TherapeuticArea::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "therapeutic_areas",
        )?;
        let criteria = words(
            &input.criteria,
            CharterCriteria::from_charter_str,
            &CharterCriteria::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "criteria",
        )?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let user =
            tx.user_by_id(input.user_id).await?.ok_or_else(|| AppError::invalid("user_id", "no such account"))?;
        let reads = tx
            .live_grants(user.id, Some(trial_id))
            .await?
            .iter()
            .any(|g| g.role == Role::Reader.as_str() || g.role == Role::Adjudicator.as_str());
        if !reads {
            return Err(AppError::invalid(
                "user_id",
                "this user is neither a reader nor an adjudicator in this trial; grant the role first",
            ));
        }
        let as_json = |v: Vec<String>| serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
        let row = ReaderProfileRow {
            trial_id,
            user_id: user.id,
            therapeutic_areas: as_json(areas.iter().map(|a| a.as_str().to_string()).collect()),
            criteria: as_json(criteria.iter().map(|c| c.as_str().to_string()).collect()),
            training_valid_until: input.training_valid_until,
            updated_by: actor.user_id,
            updated_at: now,
        };
        let before = tx.reader_profile(trial_id, user.id).await?;
        let old = |f: fn(&ReaderProfileRow) -> Value| before.as_ref().map(f).unwrap_or(Value::Null);
        tx.upsert_reader_profile(&row).await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            None,
            now,
            if before.is_some() { "update" } else { "create" },
            "reader_profile",
            user.id,
            vec![
                change("user", Value::Null, user.username.clone()),
                change(
                    "therapeutic_areas",
                    old(|p| json_words(&p.therapeutic_areas)),
                    json_words(&row.therapeutic_areas),
                ),
                change("criteria", old(|p| json_words(&p.criteria)), json_words(&row.criteria)),
                change(
                    "training_valid_until",
                    old(|p| p.training_valid_until.map(|d| d.to_string()).into()),
                    row.training_valid_until.map(|d| d.to_string()),
                ),
            ],
        ))
        .await?;
        self.assign_waiting(&mut tx, trial_id, actor, &role, now).await?;
        tx.commit().await?;
        self.reader_profiles(actor, trial_id)
            .await?
            .into_iter()
            .find(|p| p.user_id == user.id)
            .ok_or_else(|| AppError::NotFound("no such reader".into()))
    }

    /// Gives unassigned tasks and adjudications of the trial to readers and adjudicators who
    /// qualify now, audited.
    async fn assign_waiting(
        &self,
        tx: &mut Tx,
        trial_id: Uuid,
        actor: &Actor,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let charter = charter_in(tx, trial_id).await?;
        let Some(design) = Design::of(&charter) else { return Ok(()) };
        let today = now.date_naive();
        let waiting: Vec<ReadTaskRow> =
            tx.trial_read_tasks(trial_id).await?.into_iter().filter(|t| t.state == task_state::UNASSIGNED).collect();
        let mut cands = candidates(tx, trial_id, Role::Reader).await?;
        let mut case_ids: Vec<Uuid> = waiting.iter().map(|t| t.case_id).collect();
        case_ids.dedup();
        for case_id in case_ids {
            let mut case = tx.read_case(case_id).await?.ok_or_else(|| AppError::NotFound("no read case".into()))?;
            let subject = tx.subject(case.subject_id).await?;
            let site = subject.as_ref().map(|s| s.site_id.clone());
            self.fill_slots(tx, &design, &mut case, &mut cands, actor, role, site.as_deref(), today, now).await?;
            for t in waiting.iter().filter(|t| t.case_id == case_id) {
                let Some(r) = (if t.slot == 1 { case.reader_1 } else { case.reader_2 }) else { continue };
                if !gaps_of(&design, &cands, r, today).is_empty() {
                    continue;
                }
                let assigned = ReadTaskRow {
                    reader_id: Some(r),
                    state: task_state::OPEN.into(),
                    assigned_at: Some(now),
                    ..t.clone()
                };
                tx.update_read_task(&assigned).await?;
                tx.append_audit(trial_record(
                    actor,
                    role,
                    trial_id,
                    site.as_deref(),
                    now,
                    "assign",
                    "read_task",
                    t.id,
                    vec![
                        change("reader", Value::Null, username_of(&cands, Some(r))),
                        change("state", task_state::UNASSIGNED, task_state::OPEN),
                    ],
                ))
                .await?;
            }
        }
        let adjudicators = candidates(tx, trial_id, Role::Adjudicator).await?;
        for a in
            tx.trial_adjudications(trial_id).await?.into_iter().filter(|a| a.state == adjudication_state::UNASSIGNED)
        {
            let case = tx.read_case(a.case_id).await?.ok_or_else(|| AppError::NotFound("no read case".into()))?;
            let exclude: Vec<Uuid> = [case.reader_1, case.reader_2].into_iter().flatten().collect();
            let (ranked, _) = assign::rank(&design.qualifications, &adjudicators, today, &exclude);
            let Some(who) = ranked.first().copied() else { continue };
            tx.update_adjudication(&corelab_store::reads::AdjudicationRow {
                state: adjudication_state::OPEN.into(),
                adjudicator_id: Some(who),
                ..a.clone()
            })
            .await?;
            let site = tx.subject(case.subject_id).await?.map(|s| s.site_id);
            tx.append_audit(trial_record(
                actor,
                role,
                trial_id,
                site.as_deref(),
                now,
                "assign",
                "adjudication",
                a.id,
                vec![
                    change("adjudicator", Value::Null, username_of(&adjudicators, Some(who))),
                    change("state", adjudication_state::UNASSIGNED, adjudication_state::OPEN),
                ],
            ))
            .await?;
        }
        Ok(())
    }

    /// Every read task and adjudication of the trial, with why a task or adjudication waits for
    /// someone (trial managers, monitors).
    pub async fn read_overview(&self, actor: &Actor, trial_id: Uuid) -> Result<ReadOverview, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager, Role::Monitor], "see read tasks", "read_task", "*").await?;
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, trial_id).await?;
        let Some(design) = Design::of(&charter) else {
            return Ok(ReadOverview { tasks: Vec::new(), adjudications: Vec::new(), unassigned: 0 });
        };
        let today = self.clock().now().date_naive();
        let readers = candidates(&mut tx, trial_id, Role::Reader).await?;
        let adjudicators = candidates(&mut tx, trial_id, Role::Adjudicator).await?;
        let mut names: HashMap<Uuid, String> = HashMap::new();
        let mut tasks = Vec::new();
        let mut adjudications = Vec::new();
        for case in tx.trial_read_cases(trial_id).await? {
            let data = case_data(&mut tx, case.id).await?;
            for t in &data.tasks {
                let note = if t.state == task_state::UNASSIGNED {
                    let fixed = if t.slot == 1 { case.reader_1 } else { case.reader_2 };
                    Some(match fixed {
                        Some(r) => format!(
                            "reader {} of this case ({}) cannot take it now: {}",
                            t.slot,
                            self.name(&mut tx, &mut names, r).await?,
                            gaps_of(&design, &readers, r, today).join(", ")
                        ),
                        None => {
                            let other = if t.slot == 1 { case.reader_2 } else { case.reader_1 };
                            let exclude: Vec<Uuid> = other.into_iter().collect();
                            let (_, why) = assign::rank(&design.qualifications, &readers, today, &exclude);
                            assign::none_available("reader", &why)
                        }
                    })
                } else {
                    None
                };
                let reader = match t.reader_id {
                    Some(r) => Some(self.name(&mut tx, &mut names, r).await?),
                    None => None,
                };
                tasks.push(TaskOverview {
                    task_id: t.id,
                    subject: data.subject.id,
                    subject_id: data.subject.subject_id.clone(),
                    site_id: data.subject.site_id.clone(),
                    case_code: case.case_code.clone(),
                    visit_id: t.visit_id.clone(),
                    slot: t.slot,
                    reader,
                    state: t.state.clone(),
                    note,
                    qc_passed_at: t.qc_passed_at,
                    submitted_at: t.submitted_at,
                    version: data.current(t.id).map(|v| v.version),
                });
            }
            for a in tx.case_adjudications(case.id).await? {
                let note = (a.state == adjudication_state::UNASSIGNED).then(|| {
                    let exclude: Vec<Uuid> = [case.reader_1, case.reader_2].into_iter().flatten().collect();
                    let (_, why) = assign::rank(&design.qualifications, &adjudicators, today, &exclude);
                    assign::none_available("adjudicator", &why)
                });
                let adjudicator = match a.adjudicator_id {
                    Some(u) => Some(self.name(&mut tx, &mut names, u).await?),
                    None => None,
                };
                adjudications.push(AdjudicationOverview {
                    adjudication_id: a.id,
                    subject_id: data.subject.subject_id.clone(),
                    site_id: data.subject.site_id.clone(),
                    case_code: case.case_code.clone(),
                    state: a.state.clone(),
                    adjudicator,
                    note: note.or(a.note.clone().filter(|_| a.state == adjudication_state::UNASSIGNED)),
                    decision: a.decision.as_deref().and_then(|d| serde_json::from_str(d).ok()),
                    rationale: a.rationale.clone(),
                    created_at: a.created_at,
                    decided_at: a.decided_at,
                });
            }
        }
        let unassigned = tasks.iter().filter(|t| t.state == task_state::UNASSIGNED).count();
        Ok(ReadOverview { tasks, adjudications, unassigned })
    }

    async fn name(&self, tx: &mut Tx, cache: &mut HashMap<Uuid, String>, user: Uuid) -> Result<String, AppError> {
        if let Some(n) = cache.get(&user) {
            return Ok(n.clone());
        }
        let n = tx.user_by_id(user).await?.map(|u| u.username).unwrap_or_else(|| user.to_string());
        cache.insert(user, n.clone());
        Ok(n)
    }

    /// Each subject's accepted result in force (trial managers, monitors).
    pub async fn accepted_results(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<AcceptedView>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager, Role::Monitor], "see accepted results", "read_case", "*")
            .await?;
        let mut tx = self.db().read().await?;
        let mut names = HashMap::new();
        let mut out = Vec::new();
        for case in tx.trial_read_cases(trial_id).await? {
            let history = tx.accepted_results(case.id).await?;
            let Some(last) = history.last() else { continue };
            let subject = tx.subject(case.subject_id).await?.ok_or_else(|| AppError::NotFound("no subject".into()))?;
            let result: Value = serde_json::from_str(&last.result).map_err(AppError::internal)?;
            let slot_user = |slot: i64| if slot == 1 { case.reader_1 } else { case.reader_2 };
            let reader_1 = match case.reader_1 {
                Some(u) => Some(self.name(&mut tx, &mut names, u).await?),
                None => None,
            };
            let reader_2 = match case.reader_2 {
                Some(u) => Some(self.name(&mut tx, &mut names, u).await?),
                None => None,
            };
            let accepted_reader = match result["reader"].as_i64().and_then(slot_user) {
                Some(u) => Some(self.name(&mut tx, &mut names, u).await?),
                None => None,
            };
            out.push(AcceptedView {
                subject: subject.id,
                subject_id: subject.subject_id,
                site_id: subject.site_id,
                case_code: case.case_code.clone(),
                reader_1,
                reader_2,
                basis: last.basis.clone(),
                adjudication_id: last.adjudication_id,
                accepted_reader,
                recorded_at: last.recorded_at,
                revisions: last.seq,
                result,
            });
        }
        Ok(out)
    }

    /// Reader metrics of a trial (trial managers, monitors): adjudication rate per trial and per
    /// reader, adjudicator agreement rate, reader disagreement index, Cohen's kappa on timepoint
    /// responses per reader pair, and turnaround from QC passed to read submitted.
    pub async fn read_metrics(&self, actor: &Actor, trial_id: Uuid) -> Result<ReadMetricsView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager, Role::Monitor], "see reader metrics", "read_case", "*")
            .await?;
        self.compute_read_metrics(trial_id).await
    }

    /// The reader metrics of a trial, without an authorization check: for use cases that have
    /// decided who may see them (the reader performance report).
    pub(crate) async fn compute_read_metrics(&self, trial_id: Uuid) -> Result<ReadMetricsView, AppError> {
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, trial_id).await?;
        let mut names: HashMap<Uuid, String> = HashMap::new();
        let mut records = Vec::new();
        let mut pairs: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        if let Some(design) = Design::of(&charter) {
            for case in tx.trial_read_cases(trial_id).await? {
                let (Some(u1), Some(u2)) = (case.reader_1, case.reader_2) else { continue };
                let data = case_data(&mut tx, case.id).await?;
                let common: BTreeSet<String> =
                    data.submitted_visits(1).intersection(&data.submitted_visits(2)).cloned().collect();
                let labels = data.labels(&design);
                // Timepoint categories of both readers: overall response (RECIST), dysfunction
                // (LVEF) or MRI activity (MS).
                let categories: Vec<(String, String)> = match design.form {
                    ReadForm::Recist(_) => {
                        let (Some(r1), Some(r2)) = (
                            SlotReads::current(&data, 1, Some(&common))?,
                            SlotReads::current(&data, 2, Some(&common))?,
                        ) else {
                            continue;
                        };
                        let (e1, e2) = (r1.evaluate(&design, &labels)?, r2.evaluate(&design, &labels)?);
                        e1.per_timepoint
                            .iter()
                            .zip(&e2.per_timepoint)
                            .map(|(a, b)| (a.overall.as_str().to_string(), b.overall.as_str().to_string()))
                            .collect()
                    }
                    ReadForm::Lvef | ReadForm::Ms(_) => {
                        let (Some(r1), Some(r2)) = (
                            Series::current(&data, 1, Some(&common), &design)?,
                            Series::current(&data, 2, Some(&common), &design)?,
                        ) else {
                            continue;
                        };
                        let (e1, e2) = (r1.evaluate(&design, &labels)?, r2.evaluate(&design, &labels)?);
                        (1..r1.entries.len())
                            .filter_map(|i| Some((e1.category(i)?.to_string(), e2.category(i)?.to_string())))
                            .collect()
                    }
                };
                if categories.is_empty() {
                    continue;
                }
                let (n1, n2) = (self.name(&mut tx, &mut names, u1).await?, self.name(&mut tx, &mut names, u2).await?);
                let (key, flip) =
                    if n1 <= n2 { ((n1.clone(), n2.clone()), false) } else { ((n2.clone(), n1.clone()), true) };
                let list = pairs.entry(key).or_default();
                for (x, y) in categories {
                    list.push(if flip { (y, x) } else { (x, y) });
                }
                let adjs = tx.case_adjudications(case.id).await?;
                let adjudicated = adjs.iter().any(|a| a.state != adjudication_state::SUPERSEDED);
                let chose = adjs
                    .iter()
                    .rev()
                    .find(|a| a.state == adjudication_state::DECIDED)
                    .and_then(|a| serde_json::from_str::<Decision>(a.decision.as_deref()?).ok())
                    .and_then(|d| d.winner())
                    .map(|w| if w == 1 { n1.clone() } else { n2.clone() });
                records.push(DoubleRead { reader_1: n1, reader_2: n2, adjudicated, adjudicator_chose: chose });
            }
        }
        let metrics = read_metrics(&records).map_err(AppError::internal)?;
        let tasks = tx.trial_read_tasks(trial_id).await?;
        let readers = candidates(&mut tx, trial_id, Role::Reader).await?;
        let mut people: Vec<(Uuid, String)> = readers.iter().map(|c| (c.user_id, c.username.clone())).collect();
        for t in &tasks {
            if let Some(r) = t.reader_id
                && !people.iter().any(|(u, _)| *u == r)
            {
                people.push((r, self.name(&mut tx, &mut names, r).await?));
            }
        }
        let mut per_reader = Vec::new();
        for (uid, username) in people {
            let mine: Vec<&ReadTaskRow> = tasks.iter().filter(|t| t.reader_id == Some(uid)).collect();
            let m = metrics.per_reader.iter().find(|m| m.reader == username);
            let display_name = tx.user_by_id(uid).await?.map(|u| u.display_name).unwrap_or_default();
            per_reader.push(ReaderMetricsRow {
                reader: username,
                display_name,
                adjudication_rate: m.map(|m| m.adjudication_rate).unwrap_or(Rate::new(0, 0)),
                adjudicator_agreement_rate: m.map(|m| m.adjudicator_agreement_rate).unwrap_or(Rate::new(0, 0)),
                reader_disagreement_index: m.map(|m| m.reader_disagreement_index).unwrap_or(Rate::new(0, 0)),
                open_tasks: mine.iter().filter(|t| t.state == task_state::OPEN).count() as u64,
                submitted_reads: mine.iter().filter(|t| t.state == task_state::SUBMITTED).count() as u64,
                turnaround: Turnaround::of(mine.iter().copied().filter_map(hours).collect()),
            });
        }
        let mut kappa = Vec::new();
        for ((a, b), list) in pairs {
            if let Ok(k) = cohen_kappa(&list) {
                kappa.push(PairKappa { reader_a: a, reader_b: b, kappa: k });
            }
        }
        Ok(ReadMetricsView {
            double_read_subjects: records.len() as u64,
            adjudication_rate: metrics.adjudication_rate,
            pending_adjudications: metrics.pending_adjudications,
            per_reader,
            kappa,
            turnaround: Turnaround::of(tasks.iter().filter_map(hours).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turnaround_mean_median_max() {
        let t = Turnaround::of(vec![4.0, 1.0, 2.0, 10.0]);
        assert_eq!(t.reads, 4);
        assert_eq!(t.mean_hours, Some(4.25));
        assert_eq!(t.median_hours, Some(3.0));
        assert_eq!(t.max_hours, Some(10.0));
        let t = Turnaround::of(vec![5.0, 1.0, 3.0]);
        assert_eq!(t.median_hours, Some(3.0));
        assert_eq!(Turnaround::of(vec![]).mean_hours, None);
    }
}
