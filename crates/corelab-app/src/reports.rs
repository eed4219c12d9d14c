//! Reports (issue 12 part 3): site performance, reader performance, tumour response (waterfall and
//! spider plots) and the enrolment and imaging timeline of a trial, with their SVG plots. The
//! numbers come from `corelab_domain::reports`; this module gathers the records and decides who
//! sees what:
//!
//! | report | trial manager, monitor | sponsor | QC reviewer | site user | reader, adjudicator |
//! |---|---|---|---|---|---|
//! | site performance | all sites | all sites | all sites | own sites only, no total | 403 |
//! | reader performance | readers by name | readers as "Reader A", "Reader B" | 403 | 403 | 403 |
//! | response | subjects by ID | subjects numbered, no IDs | 403 | 403 | 403 |
//! | timeline | subjects by ID | subjects numbered, no IDs | 403 | 403 | 403 |
//!
//! No report shows a treatment arm. Denials are audited like every other (`App::require`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use corelab_domain::access::Role;
use corelab_domain::charter::Date;
use corelab_domain::reports::{
    EvaluationSummary, ImagingEvent, QueryTimes, ResponseSummary, SiteReport, SubjectSums, TimelineSubject,
    TimepointSum, VisitQcHistory, enrolment_curve, plot, response_summary, site_performance,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::access::TrialAccess;
use crate::reads::ReadMetricsView;
use crate::{Actor, App, AppError};

/// The reports corelab makes, by their URL name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReportKind {
    SitePerformance,
    ReaderPerformance,
    Response,
    Timeline,
}

impl ReportKind {
    pub const ALL: [ReportKind; 4] =
        [ReportKind::SitePerformance, ReportKind::ReaderPerformance, ReportKind::Response, ReportKind::Timeline];

    pub fn parse(name: &str) -> Option<ReportKind> {
        ReportKind::ALL.into_iter().find(|k| k.slug() == name)
    }
    pub fn slug(self) -> &'static str {
        match self {
            ReportKind::SitePerformance => "site-performance",
            ReportKind::ReaderPerformance => "reader-performance",
            ReportKind::Response => "response",
            ReportKind::Timeline => "timeline",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            ReportKind::SitePerformance => "Site performance",
            ReportKind::ReaderPerformance => "Reader performance",
            ReportKind::Response => "Tumour response",
            ReportKind::Timeline => "Enrolment and imaging timeline",
        }
    }
    /// The roles that may see the report at all.
    fn roles(self) -> &'static [Role] {
        match self {
            ReportKind::SitePerformance => {
                &[Role::TrialManager, Role::Monitor, Role::Sponsor, Role::QcReviewer, Role::SiteUser]
            }
            _ => &[Role::TrialManager, Role::Monitor, Role::Sponsor],
        }
    }
}

/// What every report carries: the trial, when it was made, and for whom.
#[derive(Debug, Clone, Serialize)]
pub struct ReportHead {
    pub kind: ReportKind,
    pub trial_id: Uuid,
    pub protocol_id: String,
    pub trial_name: String,
    pub sponsor: String,
    pub generated_at: DateTime<Utc>,
    /// The role the report was made for (`trial_manager`, `sponsor`, ...).
    pub audience: String,
    /// Subjects and readers are shown without identities (sponsors).
    pub pseudonymised: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SitePerformanceReport {
    pub head: ReportHead,
    pub report: SiteReport,
    /// False for site users: they see their own sites' rows and no trial total.
    pub show_total: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReaderPerformanceReport {
    pub head: ReportHead,
    pub metrics: ReadMetricsView,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseReport {
    pub head: ReportHead,
    pub criteria: Option<String>,
    pub summary: ResponseSummary,
    pub waterfall_svg: String,
    pub spider_svg: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    pub head: ReportHead,
    pub enrolled: u64,
    pub subjects: Vec<TimelineSubject>,
    pub enrolment_svg: String,
    pub timeline_svg: String,
}

/// Any report.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    SitePerformance(SitePerformanceReport),
    ReaderPerformance(ReaderPerformanceReport),
    Response(ResponseReport),
    Timeline(TimelineReport),
}

impl Report {
    pub fn head(&self) -> &ReportHead {
        match self {
            Report::SitePerformance(r) => &r.head,
            Report::ReaderPerformance(r) => &r.head,
            Report::Response(r) => &r.head,
            Report::Timeline(r) => &r.head,
        }
    }
}

fn to_date(d: chrono::NaiveDate) -> Date {
    let days = (d - chrono::NaiveDate::default()).num_days();
    Date::EPOCH.add_days(i32::try_from(days).unwrap_or(0))
}

/// Sum of diameters in tenths of a millimetre from a JSON number of millimetres.
fn tenths(v: &Value) -> Option<i64> {
    let mm = v.as_f64()?;
    #[allow(clippy::cast_possible_truncation)]
    Some((mm * 10.0).round() as i64)
}

impl App {
    /// Any report by kind, for the actor.
    pub async fn report(&self, actor: &Actor, trial_id: Uuid, kind: ReportKind) -> Result<Report, AppError> {
        Ok(match kind {
            ReportKind::SitePerformance => {
                Report::SitePerformance(self.site_performance_report(actor, trial_id).await?)
            }
            ReportKind::ReaderPerformance => {
                Report::ReaderPerformance(self.reader_performance_report(actor, trial_id).await?)
            }
            ReportKind::Response => Report::Response(self.response_report(actor, trial_id).await?),
            ReportKind::Timeline => Report::Timeline(self.timeline_report(actor, trial_id).await?),
        })
    }

    /// The reports the actor may open in the trial; 403 (audited) when none.
    pub async fn available_reports(&self, actor: &Actor, trial_id: Uuid) -> Result<Vec<ReportKind>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let kinds: Vec<ReportKind> =
            ReportKind::ALL.into_iter().filter(|k| access.role_among(k.roles()).is_some()).collect();
        if kinds.is_empty() {
            let roles = ReportKind::SitePerformance.roles();
            self.require(actor, &access, roles, "see reports", "report", "*").await?;
        }
        Ok(kinds)
    }

    async fn report_access(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        kind: ReportKind,
    ) -> Result<(TrialAccess, ReportHead), AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = self
            .require(actor, &access, kind.roles(), &format!("see the {} report", kind.slug()), "report", kind.slug())
            .await?;
        // Identities only for those who see every site's records.
        let pseudonymised = !access.sees_all_sites();
        let t = &access.trial;
        let head = ReportHead {
            kind,
            trial_id,
            protocol_id: t.protocol_id.clone(),
            trial_name: t.name.clone(),
            sponsor: t.sponsor.clone(),
            generated_at: self.clock().now(),
            audience: role,
            pseudonymised,
        };
        Ok((access, head))
    }

    /// Site performance: QC first-pass rate, query turnaround and deviations by QC rule, per site.
    pub async fn site_performance_report(
        &self,
        actor: &Actor,
        trial_id: Uuid,
    ) -> Result<SitePerformanceReport, AppError> {
        let (access, mut head) = self.report_access(actor, trial_id, ReportKind::SitePerformance).await?;
        // Per-site aggregates hold no subject: nothing to pseudonymise.
        head.pseudonymised = false;
        let mut tx = self.db().read().await?;
        let sites: Vec<String> = tx
            .sites(trial_id)
            .await?
            .into_iter()
            .map(|s| s.site_id)
            .filter(|s| access.sees_all_sites() || access.has(Role::Sponsor) || access.can_see_site(s))
            .collect();
        let visible = |site: &str| sites.iter().any(|s| s == site);
        let mut reviews: HashMap<(Uuid, String), Vec<String>> = HashMap::new();
        for r in tx.trial_reviews(trial_id).await? {
            reviews.entry((r.subject_id, r.visit_id)).or_default().push(r.outcome);
        }
        let mut visits: BTreeMap<(Uuid, String), VisitQcHistory> = BTreeMap::new();
        for e in tx.trial_evaluations(trial_id).await? {
            if !visible(&e.site_id) {
                continue;
            }
            let findings: Value = serde_json::from_str(&e.findings).map_err(AppError::internal)?;
            let error_rules: Vec<String> = findings
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|f| f["severity"] == "error")
                        .filter_map(|f| f["rule"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let key = (e.subject_id, e.visit_id.clone());
            let v = visits.entry(key.clone()).or_insert_with(|| VisitQcHistory {
                site_id: e.site_id.clone(),
                evaluations: Vec::new(),
                review_outcomes: reviews.get(&key).cloned().unwrap_or_default(),
            });
            v.evaluations.push(EvaluationSummary { verdict: e.verdict, complete: e.complete, error_rules });
        }
        let queries: Vec<QueryTimes> = tx
            .trial_queries(trial_id)
            .await?
            .into_iter()
            .filter(|q| visible(&q.site_id))
            .map(|q| QueryTimes {
                site_id: q.site_id,
                #[allow(clippy::cast_precision_loss)]
                open_hours: (q.state == "closed")
                    .then_some(q.closed_at)
                    .flatten()
                    .map(|c| (c - q.created_at).num_milliseconds() as f64 / 3_600_000.0),
            })
            .collect();
        let visits: Vec<VisitQcHistory> = visits.into_values().collect();
        let report = site_performance(&sites, &visits, &queries);
        Ok(SitePerformanceReport { head, report, show_total: access.sees_all_sites() || access.has(Role::Sponsor) })
    }

    /// Reader performance: adjudication rate, adjudicator agreement, disagreement index and
    /// turnaround per reader, Cohen's kappa per reader pair (the read metrics of docs/reads.md).
    pub async fn reader_performance_report(
        &self,
        actor: &Actor,
        trial_id: Uuid,
    ) -> Result<ReaderPerformanceReport, AppError> {
        let (_, head) = self.report_access(actor, trial_id, ReportKind::ReaderPerformance).await?;
        let mut metrics = self.compute_read_metrics(trial_id).await?;
        if head.pseudonymised {
            let mut alias: BTreeMap<String, String> = BTreeMap::new();
            let names: BTreeSet<String> = metrics.per_reader.iter().map(|r| r.reader.clone()).collect();
            for (i, n) in names.into_iter().enumerate() {
                alias.insert(n, format!("Reader {}", letter(i)));
            }
            let rename = |n: &str| alias.get(n).cloned().unwrap_or_else(|| "Reader".into());
            for r in &mut metrics.per_reader {
                r.reader = rename(&r.reader);
                r.display_name = String::new();
            }
            for k in &mut metrics.kappa {
                k.reader_a = rename(&k.reader_a);
                k.reader_b = rename(&k.reader_b);
            }
            metrics.per_reader.sort_by(|a, b| a.reader.cmp(&b.reader));
        }
        Ok(ReaderPerformanceReport { head, metrics })
    }

    /// The accepted results of the trial as the response report needs them, by subject.
    async fn accepted_sums(&self, trial_id: Uuid) -> Result<Vec<(Uuid, String, SubjectSums, Vec<String>)>, AppError> {
        let mut tx = self.db().read().await?;
        let mut out = Vec::new();
        for case in tx.trial_read_cases(trial_id).await? {
            let history = tx.accepted_results(case.id).await?;
            let Some(last) = history.last() else { continue };
            let subject = tx.subject(case.subject_id).await?.ok_or_else(|| AppError::NotFound("no subject".into()))?;
            let result: Value = serde_json::from_str(&last.result).map_err(AppError::internal)?;
            let mut baseline = None;
            let mut timepoints = Vec::new();
            let mut read_visits = Vec::new();
            for t in result["timepoints"].as_array().into_iter().flatten() {
                read_visits.push(t["visit_id"].as_str().unwrap_or_default().to_string());
                if t["baseline"].as_bool() == Some(true) {
                    baseline = tenths(&t["baseline_sum_mm"]);
                } else {
                    timepoints.push(TimepointSum {
                        days_from_baseline: t["days_from_baseline"]
                            .as_u64()
                            .and_then(|d| u32::try_from(d).ok())
                            .unwrap_or(0),
                        sum_tenths: tenths(&t["sum_mm"]),
                        overall: t["overall"].as_str().unwrap_or("NE").to_string(),
                    });
                }
            }
            let bor = result["best_overall_response"]["value"].as_str().unwrap_or("NE").to_string();
            let sums = SubjectSums {
                label: subject.subject_id.clone(),
                baseline_sum_tenths: baseline,
                timepoints,
                best_overall_response: bor,
            };
            out.push((subject.id, result["criteria"].as_str().unwrap_or_default().to_string(), sums, read_visits));
        }
        out.sort_by(|a, b| a.2.label.cmp(&b.2.label));
        Ok(out)
    }

    /// Tumour response: waterfall of best % change in the sum of diameters and spider plot of %
    /// change over time, from each subject's accepted result.
    pub async fn response_report(&self, actor: &Actor, trial_id: Uuid) -> Result<ResponseReport, AppError> {
        let (_, head) = self.report_access(actor, trial_id, ReportKind::Response).await?;
        let accepted = self.accepted_sums(trial_id).await?;
        let criteria = accepted.first().map(|a| a.1.clone()).filter(|c| !c.is_empty());
        let mut subjects: Vec<SubjectSums> = accepted.into_iter().map(|a| a.2).collect();
        if head.pseudonymised {
            for (i, s) in subjects.iter_mut().enumerate() {
                s.label = format!("#{}", i + 1);
            }
        }
        let summary = response_summary(&subjects);
        let waterfall_svg =
            plot::waterfall("waterfall", "Best change in sum of target diameters (waterfall)", &summary.waterfall);
        let spider_svg =
            plot::spider("spider", "Change in sum of target diameters over time (spider)", &summary.spider);
        Ok(ResponseReport { head, criteria, summary, waterfall_svg, spider_svg })
    }

    /// Enrolment over time and each subject's imaging timeline (enrolment, images received, QC
    /// state, accepted read).
    pub async fn timeline_report(&self, actor: &Actor, trial_id: Uuid) -> Result<TimelineReport, AppError> {
        let (_, head) = self.report_access(actor, trial_id, ReportKind::Timeline).await?;
        let read: HashMap<Uuid, BTreeSet<String>> = self
            .accepted_sums(trial_id)
            .await?
            .into_iter()
            .map(|(subject, _, _, visits)| (subject, visits.into_iter().collect()))
            .collect();
        let mut tx = self.db().read().await?;
        let states: HashMap<(Uuid, String), String> =
            tx.trial_visit_qc(trial_id).await?.into_iter().map(|v| ((v.subject_id, v.visit_id), v.state)).collect();
        let mut studies: HashMap<(Uuid, String), DateTime<Utc>> = HashMap::new();
        for s in tx.trial_studies(trial_id).await? {
            let at = studies.entry((s.subject_id, s.visit_id)).or_insert(s.first_received_at);
            if s.first_received_at < *at {
                *at = s.first_received_at;
            }
        }
        let mut subjects = tx.subjects(trial_id).await?;
        subjects.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.subject_id.cmp(&b.subject_id)));
        let mut rows = Vec::new();
        for (i, s) in subjects.iter().enumerate() {
            // In the order the images arrived.
            let mut received: Vec<(&DateTime<Utc>, &String)> = studies
                .iter()
                .filter(|((subject, _), _)| *subject == s.id)
                .map(|((_, visit), at)| (at, visit))
                .collect();
            received.sort();
            let events: Vec<ImagingEvent> = received
                .into_iter()
                .map(|(at, visit)| ImagingEvent {
                    visit_id: visit.clone(),
                    date: to_date(at.date_naive()),
                    state: states.get(&(s.id, visit.clone())).cloned().unwrap_or_else(|| "received".into()),
                    read: read.get(&s.id).is_some_and(|v| v.contains(visit)),
                })
                .collect();
            rows.push(TimelineSubject {
                label: if head.pseudonymised { format!("#{}", i + 1) } else { s.subject_id.clone() },
                enrolled: to_date(s.created_at.date_naive()),
                events,
            });
        }
        let today = to_date(self.clock().now().date_naive());
        let curve = enrolment_curve(&rows.iter().map(|r| r.enrolled).collect::<Vec<_>>());
        let enrolment_svg = plot::enrolment("enrolment", "Cumulative enrolment", &curve, today);
        let timeline_svg =
            plot::imaging_timeline("imaging", "Imaging timeline (images received at the core lab)", &rows, today);
        Ok(TimelineReport { head, enrolled: rows.len() as u64, subjects: rows, enrolment_svg, timeline_svg })
    }
}

/// A, B, ..., Z, AA, AB, ...
fn letter(i: usize) -> String {
    let mut n = i;
    let mut s = Vec::new();
    loop {
        s.push(char::from(b'A' + u8::try_from(n % 26).unwrap_or(0)));
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_round_trip() {
        for k in ReportKind::ALL {
            assert_eq!(ReportKind::parse(k.slug()), Some(k));
        }
        assert_eq!(ReportKind::parse("nope"), None);
        assert_eq!([letter(0), letter(1), letter(25), letter(26), letter(27)], ["A", "B", "Z", "AA", "AB"]);
    }
}
