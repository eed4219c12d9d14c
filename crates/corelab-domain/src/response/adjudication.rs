//! Do two primary readers disagree on what the charter adjudicates? (domain.md section 3, "2 + 1")
//!
//! The adjudicator then chooses one reader's full assessment; this module only decides whether
//! adjudication is needed and lists the variables in disagreement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::case::{CaseResult, Response};

/// The charter's adjudication variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdjudicationTrigger {
    /// Overall response at any timepoint (most sensitive, highest workload).
    OverallResponseAnyTimepoint,
    /// PD vs no PD, or PD at different timepoints (PFS/TTP trials).
    ProgressionDate,
    /// Best overall response category (ORR trials).
    BestOverallResponse,
    /// Date of first response (for duration of response), often paired with BOR.
    FirstResponseDate,
}

/// One timepoint of a reader's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimepointOutcome {
    pub days_from_baseline: u32,
    pub overall: Response,
}

/// What adjudication compares from one reader's locked read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderOutcome {
    pub timepoints: Vec<TimepointOutcome>,
    pub best_overall_response: Response,
    pub progression_day_from_baseline: Option<u32>,
    pub first_response_day_from_baseline: Option<u32>,
}

impl From<&CaseResult> for ReaderOutcome {
    fn from(r: &CaseResult) -> Self {
        ReaderOutcome {
            timepoints: r
                .per_timepoint
                .iter()
                .map(|t| TimepointOutcome { days_from_baseline: t.days_from_baseline, overall: t.overall })
                .collect(),
            best_overall_response: r.best_overall_response,
            progression_day_from_baseline: r.progression_day_from_baseline,
            first_response_day_from_baseline: r.first_response_day_from_baseline,
        }
    }
}

/// One variable on which the readers differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "variable", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disagreement {
    /// Different overall response at a timepoint; `None` when a reader has no assessment that day.
    OverallResponse {
        days_from_baseline: u32,
        reader_1: Option<Response>,
        reader_2: Option<Response>,
    },
    /// Progression vs none, or progression on different days.
    ProgressionDate {
        reader_1: Option<u32>,
        reader_2: Option<u32>,
    },
    BestOverallResponse {
        reader_1: Response,
        reader_2: Response,
    },
    FirstResponseDate {
        reader_1: Option<u32>,
        reader_2: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjudicationDecision {
    pub required: bool,
    /// Only the variables the charter adjudicates, in trigger order then by day.
    pub disagreements: Vec<Disagreement>,
}

/// Compares two readers on the charter's triggers. Timepoints are paired by day from baseline.
pub fn adjudication_decision(
    reader_1: &ReaderOutcome,
    reader_2: &ReaderOutcome,
    triggers: &[AdjudicationTrigger],
) -> AdjudicationDecision {
    let mut triggers: Vec<AdjudicationTrigger> = triggers.to_vec();
    triggers.sort();
    triggers.dedup();
    let mut out = Vec::new();
    for trigger in triggers {
        match trigger {
            AdjudicationTrigger::OverallResponseAnyTimepoint => {
                let mut by_day: BTreeMap<u32, (Option<Response>, Option<Response>)> = BTreeMap::new();
                for t in &reader_1.timepoints {
                    by_day.entry(t.days_from_baseline).or_default().0 = Some(t.overall);
                }
                for t in &reader_2.timepoints {
                    by_day.entry(t.days_from_baseline).or_default().1 = Some(t.overall);
                }
                for (day, (a, b)) in by_day {
                    if a != b {
                        out.push(Disagreement::OverallResponse { days_from_baseline: day, reader_1: a, reader_2: b });
                    }
                }
            }
            AdjudicationTrigger::ProgressionDate => {
                if reader_1.progression_day_from_baseline != reader_2.progression_day_from_baseline {
                    out.push(Disagreement::ProgressionDate {
                        reader_1: reader_1.progression_day_from_baseline,
                        reader_2: reader_2.progression_day_from_baseline,
                    });
                }
            }
            AdjudicationTrigger::BestOverallResponse => {
                if reader_1.best_overall_response != reader_2.best_overall_response {
                    out.push(Disagreement::BestOverallResponse {
                        reader_1: reader_1.best_overall_response,
                        reader_2: reader_2.best_overall_response,
                    });
                }
            }
            AdjudicationTrigger::FirstResponseDate => {
                if reader_1.first_response_day_from_baseline != reader_2.first_response_day_from_baseline {
                    out.push(Disagreement::FirstResponseDate {
                        reader_1: reader_1.first_response_day_from_baseline,
                        reader_2: reader_2.first_response_day_from_baseline,
                    });
                }
            }
        }
    }
    AdjudicationDecision { required: !out.is_empty(), disagreements: out }
}
