//! Synthetic CT series, made by corelab itself (no Python, no sample data to download), for the
//! `corelab serve --demo` trial and for tests.
//!
//! A series is a stack of axial slices through a cartoon torso: a body ellipse with subcutaneous
//! fat, lung bases, liver, spleen, spine and aorta at plausible Hounsfield values, plus round
//! lesions (spheres) whose radius is given in millimetres, so a reader measuring a lesion's longest
//! axial diameter on its central slice finds twice the radius. The geometry is consistent (Image
//! Position/Orientation, Pixel Spacing, Slice Thickness, Slice Location, Instance Number) and the
//! header carries the acquisition facts QC checks, the Clinical Trial attributes ingest matches on,
//! and an obviously fake patient identity for de-identification to remove.
//!
//! Pure: everything is computed in memory and returned as Part 10 bytes; nothing is read or
//! written here. Deterministic: the same spec gives the same bytes (the noise is seeded).

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Explicit VR Little Endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Stored value = HU + this (Rescale Intercept is its negative).
const HU_OFFSET: i32 = 1024;
/// 12 bits stored.
const MAX_STORED: i32 = 4095;

/// A round lesion: a sphere in patient coordinates (LPS, millimetres).
#[derive(Debug, Clone, PartialEq)]
pub struct Lesion {
    /// Centre (x: towards the patient's left, y: posterior, z: head), in mm.
    pub center_mm: [f64; 3],
    pub radius_mm: f64,
    /// Attenuation of the lesion in Hounsfield units.
    pub hu: i16,
}

/// The made-up patient identity written into the header: what de-identification must remove.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePatient {
    /// Patient's Name (PN), e.g. `ZZDEMO^FAKE PATIENT`.
    pub name: String,
    /// Patient ID as a hospital would send it (a fake medical record number).
    pub patient_id: String,
    /// YYYYMMDD.
    pub birth_date: String,
    /// M, F or O.
    pub sex: String,
    pub accession_number: String,
    pub referring_physician: String,
    pub institution_name: String,
    pub institution_address: String,
}

/// Everything a synthetic series is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSeries {
    pub patient: FakePatient,
    /// Clinical Trial Subject ID (0012,0040): the trial's subject ID, for matching.
    pub clinical_trial_subject_id: Option<String>,
    /// Clinical Trial Time Point ID (0012,0050): the charter's visit ID, for matching.
    pub clinical_trial_time_point_id: Option<String>,
    /// Study, series and acquisition date, YYYYMMDD.
    pub study_date: String,
    pub study_instance_uid: String,
    /// SOP Instance UIDs are this UID with `.1`, `.2`, ... appended; the frame of reference `.0`.
    pub series_instance_uid: String,
    pub series_number: u32,
    pub series_description: String,
    pub body_part_examined: String,
    pub slices: usize,
    /// Rows = Columns.
    pub matrix: u16,
    pub pixel_spacing_mm: f64,
    /// Also the distance between slice centres (contiguous slices, no gap).
    pub slice_thickness_mm: f64,
    pub kvp: f64,
    /// Contrast/Bolus Agent; `None` for a scan without contrast.
    pub contrast_agent: Option<String>,
    pub lesions: Vec<Lesion>,
    /// Seeds the image noise.
    pub seed: u64,
}

/// Why a series could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("synthetic series: {0}")]
    Invalid(String),
    #[error("synthetic series: cannot encode the instance: {0}")]
    Encode(String),
}

impl CtSeries {
    /// A series with sensible defaults for an oncology CT: 512 x 512, 0.7 mm pixels, 5 mm slices,
    /// 120 kVp, portal venous contrast; the caller fills in who, when and what is in it.
    pub fn portal_venous(
        patient: FakePatient,
        study_date: &str,
        study_instance_uid: &str,
        series_instance_uid: &str,
    ) -> CtSeries {
        CtSeries {
            patient,
            clinical_trial_subject_id: None,
            clinical_trial_time_point_id: None,
            study_date: study_date.to_string(),
            study_instance_uid: study_instance_uid.to_string(),
            series_instance_uid: series_instance_uid.to_string(),
            series_number: 2,
            series_description: "CT CAP PORTAL VENOUS".into(),
            body_part_examined: "CHEST_TO_PELVIS".into(),
            slices: 10,
            matrix: 512,
            pixel_spacing_mm: 0.7,
            slice_thickness_mm: 5.0,
            kvp: 120.0,
            contrast_agent: Some("IOHEXOL 350".into()),
            lesions: Vec::new(),
            seed: 1,
        }
    }

    fn check(&self) -> Result<(), SynthError> {
        let bad = |m: &str| Err(SynthError::Invalid(m.to_string()));
        if self.slices == 0 {
            return bad("at least one slice");
        }
        if self.matrix < 16 {
            return bad("a matrix of at least 16 x 16");
        }
        if !(self.pixel_spacing_mm > 0.0 && self.slice_thickness_mm > 0.0) {
            return bad("pixel spacing and slice thickness must be positive");
        }
        if self.study_date.len() != 8 || !self.study_date.bytes().all(|b| b.is_ascii_digit()) {
            return bad("the study date must be YYYYMMDD");
        }
        for uid in [&self.study_instance_uid, &self.series_instance_uid] {
            let ok = !uid.is_empty()
                && uid.len() + 1 + self.slices.to_string().len() <= 64
                && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if !ok {
                return bad("UIDs must be digits and dots, short enough for the instance suffix");
            }
        }
        Ok(())
    }

    /// x and y (mm) of the centre of the first pixel (top left): the image is centred on the
    /// patient axis.
    pub fn origin_mm(&self) -> [f64; 2] {
        let half = (f64::from(self.matrix) - 1.0) / 2.0 * self.pixel_spacing_mm;
        [-half, -half]
    }

    /// z (mm) of slice `i` (0-based): the stack is centred on z = 0 and runs head to feet.
    pub fn slice_z(&self, i: usize) -> f64 {
        let mid = (self.slices as f64 - 1.0) / 2.0;
        (mid - i as f64) * self.slice_thickness_mm
    }

    /// Patient coordinates (mm) of the centre of pixel (`row`, `col`) of slice `i`.
    pub fn pixel_position(&self, i: usize, row: u16, col: u16) -> [f64; 3] {
        let [x0, y0] = self.origin_mm();
        [x0 + f64::from(col) * self.pixel_spacing_mm, y0 + f64::from(row) * self.pixel_spacing_mm, self.slice_z(i)]
    }

    /// The noiseless attenuation at a point, in HU. Later structures paint over earlier ones.
    pub fn hu_at(&self, p: [f64; 3]) -> i16 {
        let [x, y, _] = p;
        let in_ellipse = |cx: f64, cy: f64, a: f64, b: f64| {
            let (dx, dy) = ((x - cx) / a, (y - cy) / b);
            dx * dx + dy * dy <= 1.0
        };
        let mut hu: i16 = -1000;
        if in_ellipse(0.0, 0.0, 160.0, 115.0) {
            hu = -100; // subcutaneous fat
        }
        if in_ellipse(0.0, 0.0, 148.0, 103.0) {
            hu = 40; // muscle and soft tissue
        }
        if in_ellipse(-95.0, 50.0, 45.0, 40.0) || in_ellipse(95.0, 50.0, 45.0, 40.0) {
            hu = -850; // lung bases
        }
        if in_ellipse(-62.0, -12.0, 68.0, 58.0) {
            hu = 110; // liver, portal venous phase
        }
        if in_ellipse(88.0, 5.0, 28.0, 38.0) {
            hu = 120; // spleen
        }
        if in_ellipse(0.0, 78.0, 17.0, 17.0) {
            hu = 700; // vertebral body, cortex
        }
        if in_ellipse(0.0, 78.0, 12.0, 12.0) {
            hu = 250; // cancellous bone
        }
        if in_ellipse(18.0, 52.0, 12.0, 12.0) {
            hu = 160; // aorta
        }
        for l in &self.lesions {
            let d: f64 = (0..3).map(|k| (p[k] - l.center_mm[k]).powi(2)).sum();
            if d <= l.radius_mm * l.radius_mm {
                hu = l.hu;
            }
        }
        hu
    }

    /// The stored pixel values of slice `i` (row by row), with a little seeded noise.
    pub fn slice_pixels(&self, i: usize) -> Vec<u16> {
        let n = usize::from(self.matrix);
        let mut rng = SplitMix(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = Vec::with_capacity(n * n);
        for row in 0..self.matrix {
            for col in 0..self.matrix {
                let hu = i32::from(self.hu_at(self.pixel_position(i, row, col)));
                let noise = (rng.next() % 13) as i32 - 6;
                let v = (hu + HU_OFFSET + if hu > -1000 { noise } else { 0 }).clamp(0, MAX_STORED);
                out.push(u16::try_from(v).unwrap_or(0));
            }
        }
        out
    }

    pub fn sop_instance_uid(&self, i: usize) -> String {
        format!("{}.{}", self.series_instance_uid, i + 1)
    }

    /// Slice `i` as DICOM Part 10 bytes (Explicit VR Little Endian).
    pub fn instance(&self, i: usize) -> Result<Vec<u8>, SynthError> {
        self.check()?;
        if i >= self.slices {
            return Err(SynthError::Invalid(format!("slice {i} of {}", self.slices)));
        }
        let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let [x0, y0] = self.origin_mm();
        let z = self.slice_z(i);
        let p = &self.patient;
        let mut pixel_bytes = Vec::with_capacity(usize::from(self.matrix).pow(2) * 2);
        for v in self.slice_pixels(i) {
            pixel_bytes.extend_from_slice(&v.to_le_bytes());
        }
        let date = self.study_date.as_str();
        let mut elements = vec![
            text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
            text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
            text(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
            text(tags::SOP_INSTANCE_UID, VR::UI, &self.sop_instance_uid(i)),
            text(tags::STUDY_DATE, VR::DA, date),
            text(tags::SERIES_DATE, VR::DA, date),
            text(tags::ACQUISITION_DATE, VR::DA, date),
            text(tags::CONTENT_DATE, VR::DA, date),
            text(tags::STUDY_TIME, VR::TM, "101500"),
            text(tags::SERIES_TIME, VR::TM, "102000"),
            text(tags::ACQUISITION_TIME, VR::TM, "102010"),
            text(tags::CONTENT_TIME, VR::TM, "102010"),
            text(tags::ACCESSION_NUMBER, VR::SH, &p.accession_number),
            text(tags::MODALITY, VR::CS, "CT"),
            text(tags::MANUFACTURER, VR::LO, "CORELAB SYNTHETIC"),
            text(tags::INSTITUTION_NAME, VR::LO, &p.institution_name),
            text(tags::INSTITUTION_ADDRESS, VR::ST, &p.institution_address),
            text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &p.referring_physician),
            text(tags::STUDY_DESCRIPTION, VR::LO, "CT CHEST ABDOMEN PELVIS"),
            text(tags::SERIES_DESCRIPTION, VR::LO, &self.series_description),
            text(tags::MANUFACTURER_MODEL_NAME, VR::LO, "DEMO CT 64"),
            text(tags::PATIENT_NAME, VR::PN, &p.name),
            text(tags::PATIENT_ID, VR::LO, &p.patient_id),
            text(tags::PATIENT_BIRTH_DATE, VR::DA, &p.birth_date),
            text(tags::PATIENT_SEX, VR::CS, &p.sex),
            text(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"),
            text(tags::BODY_PART_EXAMINED, VR::CS, &self.body_part_examined),
            text(tags::SLICE_THICKNESS, VR::DS, &ds(self.slice_thickness_mm)),
            text(tags::KVP, VR::DS, &ds(self.kvp)),
            text(tags::PATIENT_POSITION, VR::CS, "FFS"),
            text(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_instance_uid),
            text(tags::SERIES_INSTANCE_UID, VR::UI, &self.series_instance_uid),
            text(tags::STUDY_ID, VR::SH, "1"),
            text(tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string()),
            text(tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string()),
            text(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("{}\\{}\\{}", ds(x0), ds(y0), ds(z))),
            text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"),
            text(tags::FRAME_OF_REFERENCE_UID, VR::UI, &format!("{}.0", self.series_instance_uid)),
            text(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
            text(tags::SLICE_LOCATION, VR::DS, &ds(z)),
            us(tags::SAMPLES_PER_PIXEL, 1),
            text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
            us(tags::ROWS, self.matrix),
            us(tags::COLUMNS, self.matrix),
            text(tags::PIXEL_SPACING, VR::DS, &format!("{}\\{}", ds(self.pixel_spacing_mm), ds(self.pixel_spacing_mm))),
            us(tags::BITS_ALLOCATED, 16),
            us(tags::BITS_STORED, 12),
            us(tags::HIGH_BIT, 11),
            us(tags::PIXEL_REPRESENTATION, 0),
            text(tags::WINDOW_CENTER, VR::DS, "40"),
            text(tags::WINDOW_WIDTH, VR::DS, "400"),
            text(tags::RESCALE_INTERCEPT, VR::DS, &(-HU_OFFSET).to_string()),
            text(tags::RESCALE_SLOPE, VR::DS, "1"),
            text(tags::RESCALE_TYPE, VR::LO, "HU"),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixel_bytes)),
        ];
        if let Some(s) = &self.clinical_trial_subject_id {
            elements.push(text(tags::CLINICAL_TRIAL_SUBJECT_ID, VR::LO, s));
        }
        if let Some(tp) = &self.clinical_trial_time_point_id {
            elements.push(text(tags::CLINICAL_TRIAL_TIME_POINT_ID, VR::LO, tp));
        }
        if let Some(agent) = &self.contrast_agent {
            elements.push(text(tags::CONTRAST_BOLUS_AGENT, VR::LO, agent));
            elements.push(text(tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV"));
        }
        let file = InMemDicomObject::from_element_iter(elements)
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(EXPLICIT_VR_LE)
                    .implementation_class_uid("1.2.826.0.1.3680043.10.1455.1")
                    .implementation_version_name("CORELAB_SYNTH"),
            )
            .map_err(|e| SynthError::Encode(e.to_string()))?;
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).map_err(|e| SynthError::Encode(e.to_string()))?;
        Ok(bytes)
    }

    /// Every slice, in order.
    pub fn instances(&self) -> Result<Vec<Vec<u8>>, SynthError> {
        self.check()?;
        (0..self.slices).map(|i| self.instance(i)).collect()
    }
}

/// A decimal string (DS) without float noise: at most 4 decimals, no trailing zeros.
fn ds(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// SplitMix64: a tiny seeded generator for the image noise (deterministic, no dependency).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::deid::read_object;

    fn patient() -> FakePatient {
        FakePatient {
            name: "ZZDEMO^FAKE PATIENT".into(),
            patient_id: "FAKE-MRN-0001".into(),
            birth_date: "19600101".into(),
            sex: "F".into(),
            accession_number: "FAKEACC0001".into(),
            referring_physician: "ZZDEMO^REFERRER".into(),
            institution_name: "Demo Hospital (synthetic)".into(),
            institution_address: "1 Nowhere Street, Fakeville".into(),
        }
    }

    fn series() -> CtSeries {
        let mut s = CtSeries::portal_venous(patient(), "20261001", "2.25.1234", "2.25.1234.2");
        s.lesions = vec![
            Lesion { center_mm: [-62.0, -12.0, 0.0], radius_mm: 15.0, hu: 45 },
            Lesion { center_mm: [95.0, 50.0, 2.5], radius_mm: 10.5, hu: 35 },
        ];
        s
    }

    fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
        obj.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    }

    fn nums(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
        text(obj, tag).split('\\').map(|v| v.trim().parse().unwrap()).collect()
    }

    #[test]
    fn slices_are_contiguous_axial_and_centred() {
        let s = series();
        let files = s.instances().unwrap();
        assert_eq!(files.len(), 10);
        let mut zs = Vec::new();
        for (i, bytes) in files.iter().enumerate() {
            let obj = read_object(bytes).unwrap();
            assert_eq!(text(&obj, tags::INSTANCE_NUMBER), (i + 1).to_string());
            assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), format!("2.25.1234.2.{}", i + 1));
            assert_eq!(nums(&obj, tags::IMAGE_ORIENTATION_PATIENT), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
            assert_eq!(nums(&obj, tags::PIXEL_SPACING), vec![0.7, 0.7]);
            assert_eq!(nums(&obj, tags::SLICE_THICKNESS), vec![5.0]);
            assert_eq!(text(&obj, tags::ROWS), "512");
            assert_eq!(text(&obj, tags::COLUMNS), "512");
            let pos = nums(&obj, tags::IMAGE_POSITION_PATIENT);
            // The image is centred on the patient axis: 511 pixel steps of 0.7 mm across.
            assert!((pos[0] + 178.85).abs() < 1e-9 && (pos[1] + 178.85).abs() < 1e-9, "{pos:?}");
            assert_eq!(nums(&obj, tags::SLICE_LOCATION), vec![pos[2]]);
            zs.push(pos[2]);
        }
        // Centre-to-centre spacing equals the thickness (no gap, no overlap), symmetric about 0.
        for w in zs.windows(2) {
            assert!((w[0] - w[1] - 5.0).abs() < 1e-9, "{zs:?}");
        }
        assert!((zs[0] + zs[9]).abs() < 1e-9);
        assert_eq!(zs[0], 22.5);
    }

    #[test]
    fn header_carries_qc_facts_trial_keys_and_the_fake_identity() {
        let mut s = series();
        s.clinical_trial_subject_id = Some("101-001".into());
        s.clinical_trial_time_point_id = Some("BL".into());
        let obj = read_object(&s.instance(0).unwrap()).unwrap();
        assert_eq!(obj.meta().media_storage_sop_class_uid().trim_end_matches('\0'), CT_IMAGE_STORAGE);
        assert_eq!(text(&obj, tags::MODALITY), "CT");
        assert_eq!(text(&obj, tags::KVP), "120");
        assert_eq!(text(&obj, tags::CONTRAST_BOLUS_AGENT), "IOHEXOL 350");
        assert_eq!(text(&obj, tags::CLINICAL_TRIAL_SUBJECT_ID), "101-001");
        assert_eq!(text(&obj, tags::CLINICAL_TRIAL_TIME_POINT_ID), "BL");
        assert_eq!(text(&obj, tags::PATIENT_NAME), "ZZDEMO^FAKE PATIENT");
        assert_eq!(text(&obj, tags::PATIENT_ID), "FAKE-MRN-0001");
        assert_eq!(text(&obj, tags::ACQUISITION_DATE), "20261001");
        // The pixels decode with the server's decoder.
        assert_eq!(crate::facts::check_decodable(&obj), corelab_domain::qc::PixelDecode::Ok);
        let mut plain = series();
        plain.contrast_agent = None;
        let obj = read_object(&plain.instance(0).unwrap()).unwrap();
        assert!(obj.element(tags::CONTRAST_BOLUS_AGENT).is_err());
        assert!(obj.element(tags::CLINICAL_TRIAL_SUBJECT_ID).is_err());
    }

    /// Measures a lesion as a reader would: the run of lesion-valued pixels along the image row
    /// through its centre, on the slice nearest its centre.
    fn measured_diameter_mm(s: &CtSeries, lesion: &Lesion, threshold: (i32, i32)) -> f64 {
        let i = (0..s.slices)
            .min_by(|a, b| {
                (s.slice_z(*a) - lesion.center_mm[2]).abs().total_cmp(&(s.slice_z(*b) - lesion.center_mm[2]).abs())
            })
            .unwrap();
        let obj = read_object(&s.instance(i).unwrap()).unwrap();
        let raw = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().to_vec();
        let n = usize::from(s.matrix);
        let [x0, y0] = s.origin_mm();
        let row = ((lesion.center_mm[1] - y0) / s.pixel_spacing_mm).round() as usize;
        let count = (0..n)
            .filter(|col| {
                let at = (row * n + col) * 2;
                let hu = i32::from(u16::from_le_bytes([raw[at], raw[at + 1]])) - HU_OFFSET;
                let x = x0 + *col as f64 * s.pixel_spacing_mm;
                (x - lesion.center_mm[0]).abs() <= lesion.radius_mm + 5.0 && hu >= threshold.0 && hu <= threshold.1
            })
            .count();
        count as f64 * s.pixel_spacing_mm
    }

    #[test]
    fn lesions_measure_twice_their_radius_on_their_central_slice() {
        let s = series();
        // Liver lesion (45 HU) inside enhancing liver (110 HU): counted between 20 and 77 HU.
        let liver = measured_diameter_mm(&s, &s.lesions[0], (20, 77));
        assert!((liver - 30.0).abs() <= 1.4, "liver lesion measures {liver} mm");
        // Lung nodule (35 HU) in aerated lung (-850 HU): counted between -200 and 100 HU. Its
        // centre sits at z = 2.5 mm, exactly on slice 4's centre.
        let lung = measured_diameter_mm(&s, &s.lesions[1], (-200, 100));
        assert!((lung - 21.0).abs() <= 1.4, "lung nodule measures {lung} mm");
        // A larger radius gives a proportionally larger lesion: growth is visible between visits.
        let mut grown = s.clone();
        grown.lesions[0].radius_mm = 19.0;
        let bigger = measured_diameter_mm(&grown, &grown.lesions[0], (20, 77));
        assert!((bigger - 38.0).abs() <= 1.4, "{bigger}");
    }

    #[test]
    fn off_centre_slices_cut_a_smaller_circle_and_anatomy_has_ct_values() {
        let s = series();
        let l = &s.lesions[0];
        // 10 mm above the centre, the sphere's section has radius sqrt(15^2 - 10^2) ~ 11.2 mm.
        let inside = [l.center_mm[0] + 10.5, l.center_mm[1], l.center_mm[2] + 10.0];
        let outside = [l.center_mm[0] + 11.8, l.center_mm[1], l.center_mm[2] + 10.0];
        assert_eq!(s.hu_at(inside), 45);
        assert_eq!(s.hu_at(outside), 110);
        assert_eq!(s.hu_at([0.0, -170.0, 0.0]), -1000, "air outside the body");
        assert_eq!(s.hu_at([0.0, 78.0, 0.0]), 250, "cancellous bone of the vertebra");
        assert_eq!(s.hu_at([-95.0, 70.0, 0.0]), -850, "right lung base");
        let px = s.slice_pixels(0);
        assert_eq!(px.len(), 512 * 512);
        assert!(px.iter().all(|v| i32::from(*v) <= MAX_STORED));
        assert_eq!(s.slice_pixels(3), s.slice_pixels(3), "deterministic");
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        let mut s = series();
        s.study_date = "2026-10-01".into();
        assert!(s.instance(0).unwrap_err().to_string().contains("YYYYMMDD"));
        let mut s = series();
        s.slices = 0;
        assert!(s.instances().is_err());
        assert!(series().instance(10).is_err());
        assert_eq!(ds(0.7 * 3.0), "2.1");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(-178.85), "-178.85");
    }
}
