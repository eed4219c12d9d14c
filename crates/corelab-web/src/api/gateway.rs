//! What a site gateway fetches from central: `GET /api/v1/gateway/config` (docs/gateway.md).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::AppError;
use corelab_app::gateway::Heartbeat;
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/gateway/config", get(config)),
        ("POST", "/gateway/heartbeat", post(heartbeat)),
        ("GET", "/trials/{trial}/gateways", get(health)),
    ]
}

#[derive(Deserialize)]
struct ConfigQuery {
    trial: Option<String>,
    site: Option<String>,
}

fn trial_of(q: &ConfigQuery) -> Result<Option<Uuid>, AppError> {
    match q.trial.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => Ok(Some(t.parse().map_err(|_| AppError::invalid("trial", "trial must be a trial id (a UUID)"))?)),
    }
}

/// A gateway's heartbeat (its token names trial and site).
async fn heartbeat(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Query(q): Query<ConfigQuery>,
    Json(b): Json<Heartbeat>,
) -> ApiResult<Response> {
    let trial = trial_of(&q)?;
    Ok(Json(s.app.gateway_heartbeat(&actor, trial, q.site.as_deref(), &b).await?).into_response())
}

/// The trial's site gateways and their health.
async fn health(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.gateway_health(&actor, trial).await?).into_response())
}

/// The site's gateway settings; trial and site default to the API token's scope.
async fn config(State(s): State<WebState>, Ready(actor): Ready, Query(q): Query<ConfigQuery>) -> ApiResult<Response> {
    let trial = match q.trial.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| AppError::invalid("trial", "trial must be a trial id (a UUID)"))?),
    };
    Ok(Json(s.app.gateway_config(&actor, trial, q.site.as_deref()).await?).into_response())
}
