//! The e-signature form, as a page or as a dialog htmx opens over the record. It states exactly
//! what is signed (the record's content and the meaning), asks for the password again, and for
//! the username too at the first signature of a login session (21 CFR 11.200(a)(1)).

use askama::Template;
use axum::http::StatusCode;

use super::error::PageResult;
use super::session::PageUser;
use super::view::{Chrome, render};

pub struct SignForm {
    /// Where the form posts.
    pub action: String,
    pub heading: String,
    /// What is signed, as label and value.
    pub statement: Vec<(String, String)>,
    /// The meaning written with the signature when the use case fixes it; `None`: typed in.
    pub meaning: Option<String>,
    pub meaning_default: String,
    /// Extra fields the form sends (e.g. the decision).
    pub hidden: Vec<(String, String)>,
    /// Label of the reason field, if the form has one.
    pub reason: Option<String>,
    pub reason_required: bool,
    pub needs_username: bool,
    /// The printed name the signature will carry.
    pub signer: String,
    pub csrf: String,
    pub error: Option<String>,
    pub error_field: String,
    /// The record's page (cancel).
    pub back: String,
    pub in_dialog: bool,
}

impl SignForm {
    pub fn new(user: &PageUser, action: String, heading: String, back: String, needs_username: bool) -> SignForm {
        SignForm {
            action,
            heading,
            statement: Vec::new(),
            meaning: None,
            meaning_default: String::new(),
            hidden: Vec::new(),
            reason: None,
            reason_required: false,
            needs_username,
            signer: format!("{} ({})", user.actor.display_name, user.actor.username),
            csrf: user.csrf.clone(),
            error: None,
            error_field: String::new(),
            back,
            in_dialog: false,
        }
    }

    pub fn field_error(&self, field: &str) -> bool {
        self.error.is_some() && self.error_field == field
    }
}

#[derive(Template)]
#[template(path = "sign.html")]
struct SignPage {
    chrome: Chrome,
    form: SignForm,
}

#[derive(Template)]
#[template(path = "sign_dialog.html")]
struct SignDialog {
    form: SignForm,
}

/// The form as a dialog fragment (htmx) or as a page.
pub fn show(user: &PageUser, mut form: SignForm, htmx: bool) -> PageResult {
    let status = if form.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let mut resp = if htmx {
        form.in_dialog = true;
        render(&SignDialog { form })?
    } else {
        render(&SignPage { chrome: Chrome::new(user, form.heading.clone(), "trials"), form })?
    };
    *resp.status_mut() = status;
    Ok(resp)
}
