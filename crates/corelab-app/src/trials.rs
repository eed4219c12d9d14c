//! Trials and their charters: create from a charter file, amend (a new version with a reason),
//! compare versions, and the views each role may see.

use corelab_domain::access::Role;
use corelab_domain::charter::{Charter, check_charter, diff};
use corelab_store::trials::{CharterVersionRow, SiteRow, TrialRow};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

/// A trial as listed.
#[derive(Debug, Clone, Serialize)]
pub struct TrialView {
    pub id: Uuid,
    pub protocol_id: String,
    pub name: String,
    pub sponsor: String,
    pub therapeutic_area: String,
    pub charter_version: i64,
    /// The caller's roles in this trial.
    pub my_roles: Vec<String>,
}

/// A charter version as shown: the parsed charter (arms only for unblinded roles).
#[derive(Debug, Clone, Serialize)]
pub struct CharterVersionView {
    pub version: i64,
    pub label: String,
    pub sha256: String,
    pub reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub charter: Value,
}

/// Parses and validates a charter; errors carry every problem with line and key.
pub fn parse_checked(text: &str) -> Result<Charter, AppError> {
    let check = check_charter(text);
    match check.charter {
        Some(c) => Ok(c),
        None => Err(AppError::InvalidCharter(check.problems.into_iter().filter(|p| p.is_error()).collect())),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The (kind, AE title, site) routing entries of a charter.
fn ae_entries(c: &Charter) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<(String, String, Option<String>)> =
        c.dimse.called_ae_titles.iter().map(|ae| ("called".into(), ae.trim().to_uppercase(), None)).collect();
    for s in &c.sites {
        for ae in &s.ae_titles {
            v.push(("calling".into(), ae.trim().to_uppercase(), Some(s.id.clone())));
        }
    }
    v
}

impl App {
    /// Creates a trial from a charter file (system administrators). Every site starts pending.
    pub async fn create_trial(&self, actor: &Actor, charter_text: &str) -> Result<TrialView, AppError> {
        self.require_admin(actor, "create trials", "trial", "new").await?;
        let charter = parse_checked(charter_text)?;
        let now = self.clock().now();
        let trial = TrialRow {
            id: Uuid::now_v7(),
            protocol_id: charter.trial.protocol_id.clone(),
            name: charter.trial.protocol_name.clone(),
            sponsor: charter.trial.sponsor.clone(),
            therapeutic_area: charter.trial.therapeutic_area.as_str().to_string(),
            current_version: 1,
            deid_secret: rand::random::<[u8; 32]>().to_vec(),
            created_at: now,
        };
        let mut tx = self.db().begin().await?;
        if tx.trial_by_protocol(&trial.protocol_id).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "a trial with protocol ID {} exists; to change its charter, amend it",
                trial.protocol_id
            )));
        }
        for (kind, ae, _) in ae_entries(&charter) {
            if kind == "called" && tx.called_ae_in_use(&ae, None).await? {
                return Err(AppError::invalid(
                    "dimse.called_ae_titles",
                    format!("the called AE title {ae} already routes to another trial; choose a unique one"),
                ));
            }
        }
        tx.insert_trial(&trial).await?;
        let sha = sha256_hex(charter_text);
        tx.insert_charter_version(&CharterVersionRow {
            trial_id: trial.id,
            version: 1,
            label: charter.version.clone(),
            charter_text: charter_text.to_string(),
            sha256: sha.clone(),
            reason: None,
            created_by: actor.user_id,
            created_at: now,
        })
        .await?;
        let role = "system_admin";
        tx.append_audit(trial_record(
            actor,
            role,
            trial.id,
            None,
            now,
            "create",
            "trial",
            trial.id,
            vec![
                change("protocol_id", Value::Null, trial.protocol_id.clone()),
                change("charter_version", Value::Null, 1),
                change("charter_sha256", Value::Null, sha),
            ],
        ))
        .await?;
        for s in &charter.sites {
            let row = SiteRow {
                trial_id: trial.id,
                site_id: s.id.clone(),
                name: s.name.clone(),
                country: s.country.clone(),
                status: "pending".into(),
                qualified_at: None,
                added_in_version: 1,
            };
            tx.upsert_site(&row).await?;
            tx.append_audit(trial_record(
                actor,
                role,
                trial.id,
                Some(&s.id),
                now,
                "create",
                "site",
                format!("{}/{}", trial.protocol_id, s.id),
                vec![change("name", Value::Null, s.name.clone()), change("status", Value::Null, "pending")],
            ))
            .await?;
        }
        tx.replace_ae_titles(trial.id, &ae_entries(&charter)).await?;
        tx.commit().await?;
        Ok(TrialView {
            id: trial.id,
            protocol_id: trial.protocol_id,
            name: trial.name,
            sponsor: trial.sponsor,
            therapeutic_area: trial.therapeutic_area,
            charter_version: 1,
            my_roles: vec!["system_admin".into()],
        })
    }

    /// Amends a trial's charter: a new version that applies from now on. Existing records keep
    /// the version they were made under. Sites may be added, not removed once they have subjects.
    pub async fn amend_trial(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        charter_text: &str,
        reason: &str,
    ) -> Result<Vec<String>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = self
            .require(actor, &access, &[Role::TrialManager], "amend the charter", "trial", &trial_id.to_string())
            .await?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the charter is amended; it goes to the audit trail"));
        }
        let new = parse_checked(charter_text)?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        let trial = tx.trial(trial_id).await?.ok_or_else(|| AppError::NotFound(format!("no trial {trial_id}")))?;
        if new.trial.protocol_id != trial.protocol_id {
            return Err(AppError::invalid(
                "trial.protocol_id",
                format!(
                    "an amendment keeps the protocol ID {}; create a new trial for another protocol",
                    trial.protocol_id
                ),
            ));
        }
        let old_row = tx
            .charter_version(trial_id, trial.current_version)
            .await?
            .ok_or_else(|| AppError::internal(std::io::Error::other("current charter version missing")))?;
        let old = parse_checked(&old_row.charter_text)?;
        let subjects = tx.subjects(trial_id).await?;
        for s in &old.sites {
            if new.site(&s.id).is_none() && subjects.iter().any(|x| x.site_id == s.id) {
                return Err(AppError::invalid(
                    "sites",
                    format!(
                        "site {} has enrolled subjects and cannot be removed from the charter; keep it listed",
                        s.id
                    ),
                ));
            }
        }
        for (kind, ae, _) in ae_entries(&new) {
            if kind == "called" && tx.called_ae_in_use(&ae, Some(trial_id)).await? {
                return Err(AppError::invalid(
                    "dimse.called_ae_titles",
                    format!("the called AE title {ae} already routes to another trial; choose a unique one"),
                ));
            }
        }
        let changes = diff(&old, &new);
        if changes.is_empty() {
            return Err(AppError::Conflict(
                "the amended charter is identical to the current version; nothing to do".into(),
            ));
        }
        let version = trial.current_version + 1;
        tx.insert_charter_version(&CharterVersionRow {
            trial_id,
            version,
            label: new.version.clone(),
            charter_text: charter_text.to_string(),
            sha256: sha256_hex(charter_text),
            reason: Some(reason.trim().to_string()),
            created_by: actor.user_id,
            created_at: now,
        })
        .await?;
        tx.set_trial_version(trial_id, version, &new.trial.protocol_name, &new.trial.sponsor).await?;
        let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        let mut rec = trial_record(
            actor,
            &role,
            trial_id,
            None,
            now,
            "amend",
            "trial",
            trial_id,
            vec![
                change("charter_version", trial.current_version, version),
                change("charter_changes", Value::Null, json!(lines)),
            ],
        );
        rec.reason = Some(reason.trim().to_string());
        tx.append_audit(rec).await?;
        for s in &new.sites {
            let existing = tx.site(trial_id, &s.id).await?;
            match existing {
                None => {
                    tx.upsert_site(&SiteRow {
                        trial_id,
                        site_id: s.id.clone(),
                        name: s.name.clone(),
                        country: s.country.clone(),
                        status: "pending".into(),
                        qualified_at: None,
                        added_in_version: version,
                    })
                    .await?;
                    let mut rec = trial_record(
                        actor,
                        &role,
                        trial_id,
                        Some(&s.id),
                        now,
                        "create",
                        "site",
                        format!("{}/{}", trial.protocol_id, s.id),
                        vec![change("name", Value::Null, s.name.clone()), change("status", Value::Null, "pending")],
                    );
                    rec.reason = Some(reason.trim().to_string());
                    tx.append_audit(rec).await?;
                }
                Some(row) if row.name != s.name || row.country != s.country => {
                    tx.upsert_site(&SiteRow { name: s.name.clone(), country: s.country.clone(), ..row.clone() })
                        .await?;
                    let mut rec = trial_record(
                        actor,
                        &role,
                        trial_id,
                        Some(&s.id),
                        now,
                        "update",
                        "site",
                        format!("{}/{}", trial.protocol_id, s.id),
                        vec![
                            change("name", row.name.clone(), s.name.clone()),
                            change("country", row.country, s.country.clone()),
                        ],
                    );
                    rec.reason = Some(reason.trim().to_string());
                    tx.append_audit(rec).await?;
                }
                Some(_) => {}
            }
        }
        tx.replace_ae_titles(trial_id, &ae_entries(&new)).await?;
        tx.commit().await?;
        Ok(lines)
    }

    /// Trials the actor has a role in (all of them for system administrators).
    pub async fn list_trials(&self, actor: &Actor) -> Result<Vec<TrialView>, AppError> {
        let mut tx = self.db().read().await?;
        let trials = tx.trials().await?;
        let grants = match actor.user_id {
            Some(uid) => tx.live_grants(uid, None).await?,
            None => Vec::new(),
        };
        let admin = actor.is_system_admin && actor.token.is_none();
        let mut out = Vec::new();
        for t in trials {
            let mut roles: Vec<String> = match &actor.token {
                Some(scope) if scope.trial_id == t.id => vec![scope.grant.role.as_str().to_string()],
                Some(_) => Vec::new(),
                None => grants.iter().filter(|g| g.trial_id == t.id).map(|g| g.role.clone()).collect(),
            };
            roles.dedup();
            if admin {
                roles.insert(0, "system_admin".into());
            }
            if roles.is_empty() {
                continue;
            }
            out.push(TrialView {
                id: t.id,
                protocol_id: t.protocol_id,
                name: t.name,
                sponsor: t.sponsor,
                therapeutic_area: t.therapeutic_area,
                charter_version: t.current_version,
                my_roles: roles,
            });
        }
        Ok(out)
    }

    /// One trial, for anyone with a role in it.
    pub async fn trial(&self, actor: &Actor, trial_id: Uuid) -> Result<TrialView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let mut roles: Vec<String> = access.grants.iter().map(|g| g.role.as_str().to_string()).collect();
        if access.is_system_admin {
            roles.insert(0, "system_admin".into());
        }
        let t = access.trial;
        Ok(TrialView {
            id: t.id,
            protocol_id: t.protocol_id,
            name: t.name,
            sponsor: t.sponsor,
            therapeutic_area: t.therapeutic_area,
            charter_version: t.current_version,
            my_roles: roles,
        })
    }

    /// The parsed charter of a version (the current one when `version` is `None`). Readers and
    /// adjudicators see no sites or AE titles, site staff only their own sites; only unblinded
    /// roles see arms.
    pub async fn charter_version(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        version: Option<i64>,
    ) -> Result<CharterVersionView, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let v = version.unwrap_or(access.trial.current_version);
        let mut tx = self.db().read().await?;
        let row = tx
            .charter_version(trial_id, v)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("trial {trial_id} has no charter version {v}")))?;
        drop(tx);
        let parsed = parse_checked(&row.charter_text)?;
        let shown = if access.unblinded() { parsed } else { parsed.without_arms() };
        let shown = if access.sees_all_sites() {
            shown
        } else {
            // Site staff see their own sites' entries only (names, AE titles), never another site's.
            Charter { sites: shown.sites.into_iter().filter(|s| access.can_see_site(&s.id)).collect(), ..shown }
        };
        let mut charter = serde_json::to_value(&shown).map_err(AppError::internal)?;
        if !access.sees_sites()
            && let Some(obj) = charter.as_object_mut()
        {
            obj.remove("sites");
            obj.remove("dimse");
            obj.remove("subjects");
        }
        Ok(CharterVersionView {
            version: row.version,
            label: row.label,
            sha256: row.sha256,
            reason: row.reason,
            created_at: row.created_at,
            charter,
        })
    }

    /// The charter of the version in force, parsed (internal use by other use cases).
    pub(crate) async fn current_charter(&self, trial_id: Uuid) -> Result<(i64, Charter), AppError> {
        let mut tx = self.db().read().await?;
        let trial = tx.trial(trial_id).await?.ok_or_else(|| AppError::NotFound(format!("no trial {trial_id}")))?;
        let row = tx
            .charter_version(trial_id, trial.current_version)
            .await?
            .ok_or_else(|| AppError::internal(std::io::Error::other("current charter version missing")))?;
        Ok((row.version, parse_checked(&row.charter_text)?))
    }

    /// What changed between two charter versions, one line per change.
    pub async fn charter_diff(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        self.require(
            actor,
            &access,
            &[Role::TrialManager, Role::Monitor, Role::QcReviewer],
            "compare charter versions",
            "trial",
            &trial_id.to_string(),
        )
        .await?;
        let mut tx = self.db().read().await?;
        let load = |v: Option<CharterVersionRow>, n: i64| {
            v.ok_or_else(|| AppError::NotFound(format!("trial {trial_id} has no charter version {n}")))
        };
        let a = load(tx.charter_version(trial_id, from).await?, from)?;
        let b = load(tx.charter_version(trial_id, to).await?, to)?;
        let (a, b) = (parse_checked(&a.charter_text)?, parse_checked(&b.charter_text)?);
        let (a, b) = if access.unblinded() { (a, b) } else { (a.without_arms(), b.without_arms()) };
        Ok(diff(&a, &b).iter().map(|c| c.to_string()).collect())
    }

    /// The trial's sites with their qualification status; site users see their own only,
    /// readers and adjudicators none (404).
    pub async fn list_sites(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<SiteRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.sees_sites() && !access.has(Role::Sponsor) {
            return Err(AppError::NotFound(format!("no trial {trial_id}")));
        }
        let mut tx = self.db().read().await?;
        Ok(tx
            .sites(trial_id)
            .await?
            .into_iter()
            .filter(|s| access.can_see_site(&s.site_id) || access.has(Role::Sponsor))
            .collect())
    }

    /// One site; out of scope answers 404.
    pub async fn site(&self, actor: &Actor, trial_id: Uuid, site_id: &str) -> Result<SiteRow, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let not_found = || AppError::NotFound(format!("no site {site_id} in trial {trial_id}"));
        if !access.can_see_site(site_id) {
            return Err(not_found());
        }
        let mut tx = self.db().read().await?;
        tx.site(trial_id, site_id).await?.ok_or_else(not_found)
    }
}

/// A charter version in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct CharterVersionSummary {
    pub version: i64,
    pub label: String,
    pub sha256: String,
    pub reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl App {
    /// Every version of the trial's charter, oldest first.
    pub async fn charter_versions(
        &self,
        actor: &Actor,
        trial_id: Uuid,
    ) -> Result<Vec<CharterVersionSummary>, AppError> {
        self.trial_access(actor, trial_id).await?;
        let mut tx = self.db().read().await?;
        Ok(tx
            .charter_versions(trial_id)
            .await?
            .into_iter()
            .map(|v| CharterVersionSummary {
                version: v.version,
                label: v.label,
                sha256: v.sha256,
                reason: v.reason,
                created_at: v.created_at,
            })
            .collect())
    }
}
