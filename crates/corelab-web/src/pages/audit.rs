//! The audit trail browser: filters (trial, object type, user, time range), pages of 100 records,
//! and links to the CSV and JSON exports of the same filter (the API's export, which is audited).

use askama::Template;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use corelab_app::AppError;
use corelab_app::audit_trail::AuditQuery;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::error::{PageResult, urlencode};
use super::session::PageUser;
use super::view::{Chrome, Roles, render, utc_seconds};
use crate::WebState;

const PAGE: i64 = 100;

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    trial_id: Option<String>,
    #[serde(default)]
    object_type: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    after_seq: Option<String>,
}

fn some(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|x| !x.is_empty())
}

fn uuid(field: &str, s: &Option<String>) -> Result<Option<Uuid>, AppError> {
    some(s).map(|v| v.parse::<Uuid>().map_err(|_| AppError::invalid(field, format!("{v:?} is not an id")))).transpose()
}

/// A `datetime-local` value (or a date), read as UTC.
fn time(field: &str, s: &Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(v) = some(s) else { return Ok(None) };
    let parsed = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN)))
        .map_err(|_| AppError::invalid(field, format!("{v:?} is not a time; give it as YYYY-MM-DDTHH:MM (UTC)")))?;
    Ok(Some(parsed.and_utc()))
}

pub struct RecordLine {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub object: String,
    pub site: String,
    pub changes: String,
    pub reason: String,
}

/// `[{"field","old","new"}]` as "field: old → new; …".
fn changes_text(json: &str) -> String {
    let show = |v: &Value| match v {
        Value::Null => "∅".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(a)) => a
            .iter()
            .map(|c| {
                format!(
                    "{}: {} → {}",
                    c.get("field").and_then(|f| f.as_str()).unwrap_or("?"),
                    show(c.get("old").unwrap_or(&Value::Null)),
                    show(c.get("new").unwrap_or(&Value::Null))
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => json.to_string(),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    is_admin: bool,
    trials: Vec<(String, String)>,
    users: Vec<(String, String)>,
    trial_id: String,
    object_type: String,
    user_id: String,
    from: String,
    to: String,
    records: Option<Vec<RecordLine>>,
    next: Option<String>,
    export_csv: String,
    export_json: String,
    error: Option<String>,
}

pub async fn page(State(s): State<WebState>, user: PageUser, Query(f): Query<Filter>) -> PageResult {
    let a = &user.actor;
    let all_trials = s.app.list_trials(a).await?;
    let may_list_users =
        a.is_system_admin || all_trials.iter().any(|t| t.my_roles.iter().any(|r| r == "trial_manager"));
    let trials: Vec<(String, String)> = all_trials
        .into_iter()
        .filter(|t| Roles(t.my_roles.clone()).may_audit())
        .map(|t| (t.id.to_string(), format!("{}: {}", t.protocol_id, t.name)))
        .collect();
    let users: Vec<(String, String)> = if may_list_users {
        s.app
            .list_users(a)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), format!("{} ({})", u.display_name, u.username)))
            .collect()
    } else {
        Vec::new()
    };
    let parsed = (|| -> Result<AuditQuery, AppError> {
        Ok(AuditQuery {
            trial_id: uuid("trial_id", &f.trial_id)?,
            object_type: some(&f.object_type).map(str::to_string),
            object_id: None,
            user_id: uuid("user_id", &f.user_id)?,
            from: time("from", &f.from)?,
            to: time("to", &f.to)?,
            after_seq: some(&f.after_seq)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| AppError::invalid("after_seq", format!("{v:?} is not a record number")))
                })
                .transpose()?,
            limit: Some(PAGE),
        })
    })();
    let mut error = None;
    let mut records = None;
    let mut next = None;
    let (mut export_csv, mut export_json) = (String::new(), String::new());
    match parsed {
        Err(AppError::Invalid { message, .. }) => error = Some(message),
        Err(e) => return Err(e.into()),
        Ok(q) if q.trial_id.is_none() && !a.is_system_admin => {
            error = (!trials.is_empty()).then(|| "Choose the trial whose audit trail you want to see.".to_string());
            if trials.is_empty() {
                return Err(AppError::Forbidden(
                    "the audit trail is for trial managers, monitors and system administrators".into(),
                )
                .into());
            }
        }
        Ok(q) => {
            let rows = s.app.audit_records(a, &q).await?;
            let mut params: Vec<(&str, String)> = Vec::new();
            if let Some(t) = q.trial_id {
                params.push(("trial_id", t.to_string()));
            }
            if let Some(o) = &q.object_type {
                params.push(("object_type", o.clone()));
            }
            if let Some(u) = q.user_id {
                params.push(("user_id", u.to_string()));
            }
            let form_params = {
                let mut p = params.clone();
                if let Some(v) = some(&f.from) {
                    p.push(("from", v.to_string()));
                }
                if let Some(v) = some(&f.to) {
                    p.push(("to", v.to_string()));
                }
                p
            };
            if let Some(t) = q.from {
                params.push(("from", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
            }
            if let Some(t) = q.to {
                params.push(("to", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
            }
            let qs = |p: &[(&str, String)]| {
                p.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&")
            };
            export_csv =
                format!("/api/v1/audit/export?{}", qs(&[params.clone(), vec![("format", "csv".into())]].concat()));
            export_json =
                format!("/api/v1/audit/export?{}", qs(&[params.clone(), vec![("format", "json".into())]].concat()));
            if rows.len() as i64 == PAGE
                && let Some(last) = rows.last()
            {
                next =
                    Some(format!("/audit?{}", qs(&[form_params, vec![("after_seq", last.seq.to_string())]].concat())));
            }
            records = Some(
                rows.into_iter()
                    .map(|r| RecordLine {
                        seq: r.seq,
                        at: utc_seconds(&r.at),
                        actor: r.actor_name,
                        role: r.actor_role.replace('_', " "),
                        action: r.action,
                        object: format!("{} {}", r.object_type, r.object_id),
                        site: r.site_id.unwrap_or_default(),
                        changes: changes_text(&r.changes),
                        reason: r.reason.unwrap_or_default(),
                    })
                    .collect(),
            );
        }
    }
    let text = |s: &Option<String>| some(s).unwrap_or("").to_string();
    render(&AuditPage {
        chrome: Chrome::new(&user, "Audit trail", "audit"),
        is_admin: a.is_system_admin,
        trials,
        users,
        trial_id: text(&f.trial_id),
        object_type: text(&f.object_type),
        user_id: text(&f.user_id),
        from: text(&f.from),
        to: text(&f.to),
        records,
        next,
        export_csv,
        export_json,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_old_to_new() {
        let j = r#"[{"field":"status","old":"enrolled","new":"withdrawn"},{"field":"n","old":null,"new":3}]"#;
        assert_eq!(changes_text(j), "status: enrolled → withdrawn; n: ∅ → 3");
        assert_eq!(changes_text("not json"), "not json");
    }

    #[test]
    fn local_times_are_read_as_utc() {
        let t = time("from", &Some("2026-11-27T10:05".into())).unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T10:05:00+00:00");
        assert!(time("from", &Some("yesterday".into())).is_err());
        assert!(time("from", &Some("  ".into())).unwrap().is_none());
    }
}
