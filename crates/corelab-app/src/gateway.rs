//! What a site gateway (or `corelab upload`) needs from central to de-identify at the site.
//!
//! A site user's API token asks for its own site's settings: the trial's de-identification
//! profile, the trial identity written into the Clinical Trial attributes, the site's AE titles,
//! the subject ID pattern and the visit list, and the site's pseudonymization key. Nothing of
//! another site is in it (no other site's AE titles, subjects or keys). See docs/gateway.md and
//! docs/adr/0003-gateway-trust.md.

use corelab_domain::access::Role;
use corelab_domain::deid_profile::DeidProfile;
use corelab_store::gateways::GatewayHeartbeatRow;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::{Actor, App, AppError};

/// Domain-separation label of the site gateway key.
const SITE_KEY_LABEL: &[u8] = b"corelab gateway site key v1\0";

/// The key a site's gateways pseudonymize with (UIDs, date shifts): HMAC-SHA-256 of the site ID
/// under the trial's de-identification secret. Each site gets its own; central can re-derive it,
/// the site cannot derive the trial secret or another site's key from it.
pub fn site_key(trial_secret: &[u8], site_id: &str) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(trial_secret) {
        Ok(mut mac) => {
            mac.update(SITE_KEY_LABEL);
            mac.update(site_id.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this branch is not reached.
        Err(_) => Vec::new(),
    }
}

/// One visit of the charter's schedule, as the gateway offers it for assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayVisit {
    /// Clinical Trial Time Point ID.
    pub id: String,
    pub label: String,
    /// Nominal day from the schedule anchor.
    pub day: i32,
}

/// The settings of one site's gateway, from the charter in force.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayConfig {
    pub trial_id: Uuid,
    pub charter_version: i64,
    pub sponsor: String,
    pub protocol_id: String,
    pub protocol_name: String,
    pub site_id: String,
    pub site_name: String,
    /// `qualified` before the site may send subject data.
    pub site_status: String,
    /// Calling AE titles of this site's modalities and PACS (the gateway accepts only these).
    pub site_ae_titles: Vec<String>,
    /// The subject ID pattern, e.g. `{site}-{nnn}`.
    pub subject_id_pattern: String,
    pub visits: Vec<GatewayVisit>,
    pub deidentification: DeidProfile,
    /// The site's pseudonymization key, hex ([`site_key`]).
    pub site_key: String,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("trial_id", &self.trial_id)
            .field("charter_version", &self.charter_version)
            .field("site_id", &self.site_id)
            .field("site_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl App {
    /// The gateway settings of `site` of `trial` (both default to the API token's scope). Only a
    /// site user of that site or a trial manager may fetch them; others as for STOW-RS.
    pub async fn gateway_config(
        &self,
        actor: &Actor,
        trial: Option<Uuid>,
        site: Option<&str>,
    ) -> Result<GatewayConfig, AppError> {
        let (trial_id, site_id, _role) =
            self.site_sender_scope(actor, trial, site, "fetch the site gateway settings").await?;
        let mut tx = self.db().read().await?;
        let trial_row = tx.trial(trial_id).await?.ok_or_else(|| AppError::NotFound(format!("no trial {trial_id}")))?;
        let site_row = tx
            .site(trial_id, &site_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no site {site_id} in trial {trial_id}")))?;
        drop(tx);
        let (version, charter) = self.current_charter(trial_id).await?;
        let charter_site = charter.site(&site_id);
        let mut visits: Vec<GatewayVisit> = charter
            .scheduled_visits()
            .into_iter()
            .map(|v| GatewayVisit { id: v.id, label: v.label, day: v.day })
            .collect();
        visits.sort_by(|a, b| (a.day, &a.id).cmp(&(b.day, &b.id)));
        Ok(GatewayConfig {
            trial_id,
            charter_version: version,
            sponsor: charter.trial.sponsor.clone(),
            protocol_id: charter.trial.protocol_id.clone(),
            protocol_name: charter.trial.protocol_name.clone(),
            site_name: charter_site.map(|s| s.name.clone()).unwrap_or_else(|| site_id.clone()),
            site_ae_titles: charter_site.map(|s| s.ae_titles.clone()).unwrap_or_default(),
            site_status: site_row.status,
            subject_id_pattern: charter.subjects.id_pattern.to_string(),
            visits,
            deidentification: charter.deidentification.clone(),
            site_key: hex::encode(site_key(&trial_row.deid_secret, &site_id)),
            site_id,
        })
    }
}

/// What a gateway reports about itself (no PHI: counts, times, central's or its own error text).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub version: String,
    pub queue_depth: i64,
    pub waiting: i64,
    pub failed: i64,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl App {
    /// Records a gateway's heartbeat. Only a site user's API token can send one (the token is
    /// the gateway's identity). Heartbeats are operational health, not trial records: the first
    /// one of a gateway is audited (`create` `gateway`), later ones only update its row.
    pub async fn gateway_heartbeat(
        &self,
        actor: &Actor,
        trial: Option<Uuid>,
        site: Option<&str>,
        beat: &Heartbeat,
    ) -> Result<GatewayHeartbeatRow, AppError> {
        let (trial_id, site_id, _role) = self.site_sender_scope(actor, trial, site, "report gateway health").await?;
        let Some(scope) = &actor.token else {
            return Err(AppError::invalid("token", "heartbeats come from a site gateway's API token, not a session"));
        };
        if beat.queue_depth < 0 || beat.waiting < 0 || beat.failed < 0 {
            return Err(AppError::invalid("queue_depth", "counts cannot be negative"));
        }
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let name = tx.token(scope.token_id).await?.map(|t| t.name).unwrap_or_default();
        let existing = tx.gateway_heartbeat(scope.token_id).await?;
        let row = GatewayHeartbeatRow {
            token_id: scope.token_id,
            trial_id,
            site_id: site_id.clone(),
            name: clip(&name, 200),
            version: clip(&beat.version, 40),
            first_seen_at: existing.as_ref().map(|e| e.first_seen_at).unwrap_or(now),
            last_seen_at: now,
            queue_depth: beat.queue_depth,
            waiting: beat.waiting,
            failed: beat.failed,
            last_success_at: beat.last_success.as_deref().map(|s| clip(s, 40)),
            last_error: beat.last_error.as_deref().map(|s| clip(s, 500)),
        };
        tx.upsert_gateway_heartbeat(&row).await?;
        if existing.is_none() {
            let mut rec = crate::audit::record(
                actor,
                now,
                "create",
                "gateway",
                scope.token_id,
                vec![crate::audit::change("name", serde_json::Value::Null, row.name.clone())],
            );
            rec.trial_id = Some(trial_id);
            rec.site_id = Some(site_id);
            tx.append_audit(rec).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// The trial's site gateways and their last heartbeat, for the dashboard: site staff see
    /// their own sites' gateways; readers, adjudicators and sponsors none.
    pub async fn gateway_health(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<GatewayHeartbeatRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        self.require(
            actor,
            &access,
            &[Role::TrialManager, Role::SiteUser, Role::QcReviewer, Role::Monitor],
            "see site gateways",
            "gateway",
            "*",
        )
        .await?;
        let mut tx = self.db().read().await?;
        Ok(tx
            .trial_gateway_heartbeats(trial_id)
            .await?
            .into_iter()
            .filter(|g| access.can_see_site(&g.site_id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_keys_differ_per_site_and_trial_and_are_stable() {
        let a = site_key(b"trial secret one", "101");
        assert_eq!(a.len(), 32);
        assert_eq!(a, site_key(b"trial secret one", "101"));
        assert_ne!(a, site_key(b"trial secret one", "102"));
        assert_ne!(a, site_key(b"trial secret two", "101"));
    }
}
