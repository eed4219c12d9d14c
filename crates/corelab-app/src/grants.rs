//! Granting and revoking trial roles.

use corelab_domain::access::{Grant, Role, check_new_grant};
use corelab_store::identity::GrantRow;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

#[derive(Debug, Clone)]
pub struct NewGrant {
    pub user_id: Uuid,
    pub role: Role,
    pub site_id: Option<String>,
    pub unblinded: bool,
}

impl App {
    /// Grants a role in a trial. System administrators grant any role; trial managers grant the
    /// others in their trial.
    pub async fn grant_role(&self, actor: &Actor, trial_id: Uuid, g: NewGrant) -> Result<GrantRow, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = if g.role == Role::TrialManager {
            self.require(actor, &access, &[], "grant the trial manager role", "grant", "new").await?
        } else {
            self.require(actor, &access, &[Role::TrialManager], "grant roles", "grant", "new").await?
        };
        let mut tx = self.db().begin().await?;
        let user = tx.user_by_id(g.user_id).await?.ok_or_else(|| AppError::invalid("user_id", "no such account"))?;
        if let Some(site) = &g.site_id
            && tx.site(trial_id, site).await?.is_none()
        {
            return Err(AppError::invalid("site_id", format!("the trial has no site {site}")));
        }
        let existing: Vec<Grant> = tx
            .live_grants(user.id, Some(trial_id))
            .await?
            .into_iter()
            .filter_map(|r| Some(Grant { role: Role::parse(&r.role)?, site_id: r.site_id, unblinded: r.unblinded }))
            .collect();
        let new = Grant { role: g.role, site_id: g.site_id.clone(), unblinded: g.unblinded };
        check_new_grant(&existing, &new).map_err(AppError::Conflict)?;
        let now = self.clock().now();
        let row = GrantRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            trial_id,
            role: g.role.as_str().to_string(),
            site_id: g.site_id.clone(),
            unblinded: g.unblinded,
            created_at: now,
            created_by: actor.user_id,
            revoked_at: None,
            revoked_by: None,
        };
        tx.insert_grant(&row).await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            g.site_id.as_deref(),
            now,
            "create",
            "grant",
            row.id,
            vec![
                change("user", Value::Null, user.username.clone()),
                change("role", Value::Null, row.role.clone()),
                change("site_id", Value::Null, row.site_id.clone()),
                change("unblinded", Value::Null, row.unblinded),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Live grants of a trial (trial managers and system administrators).
    pub async fn list_grants(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<GrantRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(actor, &access, &[Role::TrialManager, Role::Monitor], "list role grants", "grant", "*").await?;
        let mut tx = self.db().read().await?;
        Ok(tx.trial_grants(trial_id).await?)
    }

    /// Revokes a grant; a reason is required. The user's API tokens for that role stop working
    /// at once because tokens are checked against live grants.
    pub async fn revoke_grant(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        grant_id: Uuid,
        reason: &str,
    ) -> Result<(), AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let mut tx = self.db().read().await?;
        let g = tx
            .grant(grant_id)
            .await?
            .filter(|g| g.trial_id == trial_id)
            .ok_or_else(|| AppError::NotFound(format!("no grant {grant_id} in this trial")))?;
        drop(tx);
        let role = if g.role == "trial_manager" {
            self.require(actor, &access, &[], "revoke the trial manager role", "grant", &grant_id.to_string()).await?
        } else {
            self.require(actor, &access, &[Role::TrialManager], "revoke roles", "grant", &grant_id.to_string()).await?
        };
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the role is revoked"));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        if !tx.revoke_grant(grant_id, actor.user_id, now).await? {
            return Err(AppError::Conflict("this grant is already revoked".into()));
        }
        let mut rec = trial_record(
            actor,
            &role,
            trial_id,
            g.site_id.as_deref(),
            now,
            "revoke",
            "grant",
            grant_id,
            vec![change("revoked", false, true)],
        );
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok(())
    }
}
