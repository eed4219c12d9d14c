//! What a site gateway fetches from central: `GET /api/v1/gateway/config` (docs/gateway.md).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use corelab_app::AppError;
use serde::Deserialize;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![("GET", "/gateway/config", get(config))]
}

#[derive(Deserialize)]
struct ConfigQuery {
    trial: Option<String>,
    site: Option<String>,
}

/// The site's gateway settings; trial and site default to the API token's scope.
async fn config(State(s): State<WebState>, Ready(actor): Ready, Query(q): Query<ConfigQuery>) -> ApiResult<Response> {
    let trial = match q.trial.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| AppError::invalid("trial", "trial must be a trial id (a UUID)"))?),
    };
    Ok(Json(s.app.gateway_config(&actor, trial, q.site.as_deref()).await?).into_response())
}
