//! QC: the visit grid, a visit's QC detail and review, the QC queue, data queries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::AppError;
use corelab_app::qc::Outcome;
use corelab_app::signatures::SigningCredentials;
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/visits", get(grid)),
        ("GET", "/trials/{trial}/qc-queue", get(queue)),
        ("GET", "/subjects/{subject}/visits/{visit}", get(visit)),
        ("POST", "/subjects/{subject}/visits/{visit}/qc", post(decide)),
        ("GET", "/trials/{trial}/queries", get(queries)),
        ("POST", "/subjects/{subject}/queries", post(raise)),
        ("GET", "/queries/{query}", get(query)),
        ("POST", "/queries/{query}/messages", post(answer)),
        ("POST", "/queries/{query}/close", post(close)),
        ("POST", "/queries/{query}/reopen", post(reopen)),
    ]
}

async fn grid(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.visit_grid(&actor, trial).await?).into_response())
}

async fn queue(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.qc_queue(&actor, trial).await?).into_response())
}

async fn visit(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((subject, visit)): Path<(Uuid, String)>,
) -> ApiResult<Response> {
    Ok(Json(s.app.visit_detail(&actor, subject, &visit).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// accept, accept_with_deviation or reject
    outcome: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

async fn decide(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((subject, visit)): Path<(Uuid, String)>,
    Json(b): Json<Decision>,
) -> ApiResult<Response> {
    let outcome = Outcome::parse(&b.outcome)
        .ok_or_else(|| AppError::invalid("outcome", "outcome is accept, accept_with_deviation or reject"))?;
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.decide_visit_qc(&actor, subject, &visit, outcome, &b.reason, creds).await?).into_response())
}

async fn queries(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.list_queries(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raise {
    #[serde(default)]
    visit_id: Option<String>,
    title: String,
    body: String,
}

async fn raise(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(subject): Path<Uuid>,
    Json(b): Json<Raise>,
) -> ApiResult<Response> {
    let q = s.app.raise_query(&actor, subject, b.visit_id.as_deref(), &b.title, &b.body).await?;
    Ok((StatusCode::CREATED, Json(q)).into_response())
}

async fn query(State(s): State<WebState>, Ready(actor): Ready, Path(id): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.get_query(&actor, id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    body: String,
}

async fn answer(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(id): Path<Uuid>,
    Json(b): Json<Message>,
) -> ApiResult<Response> {
    Ok(Json(s.app.answer_query(&actor, id, &b.body).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn close(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(id): Path<Uuid>,
    Json(b): Json<Reason>,
) -> ApiResult<Response> {
    Ok(Json(s.app.set_query_open(&actor, id, false, &b.reason).await?).into_response())
}

async fn reopen(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(id): Path<Uuid>,
    Json(b): Json<Reason>,
) -> ApiResult<Response> {
    Ok(Json(s.app.set_query_open(&actor, id, true, &b.reason).await?).into_response())
}
