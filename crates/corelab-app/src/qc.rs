//! QC of visits: the automated check against the charter when a study has gone quiet, the QC
//! review stages the charter names (QC1, optionally QC2, each e-signed), data queries back to the
//! site (raised automatically from failures, rejections and overdue visits, or by hand), the loop
//! that closes them when a resubmission passes, and the subject x visit grid.

use chrono::{DateTime, NaiveDate, Utc};
use corelab_domain::access::Role;
use corelab_domain::charter::{Date, VisitCalendar};
use corelab_domain::qc::{InstanceFacts, PixelDecode, Rule, Verdict, VisitFacts, VisitWindow, evaluate_visit};
use corelab_store::qc::{EvaluationRow, QueryMessageRow, QueryRow, ReviewRow, VisitQcRow};
use corelab_store::trials::SubjectRow;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::access::TrialAccess;
use crate::audit::{change, trial_record};
use crate::signatures::SigningCredentials;
use crate::{Actor, App, AppError};

/// Visit QC states stored in `visit_qc`.
pub mod state {
    pub const INCOMPLETE: &str = "received_incomplete";
    pub const FAILED: &str = "qc_failed";
    pub const AWAITING_QC1: &str = "awaiting_qc1";
    pub const AWAITING_QC2: &str = "awaiting_qc2";
    pub const REJECTED: &str = "qc_rejected";
    pub const PASSED: &str = "qc_passed";
}

fn to_domain(d: NaiveDate) -> Option<Date> {
    Date::parse_iso(&d.format("%Y-%m-%d").to_string())
}

fn to_naive(d: Date) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d").ok()
}

/// A QC evaluation as shown.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationView {
    pub id: Uuid,
    pub verdict: String,
    pub complete: bool,
    pub findings: Value,
    pub series: Value,
    pub instance_count: i64,
    pub charter_version: i64,
    pub evaluated_at: DateTime<Utc>,
    pub reviews: Vec<ReviewRow>,
}

/// One visit of a subject with everything QC knows about it.
#[derive(Debug, Clone, Serialize)]
pub struct VisitDetail {
    pub subject_id: String,
    pub site_id: String,
    pub visit_id: String,
    pub label: String,
    pub state: String,
    pub expected_date: Option<NaiveDate>,
    pub window_open: Option<NaiveDate>,
    pub window_close: Option<NaiveDate>,
    pub studies: Vec<corelab_store::ingest::StudyRow>,
    pub evaluations: Vec<EvaluationView>,
    pub open_queries: Vec<Uuid>,
}

/// A cell of the subject x visit grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridCell {
    pub visit_id: String,
    pub label: String,
    pub state: String,
    pub window_open: Option<NaiveDate>,
    pub window_close: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    pub subject: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub visits: Vec<GridCell>,
}

/// A QC decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    AcceptWithDeviation,
    Reject,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "accept" => Some(Outcome::Accept),
            "accept_with_deviation" => Some(Outcome::AcceptWithDeviation),
            "reject" => Some(Outcome::Reject),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::AcceptWithDeviation => "accept_with_deviation",
            Outcome::Reject => "reject",
        }
    }
}

/// A data query with its thread and age.
#[derive(Debug, Clone, Serialize)]
pub struct QueryView {
    #[serde(flatten)]
    pub query: QueryRow,
    pub subject_code: Option<String>,
    pub days_open: i64,
    pub messages: Vec<QueryMessageRow>,
}

impl App {
    /// Runs the automated QC of one visit of a subject on everything received for it, records the
    /// evaluation, moves the visit's QC state, and raises, updates or closes data queries.
    /// Called by the `study_complete` job once a study has been quiet for the configured period.
    pub async fn evaluate_visit_qc(&self, subject_id: Uuid, visit_id: &str) -> Result<EvaluationRow, AppError> {
        let started = std::time::Instant::now();
        let r = self.evaluate_visit_qc_inner(subject_id, visit_id).await;
        metrics::histogram!("corelab_qc_evaluation_seconds").record(started.elapsed().as_secs_f64());
        r
    }

    async fn evaluate_visit_qc_inner(&self, subject_id: Uuid, visit_id: &str) -> Result<EvaluationRow, AppError> {
        let mut tx = self.db().read().await?;
        let subject = tx.subject(subject_id).await?.ok_or_else(|| AppError::NotFound("no subject".into()))?;
        let studies = tx.subject_studies(subject_id).await?;
        drop(tx);
        let (version, charter) = self.current_charter(subject.trial_id).await?;
        let (facts, received) = self.visit_facts(&subject, &studies, visit_id, true).await?;
        let calendar = to_domain(subject.anchor_date).map(|a| VisitCalendar::new(&charter, a));
        let window = calendar.as_ref().and_then(|c| c.visit(visit_id)).map(VisitWindow::from);
        let baseline_id = charter.scheduled_visits().into_iter().find(|v| v.baseline).map(|v| v.id);
        let baseline = match &baseline_id {
            Some(b) if b != visit_id => Some(self.visit_facts(&subject, &studies, b, false).await?.0),
            _ => None,
        };
        let first = evaluate_visit(&charter, visit_id, window, &facts, baseline.as_ref());
        // A resubmission supersedes: when several received series stand for the same charter
        // series, the one received last is checked and the earlier ones are set aside (kept,
        // listed as superseded, not read).
        let mut superseded: Vec<String> = Vec::new();
        let mut by_charter: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
        for m in &first.series {
            if let Some(id) = &m.charter_series_id {
                by_charter.entry(id.as_str()).or_default().push(m.series_instance_uid.as_str());
            }
        }
        for uids in by_charter.values().filter(|u| u.len() > 1) {
            let latest = uids.iter().max_by_key(|u| received.get(**u).copied()).copied();
            superseded.extend(uids.iter().filter(|u| Some(**u) != latest).map(|u| u.to_string()));
        }
        let (result, facts) = if superseded.is_empty() {
            (first, facts)
        } else {
            let kept = VisitFacts {
                series: facts.series.into_iter().filter(|s| !superseded.contains(&s.series_instance_uid)).collect(),
            };
            (evaluate_visit(&charter, visit_id, window, &kept, baseline.as_ref()), kept)
        };
        let complete = !result.findings.iter().any(|f| f.rule == Rule::RequiredSeries);
        let now = self.clock().now();
        let eval = EvaluationRow {
            id: Uuid::now_v7(),
            trial_id: subject.trial_id,
            site_id: subject.site_id.clone(),
            subject_id,
            visit_id: visit_id.to_string(),
            charter_version: version,
            verdict: match result.verdict {
                Verdict::Pass => "pass",
                Verdict::PassWithWarnings => "pass_with_warnings",
                Verdict::Fail => "fail",
            }
            .into(),
            complete,
            findings: serde_json::to_string(&result.findings).map_err(AppError::internal)?,
            series: serde_json::to_string(&json!({"checked": result.series, "superseded": superseded}))
                .map_err(AppError::internal)?,
            instance_count: facts.series.iter().map(|s| s.instances.len() as i64).sum(),
            evaluated_at: now,
        };
        let new_state = if !complete {
            state::INCOMPLETE
        } else if result.verdict == Verdict::Fail {
            state::FAILED
        } else if charter.qc.stages.has_qc1() {
            state::AWAITING_QC1
        } else {
            state::PASSED
        };
        let system = Actor::system();
        let mut tx = self.db().begin().await?;
        tx.insert_evaluation(&eval).await?;
        let previous = tx.visit_qc(subject_id, visit_id).await?;
        tx.upsert_visit_qc(&VisitQcRow {
            subject_id,
            visit_id: visit_id.to_string(),
            trial_id: subject.trial_id,
            site_id: subject.site_id.clone(),
            state: new_state.into(),
            evaluation_id: eval.id,
            updated_at: now,
        })
        .await?;
        for s in studies.iter().filter(|s| s.visit_id == visit_id) {
            tx.set_study_state(s.id, if complete { "complete" } else { "incomplete" }, complete.then_some(now)).await?;
        }
        let errors: Vec<&corelab_domain::qc::Finding> = result.errors().collect();
        tx.append_audit(trial_record(
            &system,
            "system",
            subject.trial_id,
            Some(&subject.site_id),
            now,
            "evaluate",
            "visit_qc",
            format!("{}/{visit_id}", subject.subject_id),
            vec![
                change("state", previous.as_ref().map(|p| p.state.clone()), new_state),
                change("verdict", Value::Null, eval.verdict.clone()),
                change("errors", Value::Null, errors.len()),
            ],
        ))
        .await?;
        // The loop back to the site.
        let open = tx.open_visit_queries(subject_id, visit_id).await?;
        let summary: Vec<String> = errors.iter().map(|f| format!("- {}", f.message)).collect();
        let had_earlier = previous.is_some();
        for q in &open {
            if had_earlier && q.source != "overdue" {
                let body = format!(
                    "New images received ({} instances in total). Automated re-check: {}.{}",
                    eval.instance_count,
                    if result.verdict == Verdict::Fail || !complete { "still not compliant" } else { "compliant" },
                    if summary.is_empty() { String::new() } else { format!("\n{}", summary.join("\n")) }
                );
                self.add_message(&mut tx, q, "resubmission", &system, "system", &body, now).await?;
            }
            let resolved = match q.source.as_str() {
                "auto_qc" => result.verdict != Verdict::Fail && complete,
                "overdue" => true,
                _ => false,
            };
            if resolved {
                let why = if q.source == "overdue" {
                    "Images for the visit have arrived."
                } else {
                    "The automated re-check passed."
                };
                self.close_query_in(&mut tx, q, &system, "system", why, now).await?;
            } else if q.source == "qc_review" && q.state == "open" {
                // A rejection answered by resubmission: back to the QC reviewer.
                tx.set_query_state(q.id, "answered", None).await?;
                tx.append_audit(query_audit(
                    &system,
                    "system",
                    q,
                    now,
                    "update",
                    vec![change("state", q.state.clone(), "answered")],
                    None,
                ))
                .await?;
            }
        }
        let has_auto_open =
            open.iter().any(|q| q.source == "auto_qc" && !(result.verdict != Verdict::Fail && complete));
        if (result.verdict == Verdict::Fail || !complete) && !has_auto_open {
            let title = if complete {
                format!("Visit {visit_id} of subject {} does not meet the imaging charter", subject.subject_id)
            } else {
                format!("Visit {visit_id} of subject {} is incomplete", subject.subject_id)
            };
            let body = format!(
                "Automated QC found {} problem(s):\n{}\nPlease correct and resend the series, or answer here if the images cannot be repeated.",
                errors.len(),
                summary.join("\n")
            );
            self.raise_query_in(
                &mut tx,
                &system,
                "system",
                &subject,
                Some(visit_id),
                "auto_qc",
                &title,
                &body,
                Some(eval.id),
                now,
            )
            .await?;
        }
        self.visit_ready_for_reading(&mut tx, &subject, visit_id, new_state, now).await?;
        tx.commit().await?;
        Ok(eval)
    }

    /// The facts of everything received for a visit, and when each series last received an image.
    /// `decode` checks one image per series.
    async fn visit_facts(
        &self,
        subject: &SubjectRow,
        studies: &[corelab_store::ingest::StudyRow],
        visit_id: &str,
        decode: bool,
    ) -> Result<(VisitFacts, std::collections::HashMap<String, DateTime<Utc>>), AppError> {
        let mut received: std::collections::HashMap<String, DateTime<Utc>> = std::collections::HashMap::new();
        let mut instances = Vec::new();
        let mut decode_outcomes: Vec<(String, PixelDecode)> = Vec::new();
        let mut tx = self.db().read().await?;
        for study in studies.iter().filter(|s| s.visit_id == visit_id) {
            let acquisition = study.anchor_day.and_then(|d| to_domain(subject.anchor_date + chrono::Duration::days(d)));
            for series in tx.study_series(study.id).await? {
                let rows = tx.series_instances(series.id).await?;
                if let Some(last) = rows.iter().map(|r| r.received_at).max() {
                    received.insert(series.series_instance_uid.clone(), last);
                }
                for r in &rows {
                    let mut f: InstanceFacts = serde_json::from_str(&r.facts).map_err(AppError::internal)?;
                    f.acquisition_date = acquisition;
                    instances.push(f);
                }
                if decode && let Some(first) = rows.first() {
                    let bytes = self.blobs().get_bytes(&first.blob_key).await?;
                    let outcome = tokio::task::spawn_blocking(move || match corelab_dicom::deid::read_object(&bytes) {
                        Ok(obj) => corelab_dicom::facts::check_decodable(&obj),
                        Err(e) => PixelDecode::Failed { message: e.to_string() },
                    })
                    .await
                    .map_err(AppError::internal)?;
                    decode_outcomes.push((series.series_instance_uid.clone(), outcome));
                }
            }
        }
        drop(tx);
        let mut facts = VisitFacts::from_instances(instances);
        for s in &mut facts.series {
            if let Some((_, o)) = decode_outcomes.iter().find(|(uid, _)| *uid == s.series_instance_uid) {
                s.pixel_decode = o.clone();
            }
        }
        Ok((facts, received))
    }

    /// A QC reviewer's decision on a visit's current evaluation, e-signed. QC2 must be made by
    /// someone other than the QC1 reviewer.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_visit_qc(
        &self,
        actor: &Actor,
        subject: Uuid,
        visit_id: &str,
        outcome: Outcome,
        reason: &str,
        creds: SigningCredentials,
    ) -> Result<VisitDetail, AppError> {
        let (access, row) = self.subject_in_scope(actor, subject).await?;
        let role = self.require(actor, &access, &[Role::QcReviewer], "decide QC", "visit_qc", visit_id).await?;
        let mut tx = self.db().read().await?;
        let vqc = tx.visit_qc(subject, visit_id).await?.ok_or_else(|| {
            AppError::Conflict(format!("visit {visit_id} has no images checked yet; nothing to review"))
        })?;
        let reviews = tx.evaluation_reviews(vqc.evaluation_id).await?;
        drop(tx);
        let stage = match vqc.state.as_str() {
            state::AWAITING_QC1 => "qc1",
            state::AWAITING_QC2 => "qc2",
            other => {
                return Err(AppError::Conflict(format!(
                    "visit {visit_id} is not awaiting a QC review (state {other}); a new review becomes possible after new images pass the automated check"
                )));
            }
        };
        if stage == "qc2" && reviews.iter().any(|r| Some(r.reviewer_id) == actor.user_id) {
            return Err(AppError::Conflict("QC2 must be done by a different reviewer than QC1".into()));
        }
        if outcome != Outcome::Accept && reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why: the deviation accepted, or what the site must correct"));
        }
        self.check_signing(actor, &creds).await?;
        let (_, charter) = self.current_charter(row.trial_id).await?;
        let next = match (outcome, stage) {
            (Outcome::Reject, _) => state::REJECTED,
            (_, "qc1") if charter.qc.stages.has_qc2() => state::AWAITING_QC2,
            _ => state::PASSED,
        };
        let now = self.clock().now();
        let reviewer_id = actor.user_id.ok_or_else(|| AppError::Forbidden("only a person can review".into()))?;
        let review = ReviewRow {
            id: Uuid::now_v7(),
            evaluation_id: vqc.evaluation_id,
            trial_id: row.trial_id,
            subject_id: subject,
            visit_id: visit_id.to_string(),
            stage: stage.into(),
            outcome: outcome.as_str().into(),
            reason: (!reason.trim().is_empty()).then(|| reason.trim().to_string()),
            reviewer_id,
            reviewer_name: actor.display_name.clone(),
            decided_at: now,
        };
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(&mut tx, row.trial_id, Some(subject), Some(visit_id), "a QC review of this visit")
            .await?;
        tx.insert_review(&review).await?;
        tx.upsert_visit_qc(&VisitQcRow { state: next.into(), updated_at: now, ..vqc.clone() }).await?;
        let mut rec = trial_record(
            actor,
            &role,
            row.trial_id,
            Some(&row.site_id),
            now,
            "review",
            "visit_qc",
            format!("{}/{visit_id}", row.subject_id),
            vec![
                change("stage", Value::Null, stage),
                change("outcome", Value::Null, outcome.as_str()),
                change("state", vqc.state.clone(), next),
            ],
        );
        rec.reason = review.reason.clone();
        tx.append_audit(rec).await?;
        let meaning = match outcome {
            Outcome::Accept => format!("{} QC approved", stage.to_uppercase()),
            Outcome::AcceptWithDeviation => format!("{} QC approved with deviation", stage.to_uppercase()),
            Outcome::Reject => format!("{} QC rejected", stage.to_uppercase()),
        };
        let content = json!({"evaluation": vqc.evaluation_id, "stage": stage, "outcome": outcome.as_str(), "reason": review.reason});
        self.write_signature(
            &mut tx,
            actor,
            Some(row.trial_id),
            "qc_review",
            &review.id.to_string(),
            &meaning,
            &content,
        )
        .await?;
        let open = tx.open_visit_queries(subject, visit_id).await?;
        match outcome {
            Outcome::Reject => {
                let title = format!("QC rejected visit {visit_id} of subject {}", row.subject_id);
                let body =
                    format!("The QC reviewer rejected the images: {}\nPlease resend corrected series.", reason.trim());
                self.raise_query_in(
                    &mut tx,
                    actor,
                    &role,
                    &row,
                    Some(visit_id),
                    "qc_review",
                    &title,
                    &body,
                    Some(vqc.evaluation_id),
                    now,
                )
                .await?;
            }
            _ => {
                // An accepted visit settles the rejections that led to it.
                for q in open.iter().filter(|q| q.source == "qc_review") {
                    self.close_query_in(&mut tx, q, actor, &role, "The resubmitted images were accepted by QC.", now)
                        .await?;
                }
            }
        }
        self.visit_ready_for_reading(&mut tx, &row, visit_id, next, now).await?;
        tx.commit().await?;
        self.visit_detail(actor, subject, visit_id).await
    }

    /// One visit with its studies, QC evaluations and reviews.
    pub async fn visit_detail(&self, actor: &Actor, subject: Uuid, visit_id: &str) -> Result<VisitDetail, AppError> {
        let (_, row) = self.subject_in_scope(actor, subject).await?;
        let (_, charter) = self.current_charter(row.trial_id).await?;
        let cal = to_domain(row.anchor_date).map(|a| VisitCalendar::new(&charter, a));
        let planned = cal.as_ref().and_then(|c| c.visit(visit_id)).cloned();
        let mut tx = self.db().read().await?;
        let studies: Vec<_> =
            tx.subject_studies(subject).await?.into_iter().filter(|s| s.visit_id == visit_id).collect();
        let mut evaluations = Vec::new();
        for e in tx.visit_evaluations(subject, visit_id).await? {
            let reviews = tx.evaluation_reviews(e.id).await?;
            evaluations.push(EvaluationView {
                id: e.id,
                verdict: e.verdict,
                complete: e.complete,
                findings: serde_json::from_str(&e.findings).unwrap_or(Value::Null),
                series: serde_json::from_str(&e.series).unwrap_or(Value::Null),
                instance_count: e.instance_count,
                charter_version: e.charter_version,
                evaluated_at: e.evaluated_at,
                reviews,
            });
        }
        let vqc = tx.visit_qc(subject, visit_id).await?;
        let open_queries = tx.open_visit_queries(subject, visit_id).await?.into_iter().map(|q| q.id).collect();
        drop(tx);
        let today = to_domain(self.clock().now().date_naive());
        let state = visit_state(vqc.as_ref().map(|v| v.state.as_str()), !studies.is_empty(), planned.as_ref(), today);
        Ok(VisitDetail {
            subject_id: row.subject_id.clone(),
            site_id: row.site_id.clone(),
            visit_id: visit_id.to_string(),
            label: planned.as_ref().map(|p| p.label.clone()).unwrap_or_else(|| "unscheduled".into()),
            state,
            expected_date: planned.as_ref().and_then(|p| to_naive(p.expected_date)),
            window_open: planned.as_ref().and_then(|p| to_naive(p.window_open)),
            window_close: planned.as_ref().and_then(|p| to_naive(p.window_close)),
            studies,
            evaluations,
            open_queries,
        })
    }

    /// The subject x visit grid of a trial with each visit's state, for the sites the caller sees.
    pub async fn visit_grid(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<GridRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        self.grid_rows(trial_id, |site| access.can_see_site(site)).await
    }

    /// The grid rows of the subjects of the sites `visible` lets through (no access check: the
    /// callers decide who sees which site).
    pub(crate) async fn grid_rows(
        &self,
        trial_id: Uuid,
        visible: impl Fn(&str) -> bool,
    ) -> Result<Vec<GridRow>, AppError> {
        let (_, charter) = self.current_charter(trial_id).await?;
        let mut tx = self.db().read().await?;
        let subjects = tx.subjects(trial_id).await?;
        let vqc = tx.trial_visit_qc(trial_id).await?;
        let studies = tx.trial_studies(trial_id).await?;
        drop(tx);
        let today = to_domain(self.clock().now().date_naive());
        let mut out = Vec::new();
        for s in subjects.iter().filter(|s| visible(&s.site_id)) {
            let Some(anchor) = to_domain(s.anchor_date) else { continue };
            let cal = VisitCalendar::new(&charter, anchor);
            let mut visits = Vec::new();
            for p in &cal.visits {
                if let Some(w) = s.withdrawn_on
                    && to_naive(p.window_open).is_some_and(|o| o > w)
                {
                    continue;
                }
                let q = vqc.iter().find(|v| v.subject_id == s.id && v.visit_id == p.visit_id).map(|v| v.state.as_str());
                let received = studies.iter().any(|st| st.subject_id == s.id && st.visit_id == p.visit_id);
                visits.push(GridCell {
                    visit_id: p.visit_id.clone(),
                    label: p.label.clone(),
                    state: visit_state(q, received, Some(p), today),
                    window_open: to_naive(p.window_open),
                    window_close: to_naive(p.window_close),
                });
            }
            out.push(GridRow { subject: s.id, subject_id: s.subject_id.clone(), site_id: s.site_id.clone(), visits });
        }
        Ok(out)
    }

    /// Visits waiting for a QC reviewer.
    pub async fn qc_queue(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<VisitQcRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::QcReviewer, Role::TrialManager], "see the QC queue", "visit_qc", "*")
            .await?;
        let mut tx = self.db().read().await?;
        Ok(tx
            .trial_visit_qc(trial_id)
            .await?
            .into_iter()
            .filter(|v| v.state == state::AWAITING_QC1 || v.state == state::AWAITING_QC2)
            .collect())
    }

    /// Raises overdue queries (a visit whose window closed without images) and reminders on
    /// queries left open too long. Run periodically by the `overdue_scan` job.
    pub async fn overdue_scan(&self, reminder_days: i64) -> Result<(usize, usize), AppError> {
        let now = self.clock().now();
        let today = now.date_naive();
        let system = Actor::system();
        let mut raised = 0;
        let mut reminded = 0;
        let mut tx = self.db().read().await?;
        let trials = tx.trials().await?;
        drop(tx);
        for trial in trials {
            let (_, charter) = self.current_charter(trial.id).await?;
            let mut tx = self.db().begin().await?;
            let subjects = tx.subjects(trial.id).await?;
            let studies = tx.trial_studies(trial.id).await?;
            let queries = tx.trial_queries(trial.id).await?;
            for s in subjects.iter().filter(|s| s.status != "withdrawn") {
                let Some(anchor) = to_domain(s.anchor_date) else { continue };
                for p in VisitCalendar::new(&charter, anchor).visits {
                    let Some(close) = to_naive(p.window_close) else { continue };
                    if close >= today {
                        continue;
                    }
                    let received = studies.iter().any(|st| st.subject_id == s.id && st.visit_id == p.visit_id);
                    let asked = queries.iter().any(|q| {
                        q.subject_id == Some(s.id)
                            && q.visit_id.as_deref() == Some(&p.visit_id)
                            && q.source == "overdue"
                    });
                    if !received && !asked {
                        let title = format!("Visit {} of subject {} is overdue", p.visit_id, s.subject_id);
                        let body = format!(
                            "The window for {} closed on {close} and no images have arrived. Send the images, or answer here if the visit did not take place.",
                            p.label
                        );
                        self.raise_query_in(
                            &mut tx,
                            &system,
                            "system",
                            s,
                            Some(&p.visit_id),
                            "overdue",
                            &title,
                            &body,
                            None,
                            now,
                        )
                        .await?;
                        raised += 1;
                    }
                }
            }
            for q in queries.iter().filter(|q| q.state != "closed") {
                let last = q.last_reminder_at.unwrap_or(q.created_at);
                if (now - last).num_days() >= reminder_days {
                    let days = (now - q.created_at).num_days();
                    self.add_message(
                        &mut tx,
                        q,
                        "reminder",
                        &system,
                        "system",
                        &format!("Reminder: this query has been open for {days} days."),
                        now,
                    )
                    .await?;
                    tx.set_query_reminded(q.id, now).await?;
                    reminded += 1;
                }
            }
            tx.commit().await?;
        }
        Ok((raised, reminded))
    }
}

/// The visit's state from its QC state, whether images arrived, and its window.
fn visit_state(
    qc: Option<&str>,
    received: bool,
    planned: Option<&corelab_domain::charter::PlannedVisit>,
    today: Option<Date>,
) -> String {
    if let Some(q) = qc {
        return q.to_string();
    }
    if received {
        return "received".into();
    }
    match (planned, today) {
        (Some(p), Some(t)) if t < p.window_open => "not_yet_due".into(),
        (Some(p), Some(t)) if t <= p.window_close => "window_open".into(),
        (Some(_), Some(_)) => "overdue".into(),
        _ => "unknown".into(),
    }
}

fn query_audit(
    actor: &Actor,
    role: &str,
    q: &QueryRow,
    now: DateTime<Utc>,
    action: &str,
    changes: Vec<Value>,
    reason: Option<String>,
) -> corelab_store::audit::NewAuditRecord {
    let mut rec = trial_record(actor, role, q.trial_id, Some(&q.site_id), now, action, "query", q.id, changes);
    rec.reason = reason;
    rec
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn raise_query_in(
        &self,
        tx: &mut corelab_store::Tx,
        actor: &Actor,
        role: &str,
        subject: &SubjectRow,
        visit_id: Option<&str>,
        source: &str,
        title: &str,
        body: &str,
        evaluation_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<QueryRow, AppError> {
        let q = QueryRow {
            id: Uuid::now_v7(),
            trial_id: subject.trial_id,
            site_id: subject.site_id.clone(),
            subject_id: Some(subject.id),
            visit_id: visit_id.map(str::to_string),
            source: source.into(),
            state: "open".into(),
            title: title.into(),
            evaluation_id,
            created_by: actor.user_id,
            created_by_name: actor.display_name.clone(),
            created_at: now,
            closed_at: None,
            last_reminder_at: None,
        };
        tx.insert_query(&q).await?;
        tx.append_audit(query_audit(
            actor,
            role,
            &q,
            now,
            "create",
            vec![change("title", Value::Null, title), change("source", Value::Null, source)],
            None,
        ))
        .await?;
        self.add_message(tx, &q, "message", actor, role, body, now).await?;
        Ok(q)
    }

    #[allow(clippy::too_many_arguments)]
    async fn add_message(
        &self,
        tx: &mut corelab_store::Tx,
        q: &QueryRow,
        kind: &str,
        actor: &Actor,
        role: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let m = QueryMessageRow {
            id: Uuid::now_v7(),
            query_id: q.id,
            kind: kind.into(),
            author_id: actor.user_id,
            author_name: actor.display_name.clone(),
            author_role: role.into(),
            body: body.into(),
            at: now,
        };
        tx.insert_query_message(&m).await?;
        tx.append_audit(query_audit(actor, role, q, now, "create", vec![change("message", Value::Null, kind)], None))
            .await?;
        Ok(())
    }

    async fn close_query_in(
        &self,
        tx: &mut corelab_store::Tx,
        q: &QueryRow,
        actor: &Actor,
        role: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        tx.set_query_state(q.id, "closed", Some(now)).await?;
        self.add_message(tx, q, "closed", actor, role, why, now).await?;
        tx.append_audit(query_audit(
            actor,
            role,
            q,
            now,
            "update",
            vec![change("state", q.state.clone(), "closed")],
            Some(why.into()),
        ))
        .await?;
        Ok(())
    }

    async fn query_scope(&self, actor: &Actor, id: Uuid) -> Result<(TrialAccess, QueryRow), AppError> {
        let not_found = || AppError::NotFound(format!("no query {id}"));
        let mut tx = self.db().read().await?;
        let q = tx.query(id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, q.trial_id).await.map_err(|_| not_found())?;
        if !access.can_see_site(&q.site_id) {
            return Err(not_found());
        }
        Ok((access, q))
    }

    async fn query_view(&self, q: QueryRow) -> Result<QueryView, AppError> {
        let mut tx = self.db().read().await?;
        let messages = tx.query_messages(q.id).await?;
        let subject_code = match q.subject_id {
            Some(s) => tx.subject(s).await?.map(|s| s.subject_id),
            None => None,
        };
        let end = q.closed_at.unwrap_or_else(|| self.clock().now());
        Ok(QueryView { days_open: (end - q.created_at).num_days(), subject_code, messages, query: q })
    }

    /// Data queries the caller may see (site users: their sites').
    pub async fn list_queries(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<QueryView>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        let mut tx = self.db().read().await?;
        let rows = tx.trial_queries(trial_id).await?;
        drop(tx);
        let mut out = Vec::new();
        for q in rows.into_iter().filter(|q| access.can_see_site(&q.site_id)) {
            out.push(self.query_view(q).await?);
        }
        Ok(out)
    }

    pub async fn get_query(&self, actor: &Actor, id: Uuid) -> Result<QueryView, AppError> {
        let (_, q) = self.query_scope(actor, id).await?;
        self.query_view(q).await
    }

    /// A QC reviewer or trial manager raises a query about a subject's visit by hand.
    pub async fn raise_query(
        &self,
        actor: &Actor,
        subject: Uuid,
        visit_id: Option<&str>,
        title: &str,
        body: &str,
    ) -> Result<QueryView, AppError> {
        let (access, row) = self.subject_in_scope(actor, subject).await?;
        let role = self
            .require(actor, &access, &[Role::QcReviewer, Role::TrialManager], "raise data queries", "query", "new")
            .await?;
        if title.trim().is_empty() || body.trim().is_empty() {
            return Err(AppError::invalid("title", "give the query a title and say what the site should do"));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(&mut tx, row.trial_id, Some(row.id), visit_id, "raising a data query").await?;
        let q = self
            .raise_query_in(&mut tx, actor, &role, &row, visit_id, "manual", title.trim(), body.trim(), None, now)
            .await?;
        tx.commit().await?;
        self.query_view(q).await
    }

    /// Adds a message to a query's thread. A site user's answer marks the query answered.
    pub async fn answer_query(&self, actor: &Actor, id: Uuid, body: &str) -> Result<QueryView, AppError> {
        let (access, q) = self.query_scope(actor, id).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::SiteUser, Role::QcReviewer, Role::TrialManager],
                "write in data queries",
                "query",
                &id.to_string(),
            )
            .await?;
        if body.trim().is_empty() {
            return Err(AppError::invalid("body", "write the answer"));
        }
        if q.state == "closed" {
            return Err(AppError::Conflict("this query is closed; ask the QC team to reopen it".into()));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(
            &mut tx,
            q.trial_id,
            q.subject_id,
            q.visit_id.as_deref(),
            "writing in this data query",
        )
        .await?;
        self.add_message(&mut tx, &q, "message", actor, &role, body.trim(), now).await?;
        if role == "site_user" && q.state == "open" {
            tx.set_query_state(q.id, "answered", None).await?;
            tx.append_audit(query_audit(
                actor,
                &role,
                &q,
                now,
                "update",
                vec![change("state", "open", "answered")],
                None,
            ))
            .await?;
        }
        tx.commit().await?;
        self.get_query(actor, id).await
    }

    /// Closes (or reopens) a query, with a reason (QC reviewers and trial managers).
    pub async fn set_query_open(
        &self,
        actor: &Actor,
        id: Uuid,
        open: bool,
        reason: &str,
    ) -> Result<QueryView, AppError> {
        let (access, q) = self.query_scope(actor, id).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::QcReviewer, Role::TrialManager],
                "close or reopen data queries",
                "query",
                &id.to_string(),
            )
            .await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the query is closed or reopened"));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(
            &mut tx,
            q.trial_id,
            q.subject_id,
            q.visit_id.as_deref(),
            "closing or reopening this data query",
        )
        .await?;
        match (open, q.state.as_str()) {
            (false, "closed") => return Err(AppError::Conflict("the query is already closed".into())),
            (true, s) if s != "closed" => return Err(AppError::Conflict("the query is not closed".into())),
            (false, _) => self.close_query_in(&mut tx, &q, actor, &role, reason.trim(), now).await?,
            (true, _) => {
                tx.set_query_state(q.id, "open", None).await?;
                self.add_message(&mut tx, &q, "reopened", actor, &role, reason.trim(), now).await?;
                tx.append_audit(query_audit(
                    actor,
                    &role,
                    &q,
                    now,
                    "update",
                    vec![change("state", "closed", "open")],
                    Some(reason.trim().into()),
                ))
                .await?;
            }
        }
        tx.commit().await?;
        self.get_query(actor, id).await
    }
}
