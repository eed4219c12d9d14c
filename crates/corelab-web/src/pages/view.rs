//! What every page shares: the page chrome (title, who is logged in, navigation, the notice after
//! a form), rendering, and small formatting helpers.

use askama::Template;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::assets;
use super::error::PageError;
use super::session::PageUser;

/// The parts of the layout (`base.html`) every page fills.
pub struct Chrome {
    pub title: String,
    pub user: Option<ChromeUser>,
    /// The anti-CSRF token for the forms of this page (empty when logged out).
    pub csrf: String,
    /// Navigation entry to mark as the current one.
    pub section: &'static str,
    /// Entry of a trial's own navigation to mark as the current one.
    pub sub: &'static str,
    /// Confirmation of the form just sent.
    pub notice: Option<&'static str>,
    pub css: String,
    pub htmx: String,
    pub js: String,
    pub icon: String,
    /// A page's own script besides corelab.js (an embedded static file), if it has one.
    pub page_js: Option<String>,
}

pub struct ChromeUser {
    pub display_name: String,
    pub username: String,
    pub is_admin: bool,
}

impl Chrome {
    pub fn anonymous(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            user: None,
            csrf: String::new(),
            section: "",
            sub: "",
            notice: None,
            css: assets::url("corelab.css"),
            htmx: assets::url("htmx-2.0.11.min.js"),
            js: assets::url("corelab.js"),
            icon: assets::url("favicon.svg"),
            page_js: None,
        }
    }

    pub fn new(user: &PageUser, title: impl Into<String>, section: &'static str) -> Chrome {
        let a = &user.actor;
        Chrome {
            user: Some(ChromeUser {
                display_name: a.display_name.clone(),
                username: a.username.clone(),
                is_admin: a.is_system_admin,
            }),
            csrf: user.csrf.clone(),
            section,
            ..Chrome::anonymous(title)
        }
    }

    /// Marks the current entry of a trial's navigation.
    pub fn sub(mut self, sub: &'static str) -> Chrome {
        self.sub = sub;
        self
    }

    /// Loads an embedded script of this page (from `static/`, never inline).
    pub fn script(mut self, name: &str) -> Chrome {
        self.page_js = Some(assets::url(name));
        self
    }

    pub fn notice(mut self, done: &Done) -> Chrome {
        self.notice = done.done.as_deref().and_then(notice_text);
        self
    }
}

/// `?done=CODE` after a form succeeded (redirect after POST). Only known codes are shown, so a
/// link cannot put words of its own on a corelab page.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

pub fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "enrolled" => "The subject is enrolled.",
        "corrected" => "The correction is saved, with its reason, in the audit trail.",
        "withdrawn" => "The subject is withdrawn.",
        "signed" => "Your signature is recorded.",
        "uploaded" => "The qualification scan is uploaded, de-identified and checked: its findings are below.",
        "approved" => "The site's qualification is approved and signed.",
        "rejected" => "The site's qualification is rejected and signed; the site sees the reason.",
        "trained" => "Your training is recorded.",
        "password" => "Your password is changed.",
        "loggedout" => "You are logged out.",
        "granted" => "The role is granted.",
        "revoked" => "The role is revoked.",
        "qc_accepted" => "The visit is accepted and your decision is signed.",
        "qc_deviation" => "The visit is accepted with a deviation and your decision is signed.",
        "qc_rejected" => {
            "The visit is rejected and your decision is signed; the site has a data query with your reason."
        }
        "adjudicated" => "The adjudication is decided and signed; the chosen read is the accepted result.",
        "answered" => "Your message is added to the query.",
        "closed" => "The query is closed.",
        "reopened" => "The query is reopened.",
        "assigned" => "The images are filed under the subject and visit.",
        "discarded" => "The item is discarded; it stays stored for the record.",
        "disabled" => "The account is disabled and its sessions are ended.",
        "enabled" => "The account is enabled.",
        _ => return None,
    })
}

/// Renders a template into a page.
pub fn render<T: Template>(t: &T) -> Result<Response, PageError> {
    Ok(Html(t.render().map_err(PageError::Render)?).into_response())
}

/// After a successful form: back to a page with a notice (303, so a reload does not resend).
pub fn see_other(path: &str, done: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}done={done}")).into_response()
}

pub fn utc(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn utc_seconds(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "trial_manager" -> "trial manager".
pub fn role_label(role: &str) -> String {
    role.replace('_', " ")
}

/// The caller's roles in a trial, for deciding which forms and links a page offers. This only
/// hides what would be refused anyway: the use cases decide.
#[derive(Debug, Clone, Default)]
pub struct Roles(pub Vec<String>);

impl Roles {
    pub fn any(&self, roles: &[&str]) -> bool {
        self.0.iter().any(|r| r == "system_admin" || roles.contains(&r.as_str()))
    }
    pub fn labels(&self) -> String {
        self.0.iter().map(|r| role_label(r)).collect::<Vec<_>>().join(", ")
    }
    pub fn may_enroll(&self) -> bool {
        self.any(&["site_user", "trial_manager"])
    }
    pub fn may_diff(&self) -> bool {
        self.any(&["trial_manager", "monitor", "qc_reviewer"])
    }
    pub fn may_audit(&self) -> bool {
        self.any(&["trial_manager", "monitor"])
    }
    pub fn may_see_grants(&self) -> bool {
        self.any(&["trial_manager", "monitor"])
    }
    /// Sees at least one report (readers and adjudicators see none).
    pub fn may_see_reports(&self) -> bool {
        self.any(&["trial_manager", "monitor", "sponsor", "qc_reviewer", "site_user"])
    }
    /// The trial dashboard (readers and adjudicators see no site-level record).
    pub fn may_see_dashboard(&self) -> bool {
        self.any(&["trial_manager", "monitor", "sponsor", "qc_reviewer", "site_user"])
    }
    pub fn may_grant(&self) -> bool {
        self.any(&["trial_manager"])
    }
    /// Opens site pages (sponsors see the site list, not a site's records).
    pub fn may_open_sites(&self) -> bool {
        self.any(&["trial_manager", "qc_reviewer", "monitor", "site_user"])
    }
    /// Sees the site gateways' health (the same roles as the use case).
    pub fn may_see_gateways(&self) -> bool {
        self.any(&["trial_manager", "qc_reviewer", "monitor", "site_user"])
    }
    pub fn may_upload(&self) -> bool {
        self.any(&["site_user", "trial_manager"])
    }
    pub fn may_decide(&self) -> bool {
        self.any(&["qc_reviewer"])
    }
    /// The QC queue (QC reviewers and trial managers).
    pub fn may_see_qc_queue(&self) -> bool {
        self.any(&["qc_reviewer", "trial_manager"])
    }
    /// Sees data queries and the inbox (the roles that see sites).
    pub fn may_see_queries(&self) -> bool {
        self.any(&["trial_manager", "qc_reviewer", "monitor", "site_user"])
    }
    /// Writes in a query's thread.
    pub fn may_answer_queries(&self) -> bool {
        self.any(&["site_user", "qc_reviewer", "trial_manager"])
    }
    /// Closes and reopens queries.
    pub fn may_close_queries(&self) -> bool {
        self.any(&["qc_reviewer", "trial_manager"])
    }
    /// Files inbox items under a subject and visit.
    pub fn may_assign_inbox(&self) -> bool {
        self.any(&["site_user", "trial_manager"])
    }
    pub fn may_discard_inbox(&self) -> bool {
        self.any(&["trial_manager"])
    }
    /// Reads images (the reading task list).
    pub fn may_read(&self) -> bool {
        self.0.iter().any(|r| r == "reader")
    }
    /// Adjudicates (the adjudication list).
    pub fn may_adjudicate(&self) -> bool {
        self.0.iter().any(|r| r == "adjudicator")
    }
    pub fn may_edit_subjects(&self) -> bool {
        self.any(&["site_user", "trial_manager"])
    }
}

/// `Ok(None)` for a 404 from a use case: the section is not for this caller and is left out.
pub fn optional<T>(r: Result<T, corelab_app::AppError>) -> Result<Option<T>, corelab_app::AppError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(corelab_app::AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Status words shown with their colour, so colour is never the only signal.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "qualified" => "Qualified",
        "pending" => "Pending: no scan yet",
        "submitted" => "Submitted: awaiting QC",
        "rejected" => "Rejected: upload a new scan",
        "enrolled" => "Enrolled",
        "withdrawn" => "Withdrawn",
        _ => "Unknown",
    }
}
