//! The visit schedule: expanding visit definitions into visits, and a subject's visit calendar.

use serde::Serialize;

use super::date::Date;
use super::model::{Anchor, Charter, ImagingRule, VisitDefinition, VisitTiming, Window};

/// Upper bound on visits a charter may generate (checked by validation; expansion stops there).
pub const MAX_SCHEDULED_VISITS: usize = 1000;

/// One visit of the schedule after expanding repeats, with the day counted from the anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledVisit {
    /// Clinical Trial Time Point ID (0012,0050).
    pub id: String,
    pub label: String,
    /// Nominal day from the schedule anchor (day 0); 0 for baseline.
    pub day: i32,
    pub baseline: bool,
    pub window: Window,
    pub imaging: Vec<String>,
    pub imaging_rule: ImagingRule,
    /// Series subset; empty = all series of the imaging requirements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<String>,
    /// Index of the `[[visits]]` entry that generated it.
    #[serde(skip)]
    pub definition: usize,
}

impl ScheduledVisit {
    /// First day of the window (from the anchor).
    pub fn window_opens(&self) -> i32 {
        self.window.opens(self.day)
    }
    /// Last day of the window, inclusive.
    pub fn window_closes(&self) -> i32 {
        self.window.closes(self.day)
    }
}

/// The nominal days a definition generates, at most `MAX_SCHEDULED_VISITS + 1` of them.
pub(crate) fn definition_days(timing: &VisitTiming) -> Vec<i32> {
    match timing {
        VisitTiming::Baseline => vec![0],
        VisitTiming::Day(d) => vec![*d],
        VisitTiming::Days(days) => days.clone(),
        VisitTiming::EveryWeeks { every_weeks, from_week, until_week } => {
            if *every_weeks == 0 {
                return Vec::new();
            }
            let step = usize::try_from(*every_weeks).unwrap_or(usize::MAX);
            (*from_week..=*until_week)
                .step_by(step)
                .take(MAX_SCHEDULED_VISITS + 1)
                .filter_map(|w| i32::try_from(w).ok()?.checked_mul(7))
                .collect()
        }
    }
}

/// `{day}` -> the day, `{week}` -> day / 7 (left as written when the day is not a whole week).
pub(crate) fn fill_template(template: &str, day: i32) -> String {
    let mut s = template.replace("{day}", &day.to_string());
    if day % 7 == 0 {
        s = s.replace("{week}", &(day / 7).to_string());
    }
    s
}

/// The visits one definition generates.
pub(crate) fn expand_definition(index: usize, def: &VisitDefinition) -> Vec<ScheduledVisit> {
    let baseline = def.timing == VisitTiming::Baseline;
    definition_days(&def.timing)
        .into_iter()
        .map(|day| ScheduledVisit {
            id: fill_template(&def.id, day),
            label: fill_template(&def.label, day),
            day,
            baseline,
            window: def.window,
            imaging: def.imaging.clone(),
            imaging_rule: def.imaging_rule,
            series: def.series.clone(),
            definition: index,
        })
        .collect()
}

impl Charter {
    /// Every visit of the schedule, repeats expanded, ordered by day (baseline first).
    pub fn scheduled_visits(&self) -> Vec<ScheduledVisit> {
        let mut out: Vec<ScheduledVisit> = self
            .visits
            .iter()
            .enumerate()
            .flat_map(|(i, d)| expand_definition(i, d))
            .take(MAX_SCHEDULED_VISITS)
            .collect();
        out.sort_by(|a, b| (a.day, !a.baseline, &a.id).cmp(&(b.day, !b.baseline, &b.id)));
        out
    }
}

/// One visit of a subject's calendar, with dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedVisit {
    pub visit_id: String,
    pub label: String,
    pub baseline: bool,
    /// Nominal day from the anchor.
    pub day: i32,
    pub expected_date: Date,
    pub window_open: Date,
    /// Inclusive.
    pub window_close: Date,
}

impl PlannedVisit {
    /// Whether `date` lies in this visit's window (inclusive).
    pub fn window_contains(&self, date: Date) -> bool {
        self.window_open <= date && date <= self.window_close
    }
}

/// A subject's expected visits, computed from the charter and the anchor date (enrollment or
/// randomization, as `[schedule] anchor` says). Recomputing with an amended charter gives the
/// amended calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitCalendar {
    pub anchor: Anchor,
    pub anchor_date: Date,
    pub visits: Vec<PlannedVisit>,
}

impl VisitCalendar {
    pub fn new(charter: &Charter, anchor_date: Date) -> VisitCalendar {
        let visits = charter
            .scheduled_visits()
            .into_iter()
            .map(|v| PlannedVisit {
                expected_date: anchor_date.add_days(v.day),
                window_open: anchor_date.add_days(v.window_opens()),
                window_close: anchor_date.add_days(v.window_closes()),
                visit_id: v.id,
                label: v.label,
                baseline: v.baseline,
                day: v.day,
            })
            .collect();
        VisitCalendar { anchor: charter.schedule.anchor, anchor_date, visits }
    }

    pub fn visit(&self, visit_id: &str) -> Option<&PlannedVisit> {
        self.visits.iter().find(|v| v.visit_id == visit_id)
    }

    /// Days from the anchor to `date` (the Longitudinal Temporal Offset from Event).
    pub fn day_of(&self, date: Date) -> i32 {
        self.anchor_date.days_until(date)
    }

    /// The visits whose window contains `study_date`, in schedule order. Empty = unscheduled
    /// (or out of window); more than one when windows overlap.
    pub fn visits_containing(&self, study_date: Date) -> Vec<&PlannedVisit> {
        self.visits.iter().filter(|v| v.window_contains(study_date)).collect()
    }

    /// The visit whose expected date is closest to `study_date` (the earlier one on a tie).
    pub fn nearest_visit(&self, study_date: Date) -> Option<&PlannedVisit> {
        self.visits.iter().min_by_key(|v| (v.expected_date.days_until(study_date).unsigned_abs(), v.day))
    }
}

/// A subject's calendar: see [`VisitCalendar::new`].
pub fn visit_calendar(charter: &Charter, anchor_date: Date) -> VisitCalendar {
    VisitCalendar::new(charter, anchor_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeating_definitions_expand_by_week() {
        let t = VisitTiming::EveryWeeks { every_weeks: 8, from_week: 8, until_week: 40 };
        assert_eq!(definition_days(&t), vec![56, 112, 168, 224, 280]);
        let t = VisitTiming::EveryWeeks { every_weeks: 12, from_week: 6, until_week: 30 };
        assert_eq!(definition_days(&t), vec![42, 126, 210]);
        let empty = VisitTiming::EveryWeeks { every_weeks: 4, from_week: 10, until_week: 8 };
        assert!(definition_days(&empty).is_empty());
        let huge = VisitTiming::EveryWeeks { every_weeks: 1, from_week: 1, until_week: 5200 };
        assert_eq!(definition_days(&huge).len(), MAX_SCHEDULED_VISITS + 1);
    }

    #[test]
    fn templates() {
        assert_eq!(fill_template("W{week}", 56), "W8");
        assert_eq!(fill_template("Day {day} (week {week})", 84), "Day 84 (week 12)");
        assert_eq!(fill_template("W{week}", 60), "W{week}");
        assert_eq!(fill_template("EOT", 60), "EOT");
    }
}
