//! Who may store images over DICOMweb STOW-RS, and for which trial and site.
//!
//! A site's upload tool or gateway sends with an API token of a site user: the token names the
//! trial and the site. A logged-in user (or a trial manager's token, which has no site) names
//! them as request parameters. Either way the instances are filed under that site only, by the
//! ingest pipeline, exactly as DIMSE files them under the calling AE's site.

use corelab_domain::access::Role;
use uuid::Uuid;

use crate::ingest::{IngestError, IngestSetup, IngestTarget, Source};
use crate::{Actor, App, AppError};

/// Where a STOW-RS request's instances go, and what every instance of it shares.
#[derive(Clone)]
pub struct StowTarget {
    pub target: IngestTarget,
    pub setup: IngestSetup,
}

impl App {
    /// Decides whether `actor` may store instances for `site` of `trial` and prepares the ingest.
    ///
    /// `trial` and `site` default to the API token's scope; a value that contradicts the token
    /// answers 404, as does a trial or site outside the actor's scope (site users see only their
    /// site; readers, adjudicators and sponsors see no site). Roles that see the site but may not
    /// send images (QC, monitors) get 403, audited. A site that is not qualified yet is a conflict.
    pub async fn stow_target(
        &self,
        actor: &Actor,
        trial: Option<Uuid>,
        site: Option<&str>,
    ) -> Result<StowTarget, AppError> {
        let (trial_id, site_id, role) = self.site_sender_scope(actor, trial, site, "store images").await?;
        let target = IngestTarget {
            trial_id,
            site_id,
            source: Source::Stow,
            sender: actor.username.clone(),
            sender_role: role,
            sender_id: actor.user_id,
        };
        let setup = self.ingest_setup(&target).await.map_err(|e| match e {
            IngestError::Refused(m) => AppError::Conflict(m),
            other => AppError::internal(other),
        })?;
        Ok(StowTarget { target, setup })
    }

    /// Resolves and authorizes the trial and site a site's sender (upload tool, gateway) acts
    /// for: `trial` and `site` default to the API token's scope and may repeat it, never change
    /// it; outside the actor's scope is 404; roles that see the site but may not send (QC,
    /// monitors) get 403, audited with `action`. Returns the trial, the site and the role.
    pub async fn site_sender_scope(
        &self,
        actor: &Actor,
        trial: Option<Uuid>,
        site: Option<&str>,
        action: &str,
    ) -> Result<(Uuid, String, String), AppError> {
        let site = site.map(str::trim).filter(|s| !s.is_empty());
        let (trial_id, site_id) = match &actor.token {
            Some(scope) => {
                if let Some(t) = trial
                    && t != scope.trial_id
                {
                    return Err(AppError::NotFound(format!("no trial {t}")));
                }
                let site_id = match (site, scope.grant.site_id.as_deref()) {
                    (Some(asked), Some(own)) if asked != own => {
                        return Err(AppError::NotFound(format!("no site {asked} in trial {}", scope.trial_id)));
                    }
                    (_, Some(own)) => own.to_string(),
                    (Some(asked), None) => asked.to_string(),
                    (None, None) => {
                        return Err(AppError::invalid(
                            "site",
                            "this token has no site; name the site the images come from: ?site=<site id>",
                        ));
                    }
                };
                (scope.trial_id, site_id)
            }
            None => {
                let Some(trial_id) = trial else {
                    return Err(AppError::invalid(
                        "trial",
                        "name the trial and site: ?trial=<trial id>&site=<site id>, or send an API token of a site user",
                    ));
                };
                let Some(site_id) = site else {
                    return Err(AppError::invalid("site", "name the site the images come from: ?site=<site id>"));
                };
                (trial_id, site_id.to_string())
            }
        };
        let access = self.trial_access(actor, trial_id).await?;
        let hidden = || AppError::NotFound(format!("no site {site_id} in trial {trial_id}"));
        if !access.can_see_site(&site_id) {
            return Err(hidden());
        }
        let mut tx = self.db().read().await?;
        tx.site(trial_id, &site_id).await?.ok_or_else(hidden)?;
        drop(tx);
        let role =
            self.require(actor, &access, &[Role::SiteUser, Role::TrialManager], action, "site", &site_id).await?;
        Ok((trial_id, site_id, role))
    }
}
