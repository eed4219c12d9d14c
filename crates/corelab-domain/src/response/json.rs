//! The JSON case format of `corelab recist evaluate FILE.json` (docs/recist.md).
//!
//! Numbers are read from their decimal text (serde_json `RawValue`), never through a float, so
//! "35.1" is exactly 351 tenths of a mm and "12.34" is refused rather than rounded. Every error
//! names the case, the timepoint (when there is one) and the key.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::case::{
    Baseline, BaselineNonTarget, BaselineTarget, CaseInput, Criteria, NewLesion, NewLesionCategory, NonTargetStatus,
    Protocol, ResponseError, TargetMeasurement, Timepoint, case_label, timepoint_label,
};
use super::decimal::{DecimalError, Tenths, parse_scaled};

/// A JSON value that keeps each number's text.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Num(_) => "a number",
            Node::Str(_) => "a string",
            Node::Arr(_) => "an array",
            Node::Obj(_) => "an object",
        }
    }

    fn describe(&self) -> String {
        match self {
            Node::Num(t) => t.clone(),
            Node::Str(s) => format!("\"{s}\""),
            Node::Bool(b) => b.to_string(),
            other => other.kind().to_string(),
        }
    }
}

/// An object's entries in document order, duplicates kept (so they can be reported).
struct Pairs(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Box<RawValue>>()?;
                    out.push((key, value));
                }
                Ok(Pairs(out))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

fn node_from_raw(raw: &RawValue) -> Result<Node, serde_json::Error> {
    let text = raw.get().trim();
    Ok(match text.as_bytes().first() {
        Some(b'{') => {
            let Pairs(pairs) = serde_json::from_str(text)?;
            let mut out = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                out.push((k, node_from_raw(&v)?));
            }
            Node::Obj(out)
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text)?;
            let mut out = Vec::with_capacity(items.len());
            for v in items {
                out.push(node_from_raw(&v)?);
            }
            Node::Arr(out)
        }
        Some(b'"') => Node::Str(serde_json::from_str(text)?),
        Some(b't' | b'f') => Node::Bool(serde_json::from_str(text)?),
        Some(b'n') => Node::Null,
        _ => Node::Num(text.to_string()),
    })
}

fn parse_tree(input: &str) -> Result<Node, ResponseError> {
    let raw: Box<RawValue> = serde_json::from_str(input).map_err(|e| ResponseError::Json(e.to_string()))?;
    node_from_raw(&raw).map_err(|e| ResponseError::Json(e.to_string()))
}

/// Where in the input we are, for error messages.
struct Cx<'a> {
    case: &'a str,
    timepoint: Option<String>,
}

impl Cx<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ResponseError {
        ResponseError::Invalid {
            case: self.case.to_string(),
            timepoint: self.timepoint.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn expected(&self, key: &str, what: &str, got: &Node) -> ResponseError {
        self.err(key, format!("expected {what}, got {}", got.describe()))
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// An object with its allowed keys checked: no unknown, duplicate or missing required key.
struct Obj<'n> {
    pairs: &'n [(String, Node)],
    prefix: String,
}

impl<'n> Obj<'n> {
    fn new(
        cx: &Cx<'_>,
        node: &'n Node,
        prefix: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Result<Self, ResponseError> {
        let Node::Obj(pairs) = node else {
            let key = if prefix.is_empty() { "(case)" } else { prefix };
            return Err(cx.expected(key, "an object", node));
        };
        let mut seen = BTreeSet::new();
        for (k, _) in pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(cx.err(&join(prefix, k), format!("unknown key; allowed here: {}", allowed.join(", "))));
            }
            if !seen.insert(k.as_str()) {
                return Err(cx.err(&join(prefix, k), "key appears twice"));
            }
        }
        for r in required {
            if !seen.contains(r) {
                return Err(cx.err(&join(prefix, r), "required key is missing"));
            }
        }
        Ok(Obj { pairs, prefix: prefix.to_string() })
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn key(&self, key: &str) -> String {
        join(&self.prefix, key)
    }
}

fn as_string(cx: &Cx<'_>, node: &Node, key: &str) -> Result<String, ResponseError> {
    match node {
        Node::Str(s) if !s.trim().is_empty() => Ok(s.clone()),
        Node::Str(_) => Err(cx.err(key, "must not be empty")),
        other => Err(cx.expected(key, "a string", other)),
    }
}

fn as_bool(cx: &Cx<'_>, node: &Node, key: &str) -> Result<bool, ResponseError> {
    match node {
        Node::Bool(b) => Ok(*b),
        other => Err(cx.expected(key, "true or false", other)),
    }
}

fn as_days(cx: &Cx<'_>, node: &Node, key: &str) -> Result<u32, ResponseError> {
    let Node::Num(text) = node else {
        return Err(cx.expected(key, "a whole number of days", node));
    };
    match parse_scaled(text, 0) {
        Ok(v) => {
            u32::try_from(v).map_err(|_| cx.err(key, format!("{text} is not a number of days (0 to {})", u32::MAX)))
        }
        Err(DecimalError::TooManyDecimals(_)) => Err(cx.err(key, format!("{text} is not a whole number of days"))),
        Err(e) => Err(cx.err(key, format!("{text} {e}"))),
    }
}

fn as_mm(cx: &Cx<'_>, node: &Node, key: &str) -> Result<Tenths, ResponseError> {
    let Node::Num(text) = node else {
        return Err(cx.expected(key, "a number in mm with at most one decimal", node));
    };
    Tenths::parse(text).map_err(|e| cx.err(key, format!("{text} mm {e}")))
}

fn opt<'n>(obj: &Obj<'n>, key: &str) -> Option<&'n Node> {
    obj.get(key).filter(|n| !matches!(n, Node::Null))
}

fn parse_protocol(cx: &Cx<'_>, node: &Node) -> Result<Protocol, ResponseError> {
    let o = Obj::new(
        cx,
        node,
        "protocol",
        &[
            "confirmation_required",
            "confirmation_min_days",
            "sd_min_days_from_baseline",
            "confirmation_allow_ne_between",
            "irecist_confirmation_min_days",
            "irecist_new_lesion_iupd_allows_ipr",
        ],
        &["confirmation_required", "sd_min_days_from_baseline"],
    )?;
    let req = |k: &str| o.get(k).ok_or_else(|| cx.err(&o.key(k), "required key is missing"));
    let mut p = Protocol::new(
        as_bool(cx, req("confirmation_required")?, &o.key("confirmation_required"))?,
        as_days(cx, req("sd_min_days_from_baseline")?, &o.key("sd_min_days_from_baseline"))?,
    );
    if let Some(n) = opt(&o, "confirmation_min_days") {
        p.confirmation_min_days = as_days(cx, n, &o.key("confirmation_min_days"))?;
    }
    if let Some(n) = opt(&o, "confirmation_allow_ne_between") {
        p.confirmation_allow_ne_between = as_bool(cx, n, &o.key("confirmation_allow_ne_between"))?;
    }
    if let Some(n) = opt(&o, "irecist_confirmation_min_days") {
        p.irecist_confirmation_min_days = as_days(cx, n, &o.key("irecist_confirmation_min_days"))?;
    }
    if let Some(n) = opt(&o, "irecist_new_lesion_iupd_allows_ipr") {
        p.irecist_new_lesion_iupd_allows_ipr = as_bool(cx, n, &o.key("irecist_new_lesion_iupd_allows_ipr"))?;
    }
    Ok(p)
}

fn items<'n>(cx: &Cx<'_>, node: Option<&'n Node>, key: &str) -> Result<&'n [Node], ResponseError> {
    match node {
        None | Some(Node::Null) => Ok(&[]),
        Some(Node::Arr(items)) => Ok(items),
        Some(other) => Err(cx.expected(key, "an array", other)),
    }
}

fn parse_baseline(cx: &Cx<'_>, node: &Node) -> Result<Baseline, ResponseError> {
    let o = Obj::new(cx, node, "baseline", &["targets", "non_targets", "slice_thickness_mm"], &[])?;
    let mut baseline = Baseline::default();
    if let Some(n) = opt(&o, "slice_thickness_mm") {
        baseline.slice_thickness_mm = Some(as_mm(cx, n, &o.key("slice_thickness_mm"))?);
    }
    for (i, item) in items(cx, o.get("targets"), "baseline.targets")?.iter().enumerate() {
        let prefix = format!("baseline.targets[{i}]");
        let t = Obj::new(
            cx,
            item,
            &prefix,
            &["id", "organ", "is_node", "diameter_mm"],
            &["id", "organ", "is_node", "diameter_mm"],
        )?;
        let field = |k: &str| t.get(k).ok_or_else(|| cx.err(&t.key(k), "required key is missing"));
        baseline.targets.push(BaselineTarget {
            id: as_string(cx, field("id")?, &t.key("id"))?,
            organ: as_string(cx, field("organ")?, &t.key("organ"))?,
            is_node: as_bool(cx, field("is_node")?, &t.key("is_node"))?,
            diameter_mm: as_mm(cx, field("diameter_mm")?, &t.key("diameter_mm"))?,
        });
    }
    for (i, item) in items(cx, o.get("non_targets"), "baseline.non_targets")?.iter().enumerate() {
        let prefix = format!("baseline.non_targets[{i}]");
        let n = Obj::new(cx, item, &prefix, &["id", "organ", "is_node", "diameter_mm"], &["id", "organ", "is_node"])?;
        let field = |k: &str| n.get(k).ok_or_else(|| cx.err(&n.key(k), "required key is missing"));
        baseline.non_targets.push(BaselineNonTarget {
            id: as_string(cx, field("id")?, &n.key("id"))?,
            organ: as_string(cx, field("organ")?, &n.key("organ"))?,
            is_node: as_bool(cx, field("is_node")?, &n.key("is_node"))?,
            diameter_mm: match opt(&n, "diameter_mm") {
                Some(v) => Some(as_mm(cx, v, &n.key("diameter_mm"))?),
                None => None,
            },
        });
    }
    Ok(baseline)
}

const TARGET_FORMS: &str =
    "a number in mm, \"TOO_SMALL\", \"NOT_EVALUATED\", {\"fragments_mm\": [..]} or {\"merged_into\": \"<target id>\"}";

fn parse_target_value(cx: &Cx<'_>, node: &Node, key: &str) -> Result<TargetMeasurement, ResponseError> {
    match node {
        Node::Num(_) => Ok(TargetMeasurement::Measured(as_mm(cx, node, key)?)),
        Node::Str(s) => match s.as_str() {
            "TOO_SMALL" => Ok(TargetMeasurement::TooSmall),
            "NOT_EVALUATED" => Ok(TargetMeasurement::NotEvaluated),
            _ => Err(cx.expected(key, TARGET_FORMS, node)),
        },
        Node::Obj(pairs) => match pairs.as_slice() {
            [(k, Node::Arr(parts))] if k == "fragments_mm" => {
                let mut out = Vec::with_capacity(parts.len());
                for (i, p) in parts.iter().enumerate() {
                    out.push(as_mm(cx, p, &format!("{key}.fragments_mm[{i}]"))?);
                }
                Ok(TargetMeasurement::Fragments(out))
            }
            [(k, v)] if k == "merged_into" => {
                Ok(TargetMeasurement::MergedInto(as_string(cx, v, &format!("{key}.merged_into"))?))
            }
            _ => Err(cx.err(key, format!("expected {TARGET_FORMS}"))),
        },
        other => Err(cx.expected(key, TARGET_FORMS, other)),
    }
}

fn parse_nt_status(cx: &Cx<'_>, node: &Node, key: &str) -> Result<NonTargetStatus, ResponseError> {
    const FORMS: &str =
        "\"ABSENT\", \"PRESENT\", \"UNEQUIVOCAL_PROGRESSION\", \"NOT_EVALUATED\" or \"FURTHER_INCREASE\"";
    let Node::Str(s) = node else {
        return Err(cx.expected(key, FORMS, node));
    };
    Ok(match s.as_str() {
        "ABSENT" => NonTargetStatus::Absent,
        "PRESENT" => NonTargetStatus::Present,
        "UNEQUIVOCAL_PROGRESSION" => NonTargetStatus::UnequivocalProgression,
        "NOT_EVALUATED" => NonTargetStatus::NotEvaluated,
        "FURTHER_INCREASE" => NonTargetStatus::FurtherIncrease,
        _ => return Err(cx.expected(key, FORMS, node)),
    })
}

fn parse_new_lesion(cx: &Cx<'_>, node: &Node, prefix: &str) -> Result<NewLesion, ResponseError> {
    let o = Obj::new(
        cx,
        node,
        prefix,
        &["id", "organ", "is_node", "diameter_mm", "category", "equivocal", "further_increase"],
        &["id", "organ"],
    )?;
    let field = |k: &str| o.get(k).ok_or_else(|| cx.err(&o.key(k), "required key is missing"));
    let flag = |k: &str| match opt(&o, k) {
        Some(n) => as_bool(cx, n, &o.key(k)),
        None => Ok(false),
    };
    let category = match opt(&o, "category") {
        None => None,
        Some(Node::Str(s)) if s == "NLT" => Some(NewLesionCategory::Target),
        Some(Node::Str(s)) if s == "NLNT" => Some(NewLesionCategory::NonTarget),
        Some(other) => return Err(cx.expected(&o.key("category"), "\"NLT\" or \"NLNT\"", other)),
    };
    Ok(NewLesion {
        id: as_string(cx, field("id")?, &o.key("id"))?,
        organ: as_string(cx, field("organ")?, &o.key("organ"))?,
        is_node: flag("is_node")?,
        diameter_mm: match opt(&o, "diameter_mm") {
            Some(n) => Some(as_mm(cx, n, &o.key("diameter_mm"))?),
            None => None,
        },
        category,
        equivocal: flag("equivocal")?,
        further_increase: flag("further_increase")?,
    })
}

fn parse_timepoint(case: &str, index: usize, node: &Node) -> Result<Timepoint, ResponseError> {
    let mut cx = Cx { case, timepoint: Some(timepoint_label(index, None)) };
    // Read the day first so that every other error can name it.
    if let Node::Obj(pairs) = node
        && let Some((_, day_node)) = pairs.iter().find(|(k, _)| k == "days_from_baseline")
    {
        let day = as_days(&cx, day_node, "days_from_baseline")?;
        cx.timepoint = Some(timepoint_label(index, Some(day)));
    }
    let o = Obj::new(
        &cx,
        node,
        "",
        &["days_from_baseline", "targets", "non_targets", "new_lesions"],
        &["days_from_baseline"],
    )?;
    let day_node =
        o.get("days_from_baseline").ok_or_else(|| cx.err("days_from_baseline", "required key is missing"))?;
    let day = as_days(&cx, day_node, "days_from_baseline")?;
    let mut tp = Timepoint { days_from_baseline: day, ..Timepoint::default() };
    match opt(&o, "targets") {
        None => {}
        Some(Node::Obj(pairs)) => {
            for (id, value) in pairs {
                let key = format!("targets.{id}");
                if tp.targets.insert(id.clone(), parse_target_value(&cx, value, &key)?).is_some() {
                    return Err(cx.err(&key, "key appears twice"));
                }
            }
        }
        Some(other) => {
            return Err(cx.expected("targets", "an object of target id -> measurement", other));
        }
    }
    match opt(&o, "non_targets") {
        None => {}
        Some(Node::Obj(pairs)) => {
            for (id, value) in pairs {
                let key = format!("non_targets.{id}");
                if tp.non_targets.insert(id.clone(), parse_nt_status(&cx, value, &key)?).is_some() {
                    return Err(cx.err(&key, "key appears twice"));
                }
            }
        }
        Some(other) => {
            return Err(cx.expected("non_targets", "an object of non-target id -> status", other));
        }
    }
    for (i, item) in items(&cx, o.get("new_lesions"), "new_lesions")?.iter().enumerate() {
        tp.new_lesions.push(parse_new_lesion(&cx, item, &format!("new_lesions[{i}]"))?);
    }
    Ok(tp)
}

fn parse_case(index: usize, node: &Node) -> Result<CaseInput, ResponseError> {
    // The id comes first so that every later error can name the case.
    let provisional = case_label(None, index);
    let id = match node {
        Node::Obj(pairs) => match pairs.iter().find(|(k, _)| k == "id").map(|(_, v)| v) {
            None | Some(Node::Null) => None,
            Some(v) => Some(as_string(&Cx { case: &provisional, timepoint: None }, v, "id")?),
        },
        _ => None,
    };
    let label = case_label(id.as_deref(), index);
    let cx = Cx { case: &label, timepoint: None };
    let o = Obj::new(
        &cx,
        node,
        "",
        &["id", "criteria", "protocol", "baseline", "timepoints"],
        &["criteria", "protocol", "baseline", "timepoints"],
    )?;
    let req = |k: &str| o.get(k).ok_or_else(|| cx.err(k, "required key is missing"));
    let criteria = match req("criteria")? {
        Node::Str(s) if s == "RECIST1.1" => Criteria::Recist11,
        Node::Str(s) if s == "iRECIST" => Criteria::IRecist,
        other => return Err(cx.expected("criteria", "\"RECIST1.1\" or \"iRECIST\"", other)),
    };
    let protocol = parse_protocol(&cx, req("protocol")?)?;
    let baseline = parse_baseline(&cx, req("baseline")?)?;
    let Node::Arr(tps) = req("timepoints")? else {
        return Err(cx.expected("timepoints", "an array", req("timepoints")?));
    };
    let mut timepoints = Vec::with_capacity(tps.len());
    for (i, tp) in tps.iter().enumerate() {
        timepoints.push(parse_timepoint(&label, i, tp)?);
    }
    Ok(CaseInput { id, criteria, protocol, baseline, timepoints })
}

/// Parses a case object or an array of them. The bool is true when the input was a single object.
pub(crate) fn parse_input(input: &str) -> Result<(Vec<CaseInput>, bool), ResponseError> {
    match parse_tree(input)? {
        node @ Node::Obj(_) => Ok((vec![parse_case(0, &node)?], true)),
        Node::Arr(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(parse_case(i, item)?);
            }
            Ok((out, false))
        }
        other => Err(ResponseError::Json(format!(
            "expected a case object or an array of case objects, got {}",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        let node = parse_tree(r#"{"a": 35.10, "b": [1e1, -0.0], "c": "x"}"#).unwrap();
        let Node::Obj(pairs) = node else { panic!("not an object") };
        assert!(matches!(&pairs[0].1, Node::Num(t) if t == "35.10"));
        let Node::Arr(b) = &pairs[1].1 else { panic!("not an array") };
        assert!(matches!(&b[0], Node::Num(t) if t == "1e1"));
    }

    #[test]
    fn duplicate_keys_are_kept_for_reporting() {
        let node = parse_tree(r#"{"a": 1, "a": 2}"#).unwrap();
        let Node::Obj(pairs) = node else { panic!("not an object") };
        assert_eq!(pairs.len(), 2);
    }
}
