//! `docs/charter.schema.json` stays in step with the reader and the model: same keys per table,
//! same words per enum, and the example charters (as written and as read) validate against it.

use std::collections::BTreeSet;

use serde_json::Value;
use toml::de::{DeTable, DeValue};

use super::super::read::keys;
use super::super::*;
use super::EXAMPLES;

const SCHEMA: &str = include_str!("../../../../../docs/charter.schema.json");

/// A charter that uses every key of every table at least once.
const EVERYTHING: &str = r#"format = 1
version = "3.1"

[trial]
sponsor = "Everything Pharma"
protocol_id = "ALL-1"
protocol_name = "Every key once"
therapeutic_area = "oncology"

[trial.blinding]
readers_blinded_to_dates = false
timepoint_labels = "days_from_baseline"
sponsor_blinded = false

[dimse]
called_ae_titles = ["ALL1"]

[[sites]]
id = "S1"
name = "Site"
country = "JP"
ae_titles = ["S1_CT"]

[subjects]
id_pattern = "{site}-{nnnn}"

[[arms]]
id = "A"
label = "Arm A"

[schedule]
anchor = "enrollment"
unscheduled_visits_allowed = false

[[visits]]
id = "BL"
label = "Baseline"
baseline = true
window = { minus_days = 28, plus_days = 3 }
imaging = ["CT", "MR"]
imaging_rule = "all"

[[visits]]
id = "D{day}"
label = "Day {day}"
days = [21]
window = { minus_days = 3, plus_days = 3 }
imaging = ["CT"]
series = ["CT_PV"]

[[visits]]
id = "W{week}"
label = "Week {week}"
every_weeks = 6
from_week = 6
until_week = 24
window = { minus_days = 7, plus_days = 7 }
imaging = ["CT", "MR"]
imaging_rule = "one_of"

[[visits]]
id = "EOT"
label = "End of treatment"
day = 365
window = { minus_days = 14, plus_days = 28 }
imaging = ["CT"]

[[imaging]]
id = "CT"
modality = "CT"
body_region = "chest"
body_part_examined = ["CHEST"]

[[imaging.series]]
id = "CT_PV"
description = "venous"
required = true
identify = { series_description = ["*VEN*"], protocol_name = ["*CHEST*"], image_type = ["ORIGINAL"], contrast = true }

[imaging.series.constraints]
slice_thickness_mm = { min = 0.5, max = 5 }
slice_spacing_mm = { max = 5 }
slice_gap_mm = { min = -1.0, max = 0 }
pixel_spacing_mm = { min = 0.5, max = 1 }
matrix_min = 512
kvp = { min = 80, max = 140 }
contrast = { agent = "required", phase = "portal_venous", min_delay_minutes = 1 }
same_scanner_as_baseline = true
baseline_tolerance = { slice_thickness_mm = 1, pixel_spacing_mm = 0.2, kvp = 20 }

[[imaging]]
id = "MR"
modality = "MR"
body_region = "liver"

[[imaging.series]]
id = "MR_T1"
description = "T1"
identify = { series_description = ["*T1*"] }

[imaging.series.constraints]
field_strength_t = { min = 1.5, max = 3 }
mr_sequence = "T1"
mr_acquisition = "3D"
baseline_tolerance = { field_strength_t = 0 }

[deidentification]
dates = "keep"
max_shift_days = 0
retain_patient_characteristics = true
retain_device_identity = true
retain_institution_identity = true
retain_uids = false
retain_safe_private = true
safe_private = [{ creator = "SIEMENS CSA HEADER", group = 0x0029, element = 0x10 }]
clean_descriptors = true
descriptor_allow_list = ["*VEN*", "*CHEST*", "*T1*"]

[[deidentification.pixel_masks]]
manufacturer = "ACME US"
model = "Sono 1"
rows = 600
columns = 800

[[deidentification.pixel_masks.regions]]
x = 0
y = 0
width = 800
height = 40

[qc]
stages = "automated"

[reads]
criteria = ["RECIST1.1", "iRECIST", "LVEF"]
readers_per_case = 2
paradigm = "all_timepoints"
sd_min_days = 35
confirmation_required = true
confirmation_min_days = 28
measures = ["lvef"]

[reads.adjudication]
triggers = ["best_overall_response", "any_timepoint"]
choice = "per_variable"
ef_tolerance_points = 4.5

[reads.reader_qualifications]
therapeutic_area = "oncology"
criteria = ["RECIST1.1", "iRECIST", "LVEF"]
training_current = true
"#;

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("docs/charter.schema.json is JSON")
}

fn table_schema<'a>(schema: &'a Value, name: &str) -> &'a Value {
    if name == "charter" { schema } else { &schema["$defs"][name] }
}

fn toml_json(v: &DeValue<'_>) -> Value {
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).map_or(Value::Null, Value::from),
        DeValue::Float(f) => f.as_str().parse::<f64>().map_or(Value::Null, Value::from),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(items.iter().map(|i| toml_json(i.get_ref())).collect()),
        DeValue::Table(t) => table_json(t),
    }
}

fn table_json(t: &DeTable<'_>) -> Value {
    Value::Object(t.iter().map(|(k, v)| (k.get_ref().to_string(), toml_json(v.get_ref()))).collect())
}

fn document_json(text: &str) -> Value {
    table_json(DeTable::parse(text).expect("valid TOML").get_ref())
}

/// JSON nulls stand for absent optional fields (e.g. `PixelMask::model`): drop them.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// A small JSON Schema (2020-12) checker covering the keywords the charter schema uses, except
/// `pattern` (no regex engine here; the patterns mirror rules the charter validator enforces).
struct SchemaCheck<'s> {
    root: &'s Value,
    errors: Vec<String>,
    /// (table name, key) pairs met in the document.
    seen: BTreeSet<(String, String)>,
}

impl<'s> SchemaCheck<'s> {
    fn new(root: &'s Value) -> Self {
        SchemaCheck { root, errors: Vec::new(), seen: BTreeSet::new() }
    }

    fn run(root: &'s Value, doc: &Value) -> Self {
        let mut c = SchemaCheck::new(root);
        c.check(root, doc, "", "charter");
        c
    }

    fn fail(&mut self, path: &str, message: String) {
        self.errors.push(format!("{path}: {message}"));
    }

    fn check(&mut self, schema: &'s Value, doc: &Value, path: &str, table: &str) {
        let mut table = table.to_string();
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix("#/$defs/").expect("local $ref");
            let target = &self.root["$defs"][name];
            assert!(target.is_object(), "dangling $ref {r}");
            self.check(target, doc, path, name);
            table = name.to_string();
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let ok = types.iter().any(|t| match *t {
                "object" => doc.is_object(),
                "array" => doc.is_array(),
                "string" => doc.is_string(),
                "boolean" => doc.is_boolean(),
                "integer" => doc.is_i64() || doc.is_u64(),
                "number" => doc.is_number(),
                _ => false,
            });
            if !ok {
                self.fail(path, format!("expected {types:?}, found {doc}"));
                return;
            }
        }
        if let Some(c) = schema.get("const")
            && c != doc
        {
            self.fail(path, format!("expected {c}, found {doc}"));
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(doc)
        {
            self.fail(path, format!("{doc} is not one of {e:?}"));
        }
        if let Some(n) = doc.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                self.fail(path, format!("{n} < minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                self.fail(path, format!("{n} > maximum {max}"));
            }
        }
        if let Some(s) = doc.as_str() {
            let len = s.chars().count() as u64;
            if schema.get("minLength").and_then(Value::as_u64).is_some_and(|m| len < m) {
                self.fail(path, "string too short".into());
            }
            if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|m| len > m) {
                self.fail(path, "string too long".into());
            }
        }
        if let Some(items) = doc.as_array() {
            if schema.get("minItems").and_then(Value::as_u64).is_some_and(|m| (items.len() as u64) < m) {
                self.fail(path, "too few items".into());
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{i}]"), &table);
                }
            }
        }
        if let Some(obj) = doc.as_object() {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for k in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(k) {
                        self.fail(path, format!("missing required `{k}`"));
                    }
                }
            }
            if schema.get("minProperties").and_then(Value::as_u64).is_some_and(|m| (obj.len() as u64) < m) {
                self.fail(path, "too few properties".into());
            }
            if let Some(dep) = schema.get("dependentRequired").and_then(Value::as_object) {
                for (k, needs) in dep {
                    if obj.contains_key(k) {
                        for n in needs.as_array().into_iter().flatten().filter_map(Value::as_str) {
                            if !obj.contains_key(n) {
                                self.fail(path, format!("`{k}` needs `{n}`"));
                            }
                        }
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, v) in obj {
                    let kpath = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    match props.get(k) {
                        Some(s) => {
                            self.seen.insert((table.clone(), k.clone()));
                            self.check(s, v, &kpath, &table);
                        }
                        None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                            self.fail(&kpath, "unknown key".into());
                        }
                        None => {}
                    }
                }
            }
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let passing = branches
                .iter()
                .filter(|b| {
                    let mut sub = SchemaCheck::new(self.root);
                    sub.check(b, doc, path, &table);
                    sub.errors.is_empty()
                })
                .count();
            if passing != 1 {
                self.fail(path, format!("matches {passing} of the oneOf branches, not exactly 1"));
            }
        }
    }
}

#[test]
fn schema_tables_have_exactly_the_reader_keys() {
    let schema = schema();
    for (name, table_keys) in keys::TABLES {
        let node = table_schema(&schema, name);
        assert_eq!(node["additionalProperties"], Value::Bool(false), "{name}: closed");
        let in_schema: BTreeSet<&str> =
            node["properties"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        let in_reader: BTreeSet<&str> = table_keys.iter().copied().collect();
        assert_eq!(in_schema, in_reader, "keys of `{name}`");
    }
}

#[test]
fn schema_enums_have_exactly_the_model_words() {
    fn words<T: Copy>(all: &[T], f: impl Fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| f(*v).to_string()).collect()
    }
    let schema = schema();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("/$defs/therapeutic_area/enum", words(TherapeuticArea::ALL, TherapeuticArea::as_str)),
        ("/$defs/criteria/enum", words(Criteria::ALL, Criteria::as_str)),
        ("/$defs/blinding/properties/timepoint_labels/enum", words(TimepointLabels::ALL, TimepointLabels::as_str)),
        ("/$defs/schedule/properties/anchor/enum", words(Anchor::ALL, Anchor::as_str)),
        ("/$defs/visit/properties/imaging_rule/enum", words(ImagingRule::ALL, ImagingRule::as_str)),
        ("/$defs/imaging/properties/modality/enum", words(Modality::ALL, Modality::as_str)),
        ("/$defs/constraints/properties/mr_sequence/enum", words(MrSequence::ALL, MrSequence::as_str)),
        ("/$defs/constraints/properties/mr_acquisition/enum", words(MrAcquisition::ALL, MrAcquisition::as_str)),
        ("/$defs/contrast/properties/agent/enum", words(ContrastAgent::ALL, ContrastAgent::as_str)),
        ("/$defs/contrast/properties/phase/enum", words(ContrastPhase::ALL, ContrastPhase::as_str)),
        ("/$defs/qc/properties/stages/enum", words(QcStages::ALL, QcStages::as_str)),
        ("/$defs/reads/properties/paradigm/enum", words(ReadParadigm::ALL, ReadParadigm::as_str)),
        ("/$defs/reads/properties/measures/items/enum", words(Measure::ALL, Measure::as_str)),
        (
            "/$defs/adjudication/properties/triggers/items/enum",
            words(AdjudicationTrigger::ALL, AdjudicationTrigger::as_str),
        ),
        ("/$defs/adjudication/properties/choice/enum", words(AdjudicationChoice::ALL, AdjudicationChoice::as_str)),
        ("/$defs/deidentification/properties/dates/enum", vec!["remove".into(), "keep".into(), "shift".into()]),
    ];
    for (pointer, expected) in cases {
        let found: Vec<String> = schema
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        assert_eq!(found, expected, "{pointer}");
    }
    // The deidentification words are DeidProfile's own serde spelling.
    for (word, value) in [
        ("remove", crate::deid_profile::DateHandling::Remove),
        ("keep", crate::deid_profile::DateHandling::Keep),
        ("shift", crate::deid_profile::DateHandling::Shift),
    ] {
        assert_eq!(serde_json::to_value(value).ok(), Some(Value::String(word.into())));
    }
}

#[test]
fn deidentification_keys_are_the_deid_profile_fields() {
    use crate::deid_profile::{DeidProfile, MaskRegion, PixelMask, SafePrivateTag};
    let field_names =
        |v: Value| -> BTreeSet<String> { v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default() };
    let set = |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_string()).collect() };
    let region = MaskRegion { x: 0, y: 0, width: 1, height: 1 };
    let mask =
        PixelMask { manufacturer: "M".into(), model: Some("X".into()), rows: 1, columns: 1, regions: vec![region] };
    let tag = SafePrivateTag { creator: "C".into(), group: 0x29, element: 0x10 };
    assert_eq!(
        field_names(serde_json::to_value(DeidProfile::default()).unwrap_or_default()),
        set(keys::DEIDENTIFICATION)
    );
    assert_eq!(field_names(serde_json::to_value(mask).unwrap_or_default()), set(keys::PIXEL_MASK));
    assert_eq!(field_names(serde_json::to_value(region).unwrap_or_default()), set(keys::MASK_REGION));
    assert_eq!(field_names(serde_json::to_value(tag).unwrap_or_default()), set(keys::SAFE_PRIVATE_TAG));
}

#[test]
fn examples_validate_against_the_schema_as_written_and_as_read() {
    let schema = schema();
    for (name, text) in EXAMPLES.iter().copied().chain([("everything", EVERYTHING)]) {
        let written = SchemaCheck::run(&schema, &document_json(text));
        assert!(written.errors.is_empty(), "{name} as written: {:#?}", written.errors);
        let charter = super::parse_ok(text);
        let model = without_nulls(serde_json::to_value(&charter).unwrap_or_default());
        let read = SchemaCheck::run(&schema, &model);
        assert!(read.errors.is_empty(), "{name} as read: {:#?}", read.errors);
    }
}

#[test]
fn everything_charter_uses_every_key_and_has_no_problem() {
    let check = check_charter(EVERYTHING);
    assert!(check.problems.is_empty(), "{:#?}", check.problems);
    let schema = schema();
    let seen = SchemaCheck::run(&schema, &document_json(EVERYTHING)).seen;
    let all: BTreeSet<(String, String)> = keys::TABLES
        .iter()
        .flat_map(|(table, ks)| ks.iter().map(move |k| (table.to_string(), k.to_string())))
        .collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "keys never used by EVERYTHING: {missing:?}");
    // The model keeps them: serialising the parsed charter meets every table key too, except
    // those whose value equals its default and is skipped on output.
    let charter = check.charter.unwrap_or_else(|| panic!("EVERYTHING has errors"));
    let model_seen = SchemaCheck::run(&schema, &without_nulls(serde_json::to_value(&charter).unwrap_or_default())).seen;
    let model_missing: Vec<_> = all.difference(&model_seen).collect();
    assert!(model_missing.is_empty(), "keys the model drops: {model_missing:?}");
}

#[test]
fn the_schema_check_rejects_broken_documents() {
    let schema = schema();
    let broken = [
        ("readers_per_case = 2", "readers_per_case = \"2\"", "reads.readers_per_case: expected"),
        (
            "paradigm = \"all_timepoints\"",
            "paradigm = \"all_timepoints\"\nparadigmm = 1",
            "reads.paradigmm: unknown key",
        ),
        ("sponsor = \"Everything Pharma\"\n", "", "trial: missing required `sponsor`"),
        ("day = 365", "day = 365\nevery_weeks = 4\nuntil_week = 8", "visits[3]: matches 2 of the oneOf branches"),
        ("from_week = 6\nuntil_week = 24", "from_week = 6", "visits[2]: `every_weeks` needs `until_week`"),
        ("stages = \"automated\"", "stages = \"manual\"", "qc.stages: \"manual\" is not one of"),
        ("slice_spacing_mm = { max = 5 }", "slice_spacing_mm = {}", "too few properties"),
    ];
    for (old, new, expected) in broken {
        let text = super::replace_once(EVERYTHING, old, new);
        let errors = SchemaCheck::run(&schema, &document_json(&text)).errors;
        assert!(errors.iter().any(|e| e.contains(expected)), "{expected:?} not in {errors:#?}");
        // And the charter reader rejects the same documents.
        assert!(parse_charter(&text).is_err(), "reader accepted: {new}");
    }
}

#[test]
fn every_key_is_documented() {
    const DOC: &str = include_str!("../../../../../docs/charter.md");
    let undocumented: Vec<&str> = keys::TABLES
        .iter()
        .flat_map(|(_, ks)| ks.iter().copied())
        .filter(|k| {
            !DOC.contains(&format!("`{k}`")) && !DOC.contains(&format!("[{k}]")) && !DOC.contains(&format!(".{k}]"))
        })
        .collect();
    assert!(undocumented.is_empty(), "keys missing from docs/charter.md: {undocumented:?}");
}
