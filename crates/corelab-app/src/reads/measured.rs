//! LVEF and MS MRI reads: what a reader records at a timepoint, its checks, the engines' results
//! as blinded roles see them (no days), the comparison of two readers and the accepted result.
//!
//! The workflow around them (tasks, readers, sequential locked reads, e-signatures, corrections,
//! adjudication rows) is the same as for RECIST; docs/reads.md describes the forms and the
//! adjudication trigger.

use std::collections::BTreeMap;
use std::collections::HashMap;

use corelab_domain::response::lvef::{
    DysfunctionRule, LvVolumes, LvefError, LvefMeasurement, LvefTimepoint, LvefWarning, PlausibilityLimits,
    lvef_disagreements, lvef_from_reported, lvef_from_volumes, lvef_series,
};
use corelab_domain::response::ms::{MsError, MsResult, MsScan, MsSeries, MsSettings, evaluate_ms, ms_disagreements};
use corelab_domain::response::{Hundredths, SignedTenths, Tenths};
use corelab_store::reads::{ReadTaskRow, ReadVersionRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::views::{BlindedResult, Label};
use super::{CaseData, Design, ReadForm};
use crate::AppError;

/// An LVEF read of one timepoint: end-diastolic and end-systolic volumes, or an EF reported
/// directly (e.g. MUGA).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvefRead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edv_ml: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esv_ml: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_pct: Option<Tenths>,
}

/// An MS MRI read of one timepoint. At baseline only the Gd+ count; at a follow-up the new or
/// enlarging T2 lesions versus the previous scan, the Gd+ count, optionally new/enlarging T2
/// versus baseline, and the PBVC versus the previous scan when the charter measures brain volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsRead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_or_enlarging_t2: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gd_enhancing: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_or_enlarging_t2_vs_baseline: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbvc_pct: Option<Hundredths>,
}

/// What an MS charter measures (`[reads] measures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsMeasures {
    pub new_enlarging_t2: bool,
    pub gd_enhancing: bool,
    pub brain_volume_change: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasuredRead {
    Lvef(LvefRead),
    Ms(MsRead),
}

fn invalid(key: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(&format!("assessment.{key}"), format!("{key}: {}", message.into()))
}

/// Reads `value` as an LVEF or MS read of a baseline (`baseline`) or follow-up timepoint.
/// Errors name the key at fault (field `assessment.<key>`).
pub(crate) fn parse(value: &Value, form: ReadForm, baseline: bool) -> Result<MeasuredRead, AppError> {
    parse_as(value, form, baseline, true)
}

/// Reads a stored read: its shape only, so that reads locked before a charter amendment changed
/// the MS measures still read.
pub(crate) fn parse_stored(text: &str, form: ReadForm, baseline: bool) -> Result<MeasuredRead, AppError> {
    let value: Value = serde_json::from_str(text).map_err(stored_error)?;
    parse_as(&value, form, baseline, false).map_err(stored_error)
}

fn parse_as(value: &Value, form: ReadForm, baseline: bool, charter_measures: bool) -> Result<MeasuredRead, AppError> {
    let Value::Object(top) = value else {
        return Err(AppError::invalid("assessment", "the assessment must be a JSON object"));
    };
    match form {
        ReadForm::Lvef => {
            const KEYS: &[&str] = &["edv_ml", "esv_ml", "ef_pct"];
            unknown_key(top, KEYS, "an LVEF read")?;
            for k in KEYS {
                if let Some(v) = top.get(*k) {
                    serde_json::from_value::<Tenths>(v.clone()).map_err(|e| invalid(k, format!("{v} {e}")))?;
                }
            }
            let read: LvefRead =
                serde_json::from_value(value.clone()).map_err(|e| invalid("assessment", e.to_string()))?;
            match (read.edv_ml, read.esv_ml, read.ef_pct) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => Ok(MeasuredRead::Lvef(read)),
                (Some(_), Some(_), Some(_)) => {
                    Err(invalid("ef_pct", "give EDV and ESV (EF is computed from them) or a reported EF, not both"))
                }
                (Some(_), None, _) => Err(invalid("esv_ml", "EDV needs the ESV in ml")),
                (None, Some(_), _) => Err(invalid("edv_ml", "ESV needs the EDV in ml")),
                (None, None, None) => {
                    Err(invalid("edv_ml", "give EDV and ESV in ml (edv_ml, esv_ml), or a reported EF (ef_pct)"))
                }
            }
        }
        ReadForm::Ms(measures) => {
            let keys: &[&str] = if baseline {
                &["gd_enhancing"]
            } else {
                &["new_or_enlarging_t2", "gd_enhancing", "new_or_enlarging_t2_vs_baseline", "pbvc_pct"]
            };
            unknown_key(top, keys, if baseline { "a baseline MS read" } else { "a follow-up MS read" })?;
            for k in keys {
                if let Some(v) = top.get(*k) {
                    let ok = if *k == "pbvc_pct" {
                        serde_json::from_value::<Hundredths>(v.clone()).map(|_| ())
                    } else {
                        serde_json::from_value::<u32>(v.clone()).map(|_| ())
                    };
                    ok.map_err(|e| invalid(k, format!("{v}: {e}")))?;
                }
            }
            let read: MsRead =
                serde_json::from_value(value.clone()).map_err(|e| invalid("assessment", e.to_string()))?;
            if !charter_measures {
                return Ok(MeasuredRead::Ms(read));
            }
            let required = |key: &str, measured: bool, given: bool, what: &str| -> Result<(), AppError> {
                match (measured, given) {
                    (true, false) => Err(invalid(key, format!("required: {what}"))),
                    (false, true) => Err(invalid(key, "this trial's charter does not measure it")),
                    _ => Ok(()),
                }
            };
            required(
                "gd_enhancing",
                measures.gd_enhancing,
                read.gd_enhancing.is_some(),
                "the number of Gd-enhancing T1 lesions",
            )?;
            if !baseline {
                required(
                    "new_or_enlarging_t2",
                    measures.new_enlarging_t2,
                    read.new_or_enlarging_t2.is_some(),
                    "the number of new or enlarging T2 lesions versus the previous scan",
                )?;
                if !measures.new_enlarging_t2 && read.new_or_enlarging_t2_vs_baseline.is_some() {
                    return Err(invalid("new_or_enlarging_t2_vs_baseline", "this trial's charter does not measure it"));
                }
                required(
                    "pbvc_pct",
                    measures.brain_volume_change,
                    read.pbvc_pct.is_some(),
                    "the percentage brain volume change versus the previous scan",
                )?;
            }
            Ok(MeasuredRead::Ms(read))
        }
        ReadForm::Recist(_) => Err(AppError::internal(std::io::Error::other("a RECIST read is not a measured read"))),
    }
}

fn unknown_key(top: &serde_json::Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), AppError> {
    match top.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(k, format!("unknown key; {what} has {}", allowed.join(", ")))),
        None => Ok(()),
    }
}

impl MeasuredRead {
    pub fn to_value(&self) -> Value {
        match self {
            MeasuredRead::Lvef(r) => serde_json::to_value(r),
            MeasuredRead::Ms(r) => serde_json::to_value(r),
        }
        .unwrap_or(Value::Null)
    }
}

/// An LVEF result as blinded roles see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvefResultView {
    pub ef_pct: SignedTenths,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edv_ml: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esv_ml: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stroke_volume_ml: Option<Tenths>,
    /// Plausible but unusual values (check the tracing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<LvefWarning>,
    /// Follow-ups: EF change from the reader's baseline in percentage points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_points: Option<SignedTenths>,
    /// Follow-ups: the protocol's dysfunction rule is met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dysfunction: Option<bool>,
}

impl From<&LvefTimepoint> for LvefResultView {
    fn from(t: &LvefTimepoint) -> Self {
        let m = &t.measurement;
        LvefResultView {
            ef_pct: m.ef_pct,
            edv_ml: m.edv_ml,
            esv_ml: m.esv_ml,
            stroke_volume_ml: m.stroke_volume_ml,
            warnings: m.warnings.clone(),
            change_points: t.change.as_ref().map(|c| c.change_points),
            dysfunction: t.dysfunction(),
        }
    }
}

/// An MS MRI result as blinded roles see it: no days, no annualised values (they would give the
/// interval between scans away).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsResultView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gd_enhancing: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_or_enlarging_t2: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cumulative_new_or_enlarging_t2: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cumulative_gd_enhancing: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbvc_pct: Option<Hundredths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbvc_vs_baseline_pct: Option<Hundredths>,
    /// Follow-ups: a new/enlarging T2 or a Gd+ lesion on this scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mri_activity: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_evidence_of_mri_activity_since_baseline: Option<bool>,
}

/// A reader's submitted read of one timepoint (the version is absent for a read being checked).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub task: ReadTaskRow,
    pub version: Option<ReadVersionRow>,
    pub read: MeasuredRead,
}

/// One reader's reads of a case: the baseline first, then the follow-ups by scan day.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub entries: Vec<Entry>,
}

/// A reader's series evaluated by the engine.
#[derive(Debug, Clone)]
pub(crate) enum Evaluation {
    Lvef(Vec<LvefTimepoint>),
    Ms { baseline_gd: Option<u32>, result: MsResult },
}

fn stored_error(e: impl std::fmt::Display) -> AppError {
    AppError::internal(std::io::Error::other(format!("a stored read does not parse: {e}")))
}

impl Series {
    /// Orders `entries`; `None` without a baseline read.
    pub fn new(mut entries: Vec<Entry>) -> Option<Series> {
        entries.sort_by(|a, b| {
            (!a.task.baseline, a.task.day, &a.task.visit_id).cmp(&(!b.task.baseline, b.task.day, &b.task.visit_id))
        });
        entries.first().is_some_and(|e| e.task.baseline).then_some(Series { entries })
    }

    pub fn from_versions(
        pairs: Vec<(ReadTaskRow, ReadVersionRow)>,
        design: &Design,
    ) -> Result<Option<Series>, AppError> {
        let mut entries = Vec::new();
        for (task, v) in pairs {
            let read = parse_stored(&v.assessment, design.form, task.baseline)?;
            entries.push(Entry { task, version: Some(v), read });
        }
        Ok(Series::new(entries))
    }

    /// The current versions of a reader's submitted reads, optionally only of `visits`.
    pub fn current(
        data: &CaseData,
        slot: i64,
        visits: Option<&std::collections::BTreeSet<String>>,
        design: &Design,
    ) -> Result<Option<Series>, AppError> {
        let pairs = data
            .slot_tasks(slot)
            .into_iter()
            .filter(|t| visits.is_none_or(|v| v.contains(&t.visit_id)))
            .filter_map(|t| data.current(t.id).map(|v| (t.clone(), v.clone())))
            .collect();
        Series::from_versions(pairs, design)
    }

    /// visit id -> version id.
    pub fn version_ids(&self) -> BTreeMap<String, Uuid> {
        self.entries.iter().filter_map(|e| Some((e.task.visit_id.clone(), e.version.as_ref()?.id))).collect()
    }

    pub fn follow_ups(&self) -> usize {
        self.entries.len().saturating_sub(1)
    }

    /// Runs the engine. Errors name the timepoint by its blinded label and the key at fault.
    pub fn evaluate(&self, design: &Design, labels: &HashMap<String, Label>) -> Result<Evaluation, AppError> {
        let label = |e: &Entry| labels.get(&e.task.visit_id).map(|l| l.label.clone()).unwrap_or_default();
        match design.form {
            ReadForm::Lvef => {
                let limits = PlausibilityLimits::default();
                let mut readings: Vec<LvefMeasurement> = Vec::new();
                for e in &self.entries {
                    let MeasuredRead::Lvef(r) = &e.read else { return Err(stored_error("not an LVEF read")) };
                    let m = match (r.edv_ml, r.esv_ml, r.ef_pct) {
                        (Some(edv_ml), Some(esv_ml), _) => lvef_from_volumes(LvVolumes { edv_ml, esv_ml }, &limits),
                        (_, _, Some(ef)) => lvef_from_reported(ef, &limits),
                        _ => return Err(stored_error("an LVEF read without values")),
                    };
                    readings.push(m.map_err(|err| {
                        let key = match &err {
                            LvefError::VolumeNotPositive { which } if which == "EDV" => "edv_ml",
                            LvefError::VolumeNotPositive { .. } | LvefError::EsvNotBelowEdv { .. } => "esv_ml",
                            LvefError::EfNotAPercentage { .. } => "ef_pct",
                        };
                        AppError::invalid(&format!("assessment.{key}"), format!("{}: {key}: {err}", label(e)))
                    })?);
                }
                Ok(Evaluation::Lvef(lvef_series(&readings, &DysfunctionRule::default())))
            }
            ReadForm::Ms(_) => {
                let out_of_order = || {
                    AppError::Conflict(
                        "the timepoints of this case cannot be put in order by scan date; the trial manager has to correct the visit data"
                            .into(),
                    )
                };
                let mut baseline_gd = None;
                let mut scans = Vec::new();
                for e in &self.entries {
                    let MeasuredRead::Ms(r) = &e.read else { return Err(stored_error("not an MS read")) };
                    if e.task.baseline {
                        baseline_gd = r.gd_enhancing;
                        continue;
                    }
                    let day = u32::try_from(e.task.day).ok().filter(|d| *d >= 1).ok_or_else(out_of_order)?;
                    scans.push(MsScan {
                        days_from_baseline: day,
                        new_or_enlarging_t2: r.new_or_enlarging_t2.unwrap_or(0),
                        gd_enhancing: r.gd_enhancing.unwrap_or(0),
                        new_or_enlarging_t2_vs_baseline: r.new_or_enlarging_t2_vs_baseline,
                        pbvc_pct: r.pbvc_pct,
                    });
                }
                let series = MsSeries { baseline_gd_enhancing: baseline_gd, scans };
                let result = evaluate_ms(&series, &MsSettings::default()).map_err(|e| match e {
                    MsError::DayZero { .. } | MsError::NotAfterPrevious { .. } => out_of_order(),
                })?;
                Ok(Evaluation::Ms { baseline_gd, result })
            }
            ReadForm::Recist(_) => Err(AppError::internal(std::io::Error::other("a RECIST case is not measured"))),
        }
    }
}

impl Evaluation {
    /// The blinded result of timepoint `i` in reading order (0 is the baseline).
    pub fn view(&self, i: usize) -> BlindedResult {
        match self {
            Evaluation::Lvef(tps) => BlindedResult::measured(tps.get(i).map(LvefResultView::from), None),
            Evaluation::Ms { baseline_gd, result } => {
                let view = match i.checked_sub(1) {
                    None => Some(MsResultView {
                        gd_enhancing: *baseline_gd,
                        new_or_enlarging_t2: None,
                        cumulative_new_or_enlarging_t2: None,
                        cumulative_gd_enhancing: None,
                        pbvc_pct: None,
                        pbvc_vs_baseline_pct: None,
                        mri_activity: None,
                        no_evidence_of_mri_activity_since_baseline: None,
                    }),
                    Some(k) => result.scans.get(k).map(|s| MsResultView {
                        gd_enhancing: Some(s.gd_enhancing),
                        new_or_enlarging_t2: Some(s.new_or_enlarging_t2),
                        cumulative_new_or_enlarging_t2: Some(s.cumulative_new_or_enlarging_t2),
                        cumulative_gd_enhancing: Some(s.cumulative_gd_enhancing),
                        pbvc_pct: s.pbvc_pct,
                        pbvc_vs_baseline_pct: s.pbvc_vs_baseline_pct,
                        mri_activity: Some(s.mri_activity),
                        no_evidence_of_mri_activity_since_baseline: Some(s.no_evidence_of_mri_activity_since_baseline),
                    }),
                };
                BlindedResult::measured(None, view)
            }
        }
    }

    /// The stored result of timepoint `i`.
    pub fn stored(&self, i: usize) -> Value {
        let v = self.view(i);
        match (v.lvef, v.ms) {
            (Some(l), _) => json!({ "lvef": l }),
            (_, Some(m)) => json!({ "ms": m }),
            _ => Value::Null,
        }
    }

    /// The categorical outcome of follow-up timepoint `i` (reading order, 0 is the baseline) for
    /// inter-reader agreement: DYSFUNCTION / NO_DYSFUNCTION (LVEF), ACTIVE / NOT_ACTIVE (MS).
    pub fn category(&self, i: usize) -> Option<&'static str> {
        match self {
            Evaluation::Lvef(tps) => {
                tps.get(i)?.dysfunction().map(|d| if d { "DYSFUNCTION" } else { "NO_DYSFUNCTION" })
            }
            Evaluation::Ms { result, .. } => {
                result.scans.get(i.checked_sub(1)?).map(|s| if s.mri_activity { "ACTIVE" } else { "NOT_ACTIVE" })
            }
        }
    }

    /// A short description of timepoint `i` for the adjudicator.
    fn describe(&self, i: usize) -> String {
        match self {
            Evaluation::Lvef(tps) => match tps.get(i) {
                Some(t) => match t.dysfunction() {
                    Some(d) => format!(
                        "EF {} %, change {} points, {}",
                        t.measurement.ef_pct,
                        t.change.as_ref().map(|c| c.change_points).unwrap_or_default(),
                        if d { "dysfunction" } else { "no dysfunction" }
                    ),
                    None => format!("EF {} %", t.measurement.ef_pct),
                },
                None => "not read".into(),
            },
            Evaluation::Ms { result, .. } => match i.checked_sub(1).and_then(|k| result.scans.get(k)) {
                Some(s) => format!(
                    "{} (new/enlarging T2 {}, Gd+ {})",
                    if s.mri_activity { "active" } else { "not active" },
                    s.new_or_enlarging_t2,
                    s.gd_enhancing
                ),
                None => "baseline".into(),
            },
        }
    }
}

/// A variable the two readers differ on: `lvef:<visit id>` or `mri_activity:<visit id>`, with
/// what each reader found. Stored with the adjudication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MeasuredDisagreement {
    pub variable: String,
    pub reader_1: String,
    pub reader_2: String,
}

/// Both readers' series of a comparison, evaluated.
pub(crate) struct MeasuredPair {
    pub series: [Series; 2],
    pub results: [Evaluation; 2],
}

impl MeasuredPair {
    pub fn new(
        r1: Series,
        r2: Series,
        design: &Design,
        labels: &HashMap<String, Label>,
    ) -> Result<MeasuredPair, AppError> {
        let results = [r1.evaluate(design, labels)?, r2.evaluate(design, labels)?];
        Ok(MeasuredPair { series: [r1, r2], results })
    }

    /// The visits of the comparison in reading order.
    pub fn visits(&self) -> Vec<(String, bool)> {
        self.series[0].entries.iter().map(|e| (e.task.visit_id.clone(), e.task.baseline)).collect()
    }

    /// The adjudication trigger (docs/reads.md): LVEF, a timepoint where the EFs are more than the
    /// tolerance apart or the readers differ on dysfunction; MS, a follow-up scan where one reader
    /// finds MRI activity and the other does not.
    pub fn disagreements(&self, design: &Design) -> Vec<MeasuredDisagreement> {
        let visit = |i: usize| self.series[0].entries.get(i).map(|e| e.task.visit_id.clone()).unwrap_or_default();
        let (prefix, indexes): (&str, Vec<usize>) = match (&self.results[0], &self.results[1]) {
            (Evaluation::Lvef(a), Evaluation::Lvef(b)) => {
                ("lvef", lvef_disagreements(a, b, design.ef_tolerance).iter().map(|d| d.timepoint).collect())
            }
            (Evaluation::Ms { result: a, .. }, Evaluation::Ms { result: b, .. }) => {
                ("mri_activity", ms_disagreements(a, b).iter().map(|d| d.scan + 1).collect())
            }
            _ => return Vec::new(),
        };
        indexes
            .into_iter()
            .map(|i| MeasuredDisagreement {
                variable: format!("{prefix}:{}", visit(i)),
                reader_1: self.results[0].describe(i),
                reader_2: self.results[1].describe(i),
            })
            .collect()
    }

    /// The accepted result: each timepoint from the reader chosen for it.
    pub fn compose(&self, design: &Design, whole: Option<i64>, reader_for: &dyn Fn(&str) -> i64) -> Value {
        compose(&[&self.series[0], &self.series[1]], &[&self.results[0], &self.results[1]], design, whole, reader_for)
    }
}

/// The accepted result from one reader's or two readers' series: each timepoint from the reader
/// `reader_for` names (1 or 2) for its variable key (`lvef:<visit>` / `mri_activity:<visit>`);
/// `whole` is the reader chosen for the whole subject, if one was.
pub(crate) fn compose(
    series: &[&Series],
    results: &[&Evaluation],
    design: &Design,
    whole: Option<i64>,
    reader_for: &dyn Fn(&str) -> i64,
) -> Value {
    let prefix = if design.form == ReadForm::Lvef { "lvef" } else { "mri_activity" };
    let last = series.len().min(results.len()).saturating_sub(1);
    let mut timepoints = Vec::new();
    let mut any = false;
    let Some(first) = series.first() else { return Value::Null };
    for (i, e) in first.entries.iter().enumerate() {
        let r = usize::try_from(reader_for(&format!("{prefix}:{}", e.task.visit_id)) - 1).unwrap_or(0).min(last);
        let entry = series.get(r).and_then(|s| s.entries.get(i)).unwrap_or(e);
        let Some(view) = results.get(r).map(|res| res.view(i)) else { continue };
        any |= view.lvef.as_ref().and_then(|l| l.dysfunction).unwrap_or(false)
            || view.ms.as_ref().and_then(|m| m.mri_activity).unwrap_or(false);
        let mut tp = json!({
            "visit_id": entry.task.visit_id, "baseline": entry.task.baseline,
            "reader": r + 1,
            "read_version_id": entry.version.as_ref().map(|v| v.id),
            "version": entry.version.as_ref().map(|v| v.version),
        });
        if !entry.task.baseline {
            tp["days_from_baseline"] = json!(entry.task.day);
        }
        if let Some(l) = view.lvef {
            tp["lvef"] = json!(l);
        }
        if let Some(m) = view.ms {
            tp["ms"] = json!(m);
        }
        timepoints.push(tp);
    }
    let summary = if design.form == ReadForm::Lvef {
        json!({ "dysfunction_at_any_follow_up": any })
    } else {
        json!({ "no_evidence_of_mri_activity": !any })
    };
    json!({
        "criteria": design.form.name(),
        "reader": whole,
        "timepoints": timepoints,
        "summary": summary,
    })
}

/// Checks a measured read about to be locked, with the reader's other current reads, and gives
/// the result stored with it.
pub(crate) fn check(
    design: &Design,
    data: &CaseData,
    task: &ReadTaskRow,
    read: &MeasuredRead,
    labels: &HashMap<String, Label>,
) -> Result<Value, AppError> {
    let mut entries: Vec<Entry> = match Series::current(data, task.slot, None, design)? {
        Some(s) => s.entries.into_iter().filter(|e| e.task.id != task.id).collect(),
        None => Vec::new(),
    };
    entries.push(Entry { task: task.clone(), version: None, read: read.clone() });
    let series = Series::new(entries).ok_or_else(|| AppError::Conflict("submit the baseline first".into()))?;
    let index = series.entries.iter().position(|e| e.task.id == task.id).unwrap_or(0);
    Ok(series.evaluate(design, labels)?.stored(index))
}

/// The blinded result stored with a measured read version.
pub(crate) fn blinded_result(stored: &Value) -> Option<BlindedResult> {
    let lvef = stored.get("lvef").and_then(|v| serde_json::from_value::<LvefResultView>(v.clone()).ok());
    let ms = stored.get("ms").and_then(|v| serde_json::from_value::<MsResultView>(v.clone()).ok());
    (lvef.is_some() || ms.is_some()).then(|| BlindedResult::measured(lvef, ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS_ALL: ReadForm =
        ReadForm::Ms(MsMeasures { new_enlarging_t2: true, gd_enhancing: true, brain_volume_change: true });
    const MS_COUNTS: ReadForm =
        ReadForm::Ms(MsMeasures { new_enlarging_t2: true, gd_enhancing: true, brain_volume_change: false });

    fn field(e: AppError) -> (String, String) {
        match e {
            AppError::Invalid { field, message } => (field.unwrap_or_default(), message),
            other => panic!("not a 422: {other}"),
        }
    }

    #[test]
    fn lvef_reads_are_volumes_or_a_reported_ef() {
        // (assessment) -> Ok, or the field named and a piece of the message
        let rows: Vec<(Value, Option<(&str, &str)>)> = vec![
            (json!({"edv_ml": 120, "esv_ml": 55.5}), None),
            (json!({"ef_pct": 58.5}), None),
            (json!({"edv_ml": 120}), Some(("assessment.esv_ml", "EDV needs the ESV"))),
            (json!({"esv_ml": 55}), Some(("assessment.edv_ml", "ESV needs the EDV"))),
            (json!({}), Some(("assessment.edv_ml", "give EDV and ESV"))),
            (json!({"edv_ml": 120, "esv_ml": 50, "ef_pct": 58}), Some(("assessment.ef_pct", "not both"))),
            (json!({"edv_ml": 120.25, "esv_ml": 50}), Some(("assessment.edv_ml", "decimal"))),
            (json!({"edv_ml": -1, "esv_ml": 50}), Some(("assessment.edv_ml", "negative"))),
            (json!({"edv_ml": true, "esv_ml": 50}), Some(("assessment.edv_ml", "edv_ml: true"))),
            (json!({"lvef": 55}), Some(("assessment.lvef", "unknown key"))),
        ];
        for (v, want) in rows {
            let got = parse(&v, ReadForm::Lvef, false);
            match want {
                None => assert!(got.is_ok(), "{v}: {:?}", got.err()),
                Some((f, text)) => {
                    let (field, message) = field(got.unwrap_err());
                    assert_eq!(field, f, "{v}: {message}");
                    assert!(message.to_lowercase().contains(&text.to_lowercase()), "{v}: {message}");
                }
            }
        }
    }

    #[test]
    fn ms_reads_follow_the_charter_measures() {
        // (form, baseline, assessment) -> Ok, or the field named and a piece of the message
        type Row<'a> = (ReadForm, bool, Value, Option<(&'a str, &'a str)>);
        let rows: Vec<Row> = vec![
            (MS_ALL, true, json!({"gd_enhancing": 2}), None),
            (
                MS_ALL,
                true,
                json!({"gd_enhancing": 2, "new_or_enlarging_t2": 1}),
                Some(("assessment.new_or_enlarging_t2", "unknown key")),
            ),
            (MS_ALL, true, json!({}), Some(("assessment.gd_enhancing", "required"))),
            (MS_ALL, false, json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0, "pbvc_pct": -0.45}), None),
            (
                MS_ALL,
                false,
                json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0}),
                Some(("assessment.pbvc_pct", "required")),
            ),
            (MS_COUNTS, false, json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0}), None),
            (
                MS_COUNTS,
                false,
                json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0, "pbvc_pct": -0.4}),
                Some(("assessment.pbvc_pct", "does not measure")),
            ),
            (
                MS_ALL,
                false,
                json!({"new_or_enlarging_t2": -1, "gd_enhancing": 0, "pbvc_pct": 0}),
                Some(("assessment.new_or_enlarging_t2", "-1")),
            ),
            (
                MS_ALL,
                false,
                json!({"new_or_enlarging_t2": 0, "gd_enhancing": 0, "pbvc_pct": -0.456}),
                Some(("assessment.pbvc_pct", "decimal")),
            ),
            (
                MS_ALL,
                false,
                json!({"gd_enhancing": 0, "pbvc_pct": 0}),
                Some(("assessment.new_or_enlarging_t2", "required")),
            ),
        ];
        for (form, baseline, v, want) in rows {
            let got = parse(&v, form, baseline);
            match want {
                None => assert!(got.is_ok(), "{v}: {:?}", got.err()),
                Some((f, text)) => {
                    let (field, message) = field(got.unwrap_err());
                    assert_eq!(field, f, "{v}: {message}");
                    assert!(message.to_lowercase().contains(&text.to_lowercase()), "{v}: {message}");
                }
            }
        }
    }

    #[test]
    fn the_read_form_and_tolerance_come_from_the_charter() {
        let charter = |name: &str, edit: &dyn Fn(String) -> String| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charters").join(name);
            let text = edit(std::fs::read_to_string(root).unwrap());
            Design::of(&crate::trials::parse_checked(&text).unwrap()).unwrap()
        };
        let same = |t: String| t;
        // (charter, edit) -> read form, EF tolerance in tenths of a point
        type Edit<'a> = &'a dyn Fn(String) -> String;
        let rows: Vec<(&str, Edit, ReadForm, u32)> = vec![
            ("oncology-ct-recist.toml", &same, ReadForm::Recist(corelab_domain::response::Criteria::Recist11), 50),
            ("cardiology-lvef.toml", &same, ReadForm::Lvef, 50),
            (
                "cardiology-lvef.toml",
                &|t: String| t.replace("ef_tolerance_points = 5.0", "ef_tolerance_points = 7.5"),
                ReadForm::Lvef,
                75,
            ),
            ("cardiology-lvef.toml", &|t: String| t.replace("ef_tolerance_points = 5.0\n", ""), ReadForm::Lvef, 50),
            ("neurology-ms-mri.toml", &same, MS_ALL, 50),
            ("neurology-ms-mri.toml", &|t: String| t.replace(", \"brain_volume_change\"]", "]"), MS_COUNTS, 50),
        ];
        for (name, edit, form, tolerance) in rows {
            let d = charter(name, edit);
            assert_eq!((d.form, d.ef_tolerance), (form, Tenths::new(tolerance)), "{name}");
        }
    }

    fn design(name: &str, edit: &dyn Fn(String) -> String) -> Design {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charters").join(name);
        let text = edit(std::fs::read_to_string(root).unwrap());
        Design::of(&crate::trials::parse_checked(&text).unwrap()).unwrap()
    }

    /// One reader's series from (visit, day, read) with the baseline first.
    fn series(design: &Design, slot: i64, reads: &[(&str, i64, Value)]) -> Series {
        let entries = reads
            .iter()
            .enumerate()
            .map(|(i, (visit, day, v))| Entry {
                task: ReadTaskRow {
                    id: Uuid::new_v4(),
                    trial_id: Uuid::nil(),
                    case_id: Uuid::nil(),
                    visit_id: (*visit).to_string(),
                    slot,
                    reader_id: None,
                    baseline: i == 0,
                    day: *day,
                    state: "submitted".into(),
                    note: None,
                    qc_passed_at: chrono::DateTime::UNIX_EPOCH,
                    assigned_at: None,
                    submitted_at: None,
                },
                version: None,
                read: parse(v, design.form, i == 0).unwrap(),
            })
            .collect();
        Series::new(entries).unwrap()
    }

    fn labels(visits: &[&str]) -> HashMap<String, Label> {
        visits
            .iter()
            .enumerate()
            .map(|(i, v)| ((*v).to_string(), Label { label: format!("TP{}", i + 1), days: None, baseline: i == 0 }))
            .collect()
    }

    #[test]
    fn two_ms_readers_are_compared_on_activity_and_the_chosen_reader_is_accepted_per_timepoint() {
        let d = design("neurology-ms-mri.toml", &|t: String| {
            t.replace("readers_per_case = 1", "readers_per_case = 2")
                .replace("[reads.reader_qualifications]", "[reads.adjudication]\ntriggers = [\"any_timepoint\"]\nchoice = \"per_variable\"\n\n[reads.reader_qualifications]")
        });
        let fu = |t2: u32, gd: u32| json!({"new_or_enlarging_t2": t2, "gd_enhancing": gd, "pbvc_pct": -0.3});
        let r1 =
            series(&d, 1, &[("BL", -10, json!({"gd_enhancing": 1})), ("W12", 84, fu(2, 0)), ("W24", 168, fu(0, 0))]);
        let r2 =
            series(&d, 2, &[("BL", -10, json!({"gd_enhancing": 0})), ("W12", 84, fu(1, 1)), ("W24", 168, fu(0, 1))]);
        let labels = labels(&["BL", "W12", "W24"]);
        let pair = MeasuredPair::new(r1, r2, &d, &labels).unwrap();
        // W12: both active (counts differ): agreement. W24: reader 2 sees a Gd+ lesion.
        assert_eq!(
            pair.disagreements(&d),
            vec![MeasuredDisagreement {
                variable: "mri_activity:W24".into(),
                reader_1: "not active (new/enlarging T2 0, Gd+ 0)".into(),
                reader_2: "active (new/enlarging T2 0, Gd+ 1)".into(),
            }]
        );
        let accepted = pair.compose(&d, None, &|k| if k == "mri_activity:W24" { 2 } else { 1 });
        let readers: Vec<i64> =
            accepted["timepoints"].as_array().unwrap().iter().map(|t| t["reader"].as_i64().unwrap()).collect();
        assert_eq!(readers, vec![1, 1, 2]);
        assert_eq!(accepted["timepoints"][1]["ms"]["new_or_enlarging_t2"], 2);
        assert_eq!(accepted["timepoints"][2]["ms"]["gd_enhancing"], 1);
        assert_eq!(accepted["summary"], json!({"no_evidence_of_mri_activity": false}));
        assert_eq!(pair.results[0].category(2), Some("NOT_ACTIVE"));
        assert_eq!(pair.results[0].category(0), None);
    }

    #[test]
    fn the_charter_tolerance_decides_an_lvef_disagreement() {
        // Reader 1 EF 60.0 -> 58.0, reader 2 60.0 -> 52.0 (6 points apart, neither a fall of > 10).
        let reads = |fu: f64| [("BL", 0, json!({"ef_pct": 60})), ("W12", 84, json!({"ef_pct": fu}))];
        let labels = labels(&["BL", "W12"]);
        // (tolerance line) -> disagreeing variables
        let rows: [(&str, Vec<&str>); 3] = [
            ("ef_tolerance_points = 5.0", vec!["lvef:W12"]),
            ("ef_tolerance_points = 6.0", vec![]),
            ("", vec!["lvef:W12"]),
        ];
        for (line, want) in rows {
            let d = design("cardiology-lvef.toml", &|t: String| t.replace("ef_tolerance_points = 5.0", line));
            let pair =
                MeasuredPair::new(series(&d, 1, &reads(58.0)), series(&d, 2, &reads(52.0)), &d, &labels).unwrap();
            let got: Vec<String> = pair.disagreements(&d).into_iter().map(|x| x.variable).collect();
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn stored_reads_still_read_after_the_charter_measures_change() {
        let before = r#"{"new_or_enlarging_t2": 1, "gd_enhancing": 0}"#;
        assert!(parse_stored(before, MS_ALL, false).is_ok());
        assert!(parse(&serde_json::from_str(before).unwrap(), MS_ALL, false).is_err());
        // The shape is still checked.
        assert!(parse_stored(r#"{"gd_enhancing": -1}"#, MS_ALL, true).is_err());
        assert!(parse_stored(r#"{"site": "ES10"}"#, MS_ALL, true).is_err());
    }

    #[test]
    fn reads_round_trip_as_stored() {
        let v = json!({"edv_ml": 120.5, "esv_ml": 50});
        let r = parse(&v, ReadForm::Lvef, true).unwrap();
        assert_eq!(parse(&r.to_value(), ReadForm::Lvef, true).unwrap(), r);
        assert_eq!(r.to_value(), json!({"edv_ml": 120.5, "esv_ml": 50.0}));
    }
}
