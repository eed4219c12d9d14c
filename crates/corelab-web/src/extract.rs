//! Request extractors: who is calling.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use corelab_app::{Actor, AppError};

use crate::error::ApiError;
use crate::{WebSettings, WebState};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "corelab_session";

/// A `Set-Cookie` value for the session cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS);
/// an empty value with `Some(0)` deletes it. The API and the pages set it the same way.
pub fn session_cookie(settings: &WebSettings, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if settings.secure_cookies {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("corelab_session=; Path=/"))
}

/// The authenticated caller. Rejects with 401 when there is no valid session.
pub struct Authenticated(pub Actor);

/// The session token from the request's cookie, if any.
pub fn session_token(parts: &Parts) -> Option<String> {
    parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then(|| v.to_string())
        })
    })
}

impl FromRequestParts<WebState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        if let Some(bearer) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        {
            let actor = state.app.authenticate_token(bearer.trim()).await?;
            return Ok(Authenticated(actor));
        }
        let Some(token) = session_token(parts) else {
            return Err(AppError::Unauthenticated(
                "log in first (POST /api/v1/auth/login) or send an API token as Authorization: Bearer clt_...".into(),
            )
            .into());
        };
        let actor = state.app.authenticate_session(&token).await?;
        Ok(Authenticated(actor))
    }
}

/// An authenticated caller who has no pending forced password change.
pub struct Ready(pub Actor);

impl FromRequestParts<WebState> for Ready {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let Authenticated(actor) = Authenticated::from_request_parts(parts, state).await?;
        if actor.must_change_password {
            return Err(AppError::Forbidden(
                "change your password first: POST /api/v1/auth/password with current_password and new_password".into(),
            )
            .into());
        }
        Ok(Ready(actor))
    }
}
