//! Blinded reads: the reader's tasks (list, open, draft, submit, correct), the adjudicator's
//! adjudications (list, open, decide), and the trial manager's reader profiles, task overview,
//! metrics and accepted results. Each handler calls one use case, which authorizes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::reads::{DecisionInput, ProfileInput};
use corelab_app::signatures::SigningCredentials;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        // Readers.
        ("GET", "/trials/{trial}/reading/tasks", get(my_tasks)),
        ("GET", "/read-tasks/{task}", get(open_task)),
        ("POST", "/read-tasks/{task}/draft", post(draft)),
        ("POST", "/read-tasks/{task}/evaluate", post(evaluate)),
        ("POST", "/read-tasks/{task}/submit", post(submit)),
        ("POST", "/read-tasks/{task}/correct", post(correct)),
        ("GET", "/read-tasks/{task}/sr", get(sr)),
        // Adjudicators.
        ("GET", "/trials/{trial}/adjudication/tasks", get(my_adjudications)),
        ("GET", "/adjudications/{adjudication}", get(open_adjudication)),
        ("POST", "/adjudications/{adjudication}/decide", post(decide)),
        // Trial managers.
        ("GET", "/trials/{trial}/reader-profiles", get(profiles)),
        ("POST", "/trials/{trial}/reader-profiles", post(set_profile)),
        ("GET", "/trials/{trial}/read-tasks", get(overview)),
        ("GET", "/trials/{trial}/read-metrics", get(metrics)),
        ("GET", "/trials/{trial}/accepted-results", get(accepted)),
    ]
}

async fn my_tasks(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.my_read_tasks(&actor, trial).await?).into_response())
}

async fn open_task(State(s): State<WebState>, Ready(actor): Ready, Path(task): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.open_read_task(&actor, task).await?).into_response())
}

/// The read's latest submitted version as a DICOM SR (TID 1500) file.
async fn sr(State(s): State<WebState>, Ready(actor): Ready, Path(task): Path<Uuid>) -> ApiResult<Response> {
    let out = s.app.read_sr(&actor, task).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/dicom".to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", out.file_name)),
    ];
    Ok((headers, out.bytes).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    assessment: Value,
}

async fn draft(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(task): Path<Uuid>,
    Json(b): Json<Draft>,
) -> ApiResult<Response> {
    Ok(Json(s.app.save_read_draft(&actor, task, &b.assessment).await?).into_response())
}

/// What the engine computes for an assessment, nothing stored (the workstation shows it before signing).
async fn evaluate(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(task): Path<Uuid>,
    Json(b): Json<Draft>,
) -> ApiResult<Response> {
    Ok(Json(s.app.evaluate_read(&actor, task, &b.assessment).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    /// The read; absent = the saved draft.
    #[serde(default)]
    assessment: Option<Value>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: String,
}

async fn submit(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(task): Path<Uuid>,
    Json(b): Json<Submit>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.submit_read(&actor, task, b.assessment.as_ref(), creds).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Correct {
    #[serde(default)]
    assessment: Value,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: String,
}

async fn correct(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(task): Path<Uuid>,
    Json(b): Json<Correct>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.correct_read(&actor, task, &b.assessment, &b.reason, creds).await?).into_response())
}

async fn my_adjudications(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
) -> ApiResult<Response> {
    Ok(Json(s.app.my_adjudications(&actor, trial).await?).into_response())
}

async fn open_adjudication(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    Ok(Json(s.app.open_adjudication(&actor, id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    /// "reader_1" or "reader_2": that reader's whole assessment is accepted.
    #[serde(default)]
    chosen: Option<String>,
    /// Per variable (where the charter allows): variable -> "reader_1" / "reader_2".
    #[serde(default)]
    variables: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    rationale: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: String,
}

async fn decide(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(id): Path<Uuid>,
    Json(b): Json<Decide>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    let input = DecisionInput { chosen: b.chosen, variables: b.variables };
    Ok(Json(s.app.decide_adjudication(&actor, id, input, &b.rationale, creds).await?).into_response())
}

async fn profiles(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.reader_profiles(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    user_id: Uuid,
    #[serde(default)]
    therapeutic_areas: Vec<String>,
    #[serde(default)]
    criteria: Vec<String>,
    #[serde(default)]
    training_valid_until: Option<chrono::NaiveDate>,
}

async fn set_profile(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<Profile>,
) -> ApiResult<Response> {
    let input = ProfileInput {
        user_id: b.user_id,
        therapeutic_areas: b.therapeutic_areas,
        criteria: b.criteria,
        training_valid_until: b.training_valid_until,
    };
    Ok(Json(s.app.set_reader_profile(&actor, trial, input).await?).into_response())
}

async fn overview(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.read_overview(&actor, trial).await?).into_response())
}

async fn metrics(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.read_metrics(&actor, trial).await?).into_response())
}

async fn accepted(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.accepted_results(&actor, trial).await?).into_response())
}
