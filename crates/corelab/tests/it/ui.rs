//! The web pages: who sees what (per role, every page route), forms end to end (login, forced
//! password change, enroll, correct, sign in the dialog, qualification decision, grants), the
//! anti-CSRF check on every form, and a headless-browser walk with screenshots and axe-core.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Client;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Backend, TestApp, e2e_artifacts, e2e_ready, run_e2e};
use crate::world::{PASSWORD, ROLES, World, check, ct_instance, world};

/// A browser-like client that does not follow redirects, so tests see each 303.
pub(crate) fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(Policy::none()).timeout(Duration::from_secs(60)).build().unwrap()
}

/// The anti-CSRF token in a page's first form.
pub(crate) fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let i = html.find(marker).unwrap_or_else(|| panic!("no csrf field in: {html}")) + marker.len();
    html[i..].split('"').next().unwrap().to_string()
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

pub(crate) async fn page(c: &Client, t: &TestApp, path: &str) -> (u16, String) {
    let r = c.get(t.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// GETs a page that must answer 200 and returns its HTML.
pub(crate) async fn ok_page(c: &Client, t: &TestApp, path: &str) -> String {
    let (status, body) = page(c, t, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Posts a form with the token of the page at `form_page`.
pub(crate) async fn submit(
    c: &Client,
    t: &TestApp,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf(&ok_page(c, t, form_page).await);
    let mut form: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    c.post(t.url(action)).form(&form).send().await.unwrap()
}

/// Logs in through the login form.
pub(crate) async fn ui_login(t: &TestApp, username: &str, password: &str) -> Client {
    let c = browser();
    let token = csrf(&ok_page(&c, t, "/login").await);
    let r = c
        .post(t.url("/login"))
        .form(&[("csrf", token.as_str()), ("username", username), ("password", password), ("next", "/trials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login {username}: {}", r.text().await.unwrap());
    c
}

/// Follows a 303 and returns the page it leads to.
pub(crate) async fn follow(c: &Client, t: &TestApp, r: reqwest::Response) -> (String, String) {
    let status = r.status();
    let to = location(&r);
    assert_eq!(status, 303, "expected a redirect, got {status}: {}", r.text().await.unwrap());
    let body = ok_page(c, t, &to).await;
    (to, body)
}

async fn last_seq(w: &World) -> i64 {
    let v: Value = check(w.c("admin").get(w.url("/api/v1/audit?limit=1000")).send().await.unwrap(), 200).await;
    v.as_array().unwrap().last().map(|r| r["seq"].as_i64().unwrap()).unwrap_or(0)
}

#[tokio::test]
async fn ui_login_forced_password_change_and_logout() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    // Anonymous: every page sends to the login page, which comes back afterwards.
    let anon = browser();
    let r = anon.get(t.url(&format!("/trials/{}", w.trial))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/login?next=/trials/{}", w.trial));
    // A wrong password re-shows the form with the reason-less message; nothing else is said.
    let token = csrf(&ok_page(&anon, t, "/login").await);
    let r = anon
        .post(t.url("/login"))
        .form(&[("csrf", token.as_str()), ("username", "tm"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("wrong username or password") && body.contains("aria-invalid=\"true\""), "{body}");
    // The login form without its double-submit cookie is refused (login CSRF).
    let r = Client::new()
        .post(t.url("/login"))
        .form(&[("csrf", token.as_str()), ("username", "tm"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The administrator creates an account; its one-time password is shown once.
    let admin = ui_login(t, "admin", ADMIN_PASSWORD).await;
    let r = submit(
        &admin,
        t,
        "/admin/users",
        "/admin/users",
        &[("username", "newbie"), ("display_name", "Nora Newbie"), ("email", "")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    let marker = "id=\"one-time-password\">";
    let i = body.find(marker).unwrap() + marker.len();
    let generated = body[i..].split('<').next().unwrap().to_string();
    assert_eq!(generated.len(), 23, "{generated}");
    assert!(!ok_page(&admin, t, "/admin/users").await.contains(&generated));

    // First login goes to the forced password change; other pages send back there.
    let nb = browser();
    let token = csrf(&ok_page(&nb, t, "/login").await);
    let r = nb
        .post(t.url("/login"))
        .form(&[("csrf", token.as_str()), ("username", "newbie"), ("password", generated.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/password");
    let r = nb.get(t.url("/trials")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/password".to_string()));
    let forced = ok_page(&nb, t, "/password").await;
    assert!(forced.contains("Your password was generated for you"), "{forced}");
    let r = submit(
        &nb,
        t,
        "/password",
        "/password",
        &[
            ("current_password", &generated),
            ("new_password", "Nora-Own-Pass-77"),
            ("confirm_password", "Nora-Own-Pass-78"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("differ"));
    let r = submit(
        &nb,
        t,
        "/password",
        "/password",
        &[("current_password", &generated), ("new_password", "short"), ("confirm_password", "short")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("at least 12 characters"));
    let r = submit(
        &nb,
        t,
        "/password",
        "/password",
        &[
            ("current_password", &generated),
            ("new_password", "Nora-Own-Pass-77"),
            ("confirm_password", "Nora-Own-Pass-77"),
        ],
    )
    .await;
    let (to, body) = follow(&nb, t, r).await;
    assert_eq!(to, "/trials?done=password");
    assert!(body.contains("Your password is changed.") && body.contains("no role in any trial"), "{body}");

    // Logout ends the session: the old cookie no longer opens a page.
    let r = submit(&nb, t, "/trials", "/logout", &[]).await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let r = nb.get(t.url("/trials")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login"));
    // The session cookie pages set is the API's: HttpOnly and SameSite=Strict.
    let c = browser();
    let token = csrf(&ok_page(&c, t, "/login").await);
    let r = c
        .post(t.url("/login"))
        .form(&[("csrf", token.as_str()), ("username", "newbie"), ("password", "Nora-Own-Pass-77")])
        .send()
        .await
        .unwrap();
    let cookie = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(
        cookie
            .iter()
            .any(|c| c.starts_with("corelab_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict")),
        "{cookie:?}"
    );
    let me: Value = check(c.get(t.url("/api/v1/me")).send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "newbie");
    w.t.stop().await;
}

/// A path of the page route table made concrete, with a form body that would otherwise be valid.
fn concrete_post(w: &World, path: &str) -> (String, Vec<(&'static str, String)>) {
    let p = path
        .replace("{trial}", &w.trial.to_string())
        .replace("{site}", "101")
        .replace("{subject}", &w.subject_a.to_string())
        .replace("{grant}", &w.reader_grant.to_string())
        .replace("{username}", "reader")
        .replace("{visit}", "BL")
        .replace("{query}", &w.query.to_string())
        .replace("{item}", &w.inbox_item.to_string())
        .replace("{adjudication}", &uuid::Uuid::nil().to_string());
    let reason = ("reason", "a reason".to_string());
    let fields = match path {
        "/login" => vec![("username", "admin".into()), ("password", ADMIN_PASSWORD.into())],
        "/password" => vec![
            ("current_password", ADMIN_PASSWORD.into()),
            ("new_password", "Other-Admin-Pass-1".into()),
            ("confirm_password", "Other-Admin-Pass-1".into()),
        ],
        "/trials/{trial}/subjects" => {
            vec![("site_id", "101".into()), ("subject_id", "101-009".into()), ("anchor_date", "2026-10-01".into())]
        }
        "/trials/{trial}/training" => vec![("topic", "charter".into())],
        "/trials/{trial}/grants" => {
            vec![("user_id", w.user_ids["monitor"].to_string()), ("role", "qc_reviewer".into())]
        }
        "/subjects/{subject}/correct" => vec![("anchor_date", "2026-10-05".into()), reason],
        "/subjects/{subject}/withdraw" => vec![("date", "2026-10-05".into()), reason],
        "/subjects/{subject}/sign" => vec![
            ("meaning", "enrollment confirmed".into()),
            ("username", "admin".into()),
            ("password", ADMIN_PASSWORD.into()),
        ],
        "/trials/{trial}/sites/{site}/qualification/decision" => {
            vec![("approve", "false".into()), ("username", "admin".into()), ("password", ADMIN_PASSWORD.into()), reason]
        }
        "/admin/users" => vec![("username", "mallory".into()), ("display_name", "Mallory".into())],
        "/trials/{trial}/qc/{subject}/{visit}/decision" => {
            vec![
                ("outcome", "reject".into()),
                ("username", "admin".into()),
                ("password", ADMIN_PASSWORD.into()),
                reason,
            ]
        }
        "/trials/{trial}/queries/{query}/messages" => vec![("body", "an answer".into())],
        "/adjudications/{adjudication}/decision" => vec![
            ("chosen", "reader_1".into()),
            ("username", "admin".into()),
            ("password", ADMIN_PASSWORD.into()),
            reason,
        ],
        "/trials/{trial}/inbox/{item}/assign" => {
            vec![("subject", w.subject_a.to_string()), ("visit_id", "BL".into()), reason]
        }
        _ => vec![reason],
    };
    (p, fields)
}

#[tokio::test]
async fn ui_every_form_post_without_this_sessions_token_is_refused() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let admin = ui_login(t, "admin", ADMIN_PASSWORD).await;
    let own_token = csrf(&ok_page(&admin, t, "/trials").await);
    // A token of another session of the same user is not this session's.
    let other_session = ui_login(t, "admin", ADMIN_PASSWORD).await;
    let foreign_token = csrf(&ok_page(&other_session, t, "/trials").await);
    assert_ne!(own_token, foreign_token);
    let before = last_seq(&w).await;
    let posts: Vec<String> =
        corelab_web::pages::route_list().into_iter().filter(|(m, _)| *m == "POST").map(|(_, p)| p).collect();
    assert!(posts.len() >= 15, "{posts:?}");
    for path in &posts {
        let (url, fields) = concrete_post(&w, path);
        for token in [None, Some(foreign_token.as_str()), Some("")] {
            let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            if let Some(tok) = token {
                form.push(("csrf", tok));
            }
            let r = admin.post(t.url(&url)).form(&form).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_eq!(status, 403, "POST {url} with token {token:?}: {body}");
            assert!(body.contains("Form refused"), "POST {url}: {body}");
        }
        // A multipart body without the token field first is refused the same way.
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"DICM?".to_vec()));
        let r = admin.post(t.url(&url)).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 403, "multipart POST {url}");
    }
    // Nothing was changed or even attempted: no audit record was written.
    assert_eq!(last_seq(&w).await, before, "a refused form left an audit record");
    // A form with the session's token goes through (the check is not a blanket refusal).
    let r = admin
        .post(t.url("/admin/users/reader/reset-password"))
        .form(&[("csrf", own_token.as_str()), ("reason", "forgotten")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("New password for reader"));
    w.t.stop().await;
}

/// What one role gets on one concrete page: 200, 403 or 404.
fn expect(role: &str, page: &str) -> u16 {
    let site_level = ["admin", "tm", "site_a", "qc", "monitor"];
    let all_sites = ["admin", "tm", "qc", "monitor"];
    let is = |list: &[&str]| list.contains(&role);
    match page {
        "trials" | "trial" | "charter" | "training" | "password" => 200,
        // A read task that does not exist (tests/it/workstation.rs opens a real one: its reader
        // alone gets the workstation).
        "unknown_workstation" => 404,
        "other_trial" => {
            if role == "admin" {
                200
            } else {
                404
            }
        }
        "diff" => {
            if is(&["admin", "tm", "qc", "monitor"]) {
                200
            } else {
                403
            }
        }
        "qc_queue" => {
            if is(&["admin", "tm", "qc"]) {
                200
            } else {
                403
            }
        }
        "other_trial_query" => {
            if role == "admin" {
                200
            } else {
                404
            }
        }
        "calendar" | "own_site" | "own_decide" | "own_subject" | "own_sign" | "own_qc_review" | "own_qc_decide"
        | "queries" | "own_query" | "inbox" => {
            if is(&site_level) {
                200
            } else {
                404
            }
        }
        "other_site" | "other_decide" | "other_subject" | "other_sign" | "other_qc_review" => {
            if is(&all_sites) {
                200
            } else {
                404
            }
        }
        "grants" | "audit" => {
            if is(&["admin", "tm", "monitor"]) {
                200
            } else {
                403
            }
        }
        "reports" | "report_site" => {
            if is(&["admin", "tm", "monitor", "sponsor", "qc", "site_a"]) {
                200
            } else {
                403
            }
        }
        "report_response" | "report_readers" => {
            if is(&["admin", "tm", "monitor", "sponsor"]) {
                200
            } else {
                403
            }
        }
        "report_other_trial" => {
            if role == "admin" {
                200
            } else {
                404
            }
        }
        // Reading pages: lists for their role (administrators see an empty list), a task or an
        // adjudication only for its own reader / adjudicator; the rest of the trial is refused
        // (403) and another reader's task is not found.
        "reading" => {
            if is(&["admin", "reader"]) {
                200
            } else {
                403
            }
        }
        "adjudication_list" => {
            if is(&["admin", "adjudicator"]) {
                200
            } else {
                403
            }
        }
        "own_read_task" => match role {
            "reader" => 200,
            "admin" => 404,
            _ => 403,
        },
        "other_read_task" => {
            if is(&["admin", "reader"]) {
                404
            } else {
                403
            }
        }
        "own_adjudication" => match role {
            "adjudicator" => 200,
            "admin" => 404,
            _ => 403,
        },
        // Who may send images for a site (`stow_target`): its site staff and trial managers; QC
        // and monitors see the site but may not send (403); the others do not see it (404).
        "own_upload" => {
            if is(&["admin", "tm", "site_a"]) {
                200
            } else if is(&["qc", "monitor"]) {
                403
            } else {
                404
            }
        }
        "other_upload" => {
            if is(&["admin", "tm"]) {
                200
            } else if is(&["qc", "monitor"]) {
                403
            } else {
                404
            }
        }
        // Sponsors see the per-site aggregates; readers and adjudicators no site-level record.
        "dashboard" => {
            if is(&["admin", "tm", "site_a", "qc", "monitor", "sponsor"]) {
                200
            } else {
                404
            }
        }
        "users" => {
            if is(&["admin", "tm"]) {
                200
            } else {
                403
            }
        }
        other => panic!("no expectation for {other}"),
    }
}

#[tokio::test]
async fn ui_pages_show_each_role_only_what_it_may_see() {
    let w = world(Backend::SqliteLocal).await;
    // A submitted read of `reader`, one of `reader2`, and an open adjudication of `adjudicator`.
    let reads = crate::reads::read_fixture(&w).await;
    let c2 = World::login(&w.t, "reader2").await;
    let other_task = crate::reads::Seen::new(&w, &c2).task("TP2").await;
    let t = w.trial;
    let (a, b) = (w.subject_a, w.subject_b);
    // Every GET page route with its concrete pages (in scope and out of scope).
    let pages: Vec<(&str, &str, String)> = vec![
        ("/trials", "trials", "/trials".into()),
        ("/trials/{trial}", "trial", format!("/trials/{t}")),
        ("/trials/{trial}", "other_trial", format!("/trials/{}", w.other_trial)),
        ("/trials/{trial}/charter", "charter", format!("/trials/{t}/charter")),
        ("/trials/{trial}/charter/diff", "diff", format!("/trials/{t}/charter/diff?from=1&to=1")),
        ("/trials/{trial}/calendar", "calendar", format!("/trials/{t}/calendar")),
        ("/trials/{trial}/training", "training", format!("/trials/{t}/training")),
        ("/trials/{trial}/grants", "grants", format!("/trials/{t}/grants")),
        ("/trials/{trial}/sites/{site}", "own_site", format!("/trials/{t}/sites/101")),
        ("/trials/{trial}/sites/{site}", "other_site", format!("/trials/{t}/sites/102")),
        (
            "/trials/{trial}/sites/{site}/qualification/decide",
            "own_decide",
            format!("/trials/{t}/sites/101/qualification/decide"),
        ),
        (
            "/trials/{trial}/sites/{site}/qualification/decide",
            "other_decide",
            format!("/trials/{t}/sites/102/qualification/decide?approve=false"),
        ),
        ("/subjects/{subject}", "own_subject", format!("/subjects/{a}")),
        ("/subjects/{subject}", "other_subject", format!("/subjects/{b}")),
        ("/subjects/{subject}/sign", "own_sign", format!("/subjects/{a}/sign")),
        ("/subjects/{subject}/sign", "other_sign", format!("/subjects/{b}/sign")),
        ("/trials/{trial}/reports", "reports", format!("/trials/{t}/reports")),
        ("/trials/{trial}/reports/{report}", "report_site", format!("/trials/{t}/reports/site-performance")),
        ("/trials/{trial}/reports/{report}", "report_readers", format!("/trials/{t}/reports/reader-performance")),
        ("/trials/{trial}/reports/{report}", "report_response", format!("/trials/{t}/reports/response")),
        ("/trials/{trial}/reports/{report}", "report_response", format!("/trials/{t}/reports/timeline")),
        (
            "/trials/{trial}/reports/{report}",
            "report_other_trial",
            format!("/trials/{}/reports/site-performance", w.other_trial),
        ),
        ("/trials/{trial}/qc", "qc_queue", format!("/trials/{t}/qc")),
        ("/trials/{trial}/qc/{subject}/{visit}", "own_qc_review", format!("/trials/{t}/qc/{a}/BL")),
        ("/trials/{trial}/qc/{subject}/{visit}", "other_qc_review", format!("/trials/{t}/qc/{b}/BL")),
        (
            "/trials/{trial}/qc/{subject}/{visit}/decide",
            "own_qc_decide",
            format!("/trials/{t}/qc/{a}/BL/decide?outcome=reject"),
        ),
        ("/trials/{trial}/queries", "queries", format!("/trials/{t}/queries?state=all")),
        ("/trials/{trial}/queries/{query}", "own_query", format!("/trials/{t}/queries/{}", w.query)),
        (
            "/trials/{trial}/queries/{query}",
            "other_trial_query",
            format!("/trials/{}/queries/{}", w.other_trial, w.other_query),
        ),
        ("/trials/{trial}/inbox", "inbox", format!("/trials/{t}/inbox")),
        ("/trials/{trial}/reading", "reading", format!("/trials/{t}/reading")),
        ("/read-tasks/{task}", "own_read_task", format!("/read-tasks/{}", reads.task)),
        ("/read-tasks/{task}", "other_read_task", format!("/read-tasks/{other_task}")),
        ("/trials/{trial}/adjudication", "adjudication_list", format!("/trials/{t}/adjudication")),
        ("/adjudications/{adjudication}", "own_adjudication", format!("/adjudications/{}", reads.adjudication)),
        (
            "/adjudications/{adjudication}/decide",
            "own_adjudication",
            format!("/adjudications/{}/decide?chosen=reader_1", reads.adjudication),
        ),
        ("/trials/{trial}/sites/{site}/upload", "own_upload", format!("/trials/{t}/sites/101/upload")),
        ("/trials/{trial}/sites/{site}/upload", "other_upload", format!("/trials/{t}/sites/102/upload")),
        ("/trials/{trial}/dashboard", "dashboard", format!("/trials/{t}/dashboard")),
        ("/audit", "audit", format!("/audit?trial_id={t}")),
        ("/admin/users", "users", "/admin/users".into()),
        ("/password", "password", "/password".into()),
        (
            "/read-tasks/{task}/workstation",
            "unknown_workstation",
            format!("/read-tasks/{}/workstation", uuid::Uuid::new_v4()),
        ),
    ];
    // The table covers every GET page route (a new page fails here until it has expectations).
    let covered: HashSet<&str> = pages.iter().map(|(r, _, _)| *r).collect();
    for (m, route) in corelab_web::pages::route_list() {
        if m == "GET" && !["/", "/login", "/static/{file}", "/viewer/{*path}"].contains(&route.as_str()) {
            assert!(covered.contains(route.as_str()), "no expectation for GET {route}");
        }
    }
    let mut failures = Vec::new();
    for role in ROLES {
        let c = w.c(role);
        for (_, name, path) in &pages {
            let r = c.get(w.url(path)).send().await.unwrap();
            let got = r.status().as_u16();
            let body = r.text().await.unwrap();
            let want = expect(role, name);
            if got != want {
                failures.push(format!("{role} GET {path}: got {got}, expected {want}"));
            }
            // Error pages say what to do next and offer a way back.
            if got >= 400 && !(body.contains("Your trials") && body.contains("<h1>")) {
                failures.push(format!("{role} GET {path}: the {got} page has no way back: {body}"));
            }
            // Blinded readers never see site names, subjects, arms or AE titles, on any page.
            if ["reader", "adjudicator"].contains(role) {
                for leak in [
                    "Hopital Saint-Louis",
                    "Charite",
                    "Acmetinib 200",
                    "Docetaxel 75",
                    "101-001",
                    "102-001",
                    "SLS_CT1",
                    "Rob Reader",
                ] {
                    if body.contains(leak) {
                        failures.push(format!("{role} GET {path} shows {leak}"));
                    }
                }
            }
            // Site A staff never see site B's records; blinded roles never see arms.
            if *role == "site_a" {
                for leak in ["102-001", "Charite", "CHARITE_CT"] {
                    if body.contains(leak) {
                        failures.push(format!("site_a GET {path} shows {leak}"));
                    }
                }
            }
            if ["monitor", "qc", "tm", "sponsor"].contains(role)
                && (body.contains("Acmetinib 200") || body.contains("<td>A</td>"))
            {
                failures.push(format!("blinded {role} GET {path} shows an arm"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // The arm reaches the site that recorded it.
    let body = ok_page(w.c("site_a"), &w.t, &format!("/subjects/{a}")).await;
    assert!(body.contains("<dt>Arm</dt><dd>A</dd>"), "{body}");
    // The API's charter view agrees with the pages: site staff see only their own site.
    let v: Value =
        check(w.c("site_a").get(w.url(&format!("/api/v1/trials/{t}/charter"))).send().await.unwrap(), 200).await;
    let sites: Vec<&str> =
        v["charter"]["sites"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(sites, ["101"]);
    let v: Value = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/charter"))).send().await.unwrap(), 200).await;
    assert_eq!(v["charter"]["sites"].as_array().unwrap().len(), 3);
    w.t.stop().await;
}

#[tokio::test]
async fn ui_forms_enroll_correct_sign_withdraw_and_qualify() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let trial = w.trial;
    let site = ui_login(t, "site_a", PASSWORD).await;

    // Enroll from the trial page.
    let trial_page = format!("/trials/{trial}");
    let body = ok_page(&site, t, &trial_page).await;
    assert!(body.contains("Enroll a subject") && body.contains("101-001") && !body.contains("102-001"), "{body}");
    let r = submit(
        &site,
        t,
        &trial_page,
        &format!("/trials/{trial}/subjects"),
        &[("site_id", "101"), ("subject_id", "101-002"), ("anchor_date", "2026-09-15"), ("arm", "B")],
    )
    .await;
    let (subject_page, body) = follow(&site, t, r).await;
    assert!(body.contains("The subject is enrolled.") && body.contains("Subject 101-002"), "{body}");
    assert!(body.contains("<dt>Arm</dt><dd>B</dd>") && body.contains("2026-09-15"), "{body}");
    let subject_page = subject_page.split('?').next().unwrap().to_string();
    let subject = subject_page.trim_start_matches("/subjects/").to_string();
    // A rule the use case enforces comes back as a page that says what to do, with a way back.
    let r = submit(
        &site,
        t,
        &trial_page,
        &format!("/trials/{trial}/subjects"),
        &[("site_id", "101"), ("subject_id", "XYZ"), ("anchor_date", "2026-09-15")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("subject ID pattern {site}-{nnn}"), "{body}");
    assert!(body.contains(&format!("href=\"/trials/{trial}#enroll\"")), "{body}");

    // A correction needs a reason.
    let r = submit(
        &site,
        t,
        &subject_page,
        &format!("{subject_page}/correct"),
        &[("anchor_date", "2026-09-16"), ("reason", " ")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("say why the subject&#39;s data is corrected"));

    // Sign in the dialog: it states what is signed and asks for the username at the first signature.
    let dialog = site
        .get(t.url(&format!("{subject_page}/sign")))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dialog.trim_start().starts_with("<dialog") && !dialog.contains("<html"), "{dialog}");
    assert!(
        dialog.contains("You are signing")
            && dialog.contains("Subject 101-002 at site 101")
            && dialog.contains("name=\"username\""),
        "{dialog}"
    );
    let sign = format!("{subject_page}/sign");
    let r = submit(&site, t, &sign, &sign, &[("meaning", "enrollment confirmed"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("needs both your username and your password") && body.contains("You are signing"), "{body}");
    let r = submit(
        &site,
        t,
        &sign,
        &sign,
        &[("meaning", "enrollment confirmed"), ("username", "site_a"), ("password", "wrong-Password-1")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("the password is wrong; the record was not signed"));
    let r = submit(
        &site,
        t,
        &sign,
        &sign,
        &[("meaning", "enrollment confirmed"), ("username", "site_a"), ("password", PASSWORD)],
    )
    .await;
    let (_, body) = follow(&site, t, r).await;
    assert!(body.contains("Your signature is recorded."), "{body}");
    assert!(body.contains("signed by Sam Sitea on ") && body.contains(" UTC: enrollment confirmed"), "{body}");
    assert!(!body.contains("invalidated:"), "{body}");
    // Later signatures in the session need only the password.
    let again = ok_page(&site, t, &sign).await;
    assert!(!again.contains("name=\"username\""), "{again}");

    // Correcting the signed record invalidates the signature, visibly.
    let r = submit(
        &site,
        t,
        &subject_page,
        &format!("{subject_page}/correct"),
        &[("anchor_date", "2026-09-16"), ("reason", "date typo")],
    )
    .await;
    let (_, body) = follow(&site, t, r).await;
    assert!(body.contains("The correction is saved") && body.contains("2026-09-16"), "{body}");
    assert!(body.contains("(invalidated: the record changed after signing)") && body.contains("tag bad"), "{body}");
    // Withdrawal with a reason; no visit after the date stays expected.
    let r = submit(
        &site,
        t,
        &subject_page,
        &format!("{subject_page}/withdraw"),
        &[("date", "2026-10-01"), ("reason", "consent withdrawn")],
    )
    .await;
    let (_, body) = follow(&site, t, r).await;
    assert!(body.contains("The subject is withdrawn.") && body.contains("Withdrawn</span> on 2026-10-01"), "{body}");
    assert!(body.contains("BL: Baseline") && !body.contains("W8: Week 8"), "{body}");
    // The trail has the reasons.
    let audit: Value = check(
        w.c("tm")
            .get(w.url(&format!("/api/v1/audit?trial_id={trial}&object_type=subject&object_id={subject}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let reasons: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["date typo", "consent withdrawn"]);

    // Qualification: the trial manager uploads a scan for site 201 with the file form.
    let tm = ui_login(t, "tm", PASSWORD).await;
    let site_page = format!("/trials/{trial}/sites/201");
    let token = csrf(&ok_page(&tm, t, &site_page).await);
    let form = reqwest::multipart::Form::new().text("csrf", token).part(
        "file",
        reqwest::multipart::Part::bytes(ct_instance("PHANTOM^ACR", "7"))
            .file_name("phantom.dcm")
            .mime_str("application/dicom")
            .unwrap(),
    );
    let r = tm.post(t.url(&format!("{site_page}/qualification/scans"))).multipart(form).send().await.unwrap();
    let (_, body) = follow(&tm, t, r).await;
    assert!(body.contains("The qualification scan is uploaded"), "{body}");
    assert!(
        body.contains("Submitted: awaiting QC") && body.contains("slice_thickness") && body.contains("1 finding(s)"),
        "{body}"
    );
    assert!(!body.contains("PHANTOM^ACR"), "the scan's PHI reached the page: {body}");
    assert!(!body.contains("Approve and sign"), "only QC reviewers are offered the decision");

    // The QC reviewer approves in the signing form; the decision and scans are stated.
    let qc = ui_login(t, "qc", PASSWORD).await;
    let body = ok_page(&qc, t, &site_page).await;
    assert!(body.contains("Approve and sign") && body.contains("Reject and sign"), "{body}");
    let decide = format!("{site_page}/qualification/decide?approve=true");
    let form_html = ok_page(&qc, t, &decide).await;
    assert!(
        form_html.contains("Qualification of site 201 (Massachusetts General Hospital), trial ACME-101"),
        "{form_html}"
    );
    assert!(form_html.contains("site qualification approved") && form_html.contains("1 finding(s)"), "{form_html}");
    assert!(form_html.contains("name=\"username\""), "first signature of the session: {form_html}");
    let action = format!("{site_page}/qualification/decision");
    let r = submit(
        &qc,
        t,
        &decide,
        &action,
        &[("approve", "true"), ("username", "qc"), ("password", PASSWORD), ("reason", "")],
    )
    .await;
    let (to, body) = follow(&qc, t, r).await;
    assert!(to.ends_with("done=approved"), "{to}");
    assert!(
        body.contains("Qualified")
            && body.contains("signed by Quinn Checker on ")
            && body.contains("UTC: site qualification approved"),
        "{body}"
    );
    // Site A staff cannot open site 201 at all.
    let (status, _) = page(&site, t, &site_page).await;
    assert_eq!(status, 404);

    // Training from the site page returns there.
    let r = submit(
        &tm,
        t,
        &site_page,
        &format!("/trials/{trial}/training"),
        &[("topic", "charter v1"), ("back", &site_page)],
    )
    .await;
    assert_eq!(location(&r), format!("{site_page}?done=trained"));
    let body = ok_page(&tm, t, &format!("/trials/{trial}/training")).await;
    assert!(body.contains("charter v1") && body.contains("you (tm)"), "{body}");
    w.t.stop().await;
}

#[tokio::test]
async fn ui_administration_grants_audit_browser_and_exports() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let trial = w.trial;
    let admin = ui_login(t, "admin", ADMIN_PASSWORD).await;

    // Disable and re-enable an account with reasons; a reset shows a new one-time password.
    let r = submit(&admin, t, "/admin/users", "/admin/users/monitor/disable", &[("reason", "left the CRO")]).await;
    let (_, body) = follow(&admin, t, r).await;
    assert!(body.contains("The account is disabled") && body.contains("tag bad"), "{body}");
    // Its sessions ended: the monitor's next page is the login page.
    let r = w.c("monitor").get(w.url(&format!("/trials/{trial}"))).send().await.unwrap();
    assert_eq!(r.url().path(), "/login");
    let r = submit(&admin, t, "/admin/users", "/admin/users/monitor/enable", &[("reason", "back on the study")]).await;
    assert_eq!(location(&r), "/admin/users?done=enabled");
    let monitor = World::login(t, "monitor").await;
    let r = submit(&admin, t, "/admin/users", "/admin/users/sponsor/reset-password", &[("reason", "forgotten")]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("New password for sponsor") && body.contains("shown <strong>only now</strong>"), "{body}");
    // A missing reason is refused with the use case's words.
    let r = submit(&admin, t, "/admin/users", "/admin/users/qc/disable", &[("reason", "")]).await;
    assert_eq!(r.status(), 422);

    // Grant and revoke a role in the trial.
    let grants = format!("/trials/{trial}/grants");
    let r = submit(
        &admin,
        t,
        &grants,
        &grants,
        &[("user_id", &w.user_ids["monitor"].to_string()), ("role", "qc_reviewer"), ("site_id", "")],
    )
    .await;
    let (_, body) = follow(&admin, t, r).await;
    assert!(body.contains("The role is granted.") && body.contains("Mo Nitor (monitor)</td><td>qc reviewer"), "{body}");
    // A reader cannot be site staff: the rule's message comes back.
    let r = submit(
        &admin,
        t,
        &grants,
        &grants,
        &[("user_id", &w.user_ids["reader"].to_string()), ("role", "site_user"), ("site_id", "101")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("cannot also be site staff"));
    let r = submit(&admin, t, &grants, &format!("{grants}/{}/revoke", w.reader_grant), &[("reason", "left")]).await;
    assert_eq!(location(&r), format!("{grants}?done=revoked"));
    let (status, _) = page(w.c("reader"), t, &format!("/trials/{trial}")).await;
    assert_eq!(status, 404, "a revoked reader no longer sees the trial");

    // An amendment: the trial page lists both versions; roles that may compare get the form and the changes.
    let amended = crate::world::charter_text("oncology-ct-recist.toml")
        .replace("version = \"1.0\"", "version = \"1.1\"")
        .replace("window = { minus_days = 7, plus_days = 7 }", "window = { minus_days = 7, plus_days = 10 }");
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{trial}/charter")))
            .json(&json!({"charter": amended, "reason": "wider follow-up windows"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let body = ok_page(w.c("tm"), t, &format!("/trials/{trial}")).await;
    assert!(body.contains("wider follow-up windows") && body.contains("Compare two versions"), "{body}");
    let body = ok_page(w.c("tm"), t, &format!("/trials/{trial}/charter/diff?from=1&to=2")).await;
    assert!(body.contains("What changed from charter version 1 to 2") && body.contains("plus_days"), "{body}");
    let body = ok_page(w.c("site_a"), t, &format!("/trials/{trial}")).await;
    assert!(body.contains("wider follow-up windows") && !body.contains("Compare two versions"), "{body}");
    let (status, body) = page(w.c("site_a"), t, &format!("/trials/{trial}/charter/diff?from=1&to=2")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("compare charter versions"), "{body}");
    let body = ok_page(w.c("tm"), t, &format!("/trials/{trial}/charter?version=1")).await;
    assert!(body.contains("Version 1 (“1.0”) as your roles see it"), "{body}");
    let (status, _) = page(w.c("tm"), t, &format!("/trials/{trial}/charter?version=x")).await;
    assert_eq!(status, 422);

    // Audit trail: filters and exports of the same selection.
    let body = ok_page(&admin, t, &format!("/audit?trial_id={trial}&object_type=grant")).await;
    assert!(body.contains("revoke") && body.contains("left") && body.contains("qc_reviewer"), "{body}");
    assert!(!body.contains(">login<"), "the object type filter applies: {body}");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M").to_string();
    let body = ok_page(&admin, t, &format!("/audit?trial_id={trial}&from={tomorrow}")).await;
    assert!(body.contains("No record matches."), "{body}");
    let body = ok_page(&admin, t, &format!("/audit?trial_id={trial}&user_id={}", w.user_ids["site_a"])).await;
    let table = &body[body.find("<table class=\"audit\">").unwrap()..];
    assert!(
        table.contains("<td>site_a<") && !table.contains("<td>site_b<") && !table.contains("<td>admin<"),
        "{table}"
    );
    let marker = "Export this selection: <a href=\"";
    let i = body.find(marker).unwrap() + marker.len();
    let csv_url = body[i..].split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
    assert!(csv_url.starts_with("/api/v1/audit/export?") && csv_url.contains("format=csv"), "{csv_url}");
    let r = admin.get(t.url(&csv_url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("seq,id,at,") && csv.contains(",site_a,site_user,") && !csv.contains(",site_b,"),
        "{csv_url}: {csv}"
    );
    let r = admin.get(t.url(&csv_url.replace("format=csv", "format=json"))).send().await.unwrap();
    let rows: Value = r.json().await.unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    assert!(rows.as_array().unwrap().iter().all(|r| r["actor_name"] == "site_a"), "{rows}");
    // A bad filter value is explained on the page.
    let body = ok_page(&admin, t, "/audit?from=yesterday").await;
    assert!(body.contains("is not a time"), "{body}");
    // A monitor must pick a trial; a site user has no audit trail page.
    let body = ok_page(&monitor, t, "/audit").await;
    assert!(body.contains("Choose the trial"), "{body}");
    let (status, body) = page(w.c("site_a"), t, "/audit").await;
    assert_eq!(status, 403, "{body}");
    w.t.stop().await;
}

#[tokio::test]
async fn ui_assets_headers_and_unknown_paths() {
    let t = crate::support::spawn_app(Backend::SqliteLocal).await;
    let c = browser();
    let (status, body) = page(&c, &t, "/login").await;
    assert_eq!(status, 200);
    // Assets are embedded, versioned by hash; htmx is pinned and served gzipped to who accepts it.
    let marker = "<script src=\"";
    let i = body.find(marker).unwrap() + marker.len();
    let htmx = body[i..].split('"').next().unwrap().to_string();
    assert!(htmx.starts_with("/static/htmx-2.0.11.min.js?v="), "{htmx}");
    let r = c.get(t.url(&htmx)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let plain = c.get(t.url(&htmx)).send().await.unwrap().text().await.unwrap();
    assert!(plain.starts_with("var htmx=function()"), "{}", &plain[..40]);
    assert!(!body.contains("https://"), "no page loads anything from elsewhere");
    // Pages carry a strict CSP and are not cached.
    let r = c.get(t.url("/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Unknown paths: a page with a way back, and JSON under the API.
    let (status, body) = page(&c, &t, "/no/such/page").await;
    assert_eq!(status, 404);
    assert!(body.contains("Not found") && body.contains("href=\"/trials\""), "{body}");
    let r = c.get(t.url("/api/v1/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    t.stop().await;
}

/// Runs web/e2e/run.mjs (playwright-core driving Debian's chromium, axe-core) against a populated
/// server; screenshots land in target/ui-artifacts/. Missing node, chromium or the npm packages
/// fail under CI=true and skip with a notice otherwise.
#[tokio::test]
async fn ui_browser_walks_the_pages_with_screenshots_and_no_serious_axe_violations() {
    if !e2e_ready("the browser test of the pages", &[]) {
        return;
    }
    let w = world(Backend::SqliteLocal).await;
    // Site 201 has a scan waiting for the QC reviewer's decision.
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{}/sites/201/qualification/scans", w.trial)))
            .body(ct_instance("PHANTOM^ACR", "2.5"))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    // Visit BL of 101-001 waits for QC1.
    visit_awaiting_qc1(&w).await;
    let out = e2e_artifacts();
    let cfg = json!({
        "url": format!("http://{}", w.t.addr),
        "out": out,
        "trial": w.trial,
        "subject": w.subject_a,
        "site_new": "201",
        "password": PASSWORD,
        "admin_password": ADMIN_PASSWORD,
    });
    run_e2e(
        "run.mjs",
        cfg,
        Duration::from_secs(300),
        &[
            "01-login.png",
            "03-trial-site-user.png",
            "05-sign-dialog.png",
            "12-audit.png",
            "17-qc-queue.png",
            "18-qc-review.png",
            "20-queries.png",
        ],
    )
    .await;
    w.t.stop().await;
}

/// Puts visit BL of subject 101-001 in the QC queue: an automated check that passed with one
/// warning, awaiting QC1 (as the `study_complete` job leaves a visit whose images pass).
pub async fn visit_awaiting_qc1(w: &World) -> uuid::Uuid {
    let now = chrono::Utc::now() - chrono::Duration::hours(5);
    let eval = corelab_store::qc::EvaluationRow {
        id: uuid::Uuid::now_v7(),
        trial_id: w.trial,
        site_id: "101".into(),
        subject_id: w.subject_a,
        visit_id: "BL".into(),
        charter_version: 1,
        verdict: "pass_with_warnings".into(),
        complete: true,
        findings: json!([{
            "severity": "warning",
            "rule": "slice_thickness",
            "charter_series_id": "CT_CAP_PV",
            "series_instance_uid": "1.2.826.0.1.3680043.8.498.9001.2",
            "expected": "at most 5.0 mm",
            "found": "5.0 mm",
            "message": "The slice thickness is at the charter's limit; check the reconstruction."
        }])
        .to_string(),
        series: json!({"checked": [{
            "series_instance_uid": "1.2.826.0.1.3680043.8.498.9001.2",
            "charter_series_id": "CT_CAP_PV",
            "identified_by": "series_description",
            "instances": 10
        }], "superseded": []})
        .to_string(),
        instance_count: 10,
        evaluated_at: now,
    };
    let mut tx = w.t.app.db().begin().await.unwrap();
    tx.insert_evaluation(&eval).await.unwrap();
    tx.upsert_visit_qc(&corelab_store::qc::VisitQcRow {
        subject_id: w.subject_a,
        visit_id: "BL".into(),
        trial_id: w.trial,
        site_id: "101".into(),
        state: "awaiting_qc1".into(),
        evaluation_id: eval.id,
        updated_at: now,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    eval.id
}

/// The query ids linked from a page of trial `trial`.
fn query_links(html: &str, trial: uuid::Uuid) -> Vec<String> {
    let marker = format!("/trials/{trial}/queries/");
    html.match_indices(&marker).map(|(i, _)| html[i + marker.len()..i + marker.len() + 36].to_string()).collect()
}

#[tokio::test]
async fn ui_qc_rejects_a_visit_signed_and_the_site_answers_the_query() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let trial = w.trial;
    let a = w.subject_a;
    visit_awaiting_qc1(&w).await;
    let qc = ui_login(t, "qc", PASSWORD).await;
    // The trial navigation leads QC to the queue; the queue lists the visit with its verdict and wait.
    let trial_page = ok_page(&qc, t, &format!("/trials/{trial}")).await;
    assert!(trial_page.contains(&format!("href=\"/trials/{trial}/qc\"")), "{trial_page}");
    let queue = ok_page(&qc, t, &format!("/trials/{trial}/qc")).await;
    let review_url = format!("/trials/{trial}/qc/{a}/BL");
    for want in ["101-001", "BL (Baseline)", "QC1", "with warnings", "5 h", review_url.as_str()] {
        assert!(queue.contains(want), "queue lacks {want}: {queue}");
    }
    // The review page: the finding with the charter's limit beside what was found, and the forms.
    let review = ok_page(&qc, t, &review_url).await;
    for want in ["slice_thickness", "at most 5.0 mm", "<strong>5.0 mm</strong>", "CT_CAP_PV", "Awaiting QC1 review"] {
        assert!(review.contains(want), "review lacks {want}: {review}");
    }
    // The charter's limits of the matched series beside the images: the finding's value where the
    // check raised one, "within the limit" where it did not.
    let limits = &review[review.find("class=\"limits\"").expect("a limits table")..];
    let limits = &limits[..limits.find("</table>").unwrap()];
    assert!(
        limits.contains("<td>slice thickness (mm)</td><td>at most 5</td><td><strong>5.0 mm (warning)</strong>"),
        "{limits}"
    );
    assert!(limits.contains("within the limit"), "{limits}");
    for outcome in ["accept", "accept_with_deviation", "reject"] {
        assert!(review.contains(&format!("decide?outcome={outcome}")), "no {outcome} form: {review}");
    }
    // The signing form states what is signed.
    let form_url = format!("{review_url}/decide?outcome=reject");
    let form = ok_page(&qc, t, &form_url).await;
    for want in ["You are signing", "QC review of visit BL", "subject 101-001", "QC1 QC rejected", "sign-username"] {
        assert!(form.contains(want), "sign form lacks {want}: {form}");
    }
    let action = format!("{review_url}/decision");
    // A rejection without a reason shows the form again with the message; nothing is decided.
    let r =
        submit(&qc, t, &form_url, &action, &[("outcome", "reject"), ("username", "qc"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("say why") && body.contains("aria-invalid"), "{body}");
    // A wrong password is refused the same way.
    let r = submit(
        &qc,
        t,
        &form_url,
        &action,
        &[("outcome", "reject"), ("reason", "motion"), ("username", "qc"), ("password", "wrong")],
    )
    .await;
    assert!([401, 422].contains(&r.status().as_u16()), "{}", r.status());
    assert!(ok_page(&qc, t, &review_url).await.contains("Awaiting QC1 review"));
    let r = submit(
        &qc,
        t,
        &form_url,
        &action,
        &[
            ("outcome", "reject"),
            ("reason", "motion artefacts in the liver"),
            ("username", "qc"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let (to, page_after) = follow(&qc, t, r).await;
    assert!(to.ends_with("done=qc_rejected"), "{to}");
    assert!(
        page_after.contains("Rejected by QC") && page_after.contains("QC1 rejected by Quinn Checker"),
        "{page_after}"
    );
    assert!(!page_after.contains("decide?outcome="), "no decision forms after the decision");
    // The signature is recorded with its meaning.
    let audit: Value =
        check(w.c("admin").get(w.url("/api/v1/audit?object_type=qc_review&limit=1000")).send().await.unwrap(), 200)
            .await;
    assert!(audit.to_string().contains("QC1 QC rejected"), "{audit}");

    // The site sees the query on its list, opens it and answers.
    let site = ui_login(t, "site_a", PASSWORD).await;
    let list = ok_page(&site, t, &format!("/trials/{trial}/queries")).await;
    assert!(list.contains("QC rejected visit BL of subject 101-001"), "{list}");
    let qid = query_links(&list, trial).into_iter().find(|q| *q != w.query.to_string()).expect("the new query");
    let q_url = format!("/trials/{trial}/queries/{qid}");
    let q_page = ok_page(&site, t, &q_url).await;
    assert!(q_page.contains("motion artefacts in the liver") && q_page.contains("Open: waiting for the site"));
    assert!(!q_page.contains("id=\"close\""), "a site user gets no close form");
    // An empty answer is refused with what to do.
    let r = submit(&site, t, &q_url, &format!("{q_url}/messages"), &[("body", " ")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("write the answer"));
    let r = submit(&site, t, &q_url, &format!("{q_url}/messages"), &[("body", "Rescanned with breath-hold.")]).await;
    let (to, q_page) = follow(&site, t, r).await;
    assert!(to.ends_with("done=answered"), "{to}");
    assert!(q_page.contains("Rescanned with breath-hold.") && q_page.contains("Answered: waiting for QC"), "{q_page}");
    // Closing is for QC: the site's attempt is refused with the role it needs.
    let r = submit(&site, t, &q_url, &format!("{q_url}/close"), &[("reason", "done")]).await;
    assert_eq!(r.status(), 403);
    // QC closes it; it leaves the open list and shows under the closed filter.
    let r = submit(&qc, t, &q_url, &format!("{q_url}/close"), &[("reason", "the rescan is accepted")]).await;
    let (to, _) = follow(&qc, t, r).await;
    assert!(to.ends_with("done=closed"), "{to}");
    let open = ok_page(&site, t, &format!("/trials/{trial}/queries")).await;
    assert!(!open.contains(&qid), "{open}");
    let closed = ok_page(&site, t, &format!("/trials/{trial}/queries?state=closed")).await;
    assert!(closed.contains(&qid), "{closed}");
    // Another site's staff cannot open it.
    let (status, _) = page(w.c("site_a"), t, &format!("/trials/{}/queries/{qid}", w.other_trial)).await;
    assert_eq!(status, 404);

    // The inbox: site staff file, a trial manager discards, each with what the use case says.
    let inbox = ok_page(&site, t, &format!("/trials/{trial}/inbox")).await;
    assert!(inbox.contains("File under a subject and visit") && !inbox.contains("Discard the item"), "{inbox}");
    let inbox_url = format!("/trials/{trial}/inbox");
    // Site staff file a second unmatched image under 101-001's baseline; a wrong subject id is refused.
    let item = crate::world::unmatched_instance(t, trial, "101").await;
    let assign = format!("/trials/{trial}/inbox/{item}/assign");
    let r = submit(&site, t, &inbox_url, &assign, &[("subject", "nobody"), ("visit_id", "BL"), ("reason", "x")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("choose the subject"));
    let r = submit(
        &site,
        t,
        &inbox_url,
        &assign,
        &[("subject", &a.to_string()), ("visit_id", "BL"), ("reason", "the coordinator typed the wrong patient ID")],
    )
    .await;
    let (to, _) = follow(&site, t, r).await;
    assert!(to.ends_with("done=assigned"), "{to}");
    let tm = ui_login(t, "tm", PASSWORD).await;
    let r =
        submit(&tm, t, &inbox_url, &format!("/trials/{trial}/inbox/{}/discard", w.inbox_item), &[("reason", "")]).await;
    assert_eq!(r.status(), 422);
    let r = submit(
        &tm,
        t,
        &inbox_url,
        &format!("/trials/{trial}/inbox/{}/discard", w.inbox_item),
        &[("reason", "sent for the wrong trial")],
    )
    .await;
    let (to, inbox) = follow(&tm, t, r).await;
    assert!(to.ends_with("done=discarded"), "{to}");
    assert!(inbox.contains("discarded"), "{inbox}");
    w.t.stop().await;
}
