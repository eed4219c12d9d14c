//! A subject's page (details, visit calendar, signatures) and its forms: enroll, correct and
//! withdraw with a required reason, sign with the password dialog.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::NaiveDate;
use corelab_app::AppError;
use corelab_app::signatures::SigningCredentials;
use corelab_app::subjects::{Enrollment, SubjectCorrection, SubjectView};
use serde::Deserialize;
use uuid::Uuid;

use super::calendar::Phase;
use super::error::{Back, PageError, PageResult};
use super::session::{PageUser, Posted};
use super::sign::{SignForm, show};
use super::sites::{SignatureLine, signature_lines};
use super::trials::{TrialHead, anchor_label, arms_of};
use super::view::{Chrome, Done, render, see_other, status_label};
use crate::WebState;

fn date(field: &str, s: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::invalid(field, format!("{s:?} is not a date; give it as YYYY-MM-DD")))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|x| x.trim().to_string()).filter(|x| !x.is_empty())
}

#[derive(Deserialize)]
pub struct EnrollForm {
    site_id: String,
    subject_id: String,
    anchor_date: String,
    #[serde(default)]
    arm: Option<String>,
}

pub async fn enroll(
    State(s): State<WebState>,
    Path(trial): Path<Uuid>,
    Posted(user, f): Posted<EnrollForm>,
) -> PageResult {
    let back = format!("/trials/{trial}#enroll");
    let e = Enrollment {
        site_id: f.site_id,
        subject_id: f.subject_id.trim().to_string(),
        anchor_date: date("anchor_date", &f.anchor_date).back(back.clone())?,
        arm: non_empty(f.arm),
    };
    let v = s.app.enroll_subject(&user.actor, trial, e).await.back(back)?;
    Ok(see_other(&format!("/subjects/{}", v.id), "enrolled"))
}

pub struct VisitLine {
    pub id: String,
    pub label: String,
    pub day: i32,
    pub expected: String,
    pub open: String,
    pub close: String,
    pub phase: Phase,
}

#[derive(Template)]
#[template(path = "subject.html")]
struct SubjectPage {
    chrome: Chrome,
    trial: TrialHead,
    subject: SubjectView,
    status_label: &'static str,
    anchor: String,
    signatures: Vec<SignatureLine>,
    visits: Vec<VisitLine>,
    can_edit: bool,
    /// Arms to choose from when correcting (an unblinded caller), else a text field if the arm is shown.
    arms: Vec<(String, String)>,
    today: String,
}

pub async fn page(
    State(s): State<WebState>,
    user: PageUser,
    Path(subject): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let v = s.app.subject(a, subject).await?;
    let head = TrialHead::of(s.app.trial(a, v.trial_id).await?);
    let charter = s.app.charter_version(a, v.trial_id, None).await?;
    let today = s.app.clock().now().date_naive();
    let visits = s
        .app
        .subject_calendar(a, subject)
        .await?
        .into_iter()
        .map(|c| VisitLine {
            phase: Phase::of(&c, today),
            id: c.visit_id,
            label: c.label,
            day: c.day,
            expected: c.expected_date.to_string(),
            open: c.window_open.to_string(),
            close: c.window_close.to_string(),
        })
        .collect();
    render(&SubjectPage {
        chrome: Chrome::new(&user, format!("Subject {}", v.subject_id), "trials").notice(&done),
        can_edit: head.roles.may_edit_subjects(),
        arms: arms_of(&charter.charter),
        anchor: anchor_label(&charter.charter),
        status_label: status_label(&v.status),
        signatures: signature_lines(&v.signatures),
        visits,
        today: today.to_string(),
        trial: head,
        subject: v,
    })
}

#[derive(Deserialize)]
pub struct CorrectForm {
    #[serde(default)]
    anchor_date: Option<String>,
    #[serde(default)]
    arm: Option<String>,
    reason: String,
}

pub async fn correct(
    State(s): State<WebState>,
    Path(subject): Path<Uuid>,
    Posted(user, f): Posted<CorrectForm>,
) -> PageResult {
    let back = format!("/subjects/{subject}#correct");
    let anchor_date = match non_empty(f.anchor_date) {
        Some(d) => Some(date("anchor_date", &d).back(back.clone())?),
        None => None,
    };
    let c = SubjectCorrection { anchor_date, arm: non_empty(f.arm), reason: f.reason };
    s.app.correct_subject(&user.actor, subject, c).await.back(back)?;
    Ok(see_other(&format!("/subjects/{subject}"), "corrected"))
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    date: String,
    reason: String,
}

pub async fn withdraw(
    State(s): State<WebState>,
    Path(subject): Path<Uuid>,
    Posted(user, f): Posted<WithdrawForm>,
) -> PageResult {
    let back = format!("/subjects/{subject}#withdraw");
    let d = date("date", &f.date).back(back.clone())?;
    s.app.withdraw_subject(&user.actor, subject, d, &f.reason).await.back(back)?;
    Ok(see_other(&format!("/subjects/{subject}"), "withdrawn"))
}

/// The signing form of a subject record, stating the record's content as the caller sees it.
async fn sign_form(s: &WebState, user: &PageUser, subject: Uuid) -> Result<SignForm, PageError> {
    let a = &user.actor;
    let v = s.app.subject(a, subject).await?;
    let head = TrialHead::of(s.app.trial(a, v.trial_id).await?);
    let needs_username = s.app.signing_needs_username(a).await?;
    let mut f = SignForm::new(
        user,
        format!("/subjects/{subject}/sign"),
        format!("Sign the record of subject {}", v.subject_id),
        format!("/subjects/{subject}"),
        needs_username,
    );
    f.statement = vec![
        ("Record".into(), format!("Subject {} at site {}, trial {}", v.subject_id, v.site_id, head.protocol_id)),
        ("Anchor date".into(), v.anchor_date.to_string()),
    ];
    if let Some(arm) = &v.arm {
        f.statement.push(("Arm".into(), arm.clone()));
    }
    f.statement.push(("Status".into(), v.status.clone()));
    if let Some(w) = v.withdrawn_on {
        f.statement.push(("Withdrawn on".into(), w.to_string()));
    }
    f.meaning_default = if v.status == "withdrawn" { "withdrawal confirmed" } else { "enrollment confirmed" }.into();
    Ok(f)
}

pub async fn sign_page(
    State(s): State<WebState>,
    user: PageUser,
    Path(subject): Path<Uuid>,
    headers: HeaderMap,
) -> PageResult {
    let form = sign_form(&s, &user, subject).await?;
    show(&user, form, headers.get("hx-request").is_some())
}

#[derive(Deserialize)]
pub struct SignFormBody {
    meaning: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

pub async fn sign(
    State(s): State<WebState>,
    Path(subject): Path<Uuid>,
    Posted(user, f): Posted<SignFormBody>,
) -> PageResult {
    let creds = SigningCredentials {
        username: f.username.filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string()),
        password: f.password,
    };
    match s.app.sign_subject(&user.actor, subject, &f.meaning, creds).await {
        Ok(_) => Ok(see_other(&format!("/subjects/{subject}"), "signed")),
        Err(AppError::Invalid { field, message }) => {
            let mut form = sign_form(&s, &user, subject).await?;
            form.meaning_default = f.meaning;
            form.error = Some(message);
            form.error_field = field.unwrap_or_default();
            show(&user, form, false)
        }
        Err(e) => Err(e).back(format!("/subjects/{subject}")),
    }
}
