//! QC evaluation time for a 1000-slice visit on the oncology charter.
//!
//! `cargo run --release -p corelab-domain --example qc_bench [SLICES] [ROUNDS]`
//!
//! The visit: one portal venous CAP series of SLICES 1 mm slices (two missing mid-series, so the
//! gap path runs), a lung series of the same size and a 3-slice localizer; the baseline has the
//! same series. Prints the median and fastest time of `evaluate_visit` over ROUNDS runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use corelab_domain::charter::{Date, VisitCalendar, parse_charter};
use corelab_domain::qc::{
    InstanceFacts, PixelDecode, PixelSpacing, SeriesFacts, VisitFacts, VisitWindow, evaluate_visit,
};

const ONCOLOGY: &str = include_str!("../../../charters/oncology-ct-recist.toml");

fn series(uid: &str, number: i64, description: &str, slices: usize, thickness: f64, day: Date) -> SeriesFacts {
    let instances = (0..slices)
        .map(|k| InstanceFacts {
            sop_instance_uid: format!("{uid}.{k}"),
            series_instance_uid: uid.to_string(),
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            instance_number: Some(k as i64 + 1),
            series_number: Some(number),
            modality: Some("CT".into()),
            body_part_examined: Some("CHEST_TO_PELVIS".into()),
            series_description: Some(description.into()),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
            manufacturer: Some("SIEMENS".into()),
            manufacturer_model_name: Some("SOMATOM Force".into()),
            slice_thickness_mm: Some(thickness),
            spacing_between_slices_mm: Some(thickness),
            pixel_spacing_mm: Some(PixelSpacing { row_mm: 0.78, column_mm: 0.78 }),
            rows: Some(512),
            columns: Some(512),
            image_position_patient_mm: Some([-200.0, -200.0, -100.0 - thickness * k as f64]),
            image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            kvp: Some(120.0),
            contrast_agent: Some("IOHEXOL 350".into()),
            contrast_route: Some("IV".into()),
            acquisition_date: Some(day),
            patient_identity_removed: true,
            deidentification_method_codes: vec!["113100".into(), "113107".into()],
            ..InstanceFacts::default()
        })
        .collect();
    SeriesFacts { series_instance_uid: uid.into(), instances, pixel_decode: PixelDecode::Ok }
}

fn visit(slices: usize, day: Date, tag: &str) -> VisitFacts {
    let mut pv = series(&format!("{tag}.1"), 2, "CAP PORTAL VENOUS 1mm", slices, 1.0, day);
    pv.instances.retain(|i| !matches!(i.instance_number, Some(n) if n == 500 || n == 501));
    VisitFacts {
        series: vec![
            pv,
            series(&format!("{tag}.2"), 3, "CHEST LUNG 1mm", slices, 1.0, day),
            series(&format!("{tag}.3"), 1, "TOPOGRAM", 3, 1.0, day),
        ],
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let slices: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let Ok(charter) = parse_charter(ONCOLOGY) else {
        eprintln!("the oncology charter does not parse");
        std::process::exit(1);
    };
    let Some(anchor) = Date::parse_iso("2026-01-05") else { return };
    let calendar = VisitCalendar::new(&charter, anchor);
    let (Some(bl), Some(w8)) = (calendar.visit("BL"), calendar.visit("W8")) else { return };
    let baseline = visit(slices, bl.expected_date, "2.25.1");
    let week8 = visit(slices, w8.expected_date, "2.25.2");
    let window = Some(VisitWindow::from(w8));

    let result = evaluate_visit(&charter, "W8", window, &week8, Some(&baseline));
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let r = evaluate_visit(black_box(&charter), "W8", window, black_box(&week8), Some(black_box(&baseline)));
        times.push(start.elapsed());
        black_box(r);
    }
    times.sort();
    let median = times[times.len() / 2];
    let images: usize = week8.series.iter().map(|s| s.instances.len()).sum();
    println!(
        "qc_bench: {slices}-slice visit ({images} images in {} series, baseline {} images): median {:.3} ms, fastest {:.3} ms over {rounds} runs; verdict {:?}, {} findings: {}",
        week8.series.len(),
        baseline.series.iter().map(|s| s.instances.len()).sum::<usize>(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        result.verdict,
        result.findings.len(),
        result.findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>().join(", ")
    );
}
