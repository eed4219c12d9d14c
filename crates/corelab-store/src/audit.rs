//! The audit trail (21 CFR 11.10(e)): append-only rows, each hashed and chained to the one before.
//!
//! Appending takes a lock that serialises audit writers across processes (PostgreSQL advisory
//! transaction lock; SQLite has one writer anyway), so the chain stays linear. The lock is held
//! until the surrounding transaction ends: the record and the change it describes commit together.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;
use crate::db::{Db, Tx, fetch_all, fetch_one, fetch_optional};

/// The hash a chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const AUDIT_LOCK_KEY: i64 = 0x636f_7265_6c61_6201; // "corelab\x01"

/// What a use case records.
#[derive(Debug, Clone)]
pub struct NewAuditRecord {
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub actor_role: String,
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub trial_id: Option<Uuid>,
    pub site_id: Option<String>,
    /// JSON array of `{"field", "old", "new"}` objects.
    pub changes: serde_json::Value,
    pub reason: Option<String>,
}

/// A record with its id, time and place in the chain fixed, ready to insert.
struct Sealed {
    id: Uuid,
    at: DateTime<Utc>,
    changes: String,
    prev_hash: String,
    hash: String,
    rec: NewAuditRecord,
}

impl Sealed {
    fn new(prev_hash: &str, rec: NewAuditRecord) -> Sealed {
        let id = Uuid::now_v7();
        let at = truncate_micros(rec.at);
        let changes = rec.changes.to_string();
        let hash = record_hash(
            prev_hash,
            id,
            at,
            rec.actor_id,
            &rec.actor_name,
            &rec.actor_role,
            &rec.action,
            &rec.object_type,
            &rec.object_id,
            rec.trial_id,
            rec.site_id.as_deref(),
            &changes,
            rec.reason.as_deref(),
        );
        Sealed { id, at, changes, prev_hash: prev_hash.to_string(), hash, rec }
    }
}

/// A stored audit record.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub actor_role: String,
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub trial_id: Option<Uuid>,
    pub site_id: Option<String>,
    pub changes: String,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// Recomputes this record's hash from its content and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        record_hash(
            &self.prev_hash,
            self.id,
            self.at,
            self.actor_id,
            &self.actor_name,
            &self.actor_role,
            &self.action,
            &self.object_type,
            &self.object_id,
            self.trial_id,
            self.site_id.as_deref(),
            &self.changes,
            self.reason.as_deref(),
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn record_hash(
    prev_hash: &str,
    id: Uuid,
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_name: &str,
    actor_role: &str,
    action: &str,
    object_type: &str,
    object_id: &str,
    trial_id: Option<Uuid>,
    site_id: Option<&str>,
    changes: &str,
    reason: Option<&str>,
) -> String {
    // A JSON array is an unambiguous encoding of the fields, in a fixed order.
    let canonical = serde_json::json!([
        prev_hash,
        id.to_string(),
        at.to_rfc3339_opts(SecondsFormat::Micros, true),
        actor_id.map(|u| u.to_string()),
        actor_name,
        actor_role,
        action,
        object_type,
        object_id,
        trial_id.map(|u| u.to_string()),
        site_id,
        changes,
        reason,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Filters for browsing and exporting the trail.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub trial_id: Option<Uuid>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub actor_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// The outcome of `corelab audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records_checked: u64,
    pub first_bad: Option<BadRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub seq: i64,
    pub id: Uuid,
    pub problem: String,
}

const AUDIT_COLUMNS: &str = "seq, id, at, actor_id, actor_name, actor_role, action, object_type, object_id, \
     trial_id, site_id, changes, reason, prev_hash, hash";

impl Tx {
    /// Appends one record to the trail, chained to the last one.
    pub async fn append_audit(&mut self, rec: NewAuditRecord) -> Result<AuditRecord, StoreError> {
        let prev_hash = self.lock_audit_head().await?;
        let row = Sealed::new(&prev_hash, rec);
        let rec = fetch_one!(
            self,
            AuditRecord,
            "INSERT INTO audit_log (id, at, actor_id, actor_name, actor_role, action, object_type, object_id, \
             trial_id, site_id, changes, reason, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             RETURNING seq, id, at, actor_id, actor_name, actor_role, action, object_type, object_id, \
             trial_id, site_id, changes, reason, prev_hash, hash",
            row.id,
            row.at,
            row.rec.actor_id,
            row.rec.actor_name,
            row.rec.actor_role,
            row.rec.action,
            row.rec.object_type,
            row.rec.object_id,
            row.rec.trial_id,
            row.rec.site_id,
            row.changes,
            row.rec.reason,
            row.prev_hash,
            row.hash,
        )?;
        Ok(rec)
    }

    /// Appends records in this order, chained, with one look-up of the chain's head and one
    /// statement (a group commit's records).
    pub async fn append_audits(&mut self, recs: Vec<NewAuditRecord>) -> Result<(), StoreError> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut prev_hash = self.lock_audit_head().await?;
        let mut rows = Vec::with_capacity(recs.len());
        for rec in recs {
            let row = Sealed::new(&prev_hash, rec);
            prev_hash.clone_from(&row.hash);
            rows.push(row);
        }
        let mut sql = String::from(
            "INSERT INTO audit_log (id, at, actor_id, actor_name, actor_role, action, object_type, object_id, \
             trial_id, site_id, changes, reason, prev_hash, hash) VALUES ",
        );
        for i in 0..rows.len() {
            let b = i * 14;
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for k in 1..=14 {
                sql.push_str(&format!("{}${}", if k == 1 { "" } else { ", " }, b + k));
            }
            sql.push(')');
        }
        // Rows take their seq in VALUES order, which is the chain's order.
        macro_rules! bind_all {
            ($t:expr) => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in rows {
                    q = q
                        .bind(r.id)
                        .bind(r.at)
                        .bind(r.rec.actor_id)
                        .bind(r.rec.actor_name)
                        .bind(r.rec.actor_role)
                        .bind(r.rec.action)
                        .bind(r.rec.object_type)
                        .bind(r.rec.object_id)
                        .bind(r.rec.trial_id)
                        .bind(r.rec.site_id)
                        .bind(r.changes)
                        .bind(r.rec.reason)
                        .bind(r.prev_hash)
                        .bind(r.hash);
                }
                q.execute(&mut **$t).await?;
            }};
        }
        match self {
            Tx::Sqlite(t) => bind_all!(t),
            Tx::Pg(t) => bind_all!(t),
        }
        Ok(())
    }

    /// Takes the audit lock (held to the end of the transaction): every audited change takes it
    /// before it commits, so after this no audited change can commit before this transaction
    /// does. On SQLite a write transaction (`BEGIN IMMEDIATE`) is alone already.
    pub async fn hold_audit_lock(&mut self) -> Result<(), StoreError> {
        if let Tx::Pg(t) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK_KEY).execute(&mut **t).await?;
        }
        Ok(())
    }

    /// Takes the audit lock and returns the hash of the chain's last record.
    async fn lock_audit_head(&mut self) -> Result<String, StoreError> {
        self.hold_audit_lock().await?;
        let last: Option<(String,)> =
            fetch_optional!(self, (String,), "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")?;
        Ok(last.map(|(h,)| h).unwrap_or_else(|| GENESIS_HASH.to_string()))
    }

    /// Lists records matching `filter`, oldest first.
    pub async fn list_audit(&mut self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log \
             WHERE ($1 IS NULL OR trial_id = $1) AND ($2 IS NULL OR object_type = $2) AND ($3 IS NULL OR object_id = $3) \
             AND ($4 IS NULL OR actor_id = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             AND seq > $7 ORDER BY seq LIMIT $8"
        );
        let limit = if f.limit <= 0 { 1000 } else { f.limit };
        Ok(fetch_all!(
            self,
            AuditRecord,
            sqlx::AssertSqlSafe(sql),
            f.trial_id,
            f.object_type.clone(),
            f.object_id.clone(),
            f.actor_id,
            f.from,
            f.to,
            f.after_seq.unwrap_or(0),
            limit
        )?)
    }

    /// The sequence number of the newest record (0 for an empty trail).
    pub async fn last_audit_seq(&mut self) -> Result<i64, StoreError> {
        let (n,): (Option<i64>,) = fetch_one!(self, (Option<i64>,), "SELECT MAX(seq) FROM audit_log")?;
        Ok(n.unwrap_or(0))
    }

    /// Count of records, for tests and status pages.
    pub async fn count_audit(&mut self) -> Result<i64, StoreError> {
        let (n,): (i64,) = fetch_one!(self, (i64,), "SELECT COUNT(*) FROM audit_log")?;
        Ok(n)
    }
}

impl Db {
    /// Walks the whole chain in order and names the first record whose hash or link is wrong.
    pub async fn verify_audit_chain(&self) -> Result<ChainReport, StoreError> {
        let mut prev = GENESIS_HASH.to_string();
        let mut after = 0i64;
        let mut checked = 0u64;
        loop {
            let mut tx = self.read().await?;
            let page =
                tx.list_audit(&AuditFilter { after_seq: Some(after), limit: 2000, ..Default::default() }).await?;
            drop(tx);
            if page.is_empty() {
                return Ok(ChainReport { records_checked: checked, first_bad: None });
            }
            for r in page {
                checked += 1;
                after = r.seq;
                let problem = if r.prev_hash != prev {
                    Some("its link to the previous record is broken (a record before it was removed or altered)")
                } else if r.compute_hash() != r.hash {
                    Some("its content does not match its hash (the record was altered)")
                } else {
                    None
                };
                if let Some(p) = problem {
                    return Ok(ChainReport {
                        records_checked: checked,
                        first_bad: Some(BadRecord { seq: r.seq, id: r.id, problem: p.to_string() }),
                    });
                }
                prev = r.hash;
            }
        }
    }
}

/// Both databases keep microseconds; truncating first makes a stored time read back identical,
/// which the hash depends on.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}
