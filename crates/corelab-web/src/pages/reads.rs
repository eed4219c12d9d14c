//! Reading pages: a reader's task list and the read-only view of a submitted read, the
//! adjudicator's list and the side-by-side page of an adjudication with its e-signed decision.
//!
//! Everything shown comes from the blinded types of `corelab_app::reads::views` (no field for a
//! site, subject, arm or scan date exists there); the use cases decide who may open what (a task
//! is its reader's alone, an adjudication its adjudicator's).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use corelab_app::AppError;
use corelab_app::reads::DecisionInput;
use corelab_app::reads::views::{AdjudicationCase, BlindedAssessment, BlindedResult, BlindedTimepoint};
use corelab_app::signatures::SigningCredentials;
use serde_json::Value;
use uuid::Uuid;

use super::error::{Back, PageError, PageResult};
use super::session::{PageUser, Posted};
use super::sign::{SignForm, show};
use super::sites::{SignatureLine, signature_lines};
use super::trials::TrialHead;
use super::view::{Chrome, Done, render, see_other, utc};
use crate::WebState;

/// Reader task states in words.
pub fn task_state_label(state: &str) -> &'static str {
    match state {
        "waiting" => "Waiting for an earlier timepoint",
        "open" => "To read",
        "draft" => "Draft saved",
        "submitted" => "✓ Submitted and signed",
        _ => "Unknown",
    }
}

fn kind_label(kind: &str) -> &'static str {
    if kind == "baseline" { "baseline" } else { "follow-up" }
}

fn timepoint_label(timepoint: &str, days: Option<i64>) -> String {
    match days {
        // The label already says "Day N" when the charter labels by days.
        Some(d) if !timepoint.starts_with("Day ") => format!("{timepoint} (day {d})"),
        _ => timepoint.to_string(),
    }
}

pub struct TaskLine {
    pub case_code: String,
    pub timepoint: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub waiting_for: String,
    pub assigned: String,
    pub last_saved: String,
    pub workstation: String,
    /// The read-only page of the submitted read.
    pub view: Option<String>,
}

#[derive(Template)]
#[template(path = "reading.html")]
struct ReadingPage {
    chrome: Chrome,
    trial: TrialHead,
    lines: Vec<TaskLine>,
}

/// `GET /trials/{trial}/reading`: the caller's own read tasks (readers; `my_read_tasks` decides).
pub async fn reading(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let tasks = s.app.my_read_tasks(a, trial).await?;
    let lines = tasks
        .into_iter()
        .map(|t| TaskLine {
            case_code: t.case_code,
            timepoint: timepoint_label(&t.timepoint, t.days_from_baseline),
            kind: kind_label(t.kind),
            state: task_state_label(&t.state),
            waiting_for: t.waiting_for.unwrap_or_default(),
            assigned: t.assigned_at.as_ref().map(utc).unwrap_or_else(|| "not yet".into()),
            last_saved: t.last_saved_at.as_ref().map(utc).unwrap_or_else(|| "never".into()),
            workstation: format!("/read-tasks/{}/workstation", t.task_id),
            view: (t.state == "submitted").then(|| format!("/read-tasks/{}", t.task_id)),
        })
        .collect();
    render(&ReadingPage {
        chrome: Chrome::new(&user, format!("{} reading", head.protocol_id), "trials").sub("reading").notice(&done),
        trial: head,
        lines,
    })
}

/// One row of a read shown as label and value.
pub struct Row {
    pub label: String,
    pub value: String,
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.replace('_', " ").to_lowercase(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn mm(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n} mm"),
        Value::Object(o) if o.contains_key("fragments_mm") => {
            let parts: Vec<String> =
                o["fragments_mm"].as_array().into_iter().flatten().map(|x| format!("{} mm", number(x))).collect();
            format!("fragments {}", parts.join(" + "))
        }
        Value::Object(o) if o.contains_key("merged_into") => format!("merged into {}", number(&o["merged_into"])),
        other => number(other),
    }
}

fn words(key: &str) -> String {
    let k = key.strip_suffix("_mm").map(|k| format!("{k} (mm)")).unwrap_or_else(|| key.to_string());
    let k = k.strip_suffix("_pct").map(|k| format!("{k} (%)")).unwrap_or(k);
    let mut s = k.replace('_', " ");
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    s
}

/// Flattens any JSON value into rows (for read forms without a dedicated layout: LVEF, MS MRI).
fn flat(prefix: &str, v: &Value, out: &mut Vec<Row>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if prefix.is_empty() { words(k) } else { format!("{prefix} › {}", k.replace('_', " ")) };
                flat(&p, x, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            out.push(Row { label: prefix.to_string(), value: a.iter().map(number).collect::<Vec<_>>().join(", ") });
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flat(&format!("{prefix} {}", i + 1), x, out);
            }
        }
        other => out.push(Row { label: prefix.to_string(), value: number(other) }),
    }
}

/// The lesions of a RECIST read as rows; `organs` names the baseline lesions for follow-ups.
fn lesion_rows(assessment: &Value, organs: &BTreeMap<String, String>) -> Vec<Row> {
    let mut out = Vec::new();
    let organ = |id: &str| organs.get(id).map(|o| format!(" ({o})")).unwrap_or_default();
    let recist = assessment.get("targets").is_some() || assessment.get("non_targets").is_some();
    if !recist {
        flat("", assessment, &mut out);
        return out;
    }
    if let Some(t) = assessment.get("slice_thickness_mm").filter(|t| !t.is_null()) {
        out.push(Row { label: "Slice thickness".into(), value: mm(t) });
    }
    for (key, what) in [("targets", "Target"), ("non_targets", "Non-target")] {
        match assessment.get(key) {
            // Baseline: a list of lesions with organ and diameter.
            Some(Value::Array(list)) => {
                for l in list {
                    let id = l["id"].as_str().unwrap_or("?");
                    let node = if l["is_node"].as_bool() == Some(true) { ", node" } else { "" };
                    let organ = l["organ"].as_str().unwrap_or("");
                    let value = match l.get("diameter_mm") {
                        Some(d) if !d.is_null() => mm(d),
                        _ => "recorded".into(),
                    };
                    out.push(Row { label: format!("{what} {id} ({organ}{node})"), value });
                }
            }
            // Follow-up: each baseline lesion's reading.
            Some(Value::Object(map)) => {
                for (id, r) in map {
                    let value = match (r.get("value"), r.get("status")) {
                        (Some(v), _) => mm(v),
                        (None, Some(s)) => number(s),
                        _ => "—".into(),
                    };
                    out.push(Row { label: format!("{what} {id}{}", organ(id)), value });
                }
            }
            _ => {}
        }
    }
    for l in assessment.get("new_lesions").and_then(Value::as_array).into_iter().flatten() {
        let id = l["id"].as_str().unwrap_or("?");
        let organ = l["organ"].as_str().unwrap_or("");
        let mut value = match l.get("diameter_mm") {
            Some(d) if !d.is_null() => mm(d),
            _ => "present".into(),
        };
        if l["equivocal"].as_bool() == Some(true) {
            value.push_str(", equivocal");
        }
        out.push(Row { label: format!("New lesion {id} ({organ})"), value });
    }
    out
}

/// A result field's label: `baseline_sum_mm` -> "Baseline sum".
fn result_label(key: &str) -> String {
    match key {
        "pct_change_from_baseline" => "Change from baseline".into(),
        "pct_change_from_nadir" => "Change from nadir".into(),
        "nadir_ref_mm" => "Nadir (reference sum)".into(),
        "overall" => "Overall response".into(),
        "ne_reason" => "Not evaluable because".into(),
        k => words(k.strip_suffix("_mm").unwrap_or(k)),
    }
}

/// A response code in words where it is not a plain abbreviation.
fn response_label(v: &Value) -> String {
    match v.as_str() {
        Some("NON_CR_NON_PD") => "non-CR/non-PD".into(),
        Some(r) => r.to_string(),
        None => number(v),
    }
}

/// The engine's result as rows (sums, changes, responses, flags).
fn result_rows(r: Option<&BlindedResult>) -> Vec<Row> {
    let Some(r) = r else { return Vec::new() };
    let v = serde_json::to_value(r).unwrap_or(Value::Null);
    let mut out = Vec::new();
    if let Value::Object(o) = &v {
        for (k, x) in o {
            let label = result_label(k);
            match k.as_str() {
                k if k.ends_with("_mm") => out.push(Row { label, value: mm(x) }),
                "pct_change_from_baseline" | "pct_change_from_nadir" => {
                    out.push(Row { label, value: format!("{} %", number(x)) })
                }
                "target_response" | "non_target_response" | "overall" => {
                    out.push(Row { label, value: response_label(x) })
                }
                _ => flat(&label, x, &mut out),
            }
        }
    }
    out
}

fn organs_of(baseline: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in ["targets", "non_targets"] {
        for l in baseline.and_then(|b| b.get(key)).and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(o)) = (l["id"].as_str(), l["organ"].as_str()) {
                out.insert(id.to_string(), o.to_string());
            }
        }
    }
    out
}

pub struct VersionBlock {
    pub version: i64,
    pub reason: String,
    pub lesions: Vec<Row>,
    pub result: Vec<Row>,
    pub signatures: Vec<SignatureLine>,
}

#[derive(Template)]
#[template(path = "read_task.html")]
struct TaskPage {
    chrome: Chrome,
    trial: TrialHead,
    task_id: Uuid,
    case_code: String,
    criteria: String,
    timepoint: String,
    kind: &'static str,
    state: &'static str,
    workstation: String,
    current: Option<VersionBlock>,
    earlier_versions: Vec<VersionBlock>,
}

/// `GET /read-tasks/{task}`: the reader's own read of a timepoint, read-only (`open_read_task`
/// decides: another reader's task is not found).
pub async fn task(
    State(s): State<WebState>,
    user: PageUser,
    Path(task): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let case = s.app.open_read_task(a, task).await?;
    let head = TrialHead::of(s.app.trial(a, case.trial_id).await?);
    let baseline = case.earlier.iter().find(|t| t.kind == "baseline").map(|t| &t.assessment);
    let organs = organs_of(baseline.or_else(|| case.versions.last().map(|v| &v.assessment)));
    let mut blocks: Vec<VersionBlock> = case
        .versions
        .iter()
        .map(|v| VersionBlock {
            version: v.version,
            reason: v.reason.clone().unwrap_or_default(),
            lesions: lesion_rows(&v.assessment, &organs),
            result: result_rows(v.result.as_ref()),
            signatures: signature_lines(&v.signatures),
        })
        .collect();
    let current = blocks.pop();
    blocks.reverse();
    render(&TaskPage {
        chrome: Chrome::new(&user, format!("Read of {} {}", case.case_code, case.timepoint), "trials")
            .sub("reading")
            .notice(&done),
        trial: head,
        task_id: task,
        timepoint: timepoint_label(&case.timepoint, case.days_from_baseline),
        case_code: case.case_code,
        criteria: case.criteria,
        kind: kind_label(case.kind),
        state: task_state_label(&case.state),
        workstation: format!("/read-tasks/{task}/workstation"),
        current,
        earlier_versions: blocks,
    })
}

pub struct AdjudicationLine {
    pub case_code: String,
    pub state: &'static str,
    pub variables: String,
    pub href: String,
}

fn adjudication_state_label(state: &str) -> &'static str {
    match state {
        "open" => "Open: to decide",
        "decided" => "✓ Decided and signed",
        "superseded" => "Replaced by a newer comparison",
        _ => "Unknown",
    }
}

#[derive(Template)]
#[template(path = "adjudications.html")]
struct AdjudicationsPage {
    chrome: Chrome,
    trial: TrialHead,
    lines: Vec<AdjudicationLine>,
}

/// `GET /trials/{trial}/adjudication`: the caller's adjudications (adjudicators).
pub async fn adjudications(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let lines = s
        .app
        .my_adjudications(a, trial)
        .await?
        .into_iter()
        .map(|x| AdjudicationLine {
            case_code: x.case_code,
            state: adjudication_state_label(&x.state),
            variables: x.variables.iter().map(|v| variable_label(v)).collect::<Vec<_>>().join("; "),
            href: format!("/adjudications/{}", x.adjudication_id),
        })
        .collect();
    render(&AdjudicationsPage {
        chrome: Chrome::new(&user, format!("{} adjudication", head.protocol_id), "trials")
            .sub("adjudication")
            .notice(&done),
        trial: head,
        lines,
    })
}

/// A disagreement key in words: `overall_response:TP2` -> "overall response at TP2".
pub fn variable_label(key: &str) -> String {
    match key.split_once(':') {
        Some((v, tp)) => format!("{} at {tp}", v.replace('_', " ")),
        None => key.replace('_', " "),
    }
}

/// One row of the side-by-side table.
pub struct PairRow {
    pub label: String,
    pub reader_1: String,
    pub reader_2: String,
    pub differs: bool,
}

pub struct TimepointBlock {
    pub timepoint: String,
    pub caption: String,
    pub kind: &'static str,
    pub rows: Vec<PairRow>,
    pub series: usize,
}

pub struct DisagreementLine {
    /// The key a per-variable decision names, e.g. `lvef:TP2`.
    pub key: String,
    pub variable: String,
    pub reader_1: String,
    pub reader_2: String,
}

fn pair_rows(one: Vec<Row>, two: Vec<Row>) -> Vec<PairRow> {
    let mut labels: Vec<String> = one.iter().map(|r| r.label.clone()).collect();
    for r in &two {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
    }
    let find = |rows: &[Row], l: &str| rows.iter().find(|r| r.label == l).map(|r| r.value.clone());
    labels
        .into_iter()
        .map(|l| {
            let (a, b) = (find(&one, &l), find(&two, &l));
            PairRow {
                differs: a != b,
                reader_1: a.unwrap_or_else(|| "not recorded".into()),
                reader_2: b.unwrap_or_else(|| "not recorded".into()),
                label: l,
            }
        })
        .collect()
}

fn reader_timepoint<'a>(r: &'a BlindedAssessment, timepoint: &str) -> Option<&'a BlindedTimepoint> {
    r.timepoints.iter().find(|t| t.timepoint == timepoint)
}

fn timepoint_rows(t: Option<&BlindedTimepoint>, organs: &BTreeMap<String, String>) -> Vec<Row> {
    let Some(t) = t else { return Vec::new() };
    let mut rows = lesion_rows(&t.assessment, organs);
    rows.extend(result_rows(t.result.as_ref()));
    rows
}

fn case_rows(r: &BlindedAssessment) -> Vec<Row> {
    let text = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    let mut rows = Vec::new();
    if let Some(b) = r.best_overall_response {
        rows.push(Row {
            label: "Best overall response".into(),
            value: number(&serde_json::to_value(b).unwrap_or_default()).to_uppercase(),
        });
    }
    rows.push(Row { label: "Progression at".into(), value: text(&r.progression_at) });
    rows.push(Row { label: "First response at".into(), value: text(&r.first_response_at) });
    rows
}

#[derive(Template)]
#[template(path = "adjudication.html")]
struct AdjudicationPage {
    chrome: Chrome,
    trial: TrialHead,
    id: Uuid,
    case_code: String,
    criteria: String,
    state: &'static str,
    open: bool,
    per_variable: bool,
    disagreements: Vec<DisagreementLine>,
    timepoints: Vec<TimepointBlock>,
    summary: Vec<PairRow>,
    decision: String,
    rationale: String,
    signatures: Vec<SignatureLine>,
}

fn decision_text(d: Option<&Value>) -> String {
    let reader = |v: &Value| match v.as_str() {
        Some("reader_1") => "reader 1".to_string(),
        Some("reader_2") => "reader 2".to_string(),
        _ => number(v),
    };
    match d {
        Some(v) if v.get("chosen").is_some() => {
            format!("The assessment of {} for the whole case", reader(&v["chosen"]))
        }
        Some(v) => v
            .get("variables")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().map(|(k, r)| format!("{}: {}", variable_label(k), reader(r))).collect::<Vec<_>>().join("; ")
            })
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// `GET /adjudications/{adjudication}`: both readers' blinded reads side by side per timepoint,
/// what made the case go to adjudication, and the decision (`open_adjudication` decides).
pub async fn adjudication(
    State(s): State<WebState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> PageResult {
    let a = &user.actor;
    let c = s.app.open_adjudication(a, id).await?;
    let head = TrialHead::of(s.app.trial(a, c.trial_id).await?);
    let baseline_of =
        |r: &BlindedAssessment| organs_of(r.timepoints.iter().find(|t| t.kind == "baseline").map(|t| &t.assessment));
    let (o1, o2) = (baseline_of(&c.reader_1), baseline_of(&c.reader_2));
    let timepoints = c
        .timepoints
        .iter()
        .map(|tp| TimepointBlock {
            timepoint: timepoint_label(&tp.timepoint, tp.days_from_baseline),
            caption: format!("{}: both reads", timepoint_label(&tp.timepoint, tp.days_from_baseline)),
            kind: kind_label(tp.kind),
            rows: pair_rows(
                timepoint_rows(reader_timepoint(&c.reader_1, &tp.timepoint), &o1),
                timepoint_rows(reader_timepoint(&c.reader_2, &tp.timepoint), &o2),
            ),
            series: tp.images.iter().map(|st| st.series.len()).sum(),
        })
        .collect();
    render(&AdjudicationPage {
        chrome: Chrome::new(&user, format!("Adjudication of {}", c.case_code), "trials")
            .sub("adjudication")
            .notice(&done),
        trial: head,
        id,
        open: c.state == "open",
        per_variable: c.choice == "per_variable",
        state: adjudication_state_label(&c.state),
        disagreements: c
            .disagreements
            .iter()
            .map(|d| DisagreementLine {
                key: d.variable.clone(),
                variable: variable_label(&d.variable),
                reader_1: d.reader_1.clone().unwrap_or_else(|| "none".into()),
                reader_2: d.reader_2.clone().unwrap_or_else(|| "none".into()),
            })
            .collect(),
        timepoints,
        summary: pair_rows(case_rows(&c.reader_1), case_rows(&c.reader_2)),
        decision: decision_text(c.decision.as_ref()),
        rationale: c.rationale.clone().unwrap_or_default(),
        signatures: signature_lines(&c.signatures),
        case_code: c.case_code,
        criteria: c.criteria,
    })
}

/// What the adjudicator chose, from the query or the form: `chosen=reader_1|reader_2`, or one
/// `var:<variable>=reader_1|reader_2` per disagreement.
fn parse_choice(fields: &[(String, String)]) -> Result<DecisionInput, AppError> {
    let chosen = fields.iter().find(|(k, _)| k == "chosen").map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let vars: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("var:").map(|k| (k.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    match (chosen, vars.is_empty()) {
        (Some(c), true) => Ok(DecisionInput { chosen: Some(c), variables: None }),
        (None, false) => Ok(DecisionInput { chosen: None, variables: Some(vars) }),
        _ => Err(AppError::invalid(
            "chosen",
            "choose one reader for the whole case, or a reader for each variable; go back to the adjudication and use one of its buttons",
        )),
    }
}

fn reader_words(r: &str) -> String {
    match r {
        "reader_1" => "reader 1".into(),
        "reader_2" => "reader 2".into(),
        other => other.into(),
    }
}

async fn decision_form(
    s: &WebState,
    user: &PageUser,
    c: &AdjudicationCase,
    input: &DecisionInput,
) -> Result<SignForm, PageError> {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, c.trial_id).await?);
    let needs_username = s.app.signing_needs_username(a).await?;
    let id = c.adjudication_id;
    let mut f = SignForm::new(
        user,
        format!("/adjudications/{id}/decision"),
        format!("Decide the adjudication of case {}", c.case_code),
        format!("/adjudications/{id}"),
        needs_username,
    );
    let decision = match (&input.chosen, &input.variables) {
        (Some(r), _) => {
            f.hidden.push(("chosen".into(), r.clone()));
            format!("accept the complete assessment of {} for the case", reader_words(r))
        }
        (None, Some(vars)) => {
            let mut parts = Vec::new();
            for (k, r) in vars {
                f.hidden.push((format!("var:{k}"), r.clone()));
                parts.push(format!("{}: {}", variable_label(k), reader_words(r)));
            }
            format!("per variable: {}", parts.join("; "))
        }
        _ => String::new(),
    };
    let trigger: Vec<String> = c
        .disagreements
        .iter()
        .map(|d| {
            format!(
                "{} (reader 1: {}, reader 2: {})",
                variable_label(&d.variable),
                d.reader_1.as_deref().unwrap_or("none"),
                d.reader_2.as_deref().unwrap_or("none")
            )
        })
        .collect();
    f.statement = vec![
        (
            "Record".into(),
            format!("Adjudication of blinded case {} ({}), trial {}", c.case_code, c.criteria, head.protocol_id),
        ),
        ("Readers disagree on".into(), trigger.join("; ")),
        ("Decision".into(), decision),
        ("Result".into(), "the chosen read becomes the accepted result of the case".into()),
    ];
    f.meaning = Some("adjudication decided".into());
    f.reason = Some("Rationale for the reader you chose (required)".into());
    f.reason_required = true;
    Ok(f)
}

/// `GET /adjudications/{adjudication}/decide?chosen=reader_1`: the e-signature form (dialog).
pub async fn decide_page(
    State(s): State<WebState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> PageResult {
    let c = s.app.open_adjudication(&user.actor, id).await?;
    let input = parse_choice(&q).back(format!("/adjudications/{id}"))?;
    let form = decision_form(&s, &user, &c, &input).await?;
    show(&user, form, headers.get("hx-request").is_some())
}

/// `POST /adjudications/{adjudication}/decision`: the same use case as the API's decide.
pub async fn decide(
    State(s): State<WebState>,
    Path(id): Path<Uuid>,
    Posted(user, fields): Posted<Vec<(String, String)>>,
) -> PageResult {
    let back = format!("/adjudications/{id}");
    let input = parse_choice(&fields).back(back.clone())?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let creds = SigningCredentials {
        username: field("username").filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string()),
        password: field("password").unwrap_or_default(),
    };
    let rationale = field("reason").unwrap_or_default();
    match s.app.decide_adjudication(&user.actor, id, input.clone(), &rationale, creds).await {
        Ok(_) => Ok(see_other(&back, "adjudicated")),
        Err(AppError::Invalid { field, message }) => {
            let c = s.app.open_adjudication(&user.actor, id).await?;
            let mut form = decision_form(&s, &user, &c, &input).await?;
            form.error = Some(message);
            // The use case names the rationale; the form calls it the reason.
            form.error_field = match field.as_deref() {
                Some("rationale") => "reason".into(),
                Some(f) => f.into(),
                None => String::new(),
            };
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
    fn a_recist_read_shows_each_lesion_with_its_organ_and_value() {
        let baseline = json!({"slice_thickness_mm": 5, "targets": [{"id": "T1", "organ": "liver", "diameter_mm": 30.4}],
            "non_targets": [{"id": "NT1", "organ": "bone"}]});
        let organs = organs_of(Some(&baseline));
        let rows: Vec<(String, String)> =
            lesion_rows(&baseline, &organs).into_iter().map(|r| (r.label, r.value)).collect();
        assert_eq!(
            rows,
            vec![
                ("Slice thickness".into(), "5 mm".into()),
                ("Target T1 (liver)".into(), "30.4 mm".into()),
                ("Non-target NT1 (bone)".into(), "recorded".into()),
            ]
        );
        let fu = json!({"targets": {"T1": {"value": "TOO_SMALL"}}, "non_targets": {"NT1": {"status": "UNEQUIVOCAL_PROGRESSION"}},
            "new_lesions": [{"id": "N1", "organ": "lung", "equivocal": true}]});
        let rows: Vec<(String, String)> = lesion_rows(&fu, &organs).into_iter().map(|r| (r.label, r.value)).collect();
        assert_eq!(
            rows,
            vec![
                ("Target T1 (liver)".into(), "too small".into()),
                ("Non-target NT1 (bone)".into(), "unequivocal progression".into()),
                ("New lesion N1 (lung)".into(), "present, equivocal".into()),
            ]
        );
    }

    #[test]
    fn side_by_side_rows_mark_what_differs() {
        let one = vec![Row { label: "Sum (mm)".into(), value: "41.2 mm".into() }];
        let two = vec![
            Row { label: "Sum (mm)".into(), value: "33.1 mm".into() },
            Row { label: "New lesion N1 (lung)".into(), value: "present".into() },
        ];
        let rows = pair_rows(one, two);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].differs && rows[1].differs);
        assert_eq!(rows[1].reader_1, "not recorded");
        assert_eq!(variable_label("overall_response:TP2"), "overall response at TP2");
    }

    #[test]
    fn a_choice_is_one_reader_or_one_per_variable() {
        let f = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(parse_choice(&f(&[("chosen", "reader_2")])).unwrap().chosen.as_deref(), Some("reader_2"));
        let per = parse_choice(&f(&[("var:progression_date", "reader_1")])).unwrap();
        assert_eq!(per.variables.unwrap()["progression_date"], "reader_1");
        assert!(parse_choice(&f(&[])).is_err());
        assert!(parse_choice(&f(&[("chosen", "reader_1"), ("var:x", "reader_2")])).is_err());
    }
}
