//! The inbox: instances that could not be matched to a subject and visit (or conflict with what is
//! stored) wait here, de-identified under a provisional pseudonym, until a trial manager or the
//! sending site assigns them (or discards them, with a reason). Assigning rewrites the pseudonym and
//! moves the dates to the subject's shift, then files the instance like any other.

use corelab_dicom::deid::{Reassignment, reassign};
use corelab_domain::access::Role;
use corelab_domain::charter::{Date, VisitCalendar};
use corelab_domain::deid_profile::DateHandling;
use corelab_store::ingest::InboxRow;
use serde_json::Value;
use uuid::Uuid;

use super::index::read_header_with;
use super::plan::{Held, Placement};
use super::{IngestOutcome, IngestTarget, Source};
use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

impl App {
    async fn inbox_scope(&self, actor: &Actor, id: Uuid) -> Result<(crate::access::TrialAccess, InboxRow), AppError> {
        let not_found = || AppError::NotFound(format!("no inbox item {id}"));
        let mut tx = self.db().read().await?;
        let item = tx.inbox_item(id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, item.trial_id).await.map_err(|_| not_found())?;
        if !access.can_see_site(&item.site_id) {
            return Err(not_found());
        }
        Ok((access, item))
    }

    /// The trial's inbox (trial managers: all; site users: their sites').
    pub async fn list_inbox(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<InboxRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        self.require(
            actor,
            &access,
            &[Role::TrialManager, Role::SiteUser, Role::QcReviewer, Role::Monitor],
            "see the inbox",
            "inbox_item",
            "*",
        )
        .await?;
        let mut tx = self.db().read().await?;
        Ok(tx.inbox(trial_id).await?.into_iter().filter(|i| access.can_see_site(&i.site_id)).collect())
    }

    /// Files an inbox item under a subject of the same site and one of the charter's visits.
    pub async fn assign_inbox(
        &self,
        actor: &Actor,
        id: Uuid,
        subject: Uuid,
        visit_id: &str,
        reason: &str,
    ) -> Result<IngestOutcome, AppError> {
        let (access, item) = self.inbox_scope(actor, id).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::TrialManager, Role::SiteUser],
                "assign inbox items",
                "inbox_item",
                &id.to_string(),
            )
            .await?;
        if item.state != "unassigned" {
            return Err(AppError::Conflict(format!(
                "this item is {}; only unassigned items can be filed (a conflicting object must be resolved by resending a corrected one)",
                item.state
            )));
        }
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say how you know the images belong to this subject and visit"));
        }
        let mut tx = self.db().read().await?;
        let subj = tx
            .subject(subject)
            .await?
            .filter(|s| s.trial_id == item.trial_id)
            .ok_or_else(|| AppError::invalid("subject", "no such subject in this trial"))?;
        crate::locks::refuse_locked(
            &mut tx,
            item.trial_id,
            Some(subj.id),
            Some(visit_id),
            "filing images into this visit",
        )
        .await?;
        drop(tx);
        if subj.site_id != item.site_id {
            return Err(AppError::invalid(
                "subject",
                format!(
                    "the item came from site {} but subject {} is at site {}; ask site {} to send the images",
                    item.site_id, subj.subject_id, subj.site_id, subj.site_id
                ),
            ));
        }
        let setup = self
            .ingest_setup(&IngestTarget {
                trial_id: item.trial_id,
                site_id: item.site_id.clone(),
                source: Source::Upload,
                sender: actor.username.clone(),
                sender_role: role.clone(),
                sender_id: actor.user_id,
            })
            .await
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        let charter = &setup.charter;
        let anchor = Date::parse_iso(&subj.anchor_date.format("%Y-%m-%d").to_string())
            .ok_or_else(|| AppError::internal(std::io::Error::other("bad anchor date")))?;
        let calendar = VisitCalendar::new(charter, anchor);
        let planned = calendar.visit(visit_id);
        if planned.is_none() && !charter.schedule.unscheduled_visits_allowed {
            let ids: Vec<&str> = calendar.visits.iter().map(|v| v.visit_id.as_str()).collect();
            return Err(AppError::invalid(
                "visit_id",
                format!("unknown visit {visit_id:?}; the schedule has {}", ids.join(", ")),
            ));
        }
        let label = planned.map(|p| p.label.clone()).unwrap_or_else(|| "Unscheduled".into());
        let shifting = charter.deidentification.dates == DateHandling::Shift;
        let delta =
            if shifting { i32::try_from(subj.date_shift_days - item.provisional_shift).unwrap_or(0) } else { 0 };
        // The hint is the study date under the provisional shift; undo it to count days from anchor.
        let anchor_day = item
            .anchor_date_hint
            .map(|h| (h - chrono::Duration::days(item.provisional_shift) - subj.anchor_date).num_days());
        let bytes = self.blobs().get_bytes(&item.blob_key).await?;
        let r = Reassignment {
            subject_id: subj.subject_id.clone(),
            time_point_id: visit_id.to_string(),
            time_point_description: Some(label),
            shift_delta_days: delta,
        };
        let rewritten = tokio::task::spawn_blocking(move || reassign(&bytes, &r))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::Conflict(format!("the stored item cannot be rewritten: {e}")))?;
        let staged = self.blobs().stage_bytes(&rewritten).await?;
        let facts: Value = serde_json::from_str(&item.facts).unwrap_or(Value::Null);
        let path = staged.path().to_path_buf();
        let header = tokio::task::spawn_blocking(move || read_header_with(&path, |_| Ok(facts)))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        let burned_in = serde_json::from_str::<Value>(&item.deid_report)
            .ok()
            .and_then(|v| v.get("flags").and_then(|f| f.as_array()).map(|f| !f.is_empty()))
            .unwrap_or(false);
        // Locked (or the subject changed) after the checks above: it waits in the inbox again.
        let if_held = Box::new(Held {
            patient_key: item.patient_key.clone(),
            provisional_shift: if shifting { i32::try_from(subj.date_shift_days).unwrap_or(0) } else { 0 },
            study_date_hint: item.anchor_date_hint.map(|h| h + chrono::Duration::days(i64::from(delta))),
        });
        let placement =
            Placement::Visit { subject: Box::new(subj.clone()), visit_id: visit_id.to_string(), anchor_day, if_held };
        let target = IngestTarget {
            trial_id: item.trial_id,
            site_id: item.site_id.clone(),
            source: Source::Upload,
            sender: actor.username.clone(),
            sender_role: role.clone(),
            sender_id: actor.user_id,
        };
        let outcome = self
            .index_writer()
            .submit_indexed(
                self,
                placement,
                setup.charter_version,
                staged,
                super::index::StoredReport::new(item.deid_report.clone(), burned_in),
                header,
                target,
            )
            .await
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        if tx.resolve_inbox(id, "assigned", actor.user_id, now).await? {
            let mut rec = trial_record(
                actor,
                &role,
                item.trial_id,
                Some(&item.site_id),
                now,
                "assign",
                "inbox_item",
                id,
                vec![
                    change("state", "unassigned", "assigned"),
                    change("subject", Value::Null, subj.subject_id.clone()),
                    change("visit", Value::Null, visit_id),
                ],
            );
            rec.reason = Some(reason.trim().to_string());
            tx.append_audit(rec).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Discards an inbox item (it stays stored for the record, but is never filed).
    pub async fn discard_inbox(&self, actor: &Actor, id: Uuid, reason: &str) -> Result<(), AppError> {
        let (access, item) = self.inbox_scope(actor, id).await?;
        let role = self
            .require(actor, &access, &[Role::TrialManager], "discard inbox items", "inbox_item", &id.to_string())
            .await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the images are not filed (e.g. sent for the wrong trial)",
            ));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        if !tx.resolve_inbox(id, "discarded", actor.user_id, now).await? {
            return Err(AppError::Conflict(format!("this item is already {}", item.state)));
        }
        let mut rec = trial_record(
            actor,
            &role,
            item.trial_id,
            Some(&item.site_id),
            now,
            "discard",
            "inbox_item",
            id,
            vec![change("state", item.state.clone(), "discarded")],
        );
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok(())
    }
}
