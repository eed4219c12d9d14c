//! Site qualification and training records.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::signatures::SigningCredentials;
use futures_util::TryStreamExt;
use serde::Deserialize;
use tokio_util::io::StreamReader;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/sites/{site}/qualification", get(status)),
        ("POST", "/trials/{trial}/sites/{site}/qualification/scans", post(upload)),
        ("POST", "/trials/{trial}/sites/{site}/qualification/decision", post(decide)),
        ("GET", "/trials/{trial}/training", get(training)),
        ("POST", "/trials/{trial}/training", post(attest)),
    ]
}

async fn status(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, site)): Path<(Uuid, String)>,
) -> ApiResult<Response> {
    Ok(Json(s.app.qualification(&actor, trial, &site).await?).into_response())
}

/// One DICOM instance as the body (`Content-Type: application/dicom`).
async fn upload(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, site)): Path<(Uuid, String)>,
    req: Request,
) -> ApiResult<Response> {
    let reader = StreamReader::new(req.into_body().into_data_stream().map_err(std::io::Error::other));
    Ok((StatusCode::CREATED, Json(s.app.upload_qualification_scan(&actor, trial, &site, reader).await?))
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    approve: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

async fn decide(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, site)): Path<(Uuid, String)>,
    Json(b): Json<Decision>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.decide_qualification(&actor, trial, &site, b.approve, &b.reason, creds).await?).into_response())
}

async fn training(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.training_records(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attest {
    topic: String,
}

async fn attest(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<Attest>,
) -> ApiResult<Response> {
    Ok((StatusCode::CREATED, Json(s.app.attest_training(&actor, trial, &b.topic).await?)).into_response())
}
