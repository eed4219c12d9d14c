//! The ingest inbox: list, assign to a subject and visit, discard.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/inbox", get(list)),
        ("POST", "/inbox/{item}/assign", post(assign)),
        ("POST", "/inbox/{item}/discard", post(discard)),
    ]
}

async fn list(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.list_inbox(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    subject_id: Uuid,
    visit_id: String,
    reason: String,
}

async fn assign(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(item): Path<Uuid>,
    Json(b): Json<Assign>,
) -> ApiResult<Response> {
    let outcome = s.app.assign_inbox(&actor, item, b.subject_id, &b.visit_id, &b.reason).await?;
    Ok(Json(outcome).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn discard(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(item): Path<Uuid>,
    Json(b): Json<Reason>,
) -> ApiResult<StatusCode> {
    s.app.discard_inbox(&actor, item, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}
