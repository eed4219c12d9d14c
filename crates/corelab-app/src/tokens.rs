//! API tokens for scripts and site gateways: scoped to one trial role (and site), hashed at rest,
//! revocable, with an expiry. A token works only while its owner still holds that role.

use chrono::Duration;
use corelab_domain::access::{Grant, Role};
use corelab_store::identity::TokenRow;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::TokenScope;
use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

/// Tokens start with this, so leaked ones are easy to find by secret scanners.
pub const TOKEN_PREFIX: &str = "clt_";

#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub trial_id: Uuid,
    pub role: Role,
    pub site_id: Option<String>,
    pub expires_in_days: i64,
}

/// A created token: `secret` is shown once and never stored.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: TokenRow,
    pub secret: String,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl App {
    /// Creates a token for one of the caller's own roles (needs a login session).
    pub async fn create_token(&self, actor: &Actor, t: NewToken) -> Result<CreatedToken, AppError> {
        let uid = match (actor.user_id, &actor.token) {
            (Some(uid), None) => uid,
            _ => return Err(AppError::Forbidden("create tokens from a login session, not with another token".into())),
        };
        if t.name.trim().is_empty() || t.name.len() > 100 {
            return Err(AppError::invalid("name", "name the token after where it is used, e.g. \"site 101 gateway\""));
        }
        if !(1..=365).contains(&t.expires_in_days) {
            return Err(AppError::invalid("expires_in_days", "a token lives 1 to 365 days"));
        }
        let access = self.trial_access(actor, t.trial_id).await?;
        let wanted = Grant { role: t.role, site_id: t.site_id.clone(), unblinded: false };
        let holds = access.grants.iter().any(|g| g.role == wanted.role && g.site_id == wanted.site_id);
        if !holds {
            return Err(AppError::Forbidden(format!(
                "you can only create tokens for roles you hold; you do not hold {}{} in this trial",
                t.role,
                t.site_id.as_deref().map(|s| format!(" at site {s}")).unwrap_or_default()
            )));
        }
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let now = self.clock().now();
        let row = TokenRow {
            id: Uuid::now_v7(),
            token_hash: hash(&secret),
            name: t.name.trim().to_string(),
            user_id: uid,
            trial_id: t.trial_id,
            role: t.role.as_str().to_string(),
            site_id: t.site_id.clone(),
            created_at: now,
            expires_at: now + Duration::days(t.expires_in_days),
            revoked_at: None,
            last_used_at: None,
        };
        let mut tx = self.db().begin().await?;
        tx.insert_token(&row).await?;
        tx.append_audit(trial_record(
            actor,
            t.role.as_str(),
            t.trial_id,
            t.site_id.as_deref(),
            now,
            "create",
            "api_token",
            row.id,
            vec![
                change("name", Value::Null, row.name.clone()),
                change("role", Value::Null, row.role.clone()),
                change("expires_at", Value::Null, row.expires_at.to_rfc3339()),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(CreatedToken { token: row, secret })
    }

    /// The caller's tokens (never their secrets).
    pub async fn list_tokens(&self, actor: &Actor) -> Result<Vec<TokenRow>, AppError> {
        let Some(uid) = actor.user_id else { return Ok(Vec::new()) };
        let mut tx = self.db().read().await?;
        Ok(tx.user_tokens(uid).await?)
    }

    /// Revokes a token: its owner or a system administrator.
    pub async fn revoke_token(&self, actor: &Actor, id: Uuid) -> Result<(), AppError> {
        let mut tx = self.db().begin().await?;
        let t = tx.token(id).await?.ok_or_else(|| AppError::NotFound(format!("no token {id}")))?;
        let own = Some(t.user_id) == actor.user_id && actor.token.is_none();
        if !(own || actor.is_system_admin && actor.token.is_none()) {
            return Err(AppError::NotFound(format!("no token {id}")));
        }
        if t.revoked_at.is_some() {
            return Err(AppError::Conflict("this token is already revoked".into()));
        }
        let now = self.clock().now();
        tx.revoke_token(id, now).await?;
        let role = if own { t.role.clone() } else { "system_admin".to_string() };
        tx.append_audit(trial_record(
            actor,
            &role,
            t.trial_id,
            t.site_id.as_deref(),
            now,
            "revoke",
            "api_token",
            id,
            vec![change("revoked", false, true)],
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Resolves a bearer token to an actor limited to the token's trial role.
    pub async fn authenticate_token(&self, secret: &str) -> Result<Actor, AppError> {
        let invalid =
            || AppError::Unauthenticated("the API token is unknown, expired or revoked; create a new one".into());
        if !secret.starts_with(TOKEN_PREFIX) {
            return Err(invalid());
        }
        let now = self.clock().now();
        let mut tx = self.db().read().await?;
        let t = tx.token_by_hash(&hash(secret)).await?.ok_or_else(invalid)?;
        if t.revoked_at.is_some() || t.expires_at <= now {
            return Err(invalid());
        }
        let user = tx.user_by_id(t.user_id).await?.ok_or_else(invalid)?;
        if user.disabled {
            return Err(invalid());
        }
        let role = Role::parse(&t.role).ok_or_else(invalid)?;
        let still_held =
            tx.live_grants(user.id, Some(t.trial_id)).await?.iter().any(|g| g.role == t.role && g.site_id == t.site_id);
        drop(tx);
        if !still_held {
            return Err(AppError::Unauthenticated(
                "the API token's role was revoked from its owner; it no longer works".into(),
            ));
        }
        if t.last_used_at.is_none_or(|l| now - l > Duration::seconds(60)) {
            let mut tx = self.db().begin().await?;
            tx.touch_token(t.id, now).await?;
            tx.commit().await?;
        }
        let mut actor = Actor::from_user(&user, None);
        actor.is_system_admin = false;
        actor.role = t.role.clone();
        actor.must_change_password = false;
        actor.token = Some(TokenScope {
            token_id: t.id,
            trial_id: t.trial_id,
            grant: Grant { role, site_id: t.site_id, unblinded: false },
        });
        Ok(actor)
    }
}
