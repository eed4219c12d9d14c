//! DICOM Structured Report of a read's measurements: TID 1500 "Imaging Measurement Report" in a
//! Comprehensive SR instance (PS3.16), built from typed measurements without IO.
//!
//! Layout of the content tree:
//!
//! ```text
//! CONTAINER (126000, DCM, "Imaging Measurement Report")          TID 1500
//!   HAS CONCEPT MOD  CODE  Language of Content Item and Descendants = English
//!   HAS OBS CONTEXT  CODE  Observer Type = Person
//!   HAS OBS CONTEXT  PNAME Person Observer Name = the reader's blinded code
//!   HAS OBS CONTEXT  TEXT  Time Point = the blinded timepoint label             TID 1502
//!   HAS CONCEPT MOD  CODE  Procedure reported = CT / MR / imaging procedure
//!   CONTAINS CONTAINER Image Library > Image Library Group > IMAGE per referenced instance
//!   CONTAINS CONTAINER Imaging Measurements
//!     CONTAINS CONTAINER Measurement Group (one per lesion)                        TID 1501
//!       HAS OBS CONTEXT TEXT   Tracking Identifier = lesion id
//!       HAS OBS CONTEXT UIDREF Tracking Unique Identifier = deterministic UID
//!       HAS CONCEPT MOD CODE   Finding Site = organ (local code)
//!       CONTAINS        CODE   Finding = target / non-target / new lesion
//!       CONTAINS        NUM    Long Axis or Short Axis (mm, UCUM)                  TID 300
//!         INFERRED FROM SCOORD POLYLINE (or POINT) > SELECTED FROM IMAGE           TID 320
//!         (or INFERRED FROM IMAGE "Source of Measurement" when no points were drawn)
//! ```
//!
//! Lengths come in as exact tenths of a millimetre and are written as given ("30.4"), never
//! through a float.

use corelab_domain::response::Tenths;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

/// Comprehensive SR Storage.
pub const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";
/// Explicit VR Little Endian.
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// A UID derived from names: `2.25.` and the first 128 bits of SHA-256 over the parts, so the
/// same read gives the same UIDs on every export.
pub fn derived_uid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"corelab-sr-v1");
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(first))
}

/// A stored image the report points at.
#[derive(Debug, Clone, PartialEq)]
pub struct SrImage {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
}

/// Where on an image a lesion was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SrRegion {
    pub image: SrImage,
    /// The frame of a multi-frame image (written when above 1).
    pub frame: Option<u32>,
    /// Image pixel coordinates (column, row).
    pub points: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LesionKind {
    Target,
    NonTarget,
    New,
}

impl LesionKind {
    fn code(self) -> (&'static str, &'static str, &'static str) {
        match self {
            LesionKind::Target => ("TARGET", "99CORELAB", "Target lesion"),
            LesionKind::NonTarget => ("NON_TARGET", "99CORELAB", "Non-target lesion"),
            LesionKind::New => ("NEW", "99CORELAB", "New lesion"),
        }
    }
}

/// One lesion's measurement group.
#[derive(Debug, Clone, PartialEq)]
pub struct SrLesion {
    /// The reader's lesion id (T1, NT1, N1): the Tracking Identifier.
    pub id: String,
    pub tracking_uid: String,
    pub organ: String,
    pub kind: LesionKind,
    pub long_axis_mm: Option<Tenths>,
    pub short_axis_mm: Option<Tenths>,
    pub region: Option<SrRegion>,
}

/// Everything the report says. The caller decides every UID (use [`derived_uid`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SrDocument {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    /// The de-identified study of the timepoint read.
    pub study_instance_uid: String,
    /// Patient ID and name: the blinded case code.
    pub patient_id: String,
    /// The reader's blinded code (Person Observer Name).
    pub observer: String,
    pub timepoint: String,
    /// Modality of the images read (CT, MR, ...), for "Procedure reported".
    pub modality: String,
    /// YYYYMMDD and HHMMSS of the read's signature.
    pub content_date: String,
    pub content_time: String,
    pub series_number: i64,
    pub instance_number: i64,
    pub lesions: Vec<SrLesion>,
}

#[derive(Debug, thiserror::Error)]
#[error("the SR could not be encoded: {0}")]
pub struct SrError(String);

type Code = (&'static str, &'static str, &'static str);

const REPORT: Code = ("126000", "DCM", "Imaging Measurement Report");
const LANGUAGE: Code = ("121049", "DCM", "Language of Content Item and Descendants");
const ENGLISH: Code = ("eng", "RFC5646", "English");
const OBSERVER_TYPE: Code = ("121005", "DCM", "Observer Type");
const PERSON: Code = ("121006", "DCM", "Person");
const OBSERVER_NAME: Code = ("121008", "DCM", "Person Observer Name");
const TIME_POINT: Code = ("C2348792", "UMLS", "Time Point");
const PROCEDURE_REPORTED: Code = ("121058", "DCM", "Procedure reported");
const IMAGE_LIBRARY: Code = ("111028", "DCM", "Image Library");
const IMAGE_LIBRARY_GROUP: Code = ("126200", "DCM", "Image Library Group");
const MEASUREMENTS: Code = ("126010", "DCM", "Imaging Measurements");
const GROUP: Code = ("125007", "DCM", "Measurement Group");
const TRACKING_ID: Code = ("112039", "DCM", "Tracking Identifier");
const TRACKING_UID: Code = ("112040", "DCM", "Tracking Unique Identifier");
const FINDING_SITE: Code = ("363698007", "SCT", "Finding Site");
const FINDING: Code = ("121071", "DCM", "Finding");
const LONG_AXIS: Code = ("103339001", "SCT", "Long Axis");
const SHORT_AXIS: Code = ("103340004", "SCT", "Short Axis");
const MM: Code = ("mm", "UCUM", "millimeter");
const IMAGE_REGION: Code = ("111030", "DCM", "Image Region");
const SOURCE: Code = ("121112", "DCM", "Source of Measurement");

fn procedure(modality: &str) -> Code {
    match modality {
        "CT" => ("77477000", "SCT", "Computed Tomography"),
        "MR" => ("113091000", "SCT", "Magnetic Resonance Imaging"),
        "PT" => ("82918005", "SCT", "Positron Emission Tomography"),
        _ => ("363679005", "SCT", "Imaging procedure"),
    }
}

fn text(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::new(items, Length::UNDEFINED)))
}

fn code_item(c: (&str, &str, &str)) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, c.0),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.1),
        text(tags::CODE_MEANING, VR::LO, c.2),
    ])
}

/// A content item: relationship, value type, concept name, then its value elements and children.
fn item(
    relationship: &str,
    value_type: &str,
    name: Code,
    value: Vec<DataElement<InMemDicomObject>>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::from_element_iter([
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, value_type),
        seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(name)]),
    ]);
    for e in value {
        o.put(e);
    }
    if !children.is_empty() {
        o.put(seq(tags::CONTENT_SEQUENCE, children));
    }
    o
}

fn container(relationship: &str, name: Code, children: Vec<InMemDicomObject>) -> InMemDicomObject {
    item(relationship, "CONTAINER", name, vec![text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE")], children)
}

fn code_value(relationship: &str, name: Code, value: (&str, &str, &str)) -> InMemDicomObject {
    item(relationship, "CODE", name, vec![seq(tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)])], Vec::new())
}

fn image_ref(image: &SrImage, frame: Option<u32>) -> DataElement<InMemDicomObject> {
    let mut r = InMemDicomObject::from_element_iter([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &image.sop_class_uid),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &image.sop_instance_uid),
    ]);
    if let Some(f) = frame.filter(|f| *f > 1) {
        r.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &f.to_string()));
    }
    seq(tags::REFERENCED_SOP_SEQUENCE, vec![r])
}

fn image_item(relationship: &str, name: Code, image: &SrImage, frame: Option<u32>) -> InMemDicomObject {
    item(relationship, "IMAGE", name, vec![image_ref(image, frame)], Vec::new())
}

/// The image region of a measurement (TID 320): a SCOORD selected from the image, or the image
/// itself when no points were drawn.
fn region_item(r: &SrRegion) -> InMemDicomObject {
    if r.points.is_empty() {
        return image_item("INFERRED FROM", SOURCE, &r.image, r.frame);
    }
    let graphic = if r.points.len() == 1 { "POINT" } else { "POLYLINE" };
    let data: Vec<f32> = r.points.iter().flat_map(|[c, row]| [*c as f32, *row as f32]).collect();
    item(
        "INFERRED FROM",
        "SCOORD",
        IMAGE_REGION,
        vec![
            text(tags::GRAPHIC_TYPE, VR::CS, graphic),
            DataElement::new(tags::GRAPHIC_DATA, VR::FL, PrimitiveValue::F32(data.into())),
        ],
        vec![item(
            "SELECTED FROM",
            "IMAGE",
            ("111040", "DCM", "Original Source"),
            vec![image_ref(&r.image, r.frame)],
            Vec::new(),
        )],
    )
}

fn length_item(name: Code, mm: Tenths, region: Option<&SrRegion>) -> InMemDicomObject {
    let measured = InMemDicomObject::from_element_iter([
        seq(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code_item(MM)]),
        text(tags::NUMERIC_VALUE, VR::DS, &mm.to_string()),
    ]);
    item(
        "CONTAINS",
        "NUM",
        name,
        vec![seq(tags::MEASURED_VALUE_SEQUENCE, vec![measured])],
        region.map(region_item).into_iter().collect(),
    )
}

fn group(l: &SrLesion) -> InMemDicomObject {
    let mut children = vec![
        item("HAS OBS CONTEXT", "TEXT", TRACKING_ID, vec![text(tags::TEXT_VALUE, VR::UT, &l.id)], Vec::new()),
        item("HAS OBS CONTEXT", "UIDREF", TRACKING_UID, vec![text(tags::UID, VR::UI, &l.tracking_uid)], Vec::new()),
        code_value("HAS CONCEPT MOD", FINDING_SITE, (&organ_code(&l.organ), "99CORELAB", &l.organ)),
        code_value("CONTAINS", FINDING, l.kind.code()),
    ];
    let mut region = l.region.as_ref();
    for (name, v) in [(LONG_AXIS, l.long_axis_mm), (SHORT_AXIS, l.short_axis_mm)] {
        if let Some(mm) = v {
            // The drawn region goes with the first length; the image is referenced once.
            children.push(length_item(name, mm, region.take()));
        }
    }
    if let Some(r) = region {
        children.push(region_item(r));
    }
    container("CONTAINS", GROUP, children)
}

/// A local code value for an organ name: upper case, letters and digits, at most 16 characters (SH).
fn organ_code(organ: &str) -> String {
    let c: String = organ
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .take(16)
        .collect();
    if c.is_empty() { "UNSPECIFIED".into() } else { c }
}

/// The distinct images the report references, in first-seen order.
fn images(doc: &SrDocument) -> Vec<&SrImage> {
    let mut out: Vec<&SrImage> = Vec::new();
    for l in &doc.lesions {
        if let Some(r) = &l.region
            && !out.iter().any(|i| i.sop_instance_uid == r.image.sop_instance_uid)
        {
            out.push(&r.image);
        }
    }
    out
}

/// A series' UID and the referenced images in it.
type SeriesRefs<'a> = (&'a str, Vec<&'a SrImage>);

/// Current Requested Procedure Evidence: every referenced instance by study and series.
fn evidence(images: &[&SrImage]) -> Vec<InMemDicomObject> {
    let mut studies: Vec<(&str, Vec<SeriesRefs>)> = Vec::new();
    for i in images {
        let at = match studies.iter().position(|(s, _)| *s == i.study_instance_uid) {
            Some(p) => p,
            None => {
                studies.push((&i.study_instance_uid, Vec::new()));
                studies.len() - 1
            }
        };
        let Some((_, series)) = studies.get_mut(at) else { continue };
        match series.iter_mut().find(|(s, _)| *s == i.series_instance_uid) {
            Some((_, list)) => list.push(i),
            None => series.push((&i.series_instance_uid, vec![i])),
        }
    }
    studies
        .into_iter()
        .map(|(study, series)| {
            let series_items = series
                .into_iter()
                .map(|(uid, list)| {
                    let sops = list
                        .into_iter()
                        .map(|i| {
                            InMemDicomObject::from_element_iter([
                                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &i.sop_class_uid),
                                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &i.sop_instance_uid),
                            ])
                        })
                        .collect();
                    InMemDicomObject::from_element_iter([
                        text(tags::SERIES_INSTANCE_UID, VR::UI, uid),
                        seq(tags::REFERENCED_SOP_SEQUENCE, sops),
                    ])
                })
                .collect();
            InMemDicomObject::from_element_iter([
                text(tags::STUDY_INSTANCE_UID, VR::UI, study),
                seq(tags::REFERENCED_SERIES_SEQUENCE, series_items),
            ])
        })
        .collect()
}

/// The SR dataset (without file meta).
pub fn build(doc: &SrDocument) -> InMemDicomObject {
    let refs = images(doc);
    let library = container(
        "CONTAINS",
        IMAGE_LIBRARY,
        vec![container(
            "CONTAINS",
            IMAGE_LIBRARY_GROUP,
            refs.iter().map(|i| image_item("CONTAINS", ("111041", "DCM", "Image"), i, None)).collect(),
        )],
    );
    let content = vec![
        code_value("HAS CONCEPT MOD", LANGUAGE, ENGLISH),
        code_value("HAS OBS CONTEXT", OBSERVER_TYPE, PERSON),
        item(
            "HAS OBS CONTEXT",
            "PNAME",
            OBSERVER_NAME,
            vec![text(tags::PERSON_NAME, VR::PN, &doc.observer)],
            Vec::new(),
        ),
        item("HAS OBS CONTEXT", "TEXT", TIME_POINT, vec![text(tags::TEXT_VALUE, VR::UT, &doc.timepoint)], Vec::new()),
        code_value("HAS CONCEPT MOD", PROCEDURE_REPORTED, procedure(&doc.modality)),
        library,
        container("CONTAINS", MEASUREMENTS, doc.lesions.iter().map(group).collect()),
    ];
    let empty = |tag: Tag, vr: VR| DataElement::new(tag, vr, PrimitiveValue::Empty);
    let mut o = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_SR),
        text(tags::SOP_INSTANCE_UID, VR::UI, &doc.sop_instance_uid),
        empty(tags::STUDY_DATE, VR::DA),
        empty(tags::STUDY_TIME, VR::TM),
        text(tags::CONTENT_DATE, VR::DA, &doc.content_date),
        text(tags::CONTENT_TIME, VR::TM, &doc.content_time),
        empty(tags::ACCESSION_NUMBER, VR::SH),
        text(tags::MODALITY, VR::CS, "SR"),
        text(tags::MANUFACTURER, VR::LO, "corelab"),
        empty(tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        text(tags::SERIES_DESCRIPTION, VR::LO, "Imaging Measurement Report"),
        seq(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, Vec::new()),
        text(tags::PATIENT_NAME, VR::PN, &doc.patient_id),
        text(tags::PATIENT_ID, VR::LO, &doc.patient_id),
        empty(tags::PATIENT_BIRTH_DATE, VR::DA),
        empty(tags::PATIENT_SEX, VR::CS),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &doc.study_instance_uid),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &doc.series_instance_uid),
        empty(tags::STUDY_ID, VR::SH),
        text(tags::SERIES_NUMBER, VR::IS, &doc.series_number.to_string()),
        text(tags::INSTANCE_NUMBER, VR::IS, &doc.instance_number.to_string()),
        // The content tree.
        text(tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(REPORT)]),
        text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        seq(
            tags::CONTENT_TEMPLATE_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
                text(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500"),
            ])],
        ),
        text(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"),
        text(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
        seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new()),
        seq(tags::CONTENT_SEQUENCE, content),
    ]);
    // The default repertoire when every text is ASCII; UTF-8 otherwise (an organ typed as "côlon").
    let texts = [&doc.patient_id, &doc.observer, &doc.timepoint];
    let ascii = texts.iter().all(|t| t.is_ascii()) && doc.lesions.iter().all(|l| l.id.is_ascii() && l.organ.is_ascii());
    if !ascii {
        o.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    }
    if !refs.is_empty() {
        o.put(seq(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, evidence(&refs)));
    }
    o
}

/// The SR as a DICOM Part 10 file (explicit VR little endian).
pub fn to_bytes(doc: &SrDocument) -> Result<Vec<u8>, SrError> {
    let file = build(doc)
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid(COMPREHENSIVE_SR)
                .media_storage_sop_instance_uid(doc.sop_instance_uid.as_str())
                .implementation_class_uid(derived_uid(&["implementation"]).as_str())
                .implementation_version_name("CORELAB"),
        )
        .map_err(|e| SrError(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| SrError(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::from_reader;

    fn doc() -> SrDocument {
        let image = SrImage {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "2.25.10".into(),
            study_instance_uid: "2.25.1".into(),
            series_instance_uid: "2.25.2".into(),
        };
        SrDocument {
            sop_instance_uid: derived_uid(&["doc"]),
            series_instance_uid: derived_uid(&["series"]),
            study_instance_uid: "2.25.1".into(),
            patient_id: "RC-ABCD-EFGH".into(),
            observer: "RC-ABCD-EFGH reader 1".into(),
            timepoint: "TP1".into(),
            modality: "CT".into(),
            content_date: "20261127".into(),
            content_time: "101500".into(),
            series_number: 9001,
            instance_number: 1,
            lesions: vec![
                SrLesion {
                    id: "T1".into(),
                    tracking_uid: derived_uid(&["T1"]),
                    organ: "liver".into(),
                    kind: LesionKind::Target,
                    long_axis_mm: Some(Tenths::parse("30.4").unwrap()),
                    short_axis_mm: None,
                    region: Some(SrRegion { image, frame: Some(1), points: vec![[100.5, 80.0], [131.0, 80.0]] }),
                },
                SrLesion {
                    id: "NT1".into(),
                    tracking_uid: derived_uid(&["NT1"]),
                    organ: "bone, spine".into(),
                    kind: LesionKind::NonTarget,
                    long_axis_mm: None,
                    short_axis_mm: None,
                    region: None,
                },
            ],
        }
    }

    fn find<'a>(o: &'a InMemDicomObject, name: &str) -> Vec<&'a InMemDicomObject> {
        let mut out = Vec::new();
        if let Ok(items) = o.element(tags::CONTENT_SEQUENCE).map(|e| e.items().unwrap_or(&[])) {
            for i in items {
                let meaning = i
                    .element(tags::CONCEPT_NAME_CODE_SEQUENCE)
                    .ok()
                    .and_then(|e| e.items().and_then(|x| x.first()))
                    .and_then(|c| c.element(tags::CODE_MEANING).ok())
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim().to_string());
                if meaning.as_deref() == Some(name) {
                    out.push(i);
                }
                out.extend(find(i, name));
            }
        }
        out
    }

    #[test]
    fn a_lesion_becomes_a_measurement_group_with_its_length_and_region() {
        let bytes = to_bytes(&doc()).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        let obj = from_reader(&bytes[128..]).unwrap();
        let s = |t| obj.element(t).unwrap().to_str().unwrap().trim_end_matches('\0').trim().to_string();
        assert_eq!(s(tags::SOP_CLASS_UID), COMPREHENSIVE_SR);
        assert_eq!(s(tags::PATIENT_ID), "RC-ABCD-EFGH");
        let groups = find(&obj, "Measurement Group");
        assert_eq!(groups.len(), 2);
        let long = find(groups[0], "Long Axis");
        let mv = long[0].element(tags::MEASURED_VALUE_SEQUENCE).unwrap().items().unwrap()[0]
            .element(tags::NUMERIC_VALUE)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(mv, "30.4");
        let region = find(groups[0], "Image Region");
        assert_eq!(region[0].element(tags::GRAPHIC_TYPE).unwrap().to_str().unwrap().trim(), "POLYLINE");
        assert_eq!(
            region[0].element(tags::GRAPHIC_DATA).unwrap().to_multi_float32().unwrap(),
            vec![100.5, 80.0, 131.0, 80.0]
        );
        // The non-target has its tracking identifier and site but no length.
        assert!(find(groups[1], "Long Axis").is_empty());
        let site = find(groups[1], "Finding Site");
        let code = site[0].element(tags::CONCEPT_CODE_SEQUENCE).unwrap().items().unwrap()[0].clone();
        assert_eq!(code.element(tags::CODE_VALUE).unwrap().to_str().unwrap().trim(), "BONE__SPINE");
        assert_eq!(code.element(tags::CODE_MEANING).unwrap().to_str().unwrap().trim(), "bone, spine");
        // The evidence names the referenced instance under its study and series.
        assert!(obj.element(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE).is_ok());
        // Deterministic: the same input gives the same bytes.
        assert_eq!(to_bytes(&doc()).unwrap(), bytes);
    }
}
