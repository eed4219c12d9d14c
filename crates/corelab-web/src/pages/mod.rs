//! The server-rendered web UI under `/`: askama templates, a small CSS file, htmx for a few
//! enhancements (every page and form also works without JavaScript).
//!
//! Pages call the same use cases as the API, so what a page shows or refuses is decided in
//! `corelab-app` exactly as for the API: an object out of the caller's scope is a 404 page, a
//! forbidden action a 403 page, and every error page says what to do next.
//!
//! Sessions are the API's: the `corelab_session` cookie (HttpOnly, SameSite=Strict). Every form
//! POST also carries an anti-CSRF token bound to the session (see [`session`]); the login form,
//! which has no session yet, uses a double-submit cookie. The route table below is the only
//! place pages are routed; [`route_list`] lets tests enumerate it.

mod admin;
mod assets;
mod audit;
mod auth;
mod calendar;
mod charter_view;
mod dashboard;
mod error;
mod inbox;
mod qc;
mod queries;
mod reads;
mod reports;
mod session;
mod sign;
mod sites;
mod subjects;
mod trials;
mod upload;
mod view;
mod workstation;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

use crate::WebState;

pub use error::{PageError, not_found_fallback};
pub use reports::{chromium, print_pdf, report_document};
pub use session::{CSRF_FIELD, LOGIN_CSRF_COOKIE, csrf_token_for};
pub use workstation::WORKSTATION_CSP;

/// One page route: HTTP method, path, handler.
pub type Route = (&'static str, &'static str, MethodRouter<WebState>);

fn table() -> Vec<Route> {
    vec![
        ("GET", "/", get(trials::home)),
        ("GET", "/static/{file}", get(assets::serve)),
        ("GET", "/login", get(auth::login_page)),
        ("POST", "/login", post(auth::login)),
        ("POST", "/logout", post(auth::logout)),
        ("GET", "/password", get(auth::password_page)),
        ("POST", "/password", post(auth::change_password)),
        ("GET", "/trials", get(trials::list)),
        ("GET", "/trials/{trial}", get(trials::page)),
        ("GET", "/trials/{trial}/charter", get(trials::charter)),
        ("GET", "/trials/{trial}/charter/diff", get(trials::diff)),
        ("GET", "/trials/{trial}/calendar", get(calendar::page)),
        ("GET", "/trials/{trial}/dashboard", get(dashboard::page)),
        ("POST", "/trials/{trial}/subjects", post(subjects::enroll)),
        ("GET", "/trials/{trial}/training", get(trials::training)),
        ("GET", "/trials/{trial}/reports", get(reports::list)),
        ("GET", "/trials/{trial}/reports/{report}", get(reports::show)),
        ("POST", "/trials/{trial}/training", post(trials::attest)),
        ("GET", "/trials/{trial}/grants", get(admin::grants)),
        ("POST", "/trials/{trial}/grants", post(admin::grant)),
        ("POST", "/trials/{trial}/grants/{grant}/revoke", post(admin::revoke)),
        ("GET", "/trials/{trial}/qc", get(qc::queue)),
        ("GET", "/trials/{trial}/qc/{subject}/{visit}", get(qc::review)),
        ("GET", "/trials/{trial}/qc/{subject}/{visit}/decide", get(qc::decide_page)),
        ("POST", "/trials/{trial}/qc/{subject}/{visit}/decision", post(qc::decide)),
        ("GET", "/trials/{trial}/queries", get(queries::list)),
        ("GET", "/trials/{trial}/queries/{query}", get(queries::page)),
        ("POST", "/trials/{trial}/queries/{query}/messages", post(queries::answer)),
        ("POST", "/trials/{trial}/queries/{query}/close", post(queries::close)),
        ("POST", "/trials/{trial}/queries/{query}/reopen", post(queries::reopen)),
        ("GET", "/trials/{trial}/inbox", get(inbox::list)),
        ("POST", "/trials/{trial}/inbox/{item}/assign", post(inbox::assign)),
        ("POST", "/trials/{trial}/inbox/{item}/discard", post(inbox::discard)),
        ("GET", "/trials/{trial}/sites/{site}", get(sites::page)),
        ("POST", "/trials/{trial}/sites/{site}/qualification/scans", sites::upload_route()),
        ("GET", "/trials/{trial}/sites/{site}/upload", get(upload::page)),
        ("POST", "/trials/{trial}/sites/{site}/upload", upload::upload_route()),
        ("GET", "/trials/{trial}/sites/{site}/qualification/decide", get(sites::decide_page)),
        ("POST", "/trials/{trial}/sites/{site}/qualification/decision", post(sites::decide)),
        ("GET", "/read-tasks/{task}/workstation", get(workstation::page)),
        ("GET", "/viewer/{*path}", get(workstation::asset)),
        ("GET", "/subjects/{subject}", get(subjects::page)),
        ("POST", "/subjects/{subject}/correct", post(subjects::correct)),
        ("POST", "/subjects/{subject}/withdraw", post(subjects::withdraw)),
        ("GET", "/subjects/{subject}/sign", get(subjects::sign_page)),
        ("POST", "/subjects/{subject}/sign", post(subjects::sign)),
        ("GET", "/trials/{trial}/reading", get(reads::reading)),
        ("GET", "/read-tasks/{task}", get(reads::task)),
        ("GET", "/trials/{trial}/adjudication", get(reads::adjudications)),
        ("GET", "/adjudications/{adjudication}", get(reads::adjudication)),
        ("GET", "/adjudications/{adjudication}/decide", get(reads::decide_page)),
        ("POST", "/adjudications/{adjudication}/decision", post(reads::decide)),
        ("GET", "/audit", get(audit::page)),
        ("GET", "/admin/users", get(admin::users)),
        ("POST", "/admin/users", post(admin::create_user)),
        ("POST", "/admin/users/{username}/disable", post(admin::disable_user)),
        ("POST", "/admin/users/{username}/enable", post(admin::enable_user)),
        ("POST", "/admin/users/{username}/reset-password", post(admin::reset_password)),
    ]
}

/// The pages, with the security headers every page response carries.
pub fn router() -> Router<WebState> {
    table()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| r.route(path, handler))
        .fallback(not_found_fallback)
        .layer(axum::middleware::map_response(security_headers))
}

/// Every page route as (method, path), e.g. ("GET", "/trials/{trial}").
pub fn route_list() -> Vec<(&'static str, String)> {
    table().into_iter().map(|(m, p, _)| (m, p.to_string())).collect()
}

/// The Content-Security-Policy of every page: scripts and styles only from corelab itself (no
/// inline code), no framing, forms only to corelab.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(resp: Response) -> Response {
    let mut resp = error::explain_rejection(resp).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: HeaderName, v: &'static str| {
        if !h.contains_key(&k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    };
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // Pages show trial records and one-time passwords: never keep them in a cache.
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}
