//! Login, logout, the current account, password change.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Authenticated;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("POST", "/auth/login", post(login)),
        ("POST", "/auth/logout", post(logout)),
        ("POST", "/auth/password", post(change_password)),
        ("GET", "/me", get(me)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

fn session_cookie(state: &WebState, value: &str, max_age: Option<i64>) -> HeaderValue {
    crate::extract::session_cookie(&state.settings, value, max_age)
}

async fn login(State(state): State<WebState>, Json(body): Json<LoginBody>) -> ApiResult<Response> {
    let outcome = state.app.login(&body.username, &body.password).await?;
    let cookie = session_cookie(&state, &outcome.token, None);
    let a = &outcome.actor;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "username": a.username,
            "display_name": a.display_name,
            "must_change_password": a.must_change_password,
        })),
    )
        .into_response())
}

async fn logout(State(state): State<WebState>, Authenticated(actor): Authenticated) -> ApiResult<Response> {
    state.app.logout(&actor).await?;
    Ok(([(header::SET_COOKIE, session_cookie(&state, "", Some(0)))], StatusCode::NO_CONTENT).into_response())
}

async fn me(Authenticated(actor): Authenticated) -> impl IntoResponse {
    Json(json!({
        "username": actor.username,
        "display_name": actor.display_name,
        "is_system_admin": actor.is_system_admin,
        "must_change_password": actor.must_change_password,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<WebState>,
    Authenticated(actor): Authenticated,
    Json(body): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    state.app.change_password(&actor, &body.current_password, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
