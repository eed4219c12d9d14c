//! Trials: the list of my trials, a trial's page (charter, sites, subjects, enrollment, calendar),
//! charter versions and their differences, training records.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use corelab_app::subjects::SubjectView;
use corelab_app::trials::{CharterVersionView, TrialView};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::charter_view::{Section, sections};
use super::error::{Back, PageResult};
use super::session::{PageUser, Posted, local_path};
use super::view::{Chrome, Done, Roles, optional, render, see_other, status_label, utc};
use crate::WebState;

pub async fn home(_user: PageUser) -> Redirect {
    Redirect::to("/trials")
}

pub struct TrialLine {
    pub id: Uuid,
    pub protocol_id: String,
    pub name: String,
    pub sponsor: String,
    pub area: String,
    pub version: i64,
    pub roles: String,
}

#[derive(Template)]
#[template(path = "trials.html")]
struct TrialsPage {
    chrome: Chrome,
    trials: Vec<TrialLine>,
    is_admin: bool,
}

pub async fn list(State(s): State<WebState>, user: PageUser, Query(done): Query<Done>) -> PageResult {
    let trials = s.app.list_trials(&user.actor).await?;
    render(&TrialsPage {
        chrome: Chrome::new(&user, "Your trials", "trials").notice(&done),
        is_admin: user.actor.is_system_admin,
        trials: trials
            .into_iter()
            .map(|t| TrialLine {
                id: t.id,
                protocol_id: t.protocol_id,
                name: t.name,
                sponsor: t.sponsor,
                area: t.therapeutic_area,
                version: t.charter_version,
                roles: Roles(t.my_roles).labels(),
            })
            .collect(),
    })
}

/// The header every trial page shows.
pub struct TrialHead {
    pub id: Uuid,
    pub protocol_id: String,
    pub name: String,
    pub sponsor: String,
    pub area: String,
    pub version: i64,
    pub roles: Roles,
}

impl TrialHead {
    pub fn of(t: TrialView) -> TrialHead {
        TrialHead {
            id: t.id,
            protocol_id: t.protocol_id,
            name: t.name,
            sponsor: t.sponsor,
            area: t.therapeutic_area,
            version: t.charter_version,
            roles: Roles(t.my_roles),
        }
    }
}

pub struct VersionLine {
    pub version: i64,
    pub label: String,
    pub created: String,
    pub reason: String,
    pub sha: String,
}

fn version_lines(v: Vec<corelab_app::trials::CharterVersionSummary>) -> Vec<VersionLine> {
    v.into_iter()
        .map(|v| VersionLine {
            version: v.version,
            label: v.label,
            created: utc(&v.created_at),
            reason: v.reason.unwrap_or_default(),
            sha: v.sha256,
        })
        .collect()
}

pub struct SiteLine {
    pub site_id: String,
    pub name: String,
    pub country: String,
    pub status: String,
    pub status_label: &'static str,
    pub qualified_at: String,
}

pub struct SubjectLine {
    pub id: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub anchor: String,
    pub arm: Option<String>,
    pub status: String,
    pub status_label: &'static str,
    pub signatures: String,
}

impl SubjectLine {
    pub fn of(s: &SubjectView) -> SubjectLine {
        let valid = s.signatures.iter().filter(|x| x.valid).count();
        let invalid = s.signatures.len() - valid;
        let signatures = match (valid, invalid) {
            (0, 0) => "not signed".to_string(),
            (v, 0) => format!("{v} signature{}", if v == 1 { "" } else { "s" }),
            (v, i) => format!("{v} valid, {i} invalidated"),
        };
        SubjectLine {
            id: s.id,
            subject_id: s.subject_id.clone(),
            site_id: s.site_id.clone(),
            anchor: s.anchor_date.to_string(),
            arm: s.arm.clone(),
            status: s.status.clone(),
            status_label: status_label(&s.status),
            signatures,
        }
    }
}

/// Options of the enrollment form.
pub struct EnrollForm {
    pub sites: Vec<(String, String)>,
    /// The charter's arms when the caller may see them; otherwise the arm is typed in.
    pub arms: Vec<(String, String)>,
    pub id_pattern: String,
    pub anchor: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The charter's arms as (id, label), present only in an unblinded view.
pub fn arms_of(charter: &Value) -> Vec<(String, String)> {
    charter
        .get("arms")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x.get("id")?.as_str()?.to_string(), x.get("label")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn anchor_label(charter: &Value) -> String {
    match str_at(charter, &["schedule", "anchor"]) {
        Some("randomization") => "Randomization date".into(),
        Some("enrollment") => "Enrollment date".into(),
        Some(other) => format!("{} date", other.replace('_', " ")),
        None => "Anchor date".into(),
    }
}

pub struct CharterHead {
    pub version: i64,
    pub label: String,
    pub sha: String,
    pub reason: String,
    pub created: String,
}

impl CharterHead {
    fn of(c: &CharterVersionView) -> CharterHead {
        CharterHead {
            version: c.version,
            label: c.label.clone(),
            sha: c.sha256.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            created: utc(&c.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "trial.html")]
struct TrialPage {
    chrome: Chrome,
    trial: TrialHead,
    charter: CharterHead,
    sections: Vec<Section>,
    versions: Vec<VersionLine>,
    sites: Option<Vec<SiteLine>>,
    gateways: Option<Vec<GatewayLine>>,
    subjects: Option<Vec<SubjectLine>>,
    show_arm: bool,
    enroll: Option<EnrollForm>,
    /// A reader's own read tasks, each opening the reader workstation.
    /// A reader's tasks: (to read, submitted); the list itself is the reading page.
    read_tasks: Option<(usize, usize)>,
}

pub fn site_lines(rows: Vec<corelab_store::trials::SiteRow>) -> Vec<SiteLine> {
    rows.into_iter()
        .map(|r| SiteLine {
            status_label: status_label(&r.status),
            qualified_at: r.qualified_at.as_ref().map(utc).unwrap_or_default(),
            site_id: r.site_id,
            name: r.name,
            country: r.country,
            status: r.status,
        })
        .collect()
}

pub async fn page(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let charter = s.app.charter_version(a, trial, None).await?;
    let versions = version_lines(s.app.charter_versions(a, trial).await?);
    let site_rows = optional(s.app.list_sites(a, trial).await)?;
    let subjects = optional(s.app.list_subjects(a, trial).await)?;
    let enroll = match (&site_rows, &subjects) {
        (Some(sites), Some(_)) if head.roles.may_enroll() => Some(EnrollForm {
            sites: sites
                .iter()
                .filter(|x| x.status == "qualified")
                .map(|x| (x.site_id.clone(), x.name.clone()))
                .collect(),
            arms: arms_of(&charter.charter),
            id_pattern: str_at(&charter.charter, &["subjects", "id_pattern"]).unwrap_or("").to_string(),
            anchor: anchor_label(&charter.charter),
        }),
        _ => None,
    };
    let gateways = if head.roles.may_see_gateways() {
        Some(s.app.gateway_health(a, trial).await?.iter().map(|g| GatewayLine::of(g, s.app.clock().now())).collect())
    } else {
        None
    };
    let subjects: Option<Vec<SubjectLine>> = subjects.map(|v| v.iter().map(SubjectLine::of).collect());
    let show_arm = subjects.as_ref().is_some_and(|v| v.iter().any(|x| x.arm.is_some()));
    // Only readers are asked: the use case audits anyone else's request as a denial.
    let read_tasks = if head.roles.0.iter().any(|r| r == "reader") {
        let tasks = s.app.my_read_tasks(a, trial).await?;
        let submitted = tasks.iter().filter(|t| t.state == "submitted").count();
        Some((tasks.len() - submitted, submitted))
    } else {
        None
    };
    render(&TrialPage {
        chrome: Chrome::new(&user, format!("{} {}", head.protocol_id, head.name), "trials")
            .sub("overview")
            .notice(&done),
        charter: CharterHead::of(&charter),
        sections: sections(&charter.charter),
        versions,
        sites: site_rows.map(site_lines),
        gateways,
        subjects,
        show_arm,
        enroll,
        read_tasks,
        trial: head,
    })
}

/// A site gateway on the trial page: when it last called in and what it holds.
pub struct GatewayLine {
    pub site_id: String,
    pub name: String,
    pub version: String,
    pub last_seen: String,
    /// "ok", or "late" when no heartbeat came for more than 5 minutes.
    pub state: &'static str,
    pub queue_depth: i64,
    pub waiting: i64,
    pub failed: i64,
    pub last_success: String,
    pub last_error: String,
}

impl GatewayLine {
    fn of(g: &corelab_store::gateways::GatewayHeartbeatRow, now: chrono::DateTime<chrono::Utc>) -> GatewayLine {
        let late = now - g.last_seen_at > chrono::Duration::minutes(5);
        GatewayLine {
            site_id: g.site_id.clone(),
            name: g.name.clone(),
            version: g.version.clone(),
            last_seen: g.last_seen_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            state: if late { "late" } else { "ok" },
            queue_depth: g.queue_depth,
            waiting: g.waiting,
            failed: g.failed,
            last_success: g.last_success_at.clone().unwrap_or_else(|| "never".into()),
            last_error: g.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "charter.html")]
struct CharterPage {
    chrome: Chrome,
    trial: TrialHead,
    charter: CharterHead,
    sections: Vec<Section>,
    versions: Vec<VersionLine>,
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

/// A version number from a query string; the message says what is expected.
fn version_number(field: &str, v: Option<&str>) -> Result<Option<i64>, corelab_app::AppError> {
    match v.map(str::trim).filter(|x| !x.is_empty()) {
        None => Ok(None),
        Some(x) => x.parse::<i64>().map(Some).map_err(|_| {
            corelab_app::AppError::invalid(
                field,
                format!("{x:?} is not a charter version number; choose one from the list"),
            )
        }),
    }
}

pub async fn charter(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(q): Query<VersionQuery>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let version = version_number("version", q.version.as_deref()).back(format!("/trials/{trial}/charter"))?;
    let view = s.app.charter_version(a, trial, version).await?;
    let versions = s.app.charter_versions(a, trial).await?;
    render(&CharterPage {
        chrome: Chrome::new(&user, format!("{} charter version {}", head.protocol_id, view.version), "trials")
            .sub("charter"),
        charter: CharterHead::of(&view),
        sections: sections(&view.charter),
        versions: version_lines(versions),
        trial: head,
    })
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    chrome: Chrome,
    trial: TrialHead,
    from: i64,
    to: i64,
    lines: Vec<String>,
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

pub async fn diff(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(q): Query<DiffQuery>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let back = format!("/trials/{trial}/charter");
    let pick = |field: &str, v: Option<&str>| {
        version_number(field, v)?.ok_or_else(|| corelab_app::AppError::invalid(field, "choose two versions to compare"))
    };
    let from = pick("from", q.from.as_deref()).back(back.clone())?;
    let to = pick("to", q.to.as_deref()).back(back.clone())?;
    let lines = s.app.charter_diff(a, trial, from, to).await.back(back)?;
    render(&DiffPage {
        chrome: Chrome::new(&user, format!("{} charter changes {from} to {to}", head.protocol_id), "trials")
            .sub("charter"),
        trial: head,
        from,
        to,
        lines,
    })
}

pub struct TrainingLine {
    pub who: String,
    pub topic: String,
    pub version: i64,
    pub site: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "training.html")]
struct TrainingPage {
    chrome: Chrome,
    trial: TrialHead,
    records: Vec<TrainingLine>,
    all: bool,
    attest_back: String,
}

/// Names of accounts, for those who may list them (system administrators, trial managers).
pub async fn user_names(
    s: &WebState,
    user: &PageUser,
    roles: &Roles,
) -> Result<std::collections::HashMap<Uuid, String>, corelab_app::AppError> {
    if !roles.any(&["trial_manager"]) {
        return Ok(Default::default());
    }
    Ok(s.app
        .list_users(&user.actor)
        .await?
        .into_iter()
        .map(|u| (u.id, format!("{} ({})", u.display_name, u.username)))
        .collect())
}

pub async fn training(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let rows = s.app.training_records(a, trial).await?;
    let names = user_names(&s, &user, &head.roles).await?;
    let records = rows
        .into_iter()
        .map(|r| TrainingLine {
            who: if Some(r.user_id) == a.user_id {
                format!("you ({})", a.username)
            } else {
                names.get(&r.user_id).cloned().unwrap_or_else(|| r.user_id.to_string())
            },
            topic: r.topic,
            version: r.charter_version,
            site: r.site_id.unwrap_or_default(),
            at: utc(&r.attested_at),
        })
        .collect();
    render(&TrainingPage {
        chrome: Chrome::new(&user, format!("{} training", head.protocol_id), "trials").sub("training").notice(&done),
        all: head.roles.any(&["trial_manager", "monitor"]),
        attest_back: format!("/trials/{trial}/training"),
        trial: head,
        records,
    })
}

#[derive(Deserialize)]
pub struct AttestForm {
    topic: String,
    #[serde(default)]
    back: Option<String>,
}

pub async fn attest(
    State(s): State<WebState>,
    Path(trial): Path<Uuid>,
    Posted(user, f): Posted<AttestForm>,
) -> PageResult {
    let back = local_path(f.back.as_deref(), &format!("/trials/{trial}/training"));
    s.app.attest_training(&user.actor, trial, &f.topic).await.back(back.clone())?;
    Ok(see_other(&back, "trained"))
}
