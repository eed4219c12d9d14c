//! One subject's tumour assessments as the response engines take them, the results they return, and
//! the checks a case must pass before it is evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::decimal::{SignedTenths, Tenths};
use super::selection::{self, LesionRole, SelectionLesion, SelectionViolation};

/// The response criteria a case is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Criteria {
    #[serde(rename = "RECIST1.1")]
    Recist11,
    #[serde(rename = "iRECIST")]
    IRecist,
}

impl Criteria {
    pub fn as_str(self) -> &'static str {
        match self {
            Criteria::Recist11 => "RECIST1.1",
            Criteria::IRecist => "iRECIST",
        }
    }
}

/// The charter settings the engines need. [`Protocol::new`] fills the optional ones with the
/// documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// CR/PR must be met again at a later assessment (paper Table 3).
    pub confirmation_required: bool,
    /// Minimum days between the first and the confirming CR/PR assessment (default 28).
    #[serde(default = "default_28")]
    pub confirmation_min_days: u32,
    /// An SD (or NON-CR/NON-PD) counts for BOR only at or after this day from baseline (inclusive).
    pub sd_min_days_from_baseline: u32,
    /// Section 9 item 7: may an NE assessment sit between a CR/PR and its confirmation? Default
    /// false (only CR/PR between; for a CR, only CR between).
    #[serde(default)]
    pub confirmation_allow_ne_between: bool,
    /// iRECIST: an assessment fewer than this many days after the iUPD that opened a block cannot
    /// confirm iCPD, except by showing an additional new lesion (default 28).
    #[serde(default = "default_28")]
    pub irecist_confirmation_min_days: u32,
    /// Section 9 item 9: after an iUPD caused by new lesions only, may shrinkage of the other lesions
    /// give iPR (and reset the bar) while the new lesions persist without growing? Default false:
    /// the paper's Table 3 ("remains iUPD"), FAQ scenario F. True follows FAQ scenario B.
    #[serde(default)]
    pub irecist_new_lesion_iupd_allows_ipr: bool,
}

fn default_28() -> u32 {
    28
}

impl Protocol {
    pub const DEFAULT_CONFIRMATION_MIN_DAYS: u32 = 28;
    pub const DEFAULT_IRECIST_CONFIRMATION_MIN_DAYS: u32 = 28;

    pub fn new(confirmation_required: bool, sd_min_days_from_baseline: u32) -> Self {
        Protocol {
            confirmation_required,
            confirmation_min_days: Self::DEFAULT_CONFIRMATION_MIN_DAYS,
            sd_min_days_from_baseline,
            confirmation_allow_ne_between: false,
            irecist_confirmation_min_days: Self::DEFAULT_IRECIST_CONFIRMATION_MIN_DAYS,
            irecist_new_lesion_iupd_allows_ipr: false,
        }
    }
}

/// A target lesion chosen at baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineTarget {
    pub id: String,
    pub organ: String,
    /// Lymph node: `diameter_mm` is the short axis.
    pub is_node: bool,
    /// Longest diameter (non-nodal) or short axis (node).
    pub diameter_mm: Tenths,
}

/// A non-target lesion (or group of lesions in one organ) recorded at baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineNonTarget {
    pub id: String,
    pub organ: String,
    pub is_node: bool,
    /// Optional size; when given for a node it must be a pathological short axis (>= 10 mm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diameter_mm: Option<Tenths>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Reconstructed slice thickness; above 5 mm a non-nodal target must be >= 2x this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_thickness_mm: Option<Tenths>,
    pub targets: Vec<BaselineTarget>,
    pub non_targets: Vec<BaselineNonTarget>,
}

/// A target lesion's reading at a follow-up timepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetMeasurement {
    /// Measured value (LD, or short axis for a node); 0 means the lesion is gone.
    Measured(Tenths),
    /// Present but too small to measure: counts as 5 mm.
    TooSmall,
    /// Not assessed or not assessable.
    NotEvaluated,
    /// A split lesion: the fragments' diameters are added.
    Fragments(Vec<Tenths>),
    /// Coalesced into another target, which carries the merged mass: counts as 0 mm here.
    MergedInto(String),
}

/// The reader's call on a non-target lesion at a follow-up timepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonTargetStatus {
    /// Gone; for a node, back to a normal short axis (< 10 mm).
    Absent,
    /// Still present, not unequivocally progressed.
    Present,
    /// Unequivocal progression (RECIST 1.1 non-target PD).
    UnequivocalProgression,
    NotEvaluated,
    /// iRECIST only: increased again since the previous assessment (need not be unequivocal).
    FurtherIncrease,
}

impl NonTargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NonTargetStatus::Absent => "ABSENT",
            NonTargetStatus::Present => "PRESENT",
            NonTargetStatus::UnequivocalProgression => "UNEQUIVOCAL_PROGRESSION",
            NonTargetStatus::NotEvaluated => "NOT_EVALUATED",
            NonTargetStatus::FurtherIncrease => "FURTHER_INCREASE",
        }
    }
}

/// iRECIST sub-category of a new lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NewLesionCategory {
    /// New lesion, target: measured, kept in a separate sum (at most 5, at most 2 per organ).
    #[serde(rename = "NLT")]
    Target,
    /// New lesion, non-target.
    #[serde(rename = "NLNT")]
    NonTarget,
}

/// A new lesion seen at a timepoint. The same `id` at later timepoints is the same lesion; a lesion
/// seen earlier and not listed at a timepoint is taken as no longer present there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLesion {
    pub id: String,
    pub organ: String,
    pub is_node: bool,
    /// Required for an iRECIST NLT; optional otherwise.
    pub diameter_mm: Option<Tenths>,
    /// Required under iRECIST; ignored under RECIST 1.1.
    pub category: Option<NewLesionCategory>,
    /// Equivocal: not counted until a later timepoint shows it unequivocally; then the progression
    /// date goes back to the first timepoint that showed it.
    pub equivocal: bool,
    /// iRECIST NLNT only: grew since the previous assessment.
    pub further_increase: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timepoint {
    /// Days from baseline (day 0 = treatment start); strictly increasing, >= 1.
    pub days_from_baseline: u32,
    /// Keyed by baseline target id; a missing key means not evaluated.
    pub targets: BTreeMap<String, TargetMeasurement>,
    /// Keyed by baseline non-target id; a missing key means not evaluated.
    pub non_targets: BTreeMap<String, NonTargetStatus>,
    pub new_lesions: Vec<NewLesion>,
}

/// One subject's case: baseline and follow-up readings under one criteria set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseInput {
    pub id: Option<String>,
    pub criteria: Criteria,
    pub protocol: Protocol,
    pub baseline: Baseline,
    pub timepoints: Vec<Timepoint>,
}

/// Response codes of RECIST 1.1 and iRECIST, as written in the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    #[serde(rename = "CR")]
    Cr,
    #[serde(rename = "PR")]
    Pr,
    #[serde(rename = "SD")]
    Sd,
    #[serde(rename = "PD")]
    Pd,
    #[serde(rename = "NE")]
    Ne,
    #[serde(rename = "NON_CR_NON_PD")]
    NonCrNonPd,
    /// Not applicable: the category has no lesions at baseline.
    #[serde(rename = "NA")]
    Na,
    #[serde(rename = "iCR")]
    ICr,
    #[serde(rename = "iPR")]
    IPr,
    #[serde(rename = "iSD")]
    ISd,
    #[serde(rename = "iUPD")]
    IUpd,
    #[serde(rename = "iCPD")]
    ICpd,
    #[serde(rename = "NON_iCR_NON_iUPD")]
    NonICrNonIUpd,
}

impl Response {
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Cr => "CR",
            Response::Pr => "PR",
            Response::Sd => "SD",
            Response::Pd => "PD",
            Response::Ne => "NE",
            Response::NonCrNonPd => "NON_CR_NON_PD",
            Response::Na => "NA",
            Response::ICr => "iCR",
            Response::IPr => "iPR",
            Response::ISd => "iSD",
            Response::IUpd => "iUPD",
            Response::ICpd => "iCPD",
            Response::NonICrNonIUpd => "NON_iCR_NON_iUPD",
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Things a data manager should look at; they never change a response by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Flag {
    /// Section 9 item 2: target sizes meet CR (non-nodal 0, nodes < 10 mm) and the +20 %/+5 mm
    /// rule at once; PD was given. Review.
    NodalCrPdConflict,
    /// Some targets were not evaluated, but those evaluated already meet PD.
    PdFromPartialTargets,
    /// An equivocal new lesion is present; not counted unless a later timepoint confirms it.
    EquivocalNewLesion,
    /// SD / NON-CR/NON-PD before the protocol's SD minimum: does not count as SD for BOR.
    BeforeSdMinimum,
    /// After the first PD (RECIST 1.1) or first iCPD (iRECIST): not used for BOR.
    AfterProgression,
    /// iRECIST: no category meets PD any more; the iUPD bar is reset.
    IupdReset,
    /// iRECIST: fewer than `irecist_confirmation_min_days` after the iUPD; cannot confirm iCPD
    /// except by an additional new lesion.
    EarlyForConfirmation,
    /// iRECIST: FURTHER_INCREASE on a non-target while non-targets were not at iUPD; counted as
    /// PRESENT (a category newly meeting PD must show unequivocal progression).
    FurtherIncreaseWithoutNonTargetIupd,
    /// iRECIST item 9 setting: persisting new lesions accepted at an iPR reset; from now on they
    /// count only if they grow.
    NewLesionsAcceptedAtReset,
    /// iRECIST: a category that caused the open iUPD was not evaluated, so the bar cannot reset.
    IupdCategoryNotEvaluated,
}

/// The engine's result at one timepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimepointResult {
    pub days_from_baseline: u32,
    /// Sum of target diameters when every target was evaluated, else null.
    pub sum_mm: Option<Tenths>,
    /// Sum over the evaluated targets when some were not evaluated (a lower bound of the sum).
    pub partial_sum_mm: Option<Tenths>,
    pub target_response: Response,
    pub non_target_response: Response,
    /// The new-lesion category meets PD: an unequivocal new lesion is present (iRECIST: one not
    /// accepted at an item-9 reset, or accepted ones that grew).
    pub new_lesions: bool,
    pub overall: Response,
    /// The PD reference: smallest fully evaluated sum before this timepoint, baseline included.
    pub nadir_ref_mm: Option<Tenths>,
    /// (sum - baseline sum) / baseline sum x 100, rounded half away from zero to 0.1.
    pub pct_change_from_baseline: Option<SignedTenths>,
    /// (sum - nadir_ref) / nadir_ref x 100, rounded to 0.1; null when the nadir is 0.
    pub pct_change_from_nadir: Option<SignedTenths>,
    /// iRECIST: sum of the new-lesion-target (NLT) diameters present at this timepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_lesion_target_sum_mm: Option<Tenths>,
    /// Why the overall response is NE.
    pub ne_reason: Option<String>,
    pub flags: Vec<Flag>,
}

/// The engine's result for one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: Option<String>,
    pub criteria: Criteria,
    pub baseline_sum_mm: Option<Tenths>,
    pub per_timepoint: Vec<TimepointResult>,
    pub best_overall_response: Response,
    /// RECIST 1.1: first PD, backdated to the first scan of a confirmed equivocal new lesion.
    /// iRECIST: the first iUPD of the first confirmed (iCPD) block. Null when none.
    pub progression_day_from_baseline: Option<u32>,
    /// First CR/PR that counts for the best overall response (with confirmation: the first that is
    /// confirmed); start of the duration of response. Null unless BOR is CR/PR (iCR/iPR).
    pub first_response_day_from_baseline: Option<u32>,
    /// Plain-language notes on how BOR and progression were derived.
    pub notes: Vec<String>,
}

/// Why a case could not be evaluated. Every variant names the case; input errors also name the
/// timepoint (when there is one) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("input is not valid JSON: {0}")]
    Json(String),
    #[error("case {case}{}: {key}: {message}", timepoint_suffix(.timepoint))]
    Invalid { case: String, timepoint: Option<String>, key: String, message: String },
    #[error("case {case}: baseline lesion selection breaks RECIST 1.1: {}", join_violations(.violations))]
    BaselineSelection { case: String, violations: Vec<SelectionViolation> },
    #[error("could not write the result: {0}")]
    Output(String),
}

fn timepoint_suffix(timepoint: &Option<String>) -> String {
    match timepoint {
        Some(t) => format!(", {t}"),
        None => String::new(),
    }
}

fn join_violations(violations: &[SelectionViolation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// How a timepoint is named in messages: "timepoint 2 (day 84)".
pub(crate) fn timepoint_label(index: usize, day: Option<u32>) -> String {
    match day {
        Some(d) => format!("timepoint {} (day {d})", index + 1),
        None => format!("timepoint {}", index + 1),
    }
}

pub(crate) fn case_label(id: Option<&str>, index: usize) -> String {
    match id {
        Some(id) => format!("\"{id}\""),
        None => format!("#{}", index + 1),
    }
}

struct Check<'a> {
    case: &'a str,
}

impl Check<'_> {
    fn at(&self, timepoint: Option<String>, key: impl Into<String>, message: impl Into<String>) -> ResponseError {
        ResponseError::Invalid { case: self.case.to_string(), timepoint, key: key.into(), message: message.into() }
    }
}

/// Checks everything the JSON shape cannot express: ids, references, order of timepoints, the
/// baseline selection rules and the iRECIST new-lesion rules.
pub(crate) fn validate(case: &CaseInput, label: &str) -> Result<(), ResponseError> {
    let c = Check { case: label };
    let baseline = &case.baseline;
    if baseline.targets.is_empty() && baseline.non_targets.is_empty() {
        return Err(c.at(None, "baseline", "no target and no non-target lesion: there is no disease to follow"));
    }
    if case.protocol.confirmation_min_days == 0 {
        return Err(c.at(None, "protocol.confirmation_min_days", "must be at least 1"));
    }

    let mut lesions: Vec<SelectionLesion> = Vec::new();
    for t in &baseline.targets {
        lesions.push(SelectionLesion {
            id: t.id.clone(),
            organ: t.organ.clone(),
            is_node: t.is_node,
            size_mm: Some(t.diameter_mm),
            role: LesionRole::Target,
        });
    }
    for n in &baseline.non_targets {
        lesions.push(SelectionLesion {
            id: n.id.clone(),
            organ: n.organ.clone(),
            is_node: n.is_node,
            size_mm: n.diameter_mm,
            role: LesionRole::NonTarget,
        });
    }
    let violations = selection::check_baseline_selection(&lesions, baseline.slice_thickness_mm);
    if !violations.is_empty() {
        return Err(ResponseError::BaselineSelection { case: label.to_string(), violations });
    }

    let target_ids: BTreeSet<&str> = baseline.targets.iter().map(|t| t.id.as_str()).collect();
    let nt_ids: BTreeSet<&str> = baseline.non_targets.iter().map(|n| n.id.as_str()).collect();
    let irecist = case.criteria == Criteria::IRecist;
    let min_measurable = selection::min_non_nodal_measurable(baseline.slice_thickness_mm);

    // New lesion identity across timepoints: (organ, is_node, category), first unequivocal sighting.
    let mut known_new: BTreeMap<&str, (&str, bool, Option<NewLesionCategory>)> = BTreeMap::new();
    let mut nlt_ids: Vec<(&str, String)> = Vec::new();
    let mut nlt_size_checked: BTreeSet<&str> = BTreeSet::new();
    let mut previous_day: Option<u32> = None;

    for (index, tp) in case.timepoints.iter().enumerate() {
        let day = tp.days_from_baseline;
        let here = || Some(timepoint_label(index, Some(day)));
        if day == 0 {
            return Err(c.at(here(), "days_from_baseline", "must be at least 1 (day 0 is baseline)"));
        }
        if let Some(prev) = previous_day
            && day <= prev
        {
            return Err(c.at(
                here(),
                "days_from_baseline",
                format!("must be later than the previous timepoint (day {prev})"),
            ));
        }
        previous_day = Some(day);

        for (id, m) in &tp.targets {
            let key = format!("targets.{id}");
            if !target_ids.contains(id.as_str()) {
                return Err(c.at(here(), key, "is not a baseline target id"));
            }
            match m {
                TargetMeasurement::Fragments(parts) if parts.is_empty() => {
                    return Err(c.at(here(), key, "fragments_mm must list at least one fragment"));
                }
                TargetMeasurement::MergedInto(host) => {
                    if host == id {
                        return Err(c.at(here(), key, "a lesion cannot be merged into itself"));
                    }
                    if !target_ids.contains(host.as_str()) {
                        return Err(c.at(here(), key, format!("merged_into \"{host}\" is not a baseline target id")));
                    }
                    if let Some(TargetMeasurement::MergedInto(next)) = tp.targets.get(host) {
                        return Err(c.at(
                            here(),
                            key,
                            format!(
                                "merged_into \"{host}\", which is itself merged into \"{next}\"; name the target that carries the merged mass"
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (id, status) in &tp.non_targets {
            let key = format!("non_targets.{id}");
            if !nt_ids.contains(id.as_str()) {
                return Err(c.at(here(), key, "is not a baseline non-target id"));
            }
            if *status == NonTargetStatus::FurtherIncrease && !irecist {
                return Err(c.at(
                    here(),
                    key,
                    "FURTHER_INCREASE is an iRECIST status; under RECIST 1.1 use PRESENT or UNEQUIVOCAL_PROGRESSION",
                ));
            }
        }
        let mut seen_here: BTreeSet<&str> = BTreeSet::new();
        for (li, lesion) in tp.new_lesions.iter().enumerate() {
            let key = |field: &str| {
                if field.is_empty() { format!("new_lesions[{li}]") } else { format!("new_lesions[{li}].{field}") }
            };
            if lesion.id.is_empty() {
                return Err(c.at(here(), key("id"), "must not be empty"));
            }
            if target_ids.contains(lesion.id.as_str()) || nt_ids.contains(lesion.id.as_str()) {
                return Err(c.at(
                    here(),
                    key("id"),
                    format!("\"{}\" is a baseline lesion id; a new lesion needs its own id", lesion.id),
                ));
            }
            if !seen_here.insert(lesion.id.as_str()) {
                return Err(c.at(here(), key("id"), format!("\"{}\" is listed twice at this timepoint", lesion.id)));
            }
            if lesion.organ.trim().is_empty() {
                return Err(c.at(here(), key("organ"), "must not be empty"));
            }
            let category = if irecist {
                match lesion.category {
                    Some(cat) => Some(cat),
                    None => {
                        return Err(c.at(here(), key("category"), "is required under iRECIST (\"NLT\" or \"NLNT\")"));
                    }
                }
            } else {
                None
            };
            if let Some((organ, is_node, cat)) = known_new.get(lesion.id.as_str()) {
                if *organ != lesion.organ.as_str() || *is_node != lesion.is_node {
                    return Err(c.at(
                        here(),
                        key(""),
                        format!(
                            "new lesion \"{}\" was recorded earlier with organ \"{organ}\" and is_node {is_node}; the same id must keep its organ and node flag",
                            lesion.id
                        ),
                    ));
                }
                if *cat != category {
                    return Err(c.at(
                        here(),
                        key("category"),
                        format!("new lesion \"{}\" changed category; NLT/NLNT is fixed when first recorded", lesion.id),
                    ));
                }
            } else {
                known_new.insert(lesion.id.as_str(), (lesion.organ.as_str(), lesion.is_node, category));
                if category == Some(NewLesionCategory::Target) {
                    nlt_ids.push((lesion.id.as_str(), selection::organ_key(&lesion.organ, lesion.is_node)));
                }
            }
            if irecist {
                match category {
                    Some(NewLesionCategory::Target) => {
                        let Some(d) = lesion.diameter_mm else {
                            return Err(c.at(here(), key("diameter_mm"), "is required for a new lesion target (NLT)"));
                        };
                        if lesion.further_increase {
                            return Err(c.at(
                                here(),
                                key("further_increase"),
                                "applies to NLNT only; an NLT's growth is read from diameter_mm",
                            ));
                        }
                        let first_time = !lesion.equivocal && nlt_size_checked.insert(lesion.id.as_str());
                        if first_time {
                            let (minimum, what) = if lesion.is_node {
                                (Tenths::units(15), "a nodal NLT needs a short axis >= 15 mm")
                            } else {
                                (min_measurable, "a non-nodal NLT must be measurable")
                            };
                            if d < minimum {
                                return Err(c.at(
                                    here(),
                                    key("diameter_mm"),
                                    format!("{d} mm is below {minimum} mm: {what}; record it as NLNT"),
                                ));
                            }
                        }
                    }
                    Some(NewLesionCategory::NonTarget) | None => {}
                }
            } else if lesion.further_increase {
                return Err(c.at(
                    here(),
                    key("further_increase"),
                    "is an iRECIST field (growth of a new non-target lesion)",
                ));
            }
        }
        // NLT limits, checked as soon as a timepoint adds one too many.
        if irecist {
            if nlt_ids.len() > 5 {
                return Err(c.at(
                    here(),
                    "new_lesions",
                    format!(
                        "more than 5 new lesion targets (NLT) in this case ({}); record further new lesions as NLNT",
                        nlt_ids.iter().map(|(id, _)| *id).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let mut per_organ: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (id, organ) in &nlt_ids {
                per_organ.entry(organ.as_str()).or_default().push(id);
            }
            if let Some((organ, ids)) = per_organ.iter().find(|(_, ids)| ids.len() > 2) {
                return Err(c.at(
                    here(),
                    "new_lesions",
                    format!(
                        "more than 2 new lesion targets (NLT) in organ \"{organ}\" ({}); record further ones as NLNT",
                        ids.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}
