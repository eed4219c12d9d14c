//! The header facts QC works on: plain data, units in the names, no DICOM types.
//!
//! `corelab-dicom::facts` fills these from a de-identified dicom-rs object; the caller adds what the
//! stored headers cannot tell (the real acquisition date, the pixel decode outcome, the
//! de-identification report's burned-in flags). Every field may be missing: QC turns a missing fact
//! it needs into a finding, never into an error.

use serde::{Deserialize, Serialize};

use crate::charter::Date;

/// Facts of one stored (de-identified) instance.
///
/// Text values are trimmed; code strings (modality, body part, image type, MR codes) upper case.
/// A text value the de-identification replaced by its dummy, or emptied, reads as it is stored:
/// `Some("")` means "the attribute is present but empty", `None` "the attribute is absent".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceFacts {
    /// SOP Instance UID (0008,0018), as stored (remapped by de-identification).
    pub sop_instance_uid: String,
    /// Series Instance UID (0020,000E), as stored.
    pub series_instance_uid: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: Option<String>,
    /// Instance Number (0020,0013): how a site names an image ("image 12").
    pub instance_number: Option<i64>,
    /// Series Number (0020,0011): how a site names a series ("series 3").
    pub series_number: Option<i64>,

    /// Modality (0008,0060).
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015).
    pub body_part_examined: Option<String>,
    /// Series Description (0008,103E). The Basic Profile removes it; Clean Descriptors keeps values
    /// matching the charter's `descriptor_allow_list`.
    pub series_description: Option<String>,
    /// Protocol Name (0018,1030); removed or kept as Series Description is.
    pub protocol_name: Option<String>,
    /// Clinical Trial Series ID (0012,0071): when present and equal to a charter series ID, it
    /// identifies the series without looking at descriptors.
    pub clinical_trial_series_id: Option<String>,
    /// Clinical Trial Series Description (0012,0072).
    pub clinical_trial_series_description: Option<String>,
    /// Image Type (0008,0008) values, e.g. ["ORIGINAL", "PRIMARY", "AXIAL"].
    pub image_type: Vec<String>,

    /// Manufacturer (0008,0070).
    pub manufacturer: Option<String>,
    /// Manufacturer's Model Name (0008,1090).
    pub manufacturer_model_name: Option<String>,
    /// Station Name (0008,1010): removed unless the charter retains device identity.
    pub station_name: Option<String>,
    /// Device Serial Number (0018,1000): removed unless the charter retains device identity.
    pub device_serial_number: Option<String>,

    /// Slice Thickness (0018,0050).
    pub slice_thickness_mm: Option<f64>,
    /// Spacing Between Slices (0018,0088), centre to centre.
    pub spacing_between_slices_mm: Option<f64>,
    /// Pixel Spacing (0028,0030).
    pub pixel_spacing_mm: Option<PixelSpacing>,
    /// Rows (0028,0010).
    pub rows: Option<u32>,
    /// Columns (0028,0011).
    pub columns: Option<u32>,
    /// Image Position (Patient) (0020,0032): centre of the first transmitted pixel.
    pub image_position_patient_mm: Option<[f64; 3]>,
    /// Image Orientation (Patient) (0020,0037): row then column direction cosines.
    pub image_orientation_patient: Option<[f64; 6]>,
    /// Number of Frames (0028,0008); None for single-frame objects.
    pub number_of_frames: Option<u32>,

    /// KVP (0018,0060), kilovolts.
    pub kvp: Option<f64>,

    /// Contrast/Bolus Agent (0018,0010). The Basic Profile empties it (`Some("")`); a caller that
    /// captured the original before de-identification may put the original here.
    pub contrast_agent: Option<String>,
    /// Whether the original header, before de-identification, named a contrast agent: Some(true)
    /// it named one, Some(false) it had none or said none, None not captured or empty. Lets QC
    /// know about contrast when the stored agent was emptied, without storing the (free-text)
    /// agent itself.
    pub original_contrast_agent_recorded: Option<bool>,
    /// Contrast/Bolus Route (0018,1040), e.g. "IV", "ORAL"; kept by de-identification.
    pub contrast_route: Option<String>,
    /// Contrast/Bolus Volume (0018,1041), millilitres.
    pub contrast_volume_ml: Option<f64>,
    /// Contrast/Bolus Ingredient (0018,1048), e.g. "IODINE", "GADOLINIUM".
    pub contrast_ingredient: Option<String>,
    /// Contrast/Bolus Start Time (0018,1042), seconds after midnight. Kept only when the charter
    /// keeps or shifts dates (times of day are not shifted).
    pub contrast_start_time_s: Option<f64>,
    /// Acquisition Time (0008,0032), seconds after midnight; kept as the start time is.
    pub acquisition_time_s: Option<f64>,

    /// Magnetic Field Strength (0018,0087) as recorded (tesla; some old scanners write gauss).
    pub magnetic_field_strength_t: Option<f64>,
    /// Scanning Sequence (0018,0020): SE, IR, GR, EP, RM.
    pub scanning_sequence: Vec<String>,
    /// Sequence Variant (0018,0021): SK, MTC, SS, TRSS, SP, MP, OSP, NONE.
    pub sequence_variant: Vec<String>,
    /// Scan Options (0018,0022).
    pub scan_options: Vec<String>,
    /// MR Acquisition Type (0018,0023): 2D or 3D.
    pub mr_acquisition_type: Option<String>,
    /// Sequence Name (0018,0024).
    pub sequence_name: Option<String>,
    /// Echo Time (0018,0081).
    pub echo_time_ms: Option<f64>,
    /// Repetition Time (0018,0080).
    pub repetition_time_ms: Option<f64>,
    /// Inversion Time (0018,0082).
    pub inversion_time_ms: Option<f64>,
    /// Diffusion b-value (0018,9087), s/mm².
    pub diffusion_b_value_s_per_mm2: Option<f64>,

    /// Echo Number(s) (0018,0086): with trigger time, temporal position and b-value it tells
    /// images at one slice position apart (phases, echoes), so they are not duplicates.
    pub echo_number: Option<i64>,
    /// Trigger Time (0018,1060), cardiac phase.
    pub trigger_time_ms: Option<f64>,
    /// Temporal Position Identifier (0020,0100).
    pub temporal_position_identifier: Option<i64>,

    /// The real acquisition date, given by the caller from the original header before
    /// de-identification (Acquisition Date, else Series Date, else Study Date). Restricted: it is
    /// the unshifted date.
    #[serde(with = "opt_date")]
    pub acquisition_date: Option<Date>,
    /// Dates as stored in the de-identified header: absent under the Basic Profile, shifted under
    /// Modified Dates, real under Full Dates.
    pub header_dates: HeaderDates,

    /// Patient Identity Removed (0012,0062) = YES.
    pub patient_identity_removed: bool,
    /// Code Values of De-identification Method Code Sequence (0012,0064), e.g. ["113100", "113107"].
    pub deidentification_method_codes: Vec<String>,
    /// Burned-in PHI risks: from the de-identification report (and Burned In Annotation YES in the
    /// stored header).
    pub burned_in_flags: Vec<BurnedInFlag>,
}

/// Pixel Spacing (0028,0030): row spacing (between adjacent rows) then column spacing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PixelSpacing {
    pub row_mm: f64,
    pub column_mm: f64,
}

/// Dates as the stored header holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderDates {
    /// Study Date (0008,0020).
    #[serde(with = "opt_date")]
    pub study: Option<Date>,
    /// Series Date (0008,0021).
    #[serde(with = "opt_date")]
    pub series: Option<Date>,
    /// Acquisition Date (0008,0022).
    #[serde(with = "opt_date")]
    pub acquisition: Option<Date>,
}

impl HeaderDates {
    /// Acquisition, else series, else study date.
    pub fn best(&self) -> Option<Date> {
        self.acquisition.or(self.series).or(self.study)
    }
}

/// A reason to look for burned-in PHI in the pixels (mirrors the de-identification report's flags).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum BurnedInFlag {
    /// Burned In Annotation (0028,0301) = YES and no charter mask cleaned it.
    AnnotationYes,
    /// Burned In Annotation absent on a kind of image known to carry text in its pixels.
    AnnotationUnknown { reason: String },
    /// A charter pixel mask matched but could not be applied (e.g. compressed pixel data).
    MaskNotApplied { reason: String },
}

/// Whether the pixel data of a series could be decoded (the caller decodes one frame).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PixelDecode {
    /// Not tried: no finding.
    #[default]
    NotChecked,
    Ok,
    /// Decoding failed: the images are unusable (error).
    Failed {
        message: String,
    },
    /// This server has no decoder for the encoding (e.g. JPEG-LS): a warning, readers may still
    /// open the images in a viewer that has one.
    Unsupported {
        message: String,
    },
}

/// One received series.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesFacts {
    /// Series Instance UID (0020,000E), as stored.
    pub series_instance_uid: String,
    pub instances: Vec<InstanceFacts>,
    pub pixel_decode: PixelDecode,
}

/// Everything received for one visit of one subject.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitFacts {
    pub series: Vec<SeriesFacts>,
}

impl VisitFacts {
    /// Groups instances into series by Series Instance UID, in order of first appearance; pixel
    /// decode outcomes start as [`PixelDecode::NotChecked`].
    pub fn from_instances(instances: impl IntoIterator<Item = InstanceFacts>) -> VisitFacts {
        let mut series: Vec<SeriesFacts> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for instance in instances {
            let at = *index.entry(instance.series_instance_uid.clone()).or_insert_with(|| {
                series.push(SeriesFacts {
                    series_instance_uid: instance.series_instance_uid.clone(),
                    instances: Vec::new(),
                    pixel_decode: PixelDecode::NotChecked,
                });
                series.len() - 1
            });
            series[at].instances.push(instance);
        }
        VisitFacts { series }
    }
}

/// `Option<Date>` as `"YYYY-MM-DD"` or null.
mod opt_date {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::charter::Date;

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        date.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        match text {
            None => Ok(None),
            Some(t) => Date::parse_iso(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{t:?} is not a YYYY-MM-DD date"))),
        }
    }
}
