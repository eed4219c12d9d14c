//! Builders for QC tests: clean facts of a CT and an MR series that pass every rule, to be edited by
//! one rule's cases (test helpers: unwrap/expect/panic are fine here).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use corelab_domain::charter::{Charter, Date, parse_charter};
use corelab_domain::qc::{InstanceFacts, PixelDecode, PixelSpacing, SeriesFacts};

pub const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
pub const SAGITTAL: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];

pub fn date(text: &str) -> Date {
    Date::parse_iso(text).unwrap()
}

pub fn charter(text: &str) -> Charter {
    match parse_charter(text) {
        Ok(c) => c,
        Err(problems) => panic!("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

/// Fields every de-identified instance of a clean series shares.
fn marked(series_uid: &str, k: usize, day: Date) -> InstanceFacts {
    InstanceFacts {
        sop_instance_uid: format!("{series_uid}.{}", k + 1),
        series_instance_uid: series_uid.to_string(),
        instance_number: Some(k as i64 + 1),
        acquisition_date: Some(day),
        patient_identity_removed: true,
        deidentification_method_codes: vec!["113100".into(), "113107".into(), "113109".into()],
        ..InstanceFacts::default()
    }
}

/// An axial contrast CT series: `n` slices of 5 mm every 5 mm, 0.78 mm pixels, 512 x 512, 120 kV,
/// iohexol IV, acquired 70 s after injection (portal venous), on a Siemens Force "CT1".
pub fn ct_series(uid: &str, description: &str, n: usize, day: Date) -> SeriesFacts {
    let instances = (0..n)
        .map(|k| InstanceFacts {
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            series_number: Some(2),
            modality: Some("CT".into()),
            body_part_examined: Some("CHEST".into()),
            series_description: Some(description.into()),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
            manufacturer: Some("SIEMENS".into()),
            manufacturer_model_name: Some("SOMATOM Force".into()),
            station_name: Some("CT1".into()),
            device_serial_number: Some("1001".into()),
            slice_thickness_mm: Some(5.0),
            spacing_between_slices_mm: Some(5.0),
            pixel_spacing_mm: Some(PixelSpacing { row_mm: 0.78, column_mm: 0.78 }),
            rows: Some(512),
            columns: Some(512),
            image_position_patient_mm: Some([-200.0, -200.0, -100.0 - 5.0 * k as f64]),
            image_orientation_patient: Some(AXIAL),
            kvp: Some(120.0),
            contrast_agent: Some("IOHEXOL 350".into()),
            contrast_route: Some("IV".into()),
            contrast_start_time_s: Some(36_000.0),
            acquisition_time_s: Some(36_070.0),
            ..marked(uid, k, day)
        })
        .collect();
    SeriesFacts { series_instance_uid: uid.into(), instances, pixel_decode: PixelDecode::Ok }
}

/// A sagittal 3D T1 MPRAGE-like series without contrast: `n` slices of 1 mm every 1 mm, 256 x 256,
/// 1 mm pixels, 3 T (recorded 2.89362 as Siemens does), on a Siemens Prisma "MR1".
pub fn mr_series(uid: &str, description: &str, n: usize, day: Date) -> SeriesFacts {
    let instances = (0..n)
        .map(|k| InstanceFacts {
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.4".into()),
            series_number: Some(3),
            modality: Some("MR".into()),
            body_part_examined: Some("BRAIN".into()),
            series_description: Some(description.into()),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "M".into()],
            manufacturer: Some("SIEMENS".into()),
            manufacturer_model_name: Some("Prisma".into()),
            station_name: Some("MR1".into()),
            device_serial_number: Some("2001".into()),
            slice_thickness_mm: Some(1.0),
            spacing_between_slices_mm: Some(1.0),
            pixel_spacing_mm: Some(PixelSpacing { row_mm: 1.0, column_mm: 1.0 }),
            rows: Some(256),
            columns: Some(256),
            image_position_patient_mm: Some([-80.0 + k as f64, -120.0, 100.0]),
            image_orientation_patient: Some(SAGITTAL),
            magnetic_field_strength_t: Some(2.89362),
            scanning_sequence: vec!["GR".into(), "IR".into()],
            sequence_variant: vec!["SK".into(), "SP".into(), "MP".into()],
            mr_acquisition_type: Some("3D".into()),
            repetition_time_ms: Some(2300.0),
            echo_time_ms: Some(2.3),
            inversion_time_ms: Some(900.0),
            acquisition_time_s: Some(36_000.0),
            ..marked(uid, k, day)
        })
        .collect();
    SeriesFacts { series_instance_uid: uid.into(), instances, pixel_decode: PixelDecode::Ok }
}

/// Sets a field on every instance of a series.
pub fn each(series: &mut SeriesFacts, f: impl Fn(&mut InstanceFacts)) {
    series.instances.iter_mut().for_each(f);
}

/// Sets slice positions `step_mm` apart along z (axial) or x (sagittal), keeping orientation.
pub fn spaced(series: &mut SeriesFacts, step_mm: f64) {
    for (k, i) in series.instances.iter_mut().enumerate() {
        if let Some(p) = i.image_position_patient_mm.as_mut() {
            if i.image_orientation_patient == Some(SAGITTAL) {
                p[0] = -80.0 + step_mm * k as f64;
            } else {
                p[2] = -100.0 - step_mm * k as f64;
            }
        }
    }
}
