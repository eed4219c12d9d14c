//! What changed between two charter versions, in readable lines.
//!
//! Entities with IDs (sites, arms, visits, imaging requirements, series) are matched by ID and
//! reported as added, removed or changed field by field; sections without IDs are compared field
//! by field. Visits are compared after expanding repeats, so "every 8 weeks" becoming "every 12
//! weeks" shows as the visits that appear and disappear. Every field of the model takes part,
//! because fields are enumerated through `Serialize`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::model::Charter;
use super::validate::fmt_num;

/// The thing a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// Top-level `format` and `version`.
    Charter,
    Trial,
    Dimse,
    Subjects,
    Schedule,
    Deidentification,
    Qc,
    Reads,
    Site(String),
    Arm(String),
    Visit(String),
    Imaging(String),
    Series(String),
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Charter => f.write_str("charter"),
            Entity::Trial => f.write_str("trial"),
            Entity::Dimse => f.write_str("dimse"),
            Entity::Subjects => f.write_str("subjects"),
            Entity::Schedule => f.write_str("schedule"),
            Entity::Deidentification => f.write_str("deidentification"),
            Entity::Qc => f.write_str("qc"),
            Entity::Reads => f.write_str("reads"),
            Entity::Site(id) => write!(f, "site {id}"),
            Entity::Arm(id) => write!(f, "arm {id}"),
            Entity::Visit(id) => write!(f, "visit {id}"),
            Entity::Imaging(id) => write!(f, "imaging {id}"),
            Entity::Series(id) => write!(f, "series {id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// `field` is a path inside the entity, e.g. `constraints.slice_thickness_mm.max`; values are
    /// rendered as in the charter ("(none)" when absent).
    Modified {
        field: String,
        old: String,
        new: String,
    },
}

/// One difference between two charter versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub entity: Entity,
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Added => write!(f, "{} added", self.entity),
            ChangeKind::Removed => write!(f, "{} removed", self.entity),
            ChangeKind::Modified { field, old, new } => {
                write!(f, "{}: {field} {old} -> {new}", self.entity)
            }
        }
    }
}

/// The changes from `old` to `new`, in charter order.
pub fn diff(old: &Charter, new: &Charter) -> Vec<Change> {
    let mut out = Vec::new();
    let meta = |c: &Charter| {
        let mut m = BTreeMap::new();
        m.insert("format".to_string(), c.format.to_string());
        m.insert("version".to_string(), quote(&c.version));
        m
    };
    fields_changed(&mut out, Entity::Charter, &meta(old), &meta(new));
    section(&mut out, Entity::Trial, &old.trial, &new.trial);
    section(&mut out, Entity::Dimse, &old.dimse, &new.dimse);
    keyed(
        &mut out,
        Entity::Site,
        old.sites.iter().map(|s| (s.id.clone(), flatten_of(s))),
        new.sites.iter().map(|s| (s.id.clone(), flatten_of(s))),
    );
    section(&mut out, Entity::Subjects, &old.subjects, &new.subjects);
    keyed(
        &mut out,
        Entity::Arm,
        old.arms.iter().map(|a| (a.id.clone(), flatten_of(a))),
        new.arms.iter().map(|a| (a.id.clone(), flatten_of(a))),
    );
    section(&mut out, Entity::Schedule, &old.schedule, &new.schedule);
    keyed(
        &mut out,
        Entity::Visit,
        old.scheduled_visits().into_iter().map(|v| (v.id.clone(), flatten_of(&v))),
        new.scheduled_visits().into_iter().map(|v| (v.id.clone(), flatten_of(&v))),
    );
    let requirements = |c: &Charter| -> Vec<(String, Fields)> {
        c.imaging
            .iter()
            .map(|r| {
                let mut f = flatten_of(r);
                f.retain(|k, _| !(k == "series" || k.starts_with("series[")));
                (r.id.clone(), f)
            })
            .collect()
    };
    keyed(&mut out, Entity::Imaging, requirements(old), requirements(new));
    let series = |c: &Charter| -> Vec<(String, Fields)> {
        c.imaging
            .iter()
            .flat_map(|r| {
                r.series.iter().map(|s| {
                    let mut f = flatten_of(s);
                    f.insert("imaging".into(), quote(&r.id));
                    (s.id.clone(), f)
                })
            })
            .collect()
    };
    keyed(&mut out, Entity::Series, series(old), series(new));
    section(&mut out, Entity::Deidentification, &old.deidentification, &new.deidentification);
    section(&mut out, Entity::Qc, &old.qc, &new.qc);
    section(&mut out, Entity::Reads, &old.reads, &new.reads);
    out
}

/// Field path -> rendered value.
type Fields = BTreeMap<String, String>;

fn flatten_of<T: Serialize>(value: &T) -> Fields {
    let mut out = Fields::new();
    flatten(&serde_json::to_value(value).unwrap_or(Value::Null), "", &mut out);
    out.remove("id");
    out
}

fn flatten(value: &Value, prefix: &str, out: &mut Fields) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, &path, out);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &format!("{prefix}[{i}]"), out);
            }
        }
        other => {
            out.insert(prefix.to_string(), render(other));
        }
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        Value::String(s) => quote(s),
        Value::Array(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => "{...}".into(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn section<T: Serialize>(out: &mut Vec<Change>, entity: Entity, old: &T, new: &T) {
    fields_changed(out, entity, &flatten_of(old), &flatten_of(new));
}

fn fields_changed(out: &mut Vec<Change>, entity: Entity, old: &Fields, new: &Fields) {
    let none = "(none)".to_string();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (a, b) = (old.get(key).unwrap_or(&none), new.get(key).unwrap_or(&none));
        if a != b {
            out.push(Change {
                entity: entity.clone(),
                kind: ChangeKind::Modified { field: key.clone(), old: a.clone(), new: b.clone() },
            });
        }
    }
}

/// Compare entities matched by ID: removed ones (old order), then added and changed ones (new
/// order).
fn keyed(
    out: &mut Vec<Change>,
    entity: impl Fn(String) -> Entity,
    old: impl IntoIterator<Item = (String, Fields)>,
    new: impl IntoIterator<Item = (String, Fields)>,
) {
    let old: Vec<(String, Fields)> = old.into_iter().collect();
    let new: Vec<(String, Fields)> = new.into_iter().collect();
    for (id, _) in &old {
        if !new.iter().any(|(n, _)| n == id) {
            out.push(Change { entity: entity(id.clone()), kind: ChangeKind::Removed });
        }
    }
    for (id, fields) in &new {
        match old.iter().find(|(o, _)| o == id) {
            None => out.push(Change { entity: entity(id.clone()), kind: ChangeKind::Added }),
            Some((_, before)) => fields_changed(out, entity(id.clone()), before, fields),
        }
    }
}
