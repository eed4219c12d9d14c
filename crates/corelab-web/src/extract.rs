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

/// The API token of an `Authorization` header: `Bearer TOKEN`, or HTTP Basic with the token as the
/// password (any user name), for DICOMweb clients and PACS forwarders that only speak Basic.
fn api_token(parts: &Parts) -> Result<Option<String>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(rest.trim().to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let bad = || {
            ApiError::from(AppError::Unauthenticated(
                "HTTP Basic credentials must be base64 of USER:TOKEN, with an API token (clt_...) as the password"
                    .into(),
            ))
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (_, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(password.to_string()));
    }
    Ok(None)
}

impl FromRequestParts<WebState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        if let Some(token) = api_token(parts)? {
            let actor = state.app.authenticate_token(&token).await?;
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
