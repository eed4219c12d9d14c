//! RECIST 1.1 baseline lesion selection rules a read form must enforce (domain.md 1.1, 1.2).
//!
//! [`check_baseline_selection`] returns every violation at once, so a form can show them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::decimal::Tenths;

/// Whether a baseline lesion was chosen as a target or recorded as a non-target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LesionRole {
    Target,
    NonTarget,
}

/// A lesion as entered on the baseline form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionLesion {
    pub id: String,
    pub organ: String,
    pub is_node: bool,
    /// Longest diameter (non-nodal) or short axis (node). Required for targets.
    pub size_mm: Option<Tenths>,
    pub role: LesionRole,
}

/// One broken selection rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SelectionViolation {
    /// More than 5 targets in total.
    TooManyTargets {
        count: usize,
    },
    /// More than 2 targets in one organ (all lymph nodes together are one organ).
    TooManyTargetsInOrgan {
        organ: String,
        ids: Vec<String>,
    },
    /// A target without a size.
    TargetSizeMissing {
        id: String,
    },
    /// Non-nodal target below 10 mm (or below 2x the slice thickness when slices are > 5 mm).
    TargetNotMeasurable {
        id: String,
        size_mm: Tenths,
        minimum_mm: Tenths,
    },
    /// Nodal target with short axis < 15 mm (10 to < 15 mm: non-target only; < 10 mm: normal).
    NodalTargetTooSmall {
        id: String,
        short_axis_mm: Tenths,
    },
    /// Node with short axis < 10 mm recorded as a non-target: it is normal and not recorded.
    NormalNodeRecorded {
        id: String,
        short_axis_mm: Tenths,
    },
    DuplicateId {
        id: String,
    },
    EmptyId,
    EmptyOrgan {
        id: String,
    },
}

impl fmt::Display for SelectionViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectionViolation::TooManyTargets { count } => {
                write!(f, "{count} targets selected; at most 5 are allowed")
            }
            SelectionViolation::TooManyTargetsInOrgan { organ, ids } => write!(
                f,
                "{} targets in organ \"{organ}\" ({}); at most 2 per organ (all lymph nodes count as one organ)",
                ids.len(),
                ids.join(", ")
            ),
            SelectionViolation::TargetSizeMissing { id } => {
                write!(f, "target {id} has no size")
            }
            SelectionViolation::TargetNotMeasurable { id, size_mm, minimum_mm } => write!(
                f,
                "target {id}: longest diameter {size_mm} mm is below the measurable minimum of {minimum_mm} mm; record it as a non-target"
            ),
            SelectionViolation::NodalTargetTooSmall { id, short_axis_mm } => {
                if *short_axis_mm >= Tenths::units(10) {
                    write!(
                        f,
                        "target node {id}: short axis {short_axis_mm} mm is pathological but not measurable (10 to < 15 mm); record it as a non-target"
                    )
                } else {
                    write!(
                        f,
                        "target node {id}: short axis {short_axis_mm} mm is a normal node (< 10 mm) and is not recorded"
                    )
                }
            }
            SelectionViolation::NormalNodeRecorded { id, short_axis_mm } => write!(
                f,
                "non-target node {id}: short axis {short_axis_mm} mm is a normal node (< 10 mm) and is not recorded"
            ),
            SelectionViolation::DuplicateId { id } => write!(f, "lesion id {id} is used twice"),
            SelectionViolation::EmptyId => write!(f, "a lesion has an empty id"),
            SelectionViolation::EmptyOrgan { id } => write!(f, "lesion {id} has no organ"),
        }
    }
}

/// The organ a lesion counts against for the "2 per organ" rule: all lymph nodes are one organ;
/// other organ names are compared trimmed and case-insensitively.
pub fn organ_key(organ: &str, is_node: bool) -> String {
    if is_node { "lymph node".to_string() } else { organ.trim().to_lowercase() }
}

/// Smallest measurable non-nodal longest diameter: 10 mm, or 2x the slice thickness when slices
/// are thicker than 5 mm.
pub fn min_non_nodal_measurable(slice_thickness_mm: Option<Tenths>) -> Tenths {
    match slice_thickness_mm {
        Some(s) if s > Tenths::units(5) => Tenths::new(s.get().saturating_mul(2)),
        _ => Tenths::units(10),
    }
}

/// Every way the baseline selection breaks RECIST 1.1; empty when it is valid.
pub fn check_baseline_selection(
    lesions: &[SelectionLesion],
    slice_thickness_mm: Option<Tenths>,
) -> Vec<SelectionViolation> {
    let mut out = Vec::new();
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    let mut reported_dup: BTreeSet<&str> = BTreeSet::new();
    for l in lesions {
        if l.id.is_empty() {
            out.push(SelectionViolation::EmptyId);
        } else if !ids.insert(l.id.as_str()) && reported_dup.insert(l.id.as_str()) {
            out.push(SelectionViolation::DuplicateId { id: l.id.clone() });
        }
        if !l.is_node && l.organ.trim().is_empty() {
            out.push(SelectionViolation::EmptyOrgan { id: l.id.clone() });
        }
    }

    let targets: Vec<&SelectionLesion> = lesions.iter().filter(|l| l.role == LesionRole::Target).collect();
    if targets.len() > 5 {
        out.push(SelectionViolation::TooManyTargets { count: targets.len() });
    }
    let mut per_organ: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &targets {
        per_organ.entry(organ_key(&t.organ, t.is_node)).or_default().push(t.id.clone());
    }
    for (organ, ids) in per_organ {
        if ids.len() > 2 {
            out.push(SelectionViolation::TooManyTargetsInOrgan { organ, ids });
        }
    }

    let minimum = min_non_nodal_measurable(slice_thickness_mm);
    for l in lesions {
        match (l.role, l.is_node, l.size_mm) {
            (LesionRole::Target, _, None) => {
                out.push(SelectionViolation::TargetSizeMissing { id: l.id.clone() });
            }
            (LesionRole::Target, false, Some(size)) if size < minimum => {
                out.push(SelectionViolation::TargetNotMeasurable {
                    id: l.id.clone(),
                    size_mm: size,
                    minimum_mm: minimum,
                });
            }
            (LesionRole::Target, true, Some(size)) if size < Tenths::units(15) => {
                out.push(SelectionViolation::NodalTargetTooSmall { id: l.id.clone(), short_axis_mm: size });
            }
            (LesionRole::NonTarget, true, Some(size)) if size < Tenths::units(10) => {
                out.push(SelectionViolation::NormalNodeRecorded { id: l.id.clone(), short_axis_mm: size });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesion(id: &str, organ: &str, node: bool, size: Option<u32>, role: LesionRole) -> SelectionLesion {
        SelectionLesion {
            id: id.to_string(),
            organ: organ.to_string(),
            is_node: node,
            size_mm: size.map(Tenths::new),
            role,
        }
    }

    #[test]
    fn nodes_in_different_stations_share_one_organ() {
        let l = vec![
            lesion("T1", "mediastinum", true, Some(150), LesionRole::Target),
            lesion("T2", "axilla", true, Some(200), LesionRole::Target),
            lesion("T3", "pelvis", true, Some(160), LesionRole::Target),
        ];
        let v = check_baseline_selection(&l, None);
        assert_eq!(
            v,
            vec![SelectionViolation::TooManyTargetsInOrgan {
                organ: "lymph node".into(),
                ids: vec!["T1".into(), "T2".into(), "T3".into()]
            }]
        );
    }

    #[test]
    fn thick_slices_raise_the_minimum() {
        assert_eq!(min_non_nodal_measurable(Some(Tenths::units(5))), Tenths::units(10));
        assert_eq!(min_non_nodal_measurable(Some(Tenths::new(75))), Tenths::units(15));
        let l = vec![lesion("T1", "liver", false, Some(140), LesionRole::Target)];
        assert_eq!(check_baseline_selection(&l, Some(Tenths::new(75))).len(), 1);
        assert!(check_baseline_selection(&l, Some(Tenths::units(5))).is_empty());
    }
}
