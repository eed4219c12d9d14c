//! The de-identification profile a trial's charter chooses: PS3.15 Annex E options as plain data.
//!
//! The charter parser fills this in; the DICOM engine (`corelab-dicom::deid`) applies it. Keeping it
//! here lets both sides agree on one shape without the domain depending on dicom-rs.

use serde::{Deserialize, Serialize};

/// How dates and times are handled (PS3.15 "Retain Longitudinal Temporal Information" options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DateHandling {
    /// Basic profile: dates are emptied or removed as Table E.1-1 says.
    #[default]
    Remove,
    /// Retain Longitudinal Temporal Information with Full Dates (DCM 113106).
    Keep,
    /// Retain Longitudinal Temporal Information with Modified Dates (DCM 113107): every date of a
    /// subject is shifted by the same per-subject offset, drawn once and stored.
    Shift,
}

/// A private attribute that may be kept under Retain Safe Private (DCM 113111): identified by its
/// private creator and the element's low byte within that creator's block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafePrivateTag {
    /// Private Creator value, e.g. "SIEMENS CSA HEADER".
    pub creator: String,
    /// Odd group number, e.g. 0x0029.
    pub group: u16,
    /// Element offset within the creator's block (0x00..=0xFF), e.g. 0x10 for (0029,xx10).
    pub element: u8,
}

/// A rectangle of pixels to blank, in pixel coordinates of the image (columns x rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRegion {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Known burned-in text regions for one kind of device (as CTP's pixel signatures do): applied when
/// an instance's manufacturer, model (prefix match, case-insensitive) and dimensions all match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelMask {
    pub manufacturer: String,
    #[serde(default)]
    pub model: Option<String>,
    pub rows: u32,
    pub columns: u32,
    pub regions: Vec<MaskRegion>,
}

/// The de-identification options a trial uses. Defaults are the Basic Profile with nothing retained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DeidProfile {
    pub dates: DateHandling,
    /// Largest absolute per-subject shift in days when `dates = "shift"`.
    pub max_shift_days: u32,
    /// DCM 113108: keep sex, age, size, weight and similar characteristics.
    pub retain_patient_characteristics: bool,
    /// DCM 113109: keep station name, device serial number and similar.
    pub retain_device_identity: bool,
    /// DCM 113112: keep institution name/address/department and clinical trial site attributes.
    pub retain_institution_identity: bool,
    /// DCM 113110: keep original UIDs (rarely appropriate; default remaps them).
    pub retain_uids: bool,
    /// DCM 113111: keep private attributes on the safe list (the built-in list plus `safe_private`).
    pub retain_safe_private: bool,
    /// Extra private attributes the trial declares safe, on top of the built-in list.
    pub safe_private: Vec<SafePrivateTag>,
    /// DCM 113105: keep descriptors (series description, protocol name, ...) whose value matches an
    /// entry of `descriptor_allow_list` (case-insensitive, `*` wildcard), drop the rest.
    pub clean_descriptors: bool,
    pub descriptor_allow_list: Vec<String>,
    /// DCM 113101 (Clean Pixel Data) when a mask matches an instance.
    pub pixel_masks: Vec<PixelMask>,
}
