//! Subjects: enrollment at a qualified site, corrections with reasons, withdrawal, and the visit
//! calendar computed from the charter version in force.

use chrono::NaiveDate;
use corelab_domain::access::Role;
use corelab_domain::charter::{Date, VisitCalendar};
use corelab_domain::deid_profile::DateHandling;
use corelab_store::trials::SubjectRow;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::access::TrialAccess;
use crate::audit::{change, trial_record};
use crate::signatures::SignatureView;
use crate::{Actor, App, AppError};

/// A subject as the caller may see it: `arm` only for unblinded roles and the subject's site.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectView {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub subject_id: String,
    /// Enrollment or randomization date (the charter's schedule anchor).
    pub anchor_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    pub status: String,
    pub withdrawn_on: Option<NaiveDate>,
    pub charter_version: i64,
    pub signatures: Vec<SignatureView>,
}

#[derive(Debug, Clone)]
pub struct Enrollment {
    pub site_id: String,
    pub subject_id: String,
    pub anchor_date: NaiveDate,
    pub arm: Option<String>,
}

/// A correction: fields to change and why.
#[derive(Debug, Clone, Default)]
pub struct SubjectCorrection {
    pub anchor_date: Option<NaiveDate>,
    pub arm: Option<String>,
    pub reason: String,
}

/// One expected visit of a subject.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarVisit {
    pub visit_id: String,
    pub label: String,
    pub day: i32,
    pub expected_date: NaiveDate,
    pub window_open: NaiveDate,
    pub window_close: NaiveDate,
}

fn to_domain(d: NaiveDate) -> Result<Date, AppError> {
    Date::parse_iso(&d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| AppError::internal(std::io::Error::other("date out of range")))
}

fn to_naive(d: Date) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d").map_err(AppError::internal)
}

/// The content an e-signature on a subject binds to.
pub(crate) fn subject_content(s: &SubjectRow) -> Value {
    serde_json::json!({
        "subject_id": s.subject_id, "site_id": s.site_id, "anchor_date": s.anchor_date.to_string(),
        "arm": s.arm, "status": s.status, "withdrawn_on": s.withdrawn_on.map(|d| d.to_string()),
    })
}

impl App {
    pub(crate) async fn subject_view(&self, access: &TrialAccess, s: &SubjectRow) -> Result<SubjectView, AppError> {
        let signatures = self.signature_views("subject", &s.id.to_string(), &subject_content(s)).await?;
        Ok(SubjectView {
            id: s.id,
            trial_id: s.trial_id,
            site_id: s.site_id.clone(),
            subject_id: s.subject_id.clone(),
            anchor_date: s.anchor_date,
            arm: if access.sees_arm_at(&s.site_id) { s.arm.clone() } else { None },
            status: s.status.clone(),
            withdrawn_on: s.withdrawn_on,
            charter_version: s.charter_version,
            signatures,
        })
    }

    /// Enrolls a subject at a qualified site (site staff of that site, or a trial manager).
    pub async fn enroll_subject(&self, actor: &Actor, trial_id: Uuid, e: Enrollment) -> Result<SubjectView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.can_see_site(&e.site_id) && !access.is_system_admin {
            return Err(AppError::NotFound(format!("no site {} in trial {trial_id}", e.site_id)));
        }
        let role = self
            .require(actor, &access, &[Role::SiteUser, Role::TrialManager], "enroll subjects", "subject", &e.subject_id)
            .await?;
        let (version, charter) = self.current_charter(trial_id).await?;
        let mut tx = self.db().begin().await?;
        let site = tx
            .site(trial_id, &e.site_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no site {} in trial {trial_id}", e.site_id)))?;
        if site.status != "qualified" {
            return Err(AppError::Conflict(format!(
                "site {} is not qualified yet (status: {}), so it cannot enroll subjects; upload a qualification scan \
                 for the site and have a QC reviewer approve it first",
                site.site_id, site.status
            )));
        }
        if !charter.subject_id_matches(&e.site_id, &e.subject_id) {
            return Err(AppError::invalid(
                "subject_id",
                format!(
                    "{:?} does not follow the trial's subject ID pattern {} for site {}",
                    e.subject_id, charter.subjects.id_pattern, e.site_id
                ),
            ));
        }
        if let Some(arm) = &e.arm
            && !charter.arms.iter().any(|a| &a.id == arm)
        {
            let ids: Vec<&str> = charter.arms.iter().map(|a| a.id.as_str()).collect();
            return Err(AppError::invalid(
                "arm",
                format!("unknown arm {arm:?}; the charter's arms are {}", ids.join(", ")),
            ));
        }
        if tx.subject_by_code(trial_id, &e.subject_id).await?.is_some() {
            return Err(AppError::Conflict(format!("subject {} is already enrolled in this trial", e.subject_id)));
        }
        let shift = match charter.deidentification.dates {
            DateHandling::Shift => {
                let max = i64::from(charter.deidentification.max_shift_days.max(1));
                // A random, non-zero shift per subject, drawn once and stored.
                let mut d = 0;
                while d == 0 {
                    d = rand::random_range(-max..=max);
                }
                d
            }
            _ => 0,
        };
        let now = self.clock().now();
        let row = SubjectRow {
            id: Uuid::now_v7(),
            trial_id,
            site_id: e.site_id.clone(),
            subject_id: e.subject_id.clone(),
            anchor_date: e.anchor_date,
            arm: e.arm.clone(),
            status: "enrolled".into(),
            withdrawn_on: None,
            charter_version: version,
            date_shift_days: shift,
            created_at: now,
            updated_at: now,
        };
        tx.insert_subject(&row).await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            Some(&e.site_id),
            now,
            "create",
            "subject",
            row.id,
            vec![
                change("subject_id", Value::Null, row.subject_id.clone()),
                change("anchor_date", Value::Null, row.anchor_date.to_string()),
                // The arm is recorded but kept out of the trail's readable fields for blinded readers.
                change("arm", Value::Null, if row.arm.is_some() { "(recorded)" } else { "(none)" }),
                change("charter_version", Value::Null, version),
            ],
        ))
        .await?;
        tx.commit().await?;
        self.subject_view(&access, &row).await
    }

    /// Subjects the caller may see: all for trial-wide roles, their sites' for site staff; readers,
    /// adjudicators and sponsors get 404 (no subject-level access).
    pub async fn list_subjects(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<SubjectView>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        let mut tx = self.db().read().await?;
        let rows = tx.subjects(trial_id).await?;
        drop(tx);
        let mut out = Vec::new();
        for s in rows.iter().filter(|s| access.can_see_site(&s.site_id)) {
            out.push(self.subject_view(&access, s).await?);
        }
        Ok(out)
    }

    /// A subject the actor may see (its trial and site), else `NotFound`.
    pub(crate) async fn subject_in_scope(
        &self,
        actor: &Actor,
        subject: Uuid,
    ) -> Result<(TrialAccess, SubjectRow), AppError> {
        let not_found = || AppError::NotFound(format!("no subject {subject}"));
        let mut tx = self.db().read().await?;
        let row = tx.subject(subject).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, row.trial_id).await.map_err(|_| not_found())?;
        if !access.can_see_site(&row.site_id) {
            return Err(not_found());
        }
        Ok((access, row))
    }

    pub async fn subject(&self, actor: &Actor, subject: Uuid) -> Result<SubjectView, AppError> {
        let (access, row) = self.subject_in_scope(actor, subject).await?;
        self.subject_view(&access, &row).await
    }

    /// Corrects a subject's enrollment data. A reason is required; a signed record loses its
    /// signature's validity (shown as such) and keeps its history in the trail.
    pub async fn correct_subject(
        &self,
        actor: &Actor,
        subject: Uuid,
        c: SubjectCorrection,
    ) -> Result<SubjectView, AppError> {
        let (access, row) = self.subject_in_scope(actor, subject).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::SiteUser, Role::TrialManager],
                "correct subjects",
                "subject",
                &subject.to_string(),
            )
            .await?;
        if c.reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the subject's data is corrected; it goes to the audit trail",
            ));
        }
        let mut new = row.clone();
        let mut changes = Vec::new();
        if let Some(d) = c.anchor_date
            && d != row.anchor_date
        {
            changes.push(change("anchor_date", row.anchor_date.to_string(), d.to_string()));
            new.anchor_date = d;
        }
        if let Some(arm) = c.arm
            && Some(&arm) != row.arm.as_ref()
        {
            let (_, charter) = self.current_charter(row.trial_id).await?;
            if !charter.arms.iter().any(|a| a.id == arm) {
                return Err(AppError::invalid("arm", format!("unknown arm {arm:?}")));
            }
            changes.push(change("arm", "(recorded)", "(recorded)"));
            new.arm = Some(arm);
        }
        if changes.is_empty() {
            return Err(AppError::Conflict("nothing to change: the values given are the current ones".into()));
        }
        let now = self.clock().now();
        new.updated_at = now;
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(&mut tx, row.trial_id, Some(row.id), None, "correcting this subject").await?;
        tx.update_subject(&new).await?;
        let mut rec =
            trial_record(actor, &role, row.trial_id, Some(&row.site_id), now, "update", "subject", row.id, changes);
        rec.reason = Some(c.reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        self.subject_view(&access, &new).await
    }

    /// Withdraws a subject on `date`; no more visits are expected after it.
    pub async fn withdraw_subject(
        &self,
        actor: &Actor,
        subject: Uuid,
        date: NaiveDate,
        reason: &str,
    ) -> Result<SubjectView, AppError> {
        let (access, row) = self.subject_in_scope(actor, subject).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::SiteUser, Role::TrialManager],
                "withdraw subjects",
                "subject",
                &subject.to_string(),
            )
            .await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the subject is withdrawn"));
        }
        if row.status == "withdrawn" {
            return Err(AppError::Conflict(format!("subject {} is already withdrawn", row.subject_id)));
        }
        let now = self.clock().now();
        let mut new = row.clone();
        new.status = "withdrawn".into();
        new.withdrawn_on = Some(date);
        new.updated_at = now;
        let mut tx = self.db().begin().await?;
        crate::locks::refuse_locked(&mut tx, row.trial_id, Some(row.id), None, "withdrawing this subject").await?;
        tx.update_subject(&new).await?;
        let mut rec = trial_record(
            actor,
            &role,
            row.trial_id,
            Some(&row.site_id),
            now,
            "withdraw",
            "subject",
            row.id,
            vec![
                change("status", row.status.clone(), "withdrawn"),
                change("withdrawn_on", Value::Null, date.to_string()),
            ],
        );
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        self.subject_view(&access, &new).await
    }

    /// The subject's expected visits under the charter version in force now (an amended
    /// schedule shifts the calendar).
    pub async fn subject_calendar(&self, actor: &Actor, subject: Uuid) -> Result<Vec<CalendarVisit>, AppError> {
        let (_access, row) = self.subject_in_scope(actor, subject).await?;
        let (_, charter) = self.current_charter(row.trial_id).await?;
        let cal = VisitCalendar::new(&charter, to_domain(row.anchor_date)?);
        let mut out = Vec::new();
        for v in &cal.visits {
            if let Some(w) = row.withdrawn_on
                && to_naive(v.window_open)? > w
            {
                continue;
            }
            out.push(CalendarVisit {
                visit_id: v.visit_id.clone(),
                label: v.label.clone(),
                day: v.day,
                expected_date: to_naive(v.expected_date)?,
                window_open: to_naive(v.window_open)?,
                window_close: to_naive(v.window_close)?,
            });
        }
        Ok(out)
    }
}
