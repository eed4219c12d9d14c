//! Background jobs: what each kind does. Any corelab process may run any job; the job table's
//! leases make sure one runs it at a time.

use chrono::Duration;
use corelab_store::jobs::{Job, NewJob};
use serde_json::json;
use uuid::Uuid;

use crate::{App, AppError};

/// Kinds of jobs.
pub const STUDY_COMPLETE: &str = "study_complete";
pub const OVERDUE_SCAN: &str = "overdue_scan";
pub const FIXITY_VERIFY: &str = "fixity_verify";

impl App {
    /// Runs one claimed job.
    pub async fn run_job(&self, job: &Job) -> Result<(), AppError> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).map_err(AppError::internal)?;
        match job.kind.as_str() {
            STUDY_COMPLETE => {
                let id: Uuid = payload["study_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| AppError::invalid("payload", "study_complete needs study_id"))?;
                let mut tx = self.db().read().await?;
                let study = tx.study(id).await?.ok_or_else(|| AppError::NotFound(format!("no study {id}")))?;
                drop(tx);
                self.evaluate_visit_qc(study.subject_id, &study.visit_id).await?;
                Ok(())
            }
            OVERDUE_SCAN => {
                let (raised, reminded) = self.overdue_scan(self.settings().query_reminder_days).await?;
                if raised + reminded > 0 {
                    tracing::info!(raised, reminded, "overdue scan");
                }
                // The scan re-arms itself.
                self.schedule_overdue_scan().await
            }
            FIXITY_VERIFY => {
                let report = self.verify_blobs().await?;
                if !report.problems.is_empty() {
                    tracing::error!(problems = report.problems.len(), "fixity check found missing or altered blobs");
                }
                self.schedule_fixity().await
            }
            other => Err(AppError::invalid("kind", format!("no handler for job kind {other:?}"))),
        }
    }

    /// Makes sure one overdue scan is queued (at most one exists thanks to its dedup key).
    pub async fn schedule_overdue_scan(&self) -> Result<(), AppError> {
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.enqueue_job(
            NewJob {
                kind: OVERDUE_SCAN.into(),
                payload: json!({}),
                run_at: now + Duration::seconds(self.settings().overdue_scan_interval_seconds),
                max_attempts: 3,
                dedup_key: Some("overdue-scan".into()),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps one scheduled fixity check queued when the schedule is on.
    pub async fn schedule_fixity(&self) -> Result<(), AppError> {
        let hours = self.settings().fixity_interval_hours;
        if hours <= 0 {
            return Ok(());
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.enqueue_job(
            NewJob {
                kind: FIXITY_VERIFY.into(),
                payload: json!({}),
                run_at: now + Duration::hours(hours),
                max_attempts: 3,
                dedup_key: Some("fixity-verify".into()),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims and runs due jobs until none is left; returns how many ran. Workers call this in a
    /// loop; tests call it to run what is due now.
    pub async fn run_due_jobs(&self, worker: &str) -> Result<usize, AppError> {
        let mut ran = 0;
        loop {
            let now = self.clock().now();
            let Some(job) = self.db().claim_job(worker, now, Duration::minutes(10)).await? else {
                return Ok(ran);
            };
            ran += 1;
            match self.run_job(&job).await {
                Ok(()) => {
                    self.db().finish_job(job.id, worker, self.clock().now()).await?;
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, kind = %job.kind, error = %e, "job failed; it will be retried");
                    let retry = self.clock().now() + Duration::seconds(30 * job.attempts.max(1));
                    self.db().fail_job(job.id, worker, &e.to_string(), retry, self.clock().now()).await?;
                }
            }
        }
    }
}
