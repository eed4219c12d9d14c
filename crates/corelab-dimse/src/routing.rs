//! Which trial a called AE title names and which site a calling AE title belongs to, kept as a
//! snapshot of the database that is refreshed every few seconds (the association accept check is
//! synchronous). The database stays the source of truth: every process refreshes its own copy.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use corelab_app::App;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use uuid::Uuid;

/// Where an accepted association's instances go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The server's own AE title: verification only.
    Server,
    Trial {
        trial_id: Uuid,
        site_id: String,
    },
}

#[derive(Debug, Default)]
struct Table {
    called: HashMap<String, Uuid>,
    /// (trial, calling AE) -> (site, site status)
    calling: HashMap<(Uuid, String), (String, String)>,
}

/// The shared routing snapshot.
#[derive(Debug, Clone)]
pub struct Routing {
    server_ae: String,
    table: Arc<RwLock<Table>>,
}

fn norm(ae: &str) -> String {
    ae.trim().trim_end_matches('\0').trim().to_uppercase()
}

impl Routing {
    pub fn new(server_ae: &str) -> Routing {
        Routing { server_ae: norm(server_ae), table: Arc::default() }
    }

    /// Reloads the snapshot from the database.
    pub async fn refresh(&self, app: &App) -> Result<(), corelab_store::StoreError> {
        let mut tx = app.db().read().await?;
        let routes = tx.ae_routing().await?;
        drop(tx);
        let mut t = Table::default();
        for r in routes {
            match r.kind.as_str() {
                "called" => {
                    t.called.insert(norm(&r.ae_title), r.trial_id);
                }
                "calling" => {
                    if let Some(site) = r.site_id {
                        t.calling.insert((r.trial_id, norm(&r.ae_title)), (site, r.site_status.unwrap_or_default()));
                    }
                }
                _ => {}
            }
        }
        if let Ok(mut w) = self.table.write() {
            *w = t;
        }
        Ok(())
    }

    /// Decides an association request; the error says why it is refused (for the log).
    pub fn decide(&self, calling: &str, called: &str) -> Result<Destination, (AssociationRJServiceUserReason, String)> {
        let (calling, called) = (norm(calling), norm(called));
        if called == self.server_ae {
            return Ok(Destination::Server);
        }
        let t = self
            .table
            .read()
            .map_err(|_| (AssociationRJServiceUserReason::NoReasonGiven, "routing unavailable".to_string()))?;
        let Some(trial_id) = t.called.get(&called).copied() else {
            return Err((
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
                format!("called AE title {called} names no trial"),
            ));
        };
        match t.calling.get(&(trial_id, calling.clone())) {
            None => Err((
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                format!("calling AE title {calling} is not listed for any site of the trial called {called}"),
            )),
            Some((site, status)) if status != "qualified" => Err((
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                format!("site {site} (calling AE {calling}) is not qualified yet (status {status})"),
            )),
            Some((site, _)) => Ok(Destination::Trial { trial_id, site_id: site.clone() }),
        }
    }
}

impl AccessControl for Routing {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        match self.decide(calling_ae_title, called_ae_title) {
            Ok(_) => Ok(()),
            Err((reason, why)) => {
                tracing::warn!(calling_ae = %norm(calling_ae_title), called_ae = %norm(called_ae_title), %why, "association rejected");
                metrics::counter!("corelab_dimse_associations_rejected_total").increment(1);
                Err(reason)
            }
        }
    }
}
