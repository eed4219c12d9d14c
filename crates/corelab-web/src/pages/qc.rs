//! QC pages: the QC queue of a trial and a visit's QC review (automated findings, what the charter
//! asks for beside what the images show, earlier reviews), with the e-signed decisions accept,
//! accept with deviation and reject. The use cases in `corelab_app::qc` decide who may see and do
//! what; this module only leaves out forms the caller's roles would be refused.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use corelab_app::AppError;
use corelab_app::qc::{EvaluationView, Outcome, VisitDetail};
use corelab_app::signatures::SigningCredentials;
use serde::Deserialize;
use uuid::Uuid;

use super::error::{Back, PageError, PageResult};
use super::session::{PageUser, Posted};
use super::sign::{SignForm, show};
use super::trials::TrialHead;
use super::view::{Chrome, Done, optional, render, see_other, utc};
use crate::WebState;

/// One finding of an automated check, read from the JSON the use case returns.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Finding {
    pub severity: String,
    pub rule: String,
    pub charter_series_id: Option<String>,
    pub series_instance_uid: Option<String>,
    pub expected: String,
    pub found: String,
    pub message: String,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }
    pub fn series(&self) -> String {
        match (&self.charter_series_id, &self.series_instance_uid) {
            (Some(c), Some(u)) => format!("{c} ({u})"),
            (Some(c), None) => c.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => "the visit".into(),
        }
    }
}

/// A received series as the automated check matched it to the charter.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CheckedSeries {
    pub series_instance_uid: String,
    pub charter_series_id: Option<String>,
    pub identified_by: serde_json::Value,
    pub instances: u64,
}

impl CheckedSeries {
    pub fn charter(&self) -> String {
        self.charter_series_id.clone().unwrap_or_else(|| "matches no charter series".into())
    }
    pub fn how(&self) -> String {
        match &self.identified_by {
            serde_json::Value::String(s) => s.replace('_', " "),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SeriesJson {
    checked: Vec<CheckedSeries>,
    superseded: Vec<String>,
}

pub struct ReviewLine {
    pub stage: String,
    pub outcome: String,
    pub reason: String,
    pub reviewer: String,
    pub at: String,
}

pub struct EvaluationLine {
    pub verdict: &'static str,
    pub verdict_class: &'static str,
    pub complete: bool,
    pub instances: i64,
    pub charter_version: i64,
    pub at: String,
    pub findings: Vec<Finding>,
    pub checked: Vec<CheckedSeries>,
    pub superseded: Vec<String>,
    pub reviews: Vec<ReviewLine>,
}

pub fn verdict_label(v: &str) -> &'static str {
    match v {
        "pass" => "meets the charter",
        "pass_with_warnings" => "meets the charter, with warnings to look at",
        "fail" => "does not meet the charter",
        _ => "not checked yet",
    }
}

fn verdict_class(v: &str) -> &'static str {
    match v {
        "pass" => "ok",
        "pass_with_warnings" => "warn",
        _ => "bad",
    }
}

pub fn outcome_label(o: &str) -> &'static str {
    match o {
        "accept" => "accepted",
        "accept_with_deviation" => "accepted with deviation",
        "reject" => "rejected",
        _ => "unknown",
    }
}

/// Visit QC states in words.
pub fn state_label(s: &str) -> String {
    match s {
        "awaiting_qc1" => "Awaiting QC1 review".into(),
        "awaiting_qc2" => "Awaiting QC2 review".into(),
        "qc_passed" => "✓ QC passed".into(),
        "qc_rejected" => "✗ Rejected by QC: the site must resend".into(),
        "qc_failed" => "✗ Fails the automated check: the site must resend".into(),
        "received_incomplete" => "Received, incomplete".into(),
        other => other.replace('_', " "),
    }
}

fn evaluation_line(e: &EvaluationView) -> EvaluationLine {
    let series: SeriesJson = serde_json::from_value(e.series.clone()).unwrap_or_default();
    EvaluationLine {
        verdict: verdict_label(&e.verdict),
        verdict_class: verdict_class(&e.verdict),
        complete: e.complete,
        instances: e.instance_count,
        charter_version: e.charter_version,
        at: utc(&e.evaluated_at),
        findings: serde_json::from_value(e.findings.clone()).unwrap_or_default(),
        checked: series.checked,
        superseded: series.superseded,
        reviews: e
            .reviews
            .iter()
            .map(|r| ReviewLine {
                stage: r.stage.to_uppercase(),
                outcome: outcome_label(&r.outcome).into(),
                reason: r.reason.clone().unwrap_or_default(),
                reviewer: r.reviewer_name.clone(),
                at: utc(&r.decided_at),
            })
            .collect(),
    }
}

/// One acquisition limit of a charter series beside what the automated check found.
pub struct LimitLine {
    pub series: String,
    pub limit: String,
    pub charter: String,
    pub found: String,
    pub ok: bool,
}

/// The rules of the automated check that test a constraint of the charter.
fn rules_of(constraint: &str) -> &'static [&'static str] {
    match constraint {
        "slice_thickness_mm" => &["slice_thickness"],
        "slice_spacing_mm" => &["slice_spacing", "uneven_spacing", "missing_slices"],
        "slice_gap_mm" => &["slice_gap"],
        "pixel_spacing_mm" => &["pixel_spacing"],
        "matrix_min" => &["matrix"],
        "kvp" => &["kvp"],
        "contrast" => &["contrast", "contrast_phase", "contrast_delay"],
        "field_strength_t" => &["field_strength"],
        "mr_sequence" => &["mr_sequence"],
        "mr_acquisition" => &["mr_acquisition"],
        "same_scanner_as_baseline" => &["same_scanner"],
        "baseline_tolerance" => &["baseline_parameters"],
        _ => &[],
    }
}

fn limit_label(key: &str) -> String {
    let (name, unit) = if let Some(n) = key.strip_suffix("_mm") {
        (n, " (mm)")
    } else if let Some(n) = key.strip_suffix("_t") {
        (n, " (T)")
    } else {
        (key, "")
    };
    format!("{}{unit}", name.replace('_', " "))
}

fn limit_value(v: &serde_json::Value) -> String {
    let num = |x: &serde_json::Value| x.as_f64().map(|f| format!("{f}"));
    match v {
        serde_json::Value::Object(o) if o.keys().all(|k| k == "min" || k == "max") => {
            match (o.get("min").and_then(num), o.get("max").and_then(num)) {
                (Some(a), Some(b)) => format!("{a} to {b}"),
                (Some(a), None) => format!("at least {a}"),
                (None, Some(b)) => format!("at most {b}"),
                (None, None) => "any".into(),
            }
        }
        serde_json::Value::Object(o) => {
            o.iter().map(|(k, x)| format!("{}: {}", limit_label(k), limit_value(x))).collect::<Vec<_>>().join(", ")
        }
        serde_json::Value::Number(n) => n.as_f64().map(|f| format!("{f}")).unwrap_or_else(|| n.to_string()),
        serde_json::Value::String(x) => x.replace('_', " "),
        serde_json::Value::Bool(true) => "required".into(),
        serde_json::Value::Bool(false) => "not required".into(),
        serde_json::Value::Array(a) => a.iter().map(limit_value).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The acquisition limits the charter (as the caller's roles see it) sets for each received
/// series' charter series, beside what the automated check found: the value of a finding, or
/// "within the limit" when the check raised none for it.
fn limit_lines(charter: &serde_json::Value, e: &EvaluationLine) -> Vec<LimitLine> {
    let specs: Vec<&serde_json::Value> = charter["imaging"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["series"].as_array().into_iter().flatten())
        .collect();
    let mut out = Vec::new();
    for c in &e.checked {
        let Some(id) = &c.charter_series_id else { continue };
        let Some(spec) = specs.iter().find(|s| s["id"].as_str() == Some(id.as_str())) else { continue };
        let Some(constraints) = spec["constraints"].as_object() else { continue };
        for (key, v) in constraints {
            let rules = rules_of(key);
            let hit = e.findings.iter().find(|f| {
                rules.contains(&f.rule.as_str())
                    && (f.series_instance_uid.as_deref() == Some(c.series_instance_uid.as_str())
                        || (f.series_instance_uid.is_none() && f.charter_series_id.as_deref() == Some(id.as_str())))
            });
            out.push(LimitLine {
                series: id.clone(),
                limit: limit_label(key),
                charter: limit_value(v),
                found: match hit {
                    Some(f) => format!("{} ({})", f.found, f.severity),
                    None => "within the limit".into(),
                },
                ok: hit.is_none(),
            });
        }
    }
    out
}

pub struct QueueLine {
    pub href: String,
    pub site: String,
    pub subject: String,
    pub visit: String,
    pub stage: &'static str,
    pub verdict: &'static str,
    pub verdict_class: &'static str,
    pub findings: usize,
    pub waiting: String,
}

fn age(d: chrono::Duration) -> String {
    let h = d.num_hours().max(0);
    if h < 48 { format!("{h} h") } else { format!("{} days", h / 24) }
}

#[derive(Template)]
#[template(path = "qc_queue.html")]
struct QueuePage {
    chrome: Chrome,
    trial: TrialHead,
    lines: Vec<QueueLine>,
}

pub async fn queue(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let mut rows = s.app.qc_queue(a, trial).await?;
    // The longest waiting first.
    rows.sort_by_key(|r| r.updated_at);
    let now = s.app.clock().now();
    let mut lines = Vec::new();
    for r in rows {
        let d = s.app.visit_detail(a, r.subject_id, &r.visit_id).await?;
        let e = d.evaluations.iter().find(|e| e.id == r.evaluation_id);
        let verdict = e.map(|e| e.verdict.as_str()).unwrap_or("");
        let findings: Vec<Finding> =
            e.map(|e| serde_json::from_value(e.findings.clone()).unwrap_or_default()).unwrap_or_default();
        lines.push(QueueLine {
            href: format!("/trials/{trial}/qc/{}/{}", r.subject_id, r.visit_id),
            site: d.site_id.clone(),
            subject: d.subject_id.clone(),
            visit: format!("{} ({})", d.visit_id, d.label),
            stage: if r.state == "awaiting_qc2" { "QC2" } else { "QC1" },
            verdict: verdict_label(verdict),
            verdict_class: verdict_class(verdict),
            findings: findings.len(),
            waiting: age(now - r.updated_at),
        });
    }
    render(&QueuePage {
        chrome: Chrome::new(&user, format!("{} QC queue", head.protocol_id), "trials").sub("qc").notice(&done),
        trial: head,
        lines,
    })
}

/// The visit of a subject of this trial (404 when the subject is another trial's or out of scope).
async fn visit_of(
    s: &WebState,
    user: &PageUser,
    trial: Uuid,
    subject: Uuid,
    visit: &str,
) -> Result<VisitDetail, AppError> {
    let sv = s.app.subject(&user.actor, subject).await?;
    if sv.trial_id != trial {
        return Err(AppError::NotFound(format!("no subject {subject} in this trial")));
    }
    s.app.visit_detail(&user.actor, subject, visit).await
}

#[derive(Template)]
#[template(path = "qc_review.html")]
struct ReviewPage {
    chrome: Chrome,
    trial: TrialHead,
    subject: Uuid,
    visit: VisitDetail,
    state: String,
    window: String,
    current: Option<EvaluationLine>,
    limits: Vec<LimitLine>,
    earlier: Vec<EvaluationLine>,
    queries: Vec<(String, String)>,
    thumbnails: Vec<Thumbnail>,
    can_decide: bool,
    stage: &'static str,
}

/// A received series shown by its middle image, rendered by the DICOMweb read side (`…/rendered`),
/// which checks the caller's image scope again when the browser asks for it.
pub struct Thumbnail {
    pub url: String,
    pub caption: String,
}

/// The visit's stored series as thumbnails, for callers whose image scope holds the visit's
/// studies (QC reviewers, trial managers, the site's staff); none for the others.
async fn thumbnails(s: &WebState, a: &corelab_app::Actor, trial: Uuid, subject: Uuid, visit: &str) -> Vec<Thumbnail> {
    let Ok(scope) = s.app.image_scope(a, Some(trial)).await else { return Vec::new() };
    let mut out = Vec::new();
    for v in scope.studies.iter().filter(|v| v.study.subject_id == subject && v.study.visit_id == visit) {
        let Ok(series) = s.app.image_series(v).await else { continue };
        for x in series {
            let Ok(instances) = s.app.image_instances(&x).await else { continue };
            let Some(mid) = instances.get(instances.len() / 2) else { continue };
            out.push(Thumbnail {
                url: format!(
                    "/dicomweb/studies/{}/series/{}/instances/{}/rendered?trial={trial}",
                    v.study.study_instance_uid, x.series_instance_uid, mid.sop_instance_uid
                ),
                caption: format!(
                    "{} series {}{}: image {} of {}",
                    x.modality,
                    x.series_number.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
                    x.series_description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
                    instances.len() / 2 + 1,
                    instances.len()
                ),
            });
        }
    }
    out
}

pub async fn review(
    State(s): State<WebState>,
    user: PageUser,
    Path((trial, subject, visit)): Path<(Uuid, Uuid, String)>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let d = visit_of(&s, &user, trial, subject, &visit).await?;
    let mut evals: Vec<EvaluationLine> = d.evaluations.iter().map(evaluation_line).collect();
    // The newest evaluation is the one under review.
    let current = evals.pop();
    evals.reverse();
    // The charter version the check used, as the caller's roles see it.
    let limits = match (&current, d.evaluations.last()) {
        (Some(line), Some(e)) => optional(s.app.charter_version(a, trial, Some(e.charter_version)).await)?
            .map(|v| limit_lines(&v.charter, line))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let awaiting = d.state == "awaiting_qc1" || d.state == "awaiting_qc2";
    let window = match (d.window_open, d.window_close) {
        (Some(o), Some(c)) => format!("{o} to {c}"),
        _ => "not in the charter's schedule".into(),
    };
    // Open queries of the visit the caller may open (site-scoped by the use case).
    let mut queries = Vec::new();
    if let Some(list) = optional(s.app.list_queries(a, trial).await)? {
        for q in list.iter().filter(|q| d.open_queries.contains(&q.query.id)) {
            queries.push((format!("/trials/{trial}/queries/{}", q.query.id), q.query.title.clone()));
        }
    }
    let thumbnails = thumbnails(&s, a, trial, subject, &visit).await;
    render(&ReviewPage {
        thumbnails,
        chrome: Chrome::new(&user, format!("QC of {} visit {}", d.subject_id, d.visit_id), "trials")
            .sub("qc")
            .notice(&done),
        can_decide: head.roles.may_decide() && awaiting,
        stage: if d.state == "awaiting_qc2" { "QC2" } else { "QC1" },
        trial: head,
        subject,
        state: state_label(&d.state),
        window,
        current,
        limits,
        earlier: evals,
        queries,
        visit: d,
    })
}

#[derive(Deserialize)]
pub struct DecideQuery {
    outcome: Option<String>,
}

async fn decision_form(
    s: &WebState,
    user: &PageUser,
    trial: Uuid,
    subject: Uuid,
    visit: &str,
    outcome: Outcome,
    code: &str,
) -> Result<SignForm, PageError> {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let d = visit_of(s, user, trial, subject, visit).await?;
    let needs_username = s.app.signing_needs_username(a).await?;
    let back = format!("/trials/{trial}/qc/{subject}/{visit}");
    let stage = if d.state == "awaiting_qc2" { "QC2" } else { "QC1" };
    let (verb, decision, meaning) = match outcome {
        Outcome::Accept => ("Accept", "accept: the images meet the charter", "QC approved"),
        Outcome::AcceptWithDeviation => (
            "Accept with deviation",
            "accept with a deviation: the images are usable although they depart from the charter",
            "QC approved with deviation",
        ),
        Outcome::Reject => {
            ("Reject", "reject: the site gets a data query and must resend corrected images", "QC rejected")
        }
    };
    let mut f = SignForm::new(
        user,
        format!("/trials/{trial}/qc/{subject}/{visit}/decision"),
        format!("{verb}: {stage} of visit {} of subject {}", d.visit_id, d.subject_id),
        back,
        needs_username,
    );
    f.statement = vec![
        (
            "Record".into(),
            format!(
                "QC review of visit {} ({}) of subject {} at site {}, trial {}",
                d.visit_id, d.label, d.subject_id, d.site_id, head.protocol_id
            ),
        ),
        ("Stage".into(), stage.into()),
        ("Decision".into(), decision.into()),
        ("State now".into(), state_label(&d.state)),
    ];
    if let Some(e) = d.evaluations.last() {
        let findings: Vec<Finding> = serde_json::from_value(e.findings.clone()).unwrap_or_default();
        f.statement.push((
            "Automated check".into(),
            format!(
                "{} on {} against charter version {}: {}, {} instance(s), {} finding(s)",
                e.id,
                utc(&e.evaluated_at),
                e.charter_version,
                verdict_label(&e.verdict),
                e.instance_count,
                findings.len()
            ),
        ));
    }
    f.meaning = Some(format!("{stage} {meaning}"));
    f.hidden = vec![("outcome".into(), code.into())];
    f.reason = Some(match outcome {
        Outcome::Accept => "Comment (optional)".into(),
        Outcome::AcceptWithDeviation => "The deviation accepted and why (required)".into(),
        Outcome::Reject => "What the site must correct (required; the site sees it in the data query)".into(),
    });
    f.reason_required = outcome != Outcome::Accept;
    Ok(f)
}

fn parse_outcome(code: Option<&str>) -> Result<(Outcome, String), AppError> {
    let code = code.unwrap_or("accept");
    Outcome::parse(code).map(|o| (o, code.to_string())).ok_or_else(|| {
        AppError::invalid("outcome", "the decision is accept, accept_with_deviation or reject; go back to the review page and choose one of its buttons")
    })
}

pub async fn decide_page(
    State(s): State<WebState>,
    user: PageUser,
    Path((trial, subject, visit)): Path<(Uuid, Uuid, String)>,
    Query(q): Query<DecideQuery>,
    headers: HeaderMap,
) -> PageResult {
    let (outcome, code) = parse_outcome(q.outcome.as_deref()).back(format!("/trials/{trial}/qc/{subject}/{visit}"))?;
    let form = decision_form(&s, &user, trial, subject, &visit, outcome, &code).await?;
    show(&user, form, headers.get("hx-request").is_some())
}

#[derive(Deserialize)]
pub struct DecideForm {
    outcome: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

pub async fn decide(
    State(s): State<WebState>,
    Path((trial, subject, visit)): Path<(Uuid, Uuid, String)>,
    Posted(user, f): Posted<DecideForm>,
) -> PageResult {
    let back = format!("/trials/{trial}/qc/{subject}/{visit}");
    let (outcome, code) = parse_outcome(Some(&f.outcome)).back(back.clone())?;
    // The subject must be this trial's (404 otherwise) before anything is decided.
    visit_of(&s, &user, trial, subject, &visit).await?;
    let creds = SigningCredentials {
        username: f.username.filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string()),
        password: f.password,
    };
    match s.app.decide_visit_qc(&user.actor, subject, &visit, outcome, &f.reason, creds).await {
        Ok(_) => Ok(see_other(
            &back,
            match outcome {
                Outcome::Accept => "qc_accepted",
                Outcome::AcceptWithDeviation => "qc_deviation",
                Outcome::Reject => "qc_rejected",
            },
        )),
        Err(AppError::Invalid { field, message }) => {
            let mut form = decision_form(&s, &user, trial, subject, &visit, outcome, &code).await?;
            form.error = Some(message);
            form.error_field = field.unwrap_or_default();
            show(&user, form, false)
        }
        Err(e) => Err(e).back(back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_read_as_words_with_units() {
        assert_eq!(limit_label("slice_thickness_mm"), "slice thickness (mm)");
        assert_eq!(limit_label("field_strength_t"), "field strength (T)");
        assert_eq!(limit_label("matrix_min"), "matrix min");
        assert_eq!(limit_value(&json!({"max": 5.0})), "at most 5");
        assert_eq!(limit_value(&json!({"min": 80, "max": 140})), "80 to 140");
        assert_eq!(limit_value(&json!({"min": 1.5})), "at least 1.5");
        assert_eq!(limit_value(&json!({"slice_thickness_mm": 1.0})), "slice thickness (mm): 1");
        assert_eq!(limit_value(&json!(true)), "required");
    }

    #[test]
    fn a_limit_shows_the_finding_of_its_series_or_within_the_limit() {
        let charter = json!({"imaging": [{"series": [
            {"id": "PV", "constraints": {"slice_thickness_mm": {"max": 5.0}, "kvp": {"min": 80, "max": 140}}},
            {"id": "LUNG", "constraints": {"slice_thickness_mm": {"max": 1.5}}}
        ]}]});
        let e = EvaluationLine {
            verdict: "",
            verdict_class: "",
            complete: true,
            instances: 1,
            charter_version: 1,
            at: String::new(),
            findings: vec![Finding {
                severity: "error".into(),
                rule: "slice_thickness".into(),
                charter_series_id: Some("PV".into()),
                series_instance_uid: Some("1.2.3".into()),
                expected: "at most 5.0 mm".into(),
                found: "7.0 mm".into(),
                message: String::new(),
            }],
            checked: vec![CheckedSeries {
                series_instance_uid: "1.2.3".into(),
                charter_series_id: Some("PV".into()),
                identified_by: serde_json::Value::Null,
                instances: 1,
            }],
            superseded: Vec::new(),
            reviews: Vec::new(),
        };
        let lines = limit_lines(&charter, &e);
        let got: Vec<(&str, &str, &str, bool)> =
            lines.iter().map(|l| (l.limit.as_str(), l.charter.as_str(), l.found.as_str(), l.ok)).collect();
        assert_eq!(
            got,
            vec![
                ("kvp", "80 to 140", "within the limit", true),
                ("slice thickness (mm)", "at most 5", "7.0 mm (error)", false),
            ]
        );
    }
}
