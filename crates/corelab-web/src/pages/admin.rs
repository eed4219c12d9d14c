//! Administration: accounts (system administrators; trial managers may look them up) and a
//! trial's role grants (trial managers and system administrators grant and revoke; monitors look).

use askama::Template;
use axum::extract::{Path, Query, State};
use corelab_app::AppError;
use corelab_app::grants::NewGrant;
use corelab_app::users::NewUser;
use corelab_domain::access::Role;
use serde::Deserialize;
use uuid::Uuid;

use super::error::{Back, PageResult};
use super::session::{PageUser, Posted};
use super::trials::{TrialHead, user_names};
use super::view::{Chrome, Done, optional, render, role_label, see_other, utc};
use crate::WebState;

pub struct UserLine {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub locked: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserLine>,
    can_admin: bool,
    me: String,
}

pub async fn users(State(s): State<WebState>, user: PageUser, Query(done): Query<Done>) -> PageResult {
    let list = s.app.list_users(&user.actor).await?;
    render(&UsersPage {
        chrome: Chrome::new(&user, "Users", "users").notice(&done),
        can_admin: user.actor.is_system_admin,
        me: user.actor.username.clone(),
        users: list
            .into_iter()
            .map(|u| UserLine {
                username: u.username,
                display_name: u.display_name,
                email: u.email.unwrap_or_default(),
                is_admin: u.is_system_admin,
                disabled: u.disabled,
                locked: u.locked,
            })
            .collect(),
    })
}

/// A password shown once: after creating an account without one, and after a reset.
#[derive(Template)]
#[template(path = "one_time.html")]
struct OneTimePage {
    chrome: Chrome,
    heading: String,
    username: String,
    password: String,
}

#[derive(Deserialize)]
pub struct CreateUserForm {
    username: String,
    display_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    is_system_admin: Option<String>,
}

pub async fn create_user(State(s): State<WebState>, Posted(user, f): Posted<CreateUserForm>) -> PageResult {
    let new = NewUser {
        username: f.username.trim().to_string(),
        display_name: f.display_name,
        email: f.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()),
        is_system_admin: f.is_system_admin.is_some(),
        // The page always generates the first password: it is shown once and must be changed.
        password: None,
    };
    let created = s.app.create_user(&user.actor, new).await.back("/admin/users#create")?;
    let password = created
        .generated_password
        .ok_or_else(|| AppError::internal(std::io::Error::other("no generated password for a new account")))?;
    render(&OneTimePage {
        chrome: Chrome::new(&user, "Account created", "users"),
        heading: format!("Account {} created", created.user.username),
        username: created.user.username,
        password,
    })
}

#[derive(Deserialize)]
pub struct ReasonForm {
    reason: String,
}

pub async fn disable_user(
    State(s): State<WebState>,
    Path(username): Path<String>,
    Posted(user, f): Posted<ReasonForm>,
) -> PageResult {
    s.app.set_user_disabled(&user.actor, &username, true, &f.reason).await.back("/admin/users")?;
    Ok(see_other("/admin/users", "disabled"))
}

pub async fn enable_user(
    State(s): State<WebState>,
    Path(username): Path<String>,
    Posted(user, f): Posted<ReasonForm>,
) -> PageResult {
    s.app.set_user_disabled(&user.actor, &username, false, &f.reason).await.back("/admin/users")?;
    Ok(see_other("/admin/users", "enabled"))
}

pub async fn reset_password(
    State(s): State<WebState>,
    Path(username): Path<String>,
    Posted(user, f): Posted<ReasonForm>,
) -> PageResult {
    let password = s.app.reset_password(&user.actor, &username, &f.reason).await.back("/admin/users")?;
    render(&OneTimePage {
        chrome: Chrome::new(&user, "Password reset", "users"),
        heading: format!("New password for {username}"),
        username,
        password,
    })
}

pub struct GrantLine {
    pub id: Uuid,
    pub who: String,
    pub role: String,
    pub site: String,
    pub unblinded: bool,
    pub since: String,
}

#[derive(Template)]
#[template(path = "grants.html")]
struct GrantsPage {
    chrome: Chrome,
    trial: TrialHead,
    grants: Vec<GrantLine>,
    can_grant: bool,
    users: Vec<(String, String)>,
    roles: Vec<(&'static str, String)>,
    sites: Vec<(String, String)>,
}

pub async fn grants(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let rows = s.app.list_grants(a, trial).await?;
    let names = user_names(&s, &user, &head.roles).await?;
    let can_grant = head.roles.may_grant();
    let sites = if can_grant {
        optional(s.app.list_sites(a, trial).await)?
            .unwrap_or_default()
            .into_iter()
            .map(|x| (x.site_id, x.name))
            .collect()
    } else {
        Vec::new()
    };
    let mut users: Vec<(String, String)> = names.iter().map(|(id, n)| (id.to_string(), n.clone())).collect();
    users.sort_by(|x, y| x.1.cmp(&y.1));
    render(&GrantsPage {
        chrome: Chrome::new(&user, format!("{} roles", head.protocol_id), "trials").sub("grants").notice(&done),
        grants: rows
            .into_iter()
            .map(|g| GrantLine {
                id: g.id,
                who: names.get(&g.user_id).cloned().unwrap_or_else(|| g.user_id.to_string()),
                role: role_label(&g.role),
                site: g.site_id.unwrap_or_default(),
                unblinded: g.unblinded,
                since: utc(&g.created_at),
            })
            .collect(),
        can_grant,
        users,
        roles: Role::ALL.iter().map(|r| (r.as_str(), role_label(r.as_str()))).collect(),
        sites,
        trial: head,
    })
}

#[derive(Deserialize)]
pub struct GrantForm {
    user_id: String,
    role: String,
    #[serde(default)]
    site_id: Option<String>,
    #[serde(default)]
    unblinded: Option<String>,
}

pub async fn grant(
    State(s): State<WebState>,
    Path(trial): Path<Uuid>,
    Posted(user, f): Posted<GrantForm>,
) -> PageResult {
    let back = format!("/trials/{trial}/grants");
    let parsed = (|| -> Result<NewGrant, AppError> {
        let user_id = f.user_id.parse::<Uuid>().map_err(|_| AppError::invalid("user_id", "choose an account"))?;
        let role =
            Role::parse(&f.role).ok_or_else(|| AppError::invalid("role", format!("unknown role {:?}", f.role)))?;
        Ok(NewGrant {
            user_id,
            role,
            site_id: f.site_id.map(|x| x.trim().to_string()).filter(|x| !x.is_empty()),
            unblinded: f.unblinded.is_some(),
        })
    })();
    let g = parsed.back(back.clone())?;
    s.app.grant_role(&user.actor, trial, g).await.back(back.clone())?;
    Ok(see_other(&back, "granted"))
}

pub async fn revoke(
    State(s): State<WebState>,
    Path((trial, grant)): Path<(Uuid, Uuid)>,
    Posted(user, f): Posted<ReasonForm>,
) -> PageResult {
    let back = format!("/trials/{trial}/grants");
    s.app.revoke_grant(&user.actor, trial, grant, &f.reason).await.back(back.clone())?;
    Ok(see_other(&back, "revoked"))
}
