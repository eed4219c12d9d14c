//! Matching an incoming instance to its subject and visit, from what the site sent (read before
//! de-identification), and choosing the de-identification context accordingly.

use chrono::NaiveDate;
use corelab_dicom::deid::{DeidContext, MatchKeys};
use corelab_domain::charter::Date;
use corelab_domain::deid_profile::DateHandling;
use corelab_store::trials::SubjectRow;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{IngestError, IngestSetup, IngestTarget};
use crate::App;

/// Where the instance goes.
#[derive(Debug, Clone)]
pub enum Placement {
    /// An enrolled subject's visit.
    Visit {
        subject: Box<SubjectRow>,
        visit_id: String,
        anchor_day: Option<i64>,
        /// Where the instance waits instead if the index writer must hold it back.
        if_held: Box<Held>,
    },
    /// The inbox, for a coordinator to assign.
    Inbox {
        reason: String,
        /// Keyed hash of the original Patient ID, to group one patient's items.
        patient_key: String,
        claimed_subject: Option<String>,
        claimed_visit: Option<String>,
        /// The date shift applied under the provisional pseudonym (re-shifted on assignment).
        provisional_shift: i32,
        study_date_hint: Option<NaiveDate>,
    },
}

/// The inbox item an instance matched to a visit becomes when the index writer holds it back: the
/// visit was locked, or the subject's record changed, after it was matched. The writer reads both
/// inside the transaction that files the instance, so nothing that happened while the instance was
/// on its way is missed. By then the instance is de-identified under the subject's own pseudonym
/// and date shift: these stand in for the provisional ones.
#[derive(Debug, Clone)]
pub struct Held {
    pub patient_key: String,
    /// The date shift the instance carries (the subject's), undone when the item is assigned.
    pub provisional_shift: i32,
    pub study_date_hint: Option<NaiveDate>,
}

/// The study date an inbox item may show: shifted as its pixels' header is, never a real date
/// unless the charter keeps real dates.
fn date_hint(dates: DateHandling, study_date: Option<NaiveDate>, shift: i32) -> Option<NaiveDate> {
    match dates {
        DateHandling::Shift => study_date.map(|d| d + chrono::Duration::days(i64::from(shift))),
        DateHandling::Keep => study_date,
        DateHandling::Remove => None,
    }
}

#[derive(Debug, Clone)]
pub struct IngestPlan {
    pub placement: Placement,
    pub ctx: DeidContext,
    pub charter_version: i64,
}

/// A keyed hash: the same input gives the same output only for holders of the trial's secret.
pub(crate) fn keyed_hex(secret: &[u8], label: &str, value: &str) -> String {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(label.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A non-zero shift in [-max, max] derived from a key, for provisional pseudonyms.
pub(crate) fn derived_shift(key_hex: &str, max: u32) -> i32 {
    let max = i64::from(max.clamp(1, 3650));
    let n = u64::from_str_radix(key_hex.get(..12).unwrap_or("1"), 16).unwrap_or(1) as i64;
    let span = 2 * max;
    let v = n % span - max;
    let v = if v >= 0 { v + 1 } else { v };
    i32::try_from(v).unwrap_or(1)
}

/// Whether a subject's record still matches instances as it did: the index writer holds back an
/// instance matched under a record that changed since (moved, withdrawn, re-anchored, renamed).
pub(crate) fn matches_alike(then: &SubjectRow, now: &SubjectRow) -> bool {
    (&then.trial_id, &then.site_id, &then.subject_id, then.anchor_date, &then.status)
        == (&now.trial_id, &now.site_id, &now.subject_id, now.anchor_date, &now.status)
        && (then.withdrawn_on, then.date_shift_days) == (now.withdrawn_on, now.date_shift_days)
}

/// Groups one patient's inbox items without naming the patient.
fn patient_key(setup: &IngestSetup, keys: &MatchKeys) -> String {
    keyed_hex(&setup.trial.deid_secret, "patient", keys.patient_id.as_deref().unwrap_or(""))
}

fn parse_da(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim().get(..8)?, "%Y%m%d").ok()
}

fn to_domain(d: NaiveDate) -> Option<Date> {
    Date::parse_iso(&d.format("%Y-%m-%d").to_string())
}

impl App {
    pub(crate) async fn plan_instance(
        &self,
        target: &IngestTarget,
        setup: &IngestSetup,
        keys: &MatchKeys,
    ) -> Result<IngestPlan, IngestError> {
        let charter = &setup.charter;
        let profile = charter.deidentification.clone();
        let base_ctx = |subject_id: String, shift: Option<i32>, tp: Option<(String, String)>| DeidContext {
            trial_secret: setup.trial.deid_secret.clone(),
            sponsor_name: charter.trial.sponsor.clone(),
            protocol_id: charter.trial.protocol_id.clone(),
            protocol_name: Some(charter.trial.protocol_name.clone()),
            site_id: target.site_id.clone(),
            site_name: charter.site(&target.site_id).map(|s| s.name.clone()),
            subject_id,
            time_point_id: tp.as_ref().map(|t| t.0.clone()),
            time_point_description: tp.map(|t| t.1),
            date_shift_days: shift,
            profile: profile.clone(),
        };
        let study_date = keys.study_date.as_deref().and_then(parse_da);
        let claimed: Vec<String> = [keys.clinical_trial_subject_id.clone(), keys.patient_id.clone()]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();

        // Subject: an enrolled subject ID in the Clinical Trial Subject ID or the Patient ID, the
        // first one enrolled deciding.
        let enrolled = match setup.enrolled(&claimed) {
            Some(rows) => rows,
            None => {
                let rows = self.db().enrolled_subjects(target.trial_id, &claimed).await?;
                setup.remember_enrolled(&claimed, &rows);
                rows
            }
        };
        let mut subject = None;
        let mut reason = None;
        for c in &claimed {
            if let Some(s) = enrolled.iter().find(|s| s.subject_id == *c).cloned() {
                if s.site_id != target.site_id {
                    reason =
                        Some(format!("subject {c} is enrolled at another site than the sender's ({})", target.site_id));
                } else if s.status == "withdrawn" && study_date.zip(s.withdrawn_on).is_some_and(|(d, w)| d > w) {
                    reason = Some(format!("subject {c} was withdrawn before this study's date"));
                } else {
                    subject = Some(s);
                    reason = None;
                }
                break;
            }
        }
        let subject = match subject {
            Some(s) => s,
            None => {
                let reason = reason.unwrap_or_else(|| {
                    if claimed.is_empty() {
                        "no Patient ID or Clinical Trial Subject ID to match an enrolled subject".to_string()
                    } else {
                        "the Patient ID / Clinical Trial Subject ID matches no enrolled subject of this site"
                            .to_string()
                    }
                });
                return Ok(self.inbox_plan(setup, keys, study_date, reason, &base_ctx));
            }
        };

        // Visit: the Clinical Trial Time Point ID when it names a charter visit, else the study
        // date inside exactly one visit window of this subject's calendar.
        let anchor = subject.anchor_date;
        // A site gateway shifted the dates by its own per-subject shift (derived from the site's
        // gateway key, which central can derive too); undo it for matching and day counts.
        let study_date = match (setup.from_gateway, profile.dates) {
            (true, DateHandling::Shift) => {
                let key = crate::gateway::site_key(&setup.trial.deid_secret, &target.site_id);
                let g = corelab_dicom::deid::keyed_date_shift(&key, &subject.subject_id, profile.max_shift_days);
                study_date.map(|d| d - chrono::Duration::days(i64::from(g.unwrap_or(0))))
            }
            _ => study_date,
        };
        let calendar = to_domain(anchor).map(|a| setup.calendar(a));
        let anchor_day = study_date.map(|d| (d - anchor).num_days());
        let by_tp = keys
            .clinical_trial_time_point_id
            .as_deref()
            .map(str::trim)
            .and_then(|tp| calendar.as_ref()?.visit(tp).map(|v| (v.visit_id.clone(), v.label.clone())));
        let visit = match by_tp {
            Some(v) => Ok(v),
            None => match (study_date.and_then(to_domain), &calendar) {
                (Some(d), Some(cal)) => {
                    let hits = cal.visits_containing(d);
                    match hits.as_slice() {
                        [one] => Ok((one.visit_id.clone(), one.label.clone())),
                        [] => Err(format!(
                            "the study date is outside every visit window of subject {}",
                            subject.subject_id
                        )),
                        many => Err(format!(
                            "the study date falls in {} overlapping visit windows of subject {}; set the time point",
                            many.len(),
                            subject.subject_id
                        )),
                    }
                }
                _ => Err("no study date and no Clinical Trial Time Point ID to match a visit".to_string()),
            },
        };
        let shift = (profile.dates == DateHandling::Shift).then(|| i32::try_from(subject.date_shift_days).unwrap_or(1));
        match visit {
            Ok((visit_id, label)) => {
                let if_held = Box::new(Held {
                    patient_key: patient_key(setup, keys),
                    provisional_shift: shift.unwrap_or(0),
                    study_date_hint: date_hint(profile.dates, study_date, shift.unwrap_or(0)),
                });
                Ok(IngestPlan {
                    ctx: base_ctx(subject.subject_id.clone(), shift, Some((visit_id.clone(), label))),
                    placement: Placement::Visit { subject: Box::new(subject), visit_id, anchor_day, if_held },
                    charter_version: setup.charter_version,
                })
            }
            Err(reason) => {
                let mut plan = self.inbox_plan(setup, keys, study_date, reason, &base_ctx);
                if let Placement::Inbox { claimed_subject, .. } = &mut plan.placement {
                    *claimed_subject = Some(subject.subject_id.clone());
                }
                Ok(plan)
            }
        }
    }

    fn inbox_plan(
        &self,
        setup: &IngestSetup,
        keys: &MatchKeys,
        study_date: Option<NaiveDate>,
        reason: String,
        base_ctx: &dyn Fn(String, Option<i32>, Option<(String, String)>) -> DeidContext,
    ) -> IngestPlan {
        let profile = &setup.charter.deidentification;
        let patient_key = patient_key(setup, keys);
        let shift = derived_shift(&patient_key, profile.max_shift_days);
        let provisional = format!("UNASSIGNED-{}", &patient_key[..10.min(patient_key.len())]);
        let claimed_visit = keys.clinical_trial_time_point_id.clone();
        IngestPlan {
            ctx: base_ctx(provisional, (profile.dates == DateHandling::Shift).then_some(shift), None),
            placement: Placement::Inbox {
                reason,
                patient_key,
                claimed_subject: None,
                claimed_visit,
                provisional_shift: if profile.dates == DateHandling::Shift { shift } else { 0 },
                study_date_hint: date_hint(profile.dates, study_date, shift),
            },
            charter_version: setup.charter_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_shifts_are_nonzero_and_bounded() {
        for i in 0..2000 {
            let k = keyed_hex(b"secret", "patient", &i.to_string());
            let s = derived_shift(&k, 30);
            assert!(s != 0 && (-30..=30).contains(&s), "{s}");
        }
        assert_eq!(
            derived_shift(&keyed_hex(b"k", "patient", "P1"), 365),
            derived_shift(&keyed_hex(b"k", "patient", "P1"), 365)
        );
        assert_ne!(keyed_hex(b"k1", "patient", "P1"), keyed_hex(b"k2", "patient", "P1"));
    }
}
