//! De-identification at the site: choosing the subject and visit of an instance, the engine's
//! context, the encrypted mapping file, and instances held for assignment.

use std::collections::BTreeMap;
use std::sync::Mutex;

use corelab_app::gateway::GatewayConfig;
use corelab_dicom::deid::{DeidContext, MatchKeys, OriginalUid, UidMapper, deidentify_bytes, read_match_keys};
use corelab_domain::charter::SubjectIdPattern;
use corelab_domain::deid_profile::DateHandling;
use serde::{Deserialize, Serialize};

use super::spool::{LocalKey, Spool, SpoolError};

/// Everything the site needs to de-identify, from central's gateway settings.
pub struct SiteProfile {
    pub config: GatewayConfig,
    pub pattern: SubjectIdPattern,
    key: Vec<u8>,
    mapper: UidMapper,
}

impl SiteProfile {
    pub fn new(config: GatewayConfig) -> Result<SiteProfile, String> {
        let pattern = SubjectIdPattern::parse(&config.subject_id_pattern)
            .map_err(|e| format!("central sent a subject ID pattern corelab cannot read: {e}"))?;
        let key = hex::decode(&config.site_key).map_err(|_| "central sent a site key that is not hex".to_string())?;
        if key.len() < 16 {
            return Err("central sent a site key that is too short".into());
        }
        let mapper = UidMapper::new(&key);
        Ok(SiteProfile { config, pattern, key, mapper })
    }

    pub fn visit_label(&self, visit: &str) -> Option<&str> {
        self.config.visits.iter().find(|v| v.id == visit).map(|v| v.label.as_str())
    }

    pub fn subject_ok(&self, subject: &str) -> bool {
        self.pattern.matches(&self.config.site_id, subject)
    }

    /// The engine's context for one subject and visit: the trial's profile, the site's key.
    pub fn context(&self, subject: &str, visit: &str) -> DeidContext {
        let profile = self.config.deidentification.clone();
        let date_shift_days = match profile.dates {
            DateHandling::Shift => corelab_dicom::deid::keyed_date_shift(&self.key, subject, profile.max_shift_days),
            DateHandling::Keep | DateHandling::Remove => None,
        };
        DeidContext {
            trial_secret: self.key.clone(),
            sponsor_name: self.config.sponsor.clone(),
            protocol_id: self.config.protocol_id.clone(),
            protocol_name: Some(self.config.protocol_name.clone()),
            site_id: self.config.site_id.clone(),
            site_name: Some(self.config.site_name.clone()),
            subject_id: subject.to_string(),
            time_point_id: Some(visit.to_string()),
            time_point_description: self.visit_label(visit).map(str::to_string),
            date_shift_days,
            profile,
        }
    }

    /// The de-identified SOP Instance UID (what names the spool file).
    pub fn new_uid(&self, uid: &OriginalUid) -> String {
        if self.config.deidentification.retain_uids || uid.is_standard() {
            uid.as_str().to_string()
        } else {
            self.mapper.map(uid).as_str().to_string()
        }
    }

    /// De-identifies `original` for `subject` and `visit`; returns the de-identified UID and bytes.
    pub fn deidentify(
        &self,
        original: &[u8],
        keys: &MatchKeys,
        subject: &str,
        visit: &str,
    ) -> Result<(String, Vec<u8>), String> {
        let sop = keys.sop_instance_uid.as_ref().ok_or("the instance has no SOP Instance UID")?;
        let uid = self.new_uid(sop);
        if !uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') || uid.is_empty() || uid.len() > 64 {
            return Err("the instance's SOP Instance UID is not a valid UID".into());
        }
        let (bytes, _report) = deidentify_bytes(original, &self.context(subject, visit)).map_err(|e| e.to_string())?;
        Ok((uid, bytes))
    }

    /// Subject and visit of an instance: the Clinical Trial attributes when they name a subject
    /// of this site and a charter visit, else the site's mapping; `Err` says what is missing.
    pub fn assign(&self, keys: &MatchKeys, mapping: &Mapping) -> Result<(String, String), String> {
        let ct_subject = keys.clinical_trial_subject_id.as_deref().map(str::trim).filter(|s| self.subject_ok(s));
        let mapped_subject = keys.patient_id.as_deref().map(str::trim).and_then(|p| mapping.patients.get(p));
        let subject = ct_subject.map(str::to_string).or_else(|| mapped_subject.cloned());
        let ct_visit = keys
            .clinical_trial_time_point_id
            .as_deref()
            .map(str::trim)
            .filter(|v| self.config.visits.iter().any(|x| x.id == *v));
        let mapped_visit = keys.study_instance_uid.as_ref().and_then(|s| mapping.studies.get(s.as_str()));
        let visit = ct_visit.map(str::to_string).or_else(|| mapped_visit.cloned());
        match (subject, visit) {
            (Some(s), Some(v)) => Ok((s, v)),
            (None, Some(_)) => {
                Err("no subject: no Clinical Trial Subject ID of this site and no mapping for the Patient ID".into())
            }
            (Some(_), None) => {
                Err("no visit: no Clinical Trial Time Point ID of the charter and no visit for the study".into())
            }
            (None, None) => Err("no subject and no visit".into()),
        }
    }
}

/// The site's mapping, kept only at the site and sealed with `local.key`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Mapping {
    /// Patient ID (as the PACS sends it) -> subject ID.
    pub patients: BTreeMap<String, String>,
    /// Study Instance UID (original) -> visit ID.
    pub studies: BTreeMap<String, String>,
}

impl Mapping {
    pub fn load(spool: &Spool, key: &LocalKey) -> Result<Mapping, SpoolError> {
        match std::fs::read(spool.dir.join("mapping.enc")) {
            Ok(sealed) => {
                let plain = key.open(&sealed)?;
                serde_json::from_slice(&plain).map_err(|_| SpoolError::Sealed("mapping.enc is not a mapping".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Mapping::default()),
            Err(e) => Err(SpoolError::Io { what: "cannot read mapping.enc".into(), source: e }),
        }
    }

    pub fn save(&self, spool: &Spool, key: &LocalKey) -> Result<(), SpoolError> {
        let plain = serde_json::to_vec(self).unwrap_or_default();
        spool.durable_write(&spool.dir.clone(), "mapping.enc", &key.seal(&plain)?).map(|_| ())
    }
}

/// One instance held for assignment (read from its sealed file; PHI, shown only on the local page).
#[derive(Debug, Clone)]
pub struct Held {
    pub file: std::path::PathBuf,
    pub patient_id: String,
    pub patient_name: String,
    pub study_uid: String,
    pub study_date: String,
    pub modality: String,
    pub reason: String,
}

/// Why a received instance was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The instance itself is the problem (unreadable, no UIDs): the sender should not retry.
    #[error("{0}")]
    Refused(String),
    /// The gateway could not keep it (disk, key): the sender may retry later.
    #[error("{0}")]
    Internal(String),
}

/// What happened to one received instance.
#[derive(Debug)]
pub enum Received {
    Queued { uid: String },
    Held,
}

/// The site pipeline shared by the SCP, the status page and `corelab upload`.
pub struct Pipeline {
    pub spool: Spool,
    pub profile: SiteProfile,
    key: LocalKey,
    pub mapping: Mutex<Mapping>,
    /// Serialises re-processing of held instances.
    pub held_lock: Mutex<()>,
}

impl Pipeline {
    pub fn new(spool: Spool, profile: SiteProfile) -> Result<Pipeline, SpoolError> {
        let key = spool.local_key()?;
        let mapping = Mapping::load(&spool, &key)?;
        Ok(Pipeline { spool, profile, key, mapping: Mutex::new(mapping), held_lock: Mutex::new(()) })
    }

    /// Takes one received instance: de-identified into the queue, or sealed into `held/`.
    /// Returns only once it is durable. `Err` is a refusal reason without values.
    pub fn receive(&self, original: &[u8]) -> Result<Received, ReceiveError> {
        let internal = |e: SpoolError| ReceiveError::Internal(e.to_string());
        let keys = read_match_keys(original)
            .map_err(|e| ReceiveError::Refused(format!("not a DICOM instance corelab can read: {e}")))?;
        let assignment = {
            let m = self.mapping.lock().map_err(|_| ReceiveError::Internal("mapping lock poisoned".into()))?;
            self.profile.assign(&keys, &m)
        };
        match assignment {
            Ok((subject, visit)) => {
                let (uid, bytes) =
                    self.profile.deidentify(original, &keys, &subject, &visit).map_err(ReceiveError::Refused)?;
                self.spool.enqueue(&uid, &bytes).map_err(internal)?;
                Ok(Received::Queued { uid })
            }
            Err(_) => {
                // Checked first: a file the engine cannot read is refused, not held.
                self.profile.deidentify(original, &keys, "HOLD", "HOLD").map_err(ReceiveError::Refused)?;
                let sealed = self.key.seal(original).map_err(internal)?;
                self.spool
                    .durable_write(&self.spool.held_dir(), &format!("{}.held", uuid::Uuid::new_v4().simple()), &sealed)
                    .map_err(internal)?;
                Ok(Received::Held)
            }
        }
    }

    /// The held instances, decrypted for the local page.
    pub fn held(&self) -> Vec<Held> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.spool.held_dir()) else { return out };
        let mapping = self.mapping.lock().map(|m| m.clone()).unwrap_or_default();
        for e in rd.flatten() {
            let file = e.path();
            if file.extension().is_none_or(|x| x != "held") {
                continue;
            }
            let Ok(sealed) = std::fs::read(&file) else { continue };
            let Ok(plain) = self.key.open(&sealed) else { continue };
            let Ok(keys) = read_match_keys(plain.as_slice()) else { continue };
            let reason = self.profile.assign(&keys, &mapping).err().unwrap_or_default();
            out.push(Held {
                file,
                patient_id: keys.patient_id.clone().unwrap_or_default(),
                patient_name: keys.patient_name.clone().unwrap_or_default(),
                study_uid: keys.study_instance_uid.as_ref().map(|u| u.as_str().to_string()).unwrap_or_default(),
                study_date: keys.study_date.clone().unwrap_or_default(),
                modality: keys.modality.clone().unwrap_or_default(),
                reason,
            });
        }
        out.sort_by(|a, b| (&a.patient_id, &a.study_uid).cmp(&(&b.patient_id, &b.study_uid)));
        out
    }

    /// Site staff assign a held study: the mapping learns Patient ID -> subject and study ->
    /// visit, and every held instance that is now assignable goes to the queue.
    pub fn assign(&self, patient_id: &str, study_uid: &str, subject: &str, visit: &str) -> Result<usize, String> {
        if !self.profile.subject_ok(subject) {
            return Err(format!(
                "subject ID {subject:?} does not follow the trial's pattern {} for site {}",
                self.profile.config.subject_id_pattern, self.profile.config.site_id
            ));
        }
        if self.profile.visit_label(visit).is_none() {
            return Err(format!("{visit:?} is not a visit of the trial"));
        }
        {
            let mut m = self.mapping.lock().map_err(|_| "internal error: mapping lock".to_string())?;
            m.patients.insert(patient_id.to_string(), subject.to_string());
            m.studies.insert(study_uid.to_string(), visit.to_string());
            m.save(&self.spool, &self.key).map_err(|e| e.to_string())?;
        }
        self.release_held()
    }

    /// Queues every held instance the mapping now assigns; returns how many.
    pub fn release_held(&self) -> Result<usize, String> {
        let _guard = self.held_lock.lock().map_err(|_| "internal error: held lock".to_string())?;
        let mapping = self.mapping.lock().map(|m| m.clone()).unwrap_or_default();
        let mut released = 0;
        let Ok(rd) = std::fs::read_dir(self.spool.held_dir()) else { return Ok(0) };
        for e in rd.flatten() {
            let file = e.path();
            if file.extension().is_none_or(|x| x != "held") {
                continue;
            }
            let Ok(sealed) = std::fs::read(&file) else { continue };
            let plain = self.key.open(&sealed).map_err(|e| e.to_string())?;
            let Ok(keys) = read_match_keys(plain.as_slice()) else { continue };
            if let Ok((subject, visit)) = self.profile.assign(&keys, &mapping) {
                let (uid, bytes) = self.profile.deidentify(&plain, &keys, &subject, &visit)?;
                self.spool.enqueue(&uid, &bytes).map_err(|e| e.to_string())?;
                // Queued durably first; a crash here leaves the held copy, released again later.
                std::fs::remove_file(&file).map_err(|e| format!("cannot remove a released instance: {e}"))?;
                released += 1;
            }
        }
        super::spool::sync_dir(&self.spool.held_dir()).map_err(|e| e.to_string())?;
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use corelab_app::gateway::GatewayVisit;

    use super::*;

    fn profile() -> SiteProfile {
        SiteProfile::new(GatewayConfig {
            trial_id: uuid::Uuid::nil(),
            charter_version: 1,
            sponsor: "Acme".into(),
            protocol_id: "ACME-1".into(),
            protocol_name: "Acme one".into(),
            site_id: "101".into(),
            site_name: "Site 101".into(),
            site_status: "qualified".into(),
            site_ae_titles: vec!["S101_CT".into()],
            subject_id_pattern: "{site}-{nnn}".into(),
            visits: vec![
                GatewayVisit { id: "BL".into(), label: "Baseline".into(), day: 0 },
                GatewayVisit { id: "W8".into(), label: "Week 8".into(), day: 56 },
            ],
            deidentification: Default::default(),
            site_key: hex::encode([9u8; 32]),
        })
        .unwrap()
    }

    fn keys(patient: &str, ct_subject: Option<&str>, tp: Option<&str>) -> MatchKeys {
        MatchKeys {
            patient_id: Some(patient.into()),
            clinical_trial_subject_id: ct_subject.map(String::from),
            clinical_trial_time_point_id: tp.map(String::from),
            study_instance_uid: Some(OriginalUid::new("1.2.3.4")),
            ..Default::default()
        }
    }

    #[test]
    fn clinical_trial_attributes_first_then_the_mapping_else_held() {
        let p = profile();
        let mut m = Mapping::default();
        // The scanner set both: used as they are.
        assert_eq!(p.assign(&keys("MRN1", Some("101-004"), Some("W8")), &m), Ok(("101-004".into(), "W8".into())));
        // Another site's subject or an unknown visit is not taken from the attributes.
        assert!(p.assign(&keys("MRN1", Some("102-004"), Some("W8")), &m).unwrap_err().starts_with("no subject"));
        assert!(p.assign(&keys("MRN1", Some("101-004"), Some("W9")), &m).unwrap_err().starts_with("no visit"));
        // The site's mapping fills in what the attributes do not say.
        m.patients.insert("MRN1".into(), "101-007".into());
        m.studies.insert("1.2.3.4".into(), "BL".into());
        assert_eq!(p.assign(&keys("MRN1", None, None), &m), Ok(("101-007".into(), "BL".into())));
        assert_eq!(p.assign(&keys("MRN1", Some("101-004"), None), &m), Ok(("101-004".into(), "BL".into())));
        assert!(p.assign(&keys("MRN2", None, None), &Mapping::default()).is_err());
    }

    #[test]
    fn the_context_carries_the_site_key_and_a_stable_nonzero_shift_per_subject() {
        let mut p = profile();
        p.config.deidentification.dates = DateHandling::Shift;
        p.config.deidentification.max_shift_days = 30;
        let a = p.context("101-004", "BL");
        assert_eq!(a.trial_secret, vec![9u8; 32]);
        assert_eq!(a.time_point_description.as_deref(), Some("Baseline"));
        let s = a.date_shift_days.unwrap();
        assert!(s != 0 && (-30..=30).contains(&s));
        assert_eq!(p.context("101-004", "W8").date_shift_days, Some(s));
    }
}
