//! Repository methods for role grants, API tokens, e-signatures and training records.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct GrantRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub trial_id: Uuid,
    pub role: String,
    pub site_id: Option<String>,
    pub unblinded: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
}

const GRANT_COLUMNS: &str =
    "id, user_id, trial_id, role, site_id, unblinded, created_at, created_by, revoked_at, revoked_by";

/// An API token; only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TokenRow {
    pub id: Uuid,
    #[serde(skip)]
    pub token_hash: String,
    pub name: String,
    pub user_id: Uuid,
    pub trial_id: Uuid,
    pub role: String,
    pub site_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str =
    "id, token_hash, name, user_id, trial_id, role, site_id, created_at, expires_at, revoked_at, last_used_at";

/// A Part 11 electronic signature: who, when, what it means, bound to a hash of the signed content.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SignatureRow {
    pub id: Uuid,
    pub record_type: String,
    pub record_id: String,
    pub trial_id: Option<Uuid>,
    pub signer_id: Uuid,
    pub signer_name: String,
    pub meaning: String,
    pub content_hash: String,
    pub signed_at: DateTime<Utc>,
}

const SIGNATURE_COLUMNS: &str =
    "id, record_type, record_id, trial_id, signer_id, signer_name, meaning, content_hash, signed_at";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TrainingRow {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub site_id: Option<String>,
    pub user_id: Uuid,
    pub charter_version: i64,
    pub topic: String,
    pub attested_at: DateTime<Utc>,
}

impl Tx {
    pub async fn insert_grant(&mut self, g: &GrantRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO grants (id, user_id, trial_id, role, site_id, unblinded, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            g.id,
            g.user_id,
            g.trial_id,
            g.role.clone(),
            g.site_id.clone(),
            g.unblinded,
            truncate_micros(g.created_at),
            g.created_by
        )?;
        Ok(())
    }

    /// Live grants of a user in a trial (all trials when `trial_id` is `None`).
    pub async fn live_grants(&mut self, user_id: Uuid, trial_id: Option<Uuid>) -> Result<Vec<GrantRow>, StoreError> {
        Ok(fetch_all!(
            self,
            GrantRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE user_id = $1 AND ($2 IS NULL OR trial_id = $2) \
                 AND revoked_at IS NULL ORDER BY created_at, id"
            )),
            user_id,
            trial_id
        )?)
    }

    /// Live grants of a trial, every user.
    pub async fn trial_grants(&mut self, trial_id: Uuid) -> Result<Vec<GrantRow>, StoreError> {
        Ok(fetch_all!(
            self,
            GrantRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE trial_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
            )),
            trial_id
        )?)
    }

    pub async fn grant(&mut self, id: Uuid) -> Result<Option<GrantRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            GrantRow,
            sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1")),
            id
        )?)
    }

    pub async fn revoke_grant(&mut self, id: Uuid, by: Option<Uuid>, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = exec!(
            self,
            "UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
            truncate_micros(at),
            by,
            id
        )?;
        Ok(n == 1)
    }

    pub async fn insert_token(&mut self, t: &TokenRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO api_tokens (id, token_hash, name, user_id, trial_id, role, site_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            t.id,
            t.token_hash.clone(),
            t.name.clone(),
            t.user_id,
            t.trial_id,
            t.role.clone(),
            t.site_id.clone(),
            truncate_micros(t.created_at),
            truncate_micros(t.expires_at)
        )?;
        Ok(())
    }

    pub async fn token_by_hash(&mut self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            TokenRow,
            sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1")),
            hash.to_string()
        )?)
    }

    pub async fn token(&mut self, id: Uuid) -> Result<Option<TokenRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            TokenRow,
            sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1")),
            id
        )?)
    }

    pub async fn user_tokens(&mut self, user_id: Uuid) -> Result<Vec<TokenRow>, StoreError> {
        Ok(fetch_all!(
            self,
            TokenRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id"
            )),
            user_id
        )?)
    }

    pub async fn revoke_token(&mut self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = exec!(
            self,
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            truncate_micros(at),
            id
        )?;
        Ok(n == 1)
    }

    pub async fn touch_token(&mut self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        exec!(self, "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2", truncate_micros(at), id)?;
        Ok(())
    }

    pub async fn insert_signature(&mut self, s: &SignatureRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO signatures (id, record_type, record_id, trial_id, signer_id, signer_name, meaning, \
             content_hash, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            s.id,
            s.record_type.clone(),
            s.record_id.clone(),
            s.trial_id,
            s.signer_id,
            s.signer_name.clone(),
            s.meaning.clone(),
            s.content_hash.clone(),
            truncate_micros(s.signed_at)
        )?;
        Ok(())
    }

    pub async fn signatures_of(&mut self, record_type: &str, record_id: &str) -> Result<Vec<SignatureRow>, StoreError> {
        Ok(fetch_all!(
            self,
            SignatureRow,
            sqlx::AssertSqlSafe(format!(
                "SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE record_type = $1 AND record_id = $2 \
                 ORDER BY signed_at, id"
            )),
            record_type.to_string(),
            record_id.to_string()
        )?)
    }

    /// Marks the session as having signed (Part 11.200: later signings in it need one component).
    pub async fn mark_session_signed(&mut self, token_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE sessions SET signed_at = $1 WHERE token_hash = $2 AND signed_at IS NULL",
            truncate_micros(at),
            token_hash.to_string()
        )?;
        Ok(())
    }

    pub async fn insert_training(&mut self, t: &TrainingRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO training_records (id, trial_id, site_id, user_id, charter_version, topic, attested_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            t.id,
            t.trial_id,
            t.site_id.clone(),
            t.user_id,
            t.charter_version,
            t.topic.clone(),
            truncate_micros(t.attested_at)
        )?;
        Ok(())
    }

    pub async fn training_records(&mut self, trial_id: Uuid) -> Result<Vec<TrainingRow>, StoreError> {
        Ok(fetch_all!(
            self,
            TrainingRow,
            "SELECT id, trial_id, site_id, user_id, charter_version, topic, attested_at FROM training_records \
             WHERE trial_id = $1 ORDER BY attested_at, id",
            trial_id
        )?)
    }
}
