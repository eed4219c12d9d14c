//! The gateway's local status page (for site staff, on the site machine) and `corelab gateway status`.
//!
//! The page shows PHI of held instances (Patient ID, name, study date) so staff can assign them:
//! it is meant for 127.0.0.1 or the site's own network, never for central. Its form carries a
//! per-process token so another web page cannot post assignments through a staff browser.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::spool::Spool;
use super::{Settings, Shared};

fn form_token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| hex::encode(rand::random::<[u8; 16]>()))
}

#[derive(Serialize)]
struct StatusJson {
    site_id: String,
    queue_depth: usize,
    queue_bytes: u64,
    waiting_for_assignment: usize,
    failed: usize,
    delivered_total: u64,
    last_success: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
}

fn snapshot(shared: &Shared) -> StatusJson {
    let spool = &shared.pipeline.spool;
    let q = spool.queued();
    let state = shared.state.lock().map(|s| s.clone()).unwrap_or_default();
    StatusJson {
        site_id: shared.pipeline.profile.config.site_id.clone(),
        queue_depth: q.len(),
        queue_bytes: q.iter().map(|(_, n)| n).sum(),
        waiting_for_assignment: spool.count(&spool.held_dir(), "held"),
        failed: spool.count(&spool.failed_dir(), "dcm"),
        delivered_total: state.delivered_total,
        last_success: state.last_success,
        last_error: state.last_error,
        last_error_at: state.last_error_at,
    }
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .route("/assign", post(assign))
        .with_state(shared)
}

async fn json(State(s): State<Arc<Shared>>) -> Json<StatusJson> {
    Json(snapshot(&s))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn page(State(s): State<Arc<Shared>>) -> Html<String> {
    let st = snapshot(&s);
    let p = s.pipeline.clone();
    let held = tokio::task::spawn_blocking(move || p.held()).await.unwrap_or_default();
    let cfg = &s.pipeline.profile.config;
    let mut h = String::new();
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>corelab gateway</title></head><body>",
    );
    h.push_str(&format!("<h1>corelab gateway: site {}</h1>", esc(&st.site_id)));
    h.push_str("<table>");
    for (k, v) in [
        ("Queue depth", st.queue_depth.to_string()),
        ("Queued bytes", st.queue_bytes.to_string()),
        ("Waiting for assignment", st.waiting_for_assignment.to_string()),
        ("Refused by central (see failed/)", st.failed.to_string()),
        ("Delivered", st.delivered_total.to_string()),
        ("Last successful upload", st.last_success.clone().unwrap_or_else(|| "never".into())),
        (
            "Last error",
            st.last_error
                .clone()
                .map(|e| format!("{e} ({})", st.last_error_at.clone().unwrap_or_default()))
                .unwrap_or_else(|| "none".into()),
        ),
    ] {
        h.push_str(&format!("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(&v)));
    }
    h.push_str("</table><h2>Needs assignment</h2>");
    if held.is_empty() {
        h.push_str("<p>Nothing is waiting.</p>");
    }
    // One form per (patient, study).
    let mut groups: Vec<(String, String, Vec<&super::site::Held>)> = Vec::new();
    for item in &held {
        match groups.iter_mut().find(|g| g.0 == item.patient_id && g.1 == item.study_uid) {
            Some(g) => g.2.push(item),
            None => groups.push((item.patient_id.clone(), item.study_uid.clone(), vec![item])),
        }
    }
    let visits: String = cfg
        .visits
        .iter()
        .map(|v| format!("<option value=\"{}\">{} ({})</option>", esc(&v.id), esc(&v.id), esc(&v.label)))
        .collect();
    for (pid, study, items) in &groups {
        let first = items[0];
        h.push_str(&format!(
            "<form method=\"post\" action=\"/assign\"><fieldset><legend>Patient ID {} ({}), study date {}, {} {} instance(s)</legend>\
             <p>{}</p>\
             <input type=\"hidden\" name=\"token\" value=\"{}\"><input type=\"hidden\" name=\"patient_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"study_uid\" value=\"{}\">\
             <label>Subject ID <input name=\"subject\" required placeholder=\"{}\"></label> \
             <label>Visit <select name=\"visit\">{visits}</select></label> <button>Assign</button></fieldset></form>",
            esc(pid),
            esc(&first.patient_name),
            esc(&first.study_date),
            esc(&first.modality),
            items.len(),
            esc(&first.reason),
            form_token(),
            esc(pid),
            esc(study),
            esc(&cfg.subject_id_pattern),
        ));
    }
    h.push_str("</body></html>");
    Html(h)
}

#[derive(Deserialize)]
struct AssignForm {
    token: String,
    patient_id: String,
    study_uid: String,
    subject: String,
    visit: String,
}

async fn assign(State(s): State<Arc<Shared>>, Form(f): Form<AssignForm>) -> Response {
    if f.token != form_token() {
        return (StatusCode::FORBIDDEN, "the form is stale; reload the status page").into_response();
    }
    let p = s.pipeline.clone();
    let (patient, study, subject, visit) = (f.patient_id, f.study_uid, f.subject.trim().to_string(), f.visit);
    let r = tokio::task::spawn_blocking(move || p.assign(&patient, &study, &subject, &visit)).await;
    match r {
        Ok(Ok(n)) => {
            s.wake.notify_one();
            tracing::info!(released = n, "held instances assigned by site staff");
            Html(format!("<!doctype html><p>{n} instance(s) queued for upload. <a href=\"/\">Back</a></p>"))
                .into_response()
        }
        Ok(Err(m)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Html(format!("<!doctype html><p>{}</p><a href=\"/\">Back</a>", esc(&m))))
                .into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

/// `corelab gateway status`: read from the spool directory (works while the gateway runs or not).
pub fn print(settings: &Settings) -> anyhow::Result<ExitCode> {
    if !settings.spool.join("queue").is_dir() {
        eprintln!("corelab gateway status: no spool at {} (give --spool)", settings.spool.display());
        return Ok(ExitCode::from(2));
    }
    let spool = Spool { dir: settings.spool.clone() };
    let q = spool.queued();
    let st = spool.state();
    println!("spool:                  {}", settings.spool.display());
    println!("queue depth:            {} ({} bytes)", q.len(), q.iter().map(|(_, n)| n).sum::<u64>());
    println!("waiting for assignment: {}", spool.count(&spool.held_dir(), "held"));
    println!("refused by central:     {}", spool.count(&spool.failed_dir(), "dcm"));
    println!("delivered:              {}", st.delivered_total);
    println!("last successful upload: {}", st.last_success.unwrap_or_else(|| "never".into()));
    println!(
        "last error:             {}",
        st.last_error
            .map(|e| format!("{e} ({})", st.last_error_at.unwrap_or_default()))
            .unwrap_or_else(|| "none".into())
    );
    Ok(ExitCode::SUCCESS)
}
