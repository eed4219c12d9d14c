//! Repository methods for blinded reads: reader profiles, read cases, read tasks, read versions,
//! adjudications and accepted results.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_one, fetch_optional};

/// A reader's qualifications in one trial. `therapeutic_areas` and `criteria` are JSON arrays of
/// charter words.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReaderProfileRow {
    pub trial_id: Uuid,
    pub user_id: Uuid,
    pub therapeutic_areas: String,
    pub criteria: String,
    pub training_valid_until: Option<NaiveDate>,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// One subject's reading: its random reader case ID and the readers fixed for it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReadCaseRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub subject_id: Uuid,
    pub case_code: String,
    pub reader_1: Option<Uuid>,
    pub reader_2: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const CASE_COLUMNS: &str = "id, trial_id, subject_id, case_code, reader_1, reader_2, created_at";

/// One reader's task for one timepoint of a case.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReadTaskRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub case_id: Uuid,
    pub visit_id: String,
    /// 1 or 2: reader 1 or reader 2 of the case.
    pub slot: i64,
    pub reader_id: Option<Uuid>,
    pub baseline: bool,
    /// Scan day from the schedule anchor.
    pub day: i64,
    pub state: String,
    pub note: Option<String>,
    pub qc_passed_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
}

const TASK_COLUMNS: &str = "id, trial_id, case_id, visit_id, slot, reader_id, baseline, day, state, note, \
     qc_passed_at, assigned_at, submitted_at";

/// A draft or an e-signed, locked version of a read.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReadVersionRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub version: i64,
    pub state: String,
    pub assessment: String,
    pub result: Option<String>,
    pub reason: Option<String>,
    pub author_id: Uuid,
    pub saved_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
}

const VERSION_COLUMNS: &str =
    "id, task_id, version, state, assessment, result, reason, author_id, saved_at, submitted_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AdjudicationRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub case_id: Uuid,
    pub state: String,
    pub adjudicator_id: Option<Uuid>,
    pub note: Option<String>,
    pub compared: String,
    pub disagreements: String,
    pub choice: String,
    pub decision: Option<String>,
    pub rationale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

const ADJUDICATION_COLUMNS: &str = "id, trial_id, case_id, state, adjudicator_id, note, compared, disagreements, \
     choice, decision, rationale, created_at, decided_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AcceptedResultRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub case_id: Uuid,
    pub seq: i64,
    pub basis: String,
    pub adjudication_id: Option<Uuid>,
    pub result: String,
    pub recorded_at: DateTime<Utc>,
}

const ACCEPTED_COLUMNS: &str = "id, trial_id, case_id, seq, basis, adjudication_id, result, recorded_at";

impl Tx {
    pub async fn upsert_reader_profile(&mut self, p: &ReaderProfileRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO reader_profiles (trial_id, user_id, therapeutic_areas, criteria, training_valid_until, \
             updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (trial_id, user_id) DO UPDATE SET \
             therapeutic_areas = excluded.therapeutic_areas, criteria = excluded.criteria, \
             training_valid_until = excluded.training_valid_until, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
            p.trial_id,
            p.user_id,
            p.therapeutic_areas.clone(),
            p.criteria.clone(),
            p.training_valid_until,
            p.updated_by,
            truncate_micros(p.updated_at)
        )?;
        Ok(())
    }

    pub async fn reader_profile(
        &mut self,
        trial_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<ReaderProfileRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            ReaderProfileRow,
            "SELECT trial_id, user_id, therapeutic_areas, criteria, training_valid_until, updated_by, updated_at \
             FROM reader_profiles WHERE trial_id = $1 AND user_id = $2",
            trial_id,
            user_id
        )?)
    }

    pub async fn reader_profiles(&mut self, trial_id: Uuid) -> Result<Vec<ReaderProfileRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReaderProfileRow,
            "SELECT trial_id, user_id, therapeutic_areas, criteria, training_valid_until, updated_by, updated_at \
             FROM reader_profiles WHERE trial_id = $1 ORDER BY user_id",
            trial_id
        )?)
    }

    pub async fn insert_read_case(&mut self, c: &ReadCaseRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO read_cases (id, trial_id, subject_id, case_code, reader_1, reader_2, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            c.id,
            c.trial_id,
            c.subject_id,
            c.case_code.clone(),
            c.reader_1,
            c.reader_2,
            truncate_micros(c.created_at)
        )?;
        Ok(())
    }

    pub async fn set_case_readers(
        &mut self,
        id: Uuid,
        reader_1: Option<Uuid>,
        reader_2: Option<Uuid>,
    ) -> Result<(), StoreError> {
        exec!(self, "UPDATE read_cases SET reader_1 = $1, reader_2 = $2 WHERE id = $3", reader_1, reader_2, id)?;
        Ok(())
    }

    pub async fn read_case(&mut self, id: Uuid) -> Result<Option<ReadCaseRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            ReadCaseRow,
            sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM read_cases WHERE id = $1")),
            id
        )?)
    }

    pub async fn read_case_of_subject(&mut self, subject_id: Uuid) -> Result<Option<ReadCaseRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            ReadCaseRow,
            sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM read_cases WHERE subject_id = $1")),
            subject_id
        )?)
    }

    pub async fn case_code_taken(&mut self, trial_id: Uuid, code: &str) -> Result<bool, StoreError> {
        let (n,): (i64,) = fetch_one!(
            self,
            (i64,),
            "SELECT COUNT(*) FROM read_cases WHERE trial_id = $1 AND case_code = $2",
            trial_id,
            code.to_string()
        )?;
        Ok(n > 0)
    }

    pub async fn trial_read_cases(&mut self, trial_id: Uuid) -> Result<Vec<ReadCaseRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReadCaseRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {CASE_COLUMNS} FROM read_cases WHERE trial_id = $1 ORDER BY case_code"
            )),
            trial_id
        )?)
    }

    pub async fn insert_read_task(&mut self, t: &ReadTaskRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO read_tasks (id, trial_id, case_id, visit_id, slot, reader_id, baseline, day, state, note, \
             qc_passed_at, assigned_at, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            t.id,
            t.trial_id,
            t.case_id,
            t.visit_id.clone(),
            t.slot,
            t.reader_id,
            t.baseline,
            t.day,
            t.state.clone(),
            t.note.clone(),
            truncate_micros(t.qc_passed_at),
            t.assigned_at.map(truncate_micros),
            t.submitted_at.map(truncate_micros)
        )?;
        Ok(())
    }

    /// Stores a task's reader, state and note.
    pub async fn update_read_task(&mut self, t: &ReadTaskRow) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE read_tasks SET reader_id = $1, state = $2, note = $3, assigned_at = $4, submitted_at = $5 \
             WHERE id = $6",
            t.reader_id,
            t.state.clone(),
            t.note.clone(),
            t.assigned_at.map(truncate_micros),
            t.submitted_at.map(truncate_micros),
            t.id
        )?;
        Ok(())
    }

    pub async fn read_task(&mut self, id: Uuid) -> Result<Option<ReadTaskRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            ReadTaskRow,
            sqlx::AssertSqlSafe(format!("SELECT {TASK_COLUMNS} FROM read_tasks WHERE id = $1")),
            id
        )?)
    }

    /// Tasks of a case, in reading order (baseline first, then by scan day).
    pub async fn case_read_tasks(&mut self, case_id: Uuid) -> Result<Vec<ReadTaskRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReadTaskRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM read_tasks WHERE case_id = $1 ORDER BY baseline DESC, day, visit_id, slot"
            )),
            case_id
        )?)
    }

    pub async fn trial_read_tasks(&mut self, trial_id: Uuid) -> Result<Vec<ReadTaskRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReadTaskRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM read_tasks WHERE trial_id = $1 ORDER BY case_id, baseline DESC, day, visit_id, slot"
            )),
            trial_id
        )?)
    }

    /// A reader's tasks in one trial.
    pub async fn reader_tasks(&mut self, trial_id: Uuid, reader_id: Uuid) -> Result<Vec<ReadTaskRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReadTaskRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM read_tasks WHERE trial_id = $1 AND reader_id = $2 \
                 ORDER BY case_id, baseline DESC, day, visit_id"
            )),
            trial_id,
            reader_id
        )?)
    }

    /// Open (assigned, not submitted) tasks per reader, over every trial: the readers' workload.
    pub async fn open_read_task_counts(&mut self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(fetch_all!(
            self,
            (Uuid, i64),
            "SELECT reader_id, COUNT(*) FROM read_tasks WHERE state = 'open' AND reader_id IS NOT NULL \
             GROUP BY reader_id"
        )?)
    }

    /// Adjudications waiting for a decision, per adjudicator, over every trial.
    pub async fn open_adjudication_counts(&mut self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(fetch_all!(
            self,
            (Uuid, i64),
            "SELECT adjudicator_id, COUNT(*) FROM adjudications WHERE state = 'open' AND adjudicator_id IS NOT NULL \
             GROUP BY adjudicator_id"
        )?)
    }

    pub async fn insert_read_version(&mut self, v: &ReadVersionRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO read_versions (id, task_id, version, state, assessment, result, reason, author_id, saved_at, \
             submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            v.id,
            v.task_id,
            v.version,
            v.state.clone(),
            v.assessment.clone(),
            v.result.clone(),
            v.reason.clone(),
            v.author_id,
            truncate_micros(v.saved_at),
            v.submitted_at.map(truncate_micros)
        )?;
        Ok(())
    }

    /// Rewrites a draft (the database refuses to change a submitted version).
    pub async fn update_read_version(&mut self, v: &ReadVersionRow) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE read_versions SET state = $1, assessment = $2, result = $3, saved_at = $4, submitted_at = $5 \
             WHERE id = $6",
            v.state.clone(),
            v.assessment.clone(),
            v.result.clone(),
            truncate_micros(v.saved_at),
            v.submitted_at.map(truncate_micros),
            v.id
        )?;
        Ok(())
    }

    /// Every version of a task, oldest first.
    pub async fn read_versions(&mut self, task_id: Uuid) -> Result<Vec<ReadVersionRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReadVersionRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM read_versions WHERE task_id = $1 ORDER BY version"
            )),
            task_id
        )?)
    }

    pub async fn read_version(&mut self, id: Uuid) -> Result<Option<ReadVersionRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            ReadVersionRow,
            sqlx::AssertSqlSafe(format!("SELECT {VERSION_COLUMNS} FROM read_versions WHERE id = $1")),
            id
        )?)
    }

    pub async fn insert_adjudication(&mut self, a: &AdjudicationRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO adjudications (id, trial_id, case_id, state, adjudicator_id, note, compared, disagreements, \
             choice, decision, rationale, created_at, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            a.id,
            a.trial_id,
            a.case_id,
            a.state.clone(),
            a.adjudicator_id,
            a.note.clone(),
            a.compared.clone(),
            a.disagreements.clone(),
            a.choice.clone(),
            a.decision.clone(),
            a.rationale.clone(),
            truncate_micros(a.created_at),
            a.decided_at.map(truncate_micros)
        )?;
        Ok(())
    }

    /// Stores an adjudication's state, adjudicator, note and decision.
    pub async fn update_adjudication(&mut self, a: &AdjudicationRow) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE adjudications SET state = $1, adjudicator_id = $2, note = $3, decision = $4, rationale = $5, \
             decided_at = $6 WHERE id = $7",
            a.state.clone(),
            a.adjudicator_id,
            a.note.clone(),
            a.decision.clone(),
            a.rationale.clone(),
            a.decided_at.map(truncate_micros),
            a.id
        )?;
        Ok(())
    }

    pub async fn adjudication(&mut self, id: Uuid) -> Result<Option<AdjudicationRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            AdjudicationRow,
            sqlx::AssertSqlSafe(format!("SELECT {ADJUDICATION_COLUMNS} FROM adjudications WHERE id = $1")),
            id
        )?)
    }

    /// A case's adjudications, oldest first.
    pub async fn case_adjudications(&mut self, case_id: Uuid) -> Result<Vec<AdjudicationRow>, StoreError> {
        Ok(fetch_all!(
            self,
            AdjudicationRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {ADJUDICATION_COLUMNS} FROM adjudications WHERE case_id = $1 ORDER BY created_at, id"
            )),
            case_id
        )?)
    }

    pub async fn trial_adjudications(&mut self, trial_id: Uuid) -> Result<Vec<AdjudicationRow>, StoreError> {
        Ok(fetch_all!(
            self,
            AdjudicationRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {ADJUDICATION_COLUMNS} FROM adjudications WHERE trial_id = $1 ORDER BY created_at, id"
            )),
            trial_id
        )?)
    }

    pub async fn insert_accepted_result(&mut self, r: &AcceptedResultRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO accepted_results (id, trial_id, case_id, seq, basis, adjudication_id, result, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            r.id,
            r.trial_id,
            r.case_id,
            r.seq,
            r.basis.clone(),
            r.adjudication_id,
            r.result.clone(),
            truncate_micros(r.recorded_at)
        )?;
        Ok(())
    }

    /// Every accepted result of a case, oldest first (the last is in force).
    pub async fn accepted_results(&mut self, case_id: Uuid) -> Result<Vec<AcceptedResultRow>, StoreError> {
        Ok(fetch_all!(
            self,
            AcceptedResultRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {ACCEPTED_COLUMNS} FROM accepted_results WHERE case_id = $1 ORDER BY seq"
            )),
            case_id
        )?)
    }
}
