//! Who is looking at a page, and the anti-CSRF check of every form.
//!
//! **CSRF.** Two layers. The session cookie is `SameSite=Strict`, so a browser does not send it
//! with a request started by another site. And every form carries a hidden `csrf` field whose
//! value is bound to the session: `hex(SHA-256("corelab-csrf-v1\0" ‖ session token))`. Only a page
//! rendered for this session knows it (the token itself is in an HttpOnly cookie no script can
//! read), it needs no server-side state (any corelab process can check it), it dies with the
//! session, and the database, which keeps only SHA-256(token), cannot be used to compute it.
//! The login form has no session yet: it uses a double-submit cookie (`corelab_login_csrf`, a
//! random value set by the login page, HttpOnly, SameSite=Strict, that the POST must echo).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use corelab_app::{Actor, AppError};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::PageError;
use crate::WebState;
use crate::extract::session_token;

/// Name of the hidden form field that carries the anti-CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The login form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "corelab_login_csrf";
/// Largest urlencoded form accepted (the longest is a charter-free reason text).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The anti-CSRF token of the session whose cookie value is `session_token`.
pub fn csrf_token_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"corelab-csrf-v1\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in person on a page, with the anti-CSRF token of their session. May still have to
/// change a generated password (only the password page and logout accept that).
pub struct AnyUser(pub PageUser);

/// A logged-in person with no pending forced password change.
pub struct PageUser {
    pub actor: Actor,
    pub csrf: String,
}

/// True when htmx sent the request (it then wants a fragment, not a whole page).
pub fn is_htmx(parts: &Parts) -> bool {
    parts.headers.get("hx-request").is_some_and(|v| v.as_bytes() == b"true")
}

/// The local path (and query) to come back to after logging in.
fn here(parts: &Parts) -> Option<String> {
    (parts.method == Method::GET).then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string())).flatten()
}

impl FromRequestParts<WebState> for AnyUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let login = || PageError::Login { next: here(parts), htmx: is_htmx(parts), expired: false };
        let Some(token) = session_token(parts) else { return Err(login()) };
        match state.app.authenticate_session(&token).await {
            Ok(actor) => Ok(AnyUser(PageUser { actor, csrf: csrf_token_for(&token) })),
            Err(AppError::Unauthenticated(_)) => {
                Err(PageError::Login { next: here(parts), htmx: is_htmx(parts), expired: true })
            }
            Err(e) => Err(PageError::from(e)),
        }
    }
}

impl FromRequestParts<WebState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let AnyUser(user) = AnyUser::from_request_parts(parts, state).await?;
        if user.actor.must_change_password {
            return Err(PageError::ChangePassword);
        }
        Ok(user)
    }
}

impl PageUser {
    /// Refuses a form whose anti-CSRF token is missing or not this session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), PageError> {
        match sent {
            Some(s) if same_secret(s, &self.csrf) => Ok(()),
            _ => Err(PageError::Csrf),
        }
    }
}

/// Reads a urlencoded body: the anti-CSRF token it carries, and the raw bytes for the form.
async fn read_body(body: axum::body::Body) -> Result<(Option<String>, Bytes), PageError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::TooLarge(format!("a form may be at most {MAX_FORM_BYTES} bytes; shorten the text")))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let csrf = pairs.into_iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v);
    Ok((csrf, bytes))
}

/// Parses a form whose token was checked.
pub fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes::<T>(bytes).map_err(|e| {
        PageError::from(AppError::Invalid {
            field: None,
            message: format!("the form could not be read ({e}); reload the page and fill it in again"),
        })
    })
}

/// A form POST from a ready user, its anti-CSRF token checked before anything else is read.
pub struct Posted<T>(pub PageUser, pub T);

/// A form POST from any logged-in user (also one who must still change a generated password).
pub struct PostedAny<T>(pub PageUser, pub T);

async fn posted<T: DeserializeOwned>(req: Request, state: &WebState, ready: bool) -> Result<(PageUser, T), PageError> {
    let (mut parts, body) = req.into_parts();
    let user = if ready {
        PageUser::from_request_parts(&mut parts, state).await?
    } else {
        AnyUser::from_request_parts(&mut parts, state).await?.0
    };
    let (csrf, bytes) = read_body(body).await?;
    // The token is checked before the form's content is looked at.
    user.check_csrf(csrf.as_deref())?;
    Ok((user, parse_form(&bytes)?))
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (user, form) = posted(req, state, true).await?;
        Ok(Posted(user, form))
    }
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for PostedAny<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (user, form) = posted(req, state, false).await?;
        Ok(PostedAny(user, form))
    }
}

/// A `Set-Cookie` value for the login form's double-submit cookie (`None`: delete it).
pub fn login_csrf_cookie(state: &WebState, value: Option<&str>) -> HeaderValue {
    let mut c = match value {
        Some(v) => format!("{LOGIN_CSRF_COOKIE}={v}; Path=/login; HttpOnly; SameSite=Strict"),
        None => format!("{LOGIN_CSRF_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    if state.settings.secure_cookies {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("corelab_login_csrf=; Path=/login"))
}

/// The login form's double-submit cookie as sent by the browser.
pub fn login_csrf_from(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == LOGIN_CSRF_COOKIE && !v.is_empty()).then(|| v.to_string())
        })
    })
}

/// A local path to go to after a form, or `fallback` for anything that could leave corelab.
pub fn local_path(next: Option<&str>, fallback: &str) -> String {
    match next {
        // Browsers drop tabs and line breaks in URLs ("/\t/x" becomes "//x"): refuse any.
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.contains("://")
                && !p.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            p.to_string()
        }
        _ => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_differ_from_the_stored_hash() {
        let a = csrf_token_for("aaaa");
        assert_eq!(a, csrf_token_for("aaaa"));
        assert_ne!(a, csrf_token_for("aaab"));
        assert_ne!(a, hex::encode(Sha256::digest(b"aaaa")));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/trials/x?y=1"), "/trials"), "/trials/x?y=1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "/\t/evil.example", "/\n/x", "trials", ""] {
            assert_eq!(local_path(Some(bad), "/trials"), "/trials", "{bad}");
        }
        assert_eq!(local_path(None, "/trials"), "/trials");
    }
}
