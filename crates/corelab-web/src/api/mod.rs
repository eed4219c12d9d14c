//! The REST API under `/api/v1`.

mod auth;
mod documents;

use axum::Router;

use crate::WebState;

pub fn router() -> Router<WebState> {
    Router::new().merge(auth::router()).merge(documents::router())
}
