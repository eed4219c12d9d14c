//! Times the whole QC of one visit (facts from the index, one decode per series, the rules, the
//! evaluation record) against the time to receive the same visit, on SQLite + local files.
//!
//! `cargo run --release -p corelab --example qc_visit_bench -- [SLICES]` (default 1000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use corelab::config::{Config, Overrides, Secret};
use corelab_app::Clock;
use corelab_app::ingest::{IngestTarget, Source};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

fn slice(i: usize) -> Vec<u8> {
    let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let obj = InMemDicomObject::from_element_iter(vec![
        e(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        e(tags::SOP_INSTANCE_UID, VR::UI, &format!("1.2.826.0.1.3680043.8.498.5.2.{}", i + 1)),
        e(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
        e(tags::STUDY_DATE, VR::DA, "20260925"),
        e(tags::MODALITY, VR::CS, "CT"),
        e(tags::SERIES_DESCRIPTION, VR::LO, "CT CAP PORTAL VENOUS"),
        e(tags::PATIENT_ID, VR::LO, "101-001"),
        e(tags::PATIENT_NAME, VR::PN, "DOE^JANE"),
        e(tags::CLINICAL_TRIAL_TIME_POINT_ID, VR::LO, "BL"),
        e(tags::BODY_PART_EXAMINED, VR::CS, "CHEST_TO_PELVIS"),
        e(tags::SLICE_THICKNESS, VR::DS, "1"),
        e(tags::KVP, VR::DS, "120"),
        e(tags::CONTRAST_BOLUS_AGENT, VR::LO, "IOHEXOL"),
        e(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.5"),
        e(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.5.2"),
        e(tags::SERIES_NUMBER, VR::IS, "2"),
        e(tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string()),
        e(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("-160\\-160\\{}", -(i as f64))),
        e(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        e(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512_u16)),
        e(tags::PIXEL_SPACING, VR::DS, "0.7\\0.7"),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0u8; 512 * 512 * 2])),
    ]);
    let f = obj
        .with_meta(
            FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
        )
        .unwrap();
    let mut b = Vec::new();
    f.write_all(&mut b).unwrap();
    b
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None, &Overrides::default()).unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.admin.password = Some(Secret("Bench-Admin-Pass-1".into()));
    let app = corelab::server::open_app(&config, Clock::system()).await.unwrap();
    let charter =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charters/oncology-ct-recist.toml"))
            .unwrap();
    let op = corelab_app::Actor::operator("bench");
    let trial = app.create_trial(&op, &charter).await.unwrap().id;
    // A bench harness, not a workflow: mark the site qualified directly.
    let mut tx = app.db().begin().await.unwrap();
    tx.set_site_status(trial, "101", "qualified", Some(chrono::Utc::now())).await.unwrap();
    tx.commit().await.unwrap();
    let subject = app
        .enroll_subject(
            &op,
            trial,
            corelab_app::subjects::Enrollment {
                site_id: "101".into(),
                subject_id: "101-001".into(),
                anchor_date: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                arm: None,
            },
        )
        .await
        .unwrap();
    let target = IngestTarget {
        trial_id: trial,
        site_id: "101".into(),
        source: Source::Upload,
        sender: "bench".into(),
        sender_role: "site_user".into(),
        sender_id: None,
    };
    let setup = app.ingest_setup(&target).await.unwrap();
    let files: Vec<Vec<u8>> = (0..n).map(slice).collect();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let (app, setup, target) = (app.clone(), setup.clone(), target.clone());
        handles.push(tokio::spawn(async move { app.ingest(&setup, target, std::io::Cursor::new(f)).await.map(|_| i) }));
        if handles.len() >= 8 {
            handles.remove(0).await.unwrap().unwrap();
        }
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let receive = t0.elapsed();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t1 = Instant::now();
        let e = app.evaluate_visit_qc(subject.id, "BL").await.unwrap();
        times.push(t1.elapsed());
        assert_eq!(e.instance_count as usize, n);
    }
    times.sort();
    println!(
        "{n}-slice visit (512x512): ingest {:.2} s ({:.0} inst/s, in-process, 8 at a time); QC evaluation median {:.0} ms (min {:.0}, max {:.0}) = {:.1} % of the receive time",
        receive.as_secs_f64(),
        n as f64 / receive.as_secs_f64(),
        times[2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[4].as_secs_f64() * 1000.0,
        100.0 * times[2].as_secs_f64() / receive.as_secs_f64()
    );
}
