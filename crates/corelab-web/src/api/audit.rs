//! The audit trail: browse and export.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use corelab_app::AppError;
use corelab_app::audit_trail::{AuditQuery, ExportFormat};
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![("GET", "/audit", get(list)), ("GET", "/audit/export", get(export))]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Q {
    trial_id: Option<Uuid>,
    object_type: Option<String>,
    object_id: Option<String>,
    user_id: Option<Uuid>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after_seq: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

impl Q {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            trial_id: self.trial_id,
            object_type: self.object_type.clone(),
            object_id: self.object_id.clone(),
            user_id: self.user_id,
            from: self.from,
            to: self.to,
            after_seq: self.after_seq,
            limit: self.limit,
        }
    }
}

async fn list(State(s): State<WebState>, Ready(actor): Ready, Query(q): Query<Q>) -> ApiResult<Response> {
    Ok(Json(s.app.audit_records(&actor, &q.query()).await?).into_response())
}

async fn export(State(s): State<WebState>, Ready(actor): Ready, Query(q): Query<Q>) -> ApiResult<Response> {
    let (format, ctype, ext) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        "json" => (ExportFormat::Json, "application/json", "json"),
        other => {
            return Err(AppError::invalid("format", format!("unknown export format {other:?}; use csv or json")).into());
        }
    };
    let bytes = s.app.export_audit(&actor, &q.query(), format).await?;
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"corelab-audit.{ext}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
