//! Site performance: QC first-pass rate, query turnaround and protocol deviations by QC rule.
//!
//! * A visit counts once it has an automated QC evaluation. It **passes first time** when its
//!   first evaluation was complete and not `fail`, and no QC review ever rejected it.
//! * **Query turnaround**: hours from a data query's opening to its closing; the median over the
//!   site's closed queries. Open queries are counted, not timed.
//! * **Protocol deviations by rule**: per QC rule, the visits with at least one error finding of
//!   that rule in any of their evaluations (a visit re-checked after a resubmission counts once);
//!   visits a QC reviewer accepted with a deviation are counted apart.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::stats::median;
use crate::response::agreement::Rate;

/// One automated QC evaluation of a visit, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationSummary {
    /// `pass`, `pass_with_warnings` or `fail`.
    pub verdict: String,
    /// Every required series was received.
    pub complete: bool,
    /// Rules with an error finding.
    pub error_rules: Vec<String>,
}

/// A visit's QC history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitQcHistory {
    pub site_id: String,
    /// Oldest first.
    pub evaluations: Vec<EvaluationSummary>,
    /// Outcomes of the QC reviews (`accept`, `accept_with_deviation`, `reject`).
    pub review_outcomes: Vec<String>,
}

/// A data query: its site and, once closed, how long it was open.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTimes {
    pub site_id: String,
    /// None while the query is not closed.
    pub open_hours: Option<f64>,
}

/// One row of the site performance report (a site, or all sites together).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SitePerformance {
    pub site_id: String,
    /// Visits with at least one QC evaluation.
    pub visits_checked: u64,
    /// Visits that passed first time / visits checked.
    pub first_pass: Rate,
    pub queries: u64,
    pub open_queries: u64,
    /// Median hours from opening to closing over closed queries.
    pub query_turnaround_median_hours: Option<f64>,
    /// QC rule -> visits with an error of that rule.
    pub deviations: BTreeMap<String, u64>,
    /// Visits a QC reviewer accepted with a deviation.
    pub accepted_with_deviation: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteReport {
    /// By site ID.
    pub sites: Vec<SitePerformance>,
    /// Every site together (`site_id` = "all").
    pub total: SitePerformance,
}

#[derive(Default)]
struct Tally {
    visits: u64,
    first_pass: u64,
    queries: u64,
    open: u64,
    hours: Vec<f64>,
    deviations: BTreeMap<String, u64>,
    accepted_with_deviation: u64,
}

impl Tally {
    fn add_visit(&mut self, v: &VisitQcHistory) {
        let Some(first) = v.evaluations.first() else { return };
        self.visits += 1;
        let rejected = v.review_outcomes.iter().any(|o| o == "reject");
        if first.complete && first.verdict != "fail" && !rejected {
            self.first_pass += 1;
        }
        let rules: BTreeSet<&String> = v.evaluations.iter().flat_map(|e| &e.error_rules).collect();
        for r in rules {
            *self.deviations.entry(r.clone()).or_default() += 1;
        }
        if v.review_outcomes.iter().any(|o| o == "accept_with_deviation") {
            self.accepted_with_deviation += 1;
        }
    }

    fn add_query(&mut self, q: &QueryTimes) {
        self.queries += 1;
        match q.open_hours {
            Some(h) => self.hours.push(h),
            None => self.open += 1,
        }
    }

    fn row(self, site_id: String) -> SitePerformance {
        SitePerformance {
            site_id,
            visits_checked: self.visits,
            first_pass: Rate::new(self.first_pass, self.visits),
            queries: self.queries,
            open_queries: self.open,
            query_turnaround_median_hours: median(&self.hours),
            deviations: self.deviations,
            accepted_with_deviation: self.accepted_with_deviation,
        }
    }
}

/// Site performance per site (every site in `sites`, with or without data, plus any site the
/// records name) and for all sites together.
pub fn site_performance(sites: &[String], visits: &[VisitQcHistory], queries: &[QueryTimes]) -> SiteReport {
    let mut per: BTreeMap<String, Tally> = sites.iter().map(|s| (s.clone(), Tally::default())).collect();
    let mut total = Tally::default();
    for v in visits {
        per.entry(v.site_id.clone()).or_default().add_visit(v);
        total.add_visit(v);
    }
    for q in queries {
        per.entry(q.site_id.clone()).or_default().add_query(q);
        total.add_query(q);
    }
    SiteReport { sites: per.into_iter().map(|(s, t)| t.row(s)).collect(), total: total.row("all".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(verdict: &str, complete: bool, rules: &[&str]) -> EvaluationSummary {
        EvaluationSummary {
            verdict: verdict.into(),
            complete,
            error_rules: rules.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn visit(site: &str, evaluations: Vec<EvaluationSummary>, reviews: &[&str]) -> VisitQcHistory {
        VisitQcHistory {
            site_id: site.into(),
            evaluations,
            review_outcomes: reviews.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn q(site: &str, hours: Option<f64>) -> QueryTimes {
        QueryTimes { site_id: site.into(), open_hours: hours }
    }

    /// (visit, passes first time?, rules counted)
    #[test]
    fn first_pass_per_visit() {
        let cases: Vec<(VisitQcHistory, bool, Vec<&str>)> = vec![
            (visit("101", vec![ev("pass", true, &[])], &["accept", "accept"]), true, vec![]),
            (visit("101", vec![ev("pass_with_warnings", true, &[])], &[]), true, vec![]),
            (
                visit("101", vec![ev("fail", true, &["slice_thickness"]), ev("pass", true, &[])], &["accept"]),
                false,
                vec!["slice_thickness"],
            ),
            (
                visit("101", vec![ev("pass", false, &["required_series"]), ev("pass", true, &[])], &[]),
                false,
                vec!["required_series"],
            ),
            (visit("101", vec![ev("pass", true, &[])], &["reject"]), false, vec![]),
            // Two failing evaluations with the same rule: one deviation for the visit.
            (
                visit("101", vec![ev("fail", true, &["kvp", "contrast"]), ev("fail", true, &["kvp"])], &[]),
                false,
                vec!["contrast", "kvp"],
            ),
        ];
        for (v, passes, rules) in cases {
            let r = site_performance(&[], std::slice::from_ref(&v), &[]);
            assert_eq!(r.total.visits_checked, 1);
            assert_eq!(r.total.first_pass.numerator, u64::from(passes), "{v:?}");
            let got: Vec<&str> = r.total.deviations.keys().map(String::as_str).collect();
            assert_eq!(got, rules, "{v:?}");
            assert!(r.total.deviations.values().all(|n| *n == 1));
        }
    }

    #[test]
    fn per_site_rows_and_total() {
        let visits = vec![
            visit("101", vec![ev("pass", true, &[])], &["accept"]),
            visit("101", vec![ev("fail", true, &["slice_thickness"]), ev("pass", true, &[])], &["accept"]),
            visit("101", vec![ev("pass", true, &[])], &["accept_with_deviation"]),
            visit("102", vec![ev("fail", true, &["slice_thickness"])], &[]),
            visit("102", vec![], &[]),
        ];
        let queries =
            vec![q("101", Some(4.0)), q("101", Some(10.0)), q("101", Some(1.0)), q("101", None), q("102", Some(30.0))];
        let r = site_performance(&["101".into(), "102".into(), "103".into()], &visits, &queries);
        let ids: Vec<&str> = r.sites.iter().map(|s| s.site_id.as_str()).collect();
        assert_eq!(ids, ["101", "102", "103"]);
        let s101 = &r.sites[0];
        assert_eq!((s101.visits_checked, s101.first_pass.numerator), (3, 2));
        assert_eq!(s101.first_pass.value, Some(2.0 / 3.0));
        assert_eq!((s101.queries, s101.open_queries), (4, 1));
        assert_eq!(s101.query_turnaround_median_hours, Some(4.0));
        assert_eq!(s101.deviations.get("slice_thickness"), Some(&1));
        assert_eq!(s101.accepted_with_deviation, 1);
        let s102 = &r.sites[1];
        assert_eq!((s102.visits_checked, s102.first_pass.numerator), (1, 0));
        assert_eq!(s102.query_turnaround_median_hours, Some(30.0));
        let s103 = &r.sites[2];
        assert_eq!((s103.visits_checked, s103.first_pass.value), (0, None));
        assert_eq!(s103.query_turnaround_median_hours, None);
        assert_eq!(r.total.site_id, "all");
        assert_eq!((r.total.visits_checked, r.total.first_pass.numerator), (4, 2));
        assert_eq!(r.total.deviations.get("slice_thickness"), Some(&2));
        assert_eq!(r.total.query_turnaround_median_hours, Some(7.0));
        assert_eq!((r.total.queries, r.total.open_queries), (5, 1));
    }
}
