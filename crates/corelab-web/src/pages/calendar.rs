//! The subject × visit calendar of a trial: each cell is one expected visit with its date and
//! window from the calendar use case (the charter version in force now) and its phase relative
//! to today. A cell is the place where later work adds the visit's image and QC states; the grid
//! keeps one column per visit of the schedule and one row per subject the caller may see.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::NaiveDate;
use corelab_app::subjects::CalendarVisit;
use uuid::Uuid;

use super::error::PageResult;
use super::session::PageUser;
use super::trials::TrialHead;
use super::view::{Chrome, render, status_label};
use crate::WebState;

pub struct Column {
    pub id: String,
    pub label: String,
    pub day: i32,
}

/// Where a visit stands against today's date (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Upcoming,
    WindowOpen,
    WindowClosed,
}

impl Phase {
    pub fn of(v: &CalendarVisit, today: NaiveDate) -> Phase {
        if today < v.window_open {
            Phase::Upcoming
        } else if today <= v.window_close {
            Phase::WindowOpen
        } else {
            Phase::WindowClosed
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Upcoming => "upcoming",
            Phase::WindowOpen => "window open",
            Phase::WindowClosed => "window closed",
        }
    }
    pub fn class(&self) -> &'static str {
        match self {
            Phase::Upcoming => "upcoming",
            Phase::WindowOpen => "open",
            Phase::WindowClosed => "closed",
        }
    }
}

pub struct Cell {
    pub expected: String,
    pub window: String,
    pub phase: Phase,
}

pub struct GridRow {
    pub subject: Uuid,
    pub subject_id: String,
    pub site_id: String,
    pub status_label: &'static str,
    /// One entry per column; `None` where the subject has no such visit (withdrawn before it).
    pub cells: Vec<Option<Cell>>,
}

pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<GridRow>,
    pub today: String,
}

/// Lays out subjects' calendars as a grid; columns in schedule order (by day).
pub fn grid(subjects: Vec<(GridRow, Vec<CalendarVisit>)>, today: NaiveDate) -> Grid {
    let mut columns: Vec<Column> = Vec::new();
    for (_, visits) in &subjects {
        for v in visits {
            if !columns.iter().any(|c| c.id == v.visit_id) {
                columns.push(Column { id: v.visit_id.clone(), label: v.label.clone(), day: v.day });
            }
        }
    }
    columns.sort_by_key(|c| c.day);
    let rows = subjects
        .into_iter()
        .map(|(mut row, visits)| {
            row.cells = columns
                .iter()
                .map(|c| {
                    visits.iter().find(|v| v.visit_id == c.id).map(|v| Cell {
                        expected: v.expected_date.to_string(),
                        window: format!("{} to {}", v.window_open.format("%m-%d"), v.window_close.format("%m-%d")),
                        phase: Phase::of(v, today),
                    })
                })
                .collect();
            row
        })
        .collect();
    Grid { columns, rows, today: today.to_string() }
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    chrome: Chrome,
    trial: TrialHead,
    grid: Grid,
}

#[derive(Template)]
#[template(path = "calendar_grid.html")]
struct CalendarFragment {
    grid: Grid,
}

/// The grid as a page, or as a fragment when htmx loads it into the trial page.
pub async fn page(
    State(s): State<WebState>,
    user: PageUser,
    Path(trial): Path<Uuid>,
    headers: HeaderMap,
) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let subjects = s.app.list_subjects(a, trial).await?;
    let mut rows = Vec::with_capacity(subjects.len());
    for x in &subjects {
        let visits = s.app.subject_calendar(a, x.id).await?;
        let row = GridRow {
            subject: x.id,
            subject_id: x.subject_id.clone(),
            site_id: x.site_id.clone(),
            status_label: status_label(&x.status),
            cells: Vec::new(),
        };
        rows.push((row, visits));
    }
    let grid = grid(rows, s.app.clock().now().date_naive());
    if headers.get("hx-request").is_some_and(|v| v.as_bytes() == b"true") {
        return render(&CalendarFragment { grid });
    }
    render(&CalendarPage {
        chrome: Chrome::new(&user, format!("{} visit calendar", head.protocol_id), "trials").sub("overview"),
        trial: head,
        grid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(id: &str, day: i32, open: &str, close: &str) -> CalendarVisit {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        CalendarVisit {
            visit_id: id.into(),
            label: id.into(),
            day,
            expected_date: d(open),
            window_open: d(open),
            window_close: d(close),
        }
    }

    fn row(id: &str) -> GridRow {
        GridRow { subject: Uuid::nil(), subject_id: id.into(), site_id: "1".into(), status_label: "", cells: vec![] }
    }

    #[test]
    fn columns_follow_the_schedule_and_missing_visits_stay_empty() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let g = grid(
            vec![
                (
                    row("A"),
                    vec![visit("BL", 0, "2026-01-01", "2026-01-02"), visit("W8", 56, "2026-02-25", "2026-03-05")],
                ),
                (row("B"), vec![visit("BL", 0, "2026-04-01", "2026-04-02")]),
            ],
            today,
        );
        assert_eq!(g.columns.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["BL", "W8"]);
        let a: Vec<Option<Phase>> = g.rows[0].cells.iter().map(|c| c.as_ref().map(|c| c.phase)).collect();
        assert_eq!(a, [Some(Phase::WindowClosed), Some(Phase::WindowOpen)]);
        let b: Vec<Option<Phase>> = g.rows[1].cells.iter().map(|c| c.as_ref().map(|c| c.phase)).collect();
        assert_eq!(b, [Some(Phase::Upcoming), None]);
    }
}
