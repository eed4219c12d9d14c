//! Background jobs: a table of work items that any corelab process may claim.
//!
//! A claim is a lease: the claiming process owns the job until `locked_until`; if it dies, the
//! lease runs out and another process picks the job up. Claiming is atomic on both backends
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one `UPDATE ... RETURNING` under the single
//! writer lock), so no job runs twice at the same time.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Db, Tx, exec, fetch_optional};

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i64,
    /// At most one live job per key (e.g. "study-complete:<uid>"); enqueueing again is a no-op.
    pub dedup_key: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, kind, payload, state, run_at, attempts, max_attempts, locked_by, locked_until, last_error";

impl Tx {
    /// Enqueues a job in the caller's transaction (so it exists exactly when the change that
    /// needs it commits). Returns `None` when a queued job with the same dedup key exists. A job
    /// with that key that is running does not block a new one: the new one runs after it, on the
    /// data the running one may not have seen.
    pub async fn enqueue_job(&mut self, job: NewJob, now: DateTime<Utc>) -> Result<Option<Uuid>, StoreError> {
        if let Some(key) = &job.dedup_key {
            exec!(self, "DELETE FROM jobs WHERE dedup_key = $1 AND state IN ('done', 'failed')", key.clone())?;
        }
        let id = Uuid::now_v7();
        let rows = exec!(
            self,
            "INSERT INTO jobs (id, kind, payload, dedup_key, state, run_at, attempts, max_attempts, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7) ON CONFLICT (dedup_key) WHERE state = 'queued' DO NOTHING",
            id,
            job.kind,
            job.payload.to_string(),
            job.dedup_key,
            truncate_micros(job.run_at),
            job.max_attempts.max(1),
            truncate_micros(now),
        )?;
        Ok((rows == 1).then_some(id))
    }

    /// Postpones a queued job (used when new data arrives and a quiet period restarts).
    pub async fn reschedule_job_by_key(&mut self, key: &str, run_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let rows = exec!(
            self,
            "UPDATE jobs SET run_at = $1 WHERE dedup_key = $2 AND state = 'queued'",
            truncate_micros(run_at),
            key.to_string()
        )?;
        Ok(rows > 0)
    }
}

impl Db {
    /// Claims the next due job for `worker` for `lease`, or `None` when nothing is due. A
    /// `running` job whose lease expired counts as due: its worker died.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = truncate_micros(now);
        let until = now + lease;
        let mut tx = self.begin().await?;
        let job = match tx.backend() {
            crate::Backend::Sqlite => fetch_optional!(
                &mut tx,
                Job,
                sqlx::AssertSqlSafe(format!(
                    "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_at <= $3) \
                     OR (state = 'running' AND locked_until < $3) ORDER BY run_at LIMIT 1) RETURNING {JOB_COLUMNS}"
                )),
                worker.to_string(),
                until,
                now
            )?,
            crate::Backend::Postgres => fetch_optional!(
                &mut tx,
                Job,
                sqlx::AssertSqlSafe(format!(
                    "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_at <= $3) \
                     OR (state = 'running' AND locked_until < $3) ORDER BY run_at LIMIT 1 \
                     FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}"
                )),
                worker.to_string(),
                until,
                now
            )?,
        };
        tx.commit().await?;
        Ok(job)
    }

    /// Marks a job done. Returns false if the worker no longer held the lease.
    pub async fn finish_job(&self, id: Uuid, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let rows = exec!(
            &mut tx,
            "UPDATE jobs SET state = 'done', finished_at = $1, locked_by = NULL, locked_until = NULL \
             WHERE id = $2 AND locked_by = $3 AND state = 'running'",
            truncate_micros(now),
            id,
            worker.to_string()
        )?;
        tx.commit().await?;
        Ok(rows == 1)
    }

    /// Records a failure; the job is retried at `retry_at` until it has used its attempts.
    pub async fn fail_job(
        &self,
        id: Uuid,
        worker: &str,
        error: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        exec!(
            &mut tx,
            "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END, \
             run_at = $2, last_error = $3, locked_by = NULL, locked_until = NULL \
             WHERE id = $4 AND locked_by = $5",
            truncate_micros(now),
            truncate_micros(retry_at),
            error.to_string(),
            id,
            worker.to_string()
        )?;
        tx.commit().await?;
        Ok(())
    }

    /// Number of jobs per state, for `/metrics`.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.read().await?;
        let rows: Vec<(String, i64)> = crate::db::fetch_all!(
            &mut tx,
            (String, i64),
            "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state"
        )?;
        Ok(rows)
    }
}
