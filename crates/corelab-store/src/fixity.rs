//! Every stored blob the index refers to, with the SHA-256 it must have, and the record of fixity
//! checks.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

/// A blob reference: where the index says bytes are, and their hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct BlobRef {
    pub blob_key: String,
    pub sha256: String,
    pub size_bytes: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct FixityRunRow {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub checked: i64,
    pub bytes: i64,
    pub missing: i64,
    pub altered: i64,
    /// JSON array of {"blob_key", "problem"}.
    pub problems: String,
}

impl Tx {
    /// The next `limit` blob references after `after` (key order), across instances, the inbox,
    /// documents and qualification scans.
    pub async fn blob_refs_after(&mut self, after: &str, limit: i64) -> Result<Vec<BlobRef>, StoreError> {
        Ok(fetch_all!(
            self,
            BlobRef,
            "SELECT blob_key, MIN(sha256) AS sha256, MIN(size_bytes) AS size_bytes FROM ( \
               SELECT blob_key, sha256, size_bytes FROM instances \
               UNION ALL SELECT blob_key, sha256, size_bytes FROM inbox \
               UNION ALL SELECT blob_key, sha256, size_bytes FROM documents \
               UNION ALL SELECT blob_key, sha256, size_bytes FROM qualification_scans \
             ) refs WHERE blob_key > $1 GROUP BY blob_key ORDER BY blob_key LIMIT $2",
            after.to_string(),
            limit
        )?)
    }

    pub async fn insert_fixity_run(&mut self, r: &FixityRunRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO fixity_runs (id, started_at, finished_at, checked, bytes, missing, altered, problems) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            r.id,
            truncate_micros(r.started_at),
            truncate_micros(r.finished_at),
            r.checked,
            r.bytes,
            r.missing,
            r.altered,
            r.problems.clone()
        )?;
        Ok(())
    }

    pub async fn last_fixity_run(&mut self) -> Result<Option<FixityRunRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            FixityRunRow,
            "SELECT id, started_at, finished_at, checked, bytes, missing, altered, problems FROM fixity_runs \
             ORDER BY finished_at DESC LIMIT 1"
        )?)
    }
}
