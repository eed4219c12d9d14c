//! corelab's HTTP edge: the REST API, DICOMweb, the web pages, health and metrics endpoints.
//!
//! Handlers are thin: they extract input, call one use case on [`corelab_app::App`] and turn the
//! result into a response. Authorization is decided in the use cases, not here. [`error::ApiError`]
//! is the one place where errors become HTTP responses.

pub mod api;
pub mod dicomweb;
pub mod error;
pub mod extract;
pub mod observe;
pub mod pages;

use axum::Router;
use corelab_app::App;

pub use observe::metrics_handle;

/// Settings of the HTTP edge.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// Mark session cookies `Secure` (set when corelab is served over HTTPS).
    pub secure_cookies: bool,
    /// Size limits of DICOMweb STOW-RS requests.
    pub stow: dicomweb::StowLimits,
    /// Origins (`https://viewer.example`) whose browser pages may GET the DICOMweb read side
    /// with an API token (`dicomweb.cors_origins`); see [`dicomweb::cors`].
    pub cors_origins: Vec<String>,
    /// The reader workstation's bundle (`http.viewer_dir`); none: `web/viewer/dist` of the
    /// source tree corelab was built from.
    pub viewer_dir: Option<std::path::PathBuf>,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct WebState {
    pub app: App,
    pub settings: WebSettings,
}

/// The whole HTTP application.
pub fn router(app: App, settings: WebSettings) -> Router {
    // Install the recorder before the first request is counted.
    let _ = metrics_handle();
    let state = WebState { app, settings };
    let dicomweb = dicomweb::router().layer(axum::middleware::from_fn_with_state(state.clone(), dicomweb::cors));
    Router::new()
        .merge(observe::router())
        .nest(api::PREFIX, api::router())
        .merge(pages::router())
        .nest(dicomweb::PREFIX, dicomweb)
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::track))
}
