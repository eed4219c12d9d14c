//! The regulatory package (issue 12 part 5): for a trial or one subject, a ZIP an inspector can
//! reconstruct every result from, with a manifest of SHA-256 hashes of every file.
//!
//! ```text
//! manifest.json            what, for whom, when, by whom; every file with its SHA-256 and size
//! SHA256SUMS               the same hashes in `sha256sum -c` format
//! README.txt               how to check the package
//! trial/charter-vN.toml    every charter version (the rules every result was made under)
//! subjects.json            subject ID, site, status, charter version (no arm: reads are blinded)
//! images/index.json        every instance: subject, visit, UIDs, SHA-256 as indexed, package path
//! images/<subject>/<visit>/<study UID>/<series UID>/<SOP UID>.dcm   de-identified, as stored
//! qc/evaluations.json      automated QC evaluations with findings; qc/reviews.json QC1/QC2 decisions
//! reads/reads.json         per subject: read case, readers, tasks, every read version (assessment,
//!                          engine result), adjudications with decisions, accepted result history
//! signatures.json          every e-signature (signer, meaning, time, SHA-256 of the signed content)
//! audit/audit_trail.json   the trial's audit records, each with its hash and previous hash
//! ```
//!
//! The images are the stored de-identified bytes; their hashes in the package equal the index's.
//! Only trial managers (and system administrators, e.g. the operator's `corelab package`) may make
//! one; making one is audited (`export regulatory_package`, with the manifest's SHA-256).

pub mod zip;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use corelab_domain::access::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use self::zip::ZipWriter;
use crate::audit::{change, trial_record};
use crate::audit_trail::{AuditQuery, ExportFormat};
use crate::{Actor, App, AppError};

/// What a package holds, for the caller to report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageSummary {
    pub trial_id: Uuid,
    pub subject: Option<String>,
    pub files: usize,
    pub images: usize,
    pub read_versions: usize,
    pub signatures: usize,
    pub audit_records: usize,
    /// SHA-256 of manifest.json.
    pub manifest_sha256: String,
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A path segment from an identifier: letters, digits, `.`, `-`, `_` kept, anything else `_`.
fn segment(s: &str) -> String {
    let cleaned: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') { "_".into() } else { cleaned }
}

struct Files<W: Write> {
    zip: ZipWriter<W>,
    listed: Vec<(String, String, u64)>,
}

impl<W: Write> Files<W> {
    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), AppError> {
        self.zip.add(name, bytes).map_err(AppError::internal)?;
        self.listed.push((name.to_string(), sha(bytes), bytes.len() as u64));
        Ok(())
    }
    fn json(&mut self, name: &str, v: &Value) -> Result<(), AppError> {
        let bytes = serde_json::to_vec_pretty(v).map_err(AppError::internal)?;
        self.add(name, &bytes)
    }
}

fn parsed(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

impl App {
    /// Writes the regulatory package of `trial_id` (or of one subject, by subject ID) into `out`.
    pub async fn regulatory_package<W: Write + Send>(
        &self,
        actor: &Actor,
        trial_id: Uuid,
        subject: Option<&str>,
        out: W,
    ) -> Result<(W, PackageSummary), AppError> {
        let access = self.trial_access(actor, trial_id).await?;
        let object = trial_id.to_string();
        let role = self
            .require(actor, &access, &[Role::TrialManager], "make a regulatory package", "regulatory_package", &object)
            .await?;
        let trial = access.trial.clone();
        let mut tx = self.db().read().await?;
        let all_subjects = tx.subjects(trial_id).await?;
        let subjects: Vec<_> = match subject {
            Some(code) => {
                let s = all_subjects.iter().find(|s| s.subject_id == code).cloned().ok_or_else(|| {
                    AppError::invalid("subject", format!("the trial has no subject {code}; give a subject ID"))
                })?;
                vec![s]
            }
            None => all_subjects,
        };
        let in_scope: HashSet<Uuid> = subjects.iter().map(|s| s.id).collect();
        let code_of: HashMap<Uuid, String> = subjects.iter().map(|s| (s.id, s.subject_id.clone())).collect();
        let mut files = Files { zip: ZipWriter::new(out), listed: Vec::new() };

        // Charter versions.
        for v in tx.charter_versions(trial_id).await? {
            files.add(&format!("trial/charter-v{}.toml", v.version), v.charter_text.as_bytes())?;
        }
        files.json(
            "subjects.json",
            &Value::Array(
                subjects
                    .iter()
                    .map(|s| {
                        json!({"subject_id": s.subject_id, "site_id": s.site_id, "status": s.status,
                               "charter_version": s.charter_version, "enrolled_at": s.created_at})
                    })
                    .collect(),
            ),
        )?;

        // Images, as stored (de-identified), with the index.
        let studies: HashMap<Uuid, _> = tx
            .trial_studies(trial_id)
            .await?
            .into_iter()
            .filter(|s| in_scope.contains(&s.subject_id))
            .map(|s| (s.id, s))
            .collect();
        let mut series_uid: HashMap<Uuid, String> = HashMap::new();
        for study in studies.values() {
            for se in tx.study_series(study.id).await? {
                series_uid.insert(se.id, se.series_instance_uid);
            }
        }
        let instances: Vec<_> =
            tx.trial_instances(trial_id).await?.into_iter().filter(|i| studies.contains_key(&i.study_id)).collect();
        let mut index = Vec::new();
        for i in &instances {
            let Some(study) = studies.get(&i.study_id) else { continue };
            let bytes = self.blobs().get_bytes(&i.blob_key).await?;
            let got = sha(&bytes);
            if got != i.sha256 {
                return Err(AppError::Conflict(format!(
                    "stored instance {} does not match its index hash (run `corelab verify`); no package was made",
                    i.sop_instance_uid
                )));
            }
            let path = format!(
                "images/{}/{}/{}/{}/{}.dcm",
                segment(code_of.get(&study.subject_id).map(String::as_str).unwrap_or("unknown")),
                segment(&study.visit_id),
                segment(&study.study_instance_uid),
                segment(series_uid.get(&i.series_id).map(String::as_str).unwrap_or("unknown")),
                segment(&i.sop_instance_uid)
            );
            files.add(&path, &bytes)?;
            index.push(json!({
                "path": path, "subject_id": code_of.get(&study.subject_id), "site_id": study.site_id,
                "visit_id": study.visit_id, "study_instance_uid": study.study_instance_uid,
                "series_instance_uid": series_uid.get(&i.series_id), "sop_instance_uid": i.sop_instance_uid,
                "sop_class_uid": i.sop_class_uid, "transfer_syntax": i.transfer_syntax, "sha256": i.sha256,
                "size_bytes": i.size_bytes, "received_at": i.received_at, "source": i.source,
                "deidentification": parsed(Some(&i.deid_report)),
            }));
        }
        let image_count = index.len();
        files.json("images/index.json", &json!({"count": image_count, "instances": index}))?;

        // QC.
        let evaluations: Vec<_> =
            tx.trial_evaluations(trial_id).await?.into_iter().filter(|e| in_scope.contains(&e.subject_id)).collect();
        let reviews: Vec<_> =
            tx.trial_reviews(trial_id).await?.into_iter().filter(|r| in_scope.contains(&r.subject_id)).collect();
        let mut related: HashSet<String> = in_scope.iter().map(Uuid::to_string).collect();
        related.extend(evaluations.iter().map(|e| e.id.to_string()));
        related.extend(reviews.iter().map(|r| r.id.to_string()));
        files.json(
            "qc/evaluations.json",
            &Value::Array(
                evaluations
                    .iter()
                    .map(|e| {
                        json!({"id": e.id, "subject_id": code_of.get(&e.subject_id), "site_id": e.site_id,
                               "visit_id": e.visit_id, "charter_version": e.charter_version, "verdict": e.verdict,
                               "complete": e.complete, "findings": parsed(Some(&e.findings)),
                               "series": parsed(Some(&e.series)), "instance_count": e.instance_count,
                               "evaluated_at": e.evaluated_at})
                    })
                    .collect(),
            ),
        )?;
        files.json("qc/reviews.json", &serde_json::to_value(&reviews).map_err(AppError::internal)?)?;

        // Reads.
        let mut usernames: HashMap<Uuid, String> = HashMap::new();
        let mut reads = Vec::new();
        let mut read_versions = 0;
        for case in tx.trial_read_cases(trial_id).await? {
            if !in_scope.contains(&case.subject_id) {
                continue;
            }
            let mut tasks = Vec::new();
            for t in tx.case_read_tasks(case.id).await? {
                let mut versions = Vec::new();
                for v in tx.read_versions(t.id).await? {
                    related.insert(v.id.to_string());
                    read_versions += 1;
                    versions.push(json!({
                        "id": v.id, "version": v.version, "state": v.state,
                        "assessment": parsed(Some(&v.assessment)), "result": parsed(v.result.as_deref()),
                        "reason": v.reason, "saved_at": v.saved_at, "submitted_at": v.submitted_at,
                    }));
                }
                related.insert(t.id.to_string());
                tasks.push(json!({
                    "id": t.id, "visit_id": t.visit_id, "reader_slot": t.slot, "baseline": t.baseline,
                    "days_from_anchor": t.day, "state": t.state, "qc_passed_at": t.qc_passed_at,
                    "submitted_at": t.submitted_at, "versions": versions,
                }));
            }
            let mut adjudications = Vec::new();
            for a in tx.case_adjudications(case.id).await? {
                related.insert(a.id.to_string());
                adjudications.push(json!({
                    "id": a.id, "state": a.state, "compared": parsed(Some(&a.compared)),
                    "disagreements": parsed(Some(&a.disagreements)), "choice": a.choice,
                    "decision": parsed(a.decision.as_deref()), "rationale": a.rationale,
                    "created_at": a.created_at, "decided_at": a.decided_at,
                }));
            }
            let accepted: Vec<Value> = tx
                .accepted_results(case.id)
                .await?
                .into_iter()
                .map(|r| {
                    json!({"seq": r.seq, "basis": r.basis, "adjudication_id": r.adjudication_id,
                           "result": parsed(Some(&r.result)), "recorded_at": r.recorded_at})
                })
                .collect();
            related.insert(case.id.to_string());
            let (r1, r2) = (case.reader_1, case.reader_2);
            for u in [r1, r2].into_iter().flatten() {
                if let std::collections::hash_map::Entry::Vacant(e) = usernames.entry(u) {
                    let n = tx.user_by_id(u).await?.map(|x| x.username).unwrap_or_else(|| u.to_string());
                    e.insert(n);
                }
            }
            reads.push(json!({
                "subject_id": code_of.get(&case.subject_id), "case_code": case.case_code,
                "reader_1": r1.and_then(|u| usernames.get(&u).cloned()),
                "reader_2": r2.and_then(|u| usernames.get(&u).cloned()),
                "tasks": tasks, "adjudications": adjudications, "accepted_results": accepted,
            }));
        }
        files.json("reads/reads.json", &Value::Array(reads))?;

        // SDTM TU/TR/RS as the sponsor gets them (accepted reads), and with every reader's reads
        // (accepted records flagged), each as XPT and CSV with the define listing.
        for (dir, all_reads) in [("sdtm/accepted", false), ("sdtm/all-reads", true)] {
            match self.derive_sdtm(&mut tx, trial_id, all_reads).await {
                Ok(mut export) => {
                    if let Some(code) = subject {
                        export.datasets.retain_subject(&format!("{}-{code}", trial.protocol_id));
                    }
                    for name in ["TU", "TR", "RS"] {
                        let lower = name.to_ascii_lowercase();
                        files.add(&format!("{dir}/{lower}.xpt"), &export.xpt(name)?)?;
                        files.add(&format!("{dir}/{lower}.csv"), export.csv(name)?.as_bytes())?;
                    }
                    files.add(&format!("{dir}/define.xml"), export.define_xml().as_bytes())?;
                    files.add(&format!("{dir}/define.csv"), export.define_csv().as_bytes())?;
                }
                // LVEF and MS trials have no TU/TR/RS mapping yet: say so in the package.
                Err(AppError::Conflict(why)) => files.add(&format!("{dir}/README.txt"), why.as_bytes())?,
                Err(e) => return Err(e),
            }
        }

        // Signatures: the trial's, or for a subject those on its records.
        let signatures: Vec<_> = tx
            .trial_signatures(trial_id)
            .await?
            .into_iter()
            .filter(|s| subject.is_none() || related.contains(&s.record_id))
            .collect();
        let signature_count = signatures.len();
        files.json("signatures.json", &serde_json::to_value(&signatures).map_err(AppError::internal)?)?;
        drop(tx);

        // The audit trail of the trial (the existing export, itself audited).
        let audit = self
            .export_audit(actor, &AuditQuery { trial_id: Some(trial_id), ..AuditQuery::default() }, ExportFormat::Json)
            .await?;
        let audit_records =
            serde_json::from_slice::<Value>(&audit).ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0);
        files.add("audit/audit_trail.json", &audit)?;

        let readme = format!(
            "corelab regulatory package\n\nTrial {} ({}){}.\n\nCheck it: `sha256sum -c SHA256SUMS` in the unpacked folder, \
             or compare each file's SHA-256 with manifest.json. images/index.json lists every de-identified image \
             with the SHA-256 recorded when corelab stored it; they equal the files' hashes. Audit records carry \
             their hash and the previous record's hash (docs/audit in corelab). Reads hold every version with the \
             engine result computed at submission; accepted_results shows which reader each result came from.\n",
            trial.protocol_id,
            trial.name,
            subject.map(|s| format!(", subject {s}")).unwrap_or_default()
        );
        files.add("README.txt", readme.as_bytes())?;
        let sums: String = files.listed.iter().map(|(p, h, _)| format!("{h}  {p}\n")).collect();
        files.add("SHA256SUMS", sums.as_bytes())?;

        let now = self.clock().now();
        let counts = BTreeMap::from([
            ("images", image_count),
            ("read_versions", read_versions),
            ("signatures", signature_count),
            ("audit_records", audit_records),
            ("subjects", subjects.len()),
        ]);
        let manifest = json!({
            "format": "corelab regulatory package 1",
            "trial": {"id": trial_id, "protocol_id": trial.protocol_id, "name": trial.name, "sponsor": trial.sponsor,
                      "charter_version": trial.current_version},
            "subject": subject,
            "generated_at": now,
            "generated_by": actor.username,
            "counts": counts,
            "files": files.listed.iter().map(|(p, h, n)| json!({"path": p, "sha256": h, "size": n})).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(AppError::internal)?;
        let manifest_sha256 = sha(&manifest_bytes);
        files.zip.add("manifest.json", &manifest_bytes).map_err(AppError::internal)?;
        let file_count = files.listed.len() + 1;
        let out = files.zip.finish().map_err(AppError::internal)?;

        let rec = trial_record(
            actor,
            &role,
            trial_id,
            None,
            now,
            "export",
            "regulatory_package",
            trial_id,
            vec![
                change("subject", Value::Null, subject.map(str::to_string)),
                change("files", Value::Null, file_count),
                change("images", Value::Null, image_count),
                change("manifest_sha256", Value::Null, manifest_sha256.clone()),
            ],
        );
        let mut tx = self.db().begin().await?;
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok((
            out,
            PackageSummary {
                trial_id,
                subject: subject.map(str::to_string),
                files: file_count,
                images: image_count,
                read_versions,
                signatures: signature_count,
                audit_records,
                manifest_sha256,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_safe() {
        for (s, want) in [
            ("101-001", "101-001"),
            ("1.2.840.1", "1.2.840.1"),
            ("../x", ".._x"),
            ("a/b c", "a_b_c"),
            ("..", "_"),
            ("", "_"),
        ] {
            assert_eq!(segment(s), want, "{s}");
        }
    }
}
