//! Repository methods for accounts, sessions and documents.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_one, fetch_optional};

/// An account. `password_hash` is an argon2id PHC string; nothing else about the password is kept.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_system_admin: bool,
    pub disabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub must_change_password: bool,
    pub password_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_system_admin", &self.is_system_admin)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

const USER_COLUMNS: &str = "id, username, display_name, email, password_hash, is_system_admin, disabled, \
     failed_logins, locked_until, must_change_password, password_changed_at, created_at";

/// A login session; the cookie holds a random token, the table only its SHA-256.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub signed_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A stored document (charter PDF, training material, qualification evidence).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DocumentRow {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    pub uploaded_by: Uuid,
    pub created_at: DateTime<Utc>,
}

impl Tx {
    pub async fn insert_user(&mut self, u: &UserRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO users (id, username, display_name, email, password_hash, is_system_admin, disabled, \
             failed_logins, locked_until, must_change_password, password_changed_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            u.id,
            u.username.clone(),
            u.display_name.clone(),
            u.email.clone(),
            u.password_hash.clone(),
            u.is_system_admin,
            u.disabled,
            u.failed_logins,
            u.locked_until.map(truncate_micros),
            u.must_change_password,
            truncate_micros(u.password_changed_at),
            truncate_micros(u.created_at),
        )?;
        Ok(())
    }

    pub async fn user_by_username(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            UserRow,
            sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1")),
            username.to_string()
        )?)
    }

    pub async fn user_by_id(&mut self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            UserRow,
            sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")),
            id
        )?)
    }

    pub async fn list_users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        Ok(fetch_all!(
            self,
            UserRow,
            sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"))
        )?)
    }

    pub async fn count_users(&mut self) -> Result<i64, StoreError> {
        let (n,): (i64,) = fetch_one!(self, (i64,), "SELECT COUNT(*) FROM users")?;
        Ok(n)
    }

    /// Records the outcome of a login attempt.
    pub async fn set_login_state(
        &mut self,
        id: Uuid,
        failed_logins: i64,
        locked_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3",
            failed_logins,
            locked_until.map(truncate_micros),
            id
        )?;
        Ok(())
    }

    pub async fn set_password(
        &mut self,
        id: Uuid,
        password_hash: &str,
        must_change: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE users SET password_hash = $1, must_change_password = $2, password_changed_at = $3, \
             failed_logins = 0, locked_until = NULL WHERE id = $4",
            password_hash.to_string(),
            must_change,
            truncate_micros(now),
            id
        )?;
        Ok(())
    }

    pub async fn set_user_disabled(&mut self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        exec!(self, "UPDATE users SET disabled = $1 WHERE id = $2", disabled, id)?;
        Ok(())
    }

    pub async fn insert_session(&mut self, s: &SessionRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, signed_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            s.token_hash.clone(),
            s.user_id,
            truncate_micros(s.created_at),
            truncate_micros(s.last_seen_at),
            s.signed_at.map(truncate_micros),
            s.ended_at.map(truncate_micros),
        )?;
        Ok(())
    }

    pub async fn session(&mut self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            SessionRow,
            "SELECT token_hash, user_id, created_at, last_seen_at, signed_at, ended_at FROM sessions WHERE token_hash = $1",
            token_hash.to_string()
        )?)
    }

    pub async fn touch_session(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
            truncate_micros(now),
            token_hash.to_string()
        )?;
        Ok(())
    }

    pub async fn end_session(&mut self, token_hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let rows = exec!(
            self,
            "UPDATE sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
            truncate_micros(now),
            token_hash.to_string()
        )?;
        Ok(rows == 1)
    }

    /// Ends every open session of a user (disable, password reset).
    pub async fn end_user_sessions(&mut self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(exec!(
            self,
            "UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL",
            truncate_micros(now),
            user_id
        )?)
    }

    pub async fn insert_document(&mut self, d: &DocumentRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO documents (id, name, content_type, size_bytes, sha256, blob_key, uploaded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            d.id,
            d.name.clone(),
            d.content_type.clone(),
            d.size_bytes,
            d.sha256.clone(),
            d.blob_key.clone(),
            d.uploaded_by,
            truncate_micros(d.created_at),
        )?;
        Ok(())
    }

    pub async fn document(&mut self, id: Uuid) -> Result<Option<DocumentRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            DocumentRow,
            "SELECT id, name, content_type, size_bytes, sha256, blob_key, uploaded_by, created_at FROM documents WHERE id = $1",
            id
        )?)
    }

    pub async fn list_documents(&mut self) -> Result<Vec<DocumentRow>, StoreError> {
        Ok(fetch_all!(
            self,
            DocumentRow,
            "SELECT id, name, content_type, size_bytes, sha256, blob_key, uploaded_by, created_at FROM documents \
             ORDER BY created_at, id"
        )?)
    }
}
