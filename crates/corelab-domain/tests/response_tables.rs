//! Data-table tests for the response engines.
//!
//! Every file in tests/data/ is a JSON array of cases:
//! `{"name", "rule", "engine", "input" | "input_text", "expected" | "expected_error"}`.
//! `rule` says which rule of domain.md the case checks; `expected` is written from that rule.
//! `expected` is compared as a subset: every key it lists must be in the engine's output with an
//! equal value (arrays: same length, element by element). `expected_error` lists substrings the
//! error message must contain. All files go through the one `check()` below.

// Test helpers outside #[test] functions: clippy.toml's test allowances do not reach them.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use corelab_domain::response::adjudication::{AdjudicationTrigger, ReaderOutcome, adjudication_decision};
use corelab_domain::response::agreement::{DoubleRead, cohen_kappa, read_metrics};
use corelab_domain::response::lvef::{
    DysfunctionRule, LvVolumes, LvefMeasurement, PlausibilityLimits, lvef_change, lvef_from_reported, lvef_from_volumes,
};
use corelab_domain::response::ms::{MsSeries, MsSettings, evaluate_ms};
use corelab_domain::response::selection::{SelectionLesion, check_baseline_selection};
use corelab_domain::response::{
    Criteria, Protocol, Response, Tenths, best_overall_response, evaluate_case, evaluate_json, parse_cases,
};
use serde::Deserialize;
use serde_json::{Value, json};

fn check(file: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", file].iter().collect();
    let text = std::fs::read_to_string(&path).expect("case file is readable");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("case file is a JSON array");
    assert!(!cases.is_empty(), "{file} has no cases");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("");
        let rule = case["rule"].as_str().unwrap_or("");
        assert!(
            !name.is_empty() && !rule.is_empty(),
            "{file} case {i}: every case needs a name and the rule it checks"
        );
        let engine = case["engine"].as_str().expect("engine");
        let input_text = match case.get("input_text") {
            Some(Value::String(s)) => s.clone(),
            _ => serde_json::to_string(&case["input"]).expect("input"),
        };
        let actual = run(engine, &input_text);
        match (case.get("expected"), case.get("expected_error")) {
            (Some(expected), None) => match actual {
                _ if expected.as_object().is_none_or(|o| o.is_empty())
                    && expected.as_array().is_none_or(|a| a.is_empty()) =>
                {
                    failures.push(format!("{name}: `expected` states nothing to check"));
                }
                Ok(value) => {
                    if let Err(diff) = subset(expected, &value, "") {
                        failures.push(format!(
                            "{name} [{rule}]: {diff}\n  output: {}",
                            serde_json::to_string(&value).unwrap_or_default()
                        ));
                    }
                }
                Err(e) => failures.push(format!("{name} [{rule}]: unexpected error: {e}")),
            },
            (None, Some(Value::Array(parts))) => match actual {
                Ok(value) => failures.push(format!(
                    "{name} [{rule}]: expected an error, got {}",
                    serde_json::to_string(&value).unwrap_or_default()
                )),
                Err(e) => {
                    for part in parts {
                        let part = part.as_str().expect("expected_error holds strings");
                        if !e.contains(part) {
                            failures.push(format!("{name} [{rule}]: error {e:?} does not contain {part:?}"));
                        }
                    }
                }
            },
            _ => {
                panic!("{file} case {name}: give exactly one of expected / expected_error (array)")
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `expected` is a subset of `actual`.
fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => subset(ev, av, &p)?,
                    None => return Err(format!("{p}: missing in output")),
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: expected {} items, got {}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
            if (e - a).abs() <= 1e-9 { Ok(()) } else { Err(format!("{path}: expected {e}, got {a}")) }
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

fn run(engine: &str, input: &str) -> Result<Value, String> {
    match engine {
        "recist" => evaluate_json(input).map_err(|e| e.to_string()),
        "bor" => run_bor(input),
        "selection" => run_selection(input),
        "lvef" => run_lvef(input),
        "ms" => run_ms(input),
        "adjudication" => run_adjudication(input),
        "kappa" => run_kappa(input),
        "read_metrics" => run_read_metrics(input),
        other => panic!("unknown engine {other}"),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(input: &str) -> T {
    serde_json::from_str(input).unwrap_or_else(|e| panic!("test input does not parse: {e}"))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("output serialises")
}

fn run_bor(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        criteria: Criteria,
        has_target_disease: bool,
        protocol: Protocol,
        timepoints: Vec<(u32, Response)>,
    }
    let i: In = parse(input);
    best_overall_response(i.criteria, i.has_target_disease, &i.timepoints, &i.protocol)
        .map(|b| to_value(&b))
        .map_err(|e| e.to_string())
}

fn run_selection(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        #[serde(default)]
        slice_thickness_mm: Option<Tenths>,
        lesions: Vec<SelectionLesion>,
    }
    let i: In = parse(input);
    let violations = check_baseline_selection(&i.lesions, i.slice_thickness_mm);
    let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Ok(json!({"violations": to_value(&violations), "messages": messages}))
}

fn run_lvef(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reading {
        Volumes(LvVolumes),
        Reported { ef_pct: Tenths },
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        baseline: Reading,
        #[serde(default)]
        follow_up: Option<Reading>,
        #[serde(default)]
        limits: PlausibilityLimits,
        #[serde(default)]
        rule: DysfunctionRule,
    }
    let i: In = parse(input);
    let measure = |r: &Reading| -> Result<LvefMeasurement, String> {
        match r {
            Reading::Volumes(v) => lvef_from_volumes(*v, &i.limits),
            Reading::Reported { ef_pct } => lvef_from_reported(*ef_pct, &i.limits),
        }
        .map_err(|e| e.to_string())
    };
    let baseline = measure(&i.baseline)?;
    let mut out = json!({"baseline": to_value(&baseline)});
    if let Some(f) = &i.follow_up {
        let follow_up = measure(f)?;
        out["follow_up"] = to_value(&follow_up);
        out["change"] = to_value(&lvef_change(&baseline, &follow_up, &i.rule));
    }
    Ok(out)
}

fn run_ms(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        series: MsSeries,
        #[serde(default)]
        settings: MsSettings,
    }
    let i: In = parse(input);
    evaluate_ms(&i.series, &i.settings).map(|r| to_value(&r)).map_err(|e| e.to_string())
}

fn run_adjudication(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        #[serde(default)]
        reader_1: Option<ReaderOutcome>,
        #[serde(default)]
        reader_2: Option<ReaderOutcome>,
        /// Alternatively, each reader's full case, evaluated here first.
        #[serde(default)]
        reader_1_case: Option<Value>,
        #[serde(default)]
        reader_2_case: Option<Value>,
        triggers: Vec<AdjudicationTrigger>,
    }
    let i: In = parse(input);
    let outcome = |given: Option<ReaderOutcome>, case: Option<Value>| -> Result<ReaderOutcome, String> {
        match (given, case) {
            (Some(o), None) => Ok(o),
            (None, Some(c)) => {
                let cases = parse_cases(&c.to_string()).map_err(|e| e.to_string())?;
                let case = cases.first().ok_or("no case")?;
                let result = evaluate_case(case).map_err(|e| e.to_string())?;
                Ok(ReaderOutcome::from(&result))
            }
            _ => Err("give reader_N or reader_N_case".to_string()),
        }
    };
    let r1 = outcome(i.reader_1, i.reader_1_case)?;
    let r2 = outcome(i.reader_2, i.reader_2_case)?;
    Ok(to_value(&adjudication_decision(&r1, &r2, &i.triggers)))
}

fn run_kappa(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        pairs: Vec<(String, String)>,
    }
    let i: In = parse(input);
    cohen_kappa(&i.pairs).map(|k| to_value(&k)).map_err(|e| e.to_string())
}

fn run_read_metrics(input: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        records: Vec<DoubleRead>,
    }
    let i: In = parse(input);
    read_metrics(&i.records).map(|m| to_value(&m)).map_err(|e| e.to_string())
}

#[test]
fn recist_target_rules_and_boundaries() {
    check("recist_targets.json");
}

#[test]
fn recist_table1_target_disease() {
    check("recist_table1.json");
}

#[test]
fn recist_table2_non_target_disease_only() {
    check("recist_table2.json");
}

#[test]
fn recist_best_overall_response_end_to_end() {
    check("recist_bor.json");
}

#[test]
fn bor_table3_and_windows_from_timepoint_responses() {
    check("bor_table3.json");
}

#[test]
fn recist_progression_date() {
    check("recist_progression.json");
}

#[test]
fn irecist_transitions() {
    check("irecist.json");
}

#[test]
fn input_errors_name_case_timepoint_and_key() {
    check("input_errors.json");
}

#[test]
fn baseline_selection_rules() {
    check("selection.json");
}

#[test]
fn lvef_rules() {
    check("lvef.json");
}

#[test]
fn ms_mri_rules() {
    check("ms.json");
}

#[test]
fn adjudication_triggers() {
    check("adjudication.json");
}

#[test]
fn agreement_metrics() {
    check("agreement.json");
}
