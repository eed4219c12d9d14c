//! What ingest needs to match an instance to trial, site, subject and visit, read before
//! de-identification. These values are PHI: the type's Debug redacts them.

use std::io::Read;

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use super::DeidError;
use super::uid::OriginalUid;

/// Matching keys of one instance (PHI: never log; Debug shows only which keys are present).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MatchKeys {
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub clinical_trial_subject_id: Option<String>,
    pub clinical_trial_site_id: Option<String>,
    pub clinical_trial_protocol_id: Option<String>,
    pub clinical_trial_time_point_id: Option<String>,
    /// Study Date as written (YYYYMMDD).
    pub study_date: Option<String>,
    pub modality: Option<String>,
    pub study_instance_uid: Option<OriginalUid>,
    pub series_instance_uid: Option<OriginalUid>,
    pub sop_instance_uid: Option<OriginalUid>,
    pub sop_class_uid: Option<String>,
}

impl std::fmt::Debug for MatchKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = |o: bool| if o { "<redacted>" } else { "<absent>" };
        f.debug_struct("MatchKeys")
            .field("patient_id", &p(self.patient_id.is_some()))
            .field("patient_name", &p(self.patient_name.is_some()))
            .field("clinical_trial_subject_id", &p(self.clinical_trial_subject_id.is_some()))
            .field("clinical_trial_site_id", &p(self.clinical_trial_site_id.is_some()))
            .field("clinical_trial_protocol_id", &p(self.clinical_trial_protocol_id.is_some()))
            .field("clinical_trial_time_point_id", &p(self.clinical_trial_time_point_id.is_some()))
            .field("study_date", &p(self.study_date.is_some()))
            .field("modality", &self.modality)
            .field("study_instance_uid", &p(self.study_instance_uid.is_some()))
            .field("series_instance_uid", &p(self.series_instance_uid.is_some()))
            .field("sop_instance_uid", &p(self.sop_instance_uid.is_some()))
            .field("sop_class_uid", &self.sop_class_uid)
            .finish()
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.value().to_str().ok()?;
    let v = v.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!v.is_empty()).then(|| v.to_string())
}

/// Matching keys of an in-memory (not yet de-identified) data set.
pub fn match_keys_of(obj: &InMemDicomObject) -> MatchKeys {
    let uid = |t| text(obj, t).map(|s| OriginalUid::new(&s));
    MatchKeys {
        patient_id: text(obj, Tag(0x0010, 0x0020)),
        patient_name: text(obj, Tag(0x0010, 0x0010)),
        clinical_trial_subject_id: text(obj, Tag(0x0012, 0x0040)),
        clinical_trial_site_id: text(obj, Tag(0x0012, 0x0030)),
        clinical_trial_protocol_id: text(obj, Tag(0x0012, 0x0020)),
        clinical_trial_time_point_id: text(obj, Tag(0x0012, 0x0050)),
        study_date: text(obj, Tag(0x0008, 0x0020)),
        modality: text(obj, Tag(0x0008, 0x0060)),
        study_instance_uid: uid(Tag(0x0020, 0x000D)),
        series_instance_uid: uid(Tag(0x0020, 0x000E)),
        sop_instance_uid: uid(Tag(0x0008, 0x0018)),
        sop_class_uid: text(obj, Tag(0x0008, 0x0016)),
    }
}

/// Reads only the header of a Part 10 stream (stops at Pixel Data) and returns its matching keys.
pub fn read_match_keys<R: Read>(input: R) -> Result<MatchKeys, DeidError> {
    let header = super::stream::read_header_object(input)?;
    Ok(match_keys_of(&header))
}
