//! Repository methods for trials, charter versions, sites, AE title routing and subjects.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_one, fetch_optional};

#[derive(Clone, sqlx::FromRow)]
pub struct TrialRow {
    pub id: Uuid,
    pub protocol_id: String,
    pub name: String,
    pub sponsor: String,
    pub therapeutic_area: String,
    pub current_version: i64,
    pub deid_secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for TrialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrialRow")
            .field("id", &self.id)
            .field("protocol_id", &self.protocol_id)
            .field("current_version", &self.current_version)
            .finish_non_exhaustive()
    }
}

const TRIAL_COLUMNS: &str =
    "id, protocol_id, name, sponsor, therapeutic_area, current_version, deid_secret, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CharterVersionRow {
    pub trial_id: Uuid,
    pub version: i64,
    pub label: String,
    pub charter_text: String,
    pub sha256: String,
    pub reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SiteRow {
    pub trial_id: Uuid,
    pub site_id: String,
    pub name: String,
    pub country: String,
    pub status: String,
    pub qualified_at: Option<DateTime<Utc>>,
    pub added_in_version: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubjectRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub subject_id: String,
    pub anchor_date: NaiveDate,
    pub arm: Option<String>,
    pub status: String,
    pub withdrawn_on: Option<NaiveDate>,
    pub charter_version: i64,
    pub date_shift_days: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const SUBJECT_COLUMNS: &str = "id, trial_id, site_id, subject_id, anchor_date, arm, status, withdrawn_on, \
     charter_version, date_shift_days, created_at, updated_at";

impl Tx {
    pub async fn insert_trial(&mut self, t: &TrialRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO trials (id, protocol_id, name, sponsor, therapeutic_area, current_version, deid_secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            t.id,
            t.protocol_id.clone(),
            t.name.clone(),
            t.sponsor.clone(),
            t.therapeutic_area.clone(),
            t.current_version,
            t.deid_secret.clone(),
            truncate_micros(t.created_at)
        )?;
        Ok(())
    }

    pub async fn trial(&mut self, id: Uuid) -> Result<Option<TrialRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            TrialRow,
            sqlx::AssertSqlSafe(format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = $1")),
            id
        )?)
    }

    pub async fn trial_by_protocol(&mut self, protocol_id: &str) -> Result<Option<TrialRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            TrialRow,
            sqlx::AssertSqlSafe(format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE protocol_id = $1")),
            protocol_id.to_string()
        )?)
    }

    pub async fn trials(&mut self) -> Result<Vec<TrialRow>, StoreError> {
        Ok(fetch_all!(
            self,
            TrialRow,
            sqlx::AssertSqlSafe(format!("SELECT {TRIAL_COLUMNS} FROM trials ORDER BY protocol_id"))
        )?)
    }

    pub async fn set_trial_version(
        &mut self,
        id: Uuid,
        version: i64,
        name: &str,
        sponsor: &str,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE trials SET current_version = $1, name = $2, sponsor = $3 WHERE id = $4",
            version,
            name.to_string(),
            sponsor.to_string(),
            id
        )?;
        Ok(())
    }

    pub async fn insert_charter_version(&mut self, v: &CharterVersionRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO charter_versions (trial_id, version, label, charter_text, sha256, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            v.trial_id,
            v.version,
            v.label.clone(),
            v.charter_text.clone(),
            v.sha256.clone(),
            v.reason.clone(),
            v.created_by,
            truncate_micros(v.created_at)
        )?;
        Ok(())
    }

    pub async fn charter_version(
        &mut self,
        trial_id: Uuid,
        version: i64,
    ) -> Result<Option<CharterVersionRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            CharterVersionRow,
            "SELECT trial_id, version, label, charter_text, sha256, reason, created_by, created_at \
             FROM charter_versions WHERE trial_id = $1 AND version = $2",
            trial_id,
            version
        )?)
    }

    pub async fn charter_versions(&mut self, trial_id: Uuid) -> Result<Vec<CharterVersionRow>, StoreError> {
        Ok(fetch_all!(
            self,
            CharterVersionRow,
            "SELECT trial_id, version, label, charter_text, sha256, reason, created_by, created_at \
             FROM charter_versions WHERE trial_id = $1 ORDER BY version",
            trial_id
        )?)
    }

    pub async fn upsert_site(&mut self, s: &SiteRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO sites (trial_id, site_id, name, country, status, qualified_at, added_in_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (trial_id, site_id) DO UPDATE SET name = excluded.name, country = excluded.country",
            s.trial_id,
            s.site_id.clone(),
            s.name.clone(),
            s.country.clone(),
            s.status.clone(),
            s.qualified_at.map(truncate_micros),
            s.added_in_version
        )?;
        Ok(())
    }

    pub async fn sites(&mut self, trial_id: Uuid) -> Result<Vec<SiteRow>, StoreError> {
        Ok(fetch_all!(
            self,
            SiteRow,
            "SELECT trial_id, site_id, name, country, status, qualified_at, added_in_version FROM sites \
             WHERE trial_id = $1 ORDER BY site_id",
            trial_id
        )?)
    }

    pub async fn site(&mut self, trial_id: Uuid, site_id: &str) -> Result<Option<SiteRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            SiteRow,
            "SELECT trial_id, site_id, name, country, status, qualified_at, added_in_version FROM sites \
             WHERE trial_id = $1 AND site_id = $2",
            trial_id,
            site_id.to_string()
        )?)
    }

    pub async fn set_site_status(
        &mut self,
        trial_id: Uuid,
        site_id: &str,
        status: &str,
        qualified_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE sites SET status = $1, qualified_at = $2 WHERE trial_id = $3 AND site_id = $4",
            status.to_string(),
            qualified_at.map(truncate_micros),
            trial_id,
            site_id.to_string()
        )?;
        Ok(())
    }

    /// Replaces the trial's AE title routing with `entries` of (kind, ae_title, site_id).
    pub async fn replace_ae_titles(
        &mut self,
        trial_id: Uuid,
        entries: &[(String, String, Option<String>)],
    ) -> Result<(), StoreError> {
        exec!(self, "DELETE FROM ae_titles WHERE trial_id = $1", trial_id)?;
        for (kind, ae, site) in entries {
            exec!(
                self,
                "INSERT INTO ae_titles (ae_title, kind, trial_id, site_id) VALUES ($1, $2, $3, $4)",
                ae.clone(),
                kind.clone(),
                trial_id,
                site.clone()
            )?;
        }
        Ok(())
    }

    /// Trials answering to a called AE title (normally one).
    pub async fn trials_for_called_ae(&mut self, ae: &str) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(Uuid,)> = fetch_all!(
            self,
            (Uuid,),
            "SELECT trial_id FROM ae_titles WHERE kind = 'called' AND ae_title = $1",
            ae.to_string()
        )?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn called_ae_in_use(&mut self, ae: &str, except_trial: Option<Uuid>) -> Result<bool, StoreError> {
        let (n,): (i64,) = fetch_one!(
            self,
            (i64,),
            "SELECT COUNT(*) FROM ae_titles WHERE kind = 'called' AND ae_title = $1 AND ($2 IS NULL OR trial_id <> $2)",
            ae.to_string(),
            except_trial
        )?;
        Ok(n > 0)
    }

    pub async fn insert_subject(&mut self, s: &SubjectRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO subjects (id, trial_id, site_id, subject_id, anchor_date, arm, status, withdrawn_on, \
             charter_version, date_shift_days, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            s.id,
            s.trial_id,
            s.site_id.clone(),
            s.subject_id.clone(),
            s.anchor_date,
            s.arm.clone(),
            s.status.clone(),
            s.withdrawn_on,
            s.charter_version,
            s.date_shift_days,
            truncate_micros(s.created_at),
            truncate_micros(s.updated_at)
        )?;
        Ok(())
    }

    pub async fn update_subject(&mut self, s: &SubjectRow) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE subjects SET anchor_date = $1, arm = $2, status = $3, withdrawn_on = $4, updated_at = $5 WHERE id = $6",
            s.anchor_date,
            s.arm.clone(),
            s.status.clone(),
            s.withdrawn_on,
            truncate_micros(s.updated_at),
            s.id
        )?;
        Ok(())
    }

    /// The subjects with these ids (those that exist), in no particular order.
    pub async fn subjects_by_id(&mut self, ids: &[Uuid]) -> Result<Vec<SubjectRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE id IN ({})",
            (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        );
        macro_rules! run {
            ($t:expr) => {{
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in ids {
                    q = q.bind(*id);
                }
                q.fetch_all(&mut **$t).await?
            }};
        }
        Ok(match self {
            Tx::Sqlite(t) => run!(t),
            Tx::Pg(t) => run!(t),
        })
    }

    pub async fn subject(&mut self, id: Uuid) -> Result<Option<SubjectRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            SubjectRow,
            sqlx::AssertSqlSafe(format!("SELECT {SUBJECT_COLUMNS} FROM subjects WHERE id = $1")),
            id
        )?)
    }

    pub async fn subject_by_code(
        &mut self,
        trial_id: Uuid,
        subject_id: &str,
    ) -> Result<Option<SubjectRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            SubjectRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE trial_id = $1 AND subject_id = $2"
            )),
            trial_id,
            subject_id.to_string()
        )?)
    }

    /// Subjects of a trial, optionally only those of `sites`.
    pub async fn subjects(&mut self, trial_id: Uuid) -> Result<Vec<SubjectRow>, StoreError> {
        Ok(fetch_all!(
            self,
            SubjectRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {SUBJECT_COLUMNS} FROM subjects WHERE trial_id = $1 ORDER BY subject_id"
            )),
            trial_id
        )?)
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct QualificationScanRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub sop_instance_uid: String,
    pub modality: String,
    #[serde(skip)]
    pub blob_key: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub findings: String,
    pub passed: bool,
    pub charter_version: i64,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: DateTime<Utc>,
}

impl Tx {
    pub async fn insert_qualification_scan(&mut self, q: &QualificationScanRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO qualification_scans (id, trial_id, site_id, sop_instance_uid, modality, blob_key, sha256, \
             size_bytes, findings, passed, charter_version, uploaded_by, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            q.id,
            q.trial_id,
            q.site_id.clone(),
            q.sop_instance_uid.clone(),
            q.modality.clone(),
            q.blob_key.clone(),
            q.sha256.clone(),
            q.size_bytes,
            q.findings.clone(),
            q.passed,
            q.charter_version,
            q.uploaded_by,
            truncate_micros(q.uploaded_at)
        )?;
        Ok(())
    }

    pub async fn qualification_scans(
        &mut self,
        trial_id: Uuid,
        site_id: &str,
    ) -> Result<Vec<QualificationScanRow>, StoreError> {
        Ok(fetch_all!(
            self,
            QualificationScanRow,
            "SELECT id, trial_id, site_id, sop_instance_uid, modality, blob_key, sha256, size_bytes, findings, passed, \
             charter_version, uploaded_by, uploaded_at FROM qualification_scans WHERE trial_id = $1 AND site_id = $2 \
             ORDER BY uploaded_at, id",
            trial_id,
            site_id.to_string()
        )?)
    }
}
