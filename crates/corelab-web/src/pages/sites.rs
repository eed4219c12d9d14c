//! A site's page: qualification status, scans with their findings, upload of a qualification
//! scan, the QC reviewer's e-signed decision, the site's subjects, training attestation.

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use corelab_app::AppError;
use corelab_app::qualification::{MAX_QUALIFICATION_BYTES, QualificationView};
use corelab_app::signatures::{SignatureView, SigningCredentials};
use futures_util::TryStreamExt;
use serde::Deserialize;
use tokio_util::io::StreamReader;
use uuid::Uuid;

use super::error::{Back, PageError, PageResult};
use super::session::{PageUser, Posted};
use super::sign::{SignForm, show};
use super::trials::{SiteLine, SubjectLine, TrialHead, site_lines};
use super::view::{Chrome, Done, optional, render, see_other, utc};
use crate::WebState;

/// One finding of a scan, read from the findings JSON the use case returns.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FindingLine {
    pub rule: String,
    pub expected: String,
    pub found: String,
    pub message: String,
}

fn findings(v: &serde_json::Value) -> Vec<FindingLine> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

pub struct ScanLine {
    pub modality: String,
    pub sha: String,
    pub passed: bool,
    pub findings: Vec<FindingLine>,
    pub version: i64,
    pub uploaded: String,
}

pub struct SignatureLine {
    pub manifestation: String,
    pub valid: bool,
}

pub fn signature_lines(v: &[SignatureView]) -> Vec<SignatureLine> {
    v.iter().map(|s| SignatureLine { manifestation: s.manifestation.clone(), valid: s.valid }).collect()
}

fn scan_lines(q: &QualificationView) -> Vec<ScanLine> {
    q.scans
        .iter()
        .map(|s| ScanLine {
            modality: s.modality.clone(),
            sha: s.sha256.clone(),
            passed: s.passed,
            findings: findings(&s.findings),
            version: s.charter_version,
            uploaded: utc(&s.uploaded_at),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "site.html")]
struct SitePage {
    chrome: Chrome,
    trial: TrialHead,
    site: SiteLine,
    scans: Vec<ScanLine>,
    signatures: Vec<SignatureLine>,
    subjects: Option<Vec<SubjectLine>>,
    show_arm: bool,
    can_upload: bool,
    can_decide: bool,
    max_mb: u64,
    attest_back: String,
}

pub async fn page(
    State(s): State<WebState>,
    user: PageUser,
    Path((trial, site)): Path<(Uuid, String)>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let row = s.app.site(a, trial, &site).await?;
    let q = s.app.qualification(a, trial, &site).await?;
    let subjects: Option<Vec<SubjectLine>> = optional(s.app.list_subjects(a, trial).await)?
        .map(|v| v.iter().filter(|x| x.site_id == site).map(SubjectLine::of).collect());
    let show_arm = subjects.as_ref().is_some_and(|v| v.iter().any(|x| x.arm.is_some()));
    let site_line =
        site_lines(vec![row]).into_iter().next().ok_or_else(|| AppError::NotFound(format!("no site {site}")))?;
    render(&SitePage {
        chrome: Chrome::new(&user, format!("{} site {}", head.protocol_id, site), "trials").notice(&done),
        can_upload: head.roles.may_upload(),
        can_decide: head.roles.may_decide() && q.status != "qualified" && !q.scans.is_empty(),
        scans: scan_lines(&q),
        signatures: signature_lines(&q.signatures),
        subjects,
        show_arm,
        max_mb: MAX_QUALIFICATION_BYTES / (1024 * 1024),
        attest_back: format!("/trials/{trial}/sites/{site}"),
        site: site_line,
        trial: head,
    })
}

/// The upload route: a multipart form with the anti-CSRF field first, then the DICOM file.
pub fn upload_route() -> MethodRouter<WebState> {
    post(upload).layer(DefaultBodyLimit::max(
        usize::try_from(MAX_QUALIFICATION_BYTES).unwrap_or(usize::MAX).saturating_add(64 * 1024),
    ))
}

fn unreadable(e: impl std::fmt::Display) -> AppError {
    AppError::invalid("file", format!("the upload could not be read ({e}); choose the file again and send the form"))
}

async fn upload(
    State(s): State<WebState>,
    Path((trial, site)): Path<(Uuid, String)>,
    user: PageUser,
    mp: Result<Multipart, MultipartRejection>,
) -> PageResult {
    let back = format!("/trials/{trial}/sites/{site}");
    // Without a multipart body there is no token either.
    let Ok(mut mp) = mp else { return Err(PageError::Csrf) };
    match mp.next_field().await {
        Ok(Some(f)) if f.name() == Some("csrf") => {
            let sent = f.text().await.map_err(|_| PageError::Csrf)?;
            user.check_csrf(Some(&sent))?;
        }
        _ => return Err(PageError::Csrf),
    }
    let field = mp.next_field().await.map_err(unreadable).back(back.clone())?;
    let Some(field) = field.filter(|f| f.name() == Some("file")) else {
        return Err(AppError::invalid("file", "choose the DICOM file of the qualification scan")).back(back);
    };
    let reader = StreamReader::new(Box::pin(field.map_err(std::io::Error::other)));
    s.app.upload_qualification_scan(&user.actor, trial, &site, reader).await.back(back.clone())?;
    Ok(see_other(&back, "uploaded"))
}

#[derive(Deserialize)]
pub struct DecideQuery {
    approve: Option<String>,
}

/// The signing form of a qualification decision, stating the decision and the scans it rests on.
async fn decision_form(
    s: &WebState,
    user: &PageUser,
    trial: Uuid,
    site: &str,
    approve: bool,
) -> Result<SignForm, PageError> {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let row = s.app.site(a, trial, site).await?;
    let q = s.app.qualification(a, trial, site).await?;
    let needs_username = s.app.signing_needs_username(a).await?;
    let back = format!("/trials/{trial}/sites/{site}");
    let verb = if approve { "Approve" } else { "Reject" };
    let mut f = SignForm::new(
        user,
        format!("/trials/{trial}/sites/{site}/qualification/decision"),
        format!("{verb} the qualification of site {site}"),
        back,
        needs_username,
    );
    f.statement = vec![
        ("Record".into(), format!("Qualification of site {} ({}), trial {}", row.site_id, row.name, head.protocol_id)),
        (
            "Decision".into(),
            if approve {
                "approve: the site becomes qualified and may enroll subjects".into()
            } else {
                "reject: the site must upload a new qualification scan".into()
            },
        ),
        ("Status now".into(), q.status.clone()),
    ];
    for (i, scan) in q.scans.iter().enumerate() {
        let findings = findings(&scan.findings);
        f.statement.push((
            format!("Scan {}", i + 1),
            format!(
                "{} uploaded {}, SHA-256 {}: {}",
                scan.modality,
                utc(&scan.uploaded_at),
                scan.sha256,
                if findings.is_empty() {
                    "meets the charter".to_string()
                } else {
                    format!("{} finding(s)", findings.len())
                }
            ),
        ));
    }
    f.meaning = Some(if approve { "site qualification approved" } else { "site qualification rejected" }.into());
    f.hidden = vec![("approve".into(), approve.to_string())];
    f.reason =
        Some(if approve { "Comment (optional)".into() } else { "Reason for the rejection (the site sees it)".into() });
    f.reason_required = !approve;
    Ok(f)
}

pub async fn decide_page(
    State(s): State<WebState>,
    user: PageUser,
    Path((trial, site)): Path<(Uuid, String)>,
    Query(q): Query<DecideQuery>,
    headers: HeaderMap,
) -> PageResult {
    let approve = q.approve.as_deref() != Some("false");
    let form = decision_form(&s, &user, trial, &site, approve).await?;
    show(&user, form, headers.get("hx-request").is_some())
}

#[derive(Deserialize)]
pub struct DecideForm {
    approve: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

pub async fn decide(
    State(s): State<WebState>,
    Path((trial, site)): Path<(Uuid, String)>,
    Posted(user, f): Posted<DecideForm>,
) -> PageResult {
    let approve = f.approve == "true";
    let creds = SigningCredentials {
        username: f.username.filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string()),
        password: f.password,
    };
    let back = format!("/trials/{trial}/sites/{site}");
    match s.app.decide_qualification(&user.actor, trial, &site, approve, &f.reason, creds).await {
        Ok(_) => Ok(see_other(&back, if approve { "approved" } else { "rejected" })),
        Err(AppError::Invalid { field, message }) => {
            let mut form = decision_form(&s, &user, trial, &site, approve).await?;
            form.error = Some(message);
            form.error_field = field.unwrap_or_default();
            show(&user, form, false)
        }
        Err(e) => Err(e).back(back),
    }
}
