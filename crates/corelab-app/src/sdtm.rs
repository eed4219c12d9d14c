//! SDTM export (TU, TR, RS) of a trial's blinded reads: the accepted results by default, every
//! locked read on request. The datasets are derived by `corelab_domain::sdtm` from the stored read
//! versions, so every response and sum is the response engine's. Each export is audited (who
//! exported what, with how many records).
//!
//! Who may export: trial managers and system administrators (and the command-line operator), and
//! sponsors holding an unblinded grant; everyone else gets 403 (readers, adjudicators, sites, QC,
//! monitors and blinded sponsors). docs/exports.md describes the datasets.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use corelab_domain::access::Role;
use corelab_domain::sdtm::{
    self, Acceptance, AcceptedReads, Mode, Reader, ReaderRead, SdtmDatasets, Study, SubjectReads, Visit,
};
use corelab_store::Tx;
use corelab_store::reads::ReadTaskRow;
use corelab_store::trials::SubjectRow;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{change, trial_record};
use crate::reads::assessment::{Assessment, BaselineAssessment, FollowUpAssessment};
use crate::reads::{CaseData, Design, ReadForm, SlotReads, case_data, charter_in};
use crate::{Actor, App, AppError};

/// The export's file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdtmFormat {
    Csv,
    Xpt,
}

/// What one export request asks for (named in the audit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdtmRequest {
    /// One dataset ("TU", "TR", "RS") in one format.
    Dataset { name: String, format: SdtmFormat },
    /// The define-style variable listing.
    Define,
    /// Every dataset, both formats and the listing (the command line).
    All,
}

impl SdtmRequest {
    fn describe(&self) -> String {
        match self {
            SdtmRequest::Dataset { name, format: SdtmFormat::Csv } => format!("{name}.csv"),
            SdtmRequest::Dataset { name, format: SdtmFormat::Xpt } => format!("{name}.xpt"),
            SdtmRequest::Define => "define".into(),
            SdtmRequest::All => "all".into(),
        }
    }
}

/// The derived datasets of one export.
#[derive(Debug, Clone)]
pub struct SdtmExport {
    pub studyid: String,
    pub all_reads: bool,
    pub created: DateTime<Utc>,
    pub datasets: SdtmDatasets,
}

impl SdtmExport {
    fn dataset(&self, name: &str) -> Result<&sdtm::Dataset, AppError> {
        self.datasets
            .by_name(name)
            .ok_or_else(|| AppError::NotFound(format!("no SDTM dataset {name:?}; the export has TU, TR and RS")))
    }

    pub fn csv(&self, name: &str) -> Result<String, AppError> {
        Ok(sdtm::write_csv(self.dataset(name)?))
    }

    pub fn xpt(&self, name: &str) -> Result<Vec<u8>, AppError> {
        let c = self.created;
        let stamp = sdtm::sas_datetime(c.year(), c.month(), c.day(), c.hour(), c.minute(), c.second());
        sdtm::write_xpt(self.dataset(name)?, &stamp)
            .map_err(|e| AppError::internal(std::io::Error::other(e.to_string())))
    }

    pub fn define_xml(&self) -> String {
        sdtm::define_xml(&self.studyid, &self.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(), &self.datasets.all())
    }

    pub fn define_csv(&self) -> String {
        sdtm::define_csv(&self.datasets.all())
    }
}

/// Parses a dataset file name from the API: `TU.csv`, `tr.xpt`, ...
pub fn parse_dataset_file(file: &str) -> Result<(String, SdtmFormat), AppError> {
    let bad = || AppError::NotFound(format!("no SDTM file {file:?}; ask for TU, TR or RS as .csv or .xpt"));
    let (name, ext) = file.rsplit_once('.').ok_or_else(bad)?;
    let name = name.to_ascii_uppercase();
    if !["TU", "TR", "RS"].contains(&name.as_str()) {
        return Err(bad());
    }
    let format = match ext.to_ascii_lowercase().as_str() {
        "csv" => SdtmFormat::Csv,
        "xpt" => SdtmFormat::Xpt,
        _ => return Err(bad()),
    };
    Ok((name, format))
}

fn method_of(modality: &str) -> Option<&'static str> {
    Some(match modality {
        "CT" => "CT SCAN",
        "MR" => "MRI",
        "PT" => "PET SCAN",
        "CR" | "DX" => "X-RAY",
        "US" => "ULTRASOUND",
        _ => return None,
    })
}

fn stored(e: String) -> AppError {
    AppError::internal(std::io::Error::other(format!("a stored read does not parse: {e}")))
}

fn day_of(task: &ReadTaskRow) -> Result<u32, AppError> {
    u32::try_from(task.day).ok().filter(|d| *d >= 1).ok_or_else(|| {
        AppError::Conflict(
            "a read timepoint has no scan day after baseline; the trial manager has to correct the visit data".into(),
        )
    })
}

/// A reader's read from (task, baseline assessment) and (task, follow-up) pairs.
fn reader_read(
    reader: Reader,
    baseline: (&ReadTaskRow, &BaselineAssessment),
    follow_ups: &[(&ReadTaskRow, &FollowUpAssessment)],
) -> Result<ReaderRead, AppError> {
    let mut image_refs = BTreeMap::new();
    let (bt, b) = baseline;
    for l in b.targets.iter().chain(&b.non_targets) {
        if let Some(i) = &l.image {
            image_refs.insert((bt.visit_id.clone(), l.id.clone()), i.sop_instance_uid.clone());
        }
    }
    let mut fus = Vec::new();
    for (t, f) in follow_ups {
        for (id, r) in &f.targets {
            if let Some(i) = &r.image {
                image_refs.insert((t.visit_id.clone(), id.clone()), i.sop_instance_uid.clone());
            }
        }
        for (id, r) in &f.non_targets {
            if let Some(i) = &r.image {
                image_refs.insert((t.visit_id.clone(), id.clone()), i.sop_instance_uid.clone());
            }
        }
        for n in &f.new_lesions {
            if let Some(i) = &n.image {
                image_refs.insert((t.visit_id.clone(), n.id.clone()), i.sop_instance_uid.clone());
            }
        }
        fus.push((t.visit_id.clone(), f.to_engine(day_of(t)?)));
    }
    fus.sort_by_key(|(_, tp)| tp.days_from_baseline);
    Ok(ReaderRead { reader, baseline_visit: bt.visit_id.clone(), baseline: b.to_engine(), follow_ups: fus, image_refs })
}

/// The read of `slot` made of the given version ids (visit -> version).
fn read_of_versions(
    data: &CaseData,
    slot: i64,
    versions: &BTreeMap<String, Uuid>,
) -> Result<Option<ReaderRead>, AppError> {
    let Some(reader) = Reader::from_slot(slot) else { return Ok(None) };
    let mut baseline = None;
    let mut follow_ups = Vec::new();
    for t in data.slot_tasks(slot) {
        let Some(vid) = versions.get(&t.visit_id) else { continue };
        let Some(v) = data.versions.get(&t.id).and_then(|vs| vs.iter().find(|v| v.id == *vid)) else { continue };
        match Assessment::from_stored(&v.assessment, t.baseline).map_err(stored)? {
            Assessment::Baseline(b) => baseline = Some((t, b)),
            Assessment::FollowUp(f) => follow_ups.push((t, f)),
        }
    }
    let Some((bt, b)) = baseline else { return Ok(None) };
    let fus: Vec<(&ReadTaskRow, &FollowUpAssessment)> = follow_ups.iter().map(|(t, f)| (*t, f)).collect();
    reader_read(reader, (bt, &b), &fus).map(Some)
}

fn slot_of(v: &Value) -> Option<Reader> {
    v.as_i64().and_then(Reader::from_slot)
}

impl App {
    /// Derives the trial's SDTM datasets for `actor` and audits the export of `request`.
    pub async fn export_sdtm(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        all_reads: bool,
        request: &SdtmRequest,
    ) -> Result<SdtmExport, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let role = match access.role_among(&[Role::TrialManager]) {
            Some(r) => r,
            None if access.grants.iter().any(|g| g.role == Role::Sponsor && g.unblinded) => "sponsor".into(),
            None => {
                return Err(self
                    .deny(
                        actor,
                        Some(trial_id),
                        "export SDTM datasets (sponsors need an unblinded grant)",
                        "sdtm_export",
                        &request.describe(),
                        &[Role::TrialManager, Role::Sponsor],
                    )
                    .await);
            }
        };
        let mut tx = self.db().read().await?;
        let export = self.derive_sdtm(&mut tx, trial_id, all_reads).await?;
        drop(tx);
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            None,
            now,
            "export",
            "sdtm_export",
            request.describe(),
            vec![
                change("all_reads", Value::Null, all_reads),
                change("tu_records", Value::Null, export.datasets.tu.rows.len()),
                change("tr_records", Value::Null, export.datasets.tr.rows.len()),
                change("rs_records", Value::Null, export.datasets.rs.rows.len()),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(export)
    }

    pub(crate) async fn derive_sdtm(
        &self,
        tx: &mut Tx,
        trial_id: Uuid,
        all_reads: bool,
    ) -> Result<SdtmExport, AppError> {
        let trial = tx.trial(trial_id).await?.ok_or_else(|| AppError::NotFound(format!("no trial {trial_id}")))?;
        let charter = charter_in(tx, trial_id).await?;
        let not_recist = || {
            AppError::Conflict(
                "this trial's reads are not RECIST 1.1 or iRECIST: there is no SDTM TU/TR/RS to export".into(),
            )
        };
        let design = Design::of(&charter).ok_or_else(not_recist)?;
        let ReadForm::Recist(criteria) = design.form else { return Err(not_recist()) };
        let schedule = charter.scheduled_visits();
        let study = Study { studyid: trial.protocol_id.clone(), criteria, protocol: design.protocol };
        let mut subjects = Vec::new();
        for case in tx.trial_read_cases(trial_id).await? {
            let data = case_data(tx, case.id).await?;
            let usubjid = format!("{}-{}", trial.protocol_id, data.subject.subject_id);
            let visits = visits_of(tx, &data, &schedule).await?;
            let accepted = match tx.accepted_results(case.id).await?.last() {
                Some(row) => {
                    let result: Value = serde_json::from_str(&row.result).map_err(AppError::internal)?;
                    accepted_reads(tx, &data, &result, row.adjudication_id).await?
                }
                None => None,
            };
            let mut other_reads = Vec::new();
            if all_reads {
                for slot in 1..=2 {
                    let (Some(reader), Some(r)) = (Reader::from_slot(slot), SlotReads::current(&data, slot, None)?)
                    else {
                        continue;
                    };
                    let fus: Vec<(&ReadTaskRow, &FollowUpAssessment)> =
                        r.follow_ups.iter().map(|(t, _, f)| (t, f)).collect();
                    other_reads.push(reader_read(reader, (&r.baseline.0, &r.baseline.2), &fus)?);
                }
            }
            if accepted.is_none() && other_reads.is_empty() {
                continue;
            }
            subjects.push(SubjectReads { usubjid, visits, accepted, other_reads });
        }
        let mode = if all_reads { Mode::AllReads } else { Mode::Accepted };
        let datasets = sdtm::derive(&study, &subjects, mode).map_err(|e| AppError::Conflict(e.to_string()))?;
        Ok(SdtmExport { studyid: study.studyid, all_reads, created: self.clock().now(), datasets })
    }
}

/// The visits of a case as the datasets name them: charter order and label, scan date from the
/// subject's anchor date and the scan day, and the method from the images' modality.
async fn visits_of(
    tx: &mut Tx,
    data: &CaseData,
    schedule: &[corelab_domain::charter::ScheduledVisit],
) -> Result<Vec<Visit>, AppError> {
    let subject: &SubjectRow = &data.subject;
    let mut methods: HashMap<String, String> = HashMap::new();
    for study in tx.subject_studies(subject.id).await? {
        if methods.contains_key(&study.visit_id) {
            continue;
        }
        if let Some(m) = tx.study_series(study.id).await?.iter().find_map(|s| method_of(&s.modality)) {
            methods.insert(study.visit_id.clone(), m.to_string());
        }
    }
    let mut out = Vec::new();
    let mut extra = 0u32;
    for (visit_id, _, day) in data.visits() {
        let (visitnum, name) = match schedule.iter().position(|v| v.id == visit_id) {
            Some(i) => (u32::try_from(i + 1).unwrap_or(u32::MAX), schedule[i].label.clone()),
            None => {
                extra += 1;
                (u32::try_from(schedule.len()).unwrap_or(0) + extra, visit_id.clone())
            }
        };
        let date = subject.anchor_date.checked_add_signed(Duration::days(day));
        out.push(Visit {
            key: visit_id.clone(),
            visitnum,
            name,
            dtc: date.map(|d| d.format("%Y-%m-%d").to_string()),
            study_day: Some(if day >= 0 { day + 1 } else { day }),
            method: methods.get(&visit_id).cloned(),
        });
    }
    Ok(out)
}

/// The reads of a case's accepted result: the versions it names (and, when adjudicated, both
/// readers' compared versions), with who was accepted for what.
async fn accepted_reads(
    tx: &mut Tx,
    data: &CaseData,
    result: &Value,
    adjudication_id: Option<Uuid>,
) -> Result<Option<AcceptedReads>, AppError> {
    let timepoints = result["timepoints"].as_array().cloned().unwrap_or_default();
    let Some(measurements) = timepoints.first().and_then(|t| slot_of(&t["measurements_reader"])) else {
        return Ok(None);
    };
    let mut responses = BTreeMap::new();
    for t in timepoints.iter().filter(|t| t["baseline"] != Value::Bool(true)) {
        if let (Some(v), Some(r)) = (t["visit_id"].as_str(), slot_of(&t["reader"])) {
            responses.insert(v.to_string(), r);
        }
    }
    let best_response = slot_of(&result["best_overall_response"]["reader"]).unwrap_or(measurements);
    let mut reads = Vec::new();
    let adjudicated = match adjudication_id {
        Some(id) => {
            let a = tx.adjudication(id).await?.ok_or_else(|| {
                AppError::internal(std::io::Error::other("accepted result names a missing adjudication"))
            })?;
            let compared: Value = serde_json::from_str(&a.compared).map_err(AppError::internal)?;
            for (slot, key) in [(1, "reader_1"), (2, "reader_2")] {
                let versions: BTreeMap<String, Uuid> =
                    serde_json::from_value(compared[key].clone()).map_err(AppError::internal)?;
                if let Some(r) = read_of_versions(data, slot, &versions)? {
                    reads.push(r);
                }
            }
            true
        }
        None => {
            let versions: BTreeMap<String, Uuid> = timepoints
                .iter()
                .filter_map(|t| {
                    Some((t["visit_id"].as_str()?.to_string(), t["read_version_id"].as_str()?.parse().ok()?))
                })
                .collect();
            let slot = match measurements {
                Reader::One => 1,
                Reader::Two => 2,
            };
            if let Some(r) = read_of_versions(data, slot, &versions)? {
                reads.push(r);
            }
            false
        }
    };
    Ok(Some(AcceptedReads { reads, acceptance: Acceptance { adjudicated, measurements, responses, best_response } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_files_name_a_domain_and_a_format() {
        assert_eq!(parse_dataset_file("TU.csv").unwrap(), ("TU".to_string(), SdtmFormat::Csv));
        assert_eq!(parse_dataset_file("rs.XPT").unwrap(), ("RS".to_string(), SdtmFormat::Xpt));
        for bad in ["DM.xpt", "TR", "TR.sas7bdat", ".xpt"] {
            assert!(matches!(parse_dataset_file(bad), Err(AppError::NotFound(_))), "{bad}");
        }
        assert_eq!(method_of("MR"), Some("MRI"));
        assert_eq!(method_of("SR"), None);
    }
}
