//! Site qualification: a site starts pending; it uploads a qualification scan (a phantom or a
//! test-subject scan) that is de-identified with the trial's profile and checked against the
//! charter's acquisition constraints; a QC reviewer approves with an e-signature and the site
//! turns qualified. Subject data from a site that is not qualified is refused.

use corelab_dicom::deid::{DeidContext, deidentify_bytes, read_object};
use corelab_domain::access::Role;
use corelab_domain::charter::{AcquisitionConstraints, Charter, Range};
use corelab_store::trials::QualificationScanRow;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::audit::{change, trial_record};
use crate::signatures::{SignatureView, SigningCredentials};
use crate::{Actor, App, AppError};

/// Largest qualification instance accepted (a phantom slice or a short series, one per request).
pub const MAX_QUALIFICATION_BYTES: u64 = 64 * 1024 * 1024;

/// One problem of a qualification scan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QualificationFinding {
    pub rule: String,
    pub expected: String,
    pub found: String,
    pub message: String,
}

/// A site's qualification as shown to its staff, QC and trial managers.
#[derive(Debug, Clone, Serialize)]
pub struct QualificationView {
    pub site_id: String,
    pub status: String,
    pub scans: Vec<QualificationScanView>,
    pub signatures: Vec<SignatureView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualificationScanView {
    pub id: Uuid,
    pub modality: String,
    pub sop_instance_uid: String,
    pub sha256: String,
    pub passed: bool,
    pub findings: Value,
    pub charter_version: i64,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

fn num(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    obj.element(tag).ok().and_then(|e| e.to_str().ok()).and_then(|s| s.split('\\').next()?.trim().parse::<f64>().ok())
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element(tag).ok().and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

fn range_text(r: &Range, unit: &str) -> String {
    match (r.min, r.max) {
        (Some(a), Some(b)) => format!("{a} to {b} {unit}"),
        (Some(a), None) => format!("at least {a} {unit}"),
        (None, Some(b)) => format!("at most {b} {unit}"),
        (None, None) => "any".into(),
    }
}

/// Checks one value against a range; a missing value is a finding too.
fn check_range(
    out: &mut Vec<QualificationFinding>,
    rule: &str,
    what: &str,
    unit: &str,
    r: &Option<Range>,
    v: Option<f64>,
) {
    let Some(r) = r else { return };
    match v {
        Some(v) if r.contains(v) => {}
        Some(v) => out.push(QualificationFinding {
            rule: rule.into(),
            expected: range_text(r, unit),
            found: format!("{v} {unit}"),
            message: format!("{what} is {v} {unit}; the charter requires {}", range_text(r, unit)),
        }),
        None => out.push(QualificationFinding {
            rule: rule.into(),
            expected: range_text(r, unit),
            found: "not recorded".into(),
            message: format!(
                "{what} is not recorded in the image header; the charter requires {}",
                range_text(r, unit)
            ),
        }),
    }
}

fn check_constraints(c: &AcquisitionConstraints, obj: &InMemDicomObject) -> Vec<QualificationFinding> {
    let mut out = Vec::new();
    check_range(
        &mut out,
        "slice_thickness",
        "Slice thickness",
        "mm",
        &c.slice_thickness_mm,
        num(obj, tags::SLICE_THICKNESS),
    );
    check_range(&mut out, "kvp", "Tube voltage", "kVp", &c.kvp, num(obj, tags::KVP));
    check_range(
        &mut out,
        "field_strength",
        "Magnetic field strength",
        "T",
        &c.field_strength_t,
        num(obj, tags::MAGNETIC_FIELD_STRENGTH),
    );
    check_range(&mut out, "pixel_spacing", "Pixel spacing", "mm", &c.pixel_spacing_mm, num(obj, tags::PIXEL_SPACING));
    if let Some(min) = c.matrix_min {
        let rows = num(obj, tags::ROWS).unwrap_or(0.0);
        let cols = num(obj, tags::COLUMNS).unwrap_or(0.0);
        if rows.min(cols) < f64::from(min) {
            out.push(QualificationFinding {
                rule: "matrix".into(),
                expected: format!("at least {min} x {min}"),
                found: format!("{rows} x {cols}"),
                message: format!("The image matrix is {rows} x {cols}; the charter requires at least {min} x {min}"),
            });
        }
    }
    out
}

/// The header checks a qualification scan gets: its modality must be one the charter uses, and
/// it must meet the constraints of at least one series of that modality. Returns the findings of
/// the closest series (fewest findings).
pub fn qualification_findings(charter: &Charter, obj: &InMemDicomObject) -> Vec<QualificationFinding> {
    let modality = text(obj, tags::MODALITY).unwrap_or_default();
    let candidates: Vec<&AcquisitionConstraints> = charter
        .imaging
        .iter()
        .filter(|i| i.modality.as_str().eq_ignore_ascii_case(&modality))
        .flat_map(|i| i.series.iter().map(|s| &s.constraints))
        .collect();
    if candidates.is_empty() {
        let mut used: Vec<&str> = charter.imaging.iter().map(|i| i.modality.as_str()).collect();
        used.dedup();
        return vec![QualificationFinding {
            rule: "modality".into(),
            expected: used.join(" or "),
            found: if modality.is_empty() { "not recorded".into() } else { modality.clone() },
            message: format!(
                "The scan's modality is {}; this trial's charter acquires {}",
                if modality.is_empty() { "not recorded" } else { &modality },
                used.join(" or ")
            ),
        }];
    }
    candidates.into_iter().map(|c| check_constraints(c, obj)).min_by_key(|f| f.len()).unwrap_or_default()
}

impl App {
    async fn qualification_access(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        site_id: &str,
    ) -> Result<crate::access::TrialAccess, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        if !access.can_see_site(site_id) {
            return Err(AppError::NotFound(format!("no site {site_id} in trial {trial_id}")));
        }
        let mut tx = self.db().read().await?;
        tx.site(trial_id, site_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no site {site_id} in trial {trial_id}")))?;
        Ok(access)
    }

    /// Uploads one qualification instance for a site (site staff of that site, or a trial
    /// manager). It is de-identified before it is stored, then checked.
    pub async fn upload_qualification_scan<R: tokio::io::AsyncRead + Unpin>(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        site_id: &str,
        body: R,
    ) -> Result<QualificationScanView, AppError> {
        let access = self.qualification_access(actor, trial_id, site_id).await?;
        let role = self
            .require(
                actor,
                &access,
                &[Role::SiteUser, Role::TrialManager],
                "upload qualification scans",
                "site",
                site_id,
            )
            .await?;
        let mut raw = Vec::new();
        body.take(MAX_QUALIFICATION_BYTES + 1).read_to_end(&mut raw).await.map_err(AppError::internal)?;
        if raw.len() as u64 > MAX_QUALIFICATION_BYTES {
            return Err(AppError::TooLarge(format!(
                "a qualification instance may be at most {MAX_QUALIFICATION_BYTES} bytes; send one instance per request"
            )));
        }
        let (version, charter) = self.current_charter(trial_id).await?;
        let ctx = DeidContext {
            trial_secret: access.trial.deid_secret.clone(),
            sponsor_name: charter.trial.sponsor.clone(),
            protocol_id: charter.trial.protocol_id.clone(),
            protocol_name: Some(charter.trial.protocol_name.clone()),
            site_id: site_id.to_string(),
            site_name: None,
            subject_id: format!("QUAL-{site_id}"),
            time_point_id: Some("QUALIFICATION".into()),
            time_point_description: Some("Site qualification scan".into()),
            // Qualification scans belong to no subject: a fresh shift hides their dates.
            date_shift_days: (charter.deidentification.dates == corelab_domain::deid_profile::DateHandling::Shift)
                .then(|| {
                    let max = i32::try_from(charter.deidentification.max_shift_days.clamp(1, 3650)).unwrap_or(365);
                    let mut d = 0;
                    while d == 0 {
                        d = rand::random_range(-max..=max);
                    }
                    d
                }),
            profile: charter.deidentification.clone(),
        };
        let (clean, _report) = tokio::task::spawn_blocking(move || deidentify_bytes(&raw, &ctx))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::invalid("body", format!("the upload is not a usable DICOM instance: {e}")))?;
        let obj = read_object(&clean)
            .map_err(|e| AppError::invalid("body", format!("unreadable after de-identification: {e}")))?;
        let findings = qualification_findings(&charter, &obj);
        let sop = text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
        let modality = text(&obj, tags::MODALITY).unwrap_or_default();
        let staged = self.blobs().stage_bytes(&clean).await?;
        let key = format!("qualification/{trial_id}/{site_id}/{}.dcm", staged.sha256);
        let (sha, size) = (staged.sha256.clone(), staged.size);
        self.blobs().commit(staged, &key).await?;
        let now = self.clock().now();
        let row = QualificationScanRow {
            id: Uuid::now_v7(),
            trial_id,
            site_id: site_id.to_string(),
            sop_instance_uid: sop,
            modality,
            blob_key: key,
            sha256: sha,
            size_bytes: i64::try_from(size).map_err(AppError::internal)?,
            findings: serde_json::to_string(&findings).map_err(AppError::internal)?,
            passed: findings.is_empty(),
            charter_version: version,
            uploaded_by: actor.user_id,
            uploaded_at: now,
        };
        let mut tx = self.db().begin().await?;
        let site = tx.site(trial_id, site_id).await?.ok_or_else(|| AppError::NotFound(format!("no site {site_id}")))?;
        tx.insert_qualification_scan(&row).await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            Some(site_id),
            now,
            "create",
            "qualification_scan",
            row.id,
            vec![
                change("sha256", Value::Null, row.sha256.clone()),
                change("passed", Value::Null, row.passed),
                change("findings", Value::Null, findings.len()),
            ],
        ))
        .await?;
        if site.status == "pending" || site.status == "rejected" {
            tx.set_site_status(trial_id, site_id, "submitted", None).await?;
            tx.append_audit(trial_record(
                actor,
                &role,
                trial_id,
                Some(site_id),
                now,
                "update",
                "site",
                format!("{}/{site_id}", access.trial.protocol_id),
                vec![change("status", site.status.clone(), "submitted")],
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(scan_view(&row))
    }

    /// The site's qualification status, scans and approval signatures.
    pub async fn qualification(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        site_id: &str,
    ) -> Result<QualificationView, AppError> {
        self.qualification_access(actor, trial_id, site_id).await?;
        let mut tx = self.db().read().await?;
        let site = tx.site(trial_id, site_id).await?.ok_or_else(|| AppError::NotFound(format!("no site {site_id}")))?;
        let scans = tx.qualification_scans(trial_id, site_id).await?;
        drop(tx);
        let content = qualification_content(&site.status, &scans);
        let signatures = self.signature_views("site_qualification", &format!("{trial_id}/{site_id}"), &content).await?;
        Ok(QualificationView {
            site_id: site_id.to_string(),
            status: site.status,
            scans: scans.iter().map(scan_view).collect(),
            signatures,
        })
    }

    /// A QC reviewer approves (e-signed) or rejects (with a reason) a site's qualification.
    pub async fn decide_qualification(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        site_id: &str,
        approve: bool,
        reason: &str,
        creds: SigningCredentials,
    ) -> Result<QualificationView, AppError> {
        let access = self.qualification_access(actor, trial_id, site_id).await?;
        let role =
            self.require(actor, &access, &[Role::QcReviewer], "decide site qualification", "site", site_id).await?;
        let mut tx = self.db().read().await?;
        let site = tx.site(trial_id, site_id).await?.ok_or_else(|| AppError::NotFound(format!("no site {site_id}")))?;
        let scans = tx.qualification_scans(trial_id, site_id).await?;
        drop(tx);
        if scans.is_empty() {
            return Err(AppError::Conflict(format!(
                "site {site_id} has not uploaded a qualification scan yet; it must upload one before a decision"
            )));
        }
        if site.status == "qualified" {
            return Err(AppError::Conflict(format!("site {site_id} is already qualified")));
        }
        if !approve && reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the qualification is rejected; the site sees it"));
        }
        self.check_signing(actor, &creds).await?;
        let now = self.clock().now();
        let new_status = if approve { "qualified" } else { "rejected" };
        let mut tx = self.db().begin().await?;
        tx.set_site_status(trial_id, site_id, new_status, approve.then_some(now)).await?;
        let mut rec = trial_record(
            actor,
            &role,
            trial_id,
            Some(site_id),
            now,
            if approve { "qualify" } else { "reject_qualification" },
            "site",
            format!("{}/{site_id}", access.trial.protocol_id),
            vec![change("status", site.status.clone(), new_status)],
        );
        rec.reason = (!reason.trim().is_empty()).then(|| reason.trim().to_string());
        tx.append_audit(rec).await?;
        let content = qualification_content(new_status, &scans);
        let meaning = if approve { "site qualification approved" } else { "site qualification rejected" };
        self.write_signature(
            &mut tx,
            actor,
            Some(trial_id),
            "site_qualification",
            &format!("{trial_id}/{site_id}"),
            meaning,
            &content,
        )
        .await?;
        tx.commit().await?;
        self.qualification(actor, trial_id, site_id).await
    }
}

/// What a qualification signature binds to: the decision and the exact scans it was made on.
fn qualification_content(status: &str, scans: &[QualificationScanRow]) -> Value {
    let scans: Vec<Value> = scans.iter().map(|s| json!({"id": s.id, "sha256": s.sha256, "passed": s.passed})).collect();
    json!({"status": status, "scans": scans})
}

fn scan_view(r: &QualificationScanRow) -> QualificationScanView {
    QualificationScanView {
        id: r.id,
        modality: r.modality.clone(),
        sop_instance_uid: r.sop_instance_uid.clone(),
        sha256: r.sha256.clone(),
        passed: r.passed,
        findings: serde_json::from_str(&r.findings).unwrap_or(Value::Null),
        charter_version: r.charter_version,
        uploaded_at: r.uploaded_at,
    }
}

impl App {
    /// Records that the caller completed the trial's protocol training for the charter version in
    /// force (who, which version, when). Site staff attest for their site.
    pub async fn attest_training(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        topic: &str,
    ) -> Result<corelab_store::identity::TrainingRow, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let uid = actor
            .user_id
            .filter(|_| actor.token.is_none())
            .ok_or_else(|| AppError::Forbidden("training is attested by a person in a login session".into()))?;
        if access.grants.is_empty() {
            return Err(AppError::Forbidden("only people with a role in this trial attest its training".into()));
        }
        let topic = topic.trim();
        if topic.is_empty() || topic.len() > 200 {
            return Err(AppError::invalid(
                "topic",
                "name the training, e.g. \"imaging charter and acquisition protocol\"",
            ));
        }
        let site_id = access.grants.iter().find(|g| g.role == Role::SiteUser).and_then(|g| g.site_id.clone());
        let role = access.grants[0].role.as_str().to_string();
        let now = self.clock().now();
        let row = corelab_store::identity::TrainingRow {
            id: Uuid::now_v7(),
            trial_id,
            site_id: site_id.clone(),
            user_id: uid,
            charter_version: access.trial.current_version,
            topic: topic.to_string(),
            attested_at: now,
        };
        let mut tx = self.db().begin().await?;
        tx.insert_training(&row).await?;
        tx.append_audit(trial_record(
            actor,
            &role,
            trial_id,
            site_id.as_deref(),
            now,
            "create",
            "training_record",
            row.id,
            vec![
                change("topic", Value::Null, row.topic.clone()),
                change("charter_version", Value::Null, row.charter_version),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Training records: everyone's for trial managers and monitors, one's own otherwise.
    pub async fn training_records(
        &self,
        actor: &Actor,
        trial_id: Uuid,
    ) -> Result<Vec<corelab_store::identity::TrainingRow>, AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let all = access.role_among(&[Role::TrialManager, Role::Monitor]).is_some();
        let mut tx = self.db().read().await?;
        Ok(tx
            .training_records(trial_id)
            .await?
            .into_iter()
            .filter(|t| all || Some(t.user_id) == actor.user_id)
            .collect())
    }
}
