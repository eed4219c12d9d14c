//! QC header facts from dicom-rs objects.
//!
//! - [`instance_facts`]: the [`InstanceFacts`] of a stored, de-identified instance. Lenient: values
//!   with padding spaces or NULs, decimal commas, several values where one is expected, one where
//!   several are, or missing altogether give the usable part or None, never an error. Where an
//!   enhanced multi-frame object keeps pixel measures or orientation only in its Shared Functional
//!   Groups, they are read from there.
//! - [`original_facts`]: what QC needs from the original header, read before de-identification
//!   (the real acquisition date; whether a contrast agent was named), then
//!   [`OriginalFacts::apply`] to the de-identified instance's facts.
//! - [`burned_in_flags`] / [`instance_facts_with_report`]: the de-identification report's flags.
//! - [`check_decodable`]: decodes the first frame with dicom-pixeldata.

use corelab_domain::charter::Date;
use corelab_domain::qc::{
    BurnedInFlag, HeaderDates, InstanceFacts, PixelDecode, PixelSpacing, contrast_agent_says_none,
};
use dicom_core::Tag;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::deid::{DeidReport, QcFlag};

/// The value de-identification writes for D (dummy) text; read back as "no value".
const DUMMY_TEXT: &str = "ANONYMIZED";

const SHARED_FUNCTIONAL_GROUPS: Tag = Tag(0x5200, 0x9229);
const PIXEL_MEASURES: Tag = Tag(0x0028, 0x9110);
const PLANE_ORIENTATION: Tag = Tag(0x0020, 0x9116);

mod tags {
    use dicom_core::Tag;
    pub const SOP_CLASS: Tag = Tag(0x0008, 0x0016);
    pub const SOP_INSTANCE: Tag = Tag(0x0008, 0x0018);
    pub const IMAGE_TYPE: Tag = Tag(0x0008, 0x0008);
    pub const STUDY_DATE: Tag = Tag(0x0008, 0x0020);
    pub const SERIES_DATE: Tag = Tag(0x0008, 0x0021);
    pub const ACQUISITION_DATE: Tag = Tag(0x0008, 0x0022);
    pub const ACQUISITION_DATETIME: Tag = Tag(0x0008, 0x002A);
    pub const ACQUISITION_TIME: Tag = Tag(0x0008, 0x0032);
    pub const MODALITY: Tag = Tag(0x0008, 0x0060);
    pub const MANUFACTURER: Tag = Tag(0x0008, 0x0070);
    pub const STATION_NAME: Tag = Tag(0x0008, 0x1010);
    pub const SERIES_DESCRIPTION: Tag = Tag(0x0008, 0x103E);
    pub const MODEL: Tag = Tag(0x0008, 0x1090);
    pub const CODE_VALUE: Tag = Tag(0x0008, 0x0100);
    pub const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
    pub const DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
    pub const TRIAL_SERIES_ID: Tag = Tag(0x0012, 0x0071);
    pub const TRIAL_SERIES_DESCRIPTION: Tag = Tag(0x0012, 0x0072);
    pub const CONTRAST_AGENT: Tag = Tag(0x0018, 0x0010);
    pub const BODY_PART: Tag = Tag(0x0018, 0x0015);
    pub const SCANNING_SEQUENCE: Tag = Tag(0x0018, 0x0020);
    pub const SEQUENCE_VARIANT: Tag = Tag(0x0018, 0x0021);
    pub const SCAN_OPTIONS: Tag = Tag(0x0018, 0x0022);
    pub const MR_ACQUISITION_TYPE: Tag = Tag(0x0018, 0x0023);
    pub const SEQUENCE_NAME: Tag = Tag(0x0018, 0x0024);
    pub const SLICE_THICKNESS: Tag = Tag(0x0018, 0x0050);
    pub const KVP: Tag = Tag(0x0018, 0x0060);
    pub const REPETITION_TIME: Tag = Tag(0x0018, 0x0080);
    pub const ECHO_TIME: Tag = Tag(0x0018, 0x0081);
    pub const INVERSION_TIME: Tag = Tag(0x0018, 0x0082);
    pub const ECHO_NUMBERS: Tag = Tag(0x0018, 0x0086);
    pub const FIELD_STRENGTH: Tag = Tag(0x0018, 0x0087);
    pub const SPACING_BETWEEN_SLICES: Tag = Tag(0x0018, 0x0088);
    pub const DEVICE_SERIAL: Tag = Tag(0x0018, 0x1000);
    pub const PROTOCOL_NAME: Tag = Tag(0x0018, 0x1030);
    pub const CONTRAST_ROUTE: Tag = Tag(0x0018, 0x1040);
    pub const CONTRAST_VOLUME: Tag = Tag(0x0018, 0x1041);
    pub const CONTRAST_START_TIME: Tag = Tag(0x0018, 0x1042);
    pub const CONTRAST_INGREDIENT: Tag = Tag(0x0018, 0x1048);
    pub const TRIGGER_TIME: Tag = Tag(0x0018, 0x1060);
    pub const DIFFUSION_B_VALUE: Tag = Tag(0x0018, 0x9087);
    pub const SERIES_INSTANCE: Tag = Tag(0x0020, 0x000E);
    pub const SERIES_NUMBER: Tag = Tag(0x0020, 0x0011);
    pub const INSTANCE_NUMBER: Tag = Tag(0x0020, 0x0013);
    pub const IMAGE_POSITION: Tag = Tag(0x0020, 0x0032);
    pub const IMAGE_ORIENTATION: Tag = Tag(0x0020, 0x0037);
    pub const TEMPORAL_POSITION: Tag = Tag(0x0020, 0x0100);
    pub const NUMBER_OF_FRAMES: Tag = Tag(0x0028, 0x0008);
    pub const ROWS: Tag = Tag(0x0028, 0x0010);
    pub const COLUMNS: Tag = Tag(0x0028, 0x0011);
    pub const PIXEL_SPACING: Tag = Tag(0x0028, 0x0030);
    pub const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);
    pub const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
    pub const FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0008);
    pub const DOUBLE_FLOAT_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0009);
}
use tags::*;

/// Every value of a text attribute, trimmed of spaces and NULs; empty values dropped. None when
/// the attribute is absent or not text.
fn texts(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<String>> {
    let e = obj.get(tag)?;
    let values: Vec<String> = match e.value() {
        Value::Primitive(PrimitiveValue::Empty) => Vec::new(),
        Value::Primitive(p @ (PrimitiveValue::Str(_) | PrimitiveValue::Strs(_))) => p
            .to_multi_str()
            .iter()
            .flat_map(|v| v.split('\\'))
            .map(|v| v.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
            .filter(|v| !v.is_empty())
            .collect(),
        Value::Primitive(p) => {
            p.to_multi_str().iter().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect()
        }
        _ => return None,
    };
    Some(values)
}

/// A text attribute: Some("") when present but empty (or holding only the de-identification
/// dummy), None when absent. Several values are joined with a backslash.
fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let values = texts(obj, tag)?;
    let joined = values.join("\\");
    Some(if joined == DUMMY_TEXT { String::new() } else { joined })
}

/// A text attribute with a usable value.
fn value(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    text(obj, tag).filter(|v| !v.is_empty())
}

/// Upper-case code string values.
fn codes(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    texts(obj, tag).unwrap_or_default().into_iter().map(|v| v.to_ascii_uppercase()).collect()
}

fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let v = t.parse::<f64>().ok().or_else(|| {
        // A decimal comma, as some scanners write.
        (t.matches(',').count() == 1 && !t.contains('.')).then(|| t.replace(',', ".").parse().ok()).flatten()
    })?;
    v.is_finite().then_some(v)
}

/// Every numeric value of an attribute, whether stored as text (DS, IS) or binary (US, FD, ...).
/// Values that do not parse are left out.
fn numbers_in(obj: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    let Some(e) = obj.get(tag) else { return Vec::new() };
    match e.value() {
        Value::Primitive(PrimitiveValue::Str(_) | PrimitiveValue::Strs(_)) => {
            texts(obj, tag).unwrap_or_default().iter().filter_map(|t| parse_number(t)).collect()
        }
        Value::Primitive(p) => {
            p.to_multi_float64().map(|v| v.into_iter().filter(|x| x.is_finite()).collect()).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn number(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    numbers_in(obj, tag).into_iter().next()
}

fn integer(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    number(obj, tag).filter(|v| v.fract() == 0.0 && v.abs() < 9.0e15).map(|v| v as i64)
}

fn unsigned(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    integer(obj, tag).and_then(|v| u32::try_from(v).ok())
}

/// DA `YYYYMMDD`, also the old `YYYY.MM.DD`.
fn date_text(text: &str) -> Option<Date> {
    let t = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    Date::parse_dicom(t).or_else(|| Date::parse_dicom(&t.replace('.', "")))
}

fn date(obj: &InMemDicomObject, tag: Tag) -> Option<Date> {
    value(obj, tag).and_then(|t| date_text(&t))
}

/// TM `HHMMSS.FFFFFF` (minutes and seconds optional), also the old `HH:MM:SS`: seconds after midnight.
fn time_text(text: &str) -> Option<f64> {
    let t: String = text.trim_matches(|c: char| c == '\0' || c.is_whitespace()).chars().filter(|c| *c != ':').collect();
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.len() < 2 || whole.len() > 6 || whole.len() % 2 == 1 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |k: usize| whole.get(k..k + 2).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let (h, m, s) = (part(0), part(2), part(4));
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let fraction = if frac.is_empty() { 0.0 } else { format!("0.{frac}").parse::<f64>().unwrap_or(0.0) };
    Some(f64::from(h * 3600 + m * 60 + s) + fraction)
}

fn time(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    value(obj, tag).and_then(|t| time_text(&t))
}

/// The first item of a sequence attribute.
fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.value().items()?.first()
}

/// An attribute from the object, else from the Shared Functional Groups' `group` sequence (enhanced
/// multi-frame objects keep pixel measures and orientation there).
fn with_shared<T>(obj: &InMemDicomObject, group: Tag, read: impl Fn(&InMemDicomObject) -> Option<T>) -> Option<T> {
    read(obj).or_else(|| first_item(obj, SHARED_FUNCTIONAL_GROUPS).and_then(|s| first_item(s, group)).and_then(read))
}

fn pixel_spacing(obj: &InMemDicomObject) -> Option<PixelSpacing> {
    let v = numbers_in(obj, PIXEL_SPACING);
    match v.as_slice() {
        [row, column, ..] if *row > 0.0 && *column > 0.0 => Some(PixelSpacing { row_mm: *row, column_mm: *column }),
        // One value where two belong: isotropic.
        [both] if *both > 0.0 => Some(PixelSpacing { row_mm: *both, column_mm: *both }),
        _ => None,
    }
}

fn fixed<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = numbers_in(obj, tag);
    (v.len() == N).then(|| std::array::from_fn(|k| v[k]))
}

/// The header facts of a stored (de-identified) instance. Flags from the de-identification report
/// are not included (see [`instance_facts_with_report`]); Burned In Annotation YES in the header is.
/// `acquisition_date` stays None: the stored dates may be shifted (see [`original_facts`]).
pub fn instance_facts(obj: &InMemDicomObject) -> InstanceFacts {
    let method_codes = obj
        .get(DEID_METHOD_CODES)
        .and_then(|e| e.value().items())
        .map(|items| items.iter().filter_map(|i| value(i, CODE_VALUE)).collect())
        .unwrap_or_default();
    let burned_in_flags = match value(obj, BURNED_IN_ANNOTATION) {
        Some(v) if v.eq_ignore_ascii_case("YES") => vec![BurnedInFlag::AnnotationYes],
        _ => Vec::new(),
    };
    InstanceFacts {
        sop_instance_uid: value(obj, SOP_INSTANCE).unwrap_or_default(),
        series_instance_uid: value(obj, SERIES_INSTANCE).unwrap_or_default(),
        sop_class_uid: value(obj, SOP_CLASS),
        instance_number: integer(obj, INSTANCE_NUMBER),
        series_number: integer(obj, SERIES_NUMBER),
        modality: value(obj, MODALITY).map(|m| m.to_ascii_uppercase()),
        body_part_examined: value(obj, BODY_PART).map(|m| m.to_ascii_uppercase()),
        series_description: value(obj, SERIES_DESCRIPTION),
        protocol_name: value(obj, PROTOCOL_NAME),
        clinical_trial_series_id: value(obj, TRIAL_SERIES_ID),
        clinical_trial_series_description: value(obj, TRIAL_SERIES_DESCRIPTION),
        image_type: codes(obj, IMAGE_TYPE),
        manufacturer: value(obj, MANUFACTURER),
        manufacturer_model_name: value(obj, MODEL),
        station_name: value(obj, STATION_NAME),
        device_serial_number: value(obj, DEVICE_SERIAL),
        slice_thickness_mm: with_shared(obj, PIXEL_MEASURES, |o| number(o, SLICE_THICKNESS)),
        spacing_between_slices_mm: with_shared(obj, PIXEL_MEASURES, |o| number(o, SPACING_BETWEEN_SLICES)),
        pixel_spacing_mm: with_shared(obj, PIXEL_MEASURES, pixel_spacing),
        rows: unsigned(obj, ROWS),
        columns: unsigned(obj, COLUMNS),
        image_position_patient_mm: fixed::<3>(obj, IMAGE_POSITION),
        image_orientation_patient: with_shared(obj, PLANE_ORIENTATION, |o| fixed::<6>(o, IMAGE_ORIENTATION)),
        number_of_frames: unsigned(obj, NUMBER_OF_FRAMES),
        kvp: number(obj, KVP),
        contrast_agent: text(obj, CONTRAST_AGENT),
        original_contrast_agent_recorded: None,
        contrast_route: value(obj, CONTRAST_ROUTE),
        contrast_volume_ml: number(obj, CONTRAST_VOLUME),
        contrast_ingredient: value(obj, CONTRAST_INGREDIENT),
        contrast_start_time_s: time(obj, CONTRAST_START_TIME),
        acquisition_time_s: time(obj, ACQUISITION_TIME),
        magnetic_field_strength_t: number(obj, FIELD_STRENGTH),
        scanning_sequence: codes(obj, SCANNING_SEQUENCE),
        sequence_variant: codes(obj, SEQUENCE_VARIANT),
        scan_options: codes(obj, SCAN_OPTIONS),
        mr_acquisition_type: value(obj, MR_ACQUISITION_TYPE).map(|m| m.to_ascii_uppercase()),
        sequence_name: value(obj, SEQUENCE_NAME),
        echo_time_ms: number(obj, ECHO_TIME),
        repetition_time_ms: number(obj, REPETITION_TIME),
        inversion_time_ms: number(obj, INVERSION_TIME),
        diffusion_b_value_s_per_mm2: number(obj, DIFFUSION_B_VALUE),
        echo_number: integer(obj, ECHO_NUMBERS),
        trigger_time_ms: number(obj, TRIGGER_TIME),
        temporal_position_identifier: integer(obj, TEMPORAL_POSITION),
        acquisition_date: None,
        header_dates: HeaderDates {
            study: date(obj, STUDY_DATE),
            series: date(obj, SERIES_DATE),
            acquisition: date(obj, ACQUISITION_DATE)
                .or_else(|| value(obj, ACQUISITION_DATETIME).and_then(|dt| dt.get(..8).and_then(date_text))),
        },
        patient_identity_removed: value(obj, PATIENT_IDENTITY_REMOVED).is_some_and(|v| v.eq_ignore_ascii_case("YES")),
        deidentification_method_codes: method_codes,
        burned_in_flags,
    }
}

/// The de-identification report's flags as QC facts.
pub fn burned_in_flags(report: &DeidReport) -> Vec<BurnedInFlag> {
    report
        .flags
        .iter()
        .map(|f| match f {
            QcFlag::BurnedInAnnotationYes => BurnedInFlag::AnnotationYes,
            QcFlag::BurnedInAnnotationUnknown { reason } => BurnedInFlag::AnnotationUnknown { reason: reason.clone() },
            QcFlag::PixelMaskNotApplied { reason } => BurnedInFlag::MaskNotApplied { reason: reason.clone() },
        })
        .collect()
}

/// [`instance_facts`] plus the report's burned-in flags.
pub fn instance_facts_with_report(obj: &InMemDicomObject, report: &DeidReport) -> InstanceFacts {
    let mut facts = instance_facts(obj);
    for flag in burned_in_flags(report) {
        if !facts.burned_in_flags.contains(&flag) {
            facts.burned_in_flags.push(flag);
        }
    }
    facts.burned_in_flags.sort();
    facts
}

/// What QC needs from the original header, read before de-identification. Holds the real date:
/// restricted, like the matching keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginalFacts {
    /// Acquisition Date, else the date of Acquisition DateTime, else Series Date, else Study Date.
    pub acquisition_date: Option<Date>,
    /// Whether Contrast/Bolus Agent named an agent (true) or said none (false); None when absent
    /// or empty. The free text itself is not kept.
    pub contrast_agent_recorded: Option<bool>,
}

impl OriginalFacts {
    /// Puts these facts into the facts of the de-identified instance.
    pub fn apply(&self, facts: &mut InstanceFacts) {
        facts.acquisition_date = self.acquisition_date;
        facts.original_contrast_agent_recorded = self.contrast_agent_recorded;
    }
}

/// Reads [`OriginalFacts`] from the original (not yet de-identified) header.
pub fn original_facts(original: &InMemDicomObject) -> OriginalFacts {
    let acquisition_date = date(original, ACQUISITION_DATE)
        .or_else(|| value(original, ACQUISITION_DATETIME).and_then(|dt| dt.get(..8).and_then(date_text)))
        .or_else(|| date(original, SERIES_DATE))
        .or_else(|| date(original, STUDY_DATE));
    let contrast_agent_recorded = value(original, CONTRAST_AGENT).map(|a| !contrast_agent_says_none(&a));
    OriginalFacts { acquisition_date, contrast_agent_recorded }
}

/// Whether the first frame of an instance decodes. Encodings this server has no decoder for
/// (JPEG-LS: CharLS needs cmake and is not built in), or whose variant the decoder does not
/// handle (an error naming an unsupported feature, e.g. 12-bit JPEG Extended), give
/// [`PixelDecode::Unsupported`], a warning for QC; broken data gives [`PixelDecode::Failed`], also
/// when a codec panics on it. Call it for image instances only: an
/// instance without Pixel Data fails.
pub fn check_decodable(obj: &FileDicomObject<InMemDicomObject>) -> PixelDecode {
    let uid = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    let Some(ts) = TransferSyntaxRegistry.get(uid) else {
        return PixelDecode::Unsupported { message: format!("transfer syntax {uid} is not known on this server") };
    };
    if obj.get(FLOAT_PIXEL_DATA).is_some() || obj.get(DOUBLE_FLOAT_PIXEL_DATA).is_some() {
        return PixelDecode::Unsupported { message: "float pixel data is not decoded on this server".into() };
    }
    if obj.get(PIXEL_DATA).is_none() {
        return PixelDecode::Failed { message: "the instance has no Pixel Data".into() };
    }
    if !ts.can_decode_all() {
        let name = if uid.starts_with("1.2.840.10008.1.2.4.80") || uid.starts_with("1.2.840.10008.1.2.4.81") {
            "JPEG-LS"
        } else {
            ts.name()
        };
        return PixelDecode::Unsupported { message: format!("{name} decoding not available on this server") };
    }
    // The codecs are third-party code fed with data from sites: a panic in one (dicom-rs 0.10's
    // RLE reader panics on some corrupt headers) is a decode failure, not a crash.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(0).map(|_| ()).map_err(|e| error_chain(&e))
    }));
    match decoded {
        Ok(Ok(())) => PixelDecode::Ok,
        // The decoder knows the encoding but not this variant of it (e.g. 12-bit JPEG Extended).
        Ok(Err(chain)) if chain.to_ascii_lowercase().contains("unsupported") => PixelDecode::Unsupported {
            message: format!("{} decoding not available on this server ({chain})", ts.name()),
        },
        Ok(Err(chain)) => PixelDecode::Failed { message: format!("{} pixel data: {chain}", ts.name()) },
        Err(_) => {
            PixelDecode::Failed { message: format!("{} pixel data: the decoder gave up on corrupt data", ts.name()) }
        }
    }
}

/// An error and its causes, "outer: inner: innermost".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
