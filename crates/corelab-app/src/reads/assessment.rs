//! What a reader records: the baseline lesion selection and the follow-up measurements, with
//! optional image references, as typed values; and their conversion into the response engine's
//! case input. Millimetres are exact (`Tenths`), never floats.

use std::collections::BTreeMap;

use corelab_domain::response::selection::{LesionRole, SelectionLesion, check_baseline_selection};
use corelab_domain::response::{
    Baseline, BaselineNonTarget, BaselineTarget, NewLesion, NewLesionCategory, NonTargetStatus, TargetMeasurement,
    Tenths, Timepoint,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// Where on the images a lesion was seen or measured. The viewer fills these; they are kept with
/// the read as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub sop_instance_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// Points in image pixel coordinates (column, row), e.g. the two ends of a diameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<[f64; 2]>,
}

/// A lesion recorded at baseline, as a target or a non-target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineLesion {
    pub id: String,
    pub organ: String,
    #[serde(default)]
    pub is_node: bool,
    /// Longest diameter, or short axis for a node. Required for targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diameter_mm: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

/// The baseline read: lesion selection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineAssessment {
    /// Reconstructed slice thickness; above 5 mm a non-nodal target must be at least twice this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_thickness_mm: Option<Tenths>,
    #[serde(default)]
    pub targets: Vec<BaselineLesion>,
    #[serde(default)]
    pub non_targets: Vec<BaselineLesion>,
}

/// A target's reading at a follow-up.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetValue {
    Measured(Tenths),
    TooSmall,
    NotEvaluated,
    Fragments(Vec<Tenths>),
    MergedInto(String),
}

impl Serialize for TargetValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TargetValue::Measured(t) => t.serialize(s),
            TargetValue::TooSmall => s.serialize_str("TOO_SMALL"),
            TargetValue::NotEvaluated => s.serialize_str("NOT_EVALUATED"),
            TargetValue::Fragments(f) => json!({ "fragments_mm": f }).serialize(s),
            TargetValue::MergedInto(host) => json!({ "merged_into": host }).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TargetValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "a diameter in mm, \"TOO_SMALL\", \"NOT_EVALUATED\", {\"fragments_mm\": [..]} or {\"merged_into\": \"T2\"}";
        let v = Value::deserialize(d)?;
        match v {
            Value::Number(n) => Tenths::parse(&n.to_string())
                .map(TargetValue::Measured)
                .map_err(|e| D::Error::custom(format!("{n} mm {e}"))),
            Value::String(s) if s == "TOO_SMALL" => Ok(TargetValue::TooSmall),
            Value::String(s) if s == "NOT_EVALUATED" => Ok(TargetValue::NotEvaluated),
            Value::Object(m) if m.len() == 1 && m.contains_key("fragments_mm") => {
                let parts: Vec<Tenths> = serde_json::from_value(m.get("fragments_mm").cloned().unwrap_or(Value::Null))
                    .map_err(|e| D::Error::custom(format!("fragments_mm: {e}")))?;
                Ok(TargetValue::Fragments(parts))
            }
            Value::Object(m) if m.len() == 1 && m.contains_key("merged_into") => match m.get("merged_into") {
                Some(Value::String(host)) => Ok(TargetValue::MergedInto(host.clone())),
                _ => Err(D::Error::custom("merged_into must name a baseline target id")),
            },
            other => Err(D::Error::custom(format!("expected {EXPECTED}, got {other}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetReading {
    pub value: TargetValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

/// The reader's call on a non-target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NonTargetCall {
    Absent,
    Present,
    UnequivocalProgression,
    NotEvaluated,
    FurtherIncrease,
}

impl From<NonTargetCall> for NonTargetStatus {
    fn from(c: NonTargetCall) -> Self {
        match c {
            NonTargetCall::Absent => NonTargetStatus::Absent,
            NonTargetCall::Present => NonTargetStatus::Present,
            NonTargetCall::UnequivocalProgression => NonTargetStatus::UnequivocalProgression,
            NonTargetCall::NotEvaluated => NonTargetStatus::NotEvaluated,
            NonTargetCall::FurtherIncrease => NonTargetStatus::FurtherIncrease,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonTargetReading {
    pub status: NonTargetCall,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLesionReading {
    pub id: String,
    pub organ: String,
    #[serde(default)]
    pub is_node: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diameter_mm: Option<Tenths>,
    /// iRECIST: "NLT" or "NLNT".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<NewLesionCategory>,
    #[serde(default)]
    pub equivocal: bool,
    #[serde(default)]
    pub further_increase: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

/// A follow-up read: every baseline lesion's reading, and new lesions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpAssessment {
    #[serde(default)]
    pub targets: BTreeMap<String, TargetReading>,
    #[serde(default)]
    pub non_targets: BTreeMap<String, NonTargetReading>,
    #[serde(default)]
    pub new_lesions: Vec<NewLesionReading>,
}

/// A read's content, by the kind of timepoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    Baseline(BaselineAssessment),
    FollowUp(FollowUpAssessment),
}

impl Assessment {
    /// Every image reference in the read, with the key it is under (`targets.T1`, `new_lesions.N1`).
    pub fn image_refs(&self) -> Vec<(String, &ImageRef)> {
        let mut out = Vec::new();
        match self {
            Assessment::Baseline(b) => {
                for (list, lesions) in [("targets", &b.targets), ("non_targets", &b.non_targets)] {
                    out.extend(
                        lesions.iter().filter_map(|l| l.image.as_ref().map(|i| (format!("{list}.{}", l.id), i))),
                    );
                }
            }
            Assessment::FollowUp(f) => {
                out.extend(f.targets.iter().filter_map(|(k, t)| t.image.as_ref().map(|i| (format!("targets.{k}"), i))));
                out.extend(
                    f.non_targets.iter().filter_map(|(k, t)| t.image.as_ref().map(|i| (format!("non_targets.{k}"), i))),
                );
                out.extend(
                    f.new_lesions.iter().filter_map(|l| l.image.as_ref().map(|i| (format!("new_lesions.{}", l.id), i))),
                );
            }
        }
        out
    }

    /// Reads `value` as the assessment of a baseline (`baseline`) or follow-up timepoint. The
    /// message names the key at fault, e.g. `targets.T1.value: 12.34 mm has more than 1 decimal place(s)`.
    pub fn parse(value: &Value, baseline: bool) -> Result<Assessment, String> {
        let Value::Object(top) = value else {
            return Err("the assessment must be a JSON object".into());
        };
        let allowed: &[&str] = if baseline {
            &["slice_thickness_mm", "targets", "non_targets"]
        } else {
            &["targets", "non_targets", "new_lesions"]
        };
        if let Some(k) = top.keys().find(|k| !allowed.contains(&k.as_str())) {
            let what = if baseline { "a baseline read" } else { "a follow-up read" };
            return Err(format!("{k}: unknown key; {what} has {}", allowed.join(", ")));
        }
        let field = |key: &str, v: &Value| -> Result<(), String> {
            if let Value::Object(m) = v {
                for (k, item) in m {
                    let path = format!("{key}.{k}");
                    let ok = if key == "targets" {
                        serde_json::from_value::<TargetReading>(item.clone()).map(|_| ())
                    } else {
                        serde_json::from_value::<NonTargetReading>(item.clone()).map(|_| ())
                    };
                    ok.map_err(|e| format!("{path}: {e}"))?;
                }
            } else if let Value::Array(a) = v {
                for (i, item) in a.iter().enumerate() {
                    let path = format!("{key}[{i}]");
                    let ok = if key == "new_lesions" {
                        serde_json::from_value::<NewLesionReading>(item.clone()).map(|_| ())
                    } else {
                        serde_json::from_value::<BaselineLesion>(item.clone()).map(|_| ())
                    };
                    ok.map_err(|e| format!("{path}: {e}"))?;
                }
            }
            Ok(())
        };
        for (k, v) in top {
            if k != "slice_thickness_mm" {
                field(k, v)?;
            }
        }
        let parsed = if baseline {
            serde_json::from_value(value.clone()).map(Assessment::Baseline)
        } else {
            serde_json::from_value(value.clone()).map(Assessment::FollowUp)
        };
        parsed.map_err(|e| e.to_string())
    }

    /// Parses the stored text of a version.
    pub fn from_stored(text: &str, baseline: bool) -> Result<Assessment, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Assessment::parse(&v, baseline)
    }

    pub fn to_value(&self) -> Value {
        let v = match self {
            Assessment::Baseline(b) => serde_json::to_value(b),
            Assessment::FollowUp(f) => serde_json::to_value(f),
        };
        v.unwrap_or(Value::Null)
    }
}

impl BaselineAssessment {
    /// Every RECIST 1.1 selection rule this baseline breaks, as sentences (domain.md 1.1, 1.2).
    pub fn selection_problems(&self) -> Vec<String> {
        let mut lesions = Vec::new();
        for (role, list) in [(LesionRole::Target, &self.targets), (LesionRole::NonTarget, &self.non_targets)] {
            for l in list {
                lesions.push(SelectionLesion {
                    id: l.id.clone(),
                    organ: l.organ.clone(),
                    is_node: l.is_node,
                    size_mm: l.diameter_mm,
                    role,
                });
            }
        }
        let mut out: Vec<String> =
            check_baseline_selection(&lesions, self.slice_thickness_mm).iter().map(ToString::to_string).collect();
        if self.targets.is_empty() && self.non_targets.is_empty() {
            out.push("no target and no non-target lesion recorded: there is no disease to follow".into());
        }
        out
    }

    /// The engine's baseline. Call after [`BaselineAssessment::selection_problems`] came back empty.
    pub fn to_engine(&self) -> Baseline {
        Baseline {
            slice_thickness_mm: self.slice_thickness_mm,
            targets: self
                .targets
                .iter()
                .map(|t| BaselineTarget {
                    id: t.id.clone(),
                    organ: t.organ.clone(),
                    is_node: t.is_node,
                    diameter_mm: t.diameter_mm.unwrap_or(Tenths::ZERO),
                })
                .collect(),
            non_targets: self
                .non_targets
                .iter()
                .map(|n| BaselineNonTarget {
                    id: n.id.clone(),
                    organ: n.organ.clone(),
                    is_node: n.is_node,
                    diameter_mm: n.diameter_mm,
                })
                .collect(),
        }
    }
}

impl FollowUpAssessment {
    /// Baseline lesions this read says nothing about. A submitted follow-up must answer for each
    /// (NOT_EVALUATED when a lesion could not be assessed).
    pub fn missing(&self, baseline: &BaselineAssessment) -> Vec<String> {
        let mut out = Vec::new();
        for t in &baseline.targets {
            if !self.targets.contains_key(&t.id) {
                out.push(format!("targets.{}", t.id));
            }
        }
        for n in &baseline.non_targets {
            if !self.non_targets.contains_key(&n.id) {
                out.push(format!("non_targets.{}", n.id));
            }
        }
        out
    }

    pub fn to_engine(&self, days_from_baseline: u32) -> Timepoint {
        Timepoint {
            days_from_baseline,
            targets: self
                .targets
                .iter()
                .map(|(id, r)| {
                    let m = match &r.value {
                        TargetValue::Measured(t) => TargetMeasurement::Measured(*t),
                        TargetValue::TooSmall => TargetMeasurement::TooSmall,
                        TargetValue::NotEvaluated => TargetMeasurement::NotEvaluated,
                        TargetValue::Fragments(f) => TargetMeasurement::Fragments(f.clone()),
                        TargetValue::MergedInto(h) => TargetMeasurement::MergedInto(h.clone()),
                    };
                    (id.clone(), m)
                })
                .collect(),
            non_targets: self.non_targets.iter().map(|(id, r)| (id.clone(), r.status.into())).collect(),
            new_lesions: self
                .new_lesions
                .iter()
                .map(|n| NewLesion {
                    id: n.id.clone(),
                    organ: n.organ.clone(),
                    is_node: n.is_node,
                    diameter_mm: n.diameter_mm,
                    category: n.category,
                    equivocal: n.equivocal,
                    further_increase: n.further_increase,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_values_read_and_write_the_documented_forms() {
        let f: FollowUpAssessment = serde_json::from_value(json!({
            "targets": {
                "T1": {"value": 12.3},
                "T2": {"value": "TOO_SMALL"},
                "T3": {"value": {"fragments_mm": [4, 5.5]}},
                "T4": {"value": {"merged_into": "T1"}, "image": {"sop_instance_uid": "2.25.1", "frame": 3, "points": [[1.5, 2.0], [10.0, 12.0]]}},
                "T5": {"value": "NOT_EVALUATED"}
            },
            "non_targets": {"NT1": {"status": "UNEQUIVOCAL_PROGRESSION"}}
        }))
        .unwrap();
        assert_eq!(f.targets["T1"].value, TargetValue::Measured(Tenths::new(123)));
        assert_eq!(f.targets["T3"].value, TargetValue::Fragments(vec![Tenths::new(40), Tenths::new(55)]));
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["targets"]["T1"]["value"], json!(12.3));
        assert_eq!(back["targets"]["T4"]["value"], json!({"merged_into": "T1"}));
        assert_eq!(back["targets"]["T4"]["image"]["frame"], json!(3));
        let tp = f.to_engine(56);
        assert_eq!(tp.targets["T2"], TargetMeasurement::TooSmall);
        assert_eq!(tp.non_targets["NT1"], NonTargetStatus::UnequivocalProgression);
    }

    #[test]
    fn more_than_one_decimal_and_unknown_keys_are_refused() {
        let e = Assessment::parse(&json!({"targets": {"T1": {"value": 12.34}}}), false).unwrap_err();
        assert!(e.starts_with("targets.T1: 12.34 mm has more than 1 decimal place"), "{e}");
        let e = Assessment::parse(&json!({"targets": [], "site": "101"}), true).unwrap_err();
        assert!(e.starts_with("site: unknown key"), "{e}");
        let e = Assessment::parse(&json!({"targets": {"T1": {"value": "SMALL"}}}), false).unwrap_err();
        assert!(e.starts_with("targets.T1: expected a diameter") && e.contains("TOO_SMALL"), "{e}");
        let e =
            Assessment::parse(&json!({"targets": [{"id": "T1", "organ": "liver", "diameter": 5}]}), true).unwrap_err();
        assert!(e.starts_with("targets[0]: unknown field `diameter`"), "{e}");
    }

    #[test]
    fn selection_problems_name_every_broken_rule() {
        let lesion = |id: &str, organ: &str, mm: u32| BaselineLesion {
            id: id.into(),
            organ: organ.into(),
            is_node: false,
            diameter_mm: Some(Tenths::units(mm)),
            image: None,
        };
        let b = BaselineAssessment {
            slice_thickness_mm: None,
            targets: vec![
                lesion("T1", "liver", 20),
                lesion("T2", "liver", 20),
                lesion("T3", "liver", 20),
                lesion("T4", "lung", 8),
                lesion("T5", "lung", 30),
                lesion("T6", "adrenal", 30),
            ],
            non_targets: vec![],
        };
        let p = b.selection_problems().join("\n");
        assert!(p.contains("6 targets selected; at most 5 are allowed"), "{p}");
        assert!(p.contains("3 targets in organ \"liver\""), "{p}");
        assert!(p.contains("target T4: longest diameter 8.0 mm is below the measurable minimum of 10.0 mm"), "{p}");
        assert!(BaselineAssessment::default().selection_problems()[0].contains("no target and no non-target"));
    }

    #[test]
    fn a_follow_up_must_answer_for_every_baseline_lesion() {
        let b: BaselineAssessment = serde_json::from_value(json!({
            "targets": [{"id": "T1", "organ": "liver", "diameter_mm": 20}],
            "non_targets": [{"id": "NT1", "organ": "bone"}]
        }))
        .unwrap();
        let f: FollowUpAssessment = serde_json::from_value(json!({"targets": {"T1": {"value": 18}}})).unwrap();
        assert_eq!(f.missing(&b), vec!["non_targets.NT1".to_string()]);
    }
}
