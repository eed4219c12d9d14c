//! Repository methods for data locks (trial, subject or visit).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

/// A data lock; active while `unlocked_at` is null.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DataLockRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    /// trial, subject or visit
    pub scope: String,
    pub subject_id: Option<Uuid>,
    pub visit_id: Option<String>,
    pub reason: String,
    pub locked_by: Option<Uuid>,
    pub locked_at: DateTime<Utc>,
    pub unlocked_by: Option<Uuid>,
    pub unlocked_at: Option<DateTime<Utc>>,
    pub unlock_reason: Option<String>,
}

const LOCK_COLUMNS: &str = "id, trial_id, scope, subject_id, visit_id, reason, locked_by, locked_at, unlocked_by, \
     unlocked_at, unlock_reason";

impl Tx {
    pub async fn insert_data_lock(&mut self, l: &DataLockRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO data_locks (id, trial_id, scope, subject_id, visit_id, reason, locked_by, locked_at, \
             unlocked_by, unlocked_at, unlock_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            l.id,
            l.trial_id,
            l.scope.clone(),
            l.subject_id,
            l.visit_id.clone(),
            l.reason.clone(),
            l.locked_by,
            truncate_micros(l.locked_at),
            l.unlocked_by,
            l.unlocked_at.map(truncate_micros),
            l.unlock_reason.clone()
        )?;
        Ok(())
    }

    /// Records the unlocking of an active lock; false when it was not active any more.
    pub async fn unlock_data_lock(
        &mut self,
        id: Uuid,
        by: Option<Uuid>,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let n = exec!(
            self,
            "UPDATE data_locks SET unlocked_by = $1, unlocked_at = $2, unlock_reason = $3 \
             WHERE id = $4 AND unlocked_at IS NULL",
            by,
            truncate_micros(at),
            reason.to_string(),
            id
        )?;
        Ok(n > 0)
    }

    pub async fn data_lock(&mut self, id: Uuid) -> Result<Option<DataLockRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            DataLockRow,
            sqlx::AssertSqlSafe(format!("SELECT {LOCK_COLUMNS} FROM data_locks WHERE id = $1")),
            id
        )?)
    }

    /// Every lock of a trial (active and released), oldest first.
    pub async fn trial_data_locks(&mut self, trial_id: Uuid) -> Result<Vec<DataLockRow>, StoreError> {
        Ok(fetch_all!(
            self,
            DataLockRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {LOCK_COLUMNS} FROM data_locks WHERE trial_id = $1 ORDER BY locked_at, id"
            )),
            trial_id
        )?)
    }

    /// A trial's active locks, read so that none can be missed: after the audit lock, which a
    /// lock being taken holds until it commits. For a write transaction that files data under
    /// the locks it read (ingest's index writer).
    pub async fn active_data_locks_held(&mut self, trial_id: Uuid) -> Result<Vec<DataLockRow>, StoreError> {
        self.hold_audit_lock().await?;
        Ok(fetch_all!(self, DataLockRow, sqlx::AssertSqlSafe(active_locks_sql()), trial_id)?)
    }

    /// The active locks that cover a trial, a subject of it, or a visit of that subject: the
    /// trial lock, the subject's lock, the visit's lock.
    pub async fn covering_data_locks(
        &mut self,
        trial_id: Uuid,
        subject_id: Option<Uuid>,
        visit_id: Option<&str>,
    ) -> Result<Vec<DataLockRow>, StoreError> {
        let active: Vec<DataLockRow> =
            fetch_all!(self, DataLockRow, sqlx::AssertSqlSafe(active_locks_sql()), trial_id)?;
        Ok(active.into_iter().filter(|l| l.covers(subject_id, visit_id)).collect())
    }
}

/// A trial's active locks, oldest first (`$1`: the trial).
fn active_locks_sql() -> String {
    format!("SELECT {LOCK_COLUMNS} FROM data_locks WHERE trial_id = $1 AND unlocked_at IS NULL ORDER BY locked_at, id")
}

impl DataLockRow {
    /// Whether this lock (if active) covers the trial, the subject or the subject's visit.
    pub fn covers(&self, subject_id: Option<Uuid>, visit_id: Option<&str>) -> bool {
        match self.scope.as_str() {
            "trial" => true,
            "subject" => subject_id.is_some() && self.subject_id == subject_id,
            "visit" => {
                subject_id.is_some()
                    && self.subject_id == subject_id
                    && visit_id.is_some_and(|v| self.visit_id.as_deref() == Some(v))
            }
            _ => false,
        }
    }
}
