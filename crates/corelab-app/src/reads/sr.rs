//! A read's measurements as a DICOM SR (TID 1500 Imaging Measurement Report) for a PACS: the
//! latest submitted version of a RECIST/iRECIST read, built by `corelab_dicom::sr`.
//!
//! Who may export: the task's own reader, trial managers and system administrators, and sponsors
//! holding an unblinded grant (as for SDTM exports of reads); anyone else in the trial gets 403
//! (audited), another reader 404 (a task is its reader's alone). Every export is audited.
//!
//! The SR names nothing a reader may not see: the patient is the blinded case code, the observer
//! "Reader N", no scan date; study, series and instance UIDs are the stored de-identified ones.

use std::collections::HashMap;

use corelab_dicom::sr::{self, LesionKind, SrDocument, SrImage, SrLesion, SrRegion};
use corelab_domain::access::Role;
use corelab_domain::response::Tenths;
use corelab_store::Tx;
use serde_json::Value;
use uuid::Uuid;

use super::assessment::{Assessment, BaselineAssessment, ImageRef, TargetValue};
use super::{CaseData, Design, ReadForm, case_data, charter_in, visit_images};
use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

/// A read exported as a DICOM Part 10 file.
#[derive(Debug, Clone)]
pub struct ReadSr {
    pub bytes: Vec<u8>,
    /// e.g. `RC-ABCD-EFGH_TP2_v1.dcm` (blinded names only).
    pub file_name: String,
    pub sop_instance_uid: String,
}

/// Stored images by SOP Instance UID, looked up once each; only the case subject's images count.
struct Images<'a> {
    trial: Uuid,
    subject: Uuid,
    seen: HashMap<String, Option<SrImage>>,
    tx: &'a mut Tx,
}

impl Images<'_> {
    async fn get(&mut self, sop: &str) -> Result<Option<SrImage>, AppError> {
        if let Some(x) = self.seen.get(sop) {
            return Ok(x.clone());
        }
        let mut found = None;
        if let Some(i) = self.tx.instance_by_uid(self.trial, sop).await?
            && let Some(study) = self.tx.study(i.study_id).await?
            && study.subject_id == self.subject
            && let Some(series) = self.tx.study_series(i.study_id).await?.into_iter().find(|s| s.id == i.series_id)
        {
            found = Some(SrImage {
                sop_class_uid: i.sop_class_uid,
                sop_instance_uid: i.sop_instance_uid,
                study_instance_uid: study.study_instance_uid,
                series_instance_uid: series.series_instance_uid,
            });
        }
        self.seen.insert(sop.to_string(), found.clone());
        Ok(found)
    }

    /// The region of a lesion; a reference to an image not stored for the subject is left out.
    async fn region(&mut self, r: Option<&ImageRef>) -> Result<Option<SrRegion>, AppError> {
        let Some(r) = r else { return Ok(None) };
        Ok(self.get(&r.sop_instance_uid).await?.map(|image| SrRegion {
            image,
            frame: r.frame,
            points: r.points.clone(),
        }))
    }
}

/// A diameter as the SR's long axis, or short axis for a lymph node (RECIST measures nodes so).
fn axes(is_node: bool, mm: Option<Tenths>) -> (Option<Tenths>, Option<Tenths>) {
    if is_node { (None, mm) } else { (mm, None) }
}

impl App {
    /// The latest submitted version of a read task as a DICOM SR, audited.
    pub async fn read_sr(&self, actor: &Actor, task_id: Uuid) -> Result<ReadSr, AppError> {
        let not_found = || AppError::NotFound(format!("no read task {task_id}"));
        let mut tx = self.db().read().await?;
        let task = tx.read_task(task_id).await?.ok_or_else(not_found)?;
        drop(tx);
        let access = self.trial_access(actor, task.trial_id).await.map_err(|_| not_found())?;
        let own = actor.user_id.is_some() && task.reader_id == actor.user_id && access.has(Role::Reader);
        let role = if own {
            "reader".to_string()
        } else if let Some(r) = access.role_among(&[Role::TrialManager]) {
            r
        } else if access.grants.iter().any(|g| g.role == Role::Sponsor && g.unblinded) {
            "sponsor".to_string()
        } else if access.has(Role::Reader) {
            // Another reader's task: its existence is not confirmed.
            return Err(not_found());
        } else {
            return Err(self
                .deny(
                    actor,
                    Some(task.trial_id),
                    "export a read as DICOM SR (the task's reader, trial managers, unblinded sponsors)",
                    "read_task",
                    &task_id.to_string(),
                    &[Role::Reader, Role::TrialManager, Role::Sponsor],
                )
                .await);
        };
        let mut tx = self.db().read().await?;
        let charter = charter_in(&mut tx, task.trial_id).await?;
        let design = Design::of(&charter).ok_or_else(super::no_read_form)?;
        if !matches!(design.form, ReadForm::Recist(_)) {
            return Err(AppError::Conflict(format!(
                "DICOM SR export covers lesion measurements (RECIST 1.1, iRECIST); this trial reads {}",
                design.form.name()
            )));
        }
        let data = case_data(&mut tx, task.case_id).await?;
        let version = data.current(task.id).cloned().ok_or_else(|| {
            AppError::Conflict(
                "this read has no submitted version yet; export it after the reader has signed it".into(),
            )
        })?;
        let labels = data.labels(&design);
        let label = labels.get(&task.visit_id).map(|l| l.label.clone()).unwrap_or_default();
        let studies = visit_images(&mut tx, data.subject.id, &task.visit_id).await?;
        let study = studies
            .first()
            .ok_or_else(|| AppError::Conflict("the timepoint has no stored study to attach the report to".into()))?;
        let modality = study.series.first().map(|s| s.modality.clone()).unwrap_or_default();
        let assessment = Assessment::from_stored(&version.assessment, task.baseline).map_err(super::stored_error)?;
        let baseline = reader_baseline(&data, &task, &assessment)?;
        let case_id = data.case.id.to_string();
        let slot = task.slot.to_string();
        let tracking = |id: &str| sr::derived_uid(&["lesion", &case_id, &slot, id]);
        let organ_of = |id: &str, list: &[super::assessment::BaselineLesion]| {
            list.iter().find(|l| l.id == id).map(|l| (l.organ.clone(), l.is_node))
        };
        let mut images = Images { trial: task.trial_id, subject: data.subject.id, seen: HashMap::new(), tx: &mut tx };
        let mut lesions = Vec::new();
        match &assessment {
            Assessment::Baseline(b) => {
                for (kind, list) in [(LesionKind::Target, &b.targets), (LesionKind::NonTarget, &b.non_targets)] {
                    for l in list {
                        let (long, short) = axes(l.is_node, l.diameter_mm);
                        lesions.push(SrLesion {
                            id: l.id.clone(),
                            tracking_uid: tracking(&l.id),
                            organ: l.organ.clone(),
                            kind,
                            long_axis_mm: long,
                            short_axis_mm: short,
                            region: images.region(l.image.as_ref()).await?,
                        });
                    }
                }
            }
            Assessment::FollowUp(f) => {
                for (id, r) in &f.targets {
                    let (organ, node) = organ_of(id, &baseline.targets).unwrap_or_default();
                    let mm = match r.value {
                        TargetValue::Measured(t) => Some(t),
                        _ => None,
                    };
                    let (long, short) = axes(node, mm);
                    lesions.push(SrLesion {
                        id: id.clone(),
                        tracking_uid: tracking(id),
                        organ,
                        kind: LesionKind::Target,
                        long_axis_mm: long,
                        short_axis_mm: short,
                        region: images.region(r.image.as_ref()).await?,
                    });
                }
                for (id, r) in &f.non_targets {
                    let (organ, _) = organ_of(id, &baseline.non_targets).unwrap_or_default();
                    lesions.push(SrLesion {
                        id: id.clone(),
                        tracking_uid: tracking(id),
                        organ,
                        kind: LesionKind::NonTarget,
                        long_axis_mm: None,
                        short_axis_mm: None,
                        region: images.region(r.image.as_ref()).await?,
                    });
                }
                for n in &f.new_lesions {
                    let (long, short) = axes(n.is_node, n.diameter_mm);
                    lesions.push(SrLesion {
                        id: n.id.clone(),
                        tracking_uid: tracking(&n.id),
                        organ: n.organ.clone(),
                        kind: LesionKind::New,
                        long_axis_mm: long,
                        short_axis_mm: short,
                        region: images.region(n.image.as_ref()).await?,
                    });
                }
            }
        }
        drop(tx);
        let signed = version.submitted_at.unwrap_or(version.saved_at);
        let doc = SrDocument {
            sop_instance_uid: sr::derived_uid(&["sr", &version.id.to_string()]),
            series_instance_uid: sr::derived_uid(&["sr-series", &task.id.to_string()]),
            study_instance_uid: study.study_instance_uid.clone(),
            patient_id: data.case.case_code.clone(),
            observer: format!("Reader {}", task.slot),
            timepoint: label.clone(),
            modality,
            content_date: signed.format("%Y%m%d").to_string(),
            content_time: signed.format("%H%M%S").to_string(),
            series_number: 9000 + task.slot,
            instance_number: version.version,
            lesions,
        };
        let bytes = sr::to_bytes(&doc).map_err(AppError::internal)?;
        let now = self.clock().now();
        let mut tx = self.db().begin().await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            task.trial_id,
            None,
            now,
            "export",
            "read_sr",
            task_id,
            vec![
                change("version", Value::Null, version.version),
                change("measurement_groups", Value::Null, doc.lesions.len()),
                change("sop_instance_uid", Value::Null, doc.sop_instance_uid.clone()),
            ],
        ))
        .await?;
        tx.commit().await?;
        let safe = |s: &str| {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>()
        };
        Ok(ReadSr {
            file_name: format!("{}_{}_v{}.dcm", safe(&data.case.case_code), safe(&label), version.version),
            sop_instance_uid: doc.sop_instance_uid,
            bytes,
        })
    }
}

/// The reader's own baseline of the case (organs and nodes of follow-up lesions).
fn reader_baseline(
    data: &CaseData,
    task: &corelab_store::reads::ReadTaskRow,
    assessment: &Assessment,
) -> Result<BaselineAssessment, AppError> {
    if let Assessment::Baseline(b) = assessment {
        return Ok(b.clone());
    }
    let Some(b) = data.slot_tasks(task.slot).into_iter().find(|t| t.baseline) else {
        return Ok(BaselineAssessment::default());
    };
    match data.current(b.id) {
        Some(v) => match Assessment::from_stored(&v.assessment, true).map_err(super::stored_error)? {
            Assessment::Baseline(b) => Ok(b),
            Assessment::FollowUp(_) => Ok(BaselineAssessment::default()),
        },
        None => Ok(BaselineAssessment::default()),
    }
}
