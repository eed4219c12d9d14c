//! Repository methods for the image index: studies, series, instances, and the inbox.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct StudyRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub subject_id: Uuid,
    pub visit_id: String,
    pub study_instance_uid: String,
    pub study_date: Option<NaiveDate>,
    pub anchor_day: Option<i64>,
    pub state: String,
    pub charter_version: i64,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const STUDY_COLUMNS: &str = "id, trial_id, site_id, subject_id, visit_id, study_instance_uid, study_date, anchor_day, \
     state, charter_version, first_received_at, last_received_at, completed_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SeriesRow {
    pub id: Uuid,
    pub study_id: Uuid,
    pub series_instance_uid: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_count: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct InstanceRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub study_id: Uuid,
    pub series_id: Uuid,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i64>,
    pub blob_key: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub facts: String,
    pub deid_report: String,
    pub burned_in_flag: bool,
    pub source: String,
    pub received_at: DateTime<Utc>,
}

/// The report comes from `deid_reports` (one row per distinct report) or, for instances stored
/// before migration 0011, from the instance row itself.
const INSTANCE_COLUMNS: &str = "id, trial_id, study_id, series_id, sop_instance_uid, sop_class_uid, transfer_syntax, \
     instance_number, blob_key, sha256, size_bytes, facts, \
     COALESCE((SELECT r.report FROM deid_reports r WHERE r.sha256 = instances.deid_report_sha), deid_report) \
     AS deid_report, burned_in_flag, source, received_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct InboxRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub reason: String,
    pub state: String,
    pub patient_key: String,
    pub claimed_subject: Option<String>,
    pub claimed_visit: Option<String>,
    pub provisional_shift: i64,
    pub anchor_date_hint: Option<NaiveDate>,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub modality: String,
    #[serde(skip)]
    pub blob_key: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<Uuid>,
    #[serde(skip)]
    pub deid_report: String,
    #[serde(skip)]
    pub facts: String,
}

const INBOX_COLUMNS: &str = "id, trial_id, site_id, reason, state, patient_key, claimed_subject, claimed_visit, \
     provisional_shift, anchor_date_hint, sop_instance_uid, study_instance_uid, modality, blob_key, sha256, size_bytes, \
     source, received_at, resolved_at, resolved_by, deid_report, facts";

impl Tx {
    pub async fn study_by_uid(&mut self, trial_id: Uuid, uid: &str) -> Result<Option<StudyRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            StudyRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {STUDY_COLUMNS} FROM studies WHERE trial_id = $1 AND study_instance_uid = $2"
            )),
            trial_id,
            uid.to_string()
        )?)
    }

    pub async fn study(&mut self, id: Uuid) -> Result<Option<StudyRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            StudyRow,
            sqlx::AssertSqlSafe(format!("SELECT {STUDY_COLUMNS} FROM studies WHERE id = $1")),
            id
        )?)
    }

    pub async fn insert_study(&mut self, s: &StudyRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO studies (id, trial_id, site_id, subject_id, visit_id, study_instance_uid, study_date, anchor_day, \
             state, charter_version, first_received_at, last_received_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (trial_id, study_instance_uid) DO NOTHING",
            s.id,
            s.trial_id,
            s.site_id.clone(),
            s.subject_id,
            s.visit_id.clone(),
            s.study_instance_uid.clone(),
            s.study_date,
            s.anchor_day,
            s.state.clone(),
            s.charter_version,
            truncate_micros(s.first_received_at),
            truncate_micros(s.last_received_at),
            s.completed_at.map(truncate_micros)
        )?;
        Ok(())
    }

    /// A new instance arrived: the study is receiving again.
    pub async fn touch_study(&mut self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE studies SET last_received_at = $1, state = 'receiving', completed_at = NULL WHERE id = $2",
            truncate_micros(at),
            id
        )?;
        Ok(())
    }

    pub async fn set_study_state(
        &mut self,
        id: Uuid,
        state: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE studies SET state = $1, completed_at = $2 WHERE id = $3",
            state.to_string(),
            at.map(truncate_micros),
            id
        )?;
        Ok(())
    }

    pub async fn subject_studies(&mut self, subject_id: Uuid) -> Result<Vec<StudyRow>, StoreError> {
        Ok(fetch_all!(
            self,
            StudyRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {STUDY_COLUMNS} FROM studies WHERE subject_id = $1 ORDER BY first_received_at, id"
            )),
            subject_id
        )?)
    }

    pub async fn trial_studies(&mut self, trial_id: Uuid) -> Result<Vec<StudyRow>, StoreError> {
        Ok(fetch_all!(
            self,
            StudyRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {STUDY_COLUMNS} FROM studies WHERE trial_id = $1 ORDER BY first_received_at, id"
            )),
            trial_id
        )?)
    }

    pub async fn series_by_uid(&mut self, study_id: Uuid, uid: &str) -> Result<Option<SeriesRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            SeriesRow,
            "SELECT id, study_id, series_instance_uid, modality, series_number, series_description, instance_count \
             FROM series WHERE study_id = $1 AND series_instance_uid = $2",
            study_id,
            uid.to_string()
        )?)
    }

    pub async fn insert_series(&mut self, s: &SeriesRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO series (id, study_id, series_instance_uid, modality, series_number, series_description, instance_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (study_id, series_instance_uid) DO NOTHING",
            s.id,
            s.study_id,
            s.series_instance_uid.clone(),
            s.modality.clone(),
            s.series_number,
            s.series_description.clone(),
            s.instance_count
        )?;
        Ok(())
    }

    pub async fn bump_series(&mut self, id: Uuid) -> Result<(), StoreError> {
        exec!(self, "UPDATE series SET instance_count = instance_count + 1 WHERE id = $1", id)?;
        Ok(())
    }

    pub async fn study_series(&mut self, study_id: Uuid) -> Result<Vec<SeriesRow>, StoreError> {
        Ok(fetch_all!(
            self,
            SeriesRow,
            "SELECT id, study_id, series_instance_uid, modality, series_number, series_description, instance_count \
             FROM series WHERE study_id = $1 ORDER BY series_number, series_instance_uid",
            study_id
        )?)
    }

    /// Inserts an instance unless one with the same SOP Instance UID exists; returns the existing
    /// one in that case (the caller compares hashes). `report_sha` is the SHA-256 (hex) of
    /// `i.deid_report`, under which the report is stored once for all instances that share it.
    pub async fn insert_instance(
        &mut self,
        i: &InstanceRow,
        report_sha: &str,
        report_stored: bool,
    ) -> Result<Option<InstanceRow>, StoreError> {
        // `report_stored`: the caller saw this report committed (the series' earlier instances).
        if !report_stored {
            exec!(
                self,
                "INSERT INTO deid_reports (sha256, report) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                report_sha.to_string(),
                i.deid_report.clone()
            )?;
        }
        let n = exec!(
            self,
            "INSERT INTO instances (id, trial_id, study_id, series_id, sop_instance_uid, sop_class_uid, transfer_syntax, \
             instance_number, blob_key, sha256, size_bytes, facts, deid_report, deid_report_sha, burned_in_flag, \
             source, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13, $14, $15, $16) \
             ON CONFLICT (trial_id, sop_instance_uid) DO NOTHING",
            i.id,
            i.trial_id,
            i.study_id,
            i.series_id,
            i.sop_instance_uid.clone(),
            i.sop_class_uid.clone(),
            i.transfer_syntax.clone(),
            i.instance_number,
            i.blob_key.clone(),
            i.sha256.clone(),
            i.size_bytes,
            i.facts.clone(),
            report_sha.to_string(),
            i.burned_in_flag,
            i.source.clone(),
            truncate_micros(i.received_at)
        )?;
        if n == 1 { Ok(None) } else { self.instance_by_uid(i.trial_id, &i.sop_instance_uid).await }
    }

    pub async fn instance_by_uid(&mut self, trial_id: Uuid, sop: &str) -> Result<Option<InstanceRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            InstanceRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances WHERE trial_id = $1 AND sop_instance_uid = $2"
            )),
            trial_id,
            sop.to_string()
        )?)
    }

    pub async fn series_instances(&mut self, series_id: Uuid) -> Result<Vec<InstanceRow>, StoreError> {
        Ok(fetch_all!(
            self,
            InstanceRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances WHERE series_id = $1 ORDER BY instance_number, sop_instance_uid"
            )),
            series_id
        )?)
    }

    pub async fn trial_instances(&mut self, trial_id: Uuid) -> Result<Vec<InstanceRow>, StoreError> {
        Ok(fetch_all!(
            self,
            InstanceRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances WHERE trial_id = $1 ORDER BY received_at, id"
            )),
            trial_id
        )?)
    }

    pub async fn insert_inbox(&mut self, r: &InboxRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO inbox (id, trial_id, site_id, reason, state, patient_key, claimed_subject, claimed_visit, \
             provisional_shift, anchor_date_hint, sop_instance_uid, study_instance_uid, modality, blob_key, sha256, \
             size_bytes, source, received_at, deid_report, facts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            r.id,
            r.trial_id,
            r.site_id.clone(),
            r.reason.clone(),
            r.state.clone(),
            r.patient_key.clone(),
            r.claimed_subject.clone(),
            r.claimed_visit.clone(),
            r.provisional_shift,
            r.anchor_date_hint,
            r.sop_instance_uid.clone(),
            r.study_instance_uid.clone(),
            r.modality.clone(),
            r.blob_key.clone(),
            r.sha256.clone(),
            r.size_bytes,
            r.source.clone(),
            truncate_micros(r.received_at),
            r.deid_report.clone(),
            r.facts.clone()
        )?;
        Ok(())
    }

    /// An open inbox item with the same bytes (a re-send of something already waiting).
    pub async fn open_inbox_by_sha(&mut self, trial_id: Uuid, sha: &str) -> Result<Option<InboxRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            InboxRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INBOX_COLUMNS} FROM inbox WHERE trial_id = $1 AND sha256 = $2 AND state IN ('unassigned', 'conflict')"
            )),
            trial_id,
            sha.to_string()
        )?)
    }

    pub async fn inbox(&mut self, trial_id: Uuid) -> Result<Vec<InboxRow>, StoreError> {
        Ok(fetch_all!(
            self,
            InboxRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INBOX_COLUMNS} FROM inbox WHERE trial_id = $1 ORDER BY received_at, id"
            )),
            trial_id
        )?)
    }

    pub async fn inbox_item(&mut self, id: Uuid) -> Result<Option<InboxRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            InboxRow,
            sqlx::AssertSqlSafe(format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE id = $1")),
            id
        )?)
    }

    pub async fn resolve_inbox(
        &mut self,
        id: Uuid,
        state: &str,
        by: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = exec!(
            self,
            "UPDATE inbox SET state = $1, resolved_by = $2, resolved_at = $3 WHERE id = $4 AND state IN ('unassigned', 'conflict')",
            state.to_string(),
            by,
            truncate_micros(at),
            id
        )?;
        Ok(n == 1)
    }

    /// Records that `blob_key`'s rows commit before its flush is known to have finished (see
    /// migration 0012); cleared by [`Tx::clear_unflushed`] once it has.
    pub async fn mark_unflushed(&mut self, b: &UnflushedBlob) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO unflushed_blobs (blob_key, sha256, size_bytes, marked_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (blob_key) DO NOTHING",
            b.blob_key.clone(),
            b.sha256.clone(),
            b.size_bytes,
            truncate_micros(b.marked_at)
        )?;
        Ok(())
    }

    /// Drops the marks of `keys` (flushed), 64 to a statement.
    pub async fn clear_unflushed(&mut self, keys: &[String]) -> Result<(), StoreError> {
        for chunk in keys.chunks(64) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("DELETE FROM unflushed_blobs WHERE blob_key IN ({})", params.join(", "));
            macro_rules! delete_chunk {
                ($t:expr) => {{
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for key in chunk {
                        q = q.bind(key.clone());
                    }
                    q.execute(&mut **$t).await?;
                }};
            }
            match self {
                Tx::Sqlite(t) => delete_chunk!(t),
                Tx::Pg(t) => delete_chunk!(t),
            }
        }
        Ok(())
    }

    pub async fn unflushed_blobs(&mut self) -> Result<Vec<UnflushedBlob>, StoreError> {
        Ok(fetch_all!(
            self,
            UnflushedBlob,
            "SELECT blob_key, sha256, size_bytes, marked_at FROM unflushed_blobs ORDER BY marked_at, blob_key"
        )?)
    }

    /// Removes the index rows that refer to `blob_key`, whose bytes never became durable: its
    /// instances (with their series' counts, and a series or study left empty, with the study's
    /// queued completeness job), and discards its open inbox items. Returns what was removed.
    pub async fn withdraw_blob_rows(&mut self, blob_key: &str, at: DateTime<Utc>) -> Result<Withdrawn, StoreError> {
        let instances = fetch_all!(
            self,
            InstanceRow,
            sqlx::AssertSqlSafe(format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE blob_key = $1")),
            blob_key.to_string()
        )?;
        let mut emptied_studies = Vec::new();
        for i in &instances {
            exec!(self, "DELETE FROM instances WHERE id = $1", i.id)?;
            exec!(self, "UPDATE series SET instance_count = instance_count - 1 WHERE id = $1", i.series_id)?;
            exec!(
                self,
                "DELETE FROM series WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM instances WHERE series_id = $1)",
                i.series_id
            )?;
            let gone = exec!(
                self,
                "DELETE FROM studies WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM series WHERE study_id = $1)",
                i.study_id
            )?;
            if gone == 1 {
                exec!(
                    self,
                    "DELETE FROM jobs WHERE dedup_key = $1 AND state = 'queued'",
                    format!("study-complete:{}", i.study_id)
                )?;
                emptied_studies.push(i.study_id);
            }
        }
        let inbox = fetch_all!(
            self,
            InboxRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {INBOX_COLUMNS} FROM inbox WHERE blob_key = $1 AND state IN ('unassigned', 'conflict')"
            )),
            blob_key.to_string()
        )?;
        for item in &inbox {
            self.resolve_inbox(item.id, "discarded", None, at).await?;
        }
        Ok(Withdrawn { instances, inbox, emptied_studies })
    }

    /// Calling AE titles of a trial's sites with each site's qualification status, for DIMSE.
    pub async fn ae_routing(&mut self) -> Result<Vec<AeRoute>, StoreError> {
        Ok(fetch_all!(
            self,
            AeRoute,
            "SELECT a.ae_title, a.kind, a.trial_id, a.site_id, s.status AS site_status FROM ae_titles a \
             LEFT JOIN sites s ON s.trial_id = a.trial_id AND s.site_id = a.site_id"
        )?)
    }
}

/// One AE title route: called titles name a trial, calling titles a site of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AeRoute {
    pub ae_title: String,
    pub kind: String,
    pub trial_id: Uuid,
    pub site_id: Option<String>,
    pub site_status: Option<String>,
}

/// A local blob whose rows committed while its flush was still running.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnflushedBlob {
    pub blob_key: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub marked_at: DateTime<Utc>,
}

/// The rows [`Tx::withdraw_blob_rows`] removed.
#[derive(Debug, Default)]
pub struct Withdrawn {
    pub instances: Vec<InstanceRow>,
    /// Open inbox items, now discarded.
    pub inbox: Vec<InboxRow>,
    /// Studies that had no series left and were removed.
    pub emptied_studies: Vec<Uuid>,
}

impl crate::Db {
    /// The trial's subjects enrolled under any of `codes`, read for matching an instance, on one
    /// pooled reading connection and without a transaction. Why: this runs once per instance on
    /// ingest's critical path, and a read transaction costs two more round trips (BEGIN and its
    /// rollback) to SQLite's worker thread. Data locks are not read here: the index writer reads
    /// them inside the transaction that files the instance, where none can be missed.
    pub async fn enrolled_subjects(
        &self,
        trial_id: Uuid,
        codes: &[String],
    ) -> Result<Vec<crate::trials::SubjectRow>, StoreError> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM subjects WHERE trial_id = $1 AND subject_id IN ({})",
            crate::trials::SUBJECT_COLUMNS,
            (2..codes.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        );
        macro_rules! read_on {
            ($pool:expr) => {{
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(trial_id);
                for c in codes {
                    q = q.bind(c.clone());
                }
                Ok(q.fetch_all($pool).await?)
            }};
        }
        match self {
            crate::Db::Sqlite { read, .. } => read_on!(read),
            crate::Db::Pg(pool) => read_on!(pool),
        }
    }
}
