//! The trial dashboard: per site, subjects enrolled, visits expected / received / QC passed /
//! read, open data queries and median turnarounds (computed by
//! `corelab_domain::reports::site_dashboard`), and the subject x visit grid with each visit's
//! state.
//!
//! | role | site rows | total | grid |
//! |---|---|---|---|
//! | trial manager, monitor, QC reviewer | every site | yes | every subject |
//! | sponsor | every site (aggregates only) | yes | none (no subject-level records) |
//! | site user | own sites only | no | own sites' subjects |
//! | reader, adjudicator | 404: they see no site-level record | | |

use std::collections::HashMap;

use corelab_domain::access::Role;
use corelab_domain::reports::{DashboardVisit, SiteDashboard, site_dashboard};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::qc::GridRow;
use crate::{Actor, App, AppError};

/// What the dashboard shows the caller.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub trial_id: Uuid,
    pub sites: Vec<SiteDashboard>,
    /// Every site together, for those who see every site.
    pub total: Option<SiteDashboard>,
    /// The subject x visit grid; None for roles without subject-level records (sponsors).
    pub grid: Option<Vec<GridRow>>,
    /// (subject, visit) pairs an accepted read result covers, for the grid's "read" mark.
    pub read: Vec<(Uuid, String)>,
}

impl App {
    /// The dashboard of a trial as the caller's roles allow (see the module table).
    pub async fn trial_dashboard(&self, actor: &Actor, trial_id: Uuid) -> Result<Dashboard, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let sponsor_only = !access.sees_sites() && access.has(Role::Sponsor) && !access.is_system_admin;
        if !access.sees_sites() && !sponsor_only {
            // Readers and adjudicators see no site-level record; existence is not confirmed.
            return Err(AppError::NotFound(format!("no dashboard for trial {trial_id}")));
        }
        let every_site = access.sees_all_sites() || sponsor_only;
        let visible = |site: &str| every_site || access.can_see_site(site);
        let grid = self.grid_rows(trial_id, &visible).await?;

        let mut tx = self.db().read().await?;
        let sites: Vec<String> =
            tx.sites(trial_id).await?.into_iter().map(|s| s.site_id).filter(|s| visible(s)).collect();
        let subject_sites: Vec<String> =
            tx.subjects(trial_id).await?.into_iter().map(|s| s.site_id).filter(|s| visible(s)).collect();
        let mut received: HashMap<(Uuid, String), i64> = HashMap::new();
        for st in tx.trial_studies(trial_id).await? {
            let at = st.first_received_at.timestamp();
            received.entry((st.subject_id, st.visit_id)).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        }
        let mut first_decision: HashMap<(Uuid, String), i64> = HashMap::new();
        let mut passed_at: HashMap<(Uuid, String), i64> = HashMap::new();
        for r in tx.trial_reviews(trial_id).await? {
            let at = r.decided_at.timestamp();
            let key = (r.subject_id, r.visit_id.clone());
            first_decision.entry(key.clone()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
            if r.outcome != "reject" {
                // The latest accepting decision is the one that passed the visit (QC2 after QC1).
                passed_at.entry(key).and_modify(|t| *t = (*t).max(at)).or_insert(at);
            }
        }
        // When an accepted result first covered each visit of a subject.
        let mut read_at: HashMap<(Uuid, String), i64> = HashMap::new();
        for case in tx.trial_read_cases(trial_id).await? {
            for res in tx.accepted_results(case.id).await? {
                let result: Value = serde_json::from_str(&res.result).map_err(AppError::internal)?;
                for t in result["timepoints"].as_array().into_iter().flatten() {
                    if let Some(v) = t["visit_id"].as_str() {
                        read_at.entry((case.subject_id, v.to_string())).or_insert(res.recorded_at.timestamp());
                    }
                }
            }
        }
        let open_query_sites: Vec<String> = tx
            .trial_queries(trial_id)
            .await?
            .into_iter()
            .filter(|q| q.state != "closed" && visible(&q.site_id))
            .map(|q| q.site_id)
            .collect();
        drop(tx);

        let mut visits = Vec::new();
        let mut read = Vec::new();
        for row in &grid {
            for cell in &row.visits {
                let key = (row.subject, cell.visit_id.clone());
                let due = !matches!(cell.state.as_str(), "not_yet_due" | "unknown");
                let qc_passed = cell.state == "qc_passed";
                visits.push(DashboardVisit {
                    site_id: row.site_id.clone(),
                    due,
                    received_at: received.get(&key).copied(),
                    first_decision_at: first_decision.get(&key).copied(),
                    qc_passed,
                    qc_passed_at: if qc_passed { passed_at.get(&key).copied() } else { None },
                    read_at: read_at.get(&key).copied(),
                });
                if read_at.contains_key(&key) {
                    read.push(key);
                }
            }
        }
        let (rows, total) = site_dashboard(&sites, &subject_sites, &visits, &open_query_sites);
        Ok(Dashboard {
            trial_id,
            sites: rows,
            total: every_site.then_some(total),
            read: if sponsor_only { Vec::new() } else { read },
            grid: (!sponsor_only).then_some(grid),
        })
    }
}
