//! Login, logout and password change (also the forced change after a generated password).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use corelab_app::AppError;
use serde::Deserialize;

use super::error::{PageError, PageResult};
use super::session::{
    AnyUser, PageUser, PostedAny, local_path, login_csrf_cookie, login_csrf_from, parse_form, same_secret,
};
use super::view::{Chrome, Done, render, see_other};
use crate::WebState;
use crate::extract::session_cookie;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    expired: bool,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

fn new_login_csrf() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn login_form(
    s: &WebState,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    expired: bool,
    done: &Done,
) -> PageResult {
    let page = LoginPage {
        chrome: Chrome::anonymous("Log in").notice(done),
        csrf: csrf.clone(),
        next,
        username,
        error,
        expired,
    };
    let status = if page.error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut resp = render(&page)?;
    *resp.status_mut() = status;
    resp.headers_mut().append(header::SET_COOKIE, login_csrf_cookie(s, Some(&csrf)));
    Ok(resp)
}

pub async fn login_page(
    State(s): State<WebState>,
    mut parts: Parts,
    Query(q): Query<LoginQuery>,
    Query(done): Query<Done>,
) -> PageResult {
    // Already logged in: straight on.
    if AnyUser::from_request_parts(&mut parts, &s).await.is_ok() {
        return Ok(Redirect::to(&local_path(q.next.as_deref(), "/trials")).into_response());
    }
    let next = local_path(q.next.as_deref(), "/trials");
    login_form(&s, new_login_csrf(), next, String::new(), None, q.expired.is_some(), &done)
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login(State(s): State<WebState>, headers: HeaderMap, body: Bytes) -> PageResult {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let sent = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    match (login_csrf_from(&headers), sent) {
        (Some(cookie), Some(sent)) if same_secret(&cookie, sent) => {}
        _ => return Err(PageError::Csrf),
    }
    let f: LoginForm = parse_form(&body)?;
    let next = local_path(f.next.as_deref(), "/trials");
    match s.app.login(f.username.trim(), &f.password).await {
        Ok(outcome) => {
            let to = if outcome.actor.must_change_password { "/password".to_string() } else { next };
            let mut resp = Redirect::to(&to).into_response();
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, session_cookie(&s.settings, &outcome.token, None));
            h.append(header::SET_COOKIE, login_csrf_cookie(&s, None));
            Ok(resp)
        }
        Err(AppError::Unauthenticated(msg)) => {
            login_form(&s, f.csrf, next, f.username, Some(msg), false, &Done::default())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(State(s): State<WebState>, PostedAny(user, _): PostedAny<Empty>) -> PageResult {
    s.app.logout(&user.actor).await?;
    let mut resp = see_other("/login", "loggedout");
    resp.headers_mut().append(header::SET_COOKIE, session_cookie(&s.settings, "", Some(0)));
    Ok(resp)
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    forced: bool,
    error: Option<String>,
    error_field: String,
    min_length: usize,
}

fn password_form(s: &WebState, user: &PageUser, error: Option<(String, String)>) -> PageResult {
    let (error, error_field) = match error {
        Some((m, f)) => (Some(m), f),
        None => (None, String::new()),
    };
    let page = PasswordPage {
        chrome: Chrome::new(user, "Change password", "password"),
        forced: user.actor.must_change_password,
        error,
        error_field,
        min_length: s.app.settings().auth.min_password_length,
    };
    let mut resp = render(&page)?;
    if page.error.is_some() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

pub async fn password_page(State(s): State<WebState>, AnyUser(user): AnyUser) -> PageResult {
    password_form(&s, &user, None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

pub async fn change_password(State(s): State<WebState>, PostedAny(user, f): PostedAny<PasswordForm>) -> PageResult {
    if f.new_password != f.confirm_password {
        return password_form(
            &s,
            &user,
            Some((
                "the new password and its repetition differ; type the same new password twice".into(),
                "confirm_password".into(),
            )),
        );
    }
    match s.app.change_password(&user.actor, &f.current_password, &f.new_password).await {
        Ok(()) => Ok(see_other("/trials", "password")),
        Err(AppError::Invalid { field, message }) => {
            password_form(&s, &user, Some((message, field.unwrap_or_else(|| "new_password".into()))))
        }
        Err(e) => Err(PageError::App { error: e, back: Some("/password".into()) }),
    }
}
