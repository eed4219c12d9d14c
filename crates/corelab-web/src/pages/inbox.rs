//! The ingest inbox of a trial: images that could not be matched to a subject and visit, with the
//! reason, and the forms to file one under a subject and visit or (trial managers) to discard it.
//! `corelab_app::ingest::inbox` decides who sees which items and who may do what.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{Back, PageResult};
use super::session::{PageUser, Posted};
use super::trials::TrialHead;
use super::view::{Chrome, Done, optional, render, see_other, utc};
use crate::WebState;

pub struct ItemLine {
    pub id: Uuid,
    pub received: String,
    pub site: String,
    pub reason: String,
    pub claimed: String,
    pub modality: String,
    pub sha: String,
    pub state: String,
    pub open: bool,
    /// Subjects of the item's site the caller sees: (id, code).
    pub subjects: Vec<(Uuid, String)>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    trial: TrialHead,
    items: Vec<ItemLine>,
    can_assign: bool,
    can_discard: bool,
}

pub async fn list(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let rows = s.app.list_inbox(a, trial).await?;
    let subjects = optional(s.app.list_subjects(a, trial).await)?.unwrap_or_default();
    let items = rows
        .iter()
        .map(|i| ItemLine {
            id: i.id,
            received: utc(&i.received_at),
            site: i.site_id.clone(),
            reason: i.reason.clone(),
            claimed: match (&i.claimed_subject, &i.claimed_visit) {
                (Some(sub), Some(v)) => format!("subject {sub}, visit {v}"),
                (Some(sub), None) => format!("subject {sub}, no visit"),
                (None, Some(v)) => format!("no subject, visit {v}"),
                (None, None) => "nothing usable".into(),
            },
            modality: i.modality.clone(),
            sha: i.sha256.clone(),
            state: i.state.replace('_', " "),
            open: i.state == "unassigned",
            subjects: subjects
                .iter()
                .filter(|x| x.site_id == i.site_id && x.status != "withdrawn")
                .map(|x| (x.id, x.subject_id.clone()))
                .collect(),
        })
        .collect();
    render(&InboxPage {
        chrome: Chrome::new(&user, format!("{} inbox", head.protocol_id), "trials").sub("inbox").notice(&done),
        can_assign: head.roles.may_assign_inbox(),
        can_discard: head.roles.may_discard_inbox(),
        trial: head,
        items,
    })
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    visit_id: String,
    #[serde(default)]
    reason: String,
}

pub async fn assign(
    State(s): State<WebState>,
    Path((trial, item)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<AssignForm>,
) -> PageResult {
    let back = format!("/trials/{trial}/inbox");
    let subject = f.subject.trim().parse::<Uuid>().map_err(|_| {
        corelab_app::AppError::invalid("subject", "choose the subject the images belong to from the list")
    });
    let subject = subject.back(back.clone())?;
    s.app.assign_inbox(&user.actor, item, subject, f.visit_id.trim(), &f.reason).await.back(back.clone())?;
    Ok(see_other(&back, "assigned"))
}

#[derive(Deserialize)]
pub struct DiscardForm {
    #[serde(default)]
    reason: String,
}

pub async fn discard(
    State(s): State<WebState>,
    Path((trial, item)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<DiscardForm>,
) -> PageResult {
    let back = format!("/trials/{trial}/inbox");
    s.app.discard_inbox(&user.actor, item, &f.reason).await.back(back.clone())?;
    Ok(see_other(&back, "discarded"))
}
