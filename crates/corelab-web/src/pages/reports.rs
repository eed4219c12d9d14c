//! Reports as pages, standalone HTML and PDF: `GET /trials/{trial}/reports` (the list),
//! `GET /trials/{trial}/reports/{name}` (the page), `{name}.html` (one self-contained file with its
//! styles inline, for archiving) and `{name}.pdf` (that file printed by headless Chromium, run as a
//! subprocess). Who sees which report, and how much of it, is decided by the report use cases.

use std::path::PathBuf;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use corelab_app::AppError;
use corelab_app::reports::{Report, ReportHead, ReportKind};
use corelab_domain::reports::plot::pct;
use corelab_domain::response::agreement::Rate;
use uuid::Uuid;

use super::error::PageResult;
use super::session::PageUser;
use super::trials::TrialHead;
use super::view::{Chrome, render, role_label, utc};
use crate::WebState;

/// A table of a report section: every cell already text.
pub struct Table {
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One section: a heading, an optional note, a plot (SVG made by corelab) and/or a table.
pub struct Section {
    pub id: String,
    pub heading: String,
    pub note: Option<String>,
    pub svg: Option<String>,
    pub tables: Vec<Table>,
}

/// A report laid out for the templates.
pub struct ReportView {
    pub slug: &'static str,
    pub title: String,
    pub protocol_id: String,
    pub trial_name: String,
    pub generated: String,
    pub audience: String,
    pub pseudonymised: bool,
    pub sections: Vec<Section>,
}

fn rate(r: &Rate) -> String {
    match r.value {
        Some(v) => format!("{}/{} ({:.1} %)", r.numerator, r.denominator, v * 100.0),
        None => format!("{}/{} (no data)", r.numerator, r.denominator),
    }
}

fn hours(h: Option<f64>) -> String {
    h.map_or_else(|| "none closed".to_string(), |h| format!("{h:.1} h"))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "undefined".to_string(), |v| format!("{v:.digits$}"))
}

fn view_of(report: &Report) -> ReportView {
    let h: &ReportHead = report.head();
    let mut sections = Vec::new();
    match report {
        Report::SitePerformance(r) => {
            let mut rows: Vec<&corelab_domain::reports::SitePerformance> = r.report.sites.iter().collect();
            if r.show_total {
                rows.push(&r.report.total);
            }
            let label = |s: &str| if s == "all" { "All sites".to_string() } else { s.to_string() };
            sections.push(Section {
                id: "sites".into(),
                heading: "QC and queries by site".into(),
                note: Some(
                    "First-pass QC: visits whose first automated check was complete and not failed and that no QC \
                     review rejected, of the visits checked. Query turnaround: median hours from a query's opening \
                     to its closing, over closed queries."
                        .into(),
                ),
                svg: None,
                tables: vec![Table {
                    caption: "Site performance".into(),
                    head: [
                        "Site",
                        "Visits checked",
                        "First-pass QC",
                        "Queries",
                        "Open queries",
                        "Median query turnaround",
                        "Accepted with deviation",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows: rows
                        .iter()
                        .map(|s| {
                            vec![
                                label(&s.site_id),
                                s.visits_checked.to_string(),
                                rate(&s.first_pass),
                                s.queries.to_string(),
                                s.open_queries.to_string(),
                                hours(s.query_turnaround_median_hours),
                                s.accepted_with_deviation.to_string(),
                            ]
                        })
                        .collect(),
                }],
            });
            let rules: std::collections::BTreeSet<&String> = rows.iter().flat_map(|s| s.deviations.keys()).collect();
            let mut head = vec!["QC rule".to_string()];
            head.extend(rows.iter().map(|s| label(&s.site_id)));
            sections.push(Section {
                id: "deviations".into(),
                heading: "Protocol deviations by QC rule".into(),
                note: Some(
                    "Visits with at least one error of the rule in any of their QC evaluations (a visit checked \
                     again after a resubmission counts once)."
                        .into(),
                ),
                svg: None,
                tables: vec![Table {
                    caption: "Visits with an error, by QC rule and site".into(),
                    head,
                    rows: rules
                        .into_iter()
                        .map(|rule| {
                            let mut row = vec![rule.clone()];
                            row.extend(rows.iter().map(|s| s.deviations.get(rule).copied().unwrap_or(0).to_string()));
                            row
                        })
                        .collect(),
                }],
            });
        }
        Report::ReaderPerformance(r) => {
            let m = &r.metrics;
            sections.push(Section {
                id: "trial".into(),
                heading: "Trial".into(),
                note: None,
                svg: None,
                tables: vec![Table {
                    caption: "Double reads and adjudication".into(),
                    head: vec!["Measure".into(), "Value".into()],
                    rows: vec![
                        vec!["Double-read subjects".into(), m.double_read_subjects.to_string()],
                        vec!["Adjudication rate".into(), rate(&m.adjudication_rate)],
                        vec!["Adjudications pending".into(), m.pending_adjudications.to_string()],
                        vec!["Reads submitted".into(), m.turnaround.reads.to_string()],
                        vec!["Median read turnaround (QC passed to read)".into(), hours(m.turnaround.median_hours)],
                    ],
                }],
            });
            sections.push(Section {
                id: "readers".into(),
                heading: "Readers".into(),
                note: Some(
                    "Adjudication rate: subjects the reader double-read that went to adjudication. Adjudicator \
                     agreement: decided adjudications the adjudicator settled for this reader. Disagreement index: \
                     subjects where the adjudicator chose the other reader, of those the reader double-read."
                        .into(),
                ),
                svg: None,
                tables: vec![Table {
                    caption: "Reader performance".into(),
                    head: [
                        "Reader",
                        "Reads submitted",
                        "Open tasks",
                        "Adjudication rate",
                        "Adjudicator agreement",
                        "Disagreement index",
                        "Median turnaround",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows: m
                        .per_reader
                        .iter()
                        .map(|x| {
                            let who = if x.display_name.is_empty() {
                                x.reader.clone()
                            } else {
                                format!("{} ({})", x.display_name, x.reader)
                            };
                            vec![
                                who,
                                x.submitted_reads.to_string(),
                                x.open_tasks.to_string(),
                                rate(&x.adjudication_rate),
                                rate(&x.adjudicator_agreement_rate),
                                rate(&x.reader_disagreement_index),
                                hours(x.turnaround.median_hours),
                            ]
                        })
                        .collect(),
                }],
            });
            sections.push(Section {
                id: "kappa".into(),
                heading: "Agreement between readers (Cohen's kappa)".into(),
                note: Some(
                    "On timepoint overall responses over the common follow-ups of double-read subjects: \
                     kappa = (po - pe) / (1 - pe); undefined when both readers used a single category."
                        .into(),
                ),
                svg: None,
                tables: vec![Table {
                    caption: "Cohen's kappa per reader pair".into(),
                    head: ["Readers", "Timepoints", "Agreements", "Observed agreement", "Chance agreement", "Kappa"]
                        .map(String::from)
                        .to_vec(),
                    rows: m
                        .kappa
                        .iter()
                        .map(|k| {
                            vec![
                                format!("{} and {}", k.reader_a, k.reader_b),
                                k.kappa.n.to_string(),
                                k.kappa.agreements.to_string(),
                                format!("{:.3}", k.kappa.observed_agreement),
                                format!("{:.3}", k.kappa.expected_agreement),
                                num(k.kappa.kappa, 3),
                            ]
                        })
                        .collect(),
                }],
            });
        }
        Report::Response(r) => {
            let s = &r.summary;
            sections.push(Section {
                id: "bor".into(),
                heading: "Best overall response".into(),
                note: r.criteria.as_ref().map(|c| format!("Accepted results under {c}.")),
                svg: None,
                tables: vec![Table {
                    caption: "Subjects by best overall response".into(),
                    head: vec!["Best overall response".into(), "Subjects".into()],
                    rows: s.best_response_counts.iter().map(|(k, v)| vec![k.clone(), v.to_string()]).collect(),
                }],
            });
            sections.push(Section {
                id: "waterfall".into(),
                heading: "Waterfall plot".into(),
                note: Some(
                    "Best (smallest) % change in the sum of target lesion diameters from baseline over the \
                     follow-ups with a fully evaluated sum; bars sorted from the largest increase; dashed lines \
                     at +20 % and -30 %."
                        .into(),
                ),
                svg: Some(r.waterfall_svg.clone()),
                tables: vec![Table {
                    caption: "Best % change per subject".into(),
                    head: vec!["Subject".into(), "Best change".into(), "Best overall response".into()],
                    rows: s
                        .waterfall
                        .iter()
                        .map(|b| vec![b.label.clone(), pct(b.best_change_tenths), b.best_overall_response.clone()])
                        .collect(),
                }],
            });
            sections.push(Section {
                id: "spider".into(),
                heading: "Spider plot".into(),
                note: if s.not_evaluable.is_empty() {
                    None
                } else {
                    Some(format!("No measured follow-up yet: {}.", s.not_evaluable.join(", ")))
                },
                svg: Some(r.spider_svg.clone()),
                tables: vec![Table {
                    caption: "% change per subject and timepoint".into(),
                    head: vec!["Subject".into(), "Days from baseline".into(), "Change".into()],
                    rows: s
                        .spider
                        .iter()
                        .flat_map(|l| {
                            l.points
                                .iter()
                                .skip(1)
                                .map(|p| vec![l.label.clone(), p.days_from_baseline.to_string(), pct(p.change_tenths)])
                        })
                        .collect(),
                }],
            });
        }
        Report::Timeline(r) => {
            sections.push(Section {
                id: "enrolment".into(),
                heading: format!("Enrolment: {} subjects", r.enrolled),
                note: None,
                svg: Some(r.enrolment_svg.clone()),
                tables: Vec::new(),
            });
            sections.push(Section {
                id: "imaging".into(),
                heading: "Imaging timeline".into(),
                note: Some(
                    "Each visit's images at the date the core lab first received them, with where the visit stands."
                        .into(),
                ),
                svg: Some(r.timeline_svg.clone()),
                tables: vec![Table {
                    caption: "Imaging visits per subject".into(),
                    head: vec!["Subject".into(), "Enrolled".into(), "Visits (received, state)".into()],
                    rows: r
                        .subjects
                        .iter()
                        .map(|s| {
                            let ev: Vec<String> = s
                                .events
                                .iter()
                                .map(|e| {
                                    format!(
                                        "{} {} {}{}",
                                        e.visit_id,
                                        e.date,
                                        e.state.replace('_', " "),
                                        if e.read { ", read" } else { "" }
                                    )
                                })
                                .collect();
                            vec![
                                s.label.clone(),
                                s.enrolled.to_string(),
                                if ev.is_empty() { "none yet".into() } else { ev.join("; ") },
                            ]
                        })
                        .collect(),
                }],
            });
        }
    }
    ReportView {
        slug: h.kind.slug(),
        title: h.kind.title().to_string(),
        protocol_id: h.protocol_id.clone(),
        trial_name: h.trial_name.clone(),
        generated: utc(&h.generated_at),
        audience: role_label(&h.audience),
        pseudonymised: h.pseudonymised,
        sections,
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    chrome: Chrome,
    trial: TrialHead,
    reports: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    chrome: Chrome,
    trial: TrialHead,
    r: ReportView,
}

#[derive(Template)]
#[template(path = "report_print.html")]
struct ReportPrint {
    r: ReportView,
    css: &'static str,
}

/// The print stylesheet, inlined into the standalone file (no request leaves the file).
const PRINT_CSS: &str = include_str!("../../static/report-print.css");

/// The list of reports.
pub async fn list(State(s): State<WebState>, user: PageUser, Path(trial): Path<Uuid>) -> PageResult {
    let kinds = s.app.available_reports(&user.actor, trial).await?;
    let head = TrialHead::of(s.app.trial(&user.actor, trial).await?);
    render(&ReportsPage {
        chrome: Chrome::new(&user, format!("{} reports", head.protocol_id), "trials").sub("reports"),
        trial: head,
        reports: kinds.iter().map(|k| (k.slug(), k.title())).collect(),
    })
}

/// A report as a page, as a standalone HTML file (`.html`) or as a PDF (`.pdf`).
pub async fn show(State(s): State<WebState>, user: PageUser, Path((trial, name)): Path<(Uuid, String)>) -> PageResult {
    let (slug, format) = match name.rsplit_once('.') {
        Some((slug, ext @ ("pdf" | "html"))) => (slug, ext),
        _ => (name.as_str(), "page"),
    };
    let kind = ReportKind::parse(slug).ok_or_else(|| {
        AppError::NotFound(format!(
            "no report {slug}: the reports are {}",
            ReportKind::ALL.iter().map(|k| k.slug()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let report = s.app.report(&user.actor, trial, kind).await?;
    let view = view_of(&report);
    let filename = format!("{}-{}", segment(&view.protocol_id), kind.slug());
    match format {
        "page" => {
            let head = TrialHead::of(s.app.trial(&user.actor, trial).await?);
            render(&ReportPage {
                chrome: Chrome::new(&user, format!("{} {}", head.protocol_id, kind.title()), "trials").sub("reports"),
                trial: head,
                r: view,
            })
        }
        ext => {
            let html = ReportPrint { r: view, css: PRINT_CSS }.render().map_err(super::error::PageError::Render)?;
            let (bytes, mime) = if ext == "pdf" {
                (print_pdf(&html).await?, "application/pdf")
            } else {
                (html.into_bytes(), "text/html; charset=utf-8")
            };
            let mut resp = bytes.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}.{ext}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(resp)
        }
    }
}

/// A report as one self-contained HTML file (styles inline, plots as SVG): what `{name}.html`
/// serves and what the PDF is printed from. Used by `corelab report` too.
pub async fn report_document(
    app: &corelab_app::App,
    actor: &corelab_app::Actor,
    trial: Uuid,
    kind: ReportKind,
) -> Result<String, AppError> {
    let report = app.report(actor, trial, kind).await?;
    ReportPrint { r: view_of(&report), css: PRINT_CSS }.render().map_err(AppError::internal)
}

fn segment(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The Chromium to print with: `CORELAB_CHROMIUM`, else the first of the usual names on PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CORELAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Whether this process runs as root (Chromium's sandbox refuses root without --no-sandbox).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Prints standalone HTML to PDF with headless Chromium (`--print-to-pdf`), in a private
/// temporary folder, with a 90 s limit.
pub async fn print_pdf(html: &str) -> Result<Vec<u8>, AppError> {
    let Some(browser) = chromium() else {
        return Err(AppError::Unavailable(
            "PDF reports need Chromium on the server: install the chromium package or set CORELAB_CHROMIUM to \
             its path. The same report is available as a page and as a standalone .html file."
                .into(),
        ));
    };
    let dir = tempfile::tempdir().map_err(AppError::internal)?;
    let input = dir.path().join("report.html");
    let output = dir.path().join("report.pdf");
    tokio::fs::write(&input, html).await.map_err(AppError::internal)?;
    let mut cmd = tokio::process::Command::new(&browser);
    cmd.arg("--headless")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--no-pdf-header-footer")
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--print-to-pdf={}", output.display()));
    if running_as_root() {
        cmd.arg("--no-sandbox");
    }
    cmd.arg(format!("file://{}", input.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(90), cmd.output()).await;
    let out = match run {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, browser = %browser.display(), "could not start chromium");
            return Err(AppError::Unavailable(format!(
                "could not start Chromium at {} for the PDF; check the installation or CORELAB_CHROMIUM",
                browser.display()
            )));
        }
        Err(_) => return Err(AppError::Unavailable("Chromium did not finish the PDF within 90 s".into())),
    };
    match tokio::fs::read(&output).await {
        Ok(pdf) if out.status.success() && pdf.starts_with(b"%PDF") => Ok(pdf),
        _ => {
            tracing::error!(status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr), "chromium printed no PDF");
            Err(AppError::Unavailable("Chromium could not print the report to PDF (see the server log)".into()))
        }
    }
}
