//! Trial-wide reads for reports and the regulatory package (no new tables).

use uuid::Uuid;

use crate::StoreError;
use crate::db::{Tx, fetch_all};
use crate::identity::SignatureRow;
use crate::qc::{EvaluationRow, ReviewRow};

impl Tx {
    /// Every automated QC evaluation of a trial, oldest first.
    pub async fn trial_evaluations(&mut self, trial_id: Uuid) -> Result<Vec<EvaluationRow>, StoreError> {
        Ok(fetch_all!(
            self,
            EvaluationRow,
            "SELECT id, trial_id, site_id, subject_id, visit_id, charter_version, verdict, complete, findings, series, \
             instance_count, evaluated_at FROM qc_evaluations WHERE trial_id = $1 ORDER BY evaluated_at, id",
            trial_id
        )?)
    }

    /// Every QC review of a trial, oldest first.
    pub async fn trial_reviews(&mut self, trial_id: Uuid) -> Result<Vec<ReviewRow>, StoreError> {
        Ok(fetch_all!(
            self,
            ReviewRow,
            "SELECT id, evaluation_id, trial_id, subject_id, visit_id, stage, outcome, reason, reviewer_id, \
             reviewer_name, decided_at FROM qc_reviews WHERE trial_id = $1 ORDER BY decided_at, id",
            trial_id
        )?)
    }

    /// Every e-signature recorded in a trial, oldest first.
    pub async fn trial_signatures(&mut self, trial_id: Uuid) -> Result<Vec<SignatureRow>, StoreError> {
        Ok(fetch_all!(
            self,
            SignatureRow,
            "SELECT id, record_type, record_id, trial_id, signer_id, signer_name, meaning, content_hash, signed_at \
             FROM signatures WHERE trial_id = $1 ORDER BY signed_at, id",
            trial_id
        )?)
    }
}
