//! The REST API under `/api/v1`, built from one route table so that tests can enumerate every
//! route (the authorization matrix test fails for a route it has no entry for).

mod audit;
mod auth;
mod documents;
mod exports;
mod gateway;
mod identity;
mod inbox;
mod locks;
mod qc;
mod reads;
mod sites;
mod subjects;
mod trials;

use axum::Router;
use axum::routing::MethodRouter;

use crate::WebState;

/// Prefix of every API route.
pub const PREFIX: &str = "/api/v1";

/// One route: HTTP method, path under [`PREFIX`], handler.
pub type Route = (&'static str, &'static str, MethodRouter<WebState>);

fn table() -> Vec<Route> {
    let mut t = Vec::new();
    t.extend(auth::routes());
    t.extend(documents::routes());
    t.extend(identity::routes());
    t.extend(trials::routes());
    t.extend(subjects::routes());
    t.extend(sites::routes());
    t.extend(audit::routes());
    t.extend(qc::routes());
    t.extend(inbox::routes());
    t.extend(reads::routes());
    t.extend(exports::routes());
    t.extend(locks::routes());
    t.extend(gateway::routes());
    t
}

pub fn router() -> Router<WebState> {
    table().into_iter().fold(Router::new(), |r, (_, path, handler)| r.route(path, handler))
}

/// Every API route as (method, full path), e.g. ("GET", "/api/v1/trials/{trial}").
pub fn route_list() -> Vec<(&'static str, String)> {
    table().into_iter().map(|(m, p, _)| (m, format!("{PREFIX}{p}"))).collect()
}
