//! Browsing and exporting the audit trail. System administrators see everything; trial managers
//! and monitors see their trials' records. Every export is itself audited.

use chrono::{DateTime, Utc};
use corelab_domain::access::Role;
use corelab_store::audit::{AuditFilter, AuditRecord};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{change, record};
use crate::{Actor, App, AppError};

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub trial_id: Option<Uuid>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl App {
    async fn audit_scope(&self, actor: &Actor, q: &AuditQuery) -> Result<(), AppError> {
        if actor.is_system_admin && actor.token.is_none() {
            return Ok(());
        }
        let Some(trial_id) = q.trial_id else {
            return Err(AppError::invalid("trial_id", "give the trial whose audit trail you want to see"));
        };
        let access = self.trial_access(actor, trial_id).await?;
        self.require(
            actor,
            &access,
            &[Role::TrialManager, Role::Monitor],
            "view the audit trail",
            "audit_log",
            &trial_id.to_string(),
        )
        .await?;
        Ok(())
    }

    fn filter(q: &AuditQuery, limit: i64) -> AuditFilter {
        AuditFilter {
            trial_id: q.trial_id,
            object_type: q.object_type.clone(),
            object_id: q.object_id.clone(),
            actor_id: q.user_id,
            from: q.from,
            to: q.to,
            after_seq: q.after_seq,
            limit,
        }
    }

    /// One page of the trail (oldest first; continue with `after_seq` = last `seq`).
    pub async fn audit_records(&self, actor: &Actor, q: &AuditQuery) -> Result<Vec<AuditRecord>, AppError> {
        self.audit_scope(actor, q).await?;
        let limit = q.limit.unwrap_or(200).clamp(1, 1000);
        let mut tx = self.db().read().await?;
        Ok(tx.list_audit(&Self::filter(q, limit)).await?)
    }

    /// The whole filtered trail as CSV or JSON; the export is audited before it is returned.
    pub async fn export_audit(&self, actor: &Actor, q: &AuditQuery, format: ExportFormat) -> Result<Vec<u8>, AppError> {
        self.audit_scope(actor, q).await?;
        let mut rows = Vec::new();
        let mut after = q.after_seq;
        loop {
            let mut tx = self.db().read().await?;
            let page = tx.list_audit(&Self::filter(&AuditQuery { after_seq: after, ..q.clone() }, 2000)).await?;
            drop(tx);
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            rows.extend(page);
        }
        let now = self.clock().now();
        let mut rec = record(
            actor,
            now,
            "export",
            "audit_log",
            q.trial_id.map(|t| t.to_string()).unwrap_or_else(|| "*".into()),
            vec![
                change("format", Value::Null, if format == ExportFormat::Csv { "csv" } else { "json" }),
                change("records", Value::Null, rows.len()),
            ],
        );
        rec.trial_id = q.trial_id;
        let mut tx = self.db().begin().await?;
        tx.append_audit(rec).await?;
        tx.commit().await?;
        match format {
            ExportFormat::Json => serde_json::to_vec_pretty(&rows).map_err(AppError::internal),
            ExportFormat::Csv => Ok(to_csv(&rows).into_bytes()),
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn to_csv(rows: &[AuditRecord]) -> String {
    let mut out = String::from(
        "seq,id,at,actor_id,actor_name,actor_role,action,object_type,object_id,trial_id,site_id,changes,reason,prev_hash,hash\n",
    );
    for r in rows {
        let fields = [
            r.seq.to_string(),
            r.id.to_string(),
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            r.actor_id.map(|u| u.to_string()).unwrap_or_default(),
            r.actor_name.clone(),
            r.actor_role.clone(),
            r.action.clone(),
            r.object_type.clone(),
            r.object_id.clone(),
            r.trial_id.map(|u| u.to_string()).unwrap_or_default(),
            r.site_id.clone().unwrap_or_default(),
            r.changes.clone(),
            r.reason.clone().unwrap_or_default(),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("[{\"field\":\"a\"}]"), "\"[{\"\"field\"\":\"\"a\"\"}]\"");
    }
}
