//! Report computations (issue 12, part 3): site performance, reader performance inputs, tumour
//! response over time (waterfall and spider), enrolment and the imaging timeline; and the SVG
//! plots of them ([`plot`]). Pure: records in, numbers and SVG text out. docs/reports.md describes
//! every definition.

mod dashboard;
pub mod plot;
mod response;
mod site;
mod stats;
mod timeline;

pub use dashboard::{DashboardVisit, SiteDashboard, site_dashboard};
pub use response::{
    ResponseSummary, SpiderLine, SpiderPoint, SubjectSums, TimepointSum, WaterfallBar, pct_change_tenths,
    response_summary,
};
pub use site::{EvaluationSummary, QueryTimes, SitePerformance, SiteReport, VisitQcHistory, site_performance};
pub use stats::median;
pub use timeline::{EnrolmentPoint, ImagingEvent, TimelineSubject, enrolment_curve};
