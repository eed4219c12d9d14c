//! Data queries: a trial's list (site staff see their sites' only, as the use case decides), one
//! query with its thread, the answer form, and close / reopen for QC reviewers and trial managers.

use askama::Template;
use axum::extract::{Path, Query, State};
use corelab_app::AppError;
use corelab_app::qc::QueryView;
use serde::Deserialize;
use uuid::Uuid;

use super::error::{Back, PageResult};
use super::session::{PageUser, Posted};
use super::trials::TrialHead;
use super::view::{Chrome, Done, render, role_label, see_other, utc};
use crate::WebState;

pub struct QueryLine {
    pub href: String,
    pub site: String,
    pub subject: String,
    pub visit: String,
    pub title: String,
    pub state: String,
    pub state_label: &'static str,
    pub source: &'static str,
    pub opened: String,
    pub days_open: i64,
    pub last: String,
}

pub fn state_label(s: &str) -> &'static str {
    match s {
        "open" => "Open: waiting for the site",
        "answered" => "Answered: waiting for QC",
        "closed" => "Closed",
        _ => "Unknown",
    }
}

fn source_label(s: &str) -> &'static str {
    match s {
        "auto_qc" => "automated check",
        "qc_review" => "QC review",
        "overdue" => "overdue visit",
        "manual" => "raised by hand",
        _ => "other",
    }
}

fn line(trial: Uuid, q: &QueryView) -> QueryLine {
    QueryLine {
        href: format!("/trials/{trial}/queries/{}", q.query.id),
        site: q.query.site_id.clone(),
        subject: q.subject_code.clone().unwrap_or_else(|| "-".into()),
        visit: q.query.visit_id.clone().unwrap_or_else(|| "-".into()),
        title: q.query.title.clone(),
        state: q.query.state.clone(),
        state_label: state_label(&q.query.state),
        source: source_label(&q.query.source),
        opened: utc(&q.query.created_at),
        days_open: q.days_open,
        last: q.messages.last().map(|m| format!("{} ({})", utc(&m.at), m.author_name)).unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
pub struct Filter {
    state: Option<String>,
}

#[derive(Template)]
#[template(path = "queries.html")]
struct ListPage {
    chrome: Chrome,
    trial: TrialHead,
    lines: Vec<QueryLine>,
    filter: String,
}

pub async fn list(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(f): Query<Filter>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let all = s.app.list_queries(a, trial).await?;
    let filter = match f.state.as_deref() {
        None | Some("") | Some("open") => "open",
        Some("closed") => "closed",
        Some("all") => "all",
        Some(_) => {
            return Err(AppError::invalid("state", "the filter is open, closed or all"))
                .back(format!("/trials/{trial}/queries"));
        }
    };
    let mut lines: Vec<QueryLine> = all
        .iter()
        .filter(|q| match filter {
            "open" => q.query.state != "closed",
            "closed" => q.query.state == "closed",
            _ => true,
        })
        .map(|q| line(trial, q))
        .collect();
    // The oldest open question first.
    lines.sort_by_key(|l| std::cmp::Reverse(l.days_open));
    render(&ListPage {
        chrome: Chrome::new(&user, format!("{} data queries", head.protocol_id), "trials").sub("queries"),
        trial: head,
        lines,
        filter: filter.into(),
    })
}

pub struct MessageLine {
    pub author: String,
    pub kind: &'static str,
    pub at: String,
    pub body: Vec<String>,
}

#[derive(Template)]
#[template(path = "query.html")]
struct QueryPage {
    chrome: Chrome,
    trial: TrialHead,
    q: QueryLine,
    id: Uuid,
    review: Option<String>,
    upload: Option<String>,
    messages: Vec<MessageLine>,
    can_answer: bool,
    can_close: bool,
}

/// The query, if it belongs to this trial (404 otherwise).
async fn query_of(s: &WebState, user: &PageUser, trial: Uuid, id: Uuid) -> Result<QueryView, AppError> {
    let q = s.app.get_query(&user.actor, id).await?;
    if q.query.trial_id != trial {
        return Err(AppError::NotFound(format!("no query {id} in this trial")));
    }
    Ok(q)
}

pub async fn page(
    State(s): State<WebState>,
    user: PageUser,
    Path((trial, id)): Path<(Uuid, Uuid)>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let q = query_of(&s, &user, trial, id).await?;
    let messages = q
        .messages
        .iter()
        .map(|m| MessageLine {
            author: format!("{} ({})", m.author_name, role_label(&m.author_role)),
            kind: match m.kind.as_str() {
                "closed" => "closed the query",
                "reopened" => "reopened the query",
                "resubmission" => "new images received",
                _ => "wrote",
            },
            at: utc(&m.at),
            body: m.body.lines().map(str::to_string).collect(),
        })
        .collect();
    let review = match (q.query.subject_id, &q.query.visit_id) {
        (Some(sub), Some(v)) => Some(format!("/trials/{trial}/qc/{sub}/{v}")),
        _ => None,
    };
    let closed = q.query.state == "closed";
    // Site staff answer most queries with new images: the way to the site's upload page.
    let upload = (head.roles.may_upload() && !closed && q.query.subject_id.is_some())
        .then(|| format!("/trials/{trial}/sites/{}/upload", q.query.site_id));
    render(&QueryPage {
        chrome: Chrome::new(&user, format!("Query: {}", q.query.title), "trials").sub("queries").notice(&done),
        can_answer: head.roles.may_answer_queries() && !closed,
        can_close: head.roles.may_close_queries(),
        q: line(trial, &q),
        id,
        review,
        upload,
        messages,
        trial: head,
    })
}

#[derive(Deserialize)]
pub struct Answer {
    #[serde(default)]
    body: String,
}

pub async fn answer(
    State(s): State<WebState>,
    Path((trial, id)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<Answer>,
) -> PageResult {
    let back = format!("/trials/{trial}/queries/{id}");
    query_of(&s, &user, trial, id).await?;
    s.app.answer_query(&user.actor, id, &f.body).await.back(back.clone())?;
    Ok(see_other(&back, "answered"))
}

#[derive(Deserialize)]
pub struct Reason {
    #[serde(default)]
    reason: String,
}

async fn set_open(s: WebState, user: PageUser, trial: Uuid, id: Uuid, open: bool, reason: &str) -> PageResult {
    let back = format!("/trials/{trial}/queries/{id}");
    query_of(&s, &user, trial, id).await?;
    s.app.set_query_open(&user.actor, id, open, reason).await.back(back.clone())?;
    Ok(see_other(&back, if open { "reopened" } else { "closed" }))
}

pub async fn close(
    State(s): State<WebState>,
    Path((trial, id)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<Reason>,
) -> PageResult {
    set_open(s, user, trial, id, false, &f.reason).await
}

pub async fn reopen(
    State(s): State<WebState>,
    Path((trial, id)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<Reason>,
) -> PageResult {
    set_open(s, user, trial, id, true, &f.reason).await
}
