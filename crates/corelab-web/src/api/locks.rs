//! Data locks: lock a visit, a subject or the trial; list; unlock. E-signed by a trial manager;
//! the use cases authorize and audit.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::locks::LockScope;
use corelab_app::signatures::SigningCredentials;
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/locks", get(list)),
        ("POST", "/trials/{trial}/locks", post(lock)),
        ("POST", "/locks/{lock}/unlock", post(unlock)),
    ]
}

async fn list(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.data_locks(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lock {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    subject_id: Option<Uuid>,
    #[serde(default)]
    visit_id: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: String,
}

async fn lock(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<Lock>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    let scope = LockScope::parse(&b.scope, b.subject_id, b.visit_id.as_deref());
    // Authorization comes first: a caller without the role hears 403, whatever the body says.
    let view = match scope {
        Ok(scope) => s.app.lock_data(&actor, trial, scope, &b.reason, creds).await?,
        Err(e) => {
            s.app.data_lock_allowed(&actor, trial).await?;
            return Err(e.into());
        }
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unlock {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: String,
}

async fn unlock(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(lock): Path<Uuid>,
    Json(b): Json<Unlock>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.unlock_data(&actor, lock, &b.reason, creds).await?).into_response())
}
