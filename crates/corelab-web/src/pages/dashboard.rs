//! The trial dashboard: per site, subjects enrolled, visits expected / received / QC passed /
//! read, open queries and median turnarounds; and the subject x visit grid, each cell with a
//! symbol and words besides its colour. `App::trial_dashboard` decides who sees which rows.

use askama::Template;
use axum::extract::{Path, State};
use corelab_domain::reports::SiteDashboard;
use uuid::Uuid;

use super::error::PageResult;
use super::session::PageUser;
use super::trials::TrialHead;
use super::view::{Chrome, render};
use crate::WebState;

/// How one visit state looks in the grid: a symbol, words, and a colour class.
pub struct Look {
    pub symbol: &'static str,
    pub text: &'static str,
    pub class: &'static str,
}

/// Every state the grid can show, in the legend's order.
pub const LEGEND: &[(&str, Look)] = &[
    ("not_yet_due", Look { symbol: "·", text: "Not due yet", class: "g-future" }),
    ("window_open", Look { symbol: "○", text: "Window open, no images yet", class: "g-open" }),
    ("overdue", Look { symbol: "!", text: "Overdue: window closed, no images", class: "g-overdue" }),
    ("received", Look { symbol: "↓", text: "Received, check pending", class: "g-received" }),
    ("received_incomplete", Look { symbol: "◐", text: "Received, incomplete", class: "g-warn" }),
    ("awaiting_qc1", Look { symbol: "…", text: "Awaiting QC1 review", class: "g-waiting" }),
    ("awaiting_qc2", Look { symbol: "…", text: "Awaiting QC2 review", class: "g-waiting" }),
    ("qc_failed", Look { symbol: "✗", text: "Failed the automated check", class: "g-bad" }),
    ("qc_rejected", Look { symbol: "✗", text: "Rejected by QC", class: "g-bad" }),
    ("qc_passed", Look { symbol: "✓", text: "QC passed", class: "g-ok" }),
    ("read", Look { symbol: "★", text: "QC passed and read", class: "g-read" }),
];

const UNKNOWN: Look = Look { symbol: "?", text: "Unknown", class: "g-future" };

fn look(state: &str) -> &'static Look {
    LEGEND.iter().find(|(s, _)| *s == state).map(|(_, l)| l).unwrap_or(&UNKNOWN)
}

pub struct SiteRow {
    pub site_id: String,
    pub subjects: u64,
    pub expected: u64,
    pub received: u64,
    pub qc_passed: u64,
    pub read: u64,
    pub open_queries: u64,
    pub scan_to_qc: String,
    pub qc_to_read: String,
}

fn hours(h: Option<f64>) -> String {
    match h {
        Some(h) if h >= 48.0 => format!("{:.1} days", h / 24.0),
        Some(h) if h >= 1.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.0} min", h * 60.0),
        None => "no data yet".into(),
    }
}

impl SiteRow {
    fn of(d: &SiteDashboard) -> SiteRow {
        SiteRow {
            site_id: if d.site_id == "all" { "All sites".into() } else { d.site_id.clone() },
            subjects: d.subjects,
            expected: d.visits_expected,
            received: d.visits_received,
            qc_passed: d.visits_qc_passed,
            read: d.visits_read,
            open_queries: d.open_queries,
            scan_to_qc: hours(d.scan_to_qc_median_hours),
            qc_to_read: hours(d.qc_to_read_median_hours),
        }
    }
}

pub struct Cell {
    pub state: String,
    pub look: &'static Look,
    pub href: Option<String>,
}

pub struct Row {
    pub subject: Uuid,
    pub subject_id: String,
    pub site_id: String,
    /// One per column; None where the subject has no such visit (withdrawn before it).
    pub cells: Vec<Option<Cell>>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    trial: TrialHead,
    sites: Vec<SiteRow>,
    total: Option<SiteRow>,
    columns: Vec<(String, String)>,
    grid: Option<Vec<Row>>,
    legend: &'static [(&'static str, Look)],
}

/// `GET /trials/{trial}/dashboard`.
pub async fn page(State(s): State<WebState>, user: PageUser, Path(trial): Path<Uuid>) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let d = s.app.trial_dashboard(a, trial).await?;
    let mut columns: Vec<(String, String)> = Vec::new();
    let grid = d.grid.as_ref().map(|rows| {
        for r in rows {
            for c in &r.visits {
                if !columns.iter().any(|(v, _)| *v == c.visit_id) {
                    columns.push((c.visit_id.clone(), c.label.clone()));
                }
            }
        }
        rows.iter()
            .map(|r| Row {
                subject: r.subject,
                subject_id: r.subject_id.clone(),
                site_id: r.site_id.clone(),
                cells: columns
                    .iter()
                    .map(|(v, _)| {
                        r.visits.iter().find(|c| c.visit_id == *v).map(|c| {
                            let read = d.read.iter().any(|(s, rv)| *s == r.subject && rv == v);
                            let state = if read && c.state == "qc_passed" { "read" } else { c.state.as_str() };
                            let has_images = !matches!(state, "not_yet_due" | "window_open" | "overdue" | "unknown");
                            Cell {
                                state: state.to_string(),
                                look: look(state),
                                href: has_images.then(|| format!("/trials/{trial}/qc/{}/{v}", r.subject)),
                            }
                        })
                    })
                    .collect(),
            })
            .collect()
    });
    render(&DashboardPage {
        chrome: Chrome::new(&user, format!("{} dashboard", head.protocol_id), "trials").sub("dashboard"),
        trial: head,
        sites: d.sites.iter().map(SiteRow::of).collect(),
        total: d.total.as_ref().map(SiteRow::of),
        columns,
        grid,
        legend: LEGEND,
    })
}
