//! The use-case error. Each variant maps to one kind of response at the edge; messages are for the
//! user (what is wrong, what to do next) and never carry internal details or PHI. Internal causes
//! are kept for the log only.

use corelab_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not logged in, or the session or token is no longer valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// Logged in, the object is visible, but this action is not allowed for this role.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist or is outside the actor's scope (the two are not distinguished).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or breaks a rule; `field` names the input at fault.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    /// The request conflicts with the current state (duplicate, already done).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// A charter with problems; each names its line, key, what is wrong and how to fix it.
    #[error("the charter has {} problem(s)", .0.len())]
    InvalidCharter(Vec<corelab_domain::charter::Problem>),
    /// A dependency (database, blob store) is not reachable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the edge logs the cause and shows a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid { field: Some(field.to_string()), message: message.into() }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
        AppError::Internal(Box::new(e))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit } => {
                AppError::TooLarge(format!("the upload exceeds the limit of {limit} bytes"))
            }
            other => AppError::Internal(Box::new(other)),
        }
    }
}
