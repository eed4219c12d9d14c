use super::super::*;
use super::{CARDIOLOGY, NEUROLOGY, ONCOLOGY, parse_ok, replace_once};

fn date(text: &str) -> Date {
    Date::parse_iso(text).unwrap_or_else(|| panic!("bad date {text}"))
}

fn ids<'a>(visits: impl IntoIterator<Item = &'a PlannedVisit>) -> Vec<&'a str> {
    visits.into_iter().map(|v| v.visit_id.as_str()).collect()
}

#[test]
fn oncology_calendar_from_the_randomization_date() {
    let charter = parse_ok(ONCOLOGY);
    let cal = visit_calendar(&charter, date("2026-01-15"));
    assert_eq!(cal.anchor, Anchor::Randomization);
    assert_eq!(cal.visits.len(), 13);

    let bl = cal.visit("BL").unwrap();
    assert!(bl.baseline);
    assert_eq!(
        (bl.expected_date, bl.window_open, bl.window_close),
        (date("2026-01-15"), date("2025-12-18"), date("2026-01-15"))
    );
    let w8 = cal.visit("W8").unwrap();
    assert_eq!((w8.label.as_str(), w8.day), ("Week 8", 56));
    assert_eq!(
        (w8.expected_date, w8.window_open, w8.window_close),
        (date("2026-03-12"), date("2026-03-05"), date("2026-03-19"))
    );
    assert_eq!(cal.visit("W96").map(|v| v.expected_date), Some(date("2027-11-18")));
    assert!(cal.visit("W104").is_none());

    // Matching study dates to visit windows (bounds inclusive).
    assert_eq!(ids(cal.visits_containing(date("2026-01-10"))), ["BL"]);
    assert_eq!(ids(cal.visits_containing(date("2025-12-18"))), ["BL"]);
    assert!(cal.visits_containing(date("2025-12-17")).is_empty());
    assert!(cal.visits_containing(date("2026-02-01")).is_empty(), "between windows: unscheduled");
    assert_eq!(ids(cal.visits_containing(date("2026-03-05"))), ["W8"]);
    assert_eq!(ids(cal.visits_containing(date("2026-03-19"))), ["W8"]);
    assert!(cal.visits_containing(date("2026-03-20")).is_empty());
    assert_eq!(cal.day_of(date("2026-03-10")), 54);
    assert_eq!(cal.nearest_visit(date("2026-02-01")).map(|v| v.visit_id.as_str()), Some("BL"));
    assert_eq!(cal.nearest_visit(date("2026-02-20")).map(|v| v.visit_id.as_str()), Some("W8"));
}

#[test]
fn an_amended_schedule_gives_the_amended_calendar() {
    let v1 = parse_ok(ONCOLOGY);
    let text = replace_once(ONCOLOGY, "every_weeks = 8", "every_weeks = 12");
    let text = replace_once(
        &text,
        "window = { minus_days = 7, plus_days = 7 }",
        "window = { minus_days = 3, plus_days = 10 }",
    );
    let v2 = parse_ok(&text);
    let anchor = date("2026-01-15");
    let before = visit_calendar(&v1, anchor);
    let after = visit_calendar(&v2, anchor);
    assert_eq!(ids(&before.visits)[..3], ["BL", "W8", "W16"]);
    assert_eq!(ids(&after.visits), ["BL", "W12", "W24", "W36", "W48", "W60", "W72", "W84", "W96"]);
    let w12 = after.visit("W12").unwrap();
    assert_eq!(
        (w12.expected_date, w12.window_open, w12.window_close),
        (date("2026-04-09"), date("2026-04-06"), date("2026-04-19"))
    );
    // The same scan date now falls in a different visit.
    assert_eq!(ids(before.visits_containing(date("2026-04-08"))), Vec::<&str>::new());
    assert_eq!(ids(after.visits_containing(date("2026-04-08"))), ["W12"]);
    assert_eq!(before.visit("BL"), after.visit("BL"), "baseline unchanged");
}

#[test]
fn overlapping_windows_return_every_candidate_visit() {
    let text = replace_once(
        ONCOLOGY,
        "window = { minus_days = 7, plus_days = 7 }",
        "window = { minus_days = 30, plus_days = 30 }",
    );
    // Overlap is a warning, so the charter is still usable.
    let check = check_charter(&text);
    assert!(check.problems.iter().all(|p| !p.is_error()));
    assert!(check.warnings().count() >= 1);
    let charter = check.charter.unwrap_or_else(|| panic!("rejected"));
    let cal = visit_calendar(&charter, date("2026-01-15"));
    // Day 84 lies in W8 (26..86) and in W16 (82..142).
    assert_eq!(ids(cal.visits_containing(date("2026-04-09"))), ["W8", "W16"]);
}

#[test]
fn baseline_window_may_close_before_day_zero() {
    let charter = parse_ok(NEUROLOGY);
    let cal = visit_calendar(&charter, date("2026-06-01"));
    let bl = cal.visit("BL").unwrap();
    assert_eq!((bl.window_open, bl.window_close), (date("2026-05-11"), date("2026-05-31")));
    assert!(
        cal.visits_containing(date("2026-06-01")).is_empty(),
        "a scan on the randomization day is too late for baseline"
    );
    assert_eq!(ids(cal.visits_containing(date("2026-05-31"))), ["BL"]);
}

#[test]
fn listed_days_and_the_enrollment_anchor() {
    let charter = parse_ok(CARDIOLOGY);
    let cal = visit_calendar(&charter, date("2026-02-27"));
    assert_eq!(cal.anchor, Anchor::Enrollment);
    assert_eq!(ids(&cal.visits), ["BL", "W12", "W26", "W52"]);
    let w52 = cal.visit("W52").unwrap();
    // 2026-02-27 + 364 days = 2027-02-26; window +-14 days.
    assert_eq!(
        (w52.expected_date, w52.window_open, w52.window_close),
        (date("2027-02-26"), date("2027-02-12"), date("2027-03-12"))
    );
}
