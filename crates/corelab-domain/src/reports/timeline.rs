//! Enrolment over time and the imaging timeline of every subject.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::charter::Date;

/// Subjects enrolled up to and including `date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnrolmentPoint {
    pub date: Date,
    pub enrolled: u64,
}

/// One imaging visit of a subject on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagingEvent {
    pub visit_id: String,
    pub date: Date,
    /// The visit's QC state (`qc_passed`, `qc_failed`, `awaiting_qc1`, ...).
    pub state: String,
    /// Read: the visit has an accepted response.
    pub read: bool,
}

/// One row of the imaging timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineSubject {
    pub label: String,
    pub enrolled: Date,
    pub events: Vec<ImagingEvent>,
}

/// The cumulative enrolment curve: one point per date on which someone was enrolled.
pub fn enrolment_curve(dates: &[Date]) -> Vec<EnrolmentPoint> {
    let mut per_day: BTreeMap<Date, u64> = BTreeMap::new();
    for d in dates {
        *per_day.entry(*d).or_default() += 1;
    }
    let mut total = 0;
    per_day
        .into_iter()
        .map(|(date, n)| {
            total += n;
            EnrolmentPoint { date, enrolled: total }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse_iso(s).unwrap()
    }

    #[test]
    fn cumulative_enrolment() {
        type Case<'a> = (Vec<&'a str>, Vec<(&'a str, u64)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec!["2026-10-01"], vec![("2026-10-01", 1)]),
            (
                vec!["2026-10-03", "2026-10-01", "2026-10-03", "2026-11-20"],
                vec![("2026-10-01", 1), ("2026-10-03", 3), ("2026-11-20", 4)],
            ),
        ];
        for (dates, expected) in cases {
            let dates: Vec<Date> = dates.into_iter().map(d).collect();
            let got: Vec<(String, u64)> =
                enrolment_curve(&dates).into_iter().map(|p| (p.date.to_string(), p.enrolled)).collect();
            let expected: Vec<(String, u64)> = expected.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
            assert_eq!(got, expected);
        }
    }
}
