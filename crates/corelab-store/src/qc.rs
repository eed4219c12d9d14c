//! Repository methods for QC evaluations, reviews, visit QC states, and data queries.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EvaluationRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub subject_id: Uuid,
    pub visit_id: String,
    pub charter_version: i64,
    pub verdict: String,
    pub complete: bool,
    pub findings: String,
    pub series: String,
    pub instance_count: i64,
    pub evaluated_at: DateTime<Utc>,
}

const EVAL_COLUMNS: &str = "id, trial_id, site_id, subject_id, visit_id, charter_version, verdict, complete, findings, \
     series, instance_count, evaluated_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct VisitQcRow {
    pub subject_id: Uuid,
    pub visit_id: String,
    pub trial_id: Uuid,
    pub site_id: String,
    pub state: String,
    pub evaluation_id: Uuid,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReviewRow {
    pub id: Uuid,
    pub evaluation_id: Uuid,
    pub trial_id: Uuid,
    pub subject_id: Uuid,
    pub visit_id: String,
    pub stage: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub reviewer_id: Uuid,
    pub reviewer_name: String,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct QueryRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub subject_id: Option<Uuid>,
    pub visit_id: Option<String>,
    pub source: String,
    pub state: String,
    pub title: String,
    pub evaluation_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_by_name: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_reminder_at: Option<DateTime<Utc>>,
}

const QUERY_COLUMNS: &str = "id, trial_id, site_id, subject_id, visit_id, source, state, title, evaluation_id, \
     created_by, created_by_name, created_at, closed_at, last_reminder_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct QueryMessageRow {
    pub id: Uuid,
    pub query_id: Uuid,
    pub kind: String,
    pub author_id: Option<Uuid>,
    pub author_name: String,
    pub author_role: String,
    pub body: String,
    pub at: DateTime<Utc>,
}

impl Tx {
    pub async fn insert_evaluation(&mut self, e: &EvaluationRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO qc_evaluations (id, trial_id, site_id, subject_id, visit_id, charter_version, verdict, complete, \
             findings, series, instance_count, evaluated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            e.id,
            e.trial_id,
            e.site_id.clone(),
            e.subject_id,
            e.visit_id.clone(),
            e.charter_version,
            e.verdict.clone(),
            e.complete,
            e.findings.clone(),
            e.series.clone(),
            e.instance_count,
            truncate_micros(e.evaluated_at)
        )?;
        Ok(())
    }

    pub async fn evaluation(&mut self, id: Uuid) -> Result<Option<EvaluationRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            EvaluationRow,
            sqlx::AssertSqlSafe(format!("SELECT {EVAL_COLUMNS} FROM qc_evaluations WHERE id = $1")),
            id
        )?)
    }

    pub async fn visit_evaluations(
        &mut self,
        subject_id: Uuid,
        visit_id: &str,
    ) -> Result<Vec<EvaluationRow>, StoreError> {
        Ok(fetch_all!(
            self,
            EvaluationRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {EVAL_COLUMNS} FROM qc_evaluations WHERE subject_id = $1 AND visit_id = $2 ORDER BY evaluated_at, id"
            )),
            subject_id,
            visit_id.to_string()
        )?)
    }

    pub async fn upsert_visit_qc(&mut self, v: &VisitQcRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO visit_qc (subject_id, visit_id, trial_id, site_id, state, evaluation_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject_id, visit_id) DO UPDATE SET \
             state = excluded.state, evaluation_id = excluded.evaluation_id, updated_at = excluded.updated_at",
            v.subject_id,
            v.visit_id.clone(),
            v.trial_id,
            v.site_id.clone(),
            v.state.clone(),
            v.evaluation_id,
            truncate_micros(v.updated_at)
        )?;
        Ok(())
    }

    pub async fn visit_qc(&mut self, subject_id: Uuid, visit_id: &str) -> Result<Option<VisitQcRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            VisitQcRow,
            "SELECT subject_id, visit_id, trial_id, site_id, state, evaluation_id, updated_at FROM visit_qc \
             WHERE subject_id = $1 AND visit_id = $2",
            subject_id,
            visit_id.to_string()
        )?)
    }

    pub async fn trial_visit_qc(&mut self, trial_id: Uuid) -> Result<Vec<VisitQcRow>, StoreError> {
        Ok(fetch_all!(
            self,
            VisitQcRow,
            "SELECT subject_id, visit_id, trial_id, site_id, state, evaluation_id, updated_at FROM visit_qc \
             WHERE trial_id = $1 ORDER BY updated_at",
            trial_id
        )?)
    }

    pub async fn insert_review(&mut self, r: &ReviewRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO qc_reviews (id, evaluation_id, trial_id, subject_id, visit_id, stage, outcome, reason, \
             reviewer_id, reviewer_name, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            r.id,
            r.evaluation_id,
            r.trial_id,
            r.subject_id,
            r.visit_id.clone(),
            r.stage.clone(),
            r.outcome.clone(),
            r.reason.clone(),
            r.reviewer_id,
            r.reviewer_name.clone(),
            truncate_micros(r.decided_at)
        )?;
        Ok(())
    }

    pub async fn evaluation_reviews(&mut self, evaluation_id: Uuid) -> Result<Vec<ReviewRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReviewRow,
            "SELECT id, evaluation_id, trial_id, subject_id, visit_id, stage, outcome, reason, reviewer_id, \
             reviewer_name, decided_at FROM qc_reviews WHERE evaluation_id = $1 ORDER BY decided_at, id",
            evaluation_id
        )?)
    }

    pub async fn insert_query(&mut self, q: &QueryRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO queries (id, trial_id, site_id, subject_id, visit_id, source, state, title, evaluation_id, \
             created_by, created_by_name, created_at, closed_at, last_reminder_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            q.id,
            q.trial_id,
            q.site_id.clone(),
            q.subject_id,
            q.visit_id.clone(),
            q.source.clone(),
            q.state.clone(),
            q.title.clone(),
            q.evaluation_id,
            q.created_by,
            q.created_by_name.clone(),
            truncate_micros(q.created_at),
            q.closed_at.map(truncate_micros),
            q.last_reminder_at.map(truncate_micros)
        )?;
        Ok(())
    }

    pub async fn query(&mut self, id: Uuid) -> Result<Option<QueryRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            QueryRow,
            sqlx::AssertSqlSafe(format!("SELECT {QUERY_COLUMNS} FROM queries WHERE id = $1")),
            id
        )?)
    }

    pub async fn trial_queries(&mut self, trial_id: Uuid) -> Result<Vec<QueryRow>, StoreError> {
        Ok(fetch_all!(
            self,
            QueryRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {QUERY_COLUMNS} FROM queries WHERE trial_id = $1 ORDER BY created_at, id"
            )),
            trial_id
        )?)
    }

    /// Queries of a visit that are not closed.
    pub async fn open_visit_queries(&mut self, subject_id: Uuid, visit_id: &str) -> Result<Vec<QueryRow>, StoreError> {
        Ok(fetch_all!(
            self,
            QueryRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {QUERY_COLUMNS} FROM queries WHERE subject_id = $1 AND visit_id = $2 AND state <> 'closed' \
                 ORDER BY created_at, id"
            )),
            subject_id,
            visit_id.to_string()
        )?)
    }

    pub async fn set_query_state(
        &mut self,
        id: Uuid,
        state: &str,
        closed_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE queries SET state = $1, closed_at = $2 WHERE id = $3",
            state.to_string(),
            closed_at.map(truncate_micros),
            id
        )?;
        Ok(())
    }

    pub async fn set_query_reminded(&mut self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        exec!(self, "UPDATE queries SET last_reminder_at = $1 WHERE id = $2", truncate_micros(at), id)?;
        Ok(())
    }

    pub async fn insert_query_message(&mut self, m: &QueryMessageRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO query_messages (id, query_id, kind, author_id, author_name, author_role, body, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            m.id,
            m.query_id,
            m.kind.clone(),
            m.author_id,
            m.author_name.clone(),
            m.author_role.clone(),
            m.body.clone(),
            truncate_micros(m.at)
        )?;
        Ok(())
    }

    pub async fn query_messages(&mut self, query_id: Uuid) -> Result<Vec<QueryMessageRow>, StoreError> {
        Ok(fetch_all!(
            self,
            QueryMessageRow,
            "SELECT id, query_id, kind, author_id, author_name, author_role, body, at FROM query_messages \
             WHERE query_id = $1 ORDER BY at, id",
            query_id
        )?)
    }
}
