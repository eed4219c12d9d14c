//! Response criteria engines: RECIST 1.1, iRECIST, LVEF, MS MRI, plus the baseline selection
//! rules, reader adjudication and agreement metrics of a blinded independent central review.
//!
//! Everything here is pure: values in, values out. Tumour thresholds (20 %, 30 %, 5 mm) are
//! decided on integers in tenths of a millimetre. The rules and every interpretation choice are
//! described in docs/recist.md; domain.md sections 1, 2, 3, 8 and 9 are the source.
//!
//! Entry points:
//! * [`evaluate_json`]: the JSON case format of `corelab recist evaluate FILE.json`.
//! * [`parse_cases`] + [`evaluate_case`]: the same, typed.
//! * [`best_overall_response`]: BOR from timepoint responses alone (e.g. accepted reads).
//! * [`selection::check_baseline_selection`], [`adjudication::adjudication_decision`],
//!   [`agreement::cohen_kappa`], [`agreement::read_metrics`], [`lvef`], [`ms::evaluate_ms`].

pub mod adjudication;
pub mod agreement;
mod bor;
mod case;
mod decimal;
mod irecist;
mod json;
pub mod lvef;
pub mod ms;
mod recist;
pub mod selection;

pub use bor::{BestOverall, best_overall_response};
pub use case::{
    Baseline, BaselineNonTarget, BaselineTarget, CaseInput, CaseResult, Criteria, Flag, NewLesion, NewLesionCategory,
    NonTargetStatus, Protocol, Response, ResponseError, TargetMeasurement, Timepoint, TimepointResult,
};
pub use decimal::{DecimalError, Hundredths, SignedTenths, Tenths};

/// Checks and evaluates one case under its criteria.
pub fn evaluate_case(case: &CaseInput) -> Result<CaseResult, ResponseError> {
    let label = case_label_for(case, 0);
    evaluate_labelled(case, &label)
}

fn case_label_for(case: &CaseInput, index: usize) -> String {
    case::case_label(case.id.as_deref(), index)
}

fn evaluate_labelled(case: &CaseInput, label: &str) -> Result<CaseResult, ResponseError> {
    case::validate(case, label)?;
    Ok(match case.criteria {
        Criteria::Recist11 => recist::evaluate(case),
        Criteria::IRecist => irecist::evaluate(case),
    })
}

/// Parses the JSON case format: a case object or an array of case objects.
pub fn parse_cases(input: &str) -> Result<Vec<CaseInput>, ResponseError> {
    json::parse_input(input).map(|(cases, _)| cases)
}

/// Evaluates the JSON case format. A single case object gives a single result object; an array
/// gives an array of results in the same order. The first invalid case stops evaluation with an
/// error naming the case, the timepoint and the key.
pub fn evaluate_json(input: &str) -> Result<serde_json::Value, ResponseError> {
    let (cases, single) = json::parse_input(input)?;
    let mut results = Vec::with_capacity(cases.len());
    for (index, case) in cases.iter().enumerate() {
        results.push(evaluate_labelled(case, &case_label_for(case, index))?);
    }
    let value = if single { results.first().map(serde_json::to_value) } else { Some(serde_json::to_value(&results)) };
    match value {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(ResponseError::Output(e.to_string())),
        None => Err(ResponseError::Output("no case was evaluated".to_string())),
    }
}
