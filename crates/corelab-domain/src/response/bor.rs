//! Best overall response (domain.md 1.8, paper Table 3), shared by RECIST 1.1 and iRECIST.

use serde::{Deserialize, Serialize};

use super::case::{Criteria, Protocol, Response, ResponseError};

/// What a timepoint response means for BOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BorClass {
    Cr,
    Pr,
    /// SD, or NON-CR/NON-PD for non-target-only disease (iSD, NON-iCR/NON-iUPD under iRECIST).
    Sd,
    /// iRECIST unconfirmed progression.
    Iupd,
    /// PD (RECIST 1.1) or iCPD: ends the BOR window.
    Pd,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BorOutcome {
    Cr,
    Pr,
    Sd,
    Pd,
    Iupd,
    Ne,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bor {
    pub outcome: BorOutcome,
    pub first_response_day: Option<u32>,
    pub notes: Vec<String>,
}

/// `window` holds (day, class) for the assessments that count: from the first up to and including
/// the first PD / iCPD.
pub(crate) fn best_overall(window: &[(u32, BorClass)], protocol: &Protocol) -> Bor {
    let mut notes = Vec::new();
    let sd_ok = |day: u32| day >= protocol.sd_min_days_from_baseline;

    let (response, first_response_day) = if protocol.confirmation_required {
        let cr = (0..window.len()).any(|i| confirmed(window, i, true, protocol));
        let first_pr = (0..window.len()).find(|&i| confirmed(window, i, false, protocol));
        let unconfirmed: Vec<u32> = window
            .iter()
            .enumerate()
            .filter(|(i, (_, c))| matches!(c, BorClass::Cr | BorClass::Pr) && !confirmed(window, *i, false, protocol))
            .map(|(_, (d, _))| *d)
            .collect();
        if !unconfirmed.is_empty() && !cr && first_pr.is_none() {
            notes.push(format!(
                "CR/PR at day(s) {} not confirmed by a CR/PR at least {} days later{}",
                join_days(&unconfirmed),
                protocol.confirmation_min_days,
                if protocol.confirmation_allow_ne_between {
                    " with only CR/PR/NE between"
                } else {
                    " with only CR/PR between"
                }
            ));
        }
        let first_day = first_pr.and_then(|i| window.get(i)).map(|(d, _)| *d);
        if cr {
            (Some(BorOutcome::Cr), first_day)
        } else if first_pr.is_some() {
            (Some(BorOutcome::Pr), first_day)
        } else {
            (None, None)
        }
    } else {
        let first = window.iter().find(|(_, c)| matches!(c, BorClass::Cr | BorClass::Pr)).map(|(d, _)| *d);
        if window.iter().any(|(_, c)| *c == BorClass::Cr) {
            (Some(BorOutcome::Cr), first)
        } else if window.iter().any(|(_, c)| *c == BorClass::Pr) {
            (Some(BorOutcome::Pr), first)
        } else {
            (None, None)
        }
    };
    if let Some(outcome) = response {
        return Bor { outcome, first_response_day, notes };
    }

    // SD-level: an SD, or with confirmation an unconfirmed CR/PR, at or after the SD minimum.
    let sd_candidates: Vec<u32> = window
        .iter()
        .filter(|(_, c)| match c {
            BorClass::Sd => true,
            BorClass::Cr | BorClass::Pr => protocol.confirmation_required,
            _ => false,
        })
        .map(|(d, _)| *d)
        .collect();
    if sd_candidates.iter().any(|&d| sd_ok(d)) {
        return Bor { outcome: BorOutcome::Sd, first_response_day: None, notes };
    }
    if !sd_candidates.is_empty() {
        notes.push(format!(
            "stable disease at day(s) {} is before the SD minimum of {} days from baseline",
            join_days(&sd_candidates),
            protocol.sd_min_days_from_baseline
        ));
    }
    let outcome = if window.iter().any(|(_, c)| *c == BorClass::Pd) {
        BorOutcome::Pd
    } else if window.iter().any(|(_, c)| *c == BorClass::Iupd) {
        BorOutcome::Iupd
    } else {
        BorOutcome::Ne
    };
    Bor { outcome, first_response_day: None, notes }
}

/// Is the response at `i` confirmed? `need_cr`: CR confirmed by a later CR with only CR between;
/// otherwise PR-level: CR/PR confirmed by a later CR/PR with only CR/PR between. NE may sit between
/// only when the protocol allows it. The confirming assessment is at least
/// `confirmation_min_days` after `i`.
fn confirmed(window: &[(u32, BorClass)], i: usize, need_cr: bool, protocol: &Protocol) -> bool {
    let Some(&(day_i, class_i)) = window.get(i) else {
        return false;
    };
    let level = |c: BorClass| {
        if need_cr { c == BorClass::Cr } else { matches!(c, BorClass::Cr | BorClass::Pr) }
    };
    if !level(class_i) {
        return false;
    }
    for &(day_j, class_j) in window.iter().skip(i + 1) {
        let at_level = level(class_j);
        if at_level && day_j.saturating_sub(day_i) >= protocol.confirmation_min_days {
            return true;
        }
        let may_sit_between = at_level || (class_j == BorClass::Ne && protocol.confirmation_allow_ne_between);
        if !may_sit_between {
            return false;
        }
    }
    false
}

fn join_days(days: &[u32]) -> String {
    days.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// BOR and dates derived from a sequence of timepoint responses alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestOverall {
    pub best_overall_response: Response,
    /// RECIST 1.1: the first PD. iRECIST: the first iUPD of the run of iUPD/NE assessments that
    /// ends in the first iCPD. No backdating for equivocal new lesions (that needs the lesions).
    pub progression_day_from_baseline: Option<u32>,
    pub first_response_day_from_baseline: Option<u32>,
    pub notes: Vec<String>,
}

/// Best overall response from timepoint responses `(days from baseline, overall response)`, e.g.
/// the accepted reads after adjudication or an investigator's responses. `has_target_disease`:
/// the subject had target lesions at baseline (SD) or non-target disease only (NON-CR/NON-PD).
pub fn best_overall_response(
    criteria: Criteria,
    has_target_disease: bool,
    timepoints: &[(u32, Response)],
    protocol: &Protocol,
) -> Result<BestOverall, ResponseError> {
    let err = |index: usize, day: u32, key: &str, message: String| ResponseError::Invalid {
        case: "(timepoint responses)".to_string(),
        timepoint: Some(super::case::timepoint_label(index, Some(day))),
        key: key.to_string(),
        message,
    };
    let mut classes = Vec::with_capacity(timepoints.len());
    let mut previous: Option<u32> = None;
    for (index, &(day, response)) in timepoints.iter().enumerate() {
        if day == 0 || previous.is_some_and(|p| day <= p) {
            return Err(err(index, day, "days_from_baseline", "days must be >= 1 and strictly increasing".to_string()));
        }
        previous = Some(day);
        let class = match (criteria, response) {
            (Criteria::Recist11, Response::Cr) | (Criteria::IRecist, Response::ICr) => BorClass::Cr,
            (Criteria::Recist11, Response::Pr) | (Criteria::IRecist, Response::IPr) if has_target_disease => {
                BorClass::Pr
            }
            (Criteria::Recist11, Response::Sd) | (Criteria::IRecist, Response::ISd) if has_target_disease => {
                BorClass::Sd
            }
            (Criteria::Recist11, Response::NonCrNonPd) | (Criteria::IRecist, Response::NonICrNonIUpd)
                if !has_target_disease =>
            {
                BorClass::Sd
            }
            (Criteria::Recist11, Response::Pd) | (Criteria::IRecist, Response::ICpd) => BorClass::Pd,
            (Criteria::IRecist, Response::IUpd) => BorClass::Iupd,
            (_, Response::Ne) => BorClass::Ne,
            _ => {
                return Err(err(
                    index,
                    day,
                    "overall",
                    format!(
                        "{response} is not an overall response of {} for {}",
                        criteria.as_str(),
                        if has_target_disease { "a subject with target disease" } else { "non-target disease only" }
                    ),
                ));
            }
        };
        classes.push((day, class));
    }
    let first_pd = classes.iter().position(|(_, c)| *c == BorClass::Pd);
    let window_end = first_pd.map_or(classes.len(), |i| i + 1);
    let window = classes.get(..window_end).unwrap_or(&classes);
    let bor = best_overall(window, protocol);
    let progression_day = first_pd.map(|i| {
        let mut start = i;
        if criteria == Criteria::IRecist {
            let mut k = i;
            while k > 0 {
                k -= 1;
                match classes.get(k).map(|(_, c)| *c) {
                    Some(BorClass::Iupd) => start = k,
                    Some(BorClass::Ne) => {}
                    _ => break,
                }
            }
        }
        classes.get(start).map_or(0, |(d, _)| *d)
    });
    let best = match (criteria, bor.outcome) {
        (Criteria::Recist11, BorOutcome::Cr) => Response::Cr,
        (Criteria::Recist11, BorOutcome::Pr) => Response::Pr,
        (Criteria::Recist11, BorOutcome::Sd) if has_target_disease => Response::Sd,
        (Criteria::Recist11, BorOutcome::Sd) => Response::NonCrNonPd,
        (Criteria::Recist11, BorOutcome::Pd) => Response::Pd,
        (Criteria::Recist11, BorOutcome::Iupd | BorOutcome::Ne) => Response::Ne,
        (Criteria::IRecist, BorOutcome::Cr) => Response::ICr,
        (Criteria::IRecist, BorOutcome::Pr) => Response::IPr,
        (Criteria::IRecist, BorOutcome::Sd) if has_target_disease => Response::ISd,
        (Criteria::IRecist, BorOutcome::Sd) => Response::NonICrNonIUpd,
        (Criteria::IRecist, BorOutcome::Pd) => Response::ICpd,
        (Criteria::IRecist, BorOutcome::Iupd) => Response::IUpd,
        (Criteria::IRecist, BorOutcome::Ne) => Response::Ne,
    };
    Ok(BestOverall {
        best_overall_response: best,
        progression_day_from_baseline: progression_day,
        first_response_day_from_baseline: bor.first_response_day,
        notes: bor.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use BorClass::*;

    fn p(confirm: bool) -> Protocol {
        Protocol::new(confirm, 42)
    }

    #[test]
    fn confirmation_needs_the_minimum_gap() {
        assert_eq!(best_overall(&[(56, Pr), (83, Pr)], &p(true)).outcome, BorOutcome::Sd);
        assert_eq!(best_overall(&[(56, Pr), (84, Pr)], &p(true)).outcome, BorOutcome::Pr);
    }

    #[test]
    fn a_short_interval_response_in_between_does_not_break_confirmation() {
        let w = [(56, Pr), (70, Pr), (84, Cr)];
        let bor = best_overall(&w, &p(true));
        assert_eq!(bor.outcome, BorOutcome::Pr);
        assert_eq!(bor.first_response_day, Some(56));
    }

    #[test]
    fn first_response_day_is_the_first_confirmed_one() {
        let w = [(28, Pr), (42, Sd), (84, Pr), (126, Pr)];
        let bor = best_overall(&w, &p(true));
        assert_eq!(bor.outcome, BorOutcome::Pr);
        assert_eq!(bor.first_response_day, Some(84));
        let unconfirmed = best_overall(&w, &p(false));
        assert_eq!(unconfirmed.first_response_day, Some(28));
    }
}
