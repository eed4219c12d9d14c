//! What the caller hands to the engine for one instance.

use corelab_domain::deid_profile::{DateHandling, DeidProfile};

use super::DeidError;

/// Trial, site and subject values and the profile for de-identifying one instance.
///
/// `trial_secret` keys the UID remapping: keep it in the trial's secret store; the same secret must be
/// used for every instance of the trial so references stay consistent.
#[derive(Clone)]
pub struct DeidContext {
    pub trial_secret: Vec<u8>,
    pub sponsor_name: String,
    pub protocol_id: String,
    pub protocol_name: Option<String>,
    pub site_id: String,
    /// Written to Clinical Trial Site Name (0012,0031) only when the profile retains institution
    /// identity: a site name usually names the hospital.
    pub site_name: Option<String>,
    /// The pseudonym: Patient ID, Patient's Name and Clinical Trial Subject ID all become this.
    pub subject_id: String,
    pub time_point_id: Option<String>,
    pub time_point_description: Option<String>,
    /// Per-subject offset in days; required when the profile shifts dates.
    pub date_shift_days: Option<i32>,
    pub profile: DeidProfile,
}

impl std::fmt::Debug for DeidContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeidContext")
            .field("trial_secret", &"<redacted>")
            .field("sponsor_name", &self.sponsor_name)
            .field("protocol_id", &self.protocol_id)
            .field("protocol_name", &self.protocol_name)
            .field("site_id", &self.site_id)
            .field("site_name", &self.site_name)
            .field("subject_id", &self.subject_id)
            .field("time_point_id", &self.time_point_id)
            .field("time_point_description", &self.time_point_description)
            .field("date_shift_days", &self.date_shift_days.map(|_| "<redacted>"))
            .field("profile", &self.profile)
            .finish()
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), DeidError> {
    if value.len() > max {
        return Err(DeidError::Context(format!("{field} is longer than {max} characters")));
    }
    if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') || value.contains('\\') {
        return Err(DeidError::Context(format!(
            "{field} must be printable ASCII without backslash (it is written into DICOM text attributes)"
        )));
    }
    Ok(())
}

impl DeidContext {
    /// Checks the context before any data is touched.
    pub fn validate(&self) -> Result<(), DeidError> {
        if self.trial_secret.len() < 16 {
            return Err(DeidError::Context("trial secret must be at least 16 bytes".into()));
        }
        for (name, v) in [
            ("sponsor name", &self.sponsor_name),
            ("protocol id", &self.protocol_id),
            ("site id", &self.site_id),
            ("subject id", &self.subject_id),
        ] {
            if v.trim().is_empty() {
                return Err(DeidError::Context(format!("{name} is empty")));
            }
            check_text(name, v, 64)?;
        }
        for (name, v) in [
            ("protocol name", &self.protocol_name),
            ("site name", &self.site_name),
            ("time point id", &self.time_point_id),
        ] {
            if let Some(v) = v {
                check_text(name, v, 64)?;
            }
        }
        if let Some(v) = &self.time_point_description {
            check_text("time point description", v, 1024)?;
        }
        match (self.profile.dates, self.date_shift_days) {
            (DateHandling::Shift, None) => {
                return Err(DeidError::Context("the profile shifts dates but no date shift was given".into()));
            }
            (DateHandling::Shift, Some(0)) => {
                return Err(DeidError::Context("a date shift of 0 days would keep the real dates".into()));
            }
            (DateHandling::Shift, Some(d))
                if self.profile.max_shift_days > 0 && d.unsigned_abs() > self.profile.max_shift_days =>
            {
                return Err(DeidError::Context("the date shift is larger than the profile's max_shift_days".into()));
            }
            _ => {}
        }
        Ok(())
    }
}
