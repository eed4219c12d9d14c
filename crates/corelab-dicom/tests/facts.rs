//! QC facts from dicom-rs objects: odd values, enhanced multi-frame, what de-identification leaves,
//! pixel decoding, and (with python3 + pydicom + numpy) the synthetic corpus end to end through
//! de-identification and the QC engine.

// Test helpers outside #[test] functions: clippy.toml's test allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{bench_dir, ctx, files_under, python_with_pydicom, run};
use corelab_dicom::deid::{deidentify_object, read_object};
use corelab_dicom::facts::{
    OriginalFacts, check_decodable, instance_facts, instance_facts_with_report, original_facts,
};
use corelab_domain::charter::{Date, VisitCalendar, parse_charter};
use corelab_domain::deid_profile::{DateHandling, DeidProfile};
use corelab_domain::qc::{
    BurnedInFlag, PixelDecode, PixelSpacing, Rule, Severity, Verdict, VisitFacts, VisitWindow, evaluate_visit,
};
use dicom_core::value::{DataSetSequence, PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

fn s(tag: Tag, vr: VR, v: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn multi(tag: Tag, vr: VR, values: &[&str]) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Strs(values.iter().map(|v| v.to_string()).collect()))
}

fn empty(tag: Tag, vr: VR) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

fn sq(tag: Tag, items: Vec<Vec<InMemElement>>) -> InMemElement {
    let items: Vec<InMemDicomObject> = items.into_iter().map(InMemDicomObject::from_element_iter).collect();
    DataElement::new(tag, VR::SQ, Value::from(DataSetSequence::new(items, Length::UNDEFINED)))
}

fn date(text: &str) -> Date {
    Date::parse_iso(text).unwrap()
}

/// A CT header as a scanner might write it, with odd values.
fn odd_ct() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        s(Tag(0x0008, 0x0008), VR::CS, "original\\ PRIMARY \\AXIAL"),
        s(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.2\0"),
        s(Tag(0x0008, 0x0018), VR::UI, "2.25.1234"),
        s(Tag(0x0008, 0x0020), VR::DA, "20260302"),
        s(Tag(0x0008, 0x0021), VR::DA, "2026.03.02"),
        s(Tag(0x0008, 0x002A), VR::DT, "20260303101500.5"),
        s(Tag(0x0008, 0x0032), VR::TM, "10:15:30"),
        s(Tag(0x0008, 0x0060), VR::CS, "ct "),
        s(Tag(0x0008, 0x0070), VR::LO, "SIEMENS "),
        s(Tag(0x0008, 0x1010), VR::SH, "ANONYMIZED"),
        s(Tag(0x0008, 0x103E), VR::LO, " CAP PORTAL VENOUS 5mm "),
        s(Tag(0x0008, 0x1090), VR::LO, "SOMATOM Force"),
        s(Tag(0x0012, 0x0062), VR::CS, "YES"),
        sq(
            Tag(0x0012, 0x0064),
            vec![
                vec![s(Tag(0x0008, 0x0100), VR::SH, "113100"), s(Tag(0x0008, 0x0102), VR::SH, "DCM")],
                vec![s(Tag(0x0008, 0x0100), VR::SH, "113107"), s(Tag(0x0008, 0x0102), VR::SH, "DCM")],
            ],
        ),
        s(Tag(0x0012, 0x0071), VR::LO, "CT_CAP_PV"),
        empty(Tag(0x0018, 0x0010), VR::LO),
        s(Tag(0x0018, 0x0015), VR::CS, "chest_to_pelvis"),
        multi(Tag(0x0018, 0x0050), VR::DS, &[" 5.0 ", "5.0"]),
        s(Tag(0x0018, 0x0060), VR::DS, "120 "),
        s(Tag(0x0018, 0x0088), VR::DS, "5,0"),
        s(Tag(0x0018, 0x1040), VR::LO, "IV"),
        s(Tag(0x0018, 0x1041), VR::DS, "80"),
        s(Tag(0x0018, 0x1042), VR::TM, "101420.25"),
        s(Tag(0x0020, 0x000E), VR::UI, "2.25.99"),
        s(Tag(0x0020, 0x0011), VR::IS, " 2"),
        s(Tag(0x0020, 0x0013), VR::IS, "12 "),
        multi(Tag(0x0020, 0x0032), VR::DS, &["-200", "-180.5", "-97.5 "]),
        multi(Tag(0x0020, 0x0037), VR::DS, &["1", "0", "0", "0", "1", "0"]),
        DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(512_u16)),
        DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(512_u16)),
        s(Tag(0x0028, 0x0030), VR::DS, "0.781"),
        s(Tag(0x0028, 0x0301), VR::CS, "YES"),
    ])
}

#[test]
fn odd_values_read_leniently() {
    let f = instance_facts(&odd_ct());
    assert_eq!(f.sop_instance_uid, "2.25.1234");
    assert_eq!(f.series_instance_uid, "2.25.99");
    assert_eq!(f.sop_class_uid.as_deref(), Some("1.2.840.10008.5.1.4.1.1.2"));
    assert_eq!(f.image_type, ["ORIGINAL", "PRIMARY", "AXIAL"]);
    assert_eq!(f.modality.as_deref(), Some("CT"));
    assert_eq!(f.body_part_examined.as_deref(), Some("CHEST_TO_PELVIS"));
    assert_eq!(f.series_description.as_deref(), Some("CAP PORTAL VENOUS 5mm"));
    assert_eq!(f.clinical_trial_series_id.as_deref(), Some("CT_CAP_PV"));
    assert_eq!(f.manufacturer.as_deref(), Some("SIEMENS"));
    assert_eq!(f.station_name, None, "the de-identification dummy is no station name");
    assert_eq!(f.slice_thickness_mm, Some(5.0), "DS with spaces, two values where one belongs");
    assert_eq!(f.spacing_between_slices_mm, Some(5.0), "decimal comma");
    assert_eq!(f.kvp, Some(120.0));
    assert_eq!(
        f.pixel_spacing_mm,
        Some(PixelSpacing { row_mm: 0.781, column_mm: 0.781 }),
        "one value where two belong"
    );
    assert_eq!(f.rows, Some(512));
    assert_eq!(f.image_position_patient_mm, Some([-200.0, -180.5, -97.5]));
    assert_eq!(f.image_orientation_patient, Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
    assert_eq!(f.instance_number, Some(12));
    assert_eq!(f.series_number, Some(2));
    assert_eq!(f.contrast_agent.as_deref(), Some(""), "present but emptied");
    assert_eq!(f.contrast_route.as_deref(), Some("IV"));
    assert_eq!(f.contrast_volume_ml, Some(80.0));
    assert_eq!(f.contrast_start_time_s, Some(10.0 * 3600.0 + 14.0 * 60.0 + 20.25));
    assert_eq!(f.acquisition_time_s, Some(10.0 * 3600.0 + 15.0 * 60.0 + 30.0), "old colon form");
    assert_eq!(f.header_dates.study, Some(date("2026-03-02")));
    assert_eq!(f.header_dates.series, Some(date("2026-03-02")), "old dotted form");
    assert_eq!(f.header_dates.acquisition, Some(date("2026-03-03")), "from Acquisition DateTime");
    assert_eq!(f.acquisition_date, None, "the real date comes from the original header");
    assert!(f.patient_identity_removed);
    assert_eq!(f.deidentification_method_codes, ["113100", "113107"]);
    assert_eq!(f.burned_in_flags, [BurnedInFlag::AnnotationYes]);
    assert_eq!(f.number_of_frames, None);
}

#[test]
fn broken_values_are_missing_not_errors() {
    let obj = InMemDicomObject::from_element_iter([
        s(Tag(0x0018, 0x0050), VR::DS, "thin"),
        multi(Tag(0x0020, 0x0032), VR::DS, &["1", "2"]),
        multi(Tag(0x0020, 0x0037), VR::DS, &["1", "0", "0", "0", "1"]),
        multi(Tag(0x0028, 0x0030), VR::DS, &["-1", "0.5"]),
        s(Tag(0x0020, 0x0013), VR::IS, "12.5"),
        s(Tag(0x0008, 0x0032), VR::TM, "25"),
        s(Tag(0x0008, 0x0020), VR::DA, "2026-02-30"),
        s(Tag(0x0018, 0x0087), VR::DS, "NaN"),
        s(Tag(0x0012, 0x0062), VR::CS, "NO"),
        s(Tag(0x0028, 0x0008), VR::IS, "-3"),
    ]);
    let f = instance_facts(&obj);
    assert_eq!(f.slice_thickness_mm, None);
    assert_eq!(f.image_position_patient_mm, None, "two of three values");
    assert_eq!(f.image_orientation_patient, None, "five of six values");
    assert_eq!(f.pixel_spacing_mm, None, "negative spacing");
    assert_eq!(f.instance_number, None);
    assert_eq!(f.acquisition_time_s, None);
    assert_eq!(f.header_dates.study, None);
    assert_eq!(f.magnetic_field_strength_t, None);
    assert_eq!(f.number_of_frames, None);
    assert!(!f.patient_identity_removed);
    assert_eq!(f.contrast_agent, None, "absent, not empty");
    assert_eq!(f.sop_instance_uid, "");
    let nothing = instance_facts(&InMemDicomObject::new_empty());
    assert_eq!(nothing.modality, None);
    assert!(nothing.image_type.is_empty() && nothing.deidentification_method_codes.is_empty());
}

#[test]
fn enhanced_multi_frame_reads_shared_functional_groups() {
    let obj = InMemDicomObject::from_element_iter([
        s(Tag(0x0008, 0x0060), VR::CS, "MR"),
        DataElement::new(Tag(0x0018, 0x0087), VR::DS, PrimitiveValue::from("2.89362")),
        s(Tag(0x0028, 0x0008), VR::IS, "176"),
        sq(
            Tag(0x5200, 0x9229),
            vec![vec![
                sq(
                    Tag(0x0028, 0x9110),
                    vec![vec![
                        s(Tag(0x0018, 0x0050), VR::DS, "1.0"),
                        multi(Tag(0x0028, 0x0030), VR::DS, &["0.9", "0.8"]),
                    ]],
                ),
                sq(
                    Tag(0x0020, 0x9116),
                    vec![vec![multi(Tag(0x0020, 0x0037), VR::DS, &["0", "1", "0", "0", "0", "-1"])]],
                ),
            ]],
        ),
        DataElement::new(Tag(0x0018, 0x9087), VR::FD, PrimitiveValue::from(1000.0_f64)),
    ]);
    let f = instance_facts(&obj);
    assert_eq!(f.number_of_frames, Some(176));
    assert_eq!(f.slice_thickness_mm, Some(1.0));
    assert_eq!(f.pixel_spacing_mm, Some(PixelSpacing { row_mm: 0.9, column_mm: 0.8 }));
    assert_eq!(f.image_orientation_patient, Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]));
    assert_eq!(f.magnetic_field_strength_t, Some(2.89362));
    assert_eq!(f.diffusion_b_value_s_per_mm2, Some(1000.0), "binary FD value");
}

fn ct_original() -> Vec<InMemElement> {
    vec![
        s(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
        s(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        s(Tag(0x0008, 0x0018), VR::UI, "1.2.826.0.1.3680043.8.498.100"),
        s(Tag(0x0008, 0x0020), VR::DA, "20260301"),
        s(Tag(0x0008, 0x0022), VR::DA, "20260302"),
        s(Tag(0x0008, 0x0060), VR::CS, "CT"),
        s(Tag(0x0008, 0x0070), VR::LO, "SIEMENS"),
        s(Tag(0x0008, 0x1010), VR::SH, "CT_ROOM_1"),
        s(Tag(0x0008, 0x103E), VR::LO, "CAP PORTAL VENOUS 5mm"),
        s(Tag(0x0010, 0x0010), VR::PN, "DOE^JANE"),
        s(Tag(0x0010, 0x0020), VR::LO, "MRN0001"),
        s(Tag(0x0018, 0x0010), VR::LO, "OMNIPAQUE 350"),
        s(Tag(0x0018, 0x0050), VR::DS, "5.0"),
        s(Tag(0x0018, 0x1000), VR::LO, "SN4711"),
        s(Tag(0x0018, 0x1030), VR::LO, "ONCO CAP"),
        s(Tag(0x0018, 0x1040), VR::LO, "IV"),
        s(Tag(0x0020, 0x000D), VR::UI, "1.2.826.0.1.3680043.8.498.200"),
        s(Tag(0x0020, 0x000E), VR::UI, "1.2.826.0.1.3680043.8.498.300"),
        DataElement::new(Tag(0x0028, 0x0002), VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(4_u16)),
        DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(4_u16)),
        DataElement::new(Tag(0x0028, 0x0100), VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(Tag(0x0028, 0x0101), VR::US, PrimitiveValue::from(12_u16)),
        DataElement::new(Tag(0x0028, 0x0102), VR::US, PrimitiveValue::from(11_u16)),
        DataElement::new(Tag(0x0028, 0x0103), VR::US, PrimitiveValue::from(0_u16)),
        s(Tag(0x0028, 0x0004), VR::CS, "MONOCHROME2"),
        DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16((0..16u16).collect())),
    ]
}

fn file(elems: Vec<InMemElement>, ts: &str) -> FileDicomObject<InMemDicomObject> {
    InMemDicomObject::from_element_iter(elems)
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .implementation_class_uid("1.2.3.4")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid("1.2.826.0.1.3680043.8.498.100"),
        )
        .unwrap()
}

#[test]
fn what_de_identification_leaves_and_what_the_original_adds() {
    // Basic Profile: descriptors, station, serial and dates go; the agent is emptied.
    let original = file(ct_original(), "1.2.840.10008.1.2.1");
    let pre = original_facts(&original);
    assert_eq!(pre, OriginalFacts { acquisition_date: Some(date("2026-03-02")), contrast_agent_recorded: Some(true) });
    let (deid, report) = deidentify_object(original, &ctx(DeidProfile::default(), "101-001", None)).unwrap();
    let mut f = instance_facts_with_report(&deid, &report);
    assert_eq!(f.series_description, None);
    assert_eq!(f.protocol_name, None);
    assert_eq!(f.station_name, None);
    assert_eq!(f.device_serial_number, None);
    assert_eq!(f.contrast_agent.as_deref(), Some(""), "Z: emptied, still present");
    assert_eq!(f.contrast_route.as_deref(), Some("IV"), "not in Table E.1-1: kept");
    assert_eq!(f.header_dates.acquisition, None);
    assert_eq!(f.manufacturer.as_deref(), Some("SIEMENS"));
    assert_eq!(f.slice_thickness_mm, Some(5.0));
    assert!(f.patient_identity_removed);
    assert_eq!(f.deidentification_method_codes, ["113100"]);
    assert!(f.burned_in_flags.is_empty());
    assert_ne!(f.sop_instance_uid, "1.2.826.0.1.3680043.8.498.100", "remapped");
    pre.apply(&mut f);
    assert_eq!(f.acquisition_date, Some(date("2026-03-02")));
    assert_eq!(f.original_contrast_agent_recorded, Some(true));

    // Shifted dates, device identity and allow-listed descriptors retained.
    let profile = DeidProfile {
        dates: DateHandling::Shift,
        max_shift_days: 100,
        retain_device_identity: true,
        clean_descriptors: true,
        descriptor_allow_list: vec!["*PORTAL*".into()],
        ..DeidProfile::default()
    };
    let (deid, _) =
        deidentify_object(file(ct_original(), "1.2.840.10008.1.2.1"), &ctx(profile, "101-001", Some(-30))).unwrap();
    let f = instance_facts(&deid);
    assert_eq!(f.series_description.as_deref(), Some("CAP PORTAL VENOUS 5mm"));
    assert_eq!(f.protocol_name, None, "not on the allow-list");
    assert_eq!(f.station_name.as_deref(), Some("CT_ROOM_1"));
    assert_eq!(f.device_serial_number.as_deref(), Some("SN4711"));
    assert_eq!(f.header_dates.acquisition, Some(date("2026-01-31")), "shifted by -30 days");
    assert_eq!(f.deidentification_method_codes, ["113100", "113105", "113107", "113109"]);

    // Original agent saying none, or absent.
    let mut none = ct_original();
    none.retain(|e| e.header().tag != Tag(0x0018, 0x0010));
    assert_eq!(original_facts(&InMemDicomObject::from_element_iter(none.clone())).contrast_agent_recorded, None);
    none.push(s(Tag(0x0018, 0x0010), VR::LO, "none"));
    assert_eq!(original_facts(&InMemDicomObject::from_element_iter(none)).contrast_agent_recorded, Some(false));
}

#[test]
fn report_flags_become_facts() {
    let mut us = ct_original();
    us.retain(|e| e.header().tag != Tag(0x0008, 0x0060));
    us.push(s(Tag(0x0008, 0x0060), VR::CS, "US"));
    let (deid, report) =
        deidentify_object(file(us, "1.2.840.10008.1.2.1"), &ctx(DeidProfile::default(), "101-001", None)).unwrap();
    let f = instance_facts_with_report(&deid, &report);
    assert_eq!(f.burned_in_flags, [BurnedInFlag::AnnotationUnknown { reason: "modality US".into() }]);
}

fn pixel_file(ts: &str, fragment: Vec<u8>) -> FileDicomObject<InMemDicomObject> {
    let mut elems = ct_original();
    elems.retain(|e| e.header().tag != Tag(0x7FE0, 0x0010));
    elems.push(DataElement::new(
        Tag(0x7FE0, 0x0010),
        VR::OB,
        Value::PixelSequence(PixelFragmentSequence::new(vec![], vec![fragment])),
    ));
    file(elems, ts)
}

#[test]
fn decode_outcomes() {
    assert_eq!(check_decodable(&file(ct_original(), "1.2.840.10008.1.2.1")), PixelDecode::Ok);
    assert_eq!(check_decodable(&file(ct_original(), "1.2.840.10008.1.2")), PixelDecode::Ok, "implicit VR");

    let mut short = ct_original();
    short.retain(|e| e.header().tag != Tag(0x7FE0, 0x0010));
    short.push(DataElement::new(Tag(0x7FE0, 0x0010), VR::OW, PrimitiveValue::U16((0..5u16).collect())));
    assert!(
        matches!(check_decodable(&file(short, "1.2.840.10008.1.2.1")), PixelDecode::Failed { .. }),
        "native pixel data shorter than 4 x 4 x 16 bits"
    );

    let garbage = vec![0x12u8, 0x34, 0x56, 0x78, 0x9A, 0xBC];
    assert_eq!(
        check_decodable(&pixel_file("1.2.840.10008.1.2.4.80", garbage.clone())),
        PixelDecode::Unsupported { message: "JPEG-LS decoding not available on this server".into() }
    );
    assert_eq!(
        check_decodable(&pixel_file("1.2.840.10008.1.2.4.81", garbage.clone())),
        PixelDecode::Unsupported { message: "JPEG-LS decoding not available on this server".into() }
    );
    // (On these bytes dicom-rs 0.10's RLE reader panics; check_decodable reports a failure.)
    for (ts, what) in [
        ("1.2.840.10008.1.2.4.90", "JPEG 2000"),
        ("1.2.840.10008.1.2.4.50", "JPEG baseline"),
        ("1.2.840.10008.1.2.5", "RLE"),
    ] {
        let outcome = check_decodable(&pixel_file(ts, garbage.clone()));
        assert!(
            matches!(outcome, PixelDecode::Failed { .. }),
            "{what}: a decoder is present and refuses garbage: {outcome:?}"
        );
    }

    let mut no_pixels = ct_original();
    no_pixels.retain(|e| e.header().tag != Tag(0x7FE0, 0x0010));
    assert_eq!(
        check_decodable(&file(no_pixels, "1.2.840.10008.1.2.1")),
        PixelDecode::Failed { message: "the instance has no Pixel Data".into() }
    );
}

/// pydicom's bundled test files in each compressed syntax: JPEG baseline/extended/lossless,
/// JPEG 2000 and RLE decode; JPEG-LS says it is not available.
#[test]
fn pydicom_compressed_files_decode_or_say_why_not() {
    let Some((py, bench)) = python_with_pydicom("pydicom_compressed_files_decode") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("variety");
    let o = run(Command::new(&py).arg(bench.join("gen_corpus.py")).arg("testdata").arg(&dir));
    assert!(o.status.success(), "gen_corpus.py testdata failed: {}", String::from_utf8_lossy(&o.stderr));
    let open = |name: &str| {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        read_object(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    for name in [
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_rle_2frame.dcm",
    ] {
        assert_eq!(check_decodable(&open(name)), PixelDecode::Ok, "{name}");
    }
    // jpeg-decoder has no 12-bit JPEG: a warning-level outcome naming the feature.
    match check_decodable(&open("JPGExtended.dcm")) {
        PixelDecode::Unsupported { message } => {
            assert!(
                message.contains("decoding not available on this server") && message.contains("SamplePrecision(12)"),
                "{message}"
            )
        }
        other => panic!("JPGExtended.dcm: {other:?}"),
    }
    for name in ["MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm"] {
        assert_eq!(
            check_decodable(&open(name)),
            PixelDecode::Unsupported { message: "JPEG-LS decoding not available on this server".into() },
            "{name}"
        );
    }
}

const CORPUS_CHARTER: &str = r#"
format = 1
version = "1.0"

[trial]
sponsor = "ACME ONCOLOGY"
protocol_id = "ACME-ONC-301"
protocol_name = "Synthetic corpus"
therapeutic_area = "oncology"

[trial.blinding]
readers_blinded_to_dates = true
timepoint_labels = "pseudo"
sponsor_blinded = true

[dimse]
called_ae_titles = ["ACME301"]

[[sites]]
id = "SITE01"
name = "Site one"
country = "GB"

[[sites]]
id = "SITE02"
name = "Site two"
country = "US"

[subjects]
id_pattern = "{site}-{nnnn}"

[schedule]
anchor = "randomization"
unscheduled_visits_allowed = false

[[visits]]
id = "V1"
label = "Baseline"
baseline = true
window = { minus_days = 0, plus_days = 0 }
imaging = ["CT_CAP"]

[[visits]]
id = "V2"
label = "Week 8"
day = 56
window = { minus_days = 21, plus_days = 21 }
imaging = ["CT_CAP"]

[[imaging]]
id = "CT_CAP"
modality = "CT"
body_region = "chest, abdomen and pelvis"

[[imaging.series]]
id = "CT_AX"
description = "Axial CT, standard kernel"
identify = { series_description = ["*STD*"], image_type = ["ORIGINAL", "AXIAL"] }

[imaging.series.constraints]
slice_thickness_mm = { max = 2.5 }
slice_gap_mm = { max = 0.0 }
pixel_spacing_mm = { max = 1.0 }
matrix_min = 256
kvp = { min = 80, max = 140 }
same_scanner_as_baseline = true
baseline_tolerance = { slice_thickness_mm = 0.0 }

[deidentification]
dates = "shift"
max_shift_days = 365
clean_descriptors = true
descriptor_allow_list = ["*STD*"]

[qc]
stages = "automated"

[reads]
criteria = ["RECIST1.1"]
readers_per_case = 1
paradigm = "sequential_locked"
sd_min_days = 42

[reads.reader_qualifications]
training_current = true
"#;

/// The synthetic corpus (2 subjects x 2 visits x 12 CT slices) through de-identification, facts and
/// QC: every visit passes; two slices taken out of one series are found as two missing slices.
/// The corpus moves follow-ups by up to 3 weeks and draws a new device serial per visit, so the
/// charter's window is +/- 21 days and device identity is not retained (QC then compares
/// manufacturer and model).
#[test]
fn synthetic_corpus_through_deid_facts_and_qc() {
    let Some((py, bench)) = python_with_pydicom("synthetic_corpus_through_deid_facts_and_qc") else {
        return;
    };
    assert!(bench_dir().is_some());
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let o = run(Command::new(&py)
        .arg(bench.join("gen_corpus.py"))
        .arg("synthetic")
        .arg(&corpus)
        .args(["--preset", "small", "--seed", "7"]));
    assert!(o.status.success(), "gen_corpus.py failed: {}", String::from_utf8_lossy(&o.stderr));
    let charter = parse_charter(CORPUS_CHARTER).unwrap();
    let profile = charter.deidentification.clone();

    // (subject, time point) -> facts; subject -> baseline (V1) date.
    let mut visits: BTreeMap<(String, String), Vec<corelab_domain::qc::InstanceFacts>> = BTreeMap::new();
    let files = files_under(&corpus);
    assert_eq!(files.len(), 2 * 2 * 12);
    for path in &files {
        let original = read_object(&std::fs::read(path).unwrap()).unwrap();
        let keys = corelab_dicom::deid::match_keys_of(&original);
        let subject = keys.clinical_trial_subject_id.clone().unwrap();
        let tp = keys.clinical_trial_time_point_id.clone().unwrap();
        let pre = original_facts(&original);
        let mut ctx = ctx(profile.clone(), &subject, Some(-17));
        ctx.site_id = keys.clinical_trial_site_id.clone().unwrap();
        ctx.time_point_id = Some(tp.clone());
        let (deid, report) = deidentify_object(original, &ctx).unwrap();
        assert_eq!(check_decodable(&deid), PixelDecode::Ok, "{}", path.display());
        let mut f = instance_facts_with_report(&deid, &report);
        pre.apply(&mut f);
        assert_eq!(f.modality.as_deref(), Some("CT"));
        let description = f.series_description.clone().unwrap_or_default();
        assert!(description.starts_with("AX 1.25mm STD"), "kept by the allow-list: {description}");
        assert_eq!(f.slice_thickness_mm, Some(1.25));
        assert_eq!(f.spacing_between_slices_mm, Some(1.25));
        assert_eq!((f.rows, f.columns), (Some(256), Some(256)));
        assert_eq!(f.kvp, Some(120.0));
        assert!(
            f.image_position_patient_mm.is_some()
                && f.image_orientation_patient == Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        );
        assert!(f.station_name.is_none() && f.device_serial_number.is_none(), "device identity not retained");
        assert!(f.manufacturer.is_some() && f.manufacturer_model_name.is_some());
        assert!(f.patient_identity_removed && f.deidentification_method_codes.contains(&"113100".to_string()));
        let real = f.acquisition_date.unwrap();
        assert_eq!(
            f.header_dates.acquisition,
            Some(real.add_days(-17)),
            "stored date shifted, real one from the original"
        );
        visits.entry((subject, tp)).or_default().push(f);
    }
    assert_eq!(visits.len(), 4);

    let subjects: Vec<String> =
        visits.keys().map(|(s, _)| s.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for subject in subjects {
        let facts_of = |tp: &str| VisitFacts::from_instances(visits[&(subject.clone(), tp.to_string())].clone());
        let mut baseline = facts_of("V1");
        let mut follow_up = facts_of("V2");
        for v in [&mut baseline, &mut follow_up] {
            assert_eq!(v.series.len(), 1);
            v.series[0].pixel_decode = PixelDecode::Ok;
        }
        // The corpus randomises at the baseline scan.
        let anchor = baseline.series[0].instances[0].acquisition_date.unwrap();
        let calendar = VisitCalendar::new(&charter, anchor);
        let w = |id: &str| calendar.visit(id).map(VisitWindow::from);
        let bl = evaluate_visit(&charter, "V1", w("V1"), &baseline, None);
        assert_eq!(bl.verdict, Verdict::Pass, "{subject} V1: {:#?}", bl.findings);
        let fu = evaluate_visit(&charter, "V2", w("V2"), &follow_up, Some(&baseline));
        assert_eq!(fu.verdict, Verdict::Pass, "{subject} V2: {:#?}", fu.findings);

        // Take two slices out of the middle: the positions show two missing slices.
        let series = &mut follow_up.series[0].instances;
        series.sort_by_key(|i| i.instance_number);
        series.drain(5..7);
        let fu = evaluate_visit(&charter, "V2", w("V2"), &follow_up, Some(&baseline));
        let found: Vec<(Rule, Severity)> = fu.findings.iter().map(|f| (f.rule, f.severity)).collect();
        assert_eq!(found, [(Rule::MissingSlices, Severity::Error)], "{subject}: {:#?}", fu.findings);
        assert!(
            fu.findings[0].message.contains("is missing 2 slices where the slices are 1.25 mm apart"),
            "{}",
            fu.findings[0].message
        );
    }
}
