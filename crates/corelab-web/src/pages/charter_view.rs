//! A charter (the role-filtered JSON view the use case returns) as sections of indented rows, so
//! a template shows it without knowing its shape: whatever the use case leaves out for a role
//! (arms, sites, AE titles) is simply not there.

use serde_json::Value;

pub struct Section {
    pub title: String,
    /// Anchor id of the section.
    pub id: String,
    pub rows: Vec<Row>,
}

pub struct Row {
    /// 0 to 4: how far the row is indented.
    pub depth: usize,
    pub key: String,
    /// `None` for a heading row (an object or a list of objects follows).
    pub value: Option<String>,
}

fn label(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("none".into()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            Some(if a.is_empty() { "none".into() } else { a.iter().filter_map(scalar).collect::<Vec<_>>().join(", ") })
        }
        _ => None,
    }
}

/// A title for one element of a list of objects: its id (and label or name), else its number.
fn item_title(i: usize, v: &Value) -> String {
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match (get("id"), get("label").or_else(|| get("name"))) {
        (Some(id), Some(l)) => format!("{id}: {l}"),
        (Some(id), None) => id,
        (None, Some(l)) => l,
        (None, None) => format!("#{}", i + 1),
    }
}

/// An object's entries with `id`, `name` and `label` first, the rest alphabetically.
fn ordered(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = m.iter().collect();
    v.sort_by_key(|(k, _)| (["id", "name", "label"].iter().position(|f| f == k).unwrap_or(3), k.as_str()));
    v
}

fn walk(rows: &mut Vec<Row>, depth: usize, key: String, v: &Value) {
    let depth = depth.min(4);
    if let Some(s) = scalar(v) {
        rows.push(Row { depth, key, value: Some(s) });
        return;
    }
    rows.push(Row { depth, key, value: None });
    match v {
        Value::Object(m) => {
            for (k, x) in ordered(m) {
                walk(rows, depth + 1, label(k), x);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                item(rows, depth + 1, i, x);
            }
        }
        _ => {}
    }
}

/// One element of a list: a heading with its id and label, then its other fields.
fn item(rows: &mut Vec<Row>, depth: usize, i: usize, v: &Value) {
    let Value::Object(m) = v else { return walk(rows, depth, item_title(i, v), v) };
    rows.push(Row { depth: depth.min(4), key: item_title(i, v), value: None });
    let in_title = |k: &str| matches!(k, "id" | "label" | "name") && m.get(k).is_some_and(Value::is_string);
    for (k, x) in ordered(m).into_iter().filter(|(k, _)| !in_title(k)) {
        walk(rows, depth + 1, label(k), x);
    }
}

/// The charter's top-level parts, in the charter file's order of importance.
pub fn sections(charter: &Value) -> Vec<Section> {
    const ORDER: &[&str] = &[
        "trial",
        "sites",
        "subjects",
        "arms",
        "schedule",
        "visits",
        "imaging",
        "qc",
        "reads",
        "deidentification",
        "dimse",
    ];
    let Some(obj) = charter.as_object() else { return Vec::new() };
    let mut keys: Vec<&String> = obj.keys().filter(|k| *k != "format" && *k != "version").collect();
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    keys.into_iter()
        .map(|k| {
            let mut rows = Vec::new();
            match &obj[k] {
                Value::Object(m) => ordered(m).into_iter().for_each(|(kk, x)| walk(&mut rows, 0, label(kk), x)),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| item(&mut rows, 0, i, x)),
                other => walk(&mut rows, 0, label(k), other),
            }
            Section { title: label(k), id: format!("charter-{k}"), rows }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_become_indented_rows_and_missing_parts_stay_missing() {
        let c = json!({
            "format": 1,
            "trial": {"protocol_id": "X-1", "blinding": {"sponsor_blinded": true}},
            "visits": [{"id": "BL", "label": "Baseline", "imaging": ["CT"]}],
        });
        let s = sections(&c);
        assert_eq!(s.iter().map(|s| s.title.as_str()).collect::<Vec<_>>(), ["Trial", "Visits"]);
        let trial: Vec<(usize, &str, Option<&str>)> =
            s[0].rows.iter().map(|r| (r.depth, r.key.as_str(), r.value.as_deref())).collect();
        assert_eq!(
            trial,
            [(0, "Blinding", None), (1, "Sponsor blinded", Some("yes")), (0, "Protocol id", Some("X-1"))]
        );
        let visits: Vec<(usize, &str, Option<&str>)> =
            s[1].rows.iter().map(|r| (r.depth, r.key.as_str(), r.value.as_deref())).collect();
        // The id and label head the item and are not repeated below it.
        assert_eq!(visits, [(0, "BL: Baseline", None), (1, "Imaging", Some("CT"))]);
    }
}
