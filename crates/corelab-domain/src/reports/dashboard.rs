//! The trial dashboard's numbers per site: subjects enrolled; visits expected, received, QC passed
//! and read; open data queries; median turnaround from images received to the first QC decision
//! and from QC pass to the accepted read.
//!
//! * A visit is **expected** once its window opened, or earlier when images already arrived.
//! * **Received**: images arrived for it. **QC passed**: its QC state is passed. **Read**: an
//!   accepted read result covers it.
//! * **Scan to QC**: hours from the first image of the visit arriving to the first QC review
//!   decision on it (accept, accept with deviation or reject). **QC to read**: hours from the
//!   decision that passed QC to the first accepted result covering the visit. Medians over the
//!   visits that have both times; negative spans (clock skew between records) are left out.
//!
//! Times come in as seconds on any common scale (the caller's clock), so this stays pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::median;

/// One expected or received visit of a subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardVisit {
    pub site_id: String,
    /// The visit's window has opened.
    pub due: bool,
    /// When the first image of the visit arrived.
    pub received_at: Option<i64>,
    /// When the first QC review decision on the visit was made.
    pub first_decision_at: Option<i64>,
    /// The visit's QC state is passed.
    pub qc_passed: bool,
    /// When the decision that passed QC was made.
    pub qc_passed_at: Option<i64>,
    /// When an accepted read result first covered the visit.
    pub read_at: Option<i64>,
}

/// One row of the dashboard (a site, or every site together with `site_id` "all").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteDashboard {
    pub site_id: String,
    pub subjects: u64,
    pub visits_expected: u64,
    pub visits_received: u64,
    pub visits_qc_passed: u64,
    pub visits_read: u64,
    pub open_queries: u64,
    pub scan_to_qc_median_hours: Option<f64>,
    pub qc_to_read_median_hours: Option<f64>,
}

#[derive(Default)]
struct Tally {
    subjects: u64,
    expected: u64,
    received: u64,
    passed: u64,
    read: u64,
    open_queries: u64,
    to_qc: Vec<f64>,
    to_read: Vec<f64>,
}

fn hours(from: Option<i64>, to: Option<i64>) -> Option<f64> {
    let (a, b) = (from?, to?);
    #[allow(clippy::cast_precision_loss)]
    (b >= a).then(|| (b - a) as f64 / 3600.0)
}

impl Tally {
    fn add(&mut self, v: &DashboardVisit) {
        let received = v.received_at.is_some();
        if v.due || received {
            self.expected += 1;
        }
        if received {
            self.received += 1;
        }
        if v.qc_passed {
            self.passed += 1;
        }
        if v.read_at.is_some() {
            self.read += 1;
        }
        self.to_qc.extend(hours(v.received_at, v.first_decision_at));
        self.to_read.extend(hours(v.qc_passed_at, v.read_at));
    }

    fn row(self, site_id: String) -> SiteDashboard {
        SiteDashboard {
            site_id,
            subjects: self.subjects,
            visits_expected: self.expected,
            visits_received: self.received,
            visits_qc_passed: self.passed,
            visits_read: self.read,
            open_queries: self.open_queries,
            scan_to_qc_median_hours: median(&self.to_qc),
            qc_to_read_median_hours: median(&self.to_read),
        }
    }
}

/// The dashboard rows of `sites` (in that order, with or without data) and the total over them.
/// `subject_sites` holds the site of each enrolled subject, `open_query_sites` the site of each
/// open (or answered) data query; records of other sites are left out.
pub fn site_dashboard(
    sites: &[String],
    subject_sites: &[String],
    visits: &[DashboardVisit],
    open_query_sites: &[String],
) -> (Vec<SiteDashboard>, SiteDashboard) {
    let mut per: BTreeMap<&str, Tally> = sites.iter().map(|s| (s.as_str(), Tally::default())).collect();
    let mut total = Tally::default();
    for s in subject_sites {
        if let Some(t) = per.get_mut(s.as_str()) {
            t.subjects += 1;
            total.subjects += 1;
        }
    }
    for v in visits {
        if let Some(t) = per.get_mut(v.site_id.as_str()) {
            t.add(v);
            total.add(v);
        }
    }
    for s in open_query_sites {
        if let Some(t) = per.get_mut(s.as_str()) {
            t.open_queries += 1;
            total.open_queries += 1;
        }
    }
    let rows = sites.iter().filter_map(|s| per.remove(s.as_str()).map(|t| t.row(s.clone()))).collect();
    (rows, total.row("all".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn visit(site: &str) -> DashboardVisit {
        DashboardVisit { site_id: site.into(), due: true, ..Default::default() }
    }

    #[test]
    fn counts_and_medians_per_site() {
        let sites = vec!["101".to_string(), "102".to_string(), "201".to_string()];
        let subjects: Vec<String> = ["101", "101", "102", "999"].iter().map(|s| s.to_string()).collect();
        let visits = vec![
            // Received, decided after 10 h, passed, read 24 h after the pass.
            DashboardVisit {
                received_at: Some(0),
                first_decision_at: Some(10 * H),
                qc_passed: true,
                qc_passed_at: Some(12 * H),
                read_at: Some(36 * H),
                ..visit("101")
            },
            // Received, decided after 20 h (rejected), not passed.
            DashboardVisit { received_at: Some(100 * H), first_decision_at: Some(120 * H), ..visit("101") },
            // Received early (window not open): expected all the same; no decision yet.
            DashboardVisit { due: false, received_at: Some(5 * H), ..visit("101") },
            // Due, nothing yet.
            visit("101"),
            // Not due and nothing: not expected.
            DashboardVisit { due: false, ..visit("102") },
            // Clock skew: a decision before the images is left out of the median.
            DashboardVisit { received_at: Some(10 * H), first_decision_at: Some(9 * H), ..visit("102") },
            // A site outside the list is ignored.
            DashboardVisit { received_at: Some(0), ..visit("999") },
        ];
        let queries: Vec<String> = ["101", "102", "102", "999"].iter().map(|s| s.to_string()).collect();
        let (rows, total) = site_dashboard(&sites, &subjects, &visits, &queries);
        assert_eq!(rows.iter().map(|r| r.site_id.as_str()).collect::<Vec<_>>(), ["101", "102", "201"]);
        let a = &rows[0];
        assert_eq!(
            (a.subjects, a.visits_expected, a.visits_received, a.visits_qc_passed, a.visits_read),
            (2, 4, 3, 1, 1)
        );
        assert_eq!(a.open_queries, 1);
        assert_eq!(a.scan_to_qc_median_hours, Some(15.0));
        assert_eq!(a.qc_to_read_median_hours, Some(24.0));
        let b = &rows[1];
        assert_eq!((b.subjects, b.visits_expected, b.visits_received, b.open_queries), (1, 1, 1, 2));
        assert_eq!(b.scan_to_qc_median_hours, None);
        let c = &rows[2];
        assert_eq!((c.subjects, c.visits_expected, c.open_queries, c.scan_to_qc_median_hours), (0, 0, 0, None));
        assert_eq!(
            (total.site_id.as_str(), total.subjects, total.visits_expected, total.open_queries),
            ("all", 3, 5, 3)
        );
        assert_eq!(total.scan_to_qc_median_hours, Some(15.0));
    }
}
