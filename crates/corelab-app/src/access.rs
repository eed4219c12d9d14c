//! Who may see and do what in a trial. Every trial-scoped use case starts with
//! [`App::trial_access`]: a trial outside the actor's grants is `NotFound` (its existence is not
//! confirmed); an action the actor's roles do not allow is `Forbidden`, and the denial is audited.

use corelab_domain::access::{Grant, Role};
use corelab_store::trials::TrialRow;
use uuid::Uuid;

use crate::audit::record;
use crate::{Actor, App, AppError};

/// The one role an API token acts in.
#[derive(Debug, Clone)]
pub struct TokenScope {
    pub token_id: Uuid,
    pub trial_id: Uuid,
    pub grant: Grant,
}

/// An actor's standing in one trial.
#[derive(Debug, Clone)]
pub struct TrialAccess {
    pub trial: TrialRow,
    pub is_system_admin: bool,
    pub grants: Vec<Grant>,
}

impl TrialAccess {
    pub fn has(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    /// The first of `roles` the actor holds (system administrators act as themselves).
    pub fn role_among(&self, roles: &[Role]) -> Option<String> {
        if self.is_system_admin {
            return Some("system_admin".into());
        }
        roles.iter().find(|r| self.has(**r)).map(|r| r.as_str().to_string())
    }

    /// Sees every site's records (as opposed to only their own site's, or none).
    pub fn sees_all_sites(&self) -> bool {
        self.is_system_admin || [Role::TrialManager, Role::QcReviewer, Role::Monitor].iter().any(|r| self.has(*r))
    }

    /// Sites whose records the actor sees.
    pub fn can_see_site(&self, site_id: &str) -> bool {
        self.sees_all_sites()
            || self.grants.iter().any(|g| g.role == Role::SiteUser && g.site_id.as_deref() == Some(site_id))
    }

    /// Sees site-level records at all (readers and adjudicators never do; sponsors see aggregates).
    pub fn sees_sites(&self) -> bool {
        self.sees_all_sites() || self.has(Role::SiteUser)
    }

    /// Sees treatment arms.
    pub fn unblinded(&self) -> bool {
        self.is_system_admin || self.grants.iter().any(|g| g.unblinded && g.role.may_be_unblinded())
    }

    /// Sees the arm of a subject at this site (site staff recorded it themselves).
    pub fn sees_arm_at(&self, site_id: &str) -> bool {
        self.unblinded()
            || self.grants.iter().any(|g| g.role == Role::SiteUser && g.site_id.as_deref() == Some(site_id))
    }

    pub fn trial_id(&self) -> Uuid {
        self.trial.id
    }
}

impl App {
    /// The actor's access to `trial_id`, or `NotFound` when the actor has no role in it.
    pub async fn trial_access(&self, actor: &Actor, trial_id: Uuid) -> Result<TrialAccess, AppError> {
        let not_found = || AppError::NotFound(format!("no trial {trial_id}"));
        if let Some(scope) = &actor.token
            && scope.trial_id != trial_id
        {
            return Err(not_found());
        }
        let mut tx = self.db().read().await?;
        let trial = tx.trial(trial_id).await?.ok_or_else(not_found)?;
        let grants: Vec<Grant> = match (&actor.token, actor.user_id) {
            (Some(scope), _) => vec![scope.grant.clone()],
            (None, Some(uid)) => tx
                .live_grants(uid, Some(trial_id))
                .await?
                .into_iter()
                .filter_map(|g| Some(Grant { role: Role::parse(&g.role)?, site_id: g.site_id, unblinded: g.unblinded }))
                .collect(),
            (None, None) => Vec::new(),
        };
        let is_system_admin = actor.is_system_admin && actor.token.is_none();
        if grants.is_empty() && !is_system_admin {
            return Err(not_found());
        }
        Ok(TrialAccess { trial, is_system_admin, grants })
    }

    /// Requires one of `roles`; returns the role acted in, or audits the denial and answers 403.
    pub async fn require(
        &self,
        actor: &Actor,
        access: &TrialAccess,
        roles: &[Role],
        action: &str,
        object_type: &str,
        object_id: &str,
    ) -> Result<String, AppError> {
        match access.role_among(roles) {
            Some(role) => Ok(role),
            None => Err(self.deny(actor, Some(access.trial_id()), action, object_type, object_id, roles).await),
        }
    }

    /// Audits a denied action and returns the 403 to give.
    pub async fn deny(
        &self,
        actor: &Actor,
        trial_id: Option<Uuid>,
        action: &str,
        object_type: &str,
        object_id: &str,
        roles: &[Role],
    ) -> AppError {
        let needed = if roles.is_empty() {
            "the system administrator role".to_string()
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!("one of the roles {}", names.join(", "))
        };
        let now = self.clock().now();
        let mut rec = record(actor, now, "permission_denied", object_type, object_id, vec![]);
        rec.trial_id = trial_id;
        rec.reason = Some(format!("{action} needs {needed}"));
        let written = async {
            let mut tx = self.db().begin().await?;
            tx.append_audit(rec).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "could not audit a permission denial");
        }
        AppError::Forbidden(format!("you may not {action}: it needs {needed} in this trial"))
    }

    /// For system-wide actions: requires the system administrator flag (never through a token).
    pub async fn require_admin(
        &self,
        actor: &Actor,
        action: &str,
        object_type: &str,
        object_id: &str,
    ) -> Result<(), AppError> {
        if actor.is_system_admin && actor.token.is_none() {
            Ok(())
        } else {
            Err(self.deny(actor, None, action, object_type, object_id, &[]).await)
        }
    }
}
