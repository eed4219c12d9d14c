//! The imaging charter: a trial's acquisition, de-identification, QC and read rules, written in
//! TOML (`docs/charter.md`, `docs/charter.schema.json`), read into a typed [`Charter`], validated,
//! expanded into a visit calendar and compared across versions.
//!
//! Entry points:
//! - [`parse_charter`] / [`check_charter`]: text to a validated charter, or every problem found;
//! - [`VisitCalendar::new`]: a subject's expected visits and windows, and which visit a study date
//!   falls in;
//! - [`diff`]: what changed between two versions.
//!
//! Pure: no IO, no clock; dates come in as [`Date`] arguments.

mod date;
mod diff;
mod model;
mod pattern;
mod problem;
mod read;
mod schedule;
mod text;
mod validate;

#[cfg(test)]
mod tests;

pub use date::Date;
pub use diff::{Change, ChangeKind, Entity, diff};
pub use model::*;
pub use pattern::{SubjectIdPattern, glob_matches, subject_id_matches};
pub use problem::{Problem, ProblemCode, Severity};
pub use schedule::{MAX_SCHEDULED_VISITS, PlannedVisit, ScheduledVisit, VisitCalendar, visit_calendar};
pub use validate::MAX_ID_LEN;

use problem::{Finding, LineIndex, is_under};
use read::Reader;

/// The outcome of checking a charter: every problem (errors and warnings, in source order), and
/// the charter when there is no error.
#[derive(Debug, Clone)]
pub struct CharterCheck {
    pub charter: Option<Charter>,
    pub problems: Vec<Problem>,
}

impl CharterCheck {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }
}

/// Read and validate a charter. `Ok` when there is no error (warnings are dropped: use
/// [`check_charter`] to see them); `Err` holds every problem, warnings included, in source order.
pub fn parse_charter(text: &str) -> Result<Charter, Vec<Problem>> {
    let check = check_charter(text);
    match check.charter {
        Some(charter) => Ok(charter),
        None => Err(check.problems),
    }
}

/// Read and validate a charter, keeping warnings: what `corelab charter check` prints.
pub fn check_charter(text: &str) -> CharterCheck {
    let lines = LineIndex::new(text);
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // After a syntax error the parser's recovery produces follow-on errors (an unclosed
        // array swallows the next tables), and the recovered document is unreliable: report the
        // first syntax error only.
        let first = syntax_errors.iter().min_by_key(|e| e.span().map_or(0, |s| s.start));
        let problems = first
            .into_iter()
            .map(|e| {
                let (line, column) = lines.locate(e.span().map_or(0, |s| s.start));
                Problem {
                    severity: Severity::Error,
                    code: ProblemCode::Syntax,
                    line,
                    column,
                    key: String::new(),
                    message: format!("TOML syntax: {}", e.message().trim()),
                    hint: "fix the TOML syntax first; other problems are reported once the file parses".into(),
                }
            })
            .collect();
        return CharterCheck { charter: None, problems: sorted(problems) };
    }

    let mut reader = Reader::default();
    let charter = read::read_charter(&mut reader, doc.get_ref());
    let semantic = validate::validate(&charter);

    let Reader { findings, spans, broken } = reader;
    let trusted = semantic.into_iter().filter(|f| {
        let under_broken = broken.iter().any(|b| is_under(&f.path, b));
        let reference_into_broken = f.refers_to.is_some_and(|root| broken.iter().any(|b| may_hide_ids(b, root)));
        !under_broken && !reference_into_broken
    });
    let problems: Vec<Problem> = findings
        .into_iter()
        .chain(trusted)
        .map(|f: Finding| {
            let offset = f.offset.unwrap_or_else(|| spans.locate(&f.path));
            let (line, column) = lines.locate(offset);
            Problem { severity: f.severity, code: f.code, line, column, key: f.path, message: f.message, hint: f.hint }
        })
        .collect();
    let problems = sorted(problems);
    let ok = !problems.iter().any(Problem::is_error);
    CharterCheck { charter: ok.then_some(charter), problems }
}

/// Whether a broken scope may have lost IDs of the collection `root`: the collection itself, one
/// of its entries, or a nested collection of entries (e.g. `imaging[0].series[1]`) - but not a
/// field deeper inside an entry, such as its constraints.
fn may_hide_ids(broken: &str, root: &str) -> bool {
    is_under(broken, root)
        && broken.split('.').all(|segment| {
            let name = segment.split('[').next().unwrap_or(segment);
            name == root || name == "series"
        })
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| (a.line, a.column, &a.key, &a.message).cmp(&(b.line, b.column, &b.key, &b.message)));
    problems.dedup();
    problems
}
