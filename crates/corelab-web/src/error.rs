//! The one place where errors become HTTP responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corelab_app::AppError;
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

/// How an [`AppError`] is told to a client, by the API and the pages alike: the status, a stable
/// code and the message for the user. An internal cause is logged with an incident id and only the
/// id reaches the user.
pub fn describe(e: &AppError) -> (StatusCode, &'static str, String) {
    let (status, code) = match e {
        AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        AppError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        AppError::InvalidCharter(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_charter"),
        AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let message = match e {
        AppError::Internal(cause) => {
            // The cause goes to the log with an id the user can quote; the user sees only the id.
            let incident = uuid::Uuid::new_v4();
            tracing::error!(%incident, error = %cause, source = ?std::error::Error::source(cause.as_ref()), "internal error");
            format!("something went wrong on the server; it has been logged as incident {incident}, please report it")
        }
        AppError::Unavailable(reason) => {
            tracing::warn!(%reason, "dependency unavailable");
            e.to_string()
        }
        AppError::InvalidCharter(problems) => problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    };
    (status, code, message)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = describe(&self.0);
        let mut body = json!({"error": {"code": code, "message": message}});
        if let AppError::Invalid { field: Some(f), .. } = &self.0 {
            body["error"]["field"] = json!(f);
        }
        if let AppError::InvalidCharter(problems) = &self.0 {
            body["error"]["problems"] = json!(problems);
        }
        (status, Json(body)).into_response()
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
