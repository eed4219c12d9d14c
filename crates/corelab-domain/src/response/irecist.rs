//! iRECIST (domain.md section 2; section 9 items 8-10).
//!
//! The categories are read as in RECIST 1.1. The first timepoint where any category meets RECIST 1.1
//! PD is iUPD and opens a *block*. A later assessment in the block confirms it (iCPD) when:
//! * the targets that were at PD grew a further >= 5 mm, cumulative from the sum at the iUPD that
//!   opened the block (item 8), over the same lesions;
//! * the non-targets that were at PD increased further (FURTHER_INCREASE, or another non-target now
//!   unequivocally progressing);
//! * the new lesions that were at PD grew: NLT sum +5 mm or more from the opening, an NLNT marked
//!   `further_increase`, or more new lesions;
//! * or a category that was not at PD when the block opened now meets RECIST 1.1 PD.
//!
//! An assessment fewer than `irecist_confirmation_min_days` after the opening cannot confirm except
//! by an additional new lesion. Without confirmation, if any category still meets PD the response
//! stays iUPD; if none does (and the categories that caused the iUPD were evaluated) the response is
//! iCR/iPR/iSD/NON-iCR/NON-iUPD and the bar resets: progression must again meet iUPD against the
//! nadir and be confirmed afresh. An NE assessment leaves the block open; any later assessment may
//! still confirm it (item 10).

use std::collections::{BTreeMap, BTreeSet};

use super::bor::{self, BorClass, BorOutcome};
use super::case::{
    CaseInput, CaseResult, Criteria, Flag, NewLesion, NewLesionCategory, NonTargetStatus, Response, TimepointResult,
};
use super::recist::{
    NtCat, OverallCat, PD_ABSOLUTE_TENTHS, TargetCat, classify_non_targets, classify_targets, combine, ne_reason,
    non_target_statuses, pct_change, read_targets, tenths,
};

/// An open (or confirmed) run of iUPD assessments.
#[derive(Debug, Clone)]
struct Block {
    open_day: u32,
    /// The progression date of the block: the opening day, or earlier when a new lesion that opened
    /// it had been seen equivocally before.
    dated_day: u32,
    target_pd: bool,
    /// Target values at the opening (the lesions evaluated then).
    target_open: BTreeMap<String, i64>,
    nt_pd: bool,
    nt_progressed: BTreeSet<String>,
    nl_pd: bool,
    /// Unequivocal new lesions seen since the opening.
    nl_seen: BTreeSet<String>,
    /// Values of the NLTs present at the opening (when new lesions were at PD then).
    nlt_open: BTreeMap<String, i64>,
    confirmed: bool,
}

/// New lesions present at one timepoint, split for the rules.
struct NewLesionView<'a> {
    unequivocal: Vec<&'a NewLesion>,
    any_equivocal: bool,
}

impl<'a> NewLesionView<'a> {
    fn of(lesions: &'a [NewLesion]) -> Self {
        NewLesionView {
            unequivocal: lesions.iter().filter(|l| !l.equivocal).collect(),
            any_equivocal: lesions.iter().any(|l| l.equivocal),
        }
    }

    fn nlt_value(&self, id: &str) -> i64 {
        self.unequivocal
            .iter()
            .find(|l| l.id == id && l.category == Some(NewLesionCategory::Target))
            .and_then(|l| l.diameter_mm)
            .map_or(0, |d| d.as_i64())
    }

    fn nlt_sum(&self) -> i64 {
        self.unequivocal
            .iter()
            .filter(|l| l.category == Some(NewLesionCategory::Target))
            .filter_map(|l| l.diameter_mm)
            .map(|d| d.as_i64())
            .sum()
    }
}

fn i_target(cat: TargetCat) -> Response {
    match cat {
        TargetCat::Cr => Response::ICr,
        TargetCat::Pr => Response::IPr,
        TargetCat::Sd => Response::ISd,
        TargetCat::Pd => Response::IUpd,
        TargetCat::Ne => Response::Ne,
        TargetCat::Na => Response::Na,
    }
}

fn i_non_target(cat: NtCat) -> Response {
    match cat {
        NtCat::Cr => Response::ICr,
        NtCat::NonCrNonPd => Response::NonICrNonIUpd,
        NtCat::Pd => Response::IUpd,
        NtCat::Ne => Response::Ne,
        NtCat::Na => Response::Na,
    }
}

/// The response when no category meets PD.
fn i_overall(cat: OverallCat) -> Response {
    match cat {
        OverallCat::Cr => Response::ICr,
        OverallCat::Pr => Response::IPr,
        OverallCat::Sd => Response::ISd,
        OverallCat::NonCrNonPd => Response::NonICrNonIUpd,
        OverallCat::Pd => Response::IUpd,
        OverallCat::Ne => Response::Ne,
    }
}

fn bor_class(r: Response) -> BorClass {
    match r {
        Response::ICr => BorClass::Cr,
        Response::IPr => BorClass::Pr,
        Response::ISd | Response::NonICrNonIUpd => BorClass::Sd,
        Response::IUpd => BorClass::Iupd,
        Response::ICpd => BorClass::Pd,
        _ => BorClass::Ne,
    }
}

/// Evaluates a validated iRECIST case.
pub(crate) fn evaluate(case: &CaseInput) -> CaseResult {
    let baseline = &case.baseline;
    let protocol = &case.protocol;
    let has_targets = !baseline.targets.is_empty();
    let baseline_sum: i64 = baseline.targets.iter().map(|t| t.diameter_mm.as_i64()).sum();
    let mut nadir = baseline_sum;

    let mut block: Option<Block> = None;
    let mut first_confirmed: Option<Block> = None;
    // New lesions accepted at an item-9 iPR reset: they count again only if they grow.
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut accepted_nlt_ref: i64 = 0;
    // Equivocal sightings since the last reset, for dating a block opened by that lesion.
    let mut equivocal_seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut ever_nlt = false;

    let mut rows: Vec<TimepointResult> = Vec::with_capacity(case.timepoints.len());
    let mut classes: Vec<(u32, BorClass)> = Vec::with_capacity(case.timepoints.len());
    let mut notes: Vec<String> = Vec::new();

    for tp in &case.timepoints {
        let day = tp.days_from_baseline;
        let mut flags: Vec<Flag> = Vec::new();

        // Targets.
        let readings = read_targets(baseline, tp);
        let t = classify_targets(has_targets, &readings, baseline_sum, nadir);
        let t_pd = t.cat == TargetCat::Pd;
        if t.cr_pd_conflict {
            flags.push(Flag::NodalCrPdConflict);
        }
        if t.pd_from_partial {
            flags.push(Flag::PdFromPartialTargets);
        }

        // Non-targets: FURTHER_INCREASE counts as progression only while non-targets are at iUPD.
        let nt_at_iupd = block.as_ref().is_some_and(|b| b.nt_pd);
        let mut statuses = non_target_statuses(baseline, tp);
        for (_, s) in &mut statuses {
            if *s == NonTargetStatus::FurtherIncrease && !nt_at_iupd {
                *s = NonTargetStatus::Present;
                if !flags.contains(&Flag::FurtherIncreaseWithoutNonTargetIupd) {
                    flags.push(Flag::FurtherIncreaseWithoutNonTargetIupd);
                }
            }
        }
        let (nt, nt_missing) = classify_non_targets(&statuses);
        let nt_pd = nt == NtCat::Pd;

        // New lesions.
        let view = NewLesionView::of(&tp.new_lesions);
        if view.any_equivocal {
            flags.push(Flag::EquivocalNewLesion);
        }
        for l in tp.new_lesions.iter().filter(|l| l.equivocal) {
            equivocal_seen.entry(l.id.clone()).or_insert(day);
        }
        let fresh: Vec<&NewLesion> = view.unequivocal.iter().copied().filter(|l| !accepted.contains(&l.id)).collect();
        let accepted_growth = !accepted.is_empty() && {
            let nlt_now: i64 = accepted.iter().map(|id| view.nlt_value(id)).sum();
            nlt_now - accepted_nlt_ref >= PD_ABSOLUTE_TENTHS
                || view.unequivocal.iter().any(|l| accepted.contains(&l.id) && l.further_increase)
        };
        let nl_pd = !fresh.is_empty() || accepted_growth;
        let nlt_sum = view.nlt_sum();
        ever_nlt |= view.unequivocal.iter().any(|l| l.category == Some(NewLesionCategory::Target));

        let any_pd = t_pd || nt_pd || nl_pd;
        let table = combine(t.cat, nt, false);
        let mut reason: Option<String> = None;

        let overall = match block.as_mut() {
            Some(b) if b.confirmed => {
                if any_pd {
                    Response::ICpd
                } else {
                    i_overall(table)
                }
            }
            Some(b) => {
                let early = day.saturating_sub(b.open_day) < protocol.irecist_confirmation_min_days;
                let more_new = fresh.iter().any(|l| !b.nl_seen.contains(&l.id));
                let target_worse = if b.target_pd {
                    let now: i64 = b.target_open.keys().filter_map(|id| readings.values.get(id)).sum();
                    let then: i64 = b.target_open.values().sum();
                    now - then >= PD_ABSOLUTE_TENTHS
                } else {
                    t_pd
                };
                let nt_worse = if b.nt_pd {
                    statuses.iter().any(|(id, s)| match s {
                        NonTargetStatus::FurtherIncrease => true,
                        NonTargetStatus::UnequivocalProgression => !b.nt_progressed.contains(id),
                        _ => false,
                    })
                } else {
                    nt_pd
                };
                let nl_worse = more_new
                    || if b.nl_pd {
                        let now: i64 = b.nlt_open.keys().map(|id| view.nlt_value(id)).sum();
                        let then: i64 = b.nlt_open.values().sum();
                        now - then >= PD_ABSOLUTE_TENTHS
                            || view
                                .unequivocal
                                .iter()
                                .any(|l| l.further_increase && l.category == Some(NewLesionCategory::NonTarget))
                    } else {
                        accepted_growth
                    };
                if early && !more_new {
                    flags.push(Flag::EarlyForConfirmation);
                }
                let confirms = more_new || (!early && (target_worse || nt_worse || nl_worse));
                for l in &fresh {
                    b.nl_seen.insert(l.id.clone());
                }
                if confirms {
                    b.confirmed = true;
                    if first_confirmed.is_none() {
                        first_confirmed = Some(b.clone());
                    }
                    Response::ICpd
                } else if any_pd {
                    let only_new_lesions = nl_pd && !t_pd && !nt_pd;
                    let others_respond = matches!(t.cat, TargetCat::Cr | TargetCat::Pr)
                        && matches!(nt, NtCat::Cr | NtCat::NonCrNonPd | NtCat::Na);
                    if protocol.irecist_new_lesion_iupd_allows_ipr && only_new_lesions && others_respond {
                        // Section 9 item 9, FAQ scenario B: iPR, reset, new lesions accepted.
                        for l in &view.unequivocal {
                            accepted.insert(l.id.clone());
                        }
                        accepted_nlt_ref = accepted.iter().map(|id| view.nlt_value(id)).sum();
                        flags.push(Flag::IupdReset);
                        flags.push(Flag::NewLesionsAcceptedAtReset);
                        block = None;
                        equivocal_seen.clear();
                        Response::IPr
                    } else {
                        Response::IUpd
                    }
                } else if table == OverallCat::Ne {
                    reason = Some(ne_reason(tp, &readings.missing, t.cat, &nt_missing, nt));
                    Response::Ne
                } else if b.nt_pd && nt == NtCat::Ne {
                    flags.push(Flag::IupdCategoryNotEvaluated);
                    reason = Some(format!(
                        "non-targets caused the open iUPD and were not all evaluated ({}); the bar cannot reset",
                        nt_missing.join(", ")
                    ));
                    Response::Ne
                } else {
                    flags.push(Flag::IupdReset);
                    block = None;
                    equivocal_seen.clear();
                    i_overall(table)
                }
            }
            None => {
                if any_pd {
                    let mut dated_day = day;
                    for l in &fresh {
                        if let Some(seen) = equivocal_seen.get(&l.id) {
                            dated_day = dated_day.min(*seen);
                        }
                    }
                    equivocal_seen.clear();
                    block = Some(Block {
                        open_day: day,
                        dated_day,
                        target_pd: t_pd,
                        target_open: if t_pd { readings.values.clone() } else { BTreeMap::new() },
                        nt_pd,
                        nt_progressed: statuses
                            .iter()
                            .filter(|(_, s)| *s == NonTargetStatus::UnequivocalProgression)
                            .map(|(id, _)| id.clone())
                            .collect(),
                        nl_pd,
                        nl_seen: fresh.iter().map(|l| l.id.clone()).collect(),
                        nlt_open: if nl_pd {
                            view.unequivocal
                                .iter()
                                .filter(|l| l.category == Some(NewLesionCategory::Target))
                                .map(|l| (l.id.clone(), l.diameter_mm.map_or(0, |d| d.as_i64())))
                                .collect()
                        } else {
                            BTreeMap::new()
                        },
                        confirmed: false,
                    });
                    Response::IUpd
                } else {
                    if table == OverallCat::Ne {
                        reason = Some(ne_reason(tp, &readings.missing, t.cat, &nt_missing, nt));
                    }
                    i_overall(table)
                }
            }
        };

        if matches!(overall, Response::ISd | Response::NonICrNonIUpd) && day < protocol.sd_min_days_from_baseline {
            flags.push(Flag::BeforeSdMinimum);
        }
        let sum = readings.complete_sum().filter(|_| has_targets);
        rows.push(TimepointResult {
            days_from_baseline: day,
            sum_mm: sum.and_then(tenths),
            partial_sum_mm: if has_targets && sum.is_none() && !readings.values.is_empty() {
                tenths(readings.evaluated_sum())
            } else {
                None
            },
            target_response: i_target(t.cat),
            non_target_response: i_non_target(nt),
            new_lesions: nl_pd,
            overall,
            nadir_ref_mm: if has_targets { tenths(nadir) } else { None },
            pct_change_from_baseline: sum.and_then(|s| pct_change(s, baseline_sum)),
            pct_change_from_nadir: sum.and_then(|s| pct_change(s, nadir)),
            new_lesion_target_sum_mm: if ever_nlt { tenths(nlt_sum) } else { None },
            ne_reason: reason,
            flags,
        });
        classes.push((day, bor_class(overall)));
        if let Some(s) = sum {
            nadir = nadir.min(s);
        }
    }

    let first_cpd = classes.iter().position(|(_, c)| *c == BorClass::Pd);
    let window_end = first_cpd.map_or(classes.len(), |i| i + 1);
    for row in rows.iter_mut().skip(window_end) {
        row.flags.push(Flag::AfterProgression);
    }
    let window = classes.get(..window_end).unwrap_or(&classes);
    let bor = bor::best_overall(window, protocol);
    notes.extend(bor.notes);

    let progression_day = first_confirmed.as_ref().map(|b| b.dated_day);
    if let Some(b) = &first_confirmed
        && b.dated_day < b.open_day
    {
        notes.push(format!(
            "progression dated to day {}, the first scan showing the new lesion that opened the iUPD at day {} (equivocal then)",
            b.dated_day, b.open_day
        ));
    }
    if first_confirmed.is_none()
        && let Some(b) = &block
        && !b.confirmed
    {
        notes.push(format!(
            "iUPD from day {} is not confirmed: no later assessment showed further progression",
            b.open_day
        ));
    }

    CaseResult {
        id: case.id.clone(),
        criteria: Criteria::IRecist,
        baseline_sum_mm: if has_targets { tenths(baseline_sum) } else { None },
        per_timepoint: rows,
        best_overall_response: match bor.outcome {
            BorOutcome::Cr => Response::ICr,
            BorOutcome::Pr => Response::IPr,
            BorOutcome::Sd if has_targets => Response::ISd,
            BorOutcome::Sd => Response::NonICrNonIUpd,
            BorOutcome::Pd => Response::ICpd,
            BorOutcome::Iupd => Response::IUpd,
            BorOutcome::Ne => Response::Ne,
        },
        progression_day_from_baseline: progression_day,
        first_response_day_from_baseline: bor.first_response_day,
        notes,
    }
}
