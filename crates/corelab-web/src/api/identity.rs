//! Accounts (system administrators), role grants (trial managers), API tokens (everyone).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::AppError;
use corelab_app::grants::NewGrant;
use corelab_app::tokens::NewToken;
use corelab_app::users::NewUser;
use corelab_domain::access::Role;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/users", get(list_users)),
        ("POST", "/users", post(create_user)),
        ("POST", "/users/{username}/disable", post(disable_user)),
        ("POST", "/users/{username}/enable", post(enable_user)),
        ("POST", "/users/{username}/reset-password", post(reset_password)),
        ("GET", "/trials/{trial}/grants", get(list_grants)),
        ("POST", "/trials/{trial}/grants", post(grant)),
        ("POST", "/trials/{trial}/grants/{grant}/revoke", post(revoke_grant)),
        ("GET", "/tokens", get(list_tokens)),
        ("POST", "/tokens", post(create_token)),
        ("POST", "/tokens/{token}/revoke", post(revoke_token)),
    ]
}

pub(crate) fn parse_role(s: &str) -> Result<Role, AppError> {
    Role::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        AppError::invalid("role", format!("unknown role {s:?}; roles are {}", names.join(", ")))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    display_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    is_system_admin: bool,
    #[serde(default)]
    password: Option<String>,
}

async fn create_user(State(s): State<WebState>, Ready(actor): Ready, Json(b): Json<CreateUser>) -> ApiResult<Response> {
    let created = s
        .app
        .create_user(
            &actor,
            NewUser {
                username: b.username,
                display_name: b.display_name,
                email: b.email,
                is_system_admin: b.is_system_admin,
                password: b.password,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"user": created.user, "generated_password": created.generated_password})))
        .into_response())
}

async fn list_users(State(s): State<WebState>, Ready(actor): Ready) -> ApiResult<Response> {
    Ok(Json(s.app.list_users(&actor).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn disable_user(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(username): Path<String>,
    Json(b): Json<Reason>,
) -> ApiResult<StatusCode> {
    s.app.set_user_disabled(&actor, &username, true, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable_user(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(username): Path<String>,
    Json(b): Json<Reason>,
) -> ApiResult<StatusCode> {
    s.app.set_user_disabled(&actor, &username, false, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(username): Path<String>,
    Json(b): Json<Reason>,
) -> ApiResult<Response> {
    let pw = s.app.reset_password(&actor, &username, &b.reason).await?;
    Ok(Json(json!({"generated_password": pw, "must_change_password": true})).into_response())
}

async fn list_grants(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.list_grants(&actor, trial).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    user_id: Uuid,
    role: String,
    #[serde(default)]
    site_id: Option<String>,
    #[serde(default)]
    unblinded: bool,
}

async fn grant(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<GrantBody>,
) -> ApiResult<Response> {
    let g = NewGrant { user_id: b.user_id, role: parse_role(&b.role)?, site_id: b.site_id, unblinded: b.unblinded };
    Ok((StatusCode::CREATED, Json(s.app.grant_role(&actor, trial, g).await?)).into_response())
}

async fn revoke_grant(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, grant)): Path<(Uuid, Uuid)>,
    Json(b): Json<Reason>,
) -> ApiResult<StatusCode> {
    s.app.revoke_grant(&actor, trial, grant, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(State(s): State<WebState>, Ready(actor): Ready) -> ApiResult<Response> {
    Ok(Json(s.app.list_tokens(&actor).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    trial_id: Uuid,
    role: String,
    #[serde(default)]
    site_id: Option<String>,
    #[serde(default = "default_days")]
    expires_in_days: i64,
}

fn default_days() -> i64 {
    90
}

async fn create_token(State(s): State<WebState>, Ready(actor): Ready, Json(b): Json<TokenBody>) -> ApiResult<Response> {
    let t = NewToken {
        name: b.name,
        trial_id: b.trial_id,
        role: parse_role(&b.role)?,
        site_id: b.site_id,
        expires_in_days: b.expires_in_days,
    };
    let created = s.app.create_token(&actor, t).await?;
    Ok((StatusCode::CREATED, Json(json!({"token": created.token, "secret": created.secret}))).into_response())
}

async fn revoke_token(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(token): Path<Uuid>,
) -> ApiResult<StatusCode> {
    s.app.revoke_token(&actor, token).await?;
    Ok(StatusCode::NO_CONTENT)
}
