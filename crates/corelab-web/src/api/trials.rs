//! Trials, charter versions and sites.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials", get(list)),
        ("POST", "/trials", post(create)),
        ("GET", "/trials/{trial}", get(one)),
        ("GET", "/trials/{trial}/charter", get(charter)),
        ("POST", "/trials/{trial}/charter", post(amend)),
        ("GET", "/trials/{trial}/charter/versions", get(versions)),
        ("GET", "/trials/{trial}/charter/diff", get(diff)),
        ("GET", "/trials/{trial}/sites", get(sites)),
        ("GET", "/trials/{trial}/sites/{site}", get(site)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// The charter file's TOML text.
    charter: String,
}

async fn create(State(s): State<WebState>, Ready(actor): Ready, Json(b): Json<CreateBody>) -> ApiResult<Response> {
    Ok((StatusCode::CREATED, Json(s.app.create_trial(&actor, &b.charter).await?)).into_response())
}

async fn list(State(s): State<WebState>, Ready(actor): Ready) -> ApiResult<Response> {
    Ok(Json(s.app.list_trials(&actor).await?).into_response())
}

async fn one(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.trial(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

async fn charter(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Response> {
    Ok(Json(s.app.charter_version(&actor, trial, q.version).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmendBody {
    charter: String,
    reason: String,
}

async fn amend(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<AmendBody>,
) -> ApiResult<Response> {
    let changes = s.app.amend_trial(&actor, trial, &b.charter, &b.reason).await?;
    Ok((StatusCode::CREATED, Json(json!({"changes": changes}))).into_response())
}

async fn versions(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.charter_versions(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
struct DiffQuery {
    from: i64,
    to: i64,
}

async fn diff(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Response> {
    Ok(Json(json!({"changes": s.app.charter_diff(&actor, trial, q.from, q.to).await?})).into_response())
}

async fn sites(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.list_sites(&actor, trial).await?).into_response())
}

async fn site(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, site)): Path<(Uuid, String)>,
) -> ApiResult<Response> {
    Ok(Json(s.app.site(&actor, trial, &site).await?).into_response())
}
