//! Account administration: create, list, disable, reset passwords. System administrators only
//! (trial managers may look accounts up to grant roles).

use corelab_store::records::UserRow;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{change, record};
use crate::auth::{check_password_rules, generate_password, hash_password};
use crate::{Actor, App, AppError};

/// What other users may see of an account.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub is_system_admin: bool,
    pub disabled: bool,
    pub locked: bool,
}

impl UserView {
    fn of(u: &UserRow, now: chrono::DateTime<chrono::Utc>) -> UserView {
        UserView {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            is_system_admin: u.is_system_admin,
            disabled: u.disabled,
            locked: u.locked_until.is_some_and(|t| t > now),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub is_system_admin: bool,
    /// `None`: generate one, return it once, and require a change at first login.
    pub password: Option<String>,
}

/// A created account and, when it was generated, its one-time password.
#[derive(Debug)]
pub struct CreatedUser {
    pub user: UserView,
    pub generated_password: Option<String>,
}

fn validate_username(u: &str) -> Result<(), AppError> {
    let ok = (2..=64).contains(&u.len())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        && u.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "username",
            "a username has 2 to 64 characters: letters, digits and . _ - @, starting with a letter or digit",
        ))
    }
}

impl App {
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<CreatedUser, AppError> {
        self.require_admin(actor, "create accounts", "user", &new.username).await?;
        validate_username(&new.username)?;
        if new.display_name.trim().is_empty() {
            return Err(AppError::invalid(
                "display_name",
                "give the person's printed name, shown on their e-signatures",
            ));
        }
        let (password, generated) = match new.password {
            Some(p) => {
                check_password_rules(&p, &new.username, &self.settings().auth)?;
                (p, None)
            }
            None => {
                let p = generate_password();
                (p.clone(), Some(p))
            }
        };
        let now = self.clock().now();
        let row = UserRow {
            id: Uuid::now_v7(),
            username: new.username.clone(),
            display_name: new.display_name.trim().to_string(),
            email: new.email.clone(),
            password_hash: hash_password(&password).await?,
            is_system_admin: new.is_system_admin,
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            must_change_password: generated.is_some(),
            password_changed_at: now,
            created_at: now,
        };
        let mut tx = self.db().begin().await?;
        match tx.insert_user(&row).await {
            Err(e) if e.is_unique_violation() => {
                return Err(AppError::Conflict(format!("the username {} is taken; choose another", new.username)));
            }
            other => other?,
        }
        tx.append_audit(record(
            actor,
            now,
            "create",
            "user",
            row.id,
            vec![
                change("username", Value::Null, row.username.clone()),
                change("display_name", Value::Null, row.display_name.clone()),
                change("email", Value::Null, row.email.clone()),
                change("is_system_admin", Value::Null, row.is_system_admin),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(CreatedUser { user: UserView::of(&row, now), generated_password: generated })
    }

    /// Every account. System administrators see all fields; trial managers need this to grant
    /// roles and see the same list.
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>, AppError> {
        let allowed = actor.is_system_admin && actor.token.is_none() || self.is_trial_manager_anywhere(actor).await?;
        if !allowed {
            return Err(self
                .deny(actor, None, "list accounts", "user", "*", &[corelab_domain::access::Role::TrialManager])
                .await);
        }
        let now = self.clock().now();
        let mut tx = self.db().read().await?;
        Ok(tx.list_users().await?.iter().map(|u| UserView::of(u, now)).collect())
    }

    async fn is_trial_manager_anywhere(&self, actor: &Actor) -> Result<bool, AppError> {
        let (Some(uid), None) = (actor.user_id, &actor.token) else { return Ok(false) };
        let mut tx = self.db().read().await?;
        Ok(tx.live_grants(uid, None).await?.iter().any(|g| g.role == "trial_manager"))
    }

    async fn user_for_admin(&self, actor: &Actor, username: &str, action: &str) -> Result<UserRow, AppError> {
        self.require_admin(actor, action, "user", username).await?;
        let mut tx = self.db().read().await?;
        tx.user_by_username(username).await?.ok_or_else(|| AppError::NotFound(format!("no account {username}")))
    }

    /// Disables (or re-enables) an account and ends its sessions. A reason is required.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        username: &str,
        disabled: bool,
        reason: &str,
    ) -> Result<(), AppError> {
        let user =
            self.user_for_admin(actor, username, if disabled { "disable accounts" } else { "enable accounts" }).await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the account is disabled or enabled; it goes to the audit trail",
            ));
        }
        if Some(user.id) == actor.user_id && disabled {
            return Err(AppError::Conflict("you cannot disable your own account; ask another administrator".into()));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.set_user_disabled(user.id, disabled).await?;
        if disabled {
            tx.end_user_sessions(user.id, now).await?;
        }
        let mut rec = record(
            actor,
            now,
            if disabled { "disable" } else { "enable" },
            "user",
            user.id,
            vec![change("disabled", user.disabled, disabled)],
        );
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a new generated password the user must change at next login; ends their sessions and
    /// clears a lock-out. Returns the password to hand over.
    pub async fn reset_password(&self, actor: &Actor, username: &str, reason: &str) -> Result<String, AppError> {
        let user = self.user_for_admin(actor, username, "reset passwords").await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the password is reset (e.g. \"forgotten, identity checked by phone\")",
            ));
        }
        let pw = generate_password();
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.set_password(user.id, &hash_password(&pw).await?, true, now).await?;
        tx.end_user_sessions(user.id, now).await?;
        let mut rec = record(actor, now, "reset_password", "user", user.id, vec![change("password", "***", "***")]);
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok(pw)
    }
}
