//! Errors on pages: an HTML page that says what happened and what to do next, with a way back.
//! The status and message come from [`crate::error::describe`], the same as the API's.

use askama::Template;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use corelab_app::AppError;

use super::view::Chrome;
use crate::error::{ApiError, describe};

#[derive(Debug)]
pub enum PageError {
    /// A use case refused or failed; `back` is the page the form came from.
    App { error: AppError, back: Option<String> },
    /// Not logged in (or the session ended): to the login page, then back to `next`.
    Login { next: Option<String>, htmx: bool, expired: bool },
    /// A generated password must be changed before anything else.
    ChangePassword,
    /// A form without this session's anti-CSRF token.
    Csrf,
    /// A template failed to render (a bug).
    Render(askama::Error),
}

impl From<AppError> for PageError {
    fn from(error: AppError) -> Self {
        PageError::App { error, back: None }
    }
}

/// Adds the page to go back to when a use case refuses a form.
pub trait Back<T> {
    fn back(self, to: impl Into<String>) -> Result<T, PageError>;
}

impl<T> Back<T> for Result<T, AppError> {
    fn back(self, to: impl Into<String>) -> Result<T, PageError> {
        self.map_err(|error| PageError::App { error, back: Some(to.into()) })
    }
}

pub type PageResult = Result<Response, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    heading: &'static str,
    message: String,
    next_step: &'static str,
    back: Option<String>,
}

fn page(
    status: StatusCode,
    heading: &'static str,
    message: String,
    next_step: &'static str,
    back: Option<String>,
) -> Response {
    let p =
        ErrorPage { chrome: Chrome::anonymous(heading), status: status.as_u16(), heading, message, next_step, back };
    match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the error page did not render");
            (status, "corelab: an error page failed to render; go back and try again").into_response()
        }
    }
}

fn login_url(next: Option<&str>, expired: bool) -> String {
    let mut q = Vec::new();
    if let Some(n) = next.filter(|n| *n != "/" && !n.starts_with("/login")) {
        q.push(format!("next={}", urlencode(n)));
    }
    if expired {
        q.push("expired=1".into());
    }
    if q.is_empty() { "/login".into() } else { format!("/login?{}", q.join("&")) }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login { next, htmx, expired } => {
                let to = login_url(next.as_deref(), expired);
                if htmx {
                    // htmx follows this header with a full page load instead of swapping a fragment.
                    (StatusCode::UNAUTHORIZED, [("hx-redirect", to)]).into_response()
                } else {
                    Redirect::to(&to).into_response()
                }
            }
            PageError::ChangePassword => Redirect::to("/password").into_response(),
            PageError::Csrf => page(
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not carry the security token of your current session (it was sent from another \
                 site, or from a page opened before you last logged in), so nothing was changed."
                    .into(),
                "Go back, reload the page and send the form again.",
                None,
            ),
            PageError::Render(e) => {
                let incident = uuid::Uuid::new_v4();
                tracing::error!(%incident, error = %e, "page template failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    format!("the page could not be shown; it has been logged as incident {incident}, please report it"),
                    "Go back and try again; if it happens again, report the incident number.",
                    None,
                )
            }
            PageError::App { error: AppError::Unauthenticated(_), .. } => {
                Redirect::to(&login_url(None, true)).into_response()
            }
            PageError::App { error, back } => {
                let (status, _, message) = describe(&error);
                let (heading, next_step) = match status {
                    StatusCode::NOT_FOUND => (
                        "Not found",
                        "It does not exist, or it is outside what your roles let you see. Go back to your trials.",
                    ),
                    StatusCode::FORBIDDEN => (
                        "Not allowed",
                        "Your roles do not allow this. If your work needs it, ask the trial manager for the role.",
                    ),
                    StatusCode::UNPROCESSABLE_ENTITY => {
                        ("Please correct the form", "Go back, correct it and send it again.")
                    }
                    StatusCode::CONFLICT => {
                        ("Not possible now", "Go back and reload the page: it shows the current state.")
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => ("Too large", "Go back and send a smaller file."),
                    StatusCode::SERVICE_UNAVAILABLE => (
                        "Temporarily unavailable",
                        "Nothing was changed. Try again in a minute; tell the administrator if it persists.",
                    ),
                    _ => (
                        "Something went wrong",
                        "Go back and try again; if it happens again, report the incident number.",
                    ),
                };
                page(status, heading, message, next_step, back)
            }
        }
    }
}

/// Unknown paths: the API's JSON 404 under `/api/`, a page with a way back everywhere else.
pub async fn not_found_fallback(uri: Uri) -> Response {
    let msg = format!("there is no page {}", uri.path());
    if uri.path().starts_with("/api/") {
        return ApiError(AppError::NotFound(format!("no route {}", uri.path()))).into_response();
    }
    let mut resp = page(StatusCode::NOT_FOUND, "Not found", msg, "Check the address, or go back to your trials.", None);
    resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

/// axum's own refusals (an unreadable id in the path, a query or form it cannot parse, a wrong
/// method) come as plain text; on pages they become an error page with a way back.
pub async fn explain_rejection(resp: Response) -> Response {
    let status = resp.status();
    let refusal = [
        StatusCode::BAD_REQUEST,
        StatusCode::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY,
    ]
    .contains(&status);
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html") || v.starts_with("application/json"));
    if !refusal || is_html {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let (heading, next_step) = match status {
        StatusCode::NOT_FOUND => ("Not found", "Check the address, or go back to your trials."),
        StatusCode::PAYLOAD_TOO_LARGE => ("Too large", "Go back and send a smaller file."),
        _ => ("Not understood", "The address or the form was not understood. Go back, reload the page and try again."),
    };
    let message = if text.trim().is_empty() { format!("error {}", status.as_u16()) } else { text };
    page(status, heading, message, next_step, None)
}
