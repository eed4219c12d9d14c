//! DICOMweb (PS3.18) under `/dicomweb`, outside the REST API: STOW-RS, QIDO-RS and WADO-RS.
//!
//! Built from one route table like the REST API, so the authorization matrix test can enumerate
//! these routes through [`route_list`].

pub(crate) mod body;
mod read;
mod response;
mod stow;

use axum::Router;
use axum::routing::{get, post};

use crate::WebState;
use crate::api::Route;

/// Prefix of every DICOMweb route.
pub const PREFIX: &str = "/dicomweb";

fn table() -> Vec<Route> {
    vec![
        ("POST", "/studies", post(stow::store)),
        ("POST", "/studies/{study}", post(stow::store_in_study)),
        ("GET", "/studies", get(read::search_studies)),
        ("GET", "/studies/{study}", get(read::retrieve_study)),
        ("GET", "/studies/{study}/metadata", get(read::study_metadata)),
        ("GET", "/studies/{study}/series", get(read::search_series)),
        ("GET", "/studies/{study}/series/{series}", get(read::retrieve_series)),
        ("GET", "/studies/{study}/series/{series}/metadata", get(read::series_metadata)),
        ("GET", "/studies/{study}/series/{series}/instances", get(read::search_instances)),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}", get(read::retrieve_instance)),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}/metadata", get(read::instance_metadata)),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(read::retrieve_frames)),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}/rendered", get(read::retrieve_rendered)),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}", get(read::retrieve_bulk)),
    ]
}

pub fn router() -> Router<WebState> {
    table().into_iter().fold(Router::new(), |r, (_, path, handler)| r.route(path, handler))
}

/// Every DICOMweb route as (method, full path), e.g. ("POST", "/dicomweb/studies").
pub fn route_list() -> Vec<(&'static str, String)> {
    table().into_iter().map(|(m, p, _)| (m, format!("{PREFIX}{p}"))).collect()
}

/// Limits of STOW-RS requests (configuration `dicomweb.*`).
#[derive(Debug, Clone)]
pub struct StowLimits {
    /// Largest part (one instance), in bytes.
    pub max_part_bytes: u64,
    /// Largest request body, in bytes.
    pub max_request_bytes: u64,
}

/// 4 GiB: the largest value a DICOM element length can state (multi-frame and whole-slide
/// instances come close); a larger part cannot be a valid explicit-length instance anyway.
pub const DEFAULT_MAX_PART_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// 16 GiB per request: a few large studies; bigger uploads are split into several requests.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024 * 1024;

impl Default for StowLimits {
    fn default() -> Self {
        StowLimits { max_part_bytes: DEFAULT_MAX_PART_BYTES, max_request_bytes: DEFAULT_MAX_REQUEST_BYTES }
    }
}

/// CORS for the read side, for a browser viewer (Cornerstone's loader, OHIF) served from another
/// origin: only origins listed in `dicomweb.cors_origins`, only `GET`, only the `Authorization`
/// and `Accept` request headers (so an API token, never the session cookie: no credentials mode).
/// Anything else gets no CORS headers, so the browser refuses it. Empty list: no CORS at all.
pub async fn cors(
    axum::extract::State(s): axum::extract::State<WebState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, Method, StatusCode, header};
    use axum::response::IntoResponse;
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| s.settings.cors_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else { return next.run(req).await };
    let preflight = req.method() == Method::OPTIONS;
    if preflight {
        let asks_get = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).is_some_and(|m| m.as_bytes() == b"GET");
        if !asks_get {
            return next.run(req).await;
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, accept"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return r;
    }
    let is_get = req.method() == Method::GET;
    let mut r = next.run(req).await;
    if is_get {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("content-type, content-length"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}
