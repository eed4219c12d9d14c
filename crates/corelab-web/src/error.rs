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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = match &self.0 {
            AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", None),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            AppError::Invalid { field, .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", field.clone()),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
            AppError::InvalidCharter(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_charter", None),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        };
        let message = match &self.0 {
            AppError::Internal(cause) => {
                // The cause goes to the log with an id the user can quote; the user sees only the id.
                let incident = uuid::Uuid::new_v4();
                tracing::error!(%incident, error = %cause, source = ?std::error::Error::source(cause.as_ref()), "internal error");
                format!(
                    "something went wrong on the server; it has been logged as incident {incident}, please report it"
                )
            }
            AppError::Unavailable(reason) => {
                tracing::warn!(%reason, "dependency unavailable");
                self.0.to_string()
            }
            other => other.to_string(),
        };
        let mut body = json!({"error": {"code": code, "message": message}});
        if let Some(f) = field {
            body["error"]["field"] = json!(f);
        }
        if let AppError::InvalidCharter(problems) = &self.0 {
            body["error"]["problems"] = json!(problems);
            body["error"]["message"] = json!(problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"));
        }
        (status, Json(body)).into_response()
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
