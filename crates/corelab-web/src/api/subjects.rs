//! Subjects: enrollment, corrections, withdrawal, e-signature, visit calendar.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use corelab_app::signatures::SigningCredentials;
use corelab_app::subjects::{Enrollment, SubjectCorrection};
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/subjects", get(list)),
        ("POST", "/trials/{trial}/subjects", post(enroll)),
        ("GET", "/subjects/{subject}", get(one)),
        ("POST", "/subjects/{subject}/correct", post(correct)),
        ("POST", "/subjects/{subject}/withdraw", post(withdraw)),
        ("POST", "/subjects/{subject}/sign", post(sign)),
        ("GET", "/subjects/{subject}/calendar", get(calendar)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    site_id: String,
    subject_id: String,
    /// Enrollment or randomization date, whichever the charter's schedule counts from.
    anchor_date: NaiveDate,
    #[serde(default)]
    arm: Option<String>,
}

async fn enroll(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Json(b): Json<EnrollBody>,
) -> ApiResult<Response> {
    let e = Enrollment { site_id: b.site_id, subject_id: b.subject_id, anchor_date: b.anchor_date, arm: b.arm };
    Ok((StatusCode::CREATED, Json(s.app.enroll_subject(&actor, trial, e).await?)).into_response())
}

async fn list(State(s): State<WebState>, Ready(actor): Ready, Path(trial): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.list_subjects(&actor, trial).await?).into_response())
}

async fn one(State(s): State<WebState>, Ready(actor): Ready, Path(subject): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.subject(&actor, subject).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectBody {
    #[serde(default)]
    anchor_date: Option<NaiveDate>,
    #[serde(default)]
    arm: Option<String>,
    reason: String,
}

async fn correct(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(subject): Path<Uuid>,
    Json(b): Json<CorrectBody>,
) -> ApiResult<Response> {
    let c = SubjectCorrection { anchor_date: b.anchor_date, arm: b.arm, reason: b.reason };
    Ok(Json(s.app.correct_subject(&actor, subject, c).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    date: NaiveDate,
    reason: String,
}

async fn withdraw(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(subject): Path<Uuid>,
    Json(b): Json<WithdrawBody>,
) -> ApiResult<Response> {
    Ok(Json(s.app.withdraw_subject(&actor, subject, b.date, &b.reason).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    meaning: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

async fn sign(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(subject): Path<Uuid>,
    Json(b): Json<SignBody>,
) -> ApiResult<Response> {
    let creds = SigningCredentials { username: b.username, password: b.password };
    Ok(Json(s.app.sign_subject(&actor, subject, &b.meaning, creds).await?).into_response())
}

async fn calendar(State(s): State<WebState>, Ready(actor): Ready, Path(subject): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(s.app.subject_calendar(&actor, subject).await?).into_response())
}
