//! Data lock: a trial manager locks a visit, a subject or the whole trial (e-signed, audited);
//! nothing under an active lock may change. Ingest places images for a locked visit in the inbox
//! (with the lock as the reason); QC reviews, data queries, inbox assignments, reads (drafts,
//! submissions, corrections) and adjudication decisions under a lock answer 409 naming the lock.
//! Unlocking needs a reason and a trial manager's e-signature and is audited. A database trigger
//! also refuses read versions of a locked visit. docs/exports.md describes the rules.

use chrono::{DateTime, Utc};
use corelab_domain::access::Role;
use corelab_store::Tx;
use corelab_store::locks::DataLockRow;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{change, trial_record};
use crate::signatures::{SignatureView, SigningCredentials};
use crate::{Actor, App, AppError};

/// Meaning of the e-signature on a lock.
pub const DATA_LOCKED: &str = "data locked";
/// Meaning of the e-signature on an unlock.
pub const DATA_UNLOCKED: &str = "data unlocked";

/// What to lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockScope {
    Trial,
    Subject(Uuid),
    Visit(Uuid, String),
}

impl LockScope {
    /// From the API's fields: `scope` = trial | subject | visit, with the subject (and visit).
    pub fn parse(scope: &str, subject: Option<Uuid>, visit: Option<&str>) -> Result<LockScope, AppError> {
        let visit = visit.map(str::trim).filter(|v| !v.is_empty());
        match (scope, subject, visit) {
            ("trial", None, None) => Ok(LockScope::Trial),
            ("trial", _, _) => Err(AppError::invalid("scope", "a trial lock names no subject or visit")),
            ("subject", Some(s), None) => Ok(LockScope::Subject(s)),
            ("subject", None, _) => Err(AppError::invalid("subject_id", "a subject lock needs subject_id")),
            ("subject", Some(_), Some(_)) => {
                Err(AppError::invalid("visit_id", "a subject lock covers every visit; use scope \"visit\" for one"))
            }
            ("visit", Some(s), Some(v)) => Ok(LockScope::Visit(s, v.to_string())),
            ("visit", _, _) => Err(AppError::invalid("visit_id", "a visit lock needs subject_id and visit_id")),
            (other, _, _) => {
                Err(AppError::invalid("scope", format!("unknown lock scope {other:?}; use trial, subject or visit")))
            }
        }
    }
}

/// A lock as shown to trial managers and monitors.
#[derive(Debug, Clone, Serialize)]
pub struct LockView {
    pub id: Uuid,
    pub scope: String,
    pub subject: Option<Uuid>,
    pub subject_id: Option<String>,
    pub visit_id: Option<String>,
    pub reason: String,
    pub locked_at: DateTime<Utc>,
    pub active: bool,
    pub unlocked_at: Option<DateTime<Utc>>,
    pub unlock_reason: Option<String>,
    pub signatures: Vec<SignatureView>,
}

fn lock_content(l: &DataLockRow) -> Value {
    json!({"lock": l.id, "trial": l.trial_id, "scope": l.scope, "subject": l.subject_id, "visit": l.visit_id,
           "reason": l.reason, "locked_at": l.locked_at})
}

fn unlock_content(l: &DataLockRow) -> Value {
    json!({"lock": l.id, "unlocked_at": l.unlocked_at, "reason": l.unlock_reason})
}

/// How a lock is named in messages: "data lock 0193… (visit W8 of subject 101-001)".
pub(crate) fn describe(l: &DataLockRow, subject_code: Option<&str>) -> String {
    let who = subject_code.map(|c| format!("subject {c}")).unwrap_or_else(|| "a subject".into());
    let what = match l.scope.as_str() {
        "trial" => "the whole trial".to_string(),
        "subject" => who,
        _ => format!("visit {} of {who}", l.visit_id.as_deref().unwrap_or("?")),
    };
    format!("data lock {} ({what}, locked {})", l.id, l.locked_at.format("%Y-%m-%d %H:%M UTC"))
}

/// Refuses (409) when an active lock covers the trial, the subject or its visit.
pub(crate) async fn refuse_locked(
    tx: &mut Tx,
    trial_id: Uuid,
    subject: Option<Uuid>,
    visit: Option<&str>,
    what: &str,
) -> Result<(), AppError> {
    if let Some(l) = tx.covering_data_locks(trial_id, subject, visit).await?.into_iter().next() {
        let code = match l.subject_id {
            Some(s) => tx.subject(s).await?.map(|s| s.subject_id),
            None => None,
        };
        return Err(AppError::Conflict(format!(
            "{what} is not possible: the data is locked by {}; a trial manager must unlock it first",
            describe(&l, code.as_deref())
        )));
    }
    Ok(())
}

/// Like [`refuse_locked`], for readers and adjudicators: the message names the lock by its id
/// only (no subject code or visit, which blinded roles must not see).
pub(crate) async fn refuse_locked_blinded(
    tx: &mut Tx,
    trial_id: Uuid,
    subject: Uuid,
    visits: &[&str],
    what: &str,
) -> Result<(), AppError> {
    for visit in visits {
        if let Some(l) = tx.covering_data_locks(trial_id, Some(subject), Some(visit)).await?.into_iter().next() {
            return Err(AppError::Conflict(format!(
                "{what} is not possible: this timepoint is under data lock {} (locked {}); a trial manager must unlock it first",
                l.id,
                l.locked_at.format("%Y-%m-%d %H:%M UTC")
            )));
        }
    }
    Ok(())
}

impl App {
    /// Locks a visit, a subject or the trial (trial managers; e-signed "data locked").
    pub async fn lock_data(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        scope: LockScope,
        reason: &str,
        creds: SigningCredentials,
    ) -> Result<LockView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = self.require(actor, &access, &[Role::TrialManager], "lock data", "data_lock", "*").await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the data is locked (e.g. database lock for the interim analysis)",
            ));
        }
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let (subject, visit) = match &scope {
            LockScope::Trial => (None, None),
            LockScope::Subject(s) | LockScope::Visit(s, _) => {
                let row = tx
                    .subject(*s)
                    .await?
                    .filter(|r| r.trial_id == trial_id)
                    .ok_or_else(|| AppError::invalid("subject_id", "no such subject in this trial"))?;
                let visit = match &scope {
                    LockScope::Visit(_, v) => {
                        let charter = crate::reads::charter_in(&mut tx, trial_id).await?;
                        let known = charter.scheduled_visits().iter().any(|x| x.id == *v)
                            || tx.subject_studies(row.id).await?.iter().any(|st| st.visit_id == *v);
                        if !known {
                            return Err(AppError::invalid("visit_id", format!("{v:?} is no visit of this subject")));
                        }
                        Some(v.clone())
                    }
                    _ => None,
                };
                (Some(row), visit)
            }
        };
        let subject_uuid = subject.as_ref().map(|s| s.id);
        if let Some(existing) =
            tx.covering_data_locks(trial_id, subject_uuid, visit.as_deref()).await?.into_iter().find(|l| match &scope {
                LockScope::Trial => l.scope == "trial",
                LockScope::Subject(_) => l.scope != "visit",
                LockScope::Visit(..) => true,
            })
        {
            return Err(AppError::Conflict(format!(
                "already locked by {}",
                describe(&existing, subject.as_ref().map(|s| s.subject_id.as_str()))
            )));
        }
        let row = DataLockRow {
            id: Uuid::now_v7(),
            trial_id,
            scope: match scope {
                LockScope::Trial => "trial",
                LockScope::Subject(_) => "subject",
                LockScope::Visit(..) => "visit",
            }
            .into(),
            subject_id: subject_uuid,
            visit_id: visit.clone(),
            reason: reason.to_string(),
            locked_by: actor.user_id,
            locked_at: now,
            unlocked_by: None,
            unlocked_at: None,
            unlock_reason: None,
        };
        tx.insert_data_lock(&row).await?;
        let mut rec = trial_record(
            actor,
            &role,
            trial_id,
            subject.as_ref().map(|s| s.site_id.as_str()),
            now,
            "lock",
            "data_lock",
            row.id,
            vec![
                change("scope", Value::Null, row.scope.clone()),
                change("subject", Value::Null, subject.as_ref().map(|s| s.subject_id.clone())),
                change("visit", Value::Null, visit),
            ],
        );
        rec.reason = Some(reason.to_string());
        tx.append_audit(rec).await?;
        self.write_signature(
            &mut tx,
            actor,
            Some(trial_id),
            "data_lock",
            &row.id.to_string(),
            DATA_LOCKED,
            &lock_content(&row),
        )
        .await?;
        tx.commit().await?;
        self.lock_view(&row).await
    }

    /// Releases an active lock (trial managers; a reason and an e-signature "data unlocked").
    pub async fn unlock_data(
        &self,
        actor: &Actor,
        lock_id: Uuid,
        reason: &str,
        creds: SigningCredentials,
    ) -> Result<LockView, AppError> {
        let not_found = || AppError::NotFound(format!("no data lock {lock_id}"));
        let mut tx = self.db().read().await?;
        let lock = tx.data_lock(lock_id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, lock.trial_id).await.map_err(|_| not_found())?;
        let role = self
            .require(actor, &access, &[Role::TrialManager], "unlock data", "data_lock", &lock_id.to_string())
            .await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid("reason", "say why the data is unlocked"));
        }
        if lock.unlocked_at.is_some() {
            return Err(AppError::Conflict("this lock was already released".into()));
        }
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        if !tx.unlock_data_lock(lock_id, actor.user_id, now, reason).await? {
            return Err(AppError::Conflict("this lock was already released".into()));
        }
        let row = tx.data_lock(lock_id).await?.ok_or_else(not_found)?;
        let site = match row.subject_id {
            Some(s) => tx.subject(s).await?.map(|s| s.site_id),
            None => None,
        };
        let mut rec = trial_record(
            actor,
            &role,
            row.trial_id,
            site.as_deref(),
            now,
            "unlock",
            "data_lock",
            row.id,
            vec![change("active", true, false)],
        );
        rec.reason = Some(reason.to_string());
        tx.append_audit(rec).await?;
        self.write_signature(
            &mut tx,
            actor,
            Some(row.trial_id),
            "data_unlock",
            &row.id.to_string(),
            DATA_UNLOCKED,
            &unlock_content(&row),
        )
        .await?;
        tx.commit().await?;
        self.lock_view(&row).await
    }

    /// Checks that the actor may lock data in the trial (403, audited, otherwise).
    pub async fn data_lock_allowed(&self, actor: &Actor, trial_id: Uuid) -> Result<(), AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager], "lock data", "data_lock", "*").await.map(|_| ())
    }

    /// Every lock of a trial, active and released (trial managers, monitors).
    pub async fn data_locks(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<LockView>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager, Role::Monitor], "see data locks", "data_lock", "*").await?;
        let mut tx = self.db().read().await?;
        let rows = tx.trial_data_locks(trial_id).await?;
        drop(tx);
        let mut out = Vec::new();
        for r in &rows {
            out.push(self.lock_view(r).await?);
        }
        Ok(out)
    }

    async fn lock_view(&self, l: &DataLockRow) -> Result<LockView, AppError> {
        let subject_id = match l.subject_id {
            Some(s) => {
                let mut tx = self.db().read().await?;
                tx.subject(s).await?.map(|s| s.subject_id)
            }
            None => None,
        };
        let mut signatures = self.signature_views("data_lock", &l.id.to_string(), &lock_content(l)).await?;
        if l.unlocked_at.is_some() {
            signatures.extend(self.signature_views("data_unlock", &l.id.to_string(), &unlock_content(l)).await?);
        }
        Ok(LockView {
            id: l.id,
            scope: l.scope.clone(),
            subject: l.subject_id,
            subject_id,
            visit_id: l.visit_id.clone(),
            reason: l.reason.clone(),
            locked_at: l.locked_at,
            active: l.unlocked_at.is_none(),
            unlocked_at: l.unlocked_at,
            unlock_reason: l.unlock_reason.clone(),
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_scopes_need_exactly_their_subject_and_visit() {
        let s = Uuid::nil();
        assert_eq!(LockScope::parse("trial", None, None).unwrap(), LockScope::Trial);
        assert_eq!(LockScope::parse("subject", Some(s), None).unwrap(), LockScope::Subject(s));
        assert_eq!(LockScope::parse("visit", Some(s), Some(" W8 ")).unwrap(), LockScope::Visit(s, "W8".into()));
        for (scope, subject, visit, field) in [
            ("trial", Some(s), None, "scope"),
            ("subject", None, None, "subject_id"),
            ("subject", Some(s), Some("W8"), "visit_id"),
            ("visit", Some(s), None, "visit_id"),
            ("visit", None, Some("W8"), "visit_id"),
            ("site", None, None, "scope"),
        ] {
            match LockScope::parse(scope, subject, visit) {
                Err(AppError::Invalid { field: Some(f), .. }) => assert_eq!(f, field, "{scope}"),
                other => panic!("{scope}: {other:?}"),
            }
        }
    }
}
