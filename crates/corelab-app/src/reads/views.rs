//! What readers and adjudicators are shown: blinded types of their own. They have no field for a
//! site, an arm, a subject ID, a name, a scan date or another reader's work, so none can leak by
//! a forgotten filter. Timepoints are labelled by the charter's blinding settings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use corelab_domain::charter::TimepointLabels;
use corelab_domain::response::{Flag, Response, SignedTenths, Tenths, TimepointResult};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::measured::{LvefResultView, MsResultView};
use crate::signatures::SignatureView;

/// A series of de-identified images, for the viewer.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedSeries {
    pub series_instance_uid: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_count: i64,
}

/// A de-identified study of a timepoint.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedStudy {
    pub study_instance_uid: String,
    pub series: Vec<BlindedSeries>,
}

/// The engine's result at a timepoint, without its day.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_sum_mm: Option<Tenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum_mm: Option<Tenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_sum_mm: Option<Tenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_response: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_target_response: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_lesions: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nadir_ref_mm: Option<Tenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pct_change_from_baseline: Option<SignedTenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pct_change_from_nadir: Option<SignedTenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_lesion_target_sum_mm: Option<Tenths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ne_reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// LVEF reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvef: Option<LvefResultView>,
    /// MS MRI reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<MsResultView>,
}

impl BlindedResult {
    pub fn baseline(sum: Option<Tenths>) -> Self {
        BlindedResult {
            baseline_sum_mm: sum,
            sum_mm: None,
            partial_sum_mm: None,
            target_response: None,
            non_target_response: None,
            new_lesions: None,
            overall: None,
            nadir_ref_mm: None,
            pct_change_from_baseline: None,
            pct_change_from_nadir: None,
            new_lesion_target_sum_mm: None,
            ne_reason: None,
            flags: Vec::new(),
            lvef: None,
            ms: None,
        }
    }

    /// The result of an LVEF or MS read.
    pub fn measured(lvef: Option<LvefResultView>, ms: Option<MsResultView>) -> Self {
        BlindedResult { lvef, ms, ..BlindedResult::baseline(None) }
    }

    pub fn follow_up(baseline_sum: Option<Tenths>, t: &TimepointResult) -> Self {
        BlindedResult {
            baseline_sum_mm: baseline_sum,
            sum_mm: t.sum_mm,
            partial_sum_mm: t.partial_sum_mm,
            target_response: Some(t.target_response),
            non_target_response: Some(t.non_target_response),
            new_lesions: Some(t.new_lesions),
            overall: Some(t.overall),
            nadir_ref_mm: t.nadir_ref_mm,
            pct_change_from_baseline: t.pct_change_from_baseline,
            pct_change_from_nadir: t.pct_change_from_nadir,
            new_lesion_target_sum_mm: t.new_lesion_target_sum_mm,
            ne_reason: t.ne_reason.clone(),
            flags: t.flags.clone(),
            lvef: None,
            ms: None,
        }
    }
}

/// One of the reader's own tasks as listed.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedTaskSummary {
    pub task_id: Uuid,
    pub case_code: String,
    pub timepoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_from_baseline: Option<i64>,
    /// "baseline" or "follow_up".
    pub kind: &'static str,
    /// waiting (an earlier timepoint is not submitted yet), open, draft, submitted.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// When the task was given to the reader (a workflow time, not a scan date).
    pub assigned_at: Option<DateTime<Utc>>,
    /// When the reader last saved a draft or submitted a version of this task.
    pub last_saved_at: Option<DateTime<Utc>>,
}

/// A submitted version of a read.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedReadVersion {
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub assessment: Value,
    pub result: Option<BlindedResult>,
    pub signatures: Vec<SignatureView>,
}

/// A timepoint of a case with a read of it.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedTimepoint {
    pub timepoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_from_baseline: Option<i64>,
    pub kind: &'static str,
    pub version: i64,
    pub assessment: Value,
    pub result: Option<BlindedResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<BlindedStudy>,
}

/// A read task opened by its reader: the timepoint's images, the reader's draft or submitted
/// versions, and the reader's own earlier timepoints of the case.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedReadCase {
    pub task_id: Uuid,
    /// The trial, which the viewer names on its DICOMweb reads (`?trial=`); readers know it.
    pub trial_id: Uuid,
    pub case_code: String,
    pub criteria: String,
    pub timepoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_from_baseline: Option<i64>,
    pub kind: &'static str,
    pub state: String,
    pub images: Vec<BlindedStudy>,
    pub draft: Option<Value>,
    /// Submitted versions, oldest first; the last is in force.
    pub versions: Vec<BlindedReadVersion>,
    /// The reader's own submitted reads of the case's other timepoints, in reading order.
    pub earlier: Vec<BlindedTimepoint>,
}

/// One reader's complete assessment, as the adjudicator sees it ("reader_1" / "reader_2", no name).
#[derive(Debug, Clone, Serialize)]
pub struct BlindedAssessment {
    pub timepoints: Vec<BlindedTimepoint>,
    /// RECIST/iRECIST reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_overall_response: Option<Response>,
    /// The timepoint progression is dated to, if any.
    pub progression_at: Option<String>,
    pub first_response_at: Option<String>,
}

/// A variable on which the readers differ.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedDisagreement {
    /// The key to decide on in a per-variable decision, e.g. `progression_date` or
    /// `overall_response:TP2`.
    pub variable: String,
    pub reader_1: Option<String>,
    pub reader_2: Option<String>,
}

/// A timepoint's images, shown once for both readers.
#[derive(Debug, Clone, Serialize)]
pub struct BlindedTimepointImages {
    pub timepoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_from_baseline: Option<i64>,
    pub kind: &'static str,
    pub images: Vec<BlindedStudy>,
}

/// An adjudication as the adjudicator sees it: both complete assessments side by side.
#[derive(Debug, Clone, Serialize)]
pub struct AdjudicationCase {
    pub adjudication_id: Uuid,
    pub trial_id: Uuid,
    pub case_code: String,
    pub criteria: String,
    /// open, decided, superseded
    pub state: String,
    /// per_subject, or per_variable (the adjudicator may also choose per subject)
    pub choice: String,
    pub timepoints: Vec<BlindedTimepointImages>,
    pub disagreements: Vec<BlindedDisagreement>,
    pub reader_1: BlindedAssessment,
    pub reader_2: BlindedAssessment,
    pub decision: Option<Value>,
    pub rationale: Option<String>,
    pub signatures: Vec<SignatureView>,
}

/// An adjudication in the adjudicator's list.
#[derive(Debug, Clone, Serialize)]
pub struct AdjudicationSummary {
    pub adjudication_id: Uuid,
    pub case_code: String,
    pub state: String,
    pub variables: Vec<String>,
}

/// How one timepoint is shown to blinded roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub label: String,
    pub days: Option<i64>,
    pub baseline: bool,
}

impl Label {
    pub fn kind(&self) -> &'static str {
        if self.baseline { "baseline" } else { "follow_up" }
    }
}

/// Labels for a case's timepoints given in reading order as (visit id, baseline, scan day):
/// pseudo-timepoints TP1, TP2, ... (baseline included, no days), the charter's visit labels, or
/// days from baseline, as the charter's blinding says.
pub fn labels(
    mode: TimepointLabels,
    visits: &[(String, bool, i64)],
    visit_labels: &HashMap<String, String>,
) -> HashMap<String, Label> {
    visits
        .iter()
        .enumerate()
        .map(|(i, (visit, baseline, day))| {
            let (label, days) = match mode {
                TimepointLabels::Pseudo => (format!("TP{}", i + 1), None),
                TimepointLabels::VisitLabel => (
                    visit_labels.get(visit).cloned().unwrap_or_else(|| format!("Unscheduled ({visit})")),
                    (!baseline).then_some(*day),
                ),
                TimepointLabels::DaysFromBaseline => {
                    if *baseline {
                        ("Baseline".to_string(), None)
                    } else {
                        (format!("Day {day}"), Some(*day))
                    }
                }
            };
            (visit.clone(), Label { label, days, baseline: *baseline })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_blinding_setting() {
        let visits = vec![("BL".to_string(), true, -11), ("W8".into(), false, 56), ("W16".into(), false, 112)];
        let names: HashMap<String, String> =
            [("BL".to_string(), "Baseline".to_string()), ("W8".into(), "Week 8".into())].into();
        let p = labels(TimepointLabels::Pseudo, &visits, &names);
        assert_eq!(p["BL"], Label { label: "TP1".into(), days: None, baseline: true });
        assert_eq!(p["W16"], Label { label: "TP3".into(), days: None, baseline: false });
        let v = labels(TimepointLabels::VisitLabel, &visits, &names);
        assert_eq!(v["W8"], Label { label: "Week 8".into(), days: Some(56), baseline: false });
        assert_eq!(v["W16"].label, "Unscheduled (W16)");
        let d = labels(TimepointLabels::DaysFromBaseline, &visits, &names);
        assert_eq!(d["BL"].label, "Baseline");
        assert_eq!(d["W16"], Label { label: "Day 112".into(), days: Some(112), baseline: false });
    }
}
