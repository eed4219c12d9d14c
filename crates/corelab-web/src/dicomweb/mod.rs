//! DICOMweb (PS3.18) under `/dicomweb`, outside the REST API: STOW-RS for now.
//!
//! Built from one route table like the REST API, so the authorization matrix test can enumerate
//! these routes through [`route_list`].

mod body;
mod response;
mod stow;

use axum::Router;
use axum::routing::post;

use crate::WebState;
use crate::api::Route;

/// Prefix of every DICOMweb route.
pub const PREFIX: &str = "/dicomweb";

fn table() -> Vec<Route> {
    vec![("POST", "/studies", post(stow::store)), ("POST", "/studies/{study}", post(stow::store_in_study))]
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
